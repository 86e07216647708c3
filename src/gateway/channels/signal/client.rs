//! The way out, and the calls the appliance makes to signal-cli: every call
//! (`send`, `listIdentities`, `trust`) is queued for the connection, which
//! writes it as a JSON-RPC request with an id of its own and hands the
//! answer back. An answer goes to a DM by `recipient` (the sender's ACI) or
//! to a group by `groupId`, in pieces of at most [`SIGNAL_MAX_BYTES`] of
//! UTF-8, never split inside a character. The queue is bounded: a call that
//! does not fit is refused with an error, never dropped silently; one that
//! gets no answer within [`CALL_TIMEOUT`] fails.
//!
//! The owner's confirmation of a safety number ([`SignalSender::confirm`])
//! goes out this way too: signal-cli's `trust` with `verifiedSafetyNumber`,
//! then the number kept in the store and the sender resumed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::identity::Identities;
use super::parse::{CHANNEL, is_aci, is_group_id, safety_number};
use crate::gateway::chunk::chunk_bytes;
use crate::gateway::error::GatewayError;
use crate::gateway::identities::Standing;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::store::Store;

/// Longest message piece sent, in bytes of UTF-8.
pub const SIGNAL_MAX_BYTES: usize = 2000;
/// Most calls waiting for the connection.
pub const QUEUE_CALLS: usize = 256;
/// How long a call waits for signal-cli's answer (queued time included).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One call for the connection to make.
#[derive(Debug)]
pub struct Call {
    pub method: &'static str,
    pub params: Value,
    pub answer: oneshot::Sender<Result<Value, String>>,
}

fn api_err(operation: &'static str, reason: impl Into<String>) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.into(),
    }
}

/// Queues calls for the connection; the channel's [`Outbound`].
#[derive(Debug)]
pub struct SignalSender {
    queue: mpsc::Sender<Call>,
    account: String,
    /// The configured channel (the store's rows are kept under it).
    channel: String,
    store: Arc<Store>,
    identities: Arc<Identities>,
    clock: Arc<dyn crate::gateway::Clock>,
}

impl SignalSender {
    /// The sender, and the queue's end the connection reads.
    pub fn new(
        channel: &str,
        account: &str,
        store: Arc<Store>,
        identities: Arc<Identities>,
        clock: Arc<dyn crate::gateway::Clock>,
    ) -> (SignalSender, mpsc::Receiver<Call>) {
        let (tx, rx) = mpsc::channel(QUEUE_CALLS);
        (
            SignalSender {
                queue: tx,
                account: account.to_string(),
                channel: channel.to_string(),
                store,
                identities,
                clock,
            },
            rx,
        )
    }

    /// Calls `method` with `params` and waits for signal-cli's answer.
    pub async fn call(
        &self,
        operation: &'static str,
        method: &'static str,
        mut params: Value,
    ) -> Result<Value, GatewayError> {
        if let Some(map) = params.as_object_mut() {
            map.insert("account".into(), Value::String(self.account.clone()));
        }
        let (tx, rx) = oneshot::channel();
        self.queue
            .try_send(Call {
                method,
                params,
                answer: tx,
            })
            .map_err(|_| {
                api_err(
                    operation,
                    format!("the queue to signal-cli is full ({QUEUE_CALLS} calls wait)"),
                )
            })?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(said))) => Err(api_err(operation, format!("signal-cli said: {said}"))),
            Ok(Err(_)) => Err(api_err(
                operation,
                "the connection to signal-cli ended before it answered",
            )),
            Err(_) => Err(api_err(
                operation,
                format!(
                    "no answer from signal-cli within {} s (is the daemon running?)",
                    CALL_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// The `send` calls' parameters that answer `chat` with `text`.
    pub fn messages(chat: &str, text: &str) -> Result<Vec<Value>, GatewayError> {
        let to = if is_aci(chat) {
            json!({"recipient": [chat]})
        } else if is_group_id(chat) {
            json!({"groupId": chat})
        } else {
            return Err(api_err(
                "send message",
                "the chat is neither an ACI nor a group id",
            ));
        };
        Ok(chunk_bytes(text, SIGNAL_MAX_BYTES)
            .into_iter()
            .map(|piece| {
                let mut params = to.clone();
                if let Some(map) = params.as_object_mut() {
                    map.insert("message".into(), Value::String(piece));
                }
                params
            })
            .collect())
    }

    /// The owner confirmed `sender`'s safety number: signal-cli marks it
    /// verified (it refuses a number that is not the identity's), the store
    /// keeps it, and the sender is answered again.
    pub async fn confirm(&self, sender: &str, given: &str) -> Result<(), GatewayError> {
        let op = "confirm identity";
        if !is_aci(sender) {
            return Err(api_err(
                op,
                "the sender is not an ACI (a lowercase UUID, as the audit entry shows it)",
            ));
        }
        let number = safety_number(given)
            .ok_or_else(|| api_err(op, "a safety number is 60 digits (spaces allowed)"))?;
        self.call(
            op,
            "trust",
            json!({"recipient": sender, "verifiedSafetyNumber": number}),
        )
        .await?;
        self.store.keep_identity(
            &self.channel,
            sender,
            &number,
            Standing::Confirmed,
            self.clock.now(),
        )?;
        self.identities.resume(sender);
        tracing::info!(channel = %self.channel, sender, "signal safety number confirmed");
        Ok(())
    }
}

impl Outbound for SignalSender {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            // A task started before the pause does not reach a key the
            // owner has not confirmed either.
            if self.identities.is_paused(chat) {
                return Err(api_err(
                    "send message",
                    "the recipient is paused until the owner confirms their safety number",
                ));
            }
            for params in SignalSender::messages(chat, text)? {
                self.call("send message", "send", params).await?;
            }
            Ok(())
        })
    }

    fn confirm_identity<'a>(
        &'a self,
        sender: &'a str,
        safety_number: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.confirm(sender, safety_number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_go_by_recipient_or_group_in_pieces() {
        let aci = "7ccae375-cd51-4c82-8b1e-7be3280aa485";
        let dm = SignalSender::messages(aci, "hi").unwrap();
        assert_eq!(dm, [json!({"recipient": [aci], "message": "hi"})]);
        let text = "é".repeat(1500);
        let id = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=";
        let group = SignalSender::messages(id, &text).unwrap();
        assert_eq!(group.len(), 2);
        for p in &group {
            assert_eq!(p["groupId"], id);
            assert!(p["message"].as_str().unwrap().len() <= SIGNAL_MAX_BYTES);
        }
        assert!(SignalSender::messages("+15550001111", "x").is_err());
    }

    #[tokio::test]
    async fn a_paused_recipient_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let ids = Arc::new(Identities::default());
        let clock: Arc<dyn crate::gateway::Clock> = Arc::new(crate::gateway::TestClock::new(1));
        let (s, mut rx) = SignalSender::new("sig", "+15550001111", store, Arc::clone(&ids), clock);
        let aci = "7ccae375-cd51-4c82-8b1e-7be3280aa485";
        ids.pause(aci, "1");
        let e = s.send(aci, "late answer").await.unwrap_err();
        assert!(e.to_string().contains("paused"), "{e}");
        assert!(rx.try_recv().is_err(), "a call was queued");
    }
}
