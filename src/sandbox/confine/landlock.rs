//! Landlock: writes only to /workspace, /tmp, the per-run HOME and /dev/shm; reads only
//! the system dirs, /etc (already minimal), /proc (of the sandbox's pid namespace), the
//! five /dev nodes and those writable dirs. With the network off, TCP bind/connect are denied too
//! (ABI >= 4); abstract unix sockets and signals are scoped to the sandbox (ABI >= 6).

use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::sandbox::error::ConfineError;
use crate::sandbox::report::{Enforcement, LandlockReport};

use super::mounts::{DEV_NODES, HOME, SYSTEM_DIRS, WORKSPACE};
use super::sys;

/// The ABI whose rights we ask for; a kernel at or above it enforces everything.
const TARGET_ABI: ABI = ABI::V6;

fn ll_err(e: impl std::fmt::Display) -> ConfineError {
    ConfineError::Landlock(e.to_string())
}

fn add(
    ruleset: RulesetCreated,
    path: &str,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, ConfineError> {
    if !Path::new(path).exists() {
        return Ok(ruleset);
    }
    let fd = PathFd::new(path).map_err(ll_err)?;
    ruleset
        .add_rule(PathBeneath::new(fd, access))
        .map_err(ll_err)
}

/// Restricts the calling process (and every later child) and reports how far it went.
pub fn restrict(allow_network: bool) -> Result<LandlockReport, ConfineError> {
    let abi = sys::landlock_abi();
    let all = AccessFs::from_all(TARGET_ABI);
    let read = AccessFs::from_read(TARGET_ABI); // execute, read file, read dir
    let dev_rw = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev;
    let dev_ro = AccessFs::ReadFile | AccessFs::IoctlDev;

    let mut ruleset = Ruleset::default().handle_access(all).map_err(ll_err)?;
    if !allow_network {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(ll_err)?;
    }
    ruleset = ruleset
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(ll_err)?;
    let mut created = ruleset.create().map_err(ll_err)?;

    // Listing directories is harmless on this tiny root; reading files is not granted by it.
    created = add(created, "/", AccessFs::ReadDir.into())?;
    for dir in SYSTEM_DIRS.iter().copied().chain(["/etc", "/proc"]) {
        created = add(created, dir, read)?;
    }
    for node in DEV_NODES {
        let access = if node.ends_with("random") {
            dev_ro
        } else {
            dev_rw
        };
        created = add(created, &format!("/dev/{node}"), access)?;
    }
    for dir in [WORKSPACE, "/tmp", HOME, "/dev/shm"] {
        created = add(created, dir, all)?;
    }
    let status = created.restrict_self().map_err(ll_err)?;
    let enforcement = match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    };
    Ok(LandlockReport {
        abi,
        enforcement,
        tcp_restricted: !allow_network && abi >= 4,
        scoped: abi >= 6,
    })
}
