//! The gateway's two outlets: the audit trail ([`Trail`], the one way any
//! gateway code writes an entry) and the agent runtime ([`TaskSink`]). What
//! sits behind them is object-safe (`Arc<dyn ...>`) and async through boxed
//! futures, so an implementation may await IPC to the audit component or a
//! task queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};

use super::access::AuthorizedUser;
use super::error::GatewayError;
use super::inbound::Inbound;
use super::settings::ToolPolicy;
use crate::ipc::AuditAppend;

/// The actor of the entries the gateway writes on its own behalf.
const GATEWAY_ACTOR: &str = "gateway";

/// A boxed, sendable future (what the sink traits return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One audit record from the gateway's channel side. It never carries message
/// text (only its length) nor any secret: ids, reason codes and lengths only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// `gateway.message`, `gateway.pairing`, `gateway.replay`, `gateway.webhook_rejected`.
    pub kind: &'static str,
    /// A stable reason code (e.g. [`super::Decision::audit_reason`], `bad_signature`).
    pub reason: String,
    pub channel: String,
    pub sender: Option<String>,
    pub chat: Option<String>,
    /// The platform's event id (update_id, event_id, interaction id), if any.
    pub event_id: Option<String>,
    /// Length of the message text in bytes (the text itself is never audited).
    pub text_len: Option<usize>,
    /// Extra context without secrets (an error description, a pairing outcome).
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: &'static str, reason: impl Into<String>, channel: impl Into<String>) -> Self {
        AuditEvent {
            kind,
            reason: reason.into(),
            channel: channel.into(),
            sender: None,
            chat: None,
            event_id: None,
            text_len: None,
            detail: None,
        }
    }

    /// The trail entry: the subject names the sender, the payload carries the
    /// reason and lengths, never the text.
    fn entry(self) -> AuditAppend {
        let subject = match &self.sender {
            Some(s) => format!("{}:{s}", self.channel),
            None => self.channel.clone(),
        };
        AuditAppend {
            kind: self.kind.to_string(),
            actor: GATEWAY_ACTOR.to_string(),
            subject,
            payload: json!({
                "reason": self.reason,
                "chat": self.chat,
                "event_id": self.event_id,
                "length": self.text_len,
                "detail": self.detail,
            }),
        }
    }
}

/// What carries entries to the trail: the audit component in the gateway
/// (`service.rs`), a stand-in in tests and benchmarks. Callers use [`Trail`].
pub trait TrailWriter: Send + Sync + std::fmt::Debug {
    /// Appends `entry` and resolves once it is durable; `Err` says why it is
    /// not in the trail.
    fn append<'a>(&'a self, entry: AuditAppend) -> BoxFuture<'a, Result<(), String>>;
    /// Queues `entry` for in-order delivery and resolves without waiting for
    /// it to be durable.
    fn queue<'a>(&'a self, entry: AuditAppend) -> BoxFuture<'a, ()>;
}

/// The gateway's audit trail: every gateway entry is written through it.
/// The method says what a failure means to the caller.
#[derive(Debug, Clone)]
pub struct Trail(Arc<dyn TrailWriter>);

impl Trail {
    pub fn new(writer: Arc<dyn TrailWriter>) -> Trail {
        Trail(writer)
    }

    /// A channel event, durable before the caller acts on it. An error stops
    /// the message: nothing is acknowledged unaudited.
    pub async fn event(&self, event: AuditEvent) -> Result<(), GatewayError> {
        self.0
            .append(event.entry())
            .await
            .map_err(|reason| GatewayError::Sink {
                sink: "audit",
                reason,
            })
    }

    /// A task step, durable before the step's effect (a command run, a reply,
    /// a resume). A failure is logged and the step goes on (the sandbox
    /// refuses to run a command whose own entry cannot be written).
    pub async fn note(&self, kind: &str, subject: &str, payload: Value) {
        let entry = AuditAppend {
            kind: kind.to_string(),
            actor: GATEWAY_ACTOR.to_string(),
            subject: subject.to_string(),
            payload,
        };
        if let Err(e) = self.0.append(entry).await {
            tracing::error!(kind, error = %e, "task step not in the audit trail");
        }
    }

    /// An operator's action (or the gateway's own, `actor` "gateway"),
    /// queued: the answer does not wait for the trail, and the entry is
    /// delivered in order, retried while the audit component restarts.
    pub async fn record(&self, kind: &str, actor: &str, subject: &str, payload: Value) {
        self.0
            .queue(AuditAppend {
                kind: kind.to_string(),
                actor: actor.to_string(),
                subject: subject.to_string(),
                payload,
            })
            .await;
    }
}

/// An authorized message handed to the agent runtime.
#[derive(Debug, Clone)]
pub struct Task {
    pub user: AuthorizedUser,
    pub tools: ToolPolicy,
    pub inbound: Inbound,
}

/// Where authorized messages go (the lead wires this to the agent). Returns
/// the acknowledgement text sent back to the sender (empty: no reply).
pub trait TaskSink: Send + Sync + std::fmt::Debug {
    fn submit<'a>(&'a self, task: Task) -> BoxFuture<'a, Result<String, GatewayError>>;
}

/// A [`TrailWriter`] that keeps entries in memory, appended or queued alike
/// (tests, development).
#[derive(Debug, Default)]
pub struct MemoryAudit {
    entries: std::sync::Mutex<Vec<AuditAppend>>,
}

impl MemoryAudit {
    pub fn entries(&self) -> Vec<AuditAppend> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn push(&self, entry: AuditAppend) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }
}

impl TrailWriter for MemoryAudit {
    fn append<'a>(&'a self, entry: AuditAppend) -> BoxFuture<'a, Result<(), String>> {
        self.push(entry);
        Box::pin(std::future::ready(Ok(())))
    }

    fn queue<'a>(&'a self, entry: AuditAppend) -> BoxFuture<'a, ()> {
        self.push(entry);
        Box::pin(std::future::ready(()))
    }
}

/// A [`TaskSink`] that queues tasks on a tokio channel and acknowledges with a
/// fixed text (until the agent runtime exists).
#[derive(Debug)]
pub struct ChannelTaskSink {
    tx: tokio::sync::mpsc::Sender<Task>,
    ack: String,
}

impl ChannelTaskSink {
    pub fn new(tx: tokio::sync::mpsc::Sender<Task>, ack: impl Into<String>) -> Self {
        ChannelTaskSink {
            tx,
            ack: ack.into(),
        }
    }
}

impl TaskSink for ChannelTaskSink {
    fn submit<'a>(&'a self, task: Task) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(async move {
            self.tx.send(task).await.map_err(|_| GatewayError::Sink {
                sink: "task",
                reason: "task queue closed".into(),
            })?;
            Ok(self.ack.clone())
        })
    }
}

/// An error description fit for an audit entry: quoted strings (which may echo
/// an unknown sender's input, e.g. in a JSON type error) become `"…"`, control
/// characters are dropped, and the result is at most 256 characters.
pub fn audit_detail(text: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…");
            }
            quoted = !quoted;
            if !quoted {
                out.push('"');
            }
            continue;
        }
        if quoted || c.is_control() {
            continue;
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
    out.chars().take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_hides_quoted_input() {
        let d = audit_detail(
            "parse slack payload: invalid type: string \"my secret plan\", expected u64 at line 1",
        );
        assert_eq!(
            d,
            "parse slack payload: invalid type: string \"…\", expected u64 at line 1"
        );
        assert!(!audit_detail("a \"unterminated secret").contains("secret"));
        assert_eq!(audit_detail(&"x\n".repeat(1000)).len(), 256);
    }
}
