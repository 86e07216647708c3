//! The gateway component's IPC service: the vault, pairing codes and channel
//! users (for the admin page and `coworkctl`), and the `local` channel.
//!
//! Every change an owner makes here (a code issued or cancelled, a user revoked)
//! and every decision on an inbound message goes to the audit trail.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::Connection;

use super::access::{AccessControl, Decision};
use super::clock::{Clock, SystemClock};
use super::error::GatewayError;
use super::inbound::{Context, Inbound, RawInbound};
use super::pairing::{Pairing, PairingKey, RedeemOutcome};
use super::secrets::{key_of, lock, open_db, vault_request};
use super::settings::{GatewaySettings, Profile};
use super::store::{RevokeScope, Store, UserState};
use crate::audit::AuditLog;
use crate::ipc::{
    AccessRequest, AccessResponse, ComponentResponse, ErrorCode, GatewayRequest, GatewayResponse,
    IssuedPairingCode, KeyBundle, PairingListing, Role, UserListing, WireError,
};
use crate::keystore::Purpose;
use crate::keystore::vault::Vault;

/// The name of the channel `coworkctl chat` speaks on.
pub const LOCAL_CHANNEL: &str = "local";

/// What unknown senders are told (at most once per window; never in silent mode).
pub const PAIRING_PROMPT: &str = "This assistant requires pairing. Ask the owner for a pairing code \
     (admin page or `coworkctl pair new`) and send: /pair CODE";

/// The gateway's service: owns `state.db`; holds the keys the supervisor sent.
#[derive(Debug)]
pub struct GatewayService {
    db: Mutex<Connection>,
    vault: Mutex<Option<Vault>>,
    store: Arc<Store>,
    settings: Arc<GatewaySettings>,
    clock: Arc<dyn Clock>,
    access: AccessControl,
    /// Pairing needs the code-hashing key, which arrives with the key bundle.
    pairing: Mutex<Option<Arc<Pairing>>>,
    audit_socket: Option<PathBuf>,
    audit: OnceLock<AuditLog>,
}

impl GatewayService {
    /// Opens (creating) `dir/state.db`; refuses settings the profile forbids.
    /// `audit_socket`: where decisions are recorded (`None` in unit tests).
    pub fn open(
        dir: &Path,
        settings: GatewaySettings,
        profile: Profile,
        audit_socket: Option<PathBuf>,
    ) -> anyhow::Result<GatewayService> {
        use anyhow::Context as _;
        let db = open_db(dir)?;
        let store = Arc::new(Store::open(dir).context("opening the access-control tables")?);
        let settings = Arc::new(settings);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let access = AccessControl::new(
            Arc::clone(&settings),
            profile,
            Arc::clone(&store),
            Arc::clone(&clock),
        )
        .context("checking the channel settings")?;
        Ok(GatewayService {
            db: Mutex::new(db),
            vault: Mutex::new(None),
            store,
            settings,
            clock,
            access,
            pairing: Mutex::new(None),
            audit_socket,
            audit: OnceLock::new(),
        })
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
        *lock(&self.vault) = Some(Vault::new(vault_key));
        *lock(&self.pairing) = Some(Arc::new(pairing));
        Ok(())
    }

    pub fn has_keys(&self) -> bool {
        lock(&self.vault).is_some()
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
            vault => vault_request(&lock(&self.db), &self.vault, vault),
        };
        match result {
            Ok(r) => ComponentResponse::Gateway(r),
            Err(e) => ComponentResponse::Error(e),
        }
    }

    fn pairing(&self) -> Result<Arc<Pairing>, WireError> {
        lock(&self.pairing).clone().ok_or_else(|| {
            WireError::new(
                ErrorCode::Unavailable,
                "the gateway has not received its keys yet",
            )
        })
    }

    async fn record(&self, kind: &str, actor: &str, subject: &str, payload: serde_json::Value) {
        let Some(socket) = &self.audit_socket else {
            return;
        };
        let log = self
            .audit
            .get_or_init(|| AuditLog::start(socket.clone(), Role::Gateway));
        log.record(kind, actor, subject, payload).await;
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
                self.record(
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
                self.record(
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
                self.record(
                    "pairing.cancelled_all",
                    actor,
                    channel.as_deref().unwrap_or("*"),
                    serde_json::json!({"codes": n}),
                )
                .await;
                Ok(AccessResponse::Changed(n))
            }
            AccessRequest::UsersList { channel } => {
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
                            state: state_name(u.state).to_string(),
                            since: u.since,
                            last_seen: u.last_seen,
                            display_name: u.display_name,
                        })
                        .collect(),
                ))
            }
            AccessRequest::UserRevoke { channel, sender } => {
                self.known_channel(&channel)?;
                // A sender never seen is recorded as revoked too: they cannot pair.
                let had_access = self
                    .store
                    .revoke_user(&channel, &sender, now)
                    .map_err(gateway_error)?;
                self.record(
                    "user.revoked",
                    actor,
                    &format!("{channel}:{sender}"),
                    serde_json::json!({"had_access": had_access}),
                )
                .await;
                Ok(AccessResponse::Changed(u64::from(had_access)))
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
                self.record(
                    "user.revoked_all",
                    actor,
                    channel.as_deref().unwrap_or("*"),
                    serde_json::json!({"users": n}),
                )
                .await;
                Ok(AccessResponse::Changed(n as u64))
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
                        format!("no user {sender:?} on {channel}"),
                    ));
                }
                self.record(
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

    /// One message on the local channel: the same policy as every other channel.
    async fn local_message(&self, uid: u32, text: String) -> Result<Vec<String>, WireError> {
        let sender = format!("uid:{uid}");
        let raw = RawInbound {
            channel: LOCAL_CHANNEL.to_string(),
            account: None,
            sender: sender.clone(),
            sender_name: None,
            chat: sender.clone(),
            context: Context::Dm,
            mentions_bot: true,
            text,
            attachments: Vec::new(),
        };
        let msg = Inbound::try_from(raw).map_err(gateway_error)?;
        self.reply_to(&msg).await
    }

    /// Decides on `msg`, acts, audits, and returns the replies to send.
    pub async fn reply_to(&self, msg: &Inbound) -> Result<Vec<String>, WireError> {
        let decision = self.access.evaluate(msg).map_err(gateway_error)?;
        let subject = format!("{}:{}", msg.channel(), msg.sender());
        self.record(
            "gateway.message",
            "gateway",
            &subject,
            serde_json::json!({
                "decision": decision.audit_reason(),
                "context": match msg.context() { Context::Dm => "dm", Context::Group => "group" },
                "chat": msg.chat(),
                "length": msg.text().len(),
            }),
        )
        .await;
        Ok(match decision {
            Decision::Authorized { .. } => vec![
                "Received. The agent runtime is not installed on this appliance yet, so nothing \
                 will be done with this message."
                    .to_string(),
            ],
            Decision::RedeemPairing { code } => {
                let outcome = self
                    .pairing()?
                    .redeem(msg.channel(), msg.sender(), msg.sender_name(), &code)
                    .map_err(gateway_error)?;
                let (kind, reply) = match &outcome {
                    RedeemOutcome::Paired(_) => (
                        "pairing.redeemed",
                        "Paired. You can now talk to the assistant.".to_string(),
                    ),
                    RedeemOutcome::AlreadyAuthorized => (
                        "pairing.already_authorized",
                        "You are already paired.".into(),
                    ),
                    RedeemOutcome::Invalid {
                        sender_attempts_left,
                        ..
                    } => (
                        "pairing.failed",
                        if *sender_attempts_left == 0 {
                            "That code is invalid or expired. Too many attempts: try again later."
                                .to_string()
                        } else {
                            "That code is invalid or expired.".to_string()
                        },
                    ),
                    RedeemOutcome::SenderLockedOut { .. }
                    | RedeemOutcome::ChannelLockedOut { .. } => (
                        "pairing.locked_out",
                        "Too many attempts: try again later.".to_string(),
                    ),
                    RedeemOutcome::Revoked => (
                        "pairing.revoked_sender",
                        "Access for this account was revoked by the owner.".to_string(),
                    ),
                };
                self.record(
                    kind,
                    "gateway",
                    &subject,
                    match &outcome {
                        RedeemOutcome::Invalid {
                            detail,
                            sender_attempts_left,
                        } => serde_json::json!({
                            "detail": format!("{detail:?}"),
                            "attempts_left": sender_attempts_left,
                        }),
                        RedeemOutcome::SenderLockedOut { until }
                        | RedeemOutcome::ChannelLockedOut { until } => {
                            serde_json::json!({"until": until})
                        }
                        _ => serde_json::json!({}),
                    },
                )
                .await;
                vec![reply]
            }
            Decision::PairingPrompt => vec![PAIRING_PROMPT.to_string()],
            Decision::Denied { .. } | Decision::Ignored { .. } => Vec::new(),
        })
    }
}

fn state_name(state: UserState) -> &'static str {
    match state {
        UserState::Paired => "paired",
        UserState::Allowlisted => "allowlisted",
        UserState::Revoked => "revoked",
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
