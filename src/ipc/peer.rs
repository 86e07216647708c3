//! Who may talk to whom: peer credentials (SO_PEERCRED) and the one static table of
//! which role may send which request to which server (habit 3 of STYLE.md).

use std::os::fd::AsRawFd;

use super::roles::Role;

/// One line of the peer table: `senders` may send `request` to `server`.
#[derive(Debug)]
pub struct PeerRule {
    pub server: Role,
    pub request: &'static str,
    pub senders: &'static [Role],
}

/// The peer table. A request missing here is refused for everybody.
pub static PEER_TABLE: &[PeerRule] = &[
    // Lifecycle of every component belongs to the supervisor alone.
    rule(Role::Audit, "ping", &[Role::Supervisor]),
    rule(Role::Audit, "reload", &[Role::Supervisor]),
    rule(Role::Audit, "shutdown", &[Role::Supervisor]),
    rule(Role::Sandbox, "ping", &[Role::Supervisor]),
    rule(Role::Sandbox, "reload", &[Role::Supervisor]),
    rule(Role::Sandbox, "shutdown", &[Role::Supervisor]),
    rule(Role::Gateway, "ping", &[Role::Supervisor]),
    rule(Role::Gateway, "reload", &[Role::Supervisor]),
    rule(Role::Gateway, "shutdown", &[Role::Supervisor]),
    rule(Role::Admin, "ping", &[Role::Supervisor]),
    rule(Role::Admin, "reload", &[Role::Supervisor]),
    rule(Role::Admin, "shutdown", &[Role::Supervisor]),
    rule(Role::Admin, "status-update", &[Role::Supervisor]),
    rule(Role::Admin, "admin.info", &[Role::Supervisor]),
    rule(Role::Admin, "admin.setup-token", &[Role::Supervisor]),
    rule(Role::Admin, "admin.rotate-cert", &[Role::Supervisor]),
    // Everybody appends to the audit trail; only the supervisor (on behalf of
    // coworkctl) and the admin page read it.
    rule(
        Role::Audit,
        "audit.append",
        &[Role::Supervisor, Role::Gateway, Role::Sandbox, Role::Admin],
    ),
    rule(Role::Audit, "audit.tail", &[Role::Supervisor, Role::Admin]),
    rule(
        Role::Audit,
        "audit.verify",
        &[Role::Supervisor, Role::Admin],
    ),
    // The vault's values, for redaction: from the vault's owner alone.
    rule(Role::Audit, "audit.known-secrets", &[Role::Gateway]),
    // Keys come from the supervisor alone.
    rule(Role::Audit, "install-keys", &[Role::Supervisor]),
    rule(Role::Gateway, "install-keys", &[Role::Supervisor]),
    rule(Role::Admin, "install-keys", &[Role::Supervisor]),
    // The vault's owner takes secret operations from the supervisor (coworkctl).
    rule(Role::Gateway, "gateway.secret-set", &[Role::Supervisor]),
    // Names and versions only, for the admin page's "credentials to rotate" list.
    rule(
        Role::Gateway,
        "gateway.secret-list",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(Role::Gateway, "gateway.secret-delete", &[Role::Supervisor]),
    rule(Role::Gateway, "gateway.vault-probe", &[Role::Supervisor]),
    rule(Role::Gateway, "gateway.vault-rewrap", &[Role::Supervisor]),
    // Pairing codes and users: the owner, from coworkctl (through the
    // supervisor) or the admin page.
    rule(
        Role::Gateway,
        "gateway.pair-new",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.pair-list",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.pair-cancel",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.pair-cancel-all",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.users-list",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.lockouts-list",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.lockouts-clear",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.user-revoke",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.users-revoke-all",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.user-forget",
        &[Role::Supervisor, Role::Admin],
    ),
    // A safety number confirmed: the owner, from coworkctl (through the
    // supervisor) or the admin page, never a channel.
    rule(
        Role::Gateway,
        "gateway.identity-confirm",
        &[Role::Supervisor, Role::Admin],
    ),
    // Channels' live state: the admin page's settings.
    rule(
        Role::Gateway,
        "gateway.channel-states",
        &[Role::Supervisor, Role::Admin],
    ),
    // The local channel: only the supervisor, which vouches for the sender's uid.
    rule(Role::Gateway, "gateway.local-message", &[Role::Supervisor]),
    rule(Role::Gateway, "gateway.local-poll", &[Role::Supervisor]),
    // Tasks and approvals: the owner, from coworkctl (through the supervisor)
    // or the admin page.
    rule(
        Role::Gateway,
        "gateway.tasks-read",
        &[Role::Supervisor, Role::Admin],
    ),
    rule(
        Role::Gateway,
        "gateway.tasks-change",
        &[Role::Supervisor, Role::Admin],
    ),
    // Only the gateway (its agent loop) runs commands.
    rule(Role::Sandbox, "sandbox.run", &[Role::Gateway]),
    rule(Role::Sandbox, "sandbox.cancel", &[Role::Gateway]),
    // The workspaces are the sandbox's; only the agent's file tools reach them.
    rule(Role::Sandbox, "sandbox.file", &[Role::Gateway]),
    // The control socket serves coworkctl.
    rule(Role::Supervisor, "status", &[Role::Ctl]),
    rule(Role::Supervisor, "reload", &[Role::Ctl]),
    // The owner's settings: coworkctl, and the admin page through updates.sock.
    rule(Role::Supervisor, "settings-read", &[Role::Ctl, Role::Admin]),
    rule(
        Role::Supervisor,
        "settings-change",
        &[Role::Ctl, Role::Admin],
    ),
    // Secrets: coworkctl, and the admin page's credentials form (values go
    // one way, to the vault; they are never read back).
    rule(Role::Supervisor, "secret-set", &[Role::Ctl, Role::Admin]),
    rule(Role::Supervisor, "secret-list", &[Role::Ctl, Role::Admin]),
    rule(Role::Supervisor, "secret-delete", &[Role::Ctl, Role::Admin]),
    rule(Role::Supervisor, "secret-rotate-master", &[Role::Ctl]),
    rule(Role::Supervisor, "audit-tail", &[Role::Ctl]),
    rule(Role::Supervisor, "audit-verify", &[Role::Ctl]),
    rule(Role::Supervisor, "access-read", &[Role::Ctl]),
    rule(Role::Supervisor, "access-change", &[Role::Ctl]),
    rule(Role::Supervisor, "chat", &[Role::Ctl]),
    rule(Role::Supervisor, "tasks-read", &[Role::Ctl]),
    rule(Role::Supervisor, "tasks-change", &[Role::Ctl]),
    rule(Role::Supervisor, "admin-info", &[Role::Ctl]),
    rule(Role::Supervisor, "admin-setup-token", &[Role::Ctl]),
    rule(Role::Supervisor, "admin-rotate-cert", &[Role::Ctl]),
    // The admin page reaches these two through $RUNTIME/updates.sock.
    rule(Role::Supervisor, "update-status", &[Role::Ctl, Role::Admin]),
    rule(Role::Supervisor, "update-apply", &[Role::Ctl, Role::Admin]),
    rule(Role::Supervisor, "update-check", &[Role::Ctl, Role::Admin]),
    // The checklist: coworkctl doctor, and the dashboard through updates.sock.
    rule(Role::Supervisor, "doctor", &[Role::Ctl, Role::Admin]),
];

const fn rule(server: Role, request: &'static str, senders: &'static [Role]) -> PeerRule {
    PeerRule {
        server,
        request,
        senders,
    }
}

/// Whether the table lets `sender` send `request` to `server`.
pub fn may_send(server: Role, request: &str, sender: Role) -> bool {
    PEER_TABLE
        .iter()
        .any(|r| r.server == server && r.request == request && r.senders.contains(&sender))
}

/// The kernel's word on who is at the other end of a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups at connect time (SO_PEERGROUPS).
    pub groups: Vec<u32>,
}

impl PeerCred {
    /// Reads SO_PEERCRED and SO_PEERGROUPS of a connected socket.
    pub fn of(stream: &tokio::net::UnixStream) -> std::io::Result<PeerCred> {
        let cred = stream.peer_cred()?;
        Ok(PeerCred {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            groups: peer_groups(stream.as_raw_fd()).unwrap_or_default(),
        })
    }
}

/// SO_PEERGROUPS: the supplementary groups of the peer when it connected, race-free
/// (unlike reading /proc/PID/status afterwards).
#[allow(unsafe_code)]
fn peer_groups(fd: std::os::fd::RawFd) -> std::io::Result<Vec<u32>> {
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: `groups` is a valid, writable buffer of `len` bytes that outlives the
    // call; the kernel writes at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    Ok(groups)
}

/// How a server maps peer credentials to a role.
#[derive(Debug, Clone)]
pub enum PeerAuth {
    /// Development: every component runs as this one uid, so there is no uid
    /// boundary between them and the claimed role is taken as it comes. The peer
    /// table still applies to that claim.
    SharedUid(u32),
    /// Production: each role has its own uid; the claim must match it.
    PerUser(Vec<(u32, Role)>),
    /// The control socket: root, the supervisor's own uid, or a member of the
    /// cowork-admin group is `coworkctl`; nobody else gets in.
    Control {
        supervisor_uid: u32,
        admin_gid: Option<u32>,
    },
}

impl PeerAuth {
    /// Returns the peer's role, or why it is refused.
    pub fn identify(&self, cred: &PeerCred, claimed: Role) -> Result<Role, String> {
        match self {
            PeerAuth::SharedUid(uid) => {
                if cred.uid == *uid {
                    Ok(claimed)
                } else {
                    Err(format!(
                        "uid {} is not the appliance's uid {uid} (claimed {claimed})",
                        cred.uid
                    ))
                }
            }
            PeerAuth::PerUser(map) => match map.iter().find(|(uid, _)| *uid == cred.uid) {
                Some((_, role)) if *role == claimed => Ok(claimed),
                Some((_, role)) => Err(format!(
                    "uid {} belongs to {role} but claimed {claimed}",
                    cred.uid
                )),
                None => Err(format!(
                    "uid {} is not in the peer table (claimed {claimed})",
                    cred.uid
                )),
            },
            PeerAuth::Control {
                supervisor_uid,
                admin_gid,
            } => {
                let in_admin_group =
                    admin_gid.is_some_and(|g| cred.gid == g || cred.groups.contains(&g));
                if claimed != Role::Ctl {
                    Err(format!(
                        "the control socket serves coworkctl, not {claimed}"
                    ))
                } else if cred.uid == 0 || cred.uid == *supervisor_uid || in_admin_group {
                    Ok(Role::Ctl)
                } else {
                    Err(format!(
                        "uid {} is neither root nor in group {}",
                        cred.uid,
                        crate::paths::ADMIN_GROUP
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_page_may_ask_the_supervisor_for_updates_settings_and_secrets_only() {
        for write_only in ["secret-set", "secret-list", "secret-delete"] {
            assert!(may_send(Role::Supervisor, write_only, Role::Admin));
        }
        assert!(may_send(Role::Supervisor, "update-status", Role::Admin));
        assert!(may_send(Role::Supervisor, "update-apply", Role::Admin));
        assert!(may_send(Role::Supervisor, "settings-read", Role::Admin));
        assert!(may_send(Role::Supervisor, "settings-change", Role::Admin));
        for sender in [Role::Gateway, Role::Sandbox, Role::Audit] {
            assert!(!may_send(Role::Supervisor, "settings-change", sender));
        }
        for other in [
            "status",
            "reload",
            "secret-rotate-master",
            "access-change",
            "chat",
            "admin-rotate-cert",
            "audit-tail",
        ] {
            assert!(!may_send(Role::Supervisor, other, Role::Admin), "{other}");
        }
    }

    #[test]
    fn only_the_owner_confirms_a_safety_number() {
        for owner in [Role::Supervisor, Role::Admin] {
            assert!(may_send(Role::Gateway, "gateway.identity-confirm", owner));
        }
        for other in [Role::Gateway, Role::Sandbox, Role::Audit, Role::Ctl] {
            assert!(!may_send(Role::Gateway, "gateway.identity-confirm", other));
        }
    }

    fn cred(uid: u32, gid: u32, groups: &[u32]) -> PeerCred {
        PeerCred {
            pid: None,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn table_allows_only_listed_senders() {
        assert!(may_send(Role::Audit, "ping", Role::Supervisor));
        assert!(!may_send(Role::Audit, "ping", Role::Gateway));
        assert!(!may_send(Role::Audit, "launch-missiles", Role::Supervisor));
        assert!(may_send(Role::Supervisor, "status", Role::Ctl));
        assert!(!may_send(Role::Supervisor, "status", Role::Admin));
    }

    #[test]
    fn agent_requests_have_their_senders_only() {
        use Role::*;
        // Workspace files: the gateway's file tools and nobody else.
        assert!(may_send(Sandbox, "sandbox.file", Gateway));
        for r in [Supervisor, Admin, Audit, Sandbox, Ctl] {
            assert!(!may_send(Sandbox, "sandbox.file", r), "{r:?}");
            assert!(!may_send(Gateway, "gateway.local-poll", r) || r == Supervisor);
        }
        // Tasks and approvals: coworkctl through the supervisor, the admin page.
        for kind in ["gateway.tasks-read", "gateway.tasks-change"] {
            assert!(may_send(Gateway, kind, Supervisor));
            assert!(may_send(Gateway, kind, Admin));
            assert!(!may_send(Gateway, kind, Sandbox));
            assert!(!may_send(Gateway, kind, Audit));
            assert!(
                !may_send(Gateway, kind, Ctl),
                "coworkctl goes through the supervisor"
            );
        }
        for kind in ["tasks-read", "tasks-change"] {
            assert!(may_send(Supervisor, kind, Ctl));
            assert!(!may_send(Supervisor, kind, Admin));
            assert!(!may_send(Supervisor, kind, Gateway));
        }
        // The sandbox never takes a command from anyone but the gateway.
        assert!(!may_send(Sandbox, "sandbox.run", Admin));
    }

    #[test]
    fn only_the_gateway_sends_known_secrets() {
        use Role::*;
        assert!(may_send(Audit, "audit.known-secrets", Gateway));
        for r in [Supervisor, Admin, Sandbox, Audit, Ctl] {
            assert!(!may_send(Audit, "audit.known-secrets", r), "{r:?}");
        }
        for server in [Supervisor, Gateway, Sandbox, Admin] {
            assert!(
                !may_send(server, "audit.known-secrets", Gateway),
                "{server:?}"
            );
        }
    }

    #[test]
    fn per_user_claims_must_match_uid() {
        let auth = PeerAuth::PerUser(vec![(0, Role::Supervisor), (901, Role::Gateway)]);
        assert_eq!(
            auth.identify(&cred(901, 901, &[]), Role::Gateway),
            Ok(Role::Gateway)
        );
        assert!(
            auth.identify(&cred(901, 901, &[]), Role::Supervisor)
                .is_err()
        );
        assert!(
            auth.identify(&cred(1000, 1000, &[]), Role::Gateway)
                .is_err()
        );
    }

    #[test]
    fn control_needs_root_or_admin_group() {
        let auth = PeerAuth::Control {
            supervisor_uid: 0,
            admin_gid: Some(950),
        };
        assert!(auth.identify(&cred(0, 0, &[]), Role::Ctl).is_ok());
        assert!(auth.identify(&cred(1000, 100, &[950]), Role::Ctl).is_ok());
        assert!(auth.identify(&cred(1000, 100, &[27]), Role::Ctl).is_err());
        assert!(auth.identify(&cred(0, 0, &[]), Role::Gateway).is_err());
    }
}
