//! The dispatcher's two outlets, implemented by the lead's components: the audit
//! trail ([`AuditSink`]) and the agent runtime ([`TaskSink`]). Both are
//! object-safe (`Arc<dyn ...>`) and async through boxed futures, so an
//! implementation may await IPC to the audit component or a task queue.

use std::future::Future;
use std::pin::Pin;

use super::access::AuthorizedUser;
use super::error::GatewayError;
use super::inbound::Inbound;
use super::settings::ToolPolicy;

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
}

/// Where audit events go (the lead wires this to the audit component). An
/// error from `record` stops the message: nothing is acknowledged unaudited.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    fn record<'a>(&'a self, event: AuditEvent) -> BoxFuture<'a, Result<(), GatewayError>>;
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

/// An [`AuditSink`] that keeps events in memory (tests, development).
#[derive(Debug, Default)]
pub struct MemoryAudit {
    events: std::sync::Mutex<Vec<AuditEvent>>,
}

impl MemoryAudit {
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl AuditSink for MemoryAudit {
    fn record<'a>(&'a self, event: AuditEvent) -> BoxFuture<'a, Result<(), GatewayError>> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        Box::pin(std::future::ready(Ok(())))
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
