//! Every message that crosses a socket. One enum per direction per channel.
//! Bump [`PROTOCOL_VERSION`] on every change to anything in this file.

use serde::{Deserialize, Serialize};

use super::roles::{Component, Role};

/// Checked in every [`Hello`]; a mismatch refuses the connection.
pub const PROTOCOL_VERSION: u32 = 19;

/// The first frame on every connection, from the connecting side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub role: Role,
}

/// The server's answer to [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HelloReply {
    Accepted { server: Role },
    Refused { reason: String },
}

/// Every request and response after the hello travels in a frame with an id, so
/// several requests can be in flight on one connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame<T> {
    pub id: u64,
    pub body: T,
}

/// Why a request failed, as the other side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not a well-formed message of this channel.
    Malformed,
    /// The frame exceeded the cap; the connection is closed after this answer.
    TooLarge,
    /// The peer table does not allow this sender to send this request.
    Forbidden,
    /// The request was well-formed but its content is invalid.
    BadRequest,
    /// What the request names does not exist.
    NotFound,
    /// The component that would serve this is not reachable right now.
    Unavailable,
    /// The server failed; details are in its log.
    Internal,
}

/// An error answer: a code for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// A request's name as the peer table knows it.
pub trait RequestKind {
    fn kind(&self) -> &'static str;
}

// ---------------------------------------------------------------------------
// Component channel: the supervisor (and, later, peers) -> one component.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComponentRequest {
    /// Health check; answered with [`ComponentResponse::Pong`].
    Ping,
    /// Re-read the configuration file.
    Reload,
    /// Finish in-flight work and exit.
    Shutdown,
    /// The keys this component needs, derived by the supervisor from the master
    /// key. Sent after every (re)start and after a master key rotation.
    InstallKeys(KeyBundle),
    /// Served by the sandbox component.
    Sandbox(SandboxRequest),
    /// Served by the gateway component.
    Gateway(GatewayRequest),
    /// Served by the audit component.
    Audit(AuditRequest),
    /// The supervisor's view of the appliance, sent to the admin page after
    /// every health round (the admin page cannot ask the supervisor anything).
    StatusUpdate(Box<StatusReport>),
    /// Served by the admin component (for `coworkctl admin`).
    Admin(AdminRequest),
}

impl RequestKind for ComponentRequest {
    fn kind(&self) -> &'static str {
        match self {
            ComponentRequest::Ping => "ping",
            ComponentRequest::Reload => "reload",
            ComponentRequest::Shutdown => "shutdown",
            ComponentRequest::InstallKeys(_) => "install-keys",
            ComponentRequest::StatusUpdate(_) => "status-update",
            ComponentRequest::Admin(r) => r.kind(),
            ComponentRequest::Gateway(g) => g.kind(),
            ComponentRequest::Audit(AuditRequest::Append(_)) => "audit.append",
            ComponentRequest::Audit(AuditRequest::Tail(_)) => "audit.tail",
            ComponentRequest::Audit(AuditRequest::Verify) => "audit.verify",
            ComponentRequest::Audit(AuditRequest::KnownSecrets(_)) => "audit.known-secrets",
            ComponentRequest::Sandbox(SandboxRequest::Run(_)) => "sandbox.run",
            ComponentRequest::Sandbox(SandboxRequest::Cancel { .. }) => "sandbox.cancel",
            ComponentRequest::Sandbox(SandboxRequest::File(_)) => "sandbox.file",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ComponentResponse {
    Pong(Health),
    Done,
    Sandbox(SandboxResponse),
    Gateway(GatewayResponse),
    Audit(AuditResponse),
    Admin(AdminResponse),
    Error(WireError),
}

impl From<WireError> for ComponentResponse {
    fn from(e: WireError) -> Self {
        ComponentResponse::Error(e)
    }
}

/// What a component says about itself when pinged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub component: Component,
    pub pid: u32,
    pub ready: bool,
    /// One line the component wants shown in `coworkctl status` (for the sandbox:
    /// the isolation this host can enforce).
    pub summary: Option<String>,
    /// The schema version of each file it owns (`state.db`, `audit.db`, ...).
    pub stores: Vec<StoreStatus>,
}

/// One file the appliance keeps and the schema version it has (see
/// `crate::schema`), as `coworkctl status` and the dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// `state.db`, `audit.db`, `last-attempt.json`, ...
    pub name: String,
    /// Its path on the appliance.
    pub file: String,
    /// The schema version it has now.
    pub schema: u32,
}

// ---------------------------------------------------------------------------
// Admin page: `coworkctl admin` through the supervisor.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Certificate fingerprint, URLs, whether an owner is set up.
    Info,
    /// The one-time setup token, while no owner exists.
    SetupToken,
    /// A new key and certificate; every session logged out.
    RotateCert,
}

impl AdminRequest {
    pub fn kind(&self) -> &'static str {
        match self {
            AdminRequest::Info => "admin.info",
            AdminRequest::SetupToken => "admin.setup-token",
            AdminRequest::RotateCert => "admin.rotate-cert",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AdminResponse {
    Info(AdminInfo),
    SetupToken(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminInfo {
    /// SHA-256 of the certificate, colon-separated uppercase hex (as browsers show it).
    pub fingerprint: String,
    /// Unix seconds.
    pub not_after: u64,
    pub urls: Vec<String>,
    pub owner_set: bool,
}

// ---------------------------------------------------------------------------
// Audit: everyone appends; the supervisor (for coworkctl) and the admin page read.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AuditRequest {
    /// Acknowledged only once the entry is durable. The component is not taken
    /// from the request: the audit component stamps the authenticated peer's role.
    Append(AuditAppend),
    Tail(AuditQuery),
    Verify,
    /// Every value in the gateway's vault, to be redacted wherever it (or an
    /// encoding of it) appears in later entries. Replaces the previous set.
    /// From the gateway alone; the audit component keeps the values in memory
    /// only (see `audit::redact`).
    KnownSecrets(KnownSecrets),
}

/// Most values in one [`AuditRequest::KnownSecrets`].
pub const MAX_KNOWN_SECRETS: usize = 1024;

/// The vault's current values. Zeroized on drop, never printed.
#[derive(Clone, Serialize, Deserialize)]
pub struct KnownSecrets {
    pub values: Vec<SecretBytes>,
}

impl std::fmt::Debug for KnownSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnownSecrets(<{} values redacted>)", self.values.len())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditAppend {
    /// Dotted lowercase kind: `component.restarted`, `command.finished`, ...
    pub kind: String,
    pub actor: String,
    pub subject: String,
    /// A JSON object; secrets in it are redacted before it is hashed and stored.
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Kind prefix, e.g. `pairing.`.
    pub kind: Option<String>,
    /// RFC 3339 time: only entries at or after it.
    pub since: Option<String>,
    /// Only entries after this sequence number (paging, `tail -f`).
    pub after_seq: Option<u64>,
    /// The most recent `limit` entries (or the first `limit` after `after_seq`).
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AuditResponse {
    Appended {
        seq: u64,
    },
    Entries(Vec<AuditEntry>),
    Verified(AuditVerdict),
    /// How many of the values are matched (the others were too short).
    KnownSecretsTaken {
        matched: u32,
    },
}

/// One committed entry, as `coworkctl audit tail` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: String,
    pub component: String,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The outcome of verifying the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditVerdict {
    pub intact: bool,
    pub entries: u64,
    pub last_seq: u64,
    pub first_bad_seq: Option<u64>,
    pub detail: String,
    /// The newest checkpoint (its seq and RFC 3339 time), when intact.
    #[serde(default)]
    pub newest_checkpoint: Option<(u64, String)>,
}

// ---------------------------------------------------------------------------
// Keys: supervisor -> component.

/// Derived keys for one component. Zeroized when dropped.
#[derive(Clone, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct KeyBundle {
    pub keys: Vec<WireKey>,
}

#[derive(Clone, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct WireKey {
    #[zeroize(skip)]
    pub purpose: crate::keystore::Purpose,
    pub bytes: [u8; 32],
}

impl std::fmt::Debug for KeyBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let purposes: Vec<_> = self.keys.iter().map(|k| k.purpose).collect();
        write!(f, "KeyBundle({purposes:?}, <redacted>)")
    }
}

impl std::fmt::Debug for WireKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WireKey({:?}, <redacted>)", self.purpose)
    }
}

// ---------------------------------------------------------------------------
// Gateway: vault operations (from the supervisor on behalf of coworkctl).

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GatewayRequest {
    /// Store a secret (new version). The value never travels in env or argv.
    SecretSet {
        name: String,
        value: SecretBytes,
    },
    SecretList,
    SecretDelete {
        name: String,
    },
    /// Which of these vault keys opens the vault (index), for an interrupted
    /// master rotation.
    VaultProbe {
        candidates: KeyBundle,
    },
    /// Re-encrypt every secret from `old` to `new` in one transaction (the commit
    /// point of `coworkctl secret rotate-master`).
    VaultRewrap {
        old: KeyBundle,
        new: KeyBundle,
    },
    /// Pairing codes and channel users, for the admin page and `coworkctl`.
    /// `actor` names who asked, for the audit trail (set by the relaying
    /// supervisor or the admin component, never by the end user).
    Access {
        actor: String,
        request: AccessRequest,
    },
    /// A message on the `local` channel (`coworkctl chat`), relayed by the
    /// supervisor; `uid` is the kernel's word on who sent it.
    LocalMessage {
        uid: u32,
        text: String,
    },
    /// Replies the agent produced for the local sender `uid` since the last
    /// poll (`coworkctl chat` waits on these), and whether a task of theirs
    /// is still running.
    LocalPoll {
        uid: u32,
    },
    /// Tasks and approvals, for the admin page and `coworkctl`. `actor` as in
    /// [`GatewayRequest::Access`].
    Agent {
        actor: String,
        request: AgentRequest,
    },
    /// Each configured channel's live state, for the settings page.
    ChannelStates,
}

impl RequestKind for GatewayRequest {
    fn kind(&self) -> &'static str {
        match self {
            GatewayRequest::SecretSet { .. } => "gateway.secret-set",
            GatewayRequest::SecretList => "gateway.secret-list",
            GatewayRequest::SecretDelete { .. } => "gateway.secret-delete",
            GatewayRequest::VaultProbe { .. } => "gateway.vault-probe",
            GatewayRequest::VaultRewrap { .. } => "gateway.vault-rewrap",
            GatewayRequest::Access { request, .. } => request.kind(),
            GatewayRequest::LocalMessage { .. } => "gateway.local-message",
            GatewayRequest::LocalPoll { .. } => "gateway.local-poll",
            GatewayRequest::ChannelStates => "gateway.channel-states",
            GatewayRequest::Agent { request, .. } => match request {
                AgentRequest::TasksList { .. }
                | AgentRequest::TaskShow { .. }
                | AgentRequest::ApprovalsList => "gateway.tasks-read",
                AgentRequest::TaskCancel { .. }
                | AgentRequest::TaskResume { .. }
                | AgentRequest::ApprovalDecide { .. }
                | AgentRequest::ProviderTest => "gateway.tasks-change",
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GatewayResponse {
    Secrets(Vec<SecretListing>),
    SecretStored {
        name: String,
        version: u32,
    },
    /// Index into `candidates` of the key that opens the vault, if any.
    VaultProbe {
        opens: Option<usize>,
    },
    Rewrapped {
        secrets: usize,
    },
    Access(AccessResponse),
    /// The gateway's replies to a local message, in order.
    Replies(Vec<String>),
    /// Answer to [`GatewayRequest::LocalPoll`].
    LocalInbox(LocalInbox),
    Agent(AgentResponse),
    ChannelStates(Vec<ChannelState>),
}

/// One channel as it runs now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    pub name: String,
    pub enabled: bool,
    /// `running`, `waiting` (its transport did not start, e.g. a secret is
    /// missing: `error` says why), `disabled`, or `none` (no transport: the
    /// local channel, or a channel only reached through the webhook listener).
    pub state: String,
    pub error: Option<String>,
    /// The last message from any of its users (unix seconds), if any.
    pub last_message_at: Option<i64>,
}

/// Replies waiting for a local sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalInbox {
    pub replies: Vec<String>,
    /// A task of this sender is queued or running (more replies will come);
    /// false when nothing is in flight or it waits for an approval.
    pub busy: bool,
}

/// Tasks and approvals (served by the gateway's agent runtime). Ids are the
/// gateway's (`t-…`, `a-…`); anything else is refused as not found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentRequest {
    /// The most recent tasks (at most 1000).
    TasksList {
        limit: u32,
    },
    TaskShow {
        id: String,
    },
    /// Abort the in-flight model request and stop the running command
    /// (SIGTERM, then the kill after a grace). A task left `interrupted` by a
    /// restart is closed; `force` kills the command at once and also closes a
    /// task this gateway has no live handle for.
    TaskCancel {
        id: String,
        force: bool,
    },
    /// Run an `interrupted` task again from its message.
    TaskResume {
        id: String,
    },
    /// Pending approval requests.
    ApprovalsList,
    ApprovalDecide {
        id: String,
        approve: bool,
    },
    /// One minimal request to the LLM provider under the settings in force
    /// (the admin page's "test connection"): answered `Done` with what the
    /// model said, or an error sentence naming the failure.
    ProviderTest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentResponse {
    Tasks(Vec<TaskListing>),
    Task(TaskListing),
    Approvals(Vec<ApprovalListing>),
    /// What was done, one sentence.
    Done(String),
}

/// One task as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskListing {
    pub id: String,
    /// `channel:sender`
    pub user: String,
    pub state: TaskState,
    /// The message that started it (at most 2000 characters).
    pub prompt: String,
    /// Why it ended, or what it waits for.
    pub detail: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One approval request as listed: the full command and where it would run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalListing {
    pub id: String,
    pub task_id: String,
    pub command: String,
    /// The task workspace the command would run in.
    pub cwd: String,
    /// `channel:sender` of the task.
    pub requester: String,
    pub status: ApprovalStatus,
    pub approver: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A task's state, on the wire and in `agent_tasks` (the agent store adds
/// parsing and transitions). On the wire it is the snake_case name, e.g.
/// `awaiting_approval`; any other string fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    AwaitingApproval,
    Completed,
    Failed,
    Cancelled,
    /// Left unfinished by a restart; it may be resumed or closed.
    Interrupted,
}

impl TaskState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::AwaitingApproval => "awaiting_approval",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// An approval request's status, on the wire and in `agent_approvals`; any
/// other string fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    /// Not decided in time: counts as denied.
    Expired,
    /// Approved and already used to run the command once.
    Used,
}

impl ApprovalStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Used => "used",
        }
    }
}

impl std::fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Pairing-code and user management (served by the gateway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccessRequest {
    /// Issue a code for `channel` (revoking its previous one); `ttl_secs`
    /// defaults to the channel's setting and must be within 60..=3600.
    PairNew {
        channel: String,
        ttl_secs: Option<u64>,
    },
    PairList {
        channel: Option<String>,
    },
    PairCancel {
        id: i64,
    },
    /// Invalidate every active code (of one channel, or all).
    PairCancelAll {
        channel: Option<String>,
    },
    UsersList {
        channel: Option<String>,
    },
    UserRevoke {
        channel: String,
        sender: String,
    },
    /// Revoke every paired or allowlisted user and every active code.
    UsersRevokeAll {
        channel: Option<String>,
    },
    /// Delete a user's row, so a revoked sender may pair again.
    UserForget {
        channel: String,
        sender: String,
    },
    /// Senders locked out of pairing after too many wrong codes.
    LockoutsList,
    /// Lift lockouts (and forget the failures counted), of one channel, one
    /// sender on it, or all.
    LockoutsClear {
        channel: Option<String>,
        sender: Option<String>,
    },
    /// The owner confirms `sender`'s safety number on `channel` (Signal):
    /// the channel marks it verified with the platform and resumes the
    /// sender it paused when the number changed.
    IdentityConfirm {
        channel: String,
        sender: String,
        safety_number: String,
    },
}

impl AccessRequest {
    pub fn kind(&self) -> &'static str {
        match self {
            AccessRequest::PairNew { .. } => "gateway.pair-new",
            AccessRequest::PairList { .. } => "gateway.pair-list",
            AccessRequest::PairCancel { .. } => "gateway.pair-cancel",
            AccessRequest::PairCancelAll { .. } => "gateway.pair-cancel-all",
            AccessRequest::UsersList { .. } => "gateway.users-list",
            AccessRequest::UserRevoke { .. } => "gateway.user-revoke",
            AccessRequest::UsersRevokeAll { .. } => "gateway.users-revoke-all",
            AccessRequest::UserForget { .. } => "gateway.user-forget",
            AccessRequest::LockoutsList => "gateway.lockouts-list",
            AccessRequest::LockoutsClear { .. } => "gateway.lockouts-clear",
            AccessRequest::IdentityConfirm { .. } => "gateway.identity-confirm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccessResponse {
    PairingCode(IssuedPairingCode),
    PairingCodes(Vec<PairingListing>),
    Users(Vec<UserListing>),
    Lockouts(Vec<LockoutListing>),
    /// How many codes or users an operation changed.
    Changed(u64),
    /// A revocation: users whose access ended, and what of theirs it ended
    /// (live tasks cancelled, pending approvals of other tasks denied).
    Revoked {
        users: u64,
        tasks_cancelled: u64,
        approvals_denied: u64,
    },
}

/// A freshly issued code: the only time the code itself crosses a socket.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedPairingCode {
    pub id: i64,
    pub channel: String,
    pub code: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedPairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedPairingCode")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Drop for IssuedPairingCode {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.code);
    }
}

/// A sender locked out of pairing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockoutListing {
    pub channel: String,
    pub sender: String,
    /// Unix seconds: pairing is paused for the sender until then.
    pub until: i64,
}

/// An active pairing code as listed: never the code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairingListing {
    pub id: i64,
    pub channel: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// One channel user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserListing {
    pub channel: String,
    pub sender: String,
    pub state: UserState,
    /// When the current state was entered (unix seconds).
    pub since: i64,
    pub last_seen: Option<i64>,
    pub display_name: Option<String>,
}

/// A channel user's state, on the wire and in `gateway_users`; any other
/// string fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    Paired,
    Allowlisted,
    Revoked,
}

impl UserState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Paired => "paired",
            UserState::Allowlisted => "allowlisted",
            UserState::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for UserState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// `coworkctl settings`, the admin page's settings forms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SettingsRequest {
    /// The running configuration, each value with the file that set it.
    Show,
    /// Set or remove keys of the owner's settings file, validate the whole
    /// configuration with them, write the file, apply it. `expected_version`
    /// (from a `Show`) refuses the change if the file changed since.
    Change {
        changes: Vec<SettingChange>,
        expected_version: Option<String>,
    },
    /// Store CA certificates (PEM) for a `...ca_file` key on the data
    /// partition and point the key at them, as one change.
    StoreCa {
        key: String,
        pem: String,
        expected_version: Option<String>,
    },
}

/// One key: `value` is the text of a TOML value (or a bare word, taken as a
/// string); `None` removes the key from the owner's file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingChange {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SettingsResponse {
    View(SettingsView),
    Applied {
        view: SettingsView,
        report: ApplyReport,
    },
    /// Nothing was written: every problem, each at its key when known.
    Refused {
        problems: Vec<SettingProblem>,
        current_version: String,
    },
}

/// The running configuration as the owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsView {
    pub values: Vec<SettingValue>,
    /// The owner's settings file and the version it is at.
    pub owner_file: String,
    pub owner_version: String,
    /// Why the owner's file is not applied (empty when it is, or there is none).
    pub owner_problems: Vec<SettingProblem>,
}

/// One running value: dotted key, TOML text, and the file that set it
/// ("default" when none did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingValue {
    pub key: String,
    pub value: String,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingProblem {
    /// The dotted key it is about, when known: where a form shows it.
    pub key: Option<String>,
    /// One sentence, with the file, line and column when there is one.
    pub message: String,
}

/// How a configuration change took effect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The keys whose running value changed.
    pub changed: Vec<String>,
    /// Components restarted to take them (with their new settings).
    pub restarted: Vec<String>,
    /// What did not come back, or waits for a restart of coworkd, one sentence each.
    pub notes: Vec<String>,
}

impl ApplyReport {
    /// One line for coworkctl and the page.
    pub fn summary(&self) -> String {
        let mut out = if self.changed.is_empty() {
            "nothing changed".to_string()
        } else {
            let n = u64::try_from(self.changed.len()).unwrap_or(u64::MAX);
            let changed = crate::plural(n, "setting changed", "settings changed");
            if self.restarted.is_empty() {
                format!("{changed}, applied live")
            } else {
                format!("{changed}; restarted: {}", self.restarted.join(", "))
            }
        };
        for note in &self.notes {
            out.push_str("; ");
            out.push_str(note);
        }
        out
    }
}

/// A secret as `coworkctl secret list` shows it: never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretListing {
    pub name: String,
    pub version: u32,
    pub updated_at: String,
    /// The value's length in bytes (never the value).
    #[serde(default)]
    pub bytes: Option<u32>,
}

/// Secret bytes on the wire: a CBOR byte string, zeroized on drop, never printed.
#[derive(Clone, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct SecretBytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

// ---------------------------------------------------------------------------
// Sandbox: the gateway asks for approved commands to be run.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SandboxRequest {
    /// Run one approved command to completion.
    Run(Box<RunCommand>),
    /// Stop a running command and its whole process tree: SIGTERM, then the
    /// kill after a short grace; `force` kills at once.
    Cancel { run_id: u64, force: bool },
    /// A workspace file operation for the agent's file tools (the workspaces
    /// belong to the sandbox's user; the gateway cannot open them).
    File(FileRequest),
}

/// One file tool call in a task workspace. Paths are relative to the
/// workspace; the sandbox refuses `..`, absolute paths, symlinks and
/// oversized content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRequest {
    /// Workspace name, as in [`RunCommand::workspace`].
    pub workspace: String,
    pub op: FileOp,
    /// Largest file to read or write (`[limits] max_file_bytes`); the sandbox
    /// keeps its own ceiling whatever is asked. `None`: the ceiling.
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FileOp {
    Read { path: String },
    Write { path: String, content: String },
    List { path: String },
}

/// One approved command, with what the audit entry needs to say about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunCommand {
    /// Chosen by the caller, unique while the run lasts; names it for `Cancel`.
    pub run_id: u64,
    pub program: String,
    pub args: Vec<String>,
    /// Name of the task workspace (a directory the sandbox owns under its workspace
    /// root, created on first use), never a path.
    pub workspace: String,
    pub allow_network: bool,
    /// Default and maximum come from `[sandbox]`.
    pub timeout_secs: Option<u64>,
    /// Cap of captured stdout, and of stderr (`[limits] output_cap_bytes`);
    /// above `[sandbox] output_cap_bytes` the sandbox's cap holds. `None`: it.
    pub output_cap_bytes: Option<u64>,
    /// Largest file the command may write (`[limits] max_file_bytes`, RLIMIT_FSIZE);
    /// above `[sandbox] max_file_bytes` the sandbox's holds. `None`: it.
    pub max_file_bytes: Option<u64>,
    /// The command line as the guard judged it and the owner approved it.
    pub command_line: String,
    pub task: Option<String>,
    pub requester: String,
    /// The guard's decision and rule, and who approved (for "ask" decisions).
    pub decision: String,
    pub rule: String,
    pub approver: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SandboxResponse {
    Finished(RunResult),
    /// A file operation's result text (file content, listing, or what was written).
    File(String),
}

/// How a sandboxed command ended. Output is text (lossy UTF-8), capped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Shell-style: the exit code, 128+signal, 124 on timeout, 137 when cancelled.
    pub exit_code: i32,
    /// exited | signaled | timed_out | killed
    pub status: String,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: u64,
    /// The isolation in force for this run, one line.
    pub isolation: String,
}

// ---------------------------------------------------------------------------
// Control channel: coworkctl -> supervisor.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlRequest {
    Status,
    /// Same as SIGHUP: reload the configuration and apply it.
    Reload,
    /// The owner's settings: show them, or change keys of the owner's file.
    Settings(SettingsRequest),
    SecretSet {
        name: String,
        value: SecretBytes,
    },
    SecretList,
    SecretDelete {
        name: String,
    },
    /// Generate a new master key and re-wrap everything under it.
    SecretRotateMaster,
    AuditTail(AuditQuery),
    AuditVerify,
    /// Pairing codes and users, relayed to the gateway.
    Access(AccessRequest),
    /// One message on the local channel (`coworkctl chat`).
    Chat {
        text: String,
    },
    /// The agent's replies waiting for the caller on the local channel.
    ChatPoll,
    /// Tasks and approvals, relayed to the gateway.
    Agent(AgentRequest),
    /// The admin page: fingerprint, setup token, certificate rotation.
    Admin(AdminRequest),
    /// Slots, versions and the last update attempt.
    UpdateStatus,
    /// Verify a bundle and write it to the inactive slot. `path` is absolute
    /// and must be a regular file owned by the caller (or root).
    UpdateApply {
        path: String,
    },
    /// The security checklist (`coworkctl doctor`, the dashboard's card).
    Doctor,
    /// Fetch and verify the update feed (`coworkctl update check`).
    UpdateCheck,
}

impl RequestKind for ControlRequest {
    fn kind(&self) -> &'static str {
        match self {
            ControlRequest::Status => "status",
            ControlRequest::Reload => "reload",
            ControlRequest::Settings(SettingsRequest::Show) => "settings-read",
            ControlRequest::Settings(
                SettingsRequest::Change { .. } | SettingsRequest::StoreCa { .. },
            ) => "settings-change",
            ControlRequest::SecretSet { .. } => "secret-set",
            ControlRequest::SecretList => "secret-list",
            ControlRequest::SecretDelete { .. } => "secret-delete",
            ControlRequest::SecretRotateMaster => "secret-rotate-master",
            ControlRequest::AuditTail(_) => "audit-tail",
            ControlRequest::AuditVerify => "audit-verify",
            ControlRequest::Access(r) => match r {
                AccessRequest::PairList { .. }
                | AccessRequest::UsersList { .. }
                | AccessRequest::LockoutsList => "access-read",
                _ => "access-change",
            },
            ControlRequest::Chat { .. } | ControlRequest::ChatPoll => "chat",
            ControlRequest::Agent(r) => match r {
                AgentRequest::TasksList { .. }
                | AgentRequest::TaskShow { .. }
                | AgentRequest::ApprovalsList => "tasks-read",
                AgentRequest::TaskCancel { .. }
                | AgentRequest::TaskResume { .. }
                | AgentRequest::ApprovalDecide { .. }
                | AgentRequest::ProviderTest => "tasks-change",
            },
            ControlRequest::Admin(AdminRequest::Info) => "admin-info",
            ControlRequest::Admin(AdminRequest::SetupToken) => "admin-setup-token",
            ControlRequest::Admin(AdminRequest::RotateCert) => "admin-rotate-cert",
            ControlRequest::UpdateStatus => "update-status",
            ControlRequest::UpdateApply { .. } => "update-apply",
            ControlRequest::Doctor => "doctor",
            ControlRequest::UpdateCheck => "update-check",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlResponse {
    Status(StatusReport),
    /// The configuration was read again and applied as the report says.
    Reloaded(ApplyReport),
    Settings(SettingsResponse),
    Secrets(Vec<SecretListing>),
    SecretStored {
        name: String,
        version: u32,
    },
    Done,
    /// A master key rotation finished: this many secrets were re-wrapped, and
    /// this many outstanding pairing codes (hashed under the old key) were
    /// cancelled; `None` when cancelling them failed (they no longer redeem).
    Rotated {
        secrets: usize,
        pairing_codes_cancelled: Option<u64>,
    },
    AuditEntries(Vec<AuditEntry>),
    AuditVerified(AuditVerdict),
    Access(AccessResponse),
    Replies(Vec<String>),
    ChatInbox(LocalInbox),
    Agent(AgentResponse),
    Admin(AdminResponse),
    /// `update status` or the result of `update apply`, as JSON.
    Update(serde_json::Value),
    Doctor(crate::doctor::Report),
    Error(WireError),
}

impl From<WireError> for ControlResponse {
    fn from(e: WireError) -> Self {
        ControlResponse::Error(e)
    }
}

/// `coworkctl status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub profile: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// Every component is up and answering.
    pub ready: bool,
    /// A component restarted too often (see its `recent_restarts`), a
    /// component cannot start (its answer to its keys was a refusal, e.g. a
    /// data file from an incompatible newer image), or the data disk is down
    /// to its reserve (see `disk`).
    pub degraded: bool,
    /// Why it is degraded, one sentence per cause (empty when it is not).
    pub degraded_because: Vec<String>,
    /// Free space on the state directory's file system and the reserve kept.
    pub disk: DiskStatus,
    pub keystore: String,
    /// Where components and sandboxed commands get their cgroups.
    pub cgroups: String,
    pub components: Vec<ComponentStatus>,
    /// Every file the appliance keeps, with its schema version, as its owner
    /// last reported it (a component's files appear once it has answered).
    pub stores: Vec<StoreStatus>,
}

/// The data disk as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    /// Bytes free for unprivileged writers; `None` when it cannot be read.
    pub free_bytes: Option<u64>,
    /// `[sandbox] disk_reserve_bytes`: below it no workspace grows.
    pub reserve_bytes: u64,
}

impl DiskStatus {
    pub fn low(&self) -> bool {
        self.free_bytes.is_some_and(|f| f < self.reserve_bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub component: Component,
    pub state: ComponentState,
    pub pid: Option<u32>,
    /// Restarts since the supervisor started.
    pub restarts: u32,
    /// Restarts within the last restart window.
    pub recent_restarts: u32,
    /// The delay before the next restart, should it die now.
    pub backoff_ms: u64,
    pub user: String,
    /// The component's own one-line summary from its last health answer.
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    /// Spawned, not yet answering.
    Starting,
    /// Answering health checks.
    Up,
    /// Spawned earlier and answering, but missed the last health check.
    Unresponsive,
    /// Dead, waiting out its restart backoff.
    Backoff,
    /// Stopped on purpose.
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{FrameError, decode, encode};

    /// `UserListing` as it was while its state travelled as a string: the
    /// same field names and order, so its bytes are what an older peer sent.
    #[derive(Serialize)]
    struct StringUser<'a> {
        channel: &'a str,
        sender: &'a str,
        state: &'a str,
        since: i64,
        last_seen: Option<i64>,
        display_name: Option<&'a str>,
    }

    fn string_user(state: &str) -> StringUser<'_> {
        StringUser {
            channel: "telegram",
            sender: "alice",
            state,
            since: 1_700_000_000,
            last_seen: Some(1_700_000_060),
            display_name: None,
        }
    }

    /// Each state encodes to its exact wire string, byte for byte what the
    /// string it replaces encoded to, and decodes back.
    fn round_trips<T>(all: &[T], wire: fn(&T) -> &'static str)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for s in all {
            let bytes = encode(s).unwrap();
            assert_eq!(bytes, encode(&wire(s)).unwrap(), "{s:?}");
            assert_eq!(&decode::<T>(&bytes).unwrap(), s);
            assert_eq!(decode::<T>(&encode(&wire(s)).unwrap()).unwrap(), *s);
        }
    }

    #[test]
    fn states_round_trip_with_their_wire_strings() {
        use ApprovalStatus as A;
        use TaskState as T;
        use UserState as U;
        round_trips(&[U::Paired, U::Allowlisted, U::Revoked], |s| s.as_str());
        round_trips(
            &[
                T::Queued,
                T::Running,
                T::AwaitingApproval,
                T::Completed,
                T::Failed,
                T::Cancelled,
                T::Interrupted,
            ],
            |s| s.as_str(),
        );
        round_trips(
            &[A::Pending, A::Approved, A::Denied, A::Expired, A::Used],
            |s| s.as_str(),
        );
        let spelled: Vec<&str> = [T::AwaitingApproval, T::Completed]
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(spelled, ["awaiting_approval", "completed"]);
        assert_eq!(format!("{:<9}|", U::Paired), "paired   |");
    }

    #[test]
    fn a_listing_is_byte_for_byte_what_it_was() {
        let typed = UserListing {
            channel: "telegram".into(),
            sender: "alice".into(),
            state: UserState::Allowlisted,
            since: 1_700_000_000,
            last_seen: Some(1_700_000_060),
            display_name: None,
        };
        let old = encode(&string_user("allowlisted")).unwrap();
        assert_eq!(encode(&typed).unwrap(), old);
        assert_eq!(decode::<UserListing>(&old).unwrap(), typed);
    }

    #[test]
    fn an_unknown_state_is_a_decode_error() {
        for bad in [
            "",
            "Paired",
            "PAIRED",
            "paired ",
            "pending",
            "unknown",
            "revoked\0",
        ] {
            let bytes = encode(&string_user(bad)).unwrap();
            let err = decode::<UserListing>(&bytes).unwrap_err();
            assert!(matches!(err, FrameError::Malformed(_)), "{bad:?}: {err:?}");
        }
        // Inside a whole answer, as the admin component reads it: the known
        // state decodes, the unknown one fails the answer.
        #[derive(Serialize)]
        enum StringAnswer<'a> {
            Users(Vec<StringUser<'a>>),
        }
        let answer = |state| encode(&StringAnswer::Users(vec![string_user(state)])).unwrap();
        assert!(matches!(
            decode::<AccessResponse>(&answer("revoked")),
            Ok(AccessResponse::Users(u)) if u[0].state == UserState::Revoked
        ));
        assert!(decode::<AccessResponse>(&answer("suspended")).is_err());
        for bad in ["done", "waiting_approval", "stopped", "Running"] {
            assert!(
                decode::<TaskState>(&encode(&bad).unwrap()).is_err(),
                "{bad}"
            );
        }
        for bad in ["revoked", "Pending", "lapsed"] {
            assert!(
                decode::<ApprovalStatus>(&encode(&bad).unwrap()).is_err(),
                "{bad}"
            );
        }
        // Not a string at all.
        assert!(decode::<UserState>(&encode(&1u8).unwrap()).is_err());
    }
}
