//! Errors of the sandbox executor: one variant per failed operation, each carrying
//! the path, name or stage involved.

use std::io;
use std::path::PathBuf;

/// Errors returned by [`crate::sandbox::run`] and its helpers (parent side).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("program name is empty")]
    EmptyProgram,
    #[error("program name contains a NUL byte")]
    NulInProgram,
    #[error("argument {index} contains a NUL byte")]
    NulInArgument { index: usize },
    #[error("command line is {len} bytes, more than the {max} allowed")]
    CommandTooLong { len: usize, max: usize },
    #[error("workspace {path:?} is not an absolute path")]
    WorkspaceNotAbsolute { path: PathBuf },
    #[error("cannot resolve workspace {path:?}")]
    ResolveWorkspace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("workspace {path:?} is not a directory")]
    WorkspaceNotDirectory { path: PathBuf },
    #[error("workspace {path:?} is refused: {reason}")]
    WorkspaceForbidden { path: PathBuf, reason: &'static str },
    #[error("timeout of {requested_ms} ms is outside 1 ms to {max_secs} s")]
    InvalidTimeout { requested_ms: u128, max_secs: u64 },
    #[error("limit {name} = {value} is invalid: {reason}")]
    InvalidLimit {
        name: &'static str,
        value: u64,
        reason: &'static str,
    },
    #[error("unprivileged user {name:?} does not exist")]
    LookupUser { name: String },
    #[error("refusing to run the user {name:?} resolves to uid 0")]
    RootSandboxUser { name: String },
    #[error("refusing to run with weaker isolation (require_full_isolation is set): {missing}")]
    IsolationUnavailable { missing: String },
    #[error("cannot create pipe for {purpose}")]
    CreatePipe {
        purpose: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot spawn sandbox helper {exe:?}")]
    SpawnHelper {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot send the run spec to the sandbox helper")]
    SendSpec {
        #[source]
        source: io::Error,
    },
    #[error("cannot set up cgroup {path:?}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot capture the command's output")]
    CaptureOutput {
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for the sandbox helper")]
    WaitHelper {
        #[source]
        source: io::Error,
    },
    #[error("sandbox setup failed at stage {stage}: {message}")]
    Setup { stage: String, message: String },
    #[error("sandbox helper sent a malformed message: {detail}")]
    HelperProtocol { detail: String },
    #[error("sandbox helper ended without reporting a status ({status})")]
    HelperDied { status: String },
    #[error("docker backend unavailable: {reason}")]
    DockerUnavailable { reason: String },
}

/// A failed workspace file operation (`Workspace`), answered to the gateway
/// as a sentence naming the path and the reason.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("the path `{path}` is refused: {why}")]
    RefusePath { path: String, why: &'static str },
    #[error("opening `{path}` failed: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("reading `{path}` failed: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("writing `{path}` failed: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("listing `{path}` failed: {source}")]
    List {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("`{path}` is {size} bytes, over the {limit}-byte limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("`{path}` is not valid UTF-8 text")]
    NotText { path: String },
    #[error("opening the workspace `{}` failed: {source}", path.display())]
    OpenWorkspace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Errors of the confinement stages inside the helper (`coworkd sandbox init`).
/// They are sent to the parent as `{stage, message}` before the helper exits.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("cannot read the run spec from stdin")]
    ReadSpec(#[source] io::Error),
    #[error("cannot decode the run spec: {0}")]
    DecodeSpec(String),
    #[error("cannot open workspace {path:?}")]
    OpenWorkspace {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot set {name}")]
    SetRlimit {
        name: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("cannot switch to uid {uid} gid {gid}")]
    DropIdentity {
        uid: u32,
        gid: u32,
        #[source]
        source: nix::Error,
    },
    #[error("cannot create namespaces")]
    Unshare(#[source] nix::Error),
    #[error("cannot write {path}")]
    WriteIdMap {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot fork")]
    Fork(#[source] nix::Error),
    #[error("cannot set the parent-death signal")]
    ParentDeathSignal(#[source] nix::Error),
    #[error("cannot mount {target:?}")]
    Mount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot prepare {path:?} in the new root")]
    PrepareRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot pivot_root into the new root")]
    PivotRoot(#[source] nix::Error),
    #[error("cannot set the hostname")]
    SetHostname(#[source] nix::Error),
    #[error("cannot drop capabilities")]
    DropCapabilities(#[source] nix::Error),
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] nix::Error),
    #[error("landlock: {0}")]
    Landlock(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("required isolation missing: {0}")]
    IsolationUnavailable(String),
    #[error("cannot write to the control pipe")]
    Control(#[source] io::Error),
}

impl ConfineError {
    /// Short name of the stage that failed, sent to the parent.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::ReadSpec(_) | Self::DecodeSpec(_) => "read_spec",
            Self::OpenWorkspace { .. } => "open_workspace",
            Self::SetRlimit { .. } => "rlimits",
            Self::DropIdentity { .. } => "drop_identity",
            Self::Unshare(_) => "unshare",
            Self::WriteIdMap { .. } => "id_map",
            Self::Fork(_) => "fork",
            Self::ParentDeathSignal(_) => "pdeathsig",
            Self::Mount { .. } | Self::PrepareRoot { .. } => "mounts",
            Self::PivotRoot(_) => "pivot_root",
            Self::SetHostname(_) => "hostname",
            Self::DropCapabilities(_) => "capabilities",
            Self::NoNewPrivs(_) => "no_new_privs",
            Self::Landlock(_) => "landlock",
            Self::Seccomp(_) => "seccomp",
            Self::IsolationUnavailable(_) => "require_full_isolation",
            Self::Control(_) => "control",
        }
    }
}
