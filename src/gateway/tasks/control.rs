//! What `coworkctl tasks|approvals` and the admin page ask of the runtime:
//! listings, cancel, and resuming an interrupted task.

use super::*;

impl Inner {
    pub(super) fn list_tasks(&self, limit: u32) -> Result<AgentResponse, WireError> {
        let db = lock(&self.db);
        let tasks = TaskStore::attach(&db).recent(limit).map_err(wire_store)?;
        Ok(AgentResponse::Tasks(
            tasks.into_iter().map(listing).collect(),
        ))
    }

    pub(super) fn list_approvals(&self) -> Result<AgentResponse, WireError> {
        let db = lock(&self.db);
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
                status: a.status.as_str().to_string(),
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
            let db = lock(&self.db);
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
        actor: &str,
    ) -> Result<String, WireError> {
        let live = {
            let mut live = lock(&self.live);
            match live.get_mut(id) {
                Some(l) => {
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
                    json!({"task": id, "by": actor, "force": force}),
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
                // Waiting for an approval: nothing runs; close it here.
                {
                    let db = lock(&self.db);
                    let _ = ApprovalStore::open(&db)
                        .and_then(|a| a.decide(&p.approval_id, false, actor, now()));
                }
                self.transition(id, TaskState::Cancelled, Some("cancelled"));
                lock(&self.live).remove(id);
                self.trail
                    .note(
                        "task.cancelled",
                        &origin.requester(),
                        json!({"task": id, "by": actor}),
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
            let db = lock(&self.db);
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
            let db = lock(&self.db);
            TaskStore::attach(&db)
                .transition(id, TaskState::Cancelled, Some("closed"), now())
                .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
        }
        self.trail
            .note(
                "task.cancelled",
                &t.user,
                json!({"task": id, "by": actor, "was": t.state.as_str(), "force": force}),
            )
            .await;
        Ok(format!("task {id} closed (was {})", t.state.as_str()))
    }
}
