//! Approval requests of paused tasks: recording one when the guard asks,
//! the owner's decision (coworkctl, the admin page, the owner in chat), expiry,
//! and resuming the task with the result.

use super::*;

impl Inner {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn pause(
        self: Arc<Self>,
        id: String,
        origin: Origin,
        agent: Agent,
        history: Vec<Message>,
        scope: TaskScope,
        tool_use_id: String,
        request: ApprovalRequest,
    ) {
        let approval_id = new_id("a");
        // What the owner is shown is the workspace as it is now: a write by
        // another task before the run makes this approval lapse.
        let generation = self.writes.generation(&scope.workspace);
        let ttl = self.settings.approval_ttl_secs;
        let requester = origin.requester();
        let what = match &request.write {
            None => format!(
                "run a command that needs the owner's approval:\n\n{}",
                request.command
            ),
            Some(w) => format!(
                "write a file that configures execution, which needs the owner's approval:\n\n\
                 {}\nIt begins:\n{}",
                request.command,
                w.preview()
            ),
        };
        let text = format!(
            "Task {id} wants to {what}\n\n\
             (in workspace {}; {}). Approval {approval_id} expires in {} s. The owner can answer \
             \"approve {approval_id}\" or \"deny {approval_id}\" here, with coworkctl approvals, \
             or on the admin page.",
            request.cwd, request.reason, ttl
        );
        // The trail says it was asked before anyone can answer it.
        self.trail
            .note(
                "approval.requested",
                &requester,
                json!({"task": id, "approval": approval_id, "command": request.command,
                       "cwd": request.cwd, "reason": request.reason, "requester": requester,
                       "expires_in_secs": ttl}),
            )
            .await;
        // Listed means decidable: the task waits on the request before the
        // request is in the store (where coworkctl and the page list it).
        let (command, cwd) = (request.command.clone(), request.cwd.clone());
        self.transition(
            &id,
            TaskState::AwaitingApproval,
            Some(&format!("approval {approval_id}")),
        );
        if let Some(l) = lock(&self.live).get_mut(&id) {
            l.paused = Some(Paused {
                agent,
                history,
                tool_use_id,
                approval_id: approval_id.clone(),
                request,
                generation,
                scope,
            });
        }
        let requested = {
            let db = lock(&self.db);
            ApprovalStore::open(&db).and_then(|a| {
                a.request(
                    &approval_id,
                    &id,
                    &command,
                    &cwd,
                    now(),
                    i64::try_from(ttl).unwrap_or(i64::MAX),
                )
            })
        };
        if let Err(e) = requested {
            tracing::error!(task = %id, error = %e, "approval request not recorded");
            self.transition(&id, TaskState::Failed, Some("approval_store"));
            lock(&self.live).remove(&id);
            self.reply(
                &origin,
                &format!("Task {id} failed: its approval request could not be recorded."),
            )
            .await;
            return;
        }
        self.reply(&origin, &text).await;
        // The owner hears about it in their own DM too (where a DM's chat is
        // the sender: the local channel and Telegram).
        if let Some(owner) = self.owner_of(&origin.channel)
            && owner != origin.sender
            && (origin.channel == LOCAL_CHANNEL || origin.channel.starts_with("telegram"))
        {
            let _ = self.replies.deliver(&origin.channel, &owner, &text).await;
        }
        let me = Arc::clone(&self);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(ttl) + Duration::from_secs(1)).await;
            me.expire(&approval_id).await;
        });
    }

    /// Takes the paused state of the task waiting on `approval_id`.
    pub(super) fn take_paused(&self, approval_id: &str) -> Option<(String, Paused)> {
        let mut live = lock(&self.live);
        let (id, l) = live.iter_mut().find(|(_, l)| {
            l.paused
                .as_ref()
                .is_some_and(|p| p.approval_id == approval_id)
        })?;
        let p = l.paused.take()?;
        Some((id.clone(), p))
    }

    pub(super) fn put_back(&self, id: &str, p: Paused) {
        if let Some(l) = lock(&self.live).get_mut(id) {
            l.paused = Some(p);
        }
    }

    /// Continue a paused task with `start`.
    pub(super) fn resume(self: &Arc<Self>, id: String, p: Paused, start: Start) {
        if let Some(l) = lock(&self.live).get_mut(&id) {
            l.resuming = Some(PausedCall {
                tool_use_id: p.tool_use_id.clone(),
                approval_id: p.approval_id.clone(),
                request: p.request.clone(),
                generation: p.generation,
            });
        }
        let me = Arc::clone(self);
        tokio::spawn(async move { me.drive(id, p.agent, p.history, p.scope, start).await });
    }

    pub(super) async fn expire(self: Arc<Self>, approval_id: &str) {
        let status = {
            let db = lock(&self.db);
            ApprovalStore::open(&db).and_then(|a| a.status(approval_id, now()))
        };
        if !matches!(status, Ok(Some(ApprovalStatus::Expired))) {
            return;
        }
        let Some((id, p)) = self.take_paused(approval_id) else {
            return;
        };
        self.trail
            .note(
                "approval.expired",
                &p.scope.requester,
                json!({"task": id, "approval": approval_id, "command": p.request.command}),
            )
            .await;
        self.resume(
            id,
            p,
            Start::Resume(ToolOutcome::Denied(
                "the approval request expired without an answer".into(),
            )),
        );
    }

    /// The owner's decision on `approval_id` (from coworkctl, the admin page or chat).
    pub(super) async fn decide(
        self: &Arc<Self>,
        approval_id: &str,
        approve: bool,
        approver: &str,
    ) -> Result<String, WireError> {
        let Some((id, p)) = self.take_paused(approval_id) else {
            let db = lock(&self.db);
            let known = ApprovalStore::open(&db)
                .and_then(|a| {
                    a.status(approval_id, now())?;
                    a.get(approval_id)
                })
                .map_err(wire_store)?;
            return match known {
                None => Err(bad_id("approval", approval_id)),
                Some(a) => Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "approval {approval_id} is {} and its task {} is not waiting for it",
                        a.status.as_str(),
                        a.task_id
                    ),
                )),
            };
        };
        let status = {
            let db = lock(&self.db);
            ApprovalStore::open(&db).and_then(|a| a.decide(approval_id, approve, approver, now()))
        };
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                self.put_back(&id, p);
                return Err(wire_store(e));
            }
        };
        let payload = json!({"task": id, "approval": approval_id, "command": p.request.command,
                             "cwd": p.request.cwd, "approver": approver});
        match status {
            Some(ApprovalStatus::Approved) => {
                self.trail
                    .note("approval.approved", &p.scope.requester, payload)
                    .await;
                let action = if p.request.write.is_some() {
                    "writes the file"
                } else {
                    "runs the command"
                };
                let msg = format!("Approved: task {id} continues and {action}.");
                self.resume(
                    id,
                    p,
                    Start::Approved {
                        approver: approver.to_string(),
                    },
                );
                Ok(msg)
            }
            Some(ApprovalStatus::Denied) => {
                self.trail
                    .note("approval.denied", &p.scope.requester, payload)
                    .await;
                let (action, denial) = if p.request.write.is_some() {
                    ("writing the file", "the owner denied writing this file")
                } else {
                    (
                        "running the command",
                        "the owner denied running this command",
                    )
                };
                let msg = format!("Denied: task {id} continues without {action}.");
                self.resume(id, p, Start::Resume(ToolOutcome::Denied(denial.into())));
                Ok(msg)
            }
            other => {
                let shown = other.map_or("unknown", |s| s.as_str());
                self.put_back(&id, p);
                // An expired request is handled by its timer.
                Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!("approval {approval_id} can no longer be decided: it is {shown}"),
                ))
            }
        }
    }

    /// `approve ID` / `deny ID` sent in chat: only the channel's owner.
    pub(super) async fn decide_in_chat(
        self: &Arc<Self>,
        origin: &Origin,
        approve: bool,
        id: &str,
    ) -> String {
        if self.owner_of(&origin.channel).as_deref() != Some(origin.sender.as_str()) {
            self.trail
                .note(
                    "approval.refused",
                    &origin.requester(),
                    json!({"approval": id, "why": "not_owner", "group": origin.group}),
                )
                .await;
            return "Only the owner of this assistant can answer approval requests.".to_string();
        }
        // The owner of this channel answers for this channel's tasks only.
        let same_channel = {
            let db = lock(&self.db);
            let task = ApprovalStore::open(&db)
                .and_then(|a| a.get(id))
                .ok()
                .flatten()
                .and_then(|a| TaskStore::attach(&db).get(&a.task_id).ok().flatten());
            task.is_some_and(|t| {
                t.user
                    .split_once(':')
                    .is_some_and(|(channel, _)| channel == origin.channel)
            })
        };
        if !same_channel {
            return format!("There is no approval request {id} for this channel.");
        }
        match self.decide(id, approve, &origin.requester()).await {
            Ok(s) => s,
            Err(e) => e.message,
        }
    }
}
