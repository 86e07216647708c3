//! The dispatcher: one verified [`Inbound`] in, one audited decision acted on.
//!
//! Order: replay dedupe (platform event id, decided in memory) →
//! [`AccessControl::evaluate`] → audit (`gateway.message`) and the event id's
//! durable write, side by side, both before any effect → act: Authorized → [`TaskSink`]
//! and its acknowledgement as the reply; RedeemPairing → [`Pairing::redeem`]
//! (audited as `gateway.pairing`) and "paired" or one neutral failure text;
//! PairingPrompt → the pairing prompt; Denied / Ignored → no reply.
//! Transports deliver the returned reply through the chat's one outbound path
//! ([`Dispatcher::replies`], the same that the task's later replies take).

use std::sync::Arc;

use super::access::{AccessControl, Decision};
use super::clock::Clock;
use super::error::GatewayError;
use super::inbound::Inbound;
use super::outbound::Replies;
use super::pairing::{Pairing, RedeemOutcome};
use super::replay::{Claim, Pending, ReplayGuard};
use super::sinks::{AuditEvent, Task, TaskSink, Trail, audit_detail};

/// Sent to an unknown sender in pairing mode (at most once per window).
pub const PAIRING_PROMPT: &str = "This assistant requires pairing. Ask its owner for a pairing code and send it here as: /pair CODE";
/// Sent after a successful redemption.
pub const PAIRED_REPLY: &str = "Paired. You can now talk to the assistant.";
/// Sent for every failed redemption (wrong, expired, locked out, revoked): one
/// neutral text so the reply reveals nothing.
pub const PAIRING_FAILED_REPLY: &str = "That pairing code is invalid or has expired.";
/// The answer to a pairing code from someone already admitted.
pub const ALREADY_PAIRED_REPLY: &str = "You are already paired. (A message that looks like a pairing code is not passed to the assistant: say it in other words.)";
/// The same, when the message was the channel's active code.
pub const ALREADY_PAIRED_CODE_CANCELLED_REPLY: &str =
    "You are already paired. The code you sent is now cancelled, so nobody else can use it.";

/// What happened to one inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatched {
    /// The event id was seen before inside the window: dropped (audited).
    Replay,
    /// The decision was acted on; `reply` is what to send back to the chat.
    Handled {
        audit_reason: &'static str,
        reply: Option<String>,
    },
}

impl Dispatched {
    pub fn reply(&self) -> Option<&str> {
        match self {
            Dispatched::Handled { reply, .. } => reply.as_deref(),
            Dispatched::Replay => None,
        }
    }
}

/// The glue between channel transports and the access-control core.
#[derive(Debug)]
pub struct Dispatcher {
    access: Arc<AccessControl>,
    pairing: Arc<Pairing>,
    replay: Arc<ReplayGuard>,
    trail: Trail,
    tasks: Arc<dyn TaskSink>,
    replies: Arc<Replies>,
    clock: Arc<dyn Clock>,
}

/// Forgets an event id whose handling was dropped before it ended (an empty
/// `id` once it ended). The forgetting runs on the runtime, after the drop.
struct ForgetOnDrop {
    replay: Arc<ReplayGuard>,
    channel: String,
    id: String,
}

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (replay, channel, id) = (
            Arc::clone(&self.replay),
            std::mem::take(&mut self.channel),
            std::mem::take(&mut self.id),
        );
        runtime.spawn(async move {
            if let Err(e) = replay.forget(&channel, &id).await {
                tracing::warn!(error = %e, "could not forget an abandoned event id");
            }
        });
    }
}

impl Dispatcher {
    pub fn new(
        access: Arc<AccessControl>,
        pairing: Arc<Pairing>,
        replay: Arc<ReplayGuard>,
        trail: Trail,
        tasks: Arc<dyn TaskSink>,
        replies: Arc<Replies>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Dispatcher {
            access,
            pairing,
            replay,
            trail,
            tasks,
            replies,
            clock,
        }
    }

    /// The chats' one outbound path: transports send the returned reply
    /// through it (in order for polling transports, in the background for
    /// webhooks, whose platforms want the answer within seconds).
    pub fn replies(&self) -> &Arc<Replies> {
        &self.replies
    }

    /// The trail the dispatcher audits to (transports audit what they reject there).
    pub fn trail(&self) -> &Trail {
        &self.trail
    }

    /// `state.db`'s gateway tables (a channel keeping safety numbers).
    pub fn store(&self) -> &Arc<super::store::Store> {
        self.access.store()
    }

    /// Whether the bot may join a chat `sender` invites it to
    /// ([`super::access::accepts_invite`]).
    pub fn accepts_invite(
        &self,
        channel: &str,
        sender: &str,
        context: super::inbound::Context,
    ) -> Result<bool, GatewayError> {
        self.access.accepts_invite(channel, sender, context)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Audits an inbound event a transport could not parse
    /// (`gateway.inbound_rejected`, malformed); the transport goes on.
    pub async fn reject_malformed(
        &self,
        platform: &'static str,
        err: &GatewayError,
    ) -> Result<(), GatewayError> {
        let mut ev = AuditEvent::new("gateway.inbound_rejected", "malformed", platform);
        ev.detail = Some(audit_detail(&err.to_string()));
        self.trail.event(ev).await
    }

    /// Dispatches `msg` for a transport holding a connection of its own (a
    /// WebSocket): the answer leaves through the outbound path in the
    /// background while the connection goes on (acknowledgements,
    /// heartbeats); a message that fails validation is audited as malformed
    /// rather than ending the connection.
    pub async fn dispatch_and_answer(
        &self,
        platform: &'static str,
        event_id: Option<&str>,
        msg: Inbound,
    ) -> Result<(), GatewayError> {
        let (channel, chat) = (msg.channel().to_string(), msg.chat().to_string());
        match self.dispatch(event_id, msg).await {
            Ok(Dispatched::Handled {
                reply: Some(text), ..
            }) => {
                self.replies.deliver_later(&channel, &chat, vec![text]);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e @ (GatewayError::ValidateInbound { .. } | GatewayError::ParseEvent { .. })) => {
                self.reject_malformed(platform, &e).await
            }
            Err(e) => Err(e),
        }
    }

    /// Dedupes `event_id` (if the platform gave one), then evaluates, audits
    /// and acts on `msg`.
    pub async fn dispatch(
        &self,
        event_id: Option<&str>,
        msg: Inbound,
    ) -> Result<Dispatched, GatewayError> {
        let remembered = match event_id {
            Some(id) => match self.replay.claim(msg.channel(), id, self.clock.now())? {
                Claim::Replay => {
                    let mut ev = base_event("gateway.replay", "replayed_event", &msg);
                    ev.event_id = Some(id.to_string());
                    self.trail.event(ev).await?;
                    return Ok(Dispatched::Replay);
                }
                Claim::Fresh(pending) => Some(pending),
            },
            None => None,
        };
        let channel = msg.channel().to_string();
        // Dropped before it ends (the platform hung up on a webhook, the
        // poller was stopped): the id is forgotten all the same.
        let mut unfinished = event_id.map(|id| ForgetOnDrop {
            replay: Arc::clone(&self.replay),
            channel: channel.clone(),
            id: id.to_string(),
        });
        let result = self.handle(event_id, msg, remembered).await;
        if let Some(guard) = unfinished.as_mut() {
            guard.id.clear();
        }
        if let (Err(_), Some(id)) = (&result, event_id) {
            // Failed before its effect was acknowledged: the platform's retry
            // is a fresh attempt, not a replay. (Queued after the id's own
            // write, so it is what stays.)
            if let Err(e) = self.replay.forget(&channel, id).await {
                tracing::warn!(error = %e, "could not forget a failed event id");
            }
        }
        result
    }

    /// Evaluates, audits and acts on `msg`; `remembered` is its event id's
    /// write, awaited beside the audit entry and before any effect.
    async fn handle(
        &self,
        event_id: Option<&str>,
        msg: Inbound,
        remembered: Option<Pending>,
    ) -> Result<Dispatched, GatewayError> {
        let decision = self.access.evaluate(&msg)?;
        let audit_reason = decision.audit_reason();
        let mut ev = base_event("gateway.message", audit_reason, &msg);
        ev.event_id = event_id.map(str::to_string);
        // The audit entry exists, and the event id would survive a restart,
        // before any effect (task, pairing, reply). The id is committed
        // after the entry: the messages whose entries one audit commit made
        // durable then share one commit of their ids too.
        let audited = self.trail.event(ev).await;
        let remembered = match remembered {
            Some(pending) => self.replay.durable(pending).await,
            None => Ok(()),
        };
        if let Err(e) = audited.and(remembered) {
            // Nothing was said: the prompt this message claimed is free for its retry.
            if matches!(decision, Decision::PairingPrompt)
                && let Err(e) = self.access.release_prompt(&msg)
            {
                tracing::warn!(error = %e, "could not release a pairing prompt claim");
            }
            return Err(e);
        }
        let reply = match decision {
            Decision::Authorized { user, tools } => {
                let ack = self
                    .tasks
                    .submit(Task {
                        user,
                        tools,
                        inbound: msg,
                    })
                    .await?;
                (!ack.is_empty()).then_some(ack)
            }
            Decision::RedeemPairing { code } => {
                let outcome =
                    self.pairing
                        .redeem(msg.channel(), msg.sender(), msg.sender_name(), &code)?;
                let (reason, reply) = match &outcome {
                    RedeemOutcome::Paired(_) => ("paired", PAIRED_REPLY),
                    RedeemOutcome::AlreadyAuthorized {
                        code_cancelled: true,
                    } => (
                        "already_authorized_code_cancelled",
                        ALREADY_PAIRED_CODE_CANCELLED_REPLY,
                    ),
                    RedeemOutcome::AlreadyAuthorized { .. } => {
                        ("already_authorized", ALREADY_PAIRED_REPLY)
                    }
                    RedeemOutcome::Invalid { burned: true, .. } => {
                        ("code_burned", PAIRING_FAILED_REPLY)
                    }
                    RedeemOutcome::Invalid { .. } => ("invalid_code", PAIRING_FAILED_REPLY),
                    RedeemOutcome::SenderLockedOut { .. } => {
                        ("sender_locked_out", PAIRING_FAILED_REPLY)
                    }
                    RedeemOutcome::Revoked => ("revoked", PAIRING_FAILED_REPLY),
                };
                let mut ev = base_event("gateway.pairing", reason, &msg);
                ev.event_id = event_id.map(str::to_string);
                if let RedeemOutcome::Invalid {
                    detail,
                    sender_attempts_left,
                    burned,
                } = &outcome
                {
                    ev.detail = Some(format!(
                        "{}; {} left before a lockout",
                        detail.describe(),
                        crate::plural(u64::from(*sender_attempts_left), "attempt", "attempts")
                    ));
                    if *burned {
                        tracing::warn!(
                            channel = msg.channel(),
                            "pairing code burned after too many wrong guesses; issue a fresh one"
                        );
                    }
                }
                if let RedeemOutcome::AlreadyAuthorized {
                    code_cancelled: true,
                } = &outcome
                {
                    note_code_cancelled(&mut ev, msg.channel());
                }
                self.trail.event(ev).await?;
                // The guess that starts a lockout (or one racing it) is told,
                // once, that pairing is paused and until when; later ones are
                // not answered.
                let locked = match &outcome {
                    RedeemOutcome::Invalid {
                        sender_attempts_left: 0,
                        ..
                    } => self.access.lockout(msg.channel(), msg.sender())?,
                    RedeemOutcome::SenderLockedOut { until } => Some(*until),
                    _ => None,
                };
                Some(match locked {
                    Some(until) => format!("{reply} {}", paused_until(until)),
                    None => reply.to_string(),
                })
            }
            Decision::AlreadyAuthorized { code } => {
                let cancelled = self.pairing.withdraw(msg.channel(), &code)?;
                let (reason, reply) = if cancelled {
                    (
                        "already_authorized_code_cancelled",
                        ALREADY_PAIRED_CODE_CANCELLED_REPLY,
                    )
                } else {
                    ("already_authorized", ALREADY_PAIRED_REPLY)
                };
                let mut ev = base_event("gateway.pairing", reason, &msg);
                ev.event_id = event_id.map(str::to_string);
                if cancelled {
                    note_code_cancelled(&mut ev, msg.channel());
                }
                self.trail.event(ev).await?;
                Some(reply.to_string())
            }
            Decision::PairingPrompt => Some(PAIRING_PROMPT.to_string()),
            Decision::Denied { .. } | Decision::Ignored { .. } => None,
        };
        Ok(Dispatched::Handled {
            audit_reason,
            reply,
        })
    }
}

/// Says, in the trail and the journal, that a user already admitted sent the
/// channel's active code in a chat, which cancelled it.
fn note_code_cancelled(ev: &mut AuditEvent, channel: &str) {
    ev.detail = Some(
        "a user already admitted sent the channel's active pairing code; the code is cancelled (issue a new one)"
            .to_string(),
    );
    tracing::warn!(
        channel,
        "a paired user sent the active pairing code in a chat; it is cancelled: issue a new one"
    );
}

/// The sentence that tells a sender pairing is paused (no more detail).
pub fn paused_until(until: i64) -> String {
    let when = time::OffsetDateTime::from_unix_timestamp(until)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| "later".to_string());
    format!("Pairing is paused for you until {when}.")
}

/// An audit event about `msg`: ids and the text length, never the text.
fn base_event(kind: &'static str, reason: &str, msg: &Inbound) -> AuditEvent {
    let mut ev = AuditEvent::new(kind, reason, msg.channel());
    ev.sender = Some(msg.sender().to_string());
    ev.chat = Some(msg.chat().to_string());
    ev.text_len = Some(msg.text().len());
    ev
}
