//! Who the command runs as. When the helper starts as real root it first switches the
//! host identity to the unprivileged uid/gid (cowork-sandbox or 65534), then creates a
//! user namespace that maps that uid/gid 1:1; the command never holds host root.

use std::fs;

use nix::sys::prctl;
use nix::unistd::{Gid, Uid, getegid, geteuid, setgroups, setresgid, setresuid};

use crate::sandbox::error::ConfineError;

use super::sys;

/// Switches the host identity to `uid`/`gid` when running as root (no-op otherwise:
/// an unprivileged caller runs the command as itself).
pub fn switch_host_identity(uid: u32, gid: u32) -> Result<(), ConfineError> {
    if !geteuid().is_root() {
        return Ok(());
    }
    let err = |source| ConfineError::DropIdentity { uid, gid, source };
    setgroups(&[]).map_err(err)?;
    setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid)).map_err(err)?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid)).map_err(err)?;
    // The uid change made us non-dumpable, which makes /proc/self/{uid,gid}_map
    // root-owned; become dumpable just long enough to write our own maps.
    prctl::set_dumpable(true).map_err(err)?;
    Ok(())
}

/// After unshare(CLONE_NEWUSER): map our own uid and gid 1:1 (the only mapping an
/// unprivileged process may write), with setgroups denied as the kernel requires.
///
/// `host_ids` must be read before unshare: inside a user namespace without maps yet,
/// geteuid() already answers the overflow uid (65534).
pub fn write_id_maps(host_ids: (u32, u32)) -> Result<(u32, u32), ConfineError> {
    let (uid, gid) = host_ids;
    let write = |path: &'static str, data: String| {
        fs::write(path, data).map_err(|source| ConfineError::WriteIdMap { path, source })
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    prctl::set_dumpable(false).map_err(|source| ConfineError::DropIdentity { uid, gid, source })?;
    Ok((uid, gid))
}

/// Drops every capability the user namespace gave us (bounding, ambient, effective,
/// permitted, inheritable). The uid is already unprivileged, so exec gains none back.
pub fn drop_capabilities() -> Result<(), ConfineError> {
    sys::drop_all_capabilities().map_err(ConfineError::DropCapabilities)
}

/// Our host uid and gid, to be passed to [`write_id_maps`] after unshare.
pub fn host_ids() -> (u32, u32) {
    (geteuid().as_raw(), getegid().as_raw())
}
