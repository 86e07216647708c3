//! The admin page inside the appliance: its [`AdminBackend`] over IPC (pairing
//! and users from the gateway, the trail from the audit component, health from
//! the supervisor's status updates) and the component role that starts the page
//! once the supervisor has sent the TLS key-wrapping key.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backend::{
    AdminBackend, AuditEntry, AuditVerdict, BackendError, BackendErrorKind, BackendFuture,
    ChannelMode, ComponentHealth, Dashboard, IssuedCode, PairingListing, Revocation, UploadTarget,
    gateway_id,
};
use super::{AdminHandle, AdminKeys, AdminServer, AdminWebSettings};
use crate::config::{AccessMode, Config, Profile};
use crate::ipc::{
    AccessRequest, AccessResponse, AdminInfo, AdminRequest, AdminResponse, AgentRequest,
    AgentResponse, ApprovalListing, AuditAppend, AuditQuery, AuditRequest, AuditResponse, Client,
    Component, ComponentRequest, ComponentResponse, ComponentState, ControlRequest,
    ControlResponse, ErrorCode, GatewayRequest, GatewayResponse, KeyBundle, Role, StatusReport,
    TaskListing, UserListing, WireError,
};
use crate::keystore::Purpose;
use crate::paths::Paths;

type ComponentClient = Client<ComponentRequest, ComponentResponse>;

/// The admin page's view of the rest of the appliance, all over IPC.
#[derive(Debug)]
pub struct ApplianceBackend {
    gateway: ComponentClient,
    audit: ComponentClient,
    /// The supervisor's `updates.sock` (update status and apply).
    updates: crate::ipc::Client<ControlRequest, ControlResponse>,
    upload: UploadTarget,
    status: Arc<Mutex<Option<StatusReport>>>,
    /// The configuration files: read again for the channel list and the
    /// guard tester (settings change without this component restarting).
    paths: Paths,
    /// The last configuration read (used when the files cannot be read).
    config: Mutex<Config>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn wire(e: WireError) -> BackendError {
    let kind = match e.code {
        ErrorCode::NotFound => BackendErrorKind::NotFound,
        ErrorCode::BadRequest | ErrorCode::Malformed | ErrorCode::TooLarge => {
            BackendErrorKind::BadRequest
        }
        ErrorCode::Unavailable => BackendErrorKind::Unavailable,
        ErrorCode::Forbidden | ErrorCode::Internal => BackendErrorKind::Internal,
    };
    BackendError::new(kind, e.message)
}

fn unreachable(what: &str, e: crate::ipc::IpcError) -> BackendError {
    BackendError::new(
        BackendErrorKind::Unavailable,
        format!("the {what} is not reachable right now ({e}); try again in a moment"),
    )
}

/// The gateway's answer to a revocation.
fn revocation(answer: AccessResponse) -> Result<Revocation, BackendError> {
    match answer {
        AccessResponse::Revoked {
            users,
            tasks_cancelled,
            approvals_denied,
        } => Ok(Revocation {
            users: usize::try_from(users).unwrap_or(usize::MAX),
            tasks_cancelled,
            approvals_denied,
        }),
        _ => Err(unexpected("gateway")),
    }
}

fn unexpected(what: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Internal,
        format!("unexpected answer from the {what}"),
    )
}

fn mode_name(m: AccessMode) -> &'static str {
    match m {
        AccessMode::Pairing => "pairing",
        AccessMode::Allowlist => "allowlist",
        AccessMode::Open => "open",
        AccessMode::Disabled => "disabled",
    }
}

fn rfc3339_to_unix(s: &str) -> u64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .unwrap_or(0)
}

fn unix_to_rfc3339(secs: u64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

impl ApplianceBackend {
    pub fn new(
        config: &Config,
        paths: &Paths,
        status: Arc<Mutex<Option<StatusReport>>>,
    ) -> ApplianceBackend {
        let timeout = Duration::from_secs(10);
        ApplianceBackend {
            gateway: Client::new(
                paths.component_socket(Component::Gateway),
                Role::Admin,
                timeout,
            ),
            audit: Client::new(
                paths.component_socket(Component::Audit),
                Role::Admin,
                timeout,
            ),
            updates: Client::new(paths.updates_socket(), Role::Admin, timeout),
            upload: UploadTarget {
                dir: paths.upload_dir(),
                max_bytes: config.update.max_bundle_bytes,
            },
            status,
            paths: paths.clone(),
            config: Mutex::new(config.clone()),
        }
    }

    /// The configuration as the files say now (the owner's settings included).
    fn current_config(&self) -> Config {
        match self.paths.load_config() {
            Ok(loaded) => {
                *lock(&self.config) = loaded.config.clone();
                loaded.config
            }
            Err(_) => lock(&self.config).clone(),
        }
    }

    /// A settings or secrets request to the supervisor (through updates.sock);
    /// applying may restart components and wait for them.
    async fn control(&self, request: ControlRequest) -> Result<ControlResponse, BackendError> {
        match self
            .updates
            .call_with_timeout(request, Duration::from_secs(90))
            .await
        {
            Ok(ControlResponse::Error(e)) => Err(wire(e)),
            Ok(r) => Ok(r),
            Err(e) => Err(unreachable("supervisor", e)),
        }
    }

    /// An update request to the supervisor; an apply may take minutes.
    async fn update_call(
        &self,
        request: ControlRequest,
    ) -> Result<serde_json::Value, BackendError> {
        match self
            .updates
            .call_with_timeout(request, Duration::from_secs(3600))
            .await
        {
            Ok(ControlResponse::Update(v)) => Ok(v),
            Ok(ControlResponse::Error(e)) => Err(wire(e)),
            Ok(_) => Err(unexpected("supervisor")),
            Err(e) => Err(unreachable("supervisor", e)),
        }
    }

    /// Tasks and approvals from the gateway's agent runtime; `None` when the
    /// gateway answers that it has none (no `[agent]` configured).
    async fn agent(
        &self,
        actor: &str,
        request: AgentRequest,
    ) -> Result<Option<AgentResponse>, BackendError> {
        let request = ComponentRequest::Gateway(GatewayRequest::Agent {
            actor: actor.to_string(),
            request,
        });
        match self.gateway.call(request).await {
            Ok(ComponentResponse::Gateway(GatewayResponse::Agent(r))) => Ok(Some(r)),
            Ok(ComponentResponse::Error(e)) if e.code == ErrorCode::Unavailable => Ok(None),
            Ok(ComponentResponse::Error(e)) => Err(wire(e)),
            Ok(_) => Err(unexpected("gateway")),
            Err(e) => Err(unreachable("gateway", e)),
        }
    }

    async fn access(
        &self,
        actor: &str,
        request: AccessRequest,
    ) -> Result<AccessResponse, BackendError> {
        let request = ComponentRequest::Gateway(GatewayRequest::Access {
            actor: actor.to_string(),
            request,
        });
        match self.gateway.call(request).await {
            Ok(ComponentResponse::Gateway(GatewayResponse::Access(r))) => Ok(r),
            Ok(ComponentResponse::Error(e)) => Err(wire(e)),
            Ok(_) => Err(unexpected("gateway")),
            Err(e) => Err(unreachable("gateway", e)),
        }
    }

    async fn audit_call(&self, request: AuditRequest) -> Result<AuditResponse, BackendError> {
        match self.audit.call(ComponentRequest::Audit(request)).await {
            Ok(ComponentResponse::Audit(r)) => Ok(r),
            Ok(ComponentResponse::Error(e)) => Err(wire(e)),
            Ok(_) => Err(unexpected("audit trail")),
            Err(e) => Err(unreachable("audit trail", e)),
        }
    }

    fn dashboard(&self) -> Dashboard {
        let report = lock(&self.status).clone();
        let mut warnings = Vec::new();
        let config = self.current_config();
        let channels = config
            .channels
            .iter()
            .map(|(name, c)| {
                for (ctx, mode) in [("direct messages", c.dm), ("groups", c.group)] {
                    if c.enabled && mode == AccessMode::Open {
                        warnings.push(format!(
                            "{name}: {ctx} are in open mode — anyone can use the assistant (development profile)"
                        ));
                    }
                }
                ChannelMode {
                    name: name.clone(),
                    enabled: c.enabled,
                    dm_mode: mode_name(c.dm).to_string(),
                    group_mode: mode_name(c.group).to_string(),
                }
            })
            .collect();
        if config.profile == Profile::Development {
            warnings.push("development profile: not for production use".to_string());
        }
        let Some(report) = report else {
            warnings.push("no status from the supervisor yet; refresh in a few seconds".into());
            return Dashboard {
                components: Vec::new(),
                keystore_tier: "unknown".into(),
                version: crate::VERSION.to_string(),
                channels,
                warnings,
                stores: Vec::new(),
            };
        };
        if report.keystore.starts_with("file") {
            warnings.push(
                "the master key is protected by a file on disk, not a TPM: anyone who copies the disk gets the keys"
                    .to_string(),
            );
        }
        if report.degraded {
            // One warning per cause (a crash loop, a full disk, a file from a
            // newer image), in the supervisor's words.
            for why in &report.degraded_because {
                warnings.push(format!("The appliance is degraded: {why}"));
            }
            if report.degraded_because.is_empty() {
                warnings.push("the appliance is degraded".into());
            }
        }
        let components = report
            .components
            .iter()
            .map(|c| {
                let detail = c
                    .summary
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", c.state).to_lowercase());
                if detail.contains("WEAKER") || detail.contains("REFUSING") {
                    warnings.push(format!("{}: {detail}", c.component.name()));
                }
                ComponentHealth {
                    name: c.component.name().to_string(),
                    up: c.state == ComponentState::Up,
                    detail,
                }
            })
            .collect();
        Dashboard {
            components,
            keystore_tier: report.keystore.clone(),
            version: report.version.clone(),
            channels,
            warnings,
            stores: report.stores.clone(),
        }
    }
}

fn no_agent() -> BackendError {
    BackendError::new(
        BackendErrorKind::NotFound,
        "no LLM provider is configured on this appliance, so there are no tasks or approvals",
    )
}

impl AdminBackend for ApplianceBackend {
    fn status(&self) -> BackendFuture<'_, Dashboard> {
        Box::pin(async move { Ok(self.dashboard()) })
    }

    fn pairing_issue(
        &self,
        channel: String,
        ttl_secs: Option<u64>,
        issuer: String,
    ) -> BackendFuture<'_, IssuedCode> {
        Box::pin(async move {
            match self
                .access(&issuer, AccessRequest::PairNew { channel, ttl_secs })
                .await?
            {
                AccessResponse::PairingCode(c) => Ok(IssuedCode {
                    id: u64::try_from(c.id).unwrap_or(0),
                    channel: c.channel.clone(),
                    code: c.code.clone(),
                    expires_at: u64::try_from(c.expires_at).unwrap_or(0),
                }),
                _ => Err(unexpected("gateway")),
            }
        })
    }

    fn pairing_list(&self) -> BackendFuture<'_, Vec<PairingListing>> {
        Box::pin(async move {
            match self
                .access("admin", AccessRequest::PairList { channel: None })
                .await?
            {
                AccessResponse::PairingCodes(codes) => Ok(codes
                    .into_iter()
                    .map(|c| PairingListing {
                        id: u64::try_from(c.id).unwrap_or(0),
                        channel: c.channel,
                        issued_at: u64::try_from(c.issued_at).unwrap_or(0),
                        expires_at: u64::try_from(c.expires_at).unwrap_or(0),
                    })
                    .collect()),
                _ => Err(unexpected("gateway")),
            }
        })
    }

    fn pairing_cancel(&self, id: u64) -> BackendFuture<'_, bool> {
        Box::pin(async move {
            let id = i64::try_from(id)
                .map_err(|_| BackendError::new(BackendErrorKind::BadRequest, "id out of range"))?;
            match self
                .access("admin:owner", AccessRequest::PairCancel { id })
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.kind == BackendErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn pairing_cancel_all(&self) -> BackendFuture<'_, usize> {
        Box::pin(async move {
            match self
                .access(
                    "admin:owner",
                    AccessRequest::PairCancelAll { channel: None },
                )
                .await?
            {
                AccessResponse::Changed(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => Err(unexpected("gateway")),
            }
        })
    }

    fn lockouts(&self) -> BackendFuture<'_, Vec<crate::ipc::LockoutListing>> {
        Box::pin(async move {
            match self.access("admin", AccessRequest::LockoutsList).await? {
                AccessResponse::Lockouts(list) => Ok(list),
                _ => Err(unexpected("gateway")),
            }
        })
    }

    fn lockout_clear(&self, channel: String, sender: String, by: String) -> BackendFuture<'_, u64> {
        Box::pin(async move {
            let request = AccessRequest::LockoutsClear {
                channel: Some(channel),
                sender: Some(sender),
            };
            match self.access(&format!("admin:{by}"), request).await? {
                AccessResponse::Changed(n) => Ok(n),
                _ => Err(unexpected("gateway")),
            }
        })
    }

    fn users_list(&self, channel: Option<String>) -> BackendFuture<'_, Vec<UserListing>> {
        Box::pin(async move {
            match self
                .access("admin", AccessRequest::UsersList { channel })
                .await?
            {
                AccessResponse::Users(users) => Ok(users),
                _ => Err(unexpected("gateway")),
            }
        })
    }

    fn user_revoke(&self, channel: String, sender: String) -> BackendFuture<'_, Revocation> {
        Box::pin(async move {
            let answer = self
                .access("admin:owner", AccessRequest::UserRevoke { channel, sender })
                .await?;
            revocation(answer)
        })
    }

    fn users_revoke_all(&self, channel: Option<String>) -> BackendFuture<'_, Revocation> {
        Box::pin(async move {
            let answer = self
                .access("admin:owner", AccessRequest::UsersRevokeAll { channel })
                .await?;
            revocation(answer)
        })
    }

    fn tasks_list(&self) -> BackendFuture<'_, Vec<TaskListing>> {
        Box::pin(async move {
            match self
                .agent("admin", AgentRequest::TasksList { limit: 200 })
                .await?
            {
                Some(AgentResponse::Tasks(t)) => Ok(t),
                // No [agent] configured: no tasks, not an error page.
                None => Ok(Vec::new()),
                Some(_) => Err(unexpected("gateway")),
            }
        })
    }

    fn task_cancel(&self, id: u64, force: bool) -> BackendFuture<'_, bool> {
        Box::pin(async move {
            let request = AgentRequest::TaskCancel {
                id: gateway_id('t', id),
                force,
            };
            match self.agent("admin:owner", request).await {
                Ok(Some(AgentResponse::Done(_))) => Ok(true),
                Ok(Some(_)) => Err(unexpected("gateway")),
                Ok(None) => Err(no_agent()),
                // Already ended, or not live without force.
                Err(e) if e.kind == BackendErrorKind::BadRequest => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn approvals_list(&self) -> BackendFuture<'_, Vec<ApprovalListing>> {
        Box::pin(async move {
            match self.agent("admin", AgentRequest::ApprovalsList).await? {
                Some(AgentResponse::Approvals(a)) => Ok(a),
                None => Ok(Vec::new()),
                Some(_) => Err(unexpected("gateway")),
            }
        })
    }

    fn approval_decide(&self, id: u64, approve: bool, by: String) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let request = AgentRequest::ApprovalDecide {
                id: gateway_id('a', id),
                approve,
            };
            // The trail says the answer came from the admin page, and from whom.
            match self.agent(&format!("admin:{by}"), request).await? {
                Some(AgentResponse::Done(_)) => Ok(()),
                Some(_) => Err(unexpected("gateway")),
                None => Err(no_agent()),
            }
        })
    }

    fn audit_tail(
        &self,
        kind: Option<String>,
        since: Option<u64>,
        limit: u32,
    ) -> BackendFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let query = AuditQuery {
                kind,
                since: since.and_then(unix_to_rfc3339),
                after_seq: None,
                limit,
            };
            match self.audit_call(AuditRequest::Tail(query)).await? {
                AuditResponse::Entries(entries) => Ok(entries
                    .into_iter()
                    .map(|e| AuditEntry {
                        seq: e.seq,
                        time: rfc3339_to_unix(&e.time),
                        component: e.component,
                        kind: e.kind,
                        actor: e.actor,
                        subject: e.subject,
                        payload: e.payload,
                    })
                    .collect()),
                _ => Err(unexpected("audit trail")),
            }
        })
    }

    fn audit_verify(&self) -> BackendFuture<'_, AuditVerdict> {
        Box::pin(async move {
            match self.audit_call(AuditRequest::Verify).await? {
                AuditResponse::Verified(v) => Ok(AuditVerdict {
                    intact: v.intact,
                    entries: v.entries,
                    first_bad_seq: v.first_bad_seq,
                    detail: v.detail,
                }),
                _ => Err(unexpected("audit trail")),
            }
        })
    }

    fn audit_record(
        &self,
        kind: String,
        actor: String,
        subject: String,
        payload: serde_json::Value,
    ) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            // Waits until the entry is durable: admin actions are few and matter.
            let entry = AuditAppend {
                kind,
                actor,
                subject,
                payload,
            };
            match self.audit_call(AuditRequest::Append(entry)).await? {
                AuditResponse::Appended { .. } => Ok(()),
                _ => Err(unexpected("audit trail")),
            }
        })
    }

    fn update_status(&self) -> BackendFuture<'_, serde_json::Value> {
        Box::pin(async move { self.update_call(ControlRequest::UpdateStatus).await })
    }

    fn doctor(&self) -> BackendFuture<'_, crate::doctor::Report> {
        Box::pin(async move {
            // Through updates.sock, like the update requests: the checks may
            // verify the whole audit trail, so the answer may take a while.
            match self
                .updates
                .call_with_timeout(ControlRequest::Doctor, Duration::from_secs(120))
                .await
            {
                Ok(ControlResponse::Doctor(r)) => Ok(r),
                Ok(ControlResponse::Error(e)) => Err(wire(e)),
                Ok(_) => Err(unexpected("supervisor")),
                Err(e) => Err(unreachable("supervisor", e)),
            }
        })
    }

    fn update_check(&self) -> BackendFuture<'_, serde_json::Value> {
        Box::pin(async move { self.update_call(ControlRequest::UpdateCheck).await })
    }

    fn update_apply_url(&self, url: String) -> BackendFuture<'_, serde_json::Value> {
        Box::pin(async move {
            self.update_call(ControlRequest::UpdateApply { path: url })
                .await
        })
    }

    fn update_upload(&self) -> UploadTarget {
        self.upload.clone()
    }

    fn update_apply(&self, bundle: PathBuf) -> BackendFuture<'_, serde_json::Value> {
        Box::pin(async move {
            let path = bundle.display().to_string();
            self.update_call(ControlRequest::UpdateApply { path }).await
        })
    }

    fn secret_names(&self) -> BackendFuture<'_, Vec<String>> {
        Box::pin(async move {
            match self
                .gateway
                .call(ComponentRequest::Gateway(GatewayRequest::SecretList))
                .await
            {
                Ok(ComponentResponse::Gateway(GatewayResponse::Secrets(list))) => {
                    Ok(list.into_iter().map(|s| s.name).collect())
                }
                Ok(ComponentResponse::Error(e)) => Err(wire(e)),
                Ok(_) => Err(unexpected("gateway")),
                Err(e) => Err(unreachable("gateway", e)),
            }
        })
    }

    fn secrets(&self) -> BackendFuture<'_, Vec<crate::ipc::SecretListing>> {
        Box::pin(async move {
            match self.control(ControlRequest::SecretList).await? {
                ControlResponse::Secrets(list) => Ok(list),
                _ => Err(unexpected("supervisor")),
            }
        })
    }

    fn secret_set(&self, name: String, value: crate::ipc::SecretBytes) -> BackendFuture<'_, u32> {
        Box::pin(async move {
            match self
                .control(ControlRequest::SecretSet { name, value })
                .await?
            {
                ControlResponse::SecretStored { version, .. } => Ok(version),
                _ => Err(unexpected("supervisor")),
            }
        })
    }

    fn secret_delete(&self, name: String) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            match self.control(ControlRequest::SecretDelete { name }).await? {
                ControlResponse::Done => Ok(()),
                _ => Err(unexpected("supervisor")),
            }
        })
    }

    fn channel_states(&self) -> BackendFuture<'_, Vec<crate::ipc::ChannelState>> {
        Box::pin(async move {
            match self
                .gateway
                .call(ComponentRequest::Gateway(GatewayRequest::ChannelStates))
                .await
            {
                Ok(ComponentResponse::Gateway(GatewayResponse::ChannelStates(list))) => Ok(list),
                Ok(ComponentResponse::Error(e)) => Err(wire(e)),
                Ok(_) => Err(unexpected("gateway")),
                Err(e) => Err(unreachable("gateway", e)),
            }
        })
    }

    fn settings_show(&self) -> BackendFuture<'_, crate::ipc::SettingsView> {
        Box::pin(async move {
            use crate::ipc::{SettingsRequest, SettingsResponse};
            match self
                .control(ControlRequest::Settings(SettingsRequest::Show))
                .await?
            {
                ControlResponse::Settings(SettingsResponse::View(v)) => Ok(v),
                _ => Err(unexpected("supervisor")),
            }
        })
    }

    fn settings_change(
        &self,
        changes: Vec<crate::ipc::SettingChange>,
        expected_version: Option<String>,
    ) -> BackendFuture<'_, crate::ipc::SettingsResponse> {
        Box::pin(async move {
            let request = ControlRequest::Settings(crate::ipc::SettingsRequest::Change {
                changes,
                expected_version,
            });
            match self.control(request).await? {
                ControlResponse::Settings(r) => Ok(r),
                _ => Err(unexpected("supervisor")),
            }
        })
    }

    fn settings_store_ca(
        &self,
        key: String,
        pem: String,
        expected_version: Option<String>,
    ) -> BackendFuture<'_, crate::ipc::SettingsResponse> {
        Box::pin(async move {
            let request = ControlRequest::Settings(crate::ipc::SettingsRequest::StoreCa {
                key,
                pem,
                expected_version,
            });
            match self.control(request).await? {
                ControlResponse::Settings(r) => Ok(r),
                _ => Err(unexpected("supervisor")),
            }
        })
    }

    fn provider_test(&self, by: String) -> BackendFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let request = ComponentRequest::Gateway(GatewayRequest::Agent {
                actor: format!("admin:{by}"),
                request: AgentRequest::ProviderTest,
            });
            match self.gateway.call(request).await {
                Ok(ComponentResponse::Gateway(GatewayResponse::Agent(AgentResponse::Done(
                    said,
                )))) => Ok(Ok(said)),
                // The provider's failure, or no provider: the sentence is the answer.
                Ok(ComponentResponse::Error(e)) => Ok(Err(e.message)),
                Ok(_) => Err(unexpected("gateway")),
                Err(e) => Err(unreachable("gateway", e)),
            }
        })
    }

    fn guard_check(&self, command: String) -> BackendFuture<'_, String> {
        Box::pin(async move {
            let guard = crate::guard::Guard::from_settings(&self.current_config().guard)
                .map_err(|e| BackendError::new(BackendErrorKind::BadRequest, e.to_string()))?;
            Ok(crate::guard::render_text(&guard.check(&command)))
        })
    }
}

/// The admin component's own work: the page, started when the keys arrive.
#[derive(Debug)]
pub struct AdminRole {
    settings: AdminWebSettings,
    state_dir: PathBuf,
    backend: Arc<ApplianceBackend>,
    /// Filled by the supervisor's status updates.
    pub status: Arc<Mutex<Option<StatusReport>>>,
    running: tokio::sync::Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    handle: AdminHandle,
    addrs: Vec<std::net::SocketAddr>,
    keys: AdminKeys,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl AdminRole {
    pub fn new(config: &Config, paths: &Paths) -> AdminRole {
        let status = Arc::new(Mutex::new(None));
        AdminRole {
            settings: config.admin.clone(),
            state_dir: paths.component_state_dir(Component::Admin),
            backend: Arc::new(ApplianceBackend::new(config, paths, Arc::clone(&status))),
            status,
            running: tokio::sync::Mutex::new(None),
        }
    }

    /// The owner file's schema version, once an owner is set up.
    pub fn stores(&self) -> Vec<crate::ipc::StoreStatus> {
        super::owner::owner_file_schema(&self.state_dir)
            .map(|schema| crate::ipc::StoreStatus {
                name: super::owner::OWNER_FILE.to_string(),
                file: self
                    .state_dir
                    .join(super::owner::OWNER_FILE)
                    .display()
                    .to_string(),
                schema,
            })
            .into_iter()
            .collect()
    }

    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// First keys: bind and serve. Later keys (a master key rotation): re-wrap
    /// the TLS key under the new wrapping key; the certificate stays.
    pub async fn install_keys(&self, bundle: &KeyBundle) -> Result<(), WireError> {
        let wrap = bundle
            .keys
            .iter()
            .find(|k| k.purpose == Purpose::AdminTlsKey)
            .ok_or_else(|| {
                WireError::new(ErrorCode::BadRequest, "key bundle lacks the admin TLS key")
            })?;
        let keys = AdminKeys::new(wrap.bytes);
        let mut running = self.running.lock().await;
        if let Some(r) = running.as_mut() {
            if r.keys.tls_wrap != keys.tls_wrap {
                r.handle.rewrap(keys.clone()).map_err(internal)?;
                r.keys = keys;
                tracing::info!("admin TLS key re-wrapped under the new master key");
            }
            return Ok(());
        }
        let server = match self.bind(keys.clone()).await {
            Err(e @ (super::AdminError::DecryptTlsKey { .. }
            | super::AdminError::MalformedTlsKey { .. })) => {
                // The file cannot be opened with this appliance's keys (restored
                // from elsewhere, or a rotation interrupted): keep it aside and
                // start with a new certificate rather than never start again.
                let path = self.state_dir.join(super::CERT_FILE);
                let aside = path.with_extension("json.unreadable");
                tracing::error!(error = %crate::error_chain(&e), aside = %aside.display(), "admin certificate unreadable; generating a new one");
                std::fs::rename(&path, &aside).map_err(|e| {
                    WireError::new(ErrorCode::Internal, format!("moving {} aside: {e}", path.display()))
                })?;
                let _ = self
                    .backend
                    .audit_record(
                        "admin.cert_regenerated".into(),
                        "admin".into(),
                        String::new(),
                        serde_json::json!({"reason": e.to_string()}),
                    )
                    .await;
                self.bind(keys.clone()).await
            }
            other => other,
        }
        .map_err(|e| match e {
            // Said as it is: `coworkctl status` and the console show it.
            e @ super::AdminError::Bind { .. } => {
                WireError::new(ErrorCode::Unavailable, e.to_string())
            }
            e => internal(e),
        })?;
        let cert = server.certificate();
        let addrs = server.local_addrs();
        for a in &addrs {
            tracing::info!(
                url = %format!("https://{a}/"),
                fingerprint = %cert.fingerprint,
                "admin page: https://{a}/ (certificate SHA-256 {})",
                cert.fingerprint
            );
        }
        if let Ok(Some(token)) = super::setup_token(&self.state_dir) {
            // The owner needs it to set the password; `coworkctl admin setup-token`
            // shows it again. It stops working once the owner exists.
            tracing::warn!("admin page: no owner yet; one-time setup token: {token}");
        }
        let handle = server.handle();
        let (stop, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if let Err(e) = server.run(rx).await {
                tracing::error!(error = %crate::error_chain(&e), "admin page stopped");
            }
        });
        *running = Some(Running {
            handle,
            addrs,
            keys,
            _stop: stop,
        });
        Ok(())
    }

    async fn bind(&self, keys: AdminKeys) -> Result<AdminServer, super::AdminError> {
        AdminServer::bind(
            &self.settings,
            &self.state_dir,
            keys,
            Arc::clone(&self.backend) as Arc<dyn AdminBackend>,
        )
        .await
    }

    pub async fn handle(&self, request: AdminRequest) -> Result<AdminResponse, WireError> {
        let running = self.running.lock().await;
        let Some(r) = running.as_ref() else {
            return Err(WireError::new(
                ErrorCode::Unavailable,
                "the admin page is not running yet (waiting for its keys)",
            ));
        };
        match request {
            AdminRequest::Info => Ok(AdminResponse::Info(self.info(r))),
            AdminRequest::SetupToken => Ok(AdminResponse::SetupToken(
                super::setup_token(&self.state_dir).map_err(internal)?,
            )),
            AdminRequest::RotateCert => {
                let cert = r.handle.rotate_certificate().map_err(internal)?;
                tracing::info!(fingerprint = %cert.fingerprint, "admin certificate rotated; every session logged out");
                let _ = self
                    .backend
                    .audit_record(
                        "admin.cert_rotated".into(),
                        "coworkctl".into(),
                        String::new(),
                        serde_json::json!({"fingerprint": cert.fingerprint}),
                    )
                    .await;
                Ok(AdminResponse::Info(self.info(r)))
            }
        }
    }

    fn info(&self, r: &Running) -> AdminInfo {
        let cert = r.handle.certificate();
        AdminInfo {
            fingerprint: cert.fingerprint,
            not_after: cert.not_after,
            urls: r.addrs.iter().map(|a| format!("https://{a}/")).collect(),
            owner_set: super::owner_exists(&self.state_dir),
        }
    }
}

fn internal(e: super::AdminError) -> WireError {
    WireError::new(ErrorCode::Internal, crate::error_chain(&e))
}
