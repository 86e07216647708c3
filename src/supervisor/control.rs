//! The control socket (`$RUNTIME/control.sock`) that `coworkctl` talks to. Only
//! root, the supervisor's own uid, or members of group cowork-admin get in.

use std::os::unix::fs::chown;
use std::sync::Arc;

use tokio::sync::watch;

use super::Shared;
use crate::ipc::{
    self, AccessRequest, AccessResponse, AuditRequest, AuditResponse, Component, ComponentRequest,
    ComponentResponse, ControlRequest, ControlResponse, ErrorCode, GatewayRequest, GatewayResponse,
    Peer, PeerAuth, Role, Service, SettingsRequest, SettingsResponse, WireError,
};
use crate::paths::ADMIN_GROUP;
use crate::privs::RunAs;

pub struct ControlServer {
    stop: watch::Sender<bool>,
}

impl ControlServer {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

pub fn start(shared: Arc<Shared>, admin: Option<&RunAs>) -> anyhow::Result<ControlServer> {
    use anyhow::Context;
    let path = shared.paths.control_socket();
    let listener =
        ipc::bind_socket(&path, 0o660).with_context(|| format!("binding {}", path.display()))?;
    if let Some(gid) = crate::privs::group_gid(ADMIN_GROUP) {
        chown(&path, None, Some(gid.as_raw()))
            .with_context(|| format!("giving {} to group {ADMIN_GROUP}", path.display()))?;
    }
    let (stop, stop_rx) = watch::channel(false);
    let auth = Arc::new(crate::privs::control_peer_auth());
    tokio::spawn(ipc::serve(
        listener,
        auth,
        Arc::new(Control {
            shared: Arc::clone(&shared),
        }),
        stop_rx.clone(),
    ));
    start_updates_socket(shared, admin, stop_rx)?;
    Ok(ControlServer { stop })
}

/// `$RUNTIME/updates.sock`: how the admin page asks for `update status|apply`,
/// the owner's settings and the vault's secrets (its user is deliberately not
/// in cowork-admin, so the control socket is closed to it). The same handler
/// serves it; the peer table lets the admin role send those requests and
/// nothing else (no status, reload, chat, master key rotation, audit).
fn start_updates_socket(
    shared: Arc<Shared>,
    admin: Option<&RunAs>,
    stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = shared.paths.updates_socket();
    let listener = ipc::bind_socket(&path, if admin.is_some() { 0o660 } else { 0o600 })
        .with_context(|| format!("binding {}", path.display()))?;
    let auth = match admin {
        Some(r) => {
            // Its own primary group (cowork-web), of which the unit makes us a member.
            chown(&path, None, Some(r.gid))
                .with_context(|| format!("giving {} to the admin page's group", path.display()))?;
            PeerAuth::PerUser(vec![(r.uid, Role::Admin)])
        }
        None => PeerAuth::SharedUid(nix::unistd::Uid::effective().as_raw()),
    };
    tokio::spawn(ipc::serve(
        listener,
        Arc::new(auth),
        Arc::new(Control { shared }),
        stop_rx,
    ));
    Ok(())
}

struct Control {
    shared: Arc<Shared>,
}

impl Control {
    /// Relays a read of the trail to the audit component, which owns it.
    async fn audit(&self, request: AuditRequest) -> ControlResponse {
        let client = &self.shared.clients[&Component::Audit];
        match client.call(ComponentRequest::Audit(request)).await {
            Ok(ComponentResponse::Audit(AuditResponse::Entries(entries))) => {
                ControlResponse::AuditEntries(entries)
            }
            Ok(ComponentResponse::Audit(AuditResponse::Verified(v))) => {
                ControlResponse::AuditVerified(v)
            }
            Ok(ComponentResponse::Error(e)) => ControlResponse::Error(e),
            Ok(other) => WireError::new(
                ErrorCode::Internal,
                format!("unexpected answer from the audit trail: {other:?}"),
            )
            .into(),
            Err(e) => WireError::new(
                ErrorCode::Unavailable,
                format!("the audit trail is unreachable: {e}"),
            )
            .into(),
        }
    }

    /// Relays a vault operation to the gateway, which owns the vault.
    async fn gateway(&self, request: GatewayRequest) -> ControlResponse {
        let client = &self.shared.clients[&Component::Gateway];
        match client.call(ComponentRequest::Gateway(request)).await {
            Ok(ComponentResponse::Gateway(GatewayResponse::Secrets(list))) => {
                ControlResponse::Secrets(list)
            }
            Ok(ComponentResponse::Gateway(GatewayResponse::SecretStored { name, version })) => {
                ControlResponse::SecretStored { name, version }
            }
            Ok(ComponentResponse::Gateway(GatewayResponse::Access(r))) => {
                ControlResponse::Access(r)
            }
            Ok(ComponentResponse::Gateway(GatewayResponse::Replies(r))) => {
                ControlResponse::Replies(r)
            }
            Ok(ComponentResponse::Gateway(GatewayResponse::LocalInbox(r))) => {
                ControlResponse::ChatInbox(r)
            }
            Ok(ComponentResponse::Gateway(GatewayResponse::Agent(r))) => ControlResponse::Agent(r),
            Ok(ComponentResponse::Error(e)) => ControlResponse::Error(e),
            Ok(other) => WireError::new(
                ErrorCode::Internal,
                format!("unexpected answer from the gateway: {other:?}"),
            )
            .into(),
            Err(e) => WireError::new(
                ErrorCode::Unavailable,
                format!("the gateway is unreachable: {e}"),
            )
            .into(),
        }
    }

    /// `coworkctl doctor`: gathers the snapshot (each part read on its own,
    /// so one unreachable component leaves the rest of the checklist) and
    /// runs the checks on it.
    async fn doctor(&self) -> crate::doctor::Report {
        fn failed(r: ControlResponse) -> String {
            match r {
                ControlResponse::Error(e) => e.message,
                other => format!("unexpected answer: {other:?}"),
            }
        }
        let config = self.shared.config();
        let config_update_state = config.update.state_dir.clone();
        let update = super::updates::status(config.update.clone(), self.shared.audit.clone()).await;
        let audit = match self.audit(AuditRequest::Verify).await {
            ControlResponse::AuditVerified(v) => Ok(v),
            other => Err(failed(other)),
        };
        let access = |request| GatewayRequest::Access {
            actor: "doctor".to_string(),
            request,
        };
        let users = match self
            .gateway(access(AccessRequest::UsersList { channel: None }))
            .await
        {
            ControlResponse::Access(AccessResponse::Users(u)) => Ok(u),
            other => Err(failed(other)),
        };
        let pairing = match self
            .gateway(access(AccessRequest::PairList { channel: None }))
            .await
        {
            ControlResponse::Access(AccessResponse::PairingCodes(c)) => Ok(c),
            other => Err(failed(other)),
        };
        let channels = match self.shared.clients[&Component::Gateway]
            .call(ComponentRequest::Gateway(GatewayRequest::ChannelStates))
            .await
        {
            Ok(ComponentResponse::Gateway(GatewayResponse::ChannelStates(c))) => Ok(c),
            Ok(ComponentResponse::Error(e)) => Err(e.message),
            Ok(other) => Err(format!("unexpected answer: {other:?}")),
            Err(e) => Err(format!("the gateway is unreachable: {e}")),
        };
        let secrets = match self.gateway(GatewayRequest::SecretList).await {
            ControlResponse::Secrets(l) => Ok(l),
            other => Err(failed(other)),
        };
        let snapshot = crate::doctor::Snapshot {
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            keystore: self.shared.keys.status(),
            config,
            update,
            audit,
            users,
            pairing,
            secrets,
            channels,
            feed: crate::update::feed::FeedState::load(&config_update_state),
            files: self.state_files(),
        };
        crate::doctor::run(&snapshot)
    }

    /// The state directories, the owner's settings and the runtime directory,
    /// with which of them hold secrets.
    fn state_files(&self) -> Vec<crate::doctor::FileMode> {
        use crate::doctor::FileMode;
        let p = &self.shared.paths;
        let mut files = vec![
            FileMode::of(&p.state_dir, false),
            FileMode::of(&p.supervisor_state_dir(), true),
            FileMode::of(&p.owner_settings(), false),
            FileMode::of(&p.runtime_dir, false),
        ];
        if let Some(dir) = p.owner_settings().parent() {
            files.push(FileMode::of(dir, false));
        }
        for c in Component::START_ORDER {
            let dir = p.component_state_dir(c);
            if dir.exists() {
                files.push(FileMode::of(&dir, c == Component::Gateway));
            }
        }
        files
    }
}

impl Service for Control {
    type Request = ControlRequest;
    type Response = ControlResponse;

    fn role(&self) -> Role {
        Role::Supervisor
    }

    async fn handle(&self, peer: Peer, request: ControlRequest) -> ControlResponse {
        let actor = if peer.role == Role::Admin {
            "admin-page".to_string()
        } else {
            format!("coworkctl:uid={}", peer.cred.uid)
        };
        let audit = &self.shared.audit;
        match request {
            ControlRequest::Status => ControlResponse::Status(self.shared.report()),
            ControlRequest::Doctor => ControlResponse::Doctor(self.doctor().await),
            ControlRequest::Reload => match super::settings::reload(&self.shared, &actor).await {
                Ok(report) => ControlResponse::Reloaded(report),
                Err(problems) => WireError::new(ErrorCode::BadRequest, problems).into(),
            },
            ControlRequest::Settings(SettingsRequest::Show) => ControlResponse::Settings(
                SettingsResponse::View(super::settings::view(&self.shared)),
            ),
            ControlRequest::Settings(SettingsRequest::Change {
                changes,
                expected_version,
            }) => ControlResponse::Settings(
                super::settings::change(&self.shared, &actor, changes, expected_version).await,
            ),
            ControlRequest::Settings(SettingsRequest::StoreCa {
                key,
                pem,
                expected_version,
            }) => ControlResponse::Settings(
                super::settings::store_ca(&self.shared, &actor, key, pem, expected_version).await,
            ),
            ControlRequest::AuditTail(query) => self.audit(AuditRequest::Tail(query)).await,
            ControlRequest::AuditVerify => self.audit(AuditRequest::Verify).await,
            ControlRequest::UpdateStatus => {
                let settings = self.shared.config().update;
                match super::updates::status(settings, self.shared.audit.clone()).await {
                    Ok(v) => ControlResponse::Update(v),
                    Err(e) => WireError::new(ErrorCode::BadRequest, e).into(),
                }
            }
            ControlRequest::UpdateCheck => {
                let settings = self.shared.config().update;
                let result =
                    super::updates::check(settings, self.shared.audit.clone(), actor).await;
                match serde_json::to_value(&result) {
                    Ok(v) => ControlResponse::Update(v),
                    Err(e) => WireError::new(ErrorCode::Internal, e.to_string()).into(),
                }
            }
            ControlRequest::UpdateApply { path } if crate::update::download::is_url(&path) => {
                let settings = self.shared.config().update;
                match super::updates::apply_url(settings, self.shared.audit.clone(), actor, &path)
                    .await
                {
                    Ok(v) => ControlResponse::Update(v),
                    Err(e) => WireError::new(ErrorCode::BadRequest, e).into(),
                }
            }
            ControlRequest::UpdateApply { path } => {
                let settings = self.shared.config().update;
                let path = match bundle_path(&path, peer.cred.uid, settings.writer_socket.is_some())
                {
                    Ok(p) => p,
                    Err(e) => return WireError::new(ErrorCode::BadRequest, e).into(),
                };
                match super::updates::apply(settings, self.shared.audit.clone(), actor, path).await
                {
                    Ok(v) => ControlResponse::Update(v),
                    Err(e) => WireError::new(ErrorCode::BadRequest, e).into(),
                }
            }
            ControlRequest::Admin(request) => {
                let client = &self.shared.clients[&Component::Admin];
                match client.call(ComponentRequest::Admin(request)).await {
                    Ok(ComponentResponse::Admin(r)) => ControlResponse::Admin(r),
                    Ok(ComponentResponse::Error(e)) => ControlResponse::Error(e),
                    Ok(other) => WireError::new(
                        ErrorCode::Internal,
                        format!("unexpected answer from the admin page: {other:?}"),
                    )
                    .into(),
                    Err(e) => WireError::new(
                        ErrorCode::Unavailable,
                        format!("the admin page is unreachable: {e}"),
                    )
                    .into(),
                }
            }
            ControlRequest::SecretSet { name, value } => {
                let r = self
                    .gateway(GatewayRequest::SecretSet {
                        name: name.clone(),
                        value,
                    })
                    .await;
                if let ControlResponse::SecretStored { version, .. } = &r {
                    audit
                        .record(
                            "secret.stored",
                            &actor,
                            &name,
                            serde_json::json!({"version": version}),
                        )
                        .await;
                }
                r
            }
            ControlRequest::SecretList => self.gateway(GatewayRequest::SecretList).await,
            ControlRequest::Access(request) => {
                self.gateway(GatewayRequest::Access { actor, request })
                    .await
            }
            // The kernel vouches for the sender: the local channel's identity is
            // the peer's uid, never something the client says.
            ControlRequest::Chat { text } => {
                self.gateway(GatewayRequest::LocalMessage {
                    uid: peer.cred.uid,
                    text,
                })
                .await
            }
            ControlRequest::ChatPoll => {
                self.gateway(GatewayRequest::LocalPoll { uid: peer.cred.uid })
                    .await
            }
            // Tasks and approvals belong to the gateway's agent runtime; the
            // actor (who approved, who cancelled) is the caller's uid.
            ControlRequest::Agent(request) => {
                self.gateway(GatewayRequest::Agent { actor, request }).await
            }
            ControlRequest::SecretDelete { name } => {
                match self
                    .gateway(GatewayRequest::SecretDelete { name: name.clone() })
                    .await
                {
                    ControlResponse::Secrets(_) => {
                        audit
                            .record("secret.deleted", &actor, &name, serde_json::json!({}))
                            .await;
                        ControlResponse::Done
                    }
                    other => other,
                }
            }
            ControlRequest::SecretRotateMaster => {
                let gateway = &self.shared.clients[&Component::Gateway];
                let audit_trail = &self.shared.clients[&Component::Audit];
                match self.shared.keys.rotate(gateway, audit_trail).await {
                    Ok(secrets) => {
                        audit
                            .record(
                                "secret.master_rotated",
                                &actor,
                                "",
                                serde_json::json!({"secrets": secrets}),
                            )
                            .await;
                        // Codes are kept only as hashes under a key derived
                        // from the old master: they can no longer redeem, so
                        // they are cancelled (audited) and the answer says so.
                        let codes = match self
                            .gateway(GatewayRequest::Access {
                                actor: actor.clone(),
                                request: AccessRequest::PairCancelAll { channel: None },
                            })
                            .await
                        {
                            ControlResponse::Access(AccessResponse::Changed(n)) => Some(n),
                            other => {
                                tracing::error!(answer = ?other, "could not cancel the pairing codes issued before the master key rotation");
                                None
                            }
                        };
                        // Everyone gets keys derived from the new master.
                        for c in Component::START_ORDER {
                            if let Err(e) =
                                self.shared.keys.install(c, &self.shared.clients[&c]).await
                            {
                                tracing::error!(child = c.name(), error = %e, "{c}: could not receive its new keys; restarting it");
                                self.shared.kill(c);
                            }
                        }
                        ControlResponse::Rotated {
                            secrets,
                            pairing_codes_cancelled: codes,
                        }
                    }
                    Err(e) => WireError::new(ErrorCode::Internal, format!("{e:#}")).into(),
                }
            }
        }
    }
}

/// The supervisor reads the bundle as root: only an absolute path to a regular
/// file the caller (or root) owns is accepted, not a symlink, not a device. A
/// file that is not a bundle is refused at its header; nothing of its content
/// is shown. (Callers are members of cowork-admin, the appliance's operators.)
fn bundle_path(path: &str, uid: u32, via_writer: bool) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let p = std::path::PathBuf::from(path);
    if !p.is_absolute() {
        return Err(format!("{path:?} is not an absolute path"));
    }
    // The supervisor and the update writer each have private /tmp and /var/tmp
    // and no /home or /root: a bundle there is invisible to them.
    if via_writer
        && ["/tmp", "/var/tmp", "/home", "/root"]
            .iter()
            .any(|d| p.starts_with(d))
    {
        return Err(format!(
            "{path}: /tmp, /var/tmp, /home and /root are private to each service; put the bundle elsewhere, readable by root (e.g. under /var/lib or on a mounted medium)"
        ));
    }
    let meta = std::fs::symlink_metadata(&p).map_err(|e| format!("{path}: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!(
            "{path} is owned by uid {}, not by you (uid {uid}) or root",
            meta.uid()
        ));
    }
    Ok(p)
}
