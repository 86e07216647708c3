//! How the other processes write to the audit trail.
//!
//! [`AuditLog::append`] waits until the entry is durable (for effects that must not
//! happen before their entry exists: a sandboxed command, an accepted message).
//! [`AuditLog::record`] queues an entry and returns: a background task delivers
//! the queue in order, retrying while the audit component restarts, so lifecycle
//! events of the audit component itself are not lost either.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::ipc::{
    AuditAppend, AuditRequest, AuditResponse, Client, ComponentRequest, ComponentResponse,
    ErrorCode, KnownSecrets, Role, SecretBytes,
};

/// Entries waiting for delivery; past this, `record` waits for room.
const QUEUE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct AuditLog {
    client: Arc<Client<ComponentRequest, ComponentResponse>>,
    queue: mpsc::Sender<AuditAppend>,
    backlog: Arc<Backlog>,
}

/// Entries queued but not yet durable, so `flush` can wait for them.
#[derive(Debug, Default)]
struct Backlog {
    count: AtomicUsize,
    drained: Notify,
}

impl AuditLog {
    /// A log writing to the audit socket as `role`. Must be called inside a tokio runtime.
    pub fn start(socket: PathBuf, role: Role) -> AuditLog {
        let client = Arc::new(Client::new(socket, role, Duration::from_secs(5)));
        let (queue, rx) = mpsc::channel(QUEUE);
        let backlog = Arc::new(Backlog::default());
        tokio::spawn(deliver(Arc::clone(&client), rx, Arc::clone(&backlog)));
        AuditLog {
            client,
            queue,
            backlog,
        }
    }

    /// Appends and waits until the entry is durable; returns its sequence number.
    pub async fn append(&self, entry: AuditAppend) -> Result<u64, String> {
        match self
            .client
            .call(ComponentRequest::Audit(AuditRequest::Append(entry)))
            .await
        {
            Ok(ComponentResponse::Audit(AuditResponse::Appended { seq })) => Ok(seq),
            Ok(ComponentResponse::Error(e)) => Err(e.message),
            Ok(other) => Err(format!("unexpected answer from the audit trail: {other:?}")),
            Err(e) => Err(format!("the audit trail is unreachable: {e}")),
        }
    }

    /// Sends the vault's values for redaction; returns how many are matched.
    pub async fn known_secrets(&self, values: Vec<SecretBytes>) -> Result<u32, String> {
        let request = AuditRequest::KnownSecrets(KnownSecrets { values });
        match self.client.call(ComponentRequest::Audit(request)).await {
            Ok(ComponentResponse::Audit(AuditResponse::KnownSecretsTaken { matched })) => {
                Ok(matched)
            }
            Ok(ComponentResponse::Error(e)) => Err(e.message),
            Ok(_) => Err("unexpected answer from the audit trail".to_string()),
            Err(e) => Err(format!("the audit trail is unreachable: {e}")),
        }
    }

    /// Connections made to the audit component so far (see [`Client::connections`]).
    pub fn connections(&self) -> u64 {
        self.client.connections()
    }

    /// Queues an entry for in-order delivery and returns without waiting.
    pub async fn record(&self, kind: &str, actor: &str, subject: &str, payload: serde_json::Value) {
        let entry = AuditAppend {
            kind: kind.to_string(),
            actor: actor.to_string(),
            subject: subject.to_string(),
            payload,
        };
        self.backlog.count.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(entry).await.is_err() {
            self.backlog.count.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(kind, "audit queue closed; entry lost");
        }
    }

    /// Waits (at most `timeout`) until every recorded entry is durable.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let wait = async {
            while self.backlog.count.load(Ordering::Acquire) > 0 {
                let drained = self.backlog.drained.notified();
                if self.backlog.count.load(Ordering::Acquire) == 0 {
                    break;
                }
                drained.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

async fn deliver(
    client: Arc<Client<ComponentRequest, ComponentResponse>>,
    mut rx: mpsc::Receiver<AuditAppend>,
    backlog: Arc<Backlog>,
) {
    while let Some(entry) = rx.recv().await {
        deliver_one(&client, entry).await;
        if backlog.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            backlog.drained.notify_waiters();
        }
    }
}

async fn deliver_one(client: &Client<ComponentRequest, ComponentResponse>, entry: AuditAppend) {
    {
        let mut delay = Duration::from_millis(50);
        loop {
            match client
                .call(ComponentRequest::Audit(AuditRequest::Append(entry.clone())))
                .await
            {
                Ok(ComponentResponse::Audit(AuditResponse::Appended { .. })) => break,
                // The trail refused the entry itself: retrying cannot help.
                Ok(ComponentResponse::Error(e))
                    if matches!(
                        e.code,
                        ErrorCode::BadRequest
                            | ErrorCode::Malformed
                            | ErrorCode::Forbidden
                            | ErrorCode::TooLarge
                    ) =>
                {
                    tracing::error!(kind = %entry.kind, error = %e.message, "audit entry refused");
                    break;
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
