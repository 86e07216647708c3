//! Privileges: which user each component runs as, how a process hardens itself at
//! start, and how servers map peer uids to roles.

use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User};

use crate::config::Profile;
use crate::ipc::{Component, PeerAuth, Role};
use crate::paths::{ADMIN_GROUP, SHARED_GROUP};

/// The identity a component is switched to before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivsError {
    #[error(
        "user {user} does not exist; the production profile runs every component under its own user (install systemd/sysusers.d/cowork.conf and run systemd-sysusers)"
    )]
    MissingUser { user: &'static str },
    #[error("looking up user {user} failed")]
    Lookup {
        user: &'static str,
        #[source]
        source: nix::Error,
    },
}

/// Decides who `component` runs as. Not root: everything runs as the caller (dev
/// mode). Root: the component's own user when it exists or the profile is
/// production; otherwise (a development box without the users) root as well.
pub fn run_as(component: Component, profile: Profile) -> Result<Option<RunAs>, PrivsError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let name = component.user();
    let user = User::from_name(name).map_err(|source| PrivsError::Lookup { user: name, source })?;
    let Some(user) = user else {
        return match profile {
            Profile::Production => Err(PrivsError::MissingUser { user: name }),
            Profile::Development => Ok(None),
        };
    };
    let mut groups = vec![user.gid.as_raw()];
    if let Ok(Some(shared)) = Group::from_name(SHARED_GROUP) {
        groups.push(shared.gid.as_raw());
    }
    Ok(Some(RunAs {
        user: name.to_string(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
    }))
}

/// The peer map a component's server uses: per-user when this process runs as its
/// component user, else the shared uid of a development instance.
pub fn component_peer_auth(component: Component) -> PeerAuth {
    let me = Uid::effective().as_raw();
    let own = User::from_name(component.user()).ok().flatten();
    if me != 0 && own.as_ref().is_some_and(|u| u.uid.as_raw() == me) {
        let mut map = vec![(0, Role::Supervisor)];
        for c in Component::START_ORDER {
            if let Ok(Some(u)) = User::from_name(c.user()) {
                map.push((u.uid.as_raw(), c.role()));
            }
        }
        PeerAuth::PerUser(map)
    } else {
        PeerAuth::SharedUid(me)
    }
}

/// The control socket's rule: root, our own uid, or the cowork-admin group.
pub fn control_peer_auth() -> PeerAuth {
    PeerAuth::Control {
        supervisor_uid: Uid::effective().as_raw(),
        admin_gid: Group::from_name(ADMIN_GROUP)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw()),
    }
}

/// The gid of a group, if it exists.
pub fn group_gid(name: &str) -> Option<Gid> {
    Group::from_name(name).ok().flatten().map(|g| g.gid)
}

/// First thing every process does: no core dumps (they could hold keys), not
/// ptrace-attachable by same-uid processes, and no privilege gain through exec.
pub fn harden_process() -> anyhow::Result<()> {
    crate::keystore::harden_process()?;
    nix::sys::prctl::set_no_new_privs()?;
    Ok(())
}

/// Drops every capability: bounding set, ambient set, then effective/permitted/
/// inheritable. Allocates nothing, so it is safe between fork and exec.
#[allow(unsafe_code)]
pub fn drop_all_capabilities() -> Result<(), Errno> {
    for cap in 0..64 {
        // SAFETY: prctl(PR_CAPBSET_DROP, cap) reads no memory; EINVAL past the last cap.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 {
            let e = Errno::last();
            if e == Errno::EINVAL {
                break;
            }
            return Err(e);
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL reads no memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    Errno::result(rc)?;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and the two-element data array have the layout capset(2) expects
    // for version 3 and live across the call; the kernel only reads them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    Errno::result(rc).map(drop)
}
