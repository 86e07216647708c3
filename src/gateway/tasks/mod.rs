//! The agent runtime: the gateway's [`TaskSink`] when `[agent]` is configured.
//!
//! Role: every authorized message becomes a task (`agent_tasks` in
//! `state.db`, through [`store`]) run by its own tokio task:
//! the agent loop with the conversation of its (channel, chat, user) and the
//! tools the chat's context policy allows. `run_command` goes through the
//! guard: blocked → refused to the model; ask → an approval request
//! (`agent_approvals`, bound to the exact command and workspace, expiring)
//! and the task waits in `awaiting_approval`; allowed → the sandbox runs it.
//! The file tools run inside the sandbox component, which owns the workspaces;
//! `write_file` is judged first ([`Guard::check_write`]): a file that configures
//! execution (`.git/config`, `.bashrc`, `*.pth`...) becomes an approval bound to
//! its path, content hash and workspace, and only the approved content is written.
//! Replies go back through the channel's reply path ([`Replies`]).
//!
//! Peers: the dispatcher (submits tasks), the sandbox (commands and files,
//! over IPC), the LLM provider (HTTPS), the vault (the API key, read per
//! request), the audit trail (every step), `coworkctl` and the admin page
//! (list, show, cancel, approve, deny; through [`AgentRuntime::handle`]).
//!
//! Who answers approvals: `coworkctl` and the admin page (the appliance's
//! operators), and in chat (`approve ID` / `deny ID`) only the senders the
//! owner named in the channel's `approvers` setting; nobody is an approver by
//! having paired. The requester never answers their own request in chat, in
//! any context. A chat answer is a message like any other: in a group it is
//! heard only under the group's rules (mention, group policy) and only from a
//! sender authorized there. Every decision carries who made it ([`Decider`]).
//!
//! Revoking a sender's access ends their live tasks on that channel and
//! denies their pending approvals ([`AgentRuntime::revoked`]).
//!
//! Conversations live in memory (the last [`HISTORY_CAP`] messages); after a
//! restart a user starts afresh. Tasks found `running` or `awaiting_approval`
//! at start are marked `interrupted` ([`TaskStore::open`]); `coworkctl tasks
//! resume ID` runs one again from its message (in its chat, with the tools it
//! was allowed), `coworkctl tasks cancel ID` closes it.

mod approvals;
pub(crate) mod budget;
mod control;
pub mod store;
mod tools;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::gateway::outbound::Replies;

pub use control::Revoked;
pub use tools::SandboxClient;

use self::tools::{
    AuditedMemoryTool, CommandLimits, FileTool, RunCommandTool, SandboxFileTool, TaskScope,
    WorkspaceWrites,
};
use super::error::GatewayError;
use super::inbound::{Context, LOCAL_CHANNEL};
use super::sinks::{BoxFuture, Task, TaskSink, Trail};
use super::store::{Store, UserState};

use self::approvals::Decider;
use self::store::{ApprovalStatus, ApprovalStore, TaskRecord, TaskState, TaskStore};
use crate::agent::tools::{FileMemoryStore, MemoryTool};
use crate::agent::{
    Agent, AgentSettings, ApprovalRequest, EndReason, Limits, Message, Provider, RunOutcome,
    SecretSource, SecretString, Tool, ToolOutcome,
};
use crate::guard::{Guard, GuardSettings};
use crate::ipc::{
    AgentRequest, AgentResponse, ApprovalListing, ComponentRequest, ErrorCode, LocalInbox, Role,
    SandboxRequest, TaskListing, WireError,
};
use crate::keystore::vault::Vault;

/// Messages of a conversation kept for the next task.
pub const HISTORY_CAP: usize = 40;
/// Longest prompt shown in a listing.
const PROMPT_SHOWN: usize = 2000;
/// How long `tasks cancel` waits for the task to end before answering.
const CANCEL_WAIT: Duration = Duration::from_millis(1500);

const SYSTEM_PROMPT: &str = "You are the assistant of a CoWork OS appliance, reached from a \
messaging channel. Use the tools you are offered when they help. Commands run in a sandbox in \
the user's workspace without network; some need the owner's approval and some are never \
allowed. Answer in plain text.";

/// Provider credentials from the gateway's vault in `state.db`, read per
/// request; the key arrives (and changes) with the keys.
#[derive(Debug)]
pub struct VaultSecrets {
    state: Arc<Store>,
    vault: Mutex<Option<Vault>>,
}

impl VaultSecrets {
    pub fn new(state: Arc<Store>) -> Self {
        VaultSecrets {
            state,
            vault: Mutex::new(None),
        }
    }

    pub fn set_vault(&self, vault: Vault) {
        *lock(&self.vault) = Some(vault);
    }
}

#[async_trait::async_trait]
impl SecretSource for VaultSecrets {
    async fn get(&self, name: &str) -> Option<SecretString> {
        let vault = lock(&self.vault);
        let bytes = vault.as_ref()?.get(&self.state.lock(), name).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        Some(SecretString::new(text.trim().to_string()))
    }
}

/// What the runtime is built from.
#[derive(Debug)]
pub struct RuntimeSetup {
    pub settings: AgentSettings,
    pub guard: GuardSettings,
    pub sandbox_socket: PathBuf,
    /// `$STATE/gateway`: `state.db` and the memory notes.
    pub state_dir: PathBuf,
    /// Channels whose senders share one workspace across their chats
    /// (`workspace_scope = "per-sender"`); every other channel has one per chat.
    pub shared_workspaces: BTreeSet<String>,
    /// Tasks at once and the daily budget of each sender.
    pub user_limits: budget::UserLimits,
    /// Per channel, the sender ids that may answer approvals in chat
    /// (`[channels.NAME] approvers`); a channel not listed has none.
    pub approvers: BTreeMap<String, BTreeSet<String>>,
}

/// The runtime's setup from the configuration (`None` without `[agent]`).
pub fn runtime_setup(
    config: &crate::config::Config,
    paths: &crate::paths::Paths,
) -> Option<RuntimeSetup> {
    Some(RuntimeSetup {
        settings: config.agent_settings()?,
        guard: config.guard.clone(),
        sandbox_socket: paths.component_socket(crate::ipc::Component::Sandbox),
        state_dir: paths.component_state_dir(crate::ipc::Component::Gateway),
        shared_workspaces: config
            .channels
            .iter()
            .filter(|(_, c)| c.workspace_scope == super::settings::WorkspaceScope::PerSender)
            .map(|(name, _)| name.clone())
            .collect(),
        user_limits: budget::UserLimits::from_settings(&config.limits),
        approvers: config
            .channels
            .iter()
            .filter(|(_, c)| !c.approvers.is_empty())
            .map(|(name, c)| (name.clone(), c.approvers.iter().cloned().collect()))
            .collect(),
    })
}

/// The per-user notes under `$STATE/gateway/memory` (0700), capped at
/// `[agent] max_memory_bytes` per user.
fn memory_store(setup: &RuntimeSetup) -> anyhow::Result<FileMemoryStore> {
    use anyhow::Context as _;
    use std::os::unix::fs::DirBuilderExt;
    let memory_dir = setup.state_dir.join("memory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&memory_dir)
        .with_context(|| format!("creating {}", memory_dir.display()))?;
    Ok(FileMemoryStore::new(
        memory_dir,
        setup.settings.max_memory_bytes,
    ))
}

/// Every tool the runtime has (the context policy may withhold some).
const TOOL_NAMES: [&str; 5] = [
    "run_command",
    "read_file",
    "write_file",
    "list_files",
    "memory",
];

/// The tools a chat's context policy leaves (no memory in groups by default);
/// there is no clipboard tool at all on a headless appliance.
fn allowed_tools(policy: &super::settings::ToolPolicy) -> Vec<String> {
    TOOL_NAMES
        .iter()
        .filter(|n| policy.allows(n))
        .map(|n| n.to_string())
        .collect()
}

/// `gateway_task_origins`: where each task came from and which tools it was
/// allowed, so an interrupted task can be resumed after a restart.
/// As of `state.db` schema 1 (created by the migration runner, see
/// `gateway::state_db`).
pub(crate) const ORIGINS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_task_origins (
    task_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    grp INTEGER NOT NULL,
    tools TEXT NOT NULL
);
";

fn save_origin(db: &Connection, id: &str, o: &Origin, tools: &[String]) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO gateway_task_origins (task_id, channel, chat, sender, grp, tools)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![id, o.channel, o.chat, o.sender, o.group, tools.join(",")],
    )?;
    Ok(())
}

fn load_origin(db: &Connection, id: &str) -> rusqlite::Result<Option<(Origin, Vec<String>)>> {
    use rusqlite::OptionalExtension;
    db.query_row(
        "SELECT channel, chat, sender, grp, tools FROM gateway_task_origins WHERE task_id = ?1",
        rusqlite::params![id],
        |r| {
            let tools: String = r.get(4)?;
            Ok((
                Origin {
                    channel: r.get(0)?,
                    chat: r.get(1)?,
                    sender: r.get(2)?,
                    group: r.get(3)?,
                },
                // Only names the runtime knows, whatever the row says.
                tools
                    .split(',')
                    .filter(|t| TOOL_NAMES.contains(t))
                    .map(str::to_string)
                    .collect(),
            ))
        },
    )
    .optional()
}

/// Where a task came from and where its replies go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    channel: String,
    chat: String,
    sender: String,
    group: bool,
}

impl Origin {
    fn requester(&self) -> String {
        format!("{}:{}", self.channel, self.sender)
    }
}

/// A task paused for an approval: everything needed to continue it.
#[derive(Debug)]
struct Paused {
    agent: Agent,
    history: Vec<Message>,
    tool_use_id: String,
    approval_id: String,
    request: ApprovalRequest,
    scope: TaskScope,
    /// The workspace's write generation when the approval was asked.
    generation: u64,
}

/// The paused call of a task being resumed.
#[derive(Debug)]
struct PausedCall {
    tool_use_id: String,
    approval_id: String,
    request: ApprovalRequest,
    generation: u64,
}

/// A task this process is running or holding.
#[derive(Debug)]
struct Live {
    origin: Origin,
    cancel: CancellationToken,
    run: Arc<Mutex<Option<u64>>>,
    paused: Option<Paused>,
    /// While a paused task is being resumed: its paused call.
    resuming: Option<PausedCall>,
    /// Who cancelled it and why, for the trail entry when it ends.
    cancelled: Option<CancelCause>,
}

/// Why a task is being cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CancelCause {
    /// The actor that asked (`coworkctl:uid=N`, `admin:owner`).
    by: String,
    why: CancelWhy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CancelWhy {
    /// `coworkctl tasks cancel` or the admin page.
    Requested,
    /// The requester's access to the channel was revoked.
    AccessRevoked,
}

impl CancelWhy {
    fn as_str(self) -> &'static str {
        match self {
            CancelWhy::Requested => "requested",
            CancelWhy::AccessRevoked => "access_revoked",
        }
    }

    /// Who is recorded as having denied the task's pending approval.
    fn decider(self, by: &str) -> Decider {
        match self {
            CancelWhy::Requested => Decider::Operator(by.to_string()),
            CancelWhy::AccessRevoked => Decider::Revocation,
        }
    }
}

/// How a run (re)starts.
#[derive(Debug)]
enum Start {
    Fresh,
    /// The paused call's result is already known (denied, expired).
    Resume(ToolOutcome),
    /// Approved: run the command (if the approval still matches), then resume.
    Approved {
        approver: String,
    },
}

/// The agent runtime (cheap to clone; one per gateway).
#[derive(Debug, Clone)]
pub struct AgentRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: AgentSettings,
    provider: Arc<dyn Provider>,
    guard: Arc<Guard>,
    sandbox: Arc<SandboxClient>,
    trail: Trail,
    replies: Arc<Replies>,
    /// `state.db`: users, tasks, approvals, usage (the process's one connection).
    state: Arc<Store>,
    memory: Arc<FileMemoryStore>,
    shared_workspaces: BTreeSet<String>,
    user_limits: budget::UserLimits,
    approvers: BTreeMap<String, BTreeSet<String>>,
    writes: Arc<WorkspaceWrites>,
    live: Mutex<HashMap<String, Live>>,
    conversations: Mutex<HashMap<(String, String, String), Vec<Message>>>,
    /// Tasks marked interrupted at start, announced once in the trail.
    interrupted_at_start: Mutex<Option<usize>>,
}

/// A store error as the gateway reports it.
fn store_err(e: store::StoreError) -> GatewayError {
    GatewayError::Sink {
        sink: "task",
        reason: e.to_string(),
    }
}

fn wire_store(e: store::StoreError) -> WireError {
    WireError::new(ErrorCode::Internal, e.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `t-` / `a-` and 12 hex digits.
fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

fn valid_id(prefix: char, id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 14
        && b[0] == prefix as u8
        && b[1] == b'-'
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

fn bad_id(what: &str, id: &str) -> WireError {
    WireError::new(
        ErrorCode::NotFound,
        format!(
            "no {what} {:?}",
            id.chars()
                .filter(|c| !c.is_control())
                .take(40)
                .collect::<String>()
        ),
    )
}

/// `approve a-…` / `deny a-…` (case-insensitive, alone in the message). In a
/// message that mentions the bot (a group's rule) the mention may come first
/// (`@bot approve a-…`, Slack's `<@U1> …`) or ride on the command
/// (`/approve@bot a-…`), as the platforms write them.
fn parse_decision(text: &str, mentions_bot: bool) -> Option<(bool, String)> {
    let mut words = text.split_whitespace().peekable();
    let is_mention =
        |w: &str| w.len() > 1 && (w.starts_with('@') || (w.starts_with("<@") && w.ends_with('>')));
    if mentions_bot && words.peek().is_some_and(|w| is_mention(w)) {
        words.next();
    }
    let mut verb = words.next()?.to_ascii_lowercase();
    if mentions_bot
        && verb.starts_with('/')
        && let Some((bare, _bot)) = verb.split_once('@')
    {
        verb = bare.to_string();
    }
    let id = words.next()?.to_ascii_lowercase();
    if words.next().is_some() || !valid_id('a', &id) {
        return None;
    }
    match verb.as_str() {
        "approve" | "/approve" => Some((true, id)),
        "deny" | "/deny" => Some((false, id)),
        _ => None,
    }
}

/// The workspace of a task's context: a stable name the sandbox accepts.
/// A sender's DM keeps the name derived from `channel:sender` (the DM is their
/// one chat there); each group chat gets its own, so a group never lists what
/// the DM tasks wrote. `shared`: one per sender across every chat, as the owner
/// chose for the channel.
fn workspace_of(origin: &Origin, shared: bool) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(origin.requester().as_bytes());
    if origin.group && !shared {
        // NUL cannot occur in a requester, so no group id can collide with a DM.
        h.update(b"\0group\0");
        h.update(origin.chat.as_bytes());
    }
    format!("u-{}", hex::encode(&h.finalize()[..8]))
}

/// Drop old messages, starting the kept part at a plain user message (never
/// between a tool call and its result).
fn trim_history(history: &mut Vec<Message>) {
    if history.len() <= HISTORY_CAP {
        return;
    }
    let mut start = history.len() - HISTORY_CAP;
    while start < history.len() {
        let m = &history[start];
        let plain_user = m.role == crate::agent::Role::User
            && m.content
                .iter()
                .all(|b| matches!(b, crate::agent::ContentBlock::Text { .. }));
        if plain_user {
            break;
        }
        start += 1;
    }
    history.drain(..start);
}

impl AgentRuntime {
    /// Builds the runtime; marks tasks a previous process left running as
    /// interrupted. `vault` must get its key before the first task.
    pub fn new(
        setup: RuntimeSetup,
        vault: Arc<VaultSecrets>,
        state: Arc<Store>,
        trail: Trail,
        replies: Arc<Replies>,
    ) -> anyhow::Result<AgentRuntime> {
        use anyhow::Context as _;
        let guard = Guard::from_settings(&setup.guard).context("loading the guard rules")?;
        let extra_ca = match &setup.settings.ca_file {
            Some(p) => Some(
                std::fs::read(p)
                    .with_context(|| format!("reading [agent] ca_file {}", p.display()))?,
            ),
            None => None,
        };
        let provider = crate::agent::provider_from_settings(&setup.settings, vault, extra_ca)
            .context("setting up the LLM provider")?;
        let (_, interrupted) = {
            let db = state.lock();
            let (_, interrupted) = TaskStore::open(&db, now()).context("opening the task table")?;
            ApprovalStore::open(&db).context("opening the approval table")?;
            ((), interrupted)
        };
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "tasks left running by the previous gateway were marked interrupted"
            );
        }
        let memory = Arc::new(memory_store(&setup)?);
        let sandbox = Arc::new(SandboxClient::new(
            setup.sandbox_socket,
            Role::Gateway,
            Duration::from_secs(10),
        ));
        Ok(AgentRuntime {
            inner: Arc::new(Inner {
                settings: setup.settings,
                provider,
                guard: Arc::new(guard),
                sandbox,
                trail,
                replies,
                state,
                memory,
                shared_workspaces: setup.shared_workspaces,
                user_limits: setup.user_limits,
                approvers: setup.approvers,
                writes: Arc::new(WorkspaceWrites::default()),
                live: Mutex::new(HashMap::new()),
                conversations: Mutex::new(HashMap::new()),
                interrupted_at_start: Mutex::new((interrupted > 0).then_some(interrupted)),
            }),
        })
    }

    /// Records, once, how many tasks the start found interrupted.
    pub async fn announce(&self) {
        let n = lock(&self.inner.interrupted_at_start).take();
        if let Some(n) = n {
            self.inner
                .trail
                .note("task.interrupted", "gateway", json!({"tasks": n}))
                .await;
        }
    }

    /// A `coworkctl tasks|approvals` or admin page request; `actor` is who asked.
    pub async fn handle(
        &self,
        actor: &str,
        request: AgentRequest,
    ) -> Result<AgentResponse, WireError> {
        let inner = &self.inner;
        match request {
            AgentRequest::TasksList { limit } => inner.list_tasks(limit.clamp(1, 1000)),
            AgentRequest::TaskShow { id } => {
                if !valid_id('t', &id) {
                    return Err(bad_id("task", &id));
                }
                let db = inner.state.lock();
                match TaskStore::attach(&db).get(&id).map_err(wire_store)? {
                    Some(t) => Ok(AgentResponse::Task(listing(t))),
                    None => Err(bad_id("task", &id)),
                }
            }
            AgentRequest::TaskCancel { id, force } => {
                if !valid_id('t', &id) {
                    return Err(bad_id("task", &id));
                }
                let cause = CancelCause {
                    by: actor.to_string(),
                    why: CancelWhy::Requested,
                };
                Inner::cancel(inner, &id, force, &cause)
                    .await
                    .map(AgentResponse::Done)
            }
            AgentRequest::TaskResume { id } => {
                if !valid_id('t', &id) {
                    return Err(bad_id("task", &id));
                }
                inner
                    .resume_interrupted(&id, actor)
                    .await
                    .map(AgentResponse::Done)
            }
            AgentRequest::ApprovalsList => inner.list_approvals(),
            AgentRequest::ProviderTest => inner.test_provider(actor).await.map(AgentResponse::Done),
            AgentRequest::ApprovalDecide { id, approve } => {
                if !valid_id('a', &id) {
                    return Err(bad_id("approval", &id));
                }
                Inner::decide(inner, &id, approve, &Decider::Operator(actor.to_string()))
                    .await
                    .map(AgentResponse::Done)
            }
        }
    }

    /// After `actor` revoked access on `channel` (`None`: everywhere): ends
    /// the live tasks of every sender there who no longer holds access and
    /// denies their pending approvals, each audited; says how many.
    pub async fn revoked(&self, channel: Option<&str>, actor: &str) -> Revoked {
        Inner::revoked(&self.inner, channel, actor).await
    }

    /// Replies waiting for a local chat, and whether a task of it still runs.
    pub fn local_inbox(&self, chat: &str) -> LocalInbox {
        let replies = self.inner.replies.take_local(chat);
        let busy = lock(&self.inner.live).values().any(|l| {
            l.origin.channel == LOCAL_CHANNEL && l.origin.chat == chat && l.paused.is_none()
        });
        LocalInbox { replies, busy }
    }
}

impl TaskSink for AgentRuntime {
    fn submit<'a>(&'a self, task: Task) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(Inner::submit(Arc::clone(&self.inner), task))
    }
}

fn listing(t: TaskRecord) -> TaskListing {
    TaskListing {
        id: t.id,
        user: t.user,
        state: t.state,
        prompt: t.prompt.chars().take(PROMPT_SHOWN).collect(),
        detail: t.detail,
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

impl Inner {
    fn transition(&self, id: &str, to: TaskState, detail: Option<&str>) {
        let db = self.state.lock();
        if let Err(e) = TaskStore::attach(&db).transition(id, to, detail, now()) {
            tracing::error!(task = %id, error = %e, "task state not recorded");
        }
    }

    /// Sends `text` to the task's chat; a reply that cannot be delivered
    /// (the platform refused it, its window closed, no transport runs) is
    /// noted as `task.reply_failed` with the reason, so the owner sees it.
    async fn reply(&self, origin: &Origin, text: &str) {
        if let Err(why) = self
            .replies
            .deliver(&origin.channel, &origin.chat, text)
            .await
        {
            self.trail
                .note(
                    "task.reply_failed",
                    &origin.requester(),
                    json!({
                        "channel": origin.channel,
                        "chat": origin.chat,
                        "why": crate::gateway::sinks::audit_detail(&why),
                    }),
                )
                .await;
        }
    }

    /// Whether the owner named `sender` an approver of `channel`.
    fn is_approver(&self, channel: &str, sender: &str) -> bool {
        self.approvers
            .get(channel)
            .is_some_and(|ids| ids.contains(sender))
    }

    async fn submit(self: Arc<Self>, task: Task) -> Result<String, GatewayError> {
        let origin = Origin {
            channel: task.user.channel.clone(),
            chat: task.inbound.chat().to_string(),
            sender: task.user.sender.clone(),
            group: task.inbound.context() == Context::Group,
        };
        let text = task.inbound.text().trim().to_string();
        if let Some((approve, id)) = parse_decision(&text, task.inbound.mentions_bot()) {
            return Ok(Inner::decide_in_chat(&self, &origin, approve, &id).await);
        }
        let requester = origin.requester();
        if let Some(busy) = lock(&self.live)
            .iter()
            .find(|(_, l)| l.origin == origin)
            .map(|(id, _)| id.clone())
        {
            return Ok(format!(
                "Task {busy} is still in progress. Wait for it to finish or ask the owner to cancel it."
            ));
        }
        if let Some(refusal) = self.over_user_limits(&requester) {
            self.trail
                .note(
                    "task.refused",
                    &requester,
                    json!({"channel": origin.channel, "chat": origin.chat, "why": refusal}),
                )
                .await;
            return Ok(refusal);
        }
        let id = new_id("t");
        let allowed = allowed_tools(&task.tools);
        {
            let db = self.state.lock();
            TaskStore::attach(&db)
                .create(&id, &requester, &text, now())
                .map_err(store_err)?;
            save_origin(&db, &id, &origin, &allowed).map_err(|e| GatewayError::Sink {
                sink: "task",
                reason: format!("recording where task {id} came from: {e}"),
            })?;
        }
        self.trail
            .note(
                "task.created",
                &requester,
                json!({"task": id, "channel": origin.channel, "chat": origin.chat,
                       "context": if origin.group { "group" } else { "dm" }, "length": text.len()}),
            )
            .await;
        self.start(id.clone(), origin, text, &allowed);
        Ok(format!("Working on it (task {id})."))
    }

    /// Why `requester` may not start another task now: too many in progress
    /// across their chats, or today's budget used.
    fn over_user_limits(&self, requester: &str) -> Option<String> {
        let max = self.user_limits.max_tasks;
        let running = lock(&self.live)
            .values()
            .filter(|l| l.origin.requester() == requester)
            .count();
        if running >= usize::try_from(max).unwrap_or(usize::MAX) {
            return Some(format!(
                "You already have {running} tasks in progress (at most {max} at once). \
                 Wait for one to finish or ask the owner to cancel it."
            ));
        }
        let priced = self.settings.prices.contains_key(&self.settings.model);
        match self.day_usage(requester) {
            Ok(used) => used.refusal(&self.user_limits, priced),
            // Fail closed, but say what happened: this is not the sender's budget.
            // The chat gets no store internals; the journal has them.
            Err(_) => Some(
                "I cannot start a task now: today's usage cannot be read (the appliance's \
                 store failed). The owner can see why in the journal."
                    .to_string(),
            ),
        }
    }

    /// Today's use by `requester`. An error is logged here and means no task
    /// starts (the callers fail closed).
    fn day_usage(&self, requester: &str) -> rusqlite::Result<budget::DayUsage> {
        let db = self.state.lock();
        budget::usage(&db, requester, budget::day_of(now())).inspect_err(|e| {
            tracing::error!(error = %e, requester, "reading the daily usage failed");
        })
    }

    /// Builds the task's agent with its tools and runs it on a tokio task.
    fn start(self: &Arc<Self>, id: String, origin: Origin, text: String, allowed: &[String]) {
        let requester = origin.requester();
        let run = Arc::new(Mutex::new(None));
        let scope = TaskScope {
            task_id: id.clone(),
            requester: requester.clone(),
            workspace: workspace_of(&origin, self.shared_workspaces.contains(&origin.channel)),
            writes: Arc::clone(&self.writes),
            sandbox: Arc::clone(&self.sandbox),
            trail: self.trail.clone(),
            run: Arc::clone(&run),
            limits: CommandLimits::from(&self.settings.limits),
        };
        let tools: Vec<Arc<dyn Tool>> = vec![
            Arc::new(RunCommandTool {
                scope: scope.clone(),
                guard: Arc::clone(&self.guard),
            }),
            Arc::new(SandboxFileTool {
                scope: scope.clone(),
                kind: FileTool::Read,
                guard: Arc::clone(&self.guard),
            }),
            Arc::new(SandboxFileTool {
                scope: scope.clone(),
                kind: FileTool::Write,
                guard: Arc::clone(&self.guard),
            }),
            Arc::new(SandboxFileTool {
                scope: scope.clone(),
                kind: FileTool::List,
                guard: Arc::clone(&self.guard),
            }),
            Arc::new(AuditedMemoryTool {
                scope: scope.clone(),
                inner: MemoryTool::new(
                    Arc::clone(&self.memory) as Arc<dyn crate::agent::tools::MemoryStore>,
                    requester.clone(),
                ),
            }),
        ];
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let s = &self.settings;
        let price = s.prices.get(&s.model).copied();
        let mut limits = Limits::from_settings(&s.limits, s.max_tokens_per_call);
        // No task outlives what is left of its sender's day.
        // A read that fails after the check above leaves the task nothing.
        let (tokens_left, cost_left) = self
            .day_usage(&requester)
            .map_or((0, 0.0), |used| used.remaining(&self.user_limits));
        limits.max_total_tokens = limits.max_total_tokens.min(tokens_left.max(1));
        limits.max_cost_usd = match price {
            None => None,
            Some(_) => limits.max_cost_usd.map(|c| c.min(cost_left)),
        };
        let agent = Agent::new(
            Arc::clone(&self.provider),
            s.model.clone(),
            SYSTEM_PROMPT,
            tools,
            &allowed,
            price,
            limits,
        );
        let key = (
            origin.channel.clone(),
            origin.chat.clone(),
            origin.sender.clone(),
        );
        let mut history = lock(&self.conversations)
            .get(&key)
            .cloned()
            .unwrap_or_default();
        history.push(Message::user_text(text));
        lock(&self.live).insert(
            id.clone(),
            Live {
                origin,
                cancel: CancellationToken::new(),
                run,
                paused: None,
                resuming: None,
                cancelled: None,
            },
        );
        let me = Arc::clone(self);
        tokio::spawn(async move { me.drive(id, agent, history, scope, Start::Fresh).await });
    }

    /// Runs (or continues) a task until it ends or pauses, then settles it.
    async fn drive(
        self: Arc<Self>,
        id: String,
        mut agent: Agent,
        mut history: Vec<Message>,
        scope: TaskScope,
        start: Start,
    ) {
        let cancel = match lock(&self.live).get(&id) {
            Some(l) => l.cancel.clone(),
            None => return,
        };
        self.transition(&id, TaskState::Running, None);
        let outcome = match start {
            Start::Fresh => {
                self.trail
                    .note(
                        "task.started",
                        &scope.requester,
                        json!({"task": id, "tools": agent.offered_tools()}),
                    )
                    .await;
                agent.run(&mut history, &cancel).await
            }
            Start::Resume(result) => {
                let Some(tool_use_id) = self.paused_call(&id) else {
                    return;
                };
                agent
                    .resume(&mut history, &tool_use_id, result, &cancel)
                    .await
            }
            Start::Approved { approver } => {
                let Some(PausedCall {
                    tool_use_id,
                    approval_id,
                    request,
                    generation,
                }) = self.paused_request(&id)
                else {
                    return;
                };
                let usable = {
                    let db = self.state.lock();
                    ApprovalStore::open(&db)
                        .and_then(|a| a.take(&approval_id, &request.command, &request.cwd, now()))
                        .unwrap_or(false)
                };
                let now_generation = self.writes.generation(&scope.workspace);
                if usable && now_generation != generation {
                    // Another task wrote the workspace after the owner was
                    // asked: what they approved is not what would run.
                    self.trail
                        .note(
                            "approval.lapsed",
                            &scope.requester,
                            json!({"task": id, "approval": approval_id, "command": request.command,
                                   "workspace": scope.workspace, "why": "workspace_changed"}),
                        )
                        .await;
                    let Some(origin) = lock(&self.live).get(&id).map(|l| l.origin.clone()) else {
                        return;
                    };
                    self.pause(id, origin, agent, history, scope, tool_use_id, request)
                        .await;
                    return;
                }
                // A file write runs only if its content still hashes to what was approved.
                let bound = request
                    .write
                    .as_ref()
                    .is_none_or(|w| w.binding() == request.command);
                let result = if !usable || !bound {
                    ToolOutcome::Denied("the approval does not match this command any more".into())
                } else if let Some(write) = &request.write {
                    tokio::select! {
                        r = scope.write_approved(write, &approver) => r,
                        _ = cancel.cancelled() => ToolOutcome::Denied("the task was cancelled".into()),
                    }
                } else {
                    tokio::select! {
                        r = scope.run_in_sandbox(&request.command, "ask", &request.reason, Some(approver)) => r,
                        _ = cancel.cancelled() => ToolOutcome::Denied("the task was cancelled".into()),
                    }
                };
                agent
                    .resume(&mut history, &tool_use_id, result, &cancel)
                    .await
            }
        };
        self.settle(id, agent, history, scope, outcome).await;
    }

    fn paused_call(&self, id: &str) -> Option<String> {
        self.paused_request(id).map(|c| c.tool_use_id)
    }

    /// The paused call of a task being resumed (kept in `Live` until settled).
    fn paused_request(&self, id: &str) -> Option<PausedCall> {
        let mut live = lock(&self.live);
        let resuming = live.get_mut(id)?.resuming.take()?;
        Some(resuming)
    }

    async fn settle(
        self: Arc<Self>,
        id: String,
        agent: Agent,
        history: Vec<Message>,
        scope: TaskScope,
        outcome: RunOutcome,
    ) {
        let Some(origin) = lock(&self.live).get(&id).map(|l| l.origin.clone()) else {
            return;
        };
        let requester = origin.requester();
        if !matches!(outcome.end, EndReason::AwaitingApproval { .. }) {
            let db = self.state.lock();
            let tokens = outcome
                .usage
                .input_tokens
                .saturating_add(outcome.usage.output_tokens);
            if let Err(e) = budget::record(
                &db,
                &requester,
                budget::day_of(now()),
                tokens,
                outcome.cost_usd,
            ) {
                tracing::error!(task = %id, error = %e, "recording the task's usage");
            }
        }
        let totals = json!({"task": id, "iterations": outcome.iterations,
            "input_tokens": outcome.usage.input_tokens, "output_tokens": outcome.usage.output_tokens,
            "cost_usd": outcome.cost_usd});
        let (state, detail, text) = match outcome.end {
            EndReason::AwaitingApproval {
                tool_use_id,
                request,
            } => {
                self.pause(id, origin, agent, history, scope, tool_use_id, request)
                    .await;
                return;
            }
            EndReason::Completed => {
                let key = (
                    origin.channel.clone(),
                    origin.chat.clone(),
                    origin.sender.clone(),
                );
                let mut history = history;
                trim_history(&mut history);
                lock(&self.conversations).insert(key, history);
                self.trail.note("task.completed", &requester, totals).await;
                let text = if outcome.final_text.trim().is_empty() {
                    "(The assistant finished without an answer.)".to_string()
                } else {
                    outcome.final_text.clone()
                };
                (TaskState::Completed, "completed".to_string(), text)
            }
            EndReason::Cancelled => {
                let mut p = totals.clone();
                if let Some(c) = lock(&self.live).get(&id).and_then(|l| l.cancelled.clone()) {
                    p["by"] = json!(c.by);
                    p["why"] = json!(c.why.as_str());
                }
                self.trail.note("task.cancelled", &requester, p).await;
                (
                    TaskState::Cancelled,
                    "cancelled".to_string(),
                    format!("Task {id} was cancelled."),
                )
            }
            EndReason::MaxIterations
            | EndReason::MaxTokens
            | EndReason::MaxCost
            | EndReason::Deadline => {
                let (limit, sentence) = match outcome.end {
                    EndReason::MaxIterations => (
                        "max_iterations",
                        format!(
                            "it reached its limit of {} model calls",
                            self.settings.limits.max_iterations
                        ),
                    ),
                    EndReason::MaxTokens => (
                        "max_tokens",
                        format!(
                            "it reached its limit of {} tokens",
                            self.settings.limits.max_tokens_per_task
                        ),
                    ),
                    EndReason::MaxCost => (
                        "max_cost",
                        format!(
                            "it reached its cost limit of {} USD",
                            self.settings.limits.max_cost_usd
                        ),
                    ),
                    _ => (
                        "deadline",
                        format!(
                            "it ran out of its {} seconds",
                            self.settings.limits.task_deadline_secs
                        ),
                    ),
                };
                let mut p = totals.clone();
                p["limit"] = json!(limit);
                self.trail
                    .note("task.limit_hit", &requester, p.clone())
                    .await;
                self.trail.note("task.failed", &requester, p).await;
                (
                    TaskState::Failed,
                    limit.to_string(),
                    format!("I stopped working on task {id} because {sentence}."),
                )
            }
            EndReason::NoPrice { model } => {
                let mut p = totals.clone();
                p["error"] = json!("no_price");
                self.trail.note("task.failed", &requester, p).await;
                (
                    TaskState::Failed,
                    "no_price".to_string(),
                    format!("Task {id} could not run: the model {model} has no price configured."),
                )
            }
            EndReason::ProviderFailed(e) => {
                // ProviderError texts name the provider and the failure, never
                // a key or a response body.
                let mut p = totals.clone();
                p["error"] = json!(super::sinks::audit_detail(&e.to_string()));
                self.trail.note("task.failed", &requester, p).await;
                (
                    TaskState::Failed,
                    super::sinks::audit_detail(&e.to_string()),
                    format!("Task {id} failed: the language model could not be used ({e})."),
                )
            }
        };
        self.transition(&id, state, Some(&detail));
        // The reply is queued before the task stops counting as live, so a
        // poller that sees it idle also sees its reply.
        self.reply(&origin, &text).await;
        lock(&self.live).remove(&id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_setup(dir: &std::path::Path, settings: AgentSettings) -> RuntimeSetup {
        RuntimeSetup {
            settings,
            guard: GuardSettings::default(),
            sandbox_socket: dir.join("sandbox.sock"),
            state_dir: dir.to_path_buf(),
            shared_workspaces: Default::default(),
            user_limits: budget::UserLimits::from_settings(&Default::default()),
            approvers: Default::default(),
        }
    }

    /// A reply that cannot be delivered is not dropped silently: the trail
    /// says which chat and why (for WhatsApp, the closed service window).
    #[tokio::test]
    async fn an_undeliverable_reply_is_noted_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let setup = test_setup(dir.path(), AgentSettings::default());
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let audit = Arc::new(crate::gateway::MemoryAudit::default());
        let runtime = AgentRuntime::new(
            setup,
            Arc::new(VaultSecrets::new(Arc::clone(&store))),
            store,
            Trail::new(audit.clone()),
            Arc::new(Replies::default()),
        )
        .unwrap();
        let origin = Origin {
            channel: "whatsapp".into(),
            chat: "16505551234".into(),
            sender: "16505551234".into(),
            group: false,
        };
        runtime.inner.reply(&origin, "done").await;
        let noted: Vec<_> = audit
            .entries()
            .into_iter()
            .filter(|e| e.kind == "task.reply_failed")
            .collect();
        assert_eq!(noted.len(), 1);
        assert_eq!(noted[0].subject, "whatsapp:16505551234");
        assert!(
            noted[0].payload["why"]
                .as_str()
                .unwrap()
                .contains("no running transport"),
            "{:?}",
            noted[0].payload
        );
    }

    #[test]
    fn the_configured_memory_cap_is_enforced() {
        use crate::agent::tools::MemoryStore as _;
        let dir = tempfile::tempdir().unwrap();
        let settings = AgentSettings {
            max_memory_bytes: 2048,
            ..AgentSettings::default()
        };
        let setup = test_setup(dir.path(), settings);
        let store = memory_store(&setup).unwrap();
        store.append("local:uid:1", &"a".repeat(1500)).unwrap();
        // 1501 + 600 + 1 > 2048: refused (the old hard-coded 64 KiB took it).
        let e = store.append("local:uid:1", &"b".repeat(600)).unwrap_err();
        assert!(e.to_string().contains("2048"), "{e}");
        assert_eq!(store.read("local:uid:1").unwrap().len(), 1501);
        // Another user has a cap of their own.
        store.append("local:uid:2", &"c".repeat(600)).unwrap();
    }

    #[test]
    fn ids_and_decisions_parse_strictly() {
        let id = new_id("a");
        assert!(valid_id('a', &id), "{id}");
        assert!(!valid_id('t', &id));
        for bad in [
            "",
            "a-",
            "a-12345678901g",
            "a-1234567890123",
            "../etc/passwd",
            "a-12345678901\u{0}",
        ] {
            assert!(!valid_id('a', bad), "{bad:?}");
        }
        assert_eq!(
            parse_decision(&format!("approve {id}"), false),
            Some((true, id.clone()))
        );
        assert_eq!(
            parse_decision(
                &format!("  DENY {}  ", id.to_uppercase().replace("A-", "a-")),
                false
            ),
            Some((false, id.clone()))
        );
        assert_eq!(parse_decision(&format!("approve {id} please"), false), None);
        assert_eq!(parse_decision("approve everything", false), None);
        assert_eq!(parse_decision("approve", false), None);
        // A group's mention, before the verb or on the command.
        for text in [
            format!("@cowork_bot approve {id}"),
            format!("<@U0BOT> approve {id}"),
            format!("/approve@cowork_bot {id}"),
        ] {
            assert_eq!(
                parse_decision(&text, true),
                Some((true, id.clone())),
                "{text}"
            );
            assert_eq!(parse_decision(&text, false), None, "{text}");
        }
        assert_eq!(parse_decision(&format!("@a @b approve {id}"), true), None);
        assert_eq!(parse_decision(&format!("@ approve {id}"), true), None);
    }

    #[test]
    fn groups_get_no_memory_and_nobody_a_clipboard() {
        use crate::gateway::ToolPolicy;
        let dm = allowed_tools(&ToolPolicy::default());
        assert!(dm.contains(&"memory".to_string()) && dm.contains(&"run_command".to_string()));
        let group = allowed_tools(&ToolPolicy::group_default());
        assert!(!group.contains(&"memory".to_string()), "{group:?}");
        assert_eq!(group.len(), TOOL_NAMES.len() - 1);
        assert!(!TOOL_NAMES.contains(&"clipboard"));
        let none = allowed_tools(&ToolPolicy {
            deny: TOOL_NAMES.iter().map(|s| s.to_string()).collect(),
        });
        assert!(none.is_empty());
    }

    #[test]
    fn workspace_names_are_fixed_form() {
        let o = |sender: &str, chat: &str, group: bool| Origin {
            channel: "telegram".into(),
            chat: chat.into(),
            sender: sender.into(),
            group,
        };
        let w = workspace_of(&o("../../etc", "../../etc", false), false);
        assert!(w.starts_with("u-") && w.len() == 18, "{w}");
        assert_ne!(w, workspace_of(&o("1", "1", false), false));
        // A DM keeps the name it had when workspaces were per sender.
        assert_eq!(w, {
            use sha2::Digest;
            let d = sha2::Sha256::digest(b"telegram:../../etc");
            format!("u-{}", hex::encode(&d[..8]))
        });
    }

    /// Issue 17.4: a group and the same sender's DM shared one workspace.
    #[test]
    fn each_chat_has_its_own_workspace_unless_the_channel_shares() {
        let o = |chat: &str, group: bool| Origin {
            channel: "telegram".into(),
            chat: chat.into(),
            sender: "111".into(),
            group,
        };
        let dm = workspace_of(&o("111", false), false);
        let g1 = workspace_of(&o("-100", true), false);
        let g2 = workspace_of(&o("-200", true), false);
        assert_ne!(dm, g1);
        assert_ne!(g1, g2);
        // Another sender in the same group has a workspace of their own.
        let other = Origin {
            sender: "222".into(),
            ..o("-100", true)
        };
        assert_ne!(workspace_of(&other, false), g1);
        // per-sender: one across the DM and every group.
        assert_eq!(workspace_of(&o("-100", true), true), dm);
        assert_eq!(workspace_of(&o("-200", true), true), dm);
    }

    #[test]
    fn a_write_moves_the_workspace_generation_before_and_after() {
        let w = WorkspaceWrites::default();
        assert_eq!(w.generation("u-1"), 0);
        {
            let _g = w.writing("u-1");
            // Seen as changed while the write is in progress.
            assert_eq!(w.generation("u-1"), 1);
        }
        assert_eq!(w.generation("u-1"), 2);
        assert_eq!(w.generation("u-2"), 0);
    }

    #[test]
    fn history_is_trimmed_at_a_user_message() {
        let mut h: Vec<Message> = (0..(HISTORY_CAP + 3))
            .map(|i| {
                if i % 2 == 0 {
                    Message::user_text(format!("u{i}"))
                } else {
                    Message {
                        role: crate::agent::Role::Assistant,
                        content: vec![crate::agent::ContentBlock::Text {
                            text: format!("a{i}"),
                        }],
                    }
                }
            })
            .collect();
        trim_history(&mut h);
        assert!(h.len() <= HISTORY_CAP);
        assert_eq!(h[0].role, crate::agent::Role::User);
    }
}
