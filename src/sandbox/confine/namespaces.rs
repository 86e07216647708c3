//! New namespaces for the sandbox.

use nix::sched::{CloneFlags, unshare};

use crate::sandbox::error::ConfineError;

/// Unshares user, mount, pid, ipc, uts and cgroup namespaces, and net unless the
/// network switch is on. The pid namespace applies to the next child (the sandbox init).
pub fn unshare_all(allow_network: bool) -> Result<Vec<String>, ConfineError> {
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    let mut names = vec!["user", "mount", "pid", "ipc", "uts", "cgroup"];
    if !allow_network {
        flags |= CloneFlags::CLONE_NEWNET;
        names.push("net");
    }
    unshare(flags).map_err(ConfineError::Unshare)?;
    Ok(names.into_iter().map(String::from).collect())
}
