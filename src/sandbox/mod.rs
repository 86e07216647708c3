//! # sandbox — runs one approved command isolated
//!
//! **Role.** The executor behind the `sandbox` component: given a command the guard
//! approved, it runs it confined and returns its status, capped output and an
//! [`IsolationReport`] saying what confinement it actually got.
//!
//! **Peers.** Called by the gateway's agent loop (through the IPC wrapper the lead adds);
//! its outcomes go to the audit trail. It re-executes its own binary as the hidden
//! `coworkd sandbox init` stage, which talks to it over a private pipe (`wire.rs`).
//!
//! **Privileges.** When the appliance runs as root, the parent side writes the per-run
//! cgroup and the helper opens the workspace as root, then switches to the unprivileged
//! user (`cowork-sandbox`, else uid/gid 65534) *before* creating its user namespace,
//! which maps that uid 1:1. The command never holds host root; inside it has no
//! capabilities, no_new_privs, landlock and seccomp.
//!
//! **Data.** Owns nothing persistent. Per run: a cgroup (removed afterwards) and
//! in-memory tmpfs mounts that vanish with the namespaces.
//!
//! **Isolation (built-in backend).** New user, mount, pid, ipc, uts, cgroup and (unless
//! `allow_network`) net namespaces; a tmpfs root with read-only system dirs, a minimal
//! generated /etc, five /dev nodes, a fresh /proc, a private /tmp, an empty private HOME
//! and the workspace **at `/workspace`** (cwd /workspace); landlock (writes only
//! /workspace, /tmp, HOME, /dev/shm); a seccomp deny-list (EPERM); rlimits; a memory/pids/cpu
//! cgroup when the host allows; a wall-clock timeout that kills the whole pid namespace.
//! Network off = an empty network namespace (lo down) plus seccomp and landlock TCP
//! denial; `allow_network` keeps the host network. **No domain allow-list proxy is built.**
//!
//! **Code run through files.** The agent writes the workspace without running anything, so
//! the workspace must not be where programs look for their start-up files. HOME is
//! `/sandbox-home`, an empty 0700 tmpfs mounted in the run's private mount namespace (new
//! for every run, gone after it; also the passwd home, which sqlite3 and others prefer to
//! `$HOME`); `XDG_*_HOME` are unset and so default inside it. The environment is fixed, never
//! inherited (`confine/env.rs`): `PYTHONNOUSERSITE=1`, no `PYTHONSTARTUP`, `PYTHONPATH`,
//! `PERL5LIB`, `PERL5OPT`, `RUBYOPT`, `NODE_OPTIONS`, `BASH_ENV`, `ENV`, `LD_PRELOAD`;
//! `GIT_CONFIG_NOSYSTEM=1` and `GIT_CONFIG_COUNT` overrides (`core.fsmonitor=false`,
//! `core.hooksPath=/dev/null`, `core.pager=cat`) that outrank the repository's
//! `.git/config`. What the working directory itself holds (`.git/config` with other exec
//! keys, `*.pth` on a `PYTHONPATH` a command sets, a `.sqliterc` named by `-init`) is the
//! guard's to judge: writes of such files by the file tools need the owner's approval
//! ([`crate::guard::classify_write`]).
//!
//! The workspace must be writable by the sandbox uid (the executor does not chown it).

mod capture;
mod cgroup;
mod cli;
mod confine;
pub mod disk;
mod docker;
mod error;
mod init;
mod outcome;
mod parent;
mod probe;
mod report;
mod service;
mod settings;
mod spec;
mod wire;
mod workspace;

use std::path::Path;

pub use capture::CancelHandle;
pub use cgroup::adopt_delegated;
pub use cli::{ExecArgs, SandboxCommand, dispatch, exec_cli};
pub use docker::docker_argv;
pub use error::{ConfineError, SandboxError, WorkspaceError};
pub use init::init_main;
pub use outcome::{ExitKind, RunOutcome};
pub use report::{
    CgroupReport, Enforcement, IsolationReport, LandlockReport, RlimitEntry, SeccompReport,
};
pub use service::{SandboxService, capped_text};
pub use settings::{Backend, SandboxSettings};
pub use spec::{MAX_OUTPUT_CAP, RunSpec, ValidSpec};
pub use workspace::Workspace;

/// Runs one command to completion (blocking). `self_exe` is the `coworkd` binary,
/// re-executed as `coworkd sandbox init`.
pub fn run(
    spec: &RunSpec,
    settings: &SandboxSettings,
    self_exe: &Path,
) -> Result<RunOutcome, SandboxError> {
    run_inner(spec, settings, self_exe, None)
}

/// Like [`run`], but `cancel.cancel()` from another thread kills the command and its
/// whole process tree; the outcome's status is then [`ExitKind::Killed`].
pub fn run_with_cancel(
    spec: &RunSpec,
    settings: &SandboxSettings,
    self_exe: &Path,
    cancel: &CancelHandle,
) -> Result<RunOutcome, SandboxError> {
    run_inner(spec, settings, self_exe, Some(cancel))
}

fn run_inner(
    spec: &RunSpec,
    settings: &SandboxSettings,
    self_exe: &Path,
    cancel: Option<&CancelHandle>,
) -> Result<RunOutcome, SandboxError> {
    let valid = spec.validate(settings)?;
    match settings.backend {
        Backend::Builtin => parent::run_builtin(&valid, settings, self_exe, cancel),
        Backend::Docker => docker::run_docker(&valid, settings, cancel),
    }
}

/// True when argv is exactly `coworkd sandbox init` (lets `main` dispatch the per-run
/// helper before building its full argument parser).
pub fn is_init_invocation(mut args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let _argv0 = args.next();
    matches!((args.next(), args.next(), args.next()), (Some(a), Some(b), None) if a == "sandbox" && b == "init")
}

/// The host uid and gid commands run as under these settings (never 0).
pub fn command_identity(settings: &SandboxSettings) -> Result<(u32, u32), SandboxError> {
    parent::resolve_identity(settings).map(|(uid, gid, _)| (uid, gid))
}

/// What this host can enforce (for `coworkctl status`).
pub fn probe() -> IsolationReport {
    probe::probe_with(&SandboxSettings::default().cgroup_root)
}
