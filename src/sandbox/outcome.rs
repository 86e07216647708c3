//! What a run returns.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::report::IsolationReport;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (e.g. 9 when the memory cgroup's OOM killer struck).
    Signaled(i32),
    /// The wall-clock timeout ended it, with its whole process tree.
    TimedOut,
    /// Cancelled by the caller, with its whole process tree.
    Killed,
}

impl ExitKind {
    /// Shell-style exit code: the code, 128+signal, 124 on timeout (as coreutils timeout), 137 when killed.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(c) => c,
            Self::Signaled(s) => 128 + s,
            Self::TimedOut => 124,
            Self::Killed => 137,
        }
    }
}

/// Result of one sandboxed run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub status: ExitKind,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration: Duration,
    pub isolation: IsolationReport,
}
