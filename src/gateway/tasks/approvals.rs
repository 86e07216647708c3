//! Approval requests of paused tasks: recording one when the guard asks,
//! the decision (coworkctl, the admin page, a designated approver in chat, a
//! revocation), expiry, and resuming the task with the result.

use super::*;

/// Who answered an approval request: recorded with the decision in the store
/// and in every `approval.approved` / `approval.denied` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decider {
    /// A sender the owner named in the channel's `approvers`, in chat.
    Chat {
        channel: String,
        sender: String,
        chat: String,
        group: bool,
    },
    /// An operator through IPC: `coworkctl:uid=N` or the admin page.
    Operator(String),
    /// The requester's access was revoked while the request was pending.
    Revocation,
}

impl Decider {
    fn chat(origin: &Origin) -> Decider {
        Decider::Chat {
            channel: origin.channel.clone(),
            sender: origin.sender.clone(),
            chat: origin.chat.clone(),
            group: origin.group,
        }
    }

    /// The approver as stored and as the sandbox records the run.
    pub(super) fn name(&self) -> String {
        match self {
            Decider::Chat {
                channel, sender, ..
            } => format!("{channel}:{sender}"),
            Decider::Operator(actor) => actor.clone(),
            Decider::Revocation => "revocation".to_string(),
        }
    }

    /// Fields for the trail: the approver, and how the answer came.
    pub(super) fn audit(&self, payload: &mut Value) {
        payload["approver"] = json!(self.name());
        match self {
            Decider::Chat {
                channel,
                sender,
                chat,
                group,
            } => {
                payload["via"] = json!("chat");
                payload["approver_channel"] = json!(channel);
                payload["approver_sender"] = json!(sender);
                payload["approver_chat"] = json!(chat);
                payload["approver_context"] = json!(if *group { "group" } else { "dm" });
            }
            Decider::Operator(actor) => {
                // The supervisor names coworkctl callers `coworkctl:uid=N`; the
                // admin page calls itself `admin…`.
                let via = if actor.starts_with("coworkctl") {
                    "coworkctl"
                } else if actor.starts_with("admin") {
                    "admin page"
                } else {
                    "operator"
                };
                payload["via"] = json!(via);
            }
            Decider::Revocation => payload["via"] = json!("revocation"),
        }
    }
}

/// Why an `approve ID` / `deny ID` in chat was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The sender is not in the channel's `approvers`.
    NotAnApprover,
    /// The sender asked for the command themselves.
    OwnRequest,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::NotAnApprover => "not_an_approver",
            Refusal::OwnRequest => "own_request",
        }
    }

    /// The one sentence the sender is answered with.
    fn sentence(self) -> &'static str {
        match self {
            Refusal::NotAnApprover => {
                "You are not an approver on this channel, so your answer was not taken; the \
                 owner can name approvers in the channel's settings or answer with coworkctl \
                 approvals or on the admin page."
            }
            Refusal::OwnRequest => {
                "You cannot answer an approval request for your own task; another approver, \
                 coworkctl approvals or the admin page must."
            }
        }
    }
}

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
             (in workspace {}; {}). Approval {approval_id} expires in {} s. An approver named \
             for this channel (never the requester) can answer \"approve {approval_id}\" or \
             \"deny {approval_id}\" in chat; the owner can also use coworkctl approvals or the \
             admin page.",
            request.cwd, request.reason, ttl
        );
        // A cancel (or a revocation) that came while the model was asking
        // wins: nothing is requested for a task nobody wants any more.
        if lock(&self.live)
            .get(&id)
            .is_none_or(|l| l.cancel.is_cancelled())
        {
            self.end_cancelled_before_pause(&id, &origin).await;
            return;
        }
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
        // Checked again where cancel() looks for the paused call.
        let installed = match lock(&self.live).get_mut(&id) {
            Some(l) if !l.cancel.is_cancelled() => {
                l.paused = Some(Paused {
                    agent,
                    history,
                    tool_use_id,
                    approval_id: approval_id.clone(),
                    request,
                    generation,
                    scope,
                });
                true
            }
            _ => false,
        };
        if !installed {
            self.end_cancelled_before_pause(&id, &origin).await;
            return;
        }
        self.transition(
            &id,
            TaskState::AwaitingApproval,
            Some(&format!("approval {approval_id}")),
        );
        let requested = {
            let db = self.state.lock();
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
        for approver in self.approvers_to_tell(&origin) {
            let _ = self
                .replies
                .deliver(&origin.channel, &approver, &text)
                .await;
        }
        let me = Arc::clone(&self);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(ttl) + Duration::from_secs(1)).await;
            me.expire(&approval_id).await;
        });
    }

    /// Ends a task cancelled while it was about to wait for an approval.
    async fn end_cancelled_before_pause(&self, id: &str, origin: &Origin) {
        let cause = lock(&self.live).remove(id).and_then(|l| l.cancelled);
        self.transition(id, TaskState::Cancelled, Some("cancelled"));
        let mut payload = json!({"task": id, "before": "approval_request"});
        if let Some(c) = cause {
            payload["by"] = json!(c.by);
            payload["why"] = json!(c.why.as_str());
        }
        self.trail
            .note("task.cancelled", &origin.requester(), payload)
            .await;
        self.reply(origin, &format!("Task {id} was cancelled."))
            .await;
    }

    /// The designated approvers who hear about a request in their own DM:
    /// where the channel can reach one (a DM's chat is the sender: the local
    /// channel and Telegram), never the requester (who was told in their
    /// chat), never one whose access was revoked.
    fn approvers_to_tell(&self, origin: &Origin) -> Vec<String> {
        if origin.channel != LOCAL_CHANNEL && !origin.channel.starts_with("telegram") {
            return Vec::new();
        }
        let Some(ids) = self.approvers.get(&origin.channel) else {
            return Vec::new();
        };
        ids.iter()
            .filter(|a| **a != origin.sender && **a != origin.chat)
            .filter(|a| match self.state.user(&origin.channel, a) {
                Ok(u) => u.is_none_or(|u| u.state != UserState::Revoked),
                Err(e) => {
                    tracing::error!(error = %e, "reading an approver's standing; not telling them");
                    false
                }
            })
            .cloned()
            .collect()
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
            let db = self.state.lock();
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

    /// A decision on `approval_id` (from coworkctl, the admin page or chat).
    pub(super) async fn decide(
        self: &Arc<Self>,
        approval_id: &str,
        approve: bool,
        decider: &Decider,
    ) -> Result<String, WireError> {
        let approver = decider.name();
        let Some((id, p)) = self.take_paused(approval_id) else {
            let db = self.state.lock();
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
            let db = self.state.lock();
            ApprovalStore::open(&db).and_then(|a| a.decide(approval_id, approve, &approver, now()))
        };
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                self.put_back(&id, p);
                return Err(wire_store(e));
            }
        };
        let mut payload = json!({"task": id, "approval": approval_id, "command": p.request.command,
                                 "cwd": p.request.cwd});
        decider.audit(&mut payload);
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
                self.resume(id, p, Start::Approved { approver });
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

    /// `approve ID` / `deny ID` sent in chat: only from a sender the owner
    /// named in the channel's `approvers`, only for that channel's tasks, and
    /// never for the sender's own. (The dispatcher already applied the chat's
    /// rules: in a group, the mention and group policy, and the sender's access.)
    pub(super) async fn decide_in_chat(
        self: &Arc<Self>,
        origin: &Origin,
        approve: bool,
        id: &str,
    ) -> String {
        if !self.is_approver(&origin.channel, &origin.sender) {
            return self
                .refuse_in_chat(origin, approve, id, None, Refusal::NotAnApprover)
                .await;
        }
        let requester = {
            let db = self.state.lock();
            ApprovalStore::open(&db)
                .and_then(|a| a.get(id))
                .and_then(|a| match a {
                    Some(a) => TaskStore::attach(&db).get(&a.task_id),
                    None => Ok(None),
                })
                .map(|task| task.map(|t| t.user))
        };
        // A store that cannot be read is not "no such request": say which.
        let requester = match requester {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(approval = id, error = %e, "looking up an approval answered in chat");
                // The chat gets no store internals; the journal has them.
                return format!(
                    "I cannot look up approval request {id} right now (the appliance's store \
                     failed); nothing was decided. The owner can answer it with coworkctl approvals."
                );
            }
        };
        // An approver of this channel answers for this channel's tasks only.
        let Some(requester) = requester.filter(|user| {
            user.split_once(':')
                .is_some_and(|(channel, _)| channel == origin.channel)
        }) else {
            return format!("There is no approval request {id} for this channel.");
        };
        if requester == origin.requester() {
            return self
                .refuse_in_chat(origin, approve, id, Some(&requester), Refusal::OwnRequest)
                .await;
        }
        match self.decide(id, approve, &Decider::chat(origin)).await {
            Ok(s) => s,
            Err(e) => e.message,
        }
    }

    /// Records a refused chat answer (who, where, why) and says why in one sentence.
    async fn refuse_in_chat(
        &self,
        origin: &Origin,
        approve: bool,
        id: &str,
        requester: Option<&str>,
        why: Refusal,
    ) -> String {
        let mut payload = json!({"approval": id, "decision": if approve { "approve" } else { "deny" },
                                 "channel": origin.channel, "sender": origin.sender,
                                 "chat": origin.chat, "context": if origin.group { "group" } else { "dm" },
                                 "why": why.as_str()});
        if let Some(r) = requester {
            payload["requester"] = json!(r);
        }
        self.trail
            .note("approval.refused", &origin.requester(), payload)
            .await;
        why.sentence().to_string()
    }
}
