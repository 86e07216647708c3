//! The private pipe protocol between `run` (parent) and its own re-executed helper
//! (`coworkd sandbox init`). This is not inter-component IPC (that lives in `src/ipc`):
//! both ends are this module, in the same binary, so versions cannot differ.
//!
//! The helper's fd 0 is one end of a unix socketpair (the payload gets /dev/null instead):
//! - parent -> helper: one JSON [`InitSpec`], then shutdown(SHUT_WR) as EOF;
//! - helper -> parent: JSON lines of [`ControlMessage`]: `Report` just before the
//!   payload is forked, `Status` when it ended, or `Error`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::report::IsolationReport;

/// The helper's control socket: its stdin.
pub const CONTROL_FD: i32 = 0;
/// Largest spec the helper accepts on stdin.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;
/// Largest control stream the parent keeps.
pub const MAX_CONTROL_BYTES: usize = 256 * 1024;

/// Everything the helper needs; built by the parent from a validated spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Canonical host path of the workspace.
    pub workspace: PathBuf,
    pub allow_network: bool,
    pub require_full_isolation: bool,
    /// Host uid/gid to run as (when the helper starts as root it switches to them).
    pub uid: u32,
    pub gid: u32,
    /// Words for the report.
    pub identity: String,
    /// RLIMIT_AS, set only when no memory cgroup is in force.
    pub rlimit_as: Option<u64>,
    /// RLIMIT_NPROC, set only when no pids cgroup is in force.
    pub rlimit_nproc: Option<u64>,
    pub rlimit_fsize: u64,
    pub rlimit_nofile: u64,
    pub tmp_size_bytes: u64,
}

/// How the payload ended, as seen by the sandbox init (pid 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadStatus {
    Exited(i32),
    Signaled(i32),
}

/// One line on the control pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlMessage {
    Report(Box<IsolationReport>),
    Status(PayloadStatus),
    Error { stage: String, message: String },
}

/// Parses the control stream; lines that are not JSON are reported as protocol errors.
pub fn parse_control(bytes: &[u8]) -> Result<Vec<ControlMessage>, String> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_parse() {
        let mut buf = Vec::new();
        for m in [
            ControlMessage::Report(Box::default()),
            ControlMessage::Status(PayloadStatus::Exited(3)),
        ] {
            buf.extend(serde_json::to_vec(&m).expect("json"));
            buf.push(b'\n');
        }
        let got = parse_control(&buf).expect("parse");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], ControlMessage::Status(PayloadStatus::Exited(3)));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(parse_control(b"{\"status\":\n").is_err());
        assert!(parse_control(b"\x00\xff\n").is_err());
    }
}
