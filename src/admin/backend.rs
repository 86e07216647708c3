//! The admin page's only door to state: every read and change goes through
//! [`AdminBackend`], which the appliance implements over IPC to the gateway and
//! audit components. The types here are plain data owned by the admin module;
//! users, tasks and approvals are the gateway's IPC answers themselves
//! ([`crate::ipc::UserListing`], [`crate::ipc::TaskListing`],
//! [`crate::ipc::ApprovalListing`]), their states typed on the wire.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::ipc::{ApprovalListing, TaskListing, UserListing};

/// The future every backend call returns (boxed so the trait stays object safe
/// and usable as `Arc<dyn AdminBackend>`).
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// What the admin page may ask of the rest of the appliance.
pub trait AdminBackend: Send + Sync + std::fmt::Debug {
    /// Component health, keystore tier, version, channel modes, warnings.
    fn status(&self) -> BackendFuture<'_, Dashboard>;

    /// Issue a pairing code for `channel` (TTL `60..=3600` s, `None` = 300 s);
    /// revokes the channel's previous code.
    fn pairing_issue(
        &self,
        channel: String,
        ttl_secs: Option<u64>,
        issuer: String,
    ) -> BackendFuture<'_, IssuedCode>;
    /// Active (unused, unexpired) pairing codes, without the codes themselves.
    fn pairing_list(&self) -> BackendFuture<'_, Vec<PairingListing>>;
    /// Cancel one code; `false` if it was not active.
    fn pairing_cancel(&self, id: u64) -> BackendFuture<'_, bool>;
    /// Cancel every active code; returns how many.
    fn pairing_cancel_all(&self) -> BackendFuture<'_, usize>;

    /// Users known per channel (`None` = all channels).
    fn users_list(&self, channel: Option<String>) -> BackendFuture<'_, Vec<UserListing>>;
    /// Revoke one user (`users` 0 if unknown or already revoked), ending
    /// their tasks and pending approvals.
    fn user_revoke(&self, channel: String, sender: String) -> BackendFuture<'_, Revocation>;
    /// Revoke every user of `channel` (`None` = all), likewise.
    fn users_revoke_all(&self, channel: Option<String>) -> BackendFuture<'_, Revocation>;
    /// Senders whose pairing is paused after too many wrong codes.
    fn lockouts(&self) -> BackendFuture<'_, Vec<crate::ipc::LockoutListing>>;
    /// Lift `sender`'s lockout on `channel` (and forget its failures), asked
    /// by owner `by`; how many were lifted (0: none was in force).
    fn lockout_clear(&self, channel: String, sender: String, by: String) -> BackendFuture<'_, u64>;

    /// Tasks, newest first.
    fn tasks_list(&self) -> BackendFuture<'_, Vec<TaskListing>>;
    /// Cancel a task by its page number ([`page_id`]; `force` = stop its
    /// running command now); `false` if not running.
    fn task_cancel(&self, id: u64, force: bool) -> BackendFuture<'_, bool>;

    /// Pending command approvals.
    fn approvals_list(&self) -> BackendFuture<'_, Vec<ApprovalListing>>;
    /// Approve once or deny a pending approval, by its page number.
    fn approval_decide(&self, id: u64, approve: bool, by: String) -> BackendFuture<'_, ()>;

    /// Audit entries, newest last, filtered by kind and time (unix secs).
    fn audit_tail(
        &self,
        kind: Option<String>,
        since: Option<u64>,
        limit: u32,
    ) -> BackendFuture<'_, Vec<AuditEntry>>;
    /// Verify the whole audit chain.
    fn audit_verify(&self) -> BackendFuture<'_, AuditVerdict>;
    /// Append an entry on behalf of the admin component (`admin.*` kinds).
    fn audit_record(
        &self,
        kind: String,
        actor: String,
        subject: String,
        payload: serde_json::Value,
    ) -> BackendFuture<'_, ()>;

    /// Names (never values) of the secrets held in the vault.
    fn secret_names(&self) -> BackendFuture<'_, Vec<String>>;
    /// The secrets with version and last change (never values).
    fn secrets(&self) -> BackendFuture<'_, Vec<crate::ipc::SecretListing>>;
    /// Store a secret (a new version if it exists); returns the version.
    fn secret_set(&self, name: String, value: crate::ipc::SecretBytes) -> BackendFuture<'_, u32>;
    /// Delete a secret.
    fn secret_delete(&self, name: String) -> BackendFuture<'_, ()>;

    /// Each channel's live state (running, waiting for a secret and why, the
    /// last message).
    fn channel_states(&self) -> BackendFuture<'_, Vec<crate::ipc::ChannelState>>;
    /// The running configuration, each value with the file that set it.
    fn settings_show(&self) -> BackendFuture<'_, crate::ipc::SettingsView>;
    /// Change keys of the owner's settings: validated, written and applied by
    /// the supervisor, or refused with every problem at its key.
    fn settings_change(
        &self,
        changes: Vec<crate::ipc::SettingChange>,
        expected_version: Option<String>,
    ) -> BackendFuture<'_, crate::ipc::SettingsResponse>;
    /// Store CA certificates (PEM) for a `...ca_file` key and point the key
    /// at them, as one change.
    fn settings_store_ca(
        &self,
        key: String,
        pem: String,
        expected_version: Option<String>,
    ) -> BackendFuture<'_, crate::ipc::SettingsResponse>;
    /// The guard's verdict on `command` under the rules in the files now, as
    /// `coworkctl guard check` prints it.
    fn guard_check(&self, command: String) -> BackendFuture<'_, String>;
    /// One minimal request to the LLM provider under the settings in force,
    /// asked by owner `by`: `Ok` what the model said, `Err` why it failed (one
    /// sentence: no provider configured, the key refused, unreachable...).
    fn provider_test(&self, by: String) -> BackendFuture<'_, Result<String, String>>;

    /// `update status` (slots, versions, last attempt, fallback reason) as JSON.
    fn update_status(&self) -> BackendFuture<'_, serde_json::Value>;
    /// The security checklist, as `coworkctl doctor` prints it.
    fn doctor(&self) -> BackendFuture<'_, crate::doctor::Report>;
    /// `update check`: the feed fetched and verified now, as JSON (its
    /// `error` says why a check failed).
    fn update_check(&self) -> BackendFuture<'_, serde_json::Value>;
    /// `update apply URL` of the bundle the last check offered.
    fn update_apply_url(&self, url: String) -> BackendFuture<'_, serde_json::Value>;
    /// Where an uploaded bundle is written before [`update_apply`], and the
    /// largest one accepted.
    ///
    /// [`update_apply`]: AdminBackend::update_apply
    fn update_upload(&self) -> UploadTarget;
    /// Verifies and applies the bundle at `bundle` (in the upload directory).
    fn update_apply(&self, bundle: std::path::PathBuf) -> BackendFuture<'_, serde_json::Value>;
}

/// Where and how large an update upload may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub dir: std::path::PathBuf,
    pub max_bytes: u64,
}

/// Why a backend call failed; shown to the owner as a plain sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    pub kind: BackendErrorKind,
    pub message: String,
}

impl BackendError {
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendErrorKind {
    NotFound,
    BadRequest,
    Unavailable,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub name: String,
    pub up: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMode {
    pub name: String,
    pub enabled: bool,
    /// `pairing`, `allowlist` or `open`.
    pub dm_mode: String,
    pub group_mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    pub components: Vec<ComponentHealth>,
    /// `tpm2`, `keychain` or `file`.
    pub keystore_tier: String,
    pub version: String,
    pub channels: Vec<ChannelMode>,
    pub warnings: Vec<String>,
    /// Each file the appliance keeps and its schema version.
    pub stores: Vec<crate::ipc::StoreStatus>,
}

/// A fresh pairing code in plaintext: shown once, zeroized on drop, redacted in Debug.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCode {
    pub id: u64,
    pub channel: String,
    pub code: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Drop for IssuedCode {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.code);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingListing {
    pub id: u64,
    pub channel: String,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// What a revocation did: users whose access ended, and what of theirs ended
/// with it (live tasks cancelled, other pending approvals denied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub users: usize,
    pub tasks_cancelled: u64,
    pub approvals_denied: u64,
}

/// The gateway's task and approval ids are `t-`/`a-` and 12 hex digits; the
/// page shows the number and its forms carry it.
pub fn gateway_id(prefix: char, id: u64) -> String {
    format!("{prefix}-{id:012x}")
}

/// The number in a gateway id (0 if it has none).
pub fn page_id(id: &str) -> u64 {
    id.get(2..)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: u64,
    pub component: String,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerdict {
    pub intact: bool,
    pub entries: u64,
    pub first_bad_seq: Option<u64>,
    pub detail: String,
}
