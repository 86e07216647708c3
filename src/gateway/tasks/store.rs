//! Task and approval stores: tables `agent_tasks` and `agent_approvals` in a
//! rusqlite `Connection` the gateway passes in (its `state.db`). States are
//! types; every change is a checked transition written with a compare-and-set
//! on the old state. Times are Unix seconds passed in by the caller.

use rusqlite::{Connection, OptionalExtension, params};

/// Life of a task: the IPC type itself (one type on the wire and in the
/// table, same spellings); the store adds parsing and the allowed transitions.
pub use crate::ipc::TaskState;

/// A failed task or approval store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating the `{table}` table failed: {source}")]
    CreateTable {
        table: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{op} on task {id} failed: {source}")]
    Task {
        op: &'static str,
        id: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("task {id} cannot go from {from} to {to}")]
    Transition {
        id: String,
        from: &'static str,
        to: &'static str,
    },
    #[error("task {id} does not exist")]
    NoTask { id: String },
    #[error("{op} on approval {id} failed: {source}")]
    Approval {
        op: &'static str,
        id: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("task {id} has an unknown state `{state}` in the database")]
    ParseState { id: String, state: String },
}

impl TaskState {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => TaskState::Queued,
            "running" => TaskState::Running,
            "awaiting_approval" => TaskState::AwaitingApproval,
            "completed" => TaskState::Completed,
            "failed" => TaskState::Failed,
            "cancelled" => TaskState::Cancelled,
            "interrupted" => TaskState::Interrupted,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled
        )
    }

    /// Whether `self → next` is allowed.
    pub fn can_go_to(self, next: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, next),
            (Queued, Running | Cancelled)
                | (
                    Running,
                    AwaitingApproval | Completed | Failed | Cancelled | Interrupted
                )
                | (AwaitingApproval, Running | Failed | Cancelled | Interrupted)
                | (Interrupted, Queued | Cancelled | Failed)
        )
    }
}

/// One task row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub id: String,
    pub user: String,
    pub prompt: String,
    pub state: TaskState,
    /// Why it ended (an `EndReason` name or error text), for terminal states.
    pub detail: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `agent_tasks` as of `state.db` schema 1 (see `gateway::state_db`). On
/// `state.db` the migration runner creates it; [`TaskStore::open`] runs it too
/// (a no-op there) so the store also works on a bare connection.
pub(crate) const TASKS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agent_tasks (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    prompt TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_tasks_state ON agent_tasks(state);
";

/// `agent_approvals` as of `state.db` schema 1, like [`TASKS_SCHEMA`].
pub(crate) const APPROVALS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agent_approvals (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    command TEXT NOT NULL,
    cwd TEXT NOT NULL,
    status TEXT NOT NULL,
    approver TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// `state.db` schema 2: the listings the owner reads (`coworkctl tasks`,
/// `approvals`, the dashboard) by index instead of a scan and sort of every
/// task and approval ever kept (both tables grow for the appliance's life).
/// Additive: an image of schema 1 opens the file as it is, and SQLite keeps
/// the indexes current for its writes too.
pub(crate) const LISTING_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS agent_tasks_created ON agent_tasks(created_at);
CREATE INDEX IF NOT EXISTS agent_approvals_created ON agent_approvals(created_at);
CREATE INDEX IF NOT EXISTS agent_approvals_status ON agent_approvals(status, created_at);
";

/// The `agent_tasks` table.
#[derive(Debug)]
pub struct TaskStore<'c> {
    conn: &'c Connection,
}

impl<'c> TaskStore<'c> {
    /// Create the table if needed and mark tasks left `running` or
    /// `awaiting_approval` by a previous process as `interrupted`. Returns the
    /// store and how many tasks were interrupted.
    pub fn open(conn: &'c Connection, now: i64) -> Result<(Self, usize), StoreError> {
        conn.execute_batch(TASKS_SCHEMA)
            .map_err(|source| StoreError::CreateTable {
                table: "agent_tasks",
                source,
            })?;
        let n = conn
            .execute(
                "UPDATE agent_tasks SET state = 'interrupted', updated_at = ?1
                 WHERE state IN ('running', 'awaiting_approval')",
                params![now],
            )
            .map_err(|source| StoreError::Task {
                op: "marking interrupted",
                id: "*".into(),
                source,
            })?;
        Ok((TaskStore { conn }, n))
    }

    /// The store on a connection whose table [`TaskStore::open`] already set up
    /// in this process (does not mark anything interrupted).
    pub fn attach(conn: &'c Connection) -> Self {
        TaskStore { conn }
    }

    /// The most recent `limit` tasks, newest first.
    pub fn recent(&self, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
        let err = |source| StoreError::Task {
            op: "listing",
            id: "*".into(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM agent_tasks ORDER BY created_at DESC, rowid DESC LIMIT ?1")
            .map_err(err)?;
        let ids = stmt
            .query_map(params![limit], |r| r.get::<_, String>(0))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = self.get(&id)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Insert a new `queued` task.
    pub fn create(&self, id: &str, user: &str, prompt: &str, now: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO agent_tasks (id, user, prompt, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
                params![id, user, prompt, now],
            )
            .map_err(|source| StoreError::Task {
                op: "creating",
                id: id.into(),
                source,
            })?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, user, prompt, state, detail, created_at, updated_at
                 FROM agent_tasks WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|source| StoreError::Task {
                op: "reading",
                id: id.into(),
                source,
            })?;
        let Some((id, user, prompt, state, detail, created_at, updated_at)) = row else {
            return Ok(None);
        };
        let state = TaskState::parse(&state).ok_or_else(|| StoreError::ParseState {
            id: id.clone(),
            state: state.clone(),
        })?;
        Ok(Some(TaskRecord {
            id,
            user,
            prompt,
            state,
            detail,
            created_at,
            updated_at,
        }))
    }

    /// Move a task to `to`, if the transition is allowed from its current state.
    pub fn transition(
        &self,
        id: &str,
        to: TaskState,
        detail: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let current = self
            .get(id)?
            .ok_or_else(|| StoreError::NoTask { id: id.into() })?;
        if !current.state.can_go_to(to) {
            return Err(StoreError::Transition {
                id: id.into(),
                from: current.state.as_str(),
                to: to.as_str(),
            });
        }
        let n = self
            .conn
            .execute(
                "UPDATE agent_tasks SET state = ?1, detail = ?2, updated_at = ?3
                 WHERE id = ?4 AND state = ?5",
                params![to.as_str(), detail, now, id, current.state.as_str()],
            )
            .map_err(|source| StoreError::Task {
                op: "updating",
                id: id.into(),
                source,
            })?;
        if n != 1 {
            return Err(StoreError::Transition {
                id: id.into(),
                from: current.state.as_str(),
                to: to.as_str(),
            });
        }
        Ok(())
    }

    /// Ids of tasks in `state`, oldest first.
    pub fn ids_in_state(&self, state: TaskState) -> Result<Vec<String>, StoreError> {
        let err = |source| StoreError::Task {
            op: "listing",
            id: state.as_str().into(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM agent_tasks WHERE state = ?1 ORDER BY created_at, id")
            .map_err(err)?;
        let rows = stmt
            .query_map(params![state.as_str()], |r| r.get::<_, String>(0))
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }
}

/// Default life of an approval request: 5 minutes.
pub const DEFAULT_APPROVAL_TTL_SECS: i64 = 300;

/// State of an approval request: the IPC type itself; the store adds parsing.
pub use crate::ipc::ApprovalStatus;

impl ApprovalStatus {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "expired" => ApprovalStatus::Expired,
            "used" => ApprovalStatus::Used,
            _ => return None,
        })
    }
}

/// One approval row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub id: String,
    pub task_id: String,
    pub command: String,
    pub cwd: String,
    pub status: ApprovalStatus,
    pub approver: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The `agent_approvals` table: each approval is bound to one task, the exact
/// command line and working directory, and an expiry.
#[derive(Debug)]
pub struct ApprovalStore<'c> {
    conn: &'c Connection,
}

impl<'c> ApprovalStore<'c> {
    pub fn open(conn: &'c Connection) -> Result<Self, StoreError> {
        conn.execute_batch(APPROVALS_SCHEMA)
            .map_err(|source| StoreError::CreateTable {
                table: "agent_approvals",
                source,
            })?;
        Ok(ApprovalStore { conn })
    }

    fn err(op: &'static str, id: &str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let id = id.to_string();
        move |source| StoreError::Approval { op, id, source }
    }

    /// Record a pending request expiring `ttl_secs` after `now`.
    pub fn request(
        &self,
        id: &str,
        task_id: &str,
        command: &str,
        cwd: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO agent_approvals (id, task_id, command, cwd, status, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
                params![id, task_id, command, cwd, now, now.saturating_add(ttl_secs)],
            )
            .map_err(Self::err("creating", id))?;
        Ok(())
    }

    /// Current status, turning an undecided, expired request into `Expired`.
    pub fn status(&self, id: &str, now: i64) -> Result<Option<ApprovalStatus>, StoreError> {
        self.conn
            .execute(
                "UPDATE agent_approvals SET status = 'expired'
                 WHERE id = ?1 AND status = 'pending' AND expires_at <= ?2",
                params![id, now],
            )
            .map_err(Self::err("expiring", id))?;
        let s: Option<String> = self
            .conn
            .query_row(
                "SELECT status FROM agent_approvals WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(Self::err("reading", id))?;
        Ok(s.and_then(|s| ApprovalStatus::parse(&s)))
    }

    /// The owner's decision. Only a pending, unexpired request can be decided;
    /// returns the resulting status (`Expired` when too late).
    pub fn decide(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        now: i64,
    ) -> Result<Option<ApprovalStatus>, StoreError> {
        let to = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        self.conn
            .execute(
                "UPDATE agent_approvals SET status = ?1, approver = ?2
                 WHERE id = ?3 AND status = 'pending' AND expires_at > ?4",
                params![to.as_str(), approver, id, now],
            )
            .map_err(Self::err("deciding", id))?;
        self.status(id, now)
    }

    /// One request (its status as stored; call [`ApprovalStore::status`] first
    /// to turn an expired one into `Expired`).
    pub fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        Ok(self
            .select("WHERE id = ?1", params![id], id)?
            .into_iter()
            .next())
    }

    /// Requests still pending at `now`, oldest first (expired ones are marked so).
    pub fn pending(&self, now: i64) -> Result<Vec<ApprovalRecord>, StoreError> {
        self.conn
            .execute(
                "UPDATE agent_approvals SET status = 'expired'
                 WHERE status = 'pending' AND expires_at <= ?1",
                params![now],
            )
            .map_err(Self::err("expiring", "*"))?;
        self.select(
            "WHERE status = 'pending' ORDER BY created_at, rowid",
            params![],
            "*",
        )
    }

    /// The most recent `limit` requests, newest first.
    pub fn recent(&self, limit: u32) -> Result<Vec<ApprovalRecord>, StoreError> {
        let mut v = self.select(
            "ORDER BY created_at DESC, rowid DESC LIMIT ?1",
            params![limit],
            "*",
        )?;
        v.truncate(limit as usize);
        Ok(v)
    }

    fn select(
        &self,
        tail: &str,
        args: &[&dyn rusqlite::ToSql],
        id: &str,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let sql = format!(
            "SELECT id, task_id, command, cwd, status, approver, created_at, expires_at
             FROM agent_approvals {tail}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(Self::err("listing", id))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .map_err(Self::err("listing", id))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, task_id, command, cwd, status, approver, created_at, expires_at) =
                row.map_err(Self::err("listing", id))?;
            // An unknown status in the database is shown as expired (never usable).
            let status = ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Expired);
            out.push(ApprovalRecord {
                id,
                task_id,
                command,
                cwd,
                status,
                approver,
                created_at,
                expires_at,
            });
        }
        Ok(out)
    }

    /// Whether `command` may run in `cwd` now under approval `id`: only if it
    /// was approved, is unexpired, and the command and cwd match exactly. A
    /// successful check uses the approval up (one run per approval).
    pub fn take(&self, id: &str, command: &str, cwd: &str, now: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE agent_approvals SET status = 'used'
                 WHERE id = ?1 AND status = 'approved' AND command = ?2 AND cwd = ?3
                   AND expires_at > ?4",
                params![id, command, cwd, now],
            )
            .map_err(Self::err("using", id))?;
        Ok(n == 1)
    }
}
