//! The gateway component's IPC service: the vault, pairing codes and channel
//! users (for the admin page and `coworkctl`), and the `local` channel.
//!
//! Every change an owner makes here (a code issued or cancelled, a user revoked)
//! and every decision on an inbound message goes to the audit trail.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::access::AccessControl;
use super::clock::{Clock, SystemClock};
use super::dispatch::Dispatcher;
use super::error::GatewayError;
use super::inbound::{Context, Inbound, LOCAL_CHANNEL, RawInbound};
use super::outbound::Replies;
use super::pairing::{Pairing, PairingKey};
use super::replay::ReplayGuard;
use super::runner::{self, SecretLookup};
use super::secrets::{VaultCell, key_of, lock};
use super::settings::{GatewaySettings, Profile};
use super::sinks::{AuditEvent, BoxFuture, Task, TaskSink, Trail, TrailWriter};
use super::state_db;
use super::store::{RevokeScope, Store};
use super::tasks::{AgentRuntime, Revoked, RuntimeSetup, VaultSecrets};
use super::transport::webhook::WebhookSettings;
use crate::audit::AuditLog;
use crate::ipc::{
    AccessRequest, AccessResponse, ComponentResponse, ErrorCode, GatewayRequest, GatewayResponse,
    IssuedPairingCode, KeyBundle, LockoutListing, PairingListing, Role, UserListing, WireError,
};
use crate::keystore::Purpose;
use crate::keystore::vault::Vault;

/// Replay window for platform event ids (Slack retries for up to an hour).
const REPLAY_WINDOW_SECS: i64 = 24 * 3600;
const REPLAY_MAX_ENTRIES: i64 = 100_000;

/// The gateway's service: owns `state.db`; holds the keys the supervisor sent.
#[derive(Debug)]
pub struct GatewayService {
    vault: Arc<VaultCell>,
    store: Arc<Store>,
    settings: Arc<GatewaySettings>,
    webhook: WebhookSettings,
    clock: Arc<dyn Clock>,
    access: Arc<AccessControl>,
    replay: Arc<ReplayGuard>,
    /// Pairing needs the code-hashing key, which arrives with the key bundle.
    pairing: Mutex<Option<Arc<Pairing>>>,
    /// Built with the pairing key; every channel's messages go through it.
    dispatcher: Mutex<Option<Arc<Dispatcher>>>,
    transports: Mutex<Option<runner::Running>>,
    /// The audit component behind `trail`, kept for the known-secrets feed.
    audit: Arc<TrailSink>,
    trail: Trail,
    /// Reply paths of the running channels, for replies after the fact.
    replies: Arc<Replies>,
    /// The agent runtime, when `[agent]` is configured.
    agent: Option<(AgentRuntime, Arc<VaultSecrets>)>,
    /// What opening `state.db` migrated, until it is audited.
    migration: Mutex<Option<crate::schema::Migration>>,
    /// `state.db`'s schema version once open (this image's newest, or a newer
    /// one this image can read).
    schema: u32,
}

impl GatewayService {
    /// Opens (creating) `dir/state.db`; refuses settings the profile forbids.
    /// `audit_socket`: where decisions are recorded (`None` in unit tests).
    pub fn open(
        dir: &Path,
        settings: GatewaySettings,
        webhook: WebhookSettings,
        profile: Profile,
        audit_socket: Option<PathBuf>,
    ) -> anyhow::Result<GatewayService> {
        use anyhow::Context as _;
        let path = dir.join(state_db::FILE);
        let (store, migration) = Store::open_migrated(&path)?;
        let store = Arc::new(store);
        // Only now that this image could open it: older copies go once the
        // boot is not on trial (a refused file keeps them for the rollback).
        migration.prune_copies(crate::schema::boot_on_trial(Path::new(
            crate::schema::EFIVARS_DIR,
        )));
        if migration.changed() {
            tracing::info!(
                from = migration.from,
                to = migration.to,
                copy = ?migration.copy,
                "{} migrated from schema {} to {}",
                path.display(),
                migration.from,
                migration.to
            );
        }
        let settings = Arc::new(settings);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let access = Arc::new(
            AccessControl::new(
                Arc::clone(&settings),
                profile,
                Arc::clone(&store),
                Arc::clone(&clock),
            )
            .context("checking the channel settings")?,
        );
        let replay = Arc::new(
            ReplayGuard::new(Arc::clone(&store), REPLAY_WINDOW_SECS, REPLAY_MAX_ENTRIES)
                .context("opening the replay table")?,
        );
        let vault = Arc::new(VaultCell::new(Arc::clone(&store)));
        let audit = Arc::new(TrailSink {
            socket: audit_socket,
            log: OnceLock::new(),
            known: KnownSecretsFeed::new(Arc::clone(&vault)),
        });
        Ok(GatewayService {
            vault,
            store,
            settings,
            webhook,
            clock,
            access,
            replay,
            pairing: Mutex::new(None),
            dispatcher: Mutex::new(None),
            transports: Mutex::new(None),
            trail: Trail::new(Arc::clone(&audit) as Arc<dyn TrailWriter>),
            audit,
            replies: Arc::new(Replies::default()),
            agent: None,
            schema: migration.to,
            migration: Mutex::new(Some(migration)),
        })
    }

    /// `state.db`'s schema version, for `coworkctl status`.
    pub fn stores(&self) -> Vec<crate::ipc::StoreStatus> {
        vec![crate::ipc::StoreStatus {
            name: state_db::FILE.to_string(),
            file: self.store.path().display().to_string(),
            schema: self.schema,
        }]
    }

    /// Audits the migration done at open (`store.migrated`, from → to), once;
    /// called when the runtime (and with it the audit client) is running.
    pub async fn record_migration(&self) {
        let Some(m) = lock(&self.migration).take().filter(|m| m.changed()) else {
            return;
        };
        self.trail
            .record("store.migrated", "gateway", m.name, m.audit_payload())
            .await;
    }

    /// Adds the agent runtime (when `setup` is given: `[agent]` is configured).
    /// Tasks a previous gateway left running are marked interrupted here.
    pub fn with_agent(mut self, setup: Option<RuntimeSetup>) -> anyhow::Result<GatewayService> {
        let Some(setup) = setup else {
            return Ok(self);
        };
        let vault = Arc::new(VaultSecrets::new(Arc::clone(&self.store)));
        let runtime = AgentRuntime::new(
            setup,
            Arc::clone(&vault),
            Arc::clone(&self.store),
            self.trail.clone(),
            Arc::clone(&self.replies),
        )?;
        self.agent = Some((runtime, vault));
        Ok(self)
    }

    /// Keys from the supervisor: the vault key and the pairing-code hashing key.
    pub fn install_keys(&self, bundle: &KeyBundle) -> Result<(), WireError> {
        let vault_key = key_of(bundle, Purpose::Vault)?;
        let pairing_key = key_of(bundle, Purpose::PairingCodeHash)?;
        let pairing = Pairing::new(
            Arc::clone(&self.store),
            PairingKey::from_bytes(*pairing_key.expose()),
            Arc::clone(&self.clock),
            Arc::clone(&self.settings),
        );
        let pairing = Arc::new(pairing);
        self.vault.set_key(Vault::new(vault_key));
        if let Some((_, secrets)) = &self.agent {
            secrets.set_vault(Vault::new(key_of(bundle, Purpose::Vault)?));
        }
        let tasks: Arc<dyn TaskSink> = match &self.agent {
            Some((runtime, _)) => Arc::new(runtime.clone()),
            None => Arc::new(NoProvider),
        };
        *lock(&self.pairing) = Some(Arc::clone(&pairing));
        // New keys after a master key rotation: the running transports hold the
        // old dispatcher (old code-hashing key); stop them, the component starts
        // them again right after.
        if let Some(running) = lock(&self.transports).take() {
            running.stop();
        }
        *lock(&self.dispatcher) = Some(Arc::new(Dispatcher::new(
            Arc::clone(&self.access),
            pairing,
            Arc::clone(&self.replay),
            self.trail.clone(),
            tasks,
            Arc::clone(&self.replies),
            Arc::clone(&self.clock),
        )));
        Ok(())
    }

    /// Starts the configured channel transports (after the keys, since their
    /// tokens live in the vault). A channel that cannot start is logged and
    /// audited; the others run. Called again on reload: when some channel had
    /// failed (e.g. its token was not stored yet), everything is restarted.
    pub async fn start_transports(&self) {
        if let Some((runtime, _)) = &self.agent {
            runtime.announce().await;
        }
        let Some(dispatcher) = lock(&self.dispatcher).clone() else {
            return;
        };
        {
            let mut current = lock(&self.transports);
            match current.as_ref() {
                Some(r) if r.failed.is_empty() => return,
                Some(r) => r.stop(),
                None => {}
            }
            *current = None;
        }
        match runner::start(
            &self.settings,
            &self.webhook,
            dispatcher,
            Arc::clone(&self.vault) as Arc<dyn SecretLookup>,
            &self.replies,
        )
        .await
        {
            Ok(running) => {
                for s in &running.started {
                    tracing::info!(channel = %s.channel, transport = ?s.kind, "channel transport started");
                }
                for (channel, e) in &running.failed {
                    tracing::error!(%channel, error = %e, "channel transport not started (store its secrets with coworkctl secret set, then coworkctl reload)");
                    let mut ev = AuditEvent::new("gateway.transport_failed", "start", channel);
                    ev.detail = Some(super::sinks::audit_detail(&e.to_string()));
                    let _ = self.trail.event(ev).await;
                }
                if let Some(addr) = running.webhook_addr {
                    tracing::info!(%addr, "webhook listener started on {addr}");
                }
                *lock(&self.transports) = Some(running);
            }
            Err(e) => {
                tracing::error!(error = %e, "channel transports not started");
                let mut ev = AuditEvent::new("gateway.transport_failed", "start", "*");
                ev.detail = Some(super::sinks::audit_detail(&e.to_string()));
                let _ = self.trail.event(ev).await;
            }
        }
    }

    /// The webhook listener's bound address, once started (tests).
    pub fn webhook_addr(&self) -> Option<std::net::SocketAddr> {
        lock(&self.transports).as_ref().and_then(|r| r.webhook_addr)
    }

    /// Sends the vault's values to the audit component for redaction (after
    /// the keys are installed; changes are sent by the requests themselves).
    pub async fn send_known_secrets(&self) {
        self.audit.send_known_secrets().await;
    }

    pub fn has_keys(&self) -> bool {
        self.vault.has_key()
    }

    pub async fn handle(&self, request: GatewayRequest) -> ComponentResponse {
        let result = match request {
            GatewayRequest::Access { actor, request } => self
                .access_request(&actor, request)
                .await
                .map(GatewayResponse::Access),
            GatewayRequest::LocalMessage { uid, text } => self
                .local_message(uid, text)
                .await
                .map(GatewayResponse::Replies),
            GatewayRequest::LocalPoll { uid } => {
                let chat = format!("uid:{uid}");
                Ok(GatewayResponse::LocalInbox(match &self.agent {
                    Some((runtime, _)) => runtime.local_inbox(&chat),
                    None => crate::ipc::LocalInbox {
                        replies: self.replies.take_local(&chat),
                        busy: false,
                    },
                }))
            }
            GatewayRequest::Agent { actor, request } => match &self.agent {
                Some((runtime, _)) => runtime
                    .handle(&actor, request)
                    .await
                    .map(GatewayResponse::Agent),
                None => Err(WireError::new(
                    ErrorCode::Unavailable,
                    "no LLM provider is configured on this appliance ([agent] in the configuration), so there are no tasks or approvals",
                )),
            },
            GatewayRequest::ChannelStates => {
                Ok(GatewayResponse::ChannelStates(self.channel_states()))
            }
            vault => match self.vault.request(vault) {
                Ok((answer, changed)) => {
                    if changed {
                        // Redacted from the next entry on: sent before answering.
                        self.audit.send_known_secrets().await;
                        // A channel waiting for this secret starts now.
                        self.start_transports().await;
                    }
                    Ok(answer)
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(r) => ComponentResponse::Gateway(r),
            Err(e) => ComponentResponse::Error(e),
        }
    }

    /// Each configured channel: running, waiting (and why), disabled; and when
    /// it last heard from a user.
    fn channel_states(&self) -> Vec<crate::ipc::ChannelState> {
        let running = lock(&self.transports);
        let users = self.store.list_users(None).unwrap_or_default();
        self.settings
            .channels
            .iter()
            .map(|(name, c)| {
                let failed = running
                    .as_ref()
                    .and_then(|r| r.failed.iter().find(|(n, _)| n == name))
                    .map(|(_, e)| e.to_string());
                let started = running
                    .as_ref()
                    .is_some_and(|r| r.started.iter().any(|s| s.channel == *name));
                let retrying = running.as_ref().and_then(|r| r.problems.get(name));
                let state = if !c.enabled {
                    "disabled"
                } else if failed.is_some() {
                    "waiting"
                } else if retrying.is_some() {
                    "retrying"
                } else if started {
                    "running"
                } else {
                    "none"
                };
                crate::ipc::ChannelState {
                    name: name.clone(),
                    enabled: c.enabled,
                    state: state.to_string(),
                    error: failed.or(retrying),
                    last_message_at: users
                        .iter()
                        .filter(|u| u.channel == *name)
                        .filter_map(|u| u.last_seen)
                        .max(),
                }
            })
            .collect()
    }

    fn pairing(&self) -> Result<Arc<Pairing>, WireError> {
        lock(&self.pairing).clone().ok_or_else(|| {
            WireError::new(
                ErrorCode::Unavailable,
                "the gateway has not received its keys yet",
            )
        })
    }

    fn known_channel(&self, channel: &str) -> Result<(), WireError> {
        if self.settings.channels.contains_key(channel) {
            Ok(())
        } else {
            Err(WireError::new(
                ErrorCode::NotFound,
                format!(
                    "no channel named {:?} is configured (configured: {})",
                    channel.chars().take(64).collect::<String>(),
                    self.settings
                        .channels
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    }

    async fn access_request(
        &self,
        actor: &str,
        request: AccessRequest,
    ) -> Result<AccessResponse, WireError> {
        let now = self.clock.now();
        match request {
            AccessRequest::PairNew { channel, ttl_secs } => {
                self.known_channel(&channel)?;
                let pairing = self.pairing()?;
                let issued = match ttl_secs {
                    Some(ttl) => pairing.issue_with_ttl(&channel, ttl),
                    None => pairing.issue(&channel),
                }
                .map_err(gateway_error)?;
                self.trail
                    .record(
                        "pairing.issued",
                        actor,
                        &channel,
                        serde_json::json!({"id": issued.id, "expires_at": issued.expires_at}),
                    )
                    .await;
                Ok(AccessResponse::PairingCode(IssuedPairingCode {
                    id: issued.id,
                    channel: issued.channel.clone(),
                    code: issued.code.as_str().to_string(),
                    expires_at: issued.expires_at,
                }))
            }
            AccessRequest::PairList { channel } => {
                let codes = self
                    .pairing()?
                    .list(channel.as_deref())
                    .map_err(gateway_error)?;
                Ok(AccessResponse::PairingCodes(
                    codes
                        .into_iter()
                        .map(|c| PairingListing {
                            id: c.id,
                            channel: c.channel,
                            issued_at: c.created_at,
                            expires_at: c.expires_at,
                        })
                        .collect(),
                ))
            }
            AccessRequest::PairCancel { id } => {
                let cancelled = self.pairing()?.cancel(id).map_err(gateway_error)?;
                if !cancelled {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!("no active pairing code with id {id}"),
                    ));
                }
                self.trail
                    .record(
                        "pairing.cancelled",
                        actor,
                        "",
                        serde_json::json!({"id": id}),
                    )
                    .await;
                Ok(AccessResponse::Changed(1))
            }
            AccessRequest::PairCancelAll { channel } => {
                if let Some(c) = &channel {
                    self.known_channel(c)?;
                }
                let pairing = self.pairing()?;
                let mut n = 0u64;
                for code in pairing.list(channel.as_deref()).map_err(gateway_error)? {
                    if pairing.cancel(code.id).map_err(gateway_error)? {
                        n += 1;
                    }
                }
                self.trail
                    .record(
                        "pairing.cancelled_all",
                        actor,
                        channel.as_deref().unwrap_or("*"),
                        serde_json::json!({"codes": n}),
                    )
                    .await;
                Ok(AccessResponse::Changed(n))
            }
            AccessRequest::UsersList { channel } => {
                if let Some(c) = &channel {
                    self.known_channel(c)?;
                }
                let users = self
                    .store
                    .list_users(channel.as_deref())
                    .map_err(gateway_error)?;
                Ok(AccessResponse::Users(
                    users
                        .into_iter()
                        .map(|u| UserListing {
                            channel: u.channel,
                            sender: u.sender,
                            state: u.state,
                            since: u.since,
                            last_seen: u.last_seen,
                            display_name: u.display_name,
                        })
                        .collect(),
                ))
            }
            AccessRequest::UserRevoke { channel, sender } => {
                self.known_channel(&channel)?;
                // Only a sender the channel knows: a typo must not be recorded
                // as a revocation (nor look like one that worked).
                if self
                    .store
                    .user(&channel, &sender)
                    .map_err(gateway_error)?
                    .is_none()
                {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!(
                            "no user {:?} on {channel}; nothing was changed (`coworkctl users list --channel {channel}` shows who is known)",
                            sender.chars().take(128).collect::<String>()
                        ),
                    ));
                }
                let had_access = self
                    .store
                    .revoke_user(&channel, &sender, now)
                    .map_err(gateway_error)?;
                // Access is gone first (no new message gets through), then
                // what the sender had started ends.
                let ended = self.end_revoked(Some(&channel), actor).await;
                self.trail
                    .record(
                        "user.revoked",
                        actor,
                        &format!("{channel}:{sender}"),
                        serde_json::json!({"had_access": had_access,
                        "tasks_cancelled": ended.tasks, "approvals_denied": ended.approvals}),
                    )
                    .await;
                Ok(AccessResponse::Revoked {
                    users: u64::from(had_access),
                    tasks_cancelled: ended.tasks,
                    approvals_denied: ended.approvals,
                })
            }
            AccessRequest::UsersRevokeAll { channel } => {
                let scope = match &channel {
                    Some(c) => {
                        self.known_channel(c)?;
                        RevokeScope::Channel(c)
                    }
                    None => RevokeScope::Everything,
                };
                let n = self.store.revoke_all(scope, now).map_err(gateway_error)?;
                let ended = self.end_revoked(channel.as_deref(), actor).await;
                self.trail
                    .record(
                        "user.revoked_all",
                        actor,
                        channel.as_deref().unwrap_or("*"),
                        serde_json::json!({"users": n,
                        "tasks_cancelled": ended.tasks, "approvals_denied": ended.approvals}),
                    )
                    .await;
                Ok(AccessResponse::Revoked {
                    users: u64::try_from(n).unwrap_or(u64::MAX),
                    tasks_cancelled: ended.tasks,
                    approvals_denied: ended.approvals,
                })
            }
            AccessRequest::LockoutsList => Ok(AccessResponse::Lockouts(
                self.store
                    .lockouts(now)
                    .map_err(gateway_error)?
                    .into_iter()
                    .map(|(channel, sender, until)| LockoutListing {
                        channel,
                        sender,
                        until,
                    })
                    .collect(),
            )),
            AccessRequest::LockoutsClear { channel, sender } => {
                if let Some(c) = &channel {
                    self.known_channel(c)?;
                }
                let n = self
                    .store
                    .clear_lockouts(channel.as_deref(), sender.as_deref(), now)
                    .map_err(gateway_error)?;
                self.trail
                    .record(
                        "pairing.lockouts_cleared",
                        actor,
                        &format!(
                            "{}:{}",
                            channel.as_deref().unwrap_or("*"),
                            sender.as_deref().unwrap_or("*")
                        ),
                        serde_json::json!({"lockouts": n}),
                    )
                    .await;
                Ok(AccessResponse::Changed(
                    u64::try_from(n).unwrap_or(u64::MAX),
                ))
            }
            AccessRequest::IdentityConfirm {
                channel,
                sender,
                safety_number,
            } => {
                self.known_channel(&channel)?;
                self.replies
                    .confirm_identity(&channel, &sender, &safety_number)
                    .await
                    .map_err(|reason| WireError::new(ErrorCode::BadRequest, reason))?;
                self.trail
                    .record(
                        "identity.confirmed",
                        actor,
                        &format!("{channel}:{sender}"),
                        serde_json::json!({"safety_number": safety_number}),
                    )
                    .await;
                Ok(AccessResponse::Changed(1))
            }
            AccessRequest::UserForget { channel, sender } => {
                self.known_channel(&channel)?;
                if !self
                    .store
                    .forget_user(&channel, &sender)
                    .map_err(gateway_error)?
                {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!(
                            "no user {:?} on {channel}; nothing was changed",
                            sender.chars().take(128).collect::<String>()
                        ),
                    ));
                }
                self.trail
                    .record(
                        "user.forgotten",
                        actor,
                        &format!("{channel}:{sender}"),
                        serde_json::json!({}),
                    )
                    .await;
                Ok(AccessResponse::Changed(1))
            }
        }
    }

    /// Ends the tasks and approvals of senders who just lost access on
    /// `channel` (`None`: every channel); nothing without an agent runtime.
    async fn end_revoked(&self, channel: Option<&str>, actor: &str) -> Revoked {
        match &self.agent {
            Some((runtime, _)) => runtime.revoked(channel, actor).await,
            None => Revoked::default(),
        }
    }

    /// One message on the local channel: the same dispatcher as every channel.
    async fn local_message(&self, uid: u32, text: String) -> Result<Vec<String>, WireError> {
        let sender = format!("uid:{uid}");
        let raw = RawInbound {
            channel: LOCAL_CHANNEL.to_string(),
            account: None,
            sender: sender.clone(),
            sender_name: None,
            chat: sender,
            context: Context::Dm,
            mentions_bot: true,
            text,
            attachments: Vec::new(),
        };
        let msg = Inbound::try_from(raw).map_err(gateway_error)?;
        let dispatcher = lock(&self.dispatcher).clone().ok_or_else(|| {
            WireError::new(
                ErrorCode::Unavailable,
                "the gateway has not received its keys yet",
            )
        })?;
        let handled = dispatcher
            .dispatch(None, msg)
            .await
            .map_err(gateway_error)?;
        Ok(handled.reply().map(str::to_string).into_iter().collect())
    }
}

/// The audit component, as the gateway's [`Trail`] writes to it (`None`
/// socket: unit tests, nothing is written).
#[derive(Debug)]
struct TrailSink {
    socket: Option<PathBuf>,
    log: OnceLock<AuditLog>,
    known: KnownSecretsFeed,
}

/// Keeps the audit component's known-secret set equal to the vault: sent
/// after the keys arrive, after every change, and again whenever the
/// connection to the audit component was re-made (a restarted audit
/// component has forgotten them). Values are read from the vault for each
/// send and dropped (zeroized) after it; never logged.
#[derive(Debug)]
struct KnownSecretsFeed {
    vault: Arc<VaultCell>,
    /// `Client::connections()` when the set was last taken; 0 = never.
    synced_connection: AtomicU64,
    /// A send failed or the vault changed: send before the next entry.
    stale: AtomicBool,
    /// One send at a time.
    sending: tokio::sync::Mutex<()>,
}

impl KnownSecretsFeed {
    fn new(vault: Arc<VaultCell>) -> KnownSecretsFeed {
        KnownSecretsFeed {
            vault,
            synced_connection: AtomicU64::new(0),
            stale: AtomicBool::new(true),
            sending: tokio::sync::Mutex::new(()),
        }
    }
}

impl TrailSink {
    fn log(&self) -> Option<&AuditLog> {
        let socket = self.socket.as_ref()?;
        Some(
            self.log
                .get_or_init(|| AuditLog::start(socket.clone(), Role::Gateway)),
        )
    }

    /// Sends the vault's current values to the audit component.
    async fn send_known_secrets(&self) {
        let Some(log) = self.log() else {
            return;
        };
        let _one = self.known.sending.lock().await;
        let values = match self.known.vault.values() {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "known secrets not sent yet");
                return;
            }
        };
        let count = values.len();
        match log.known_secrets(values).await {
            Ok(matched) => {
                self.known
                    .synced_connection
                    .store(log.connections(), Ordering::Release);
                self.known.stale.store(false, Ordering::Release);
                tracing::info!(
                    values = count,
                    matched,
                    "vault values sent to the audit trail for redaction"
                );
            }
            Err(e) => {
                self.known.stale.store(true, Ordering::Release);
                tracing::error!(error = %e, "vault values not sent to the audit trail; retrying before the next entry");
            }
        }
    }

    /// After an entry: re-sends the set when it is stale or the connection
    /// to the audit component is a new one (before the step's effect, e.g. a
    /// command whose output the sandbox appends).
    async fn refresh_known_secrets(&self) {
        let Some(log) = self.log() else {
            return;
        };
        if self.known.stale.load(Ordering::Acquire)
            || log.connections() != self.known.synced_connection.load(Ordering::Acquire)
        {
            self.send_known_secrets().await;
        }
    }
}

impl TrailWriter for TrailSink {
    fn append<'a>(&'a self, entry: crate::ipc::AuditAppend) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(log) = self.log() else {
                return Ok(());
            };
            let appended = log.append(entry).await;
            self.refresh_known_secrets().await;
            appended.map(|_| ())
        })
    }

    fn queue<'a>(&'a self, entry: crate::ipc::AuditAppend) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(log) = self.log() {
                log.record(&entry.kind, &entry.actor, &entry.subject, entry.payload)
                    .await;
            }
        })
    }
}

/// Sent for an authorized message when no `[agent]` is configured.
pub const NO_PROVIDER_REPLY: &str = "Received, but no LLM provider is configured on this \
     appliance, so nothing will be done with this message. The owner can set one up in the \
     [agent] section of the configuration.";

/// Without an `[agent]` section, an authorized message gets a plain sentence
/// saying so, and nothing more.
#[derive(Debug)]
struct NoProvider;

impl TaskSink for NoProvider {
    fn submit<'a>(&'a self, _task: Task) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(std::future::ready(Ok(NO_PROVIDER_REPLY.to_string())))
    }
}

/// Maps access-control errors to wire errors: bad input is the caller's, the
/// rest is ours. Messages name channels and ids, never codes.
fn gateway_error(e: GatewayError) -> WireError {
    let code = match &e {
        GatewayError::IssueCode { .. }
        | GatewayError::ValidateInbound { .. }
        | GatewayError::Settings { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}
