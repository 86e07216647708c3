//! What `coworkctl tasks|approvals` and the admin page ask of the runtime:
//! listings, cancel, resuming an interrupted task and testing the provider;
//! and what a revocation of a sender's access ends.

use super::*;

impl Inner {
    pub(super) fn list_tasks(&self, limit: u32) -> Result<AgentResponse, WireError> {
        let db = self.state.lock();
        let tasks = TaskStore::attach(&db).recent(limit).map_err(wire_store)?;
        Ok(AgentResponse::Tasks(
            tasks.into_iter().map(listing).collect(),
        ))
    }

    /// One minimal model request under the settings in force, for the
    /// owner's "test connection": what the model said, or the provider's
    /// error in one sentence (ProviderError texts never carry the key).
    pub(super) async fn test_provider(&self, actor: &str) -> Result<String, WireError> {
        const WITHIN: Duration = Duration::from_secs(30);
        let request = crate::agent::ChatRequest {
            model: self.settings.model.clone(),
            system: String::new(),
            messages: vec![Message::user_text("Reply with the single word OK.")],
            tools: Vec::new(),
            max_tokens: 16,
        };
        let name = self.provider.name();
        let cancel = CancellationToken::new();
        let answer = tokio::time::timeout(WITHIN, self.provider.complete(&request, &cancel)).await;
        let result = match answer {
            Ok(Ok(r)) => {
                let said: String = r.text().chars().take(80).collect();
                Ok(format!(
                    "{name} answered with model {}: \"{}\" ({} tokens in, {} out)",
                    self.settings.model,
                    said.trim(),
                    r.usage.input_tokens,
                    r.usage.output_tokens
                ))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("{name}: no answer within {} s", WITHIN.as_secs())),
        };
        let payload = json!({
            "provider": name,
            "model": self.settings.model,
            "ok": result.is_ok(),
            "error": result.as_ref().err(),
        });
        self.trail
            .note("agent.provider_tested", actor, payload)
            .await;
        result.map_err(|e| WireError::new(ErrorCode::Unavailable, e))
    }

    pub(super) fn list_approvals(&self) -> Result<AgentResponse, WireError> {
        let db = self.state.lock();
        let approvals = ApprovalStore::open(&db)
            .and_then(|a| a.pending(now()))
            .map_err(wire_store)?;
        let tasks = TaskStore::attach(&db);
        let mut out = Vec::new();
        for a in approvals {
            let requester = tasks
                .get(&a.task_id)
                .map_err(wire_store)?
                .map(|t| t.user)
                .unwrap_or_default();
            out.push(ApprovalListing {
                id: a.id,
                task_id: a.task_id,
                command: a.command,
                cwd: a.cwd,
                requester,
                status: a.status,
                approver: a.approver,
                created_at: a.created_at,
                expires_at: a.expires_at,
            });
        }
        Ok(AgentResponse::Approvals(out))
    }

    /// Runs an `interrupted` task again from its message (its earlier tool
    /// calls are not replayed; the model starts afresh).
    pub(super) async fn resume_interrupted(
        self: &Arc<Self>,
        id: &str,
        actor: &str,
    ) -> Result<String, WireError> {
        let (task, origin) = {
            let db = self.state.lock();
            let task = TaskStore::attach(&db)
                .get(id)
                .map_err(wire_store)?
                .ok_or_else(|| bad_id("task", id))?;
            (
                task,
                load_origin(&db, id)
                    .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?,
            )
        };
        if task.state != TaskState::Interrupted {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "task {id} is {}; only an interrupted task can be resumed",
                    task.state.as_str()
                ),
            ));
        }
        let Some((origin, allowed)) = origin else {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "task {id} has no record of its chat; close it with coworkctl tasks cancel"
                ),
            ));
        };
        if lock(&self.live).values().any(|l| l.origin == origin) {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                "another task of the same chat is in progress; resume this one after it"
                    .to_string(),
            ));
        }
        self.transition(id, TaskState::Queued, Some("resumed"));
        self.trail
            .note(
                "task.resumed",
                &origin.requester(),
                json!({"task": id, "by": actor}),
            )
            .await;
        self.start(id.to_string(), origin, task.prompt, &allowed);
        Ok(format!("task {id} resumed"))
    }

    pub(super) async fn cancel(
        self: &Arc<Self>,
        id: &str,
        force: bool,
        cause: &CancelCause,
    ) -> Result<String, WireError> {
        let actor = cause.by.as_str();
        let why = cause.why.as_str();
        let live = {
            let mut live = lock(&self.live);
            match live.get_mut(id) {
                Some(l) => {
                    l.cancelled = Some(cause.clone());
                    l.cancel.cancel();
                    let run = *lock(&l.run);
                    let paused = l.paused.take();
                    Some((l.origin.clone(), run, paused))
                }
                None => None,
            }
        };
        if let Some((origin, run, paused)) = live {
            self.trail
                .note(
                    "task.cancel_requested",
                    &origin.requester(),
                    json!({"task": id, "by": actor, "why": why, "force": force}),
                )
                .await;
            if let Some(run_id) = run {
                let _ = self
                    .sandbox
                    .call(ComponentRequest::Sandbox(SandboxRequest::Cancel {
                        run_id,
                        force,
                    }))
                    .await;
            }
            if let Some(p) = paused {
                // Waiting for an approval: nothing runs; close it here, and
                // the request with it (denied, so it can never be approved).
                let decider = cause.why.decider(actor);
                let denied = {
                    let db = self.state.lock();
                    ApprovalStore::open(&db)
                        .and_then(|a| a.decide(&p.approval_id, false, &decider.name(), now()))
                };
                match denied {
                    Ok(Some(ApprovalStatus::Denied)) => {
                        let mut payload = json!({"task": id, "approval": p.approval_id,
                                                 "command": p.request.command, "cwd": p.request.cwd,
                                                 "by": actor, "why": why});
                        decider.audit(&mut payload);
                        self.trail
                            .note("approval.denied", &origin.requester(), payload)
                            .await;
                    }
                    Ok(other) => tracing::info!(
                        task = %id,
                        status = other.map_or("unknown", |s| s.as_str()),
                        "the cancelled task's approval was already closed"
                    ),
                    Err(e) => {
                        tracing::error!(task = %id, error = %e, "the cancelled task's approval not closed")
                    }
                }
                self.transition(id, TaskState::Cancelled, Some("cancelled"));
                lock(&self.live).remove(id);
                self.trail
                    .note(
                        "task.cancelled",
                        &origin.requester(),
                        json!({"task": id, "by": actor, "why": why}),
                    )
                    .await;
                self.reply(&origin, &format!("Task {id} was cancelled."))
                    .await;
                return Ok(format!("task {id} cancelled"));
            }
            // Running: the loop ends on the token; wait briefly for it.
            let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
            while tokio::time::Instant::now() < deadline {
                if !lock(&self.live).contains_key(id) {
                    return Ok(format!("task {id} cancelled"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return Ok(format!(
                "task {id}: cancel requested; it stops at its next step"
            ));
        }
        let record = {
            let db = self.state.lock();
            TaskStore::attach(&db).get(id).map_err(wire_store)?
        };
        let Some(t) = record else {
            return Err(bad_id("task", id));
        };
        let closable = matches!(t.state, TaskState::Interrupted | TaskState::Queued)
            || (force && matches!(t.state, TaskState::Running | TaskState::AwaitingApproval));
        if !closable {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                if t.state.is_terminal() {
                    format!("task {id} has already ended ({})", t.state.as_str())
                } else {
                    format!(
                        "task {id} is {} but not live in this gateway; use --force to close it",
                        t.state.as_str()
                    )
                },
            ));
        }
        {
            let db = self.state.lock();
            TaskStore::attach(&db)
                .transition(id, TaskState::Cancelled, Some("closed"), now())
                .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
        }
        self.trail
            .note(
                "task.cancelled",
                &t.user,
                json!({"task": id, "by": actor, "why": why, "was": t.state.as_str(), "force": force}),
            )
            .await;
        Ok(format!("task {id} closed (was {})", t.state.as_str()))
    }

    /// After a revocation on `channel` (`None`: every channel): cancels the
    /// live tasks (running or waiting for an approval) of every sender there
    /// who no longer holds access, the same way `tasks cancel --force` does
    /// (a running command is killed), and denies their other pending
    /// approvals (of tasks no longer live, e.g. interrupted by a restart).
    pub(super) async fn revoked(self: &Arc<Self>, channel: Option<&str>, actor: &str) -> Revoked {
        let live: Vec<(String, Origin)> = lock(&self.live)
            .iter()
            .filter(|(_, l)| channel.is_none_or(|c| c == l.origin.channel))
            .map(|(id, l)| (id.clone(), l.origin.clone()))
            .collect();
        let live: Vec<String> = live
            .into_iter()
            .filter(|(_, o)| self.lost_access(&o.channel, &o.sender))
            .map(|(id, _)| id)
            .collect();
        let cause = CancelCause {
            by: actor.to_string(),
            why: CancelWhy::AccessRevoked,
        };
        let results = futures_util::future::join_all(
            live.iter().map(|id| Inner::cancel(self, id, true, &cause)),
        )
        .await;
        let mut out = Revoked::default();
        for (id, r) in live.iter().zip(results) {
            match r {
                Ok(_) => out.tasks = out.tasks.saturating_add(1),
                // Ended on its own meanwhile.
                Err(e) => tracing::info!(task = %id, error = %e.message, "not cancelled"),
            }
        }
        out.approvals = self.deny_orphaned_approvals(channel).await;
        out
    }

    /// Whether `sender` is revoked on `channel` now.
    fn lost_access(&self, channel: &str, sender: &str) -> bool {
        lost_access_in(&self.state.lock(), channel, sender)
    }

    /// Denies pending approvals of revoked senders whose task is not live
    /// here (a live one was closed with its task); returns how many.
    async fn deny_orphaned_approvals(&self, channel: Option<&str>) -> u64 {
        let decider = Decider::Revocation;
        let live: BTreeSet<String> = lock(&self.live).keys().cloned().collect();
        let denied: Vec<(String, String, String, String)> = {
            let db = self.state.lock();
            let pending = match ApprovalStore::open(&db).and_then(|a| a.pending(now())) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "listing pending approvals after a revocation");
                    return 0;
                }
            };
            let tasks = TaskStore::attach(&db);
            let mut denied = Vec::new();
            for a in pending {
                if live.contains(&a.task_id) {
                    continue;
                }
                let Ok(Some(t)) = tasks.get(&a.task_id) else {
                    continue;
                };
                let Some((c, sender)) = t.user.split_once(':') else {
                    continue;
                };
                // The connection is held: read through it (the lock is not re-entrant).
                if channel.is_some_and(|x| x != c) || !lost_access_in(&db, c, sender) {
                    continue;
                }
                let decided = ApprovalStore::open(&db)
                    .and_then(|s| s.decide(&a.id, false, &decider.name(), now()));
                if matches!(decided, Ok(Some(ApprovalStatus::Denied))) {
                    denied.push((a.id, a.task_id, a.command, t.user.clone()));
                }
            }
            denied
        };
        for (approval, task, command, requester) in &denied {
            let mut payload = json!({"task": task, "approval": approval, "command": command,
                                     "why": CancelWhy::AccessRevoked.as_str()});
            decider.audit(&mut payload);
            self.trail.note("approval.denied", requester, payload).await;
        }
        u64::try_from(denied.len()).unwrap_or(u64::MAX)
    }
}

/// What a revocation ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Live tasks cancelled (their pending approval denied with them).
    pub tasks: u64,
    /// Pending approvals of tasks no longer live, denied.
    pub approvals: u64,
}

/// [`Inner::lost_access`] through a connection the caller holds.
fn lost_access_in(db: &rusqlite::Connection, channel: &str, sender: &str) -> bool {
    match crate::gateway::store::user_in(db, channel, sender) {
        Ok(u) => u.is_some_and(|u| u.state == UserState::Revoked),
        Err(e) => {
            // Ending a task by mistake is safer than leaving a revoked one.
            tracing::error!(error = %e, "reading a sender's standing after a revocation");
            true
        }
    }
}
