//! Google Chat by Pub/Sub, for a box with no public address: the Chat app
//! publishes its interaction events to a topic, and the appliance pulls the
//! subscription (`{pubsub_base}/v1/{subscription}:pull`, at most
//! [`MAX_MESSAGES_PER_PULL`] at a time) with the service account's token.
//! Each message's `data` is the event's JSON in base64: no token comes with
//! it, the subscription's IAM vouches for it. Each is parsed as on the HTTP
//! endpoint (same organization restriction) and dispatched, then the handled
//! ones are acknowledged (`:acknowledge`). A message the appliance failed to
//! handle through its own fault (the audit trail unreachable) is not
//! acknowledged, so Pub/Sub delivers it again; a malformed one is audited and
//! acknowledged. Answers leave after the acknowledgement, in order.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::client::GoogleChatClient;
use super::parse::{CHANNEL, ChatEvent, GoogleChat};
use crate::gateway::channels::audit_refused;
use crate::gateway::dispatch::{Dispatched, Dispatcher};
use crate::gateway::error::GatewayError;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::HttpConfig;
use crate::gateway::transport::oauth::TokenSource;
use crate::gateway::transport::pacer::{Pacer, run_polls};

/// The real Pub/Sub API base.
pub const PUBSUB_API_BASE: &str = "https://pubsub.googleapis.com";
/// Messages asked for per pull.
pub const MAX_MESSAGES_PER_PULL: usize = 10;
/// How long one pull may wait for messages before Pub/Sub answers.
const PULL_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest ack id echoed back (Google's are a few hundred bytes).
const MAX_ACK_ID_LEN: usize = 4096;

/// Whether `s` is `projects/<project>/subscriptions/<name>` as Pub/Sub names
/// them (the project id, possibly domain-scoped; the name 3 to 255 of
/// letters, digits, `-_.~+`, starting with a letter).
pub fn is_subscription(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("projects/") else {
        return false;
    };
    let Some((project, name)) = rest.split_once("/subscriptions/") else {
        return false;
    };
    (1..=100).contains(&project.len())
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
        && (3..=255).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+".contains(&b))
}

/// Pulls and acknowledges one subscription's messages.
#[derive(Debug)]
pub struct PubSubClient {
    http: reqwest::Client,
    base: String,
    subscription: String,
    tokens: TokenSource,
}

/// One pulled message: its ack id and its data (the event's JSON), or why
/// there is none.
#[derive(Debug)]
pub struct Pulled {
    pub ack_id: String,
    pub data: Result<Vec<u8>, &'static str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullAnswer {
    #[serde(default)]
    received_messages: Vec<ReceivedMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceivedMessage {
    ack_id: Option<String>,
    message: Option<PubsubMessage>,
}

#[derive(Deserialize)]
struct PubsubMessage {
    data: Option<String>,
}

impl PubSubClient {
    /// `subscription`: checked with [`is_subscription`]; `tokens`: the
    /// service account's tokens for the `pubsub` scope.
    pub fn new(
        cfg: &HttpConfig,
        subscription: &str,
        tokens: TokenSource,
    ) -> Result<PubSubClient, GatewayError> {
        if !is_subscription(subscription) {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "subscription must be projects/<project>/subscriptions/<name>",
            });
        }
        Ok(PubSubClient {
            http: cfg.client(CHANNEL)?,
            base: cfg.base().to_string(),
            subscription: subscription.to_string(),
            tokens,
        })
    }

    /// One pull: up to [`MAX_MESSAGES_PER_PULL`] messages (none when Pub/Sub
    /// had none to give before its own timeout).
    pub async fn pull(&self) -> Result<Vec<Pulled>, GatewayError> {
        const OP: &str = "pull";
        let body = serde_json::json!({ "maxMessages": MAX_MESSAGES_PER_PULL });
        let bytes = self.call(OP, "pull", &body, PULL_TIMEOUT).await?;
        let answer: PullAnswer =
            serde_json::from_slice(&bytes).map_err(|e| GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: OP,
                reason: format!("the answer is not a pull response: {e}"),
            })?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(answer
            .received_messages
            .into_iter()
            .filter_map(|m| {
                // Without an ack id it cannot be acknowledged: it comes again.
                let ack_id = m
                    .ack_id
                    .filter(|a| !a.is_empty() && a.len() <= MAX_ACK_ID_LEN)?;
                let data = match m.message.and_then(|msg| msg.data) {
                    Some(d) => b64.decode(d).map_err(|_| "data is not base64"),
                    None => Err("a message without data"),
                };
                Some(Pulled { ack_id, data })
            })
            .collect())
    }

    /// Acknowledges the messages of `ack_ids` (Pub/Sub delivers them no more).
    pub async fn acknowledge(&self, ack_ids: &[String]) -> Result<(), GatewayError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let body = serde_json::json!({ "ackIds": ack_ids });
        self.call("acknowledge", "acknowledge", &body, Duration::from_secs(30))
            .await
            .map(|_| ())
    }

    /// `POST {base}/v1/{subscription}:{method}` with a token (a refused
    /// token is forgotten and the call made once more); the answer's body.
    async fn call(
        &self,
        op: &'static str,
        method: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<Vec<u8>, GatewayError> {
        let url = format!("{}/v1/{}:{method}", self.base, self.subscription);
        self.tokens
            .post_json(&self.http, op, &url, body, Some(timeout))
            .await
    }
}

/// What one pull did (returned by [`pull_once`] for tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullStats {
    pub received: usize,
    pub dispatched: usize,
    pub replays: usize,
    /// Malformed, ignored or refused: acknowledged without a dispatch.
    pub not_dispatched: usize,
    pub acknowledged: usize,
}

/// What the loop needs: the subscription, the parser, the dispatcher and
/// the Chat client (for the threads answers go to).
#[derive(Debug)]
pub struct PubSubInbound {
    pub pubsub: PubSubClient,
    pub parser: GoogleChat,
    pub dispatcher: Arc<Dispatcher>,
    pub chat: Arc<GoogleChatClient>,
}

/// Pulls once, handles each message in order, acknowledges those handled,
/// then delivers the answers in order. A message that could not be handled
/// through the appliance's fault ends the batch with the error, it and the
/// rest unacknowledged (Pub/Sub delivers them again; the ones handled before
/// are then dropped as replays).
pub async fn pull_once(inbound: &PubSubInbound) -> Result<PullStats, GatewayError> {
    let pulled = inbound.pubsub.pull().await?;
    let mut stats = PullStats {
        received: pulled.len(),
        ..PullStats::default()
    };
    let mut acks = Vec::new();
    let mut answers = Vec::new();
    let mut failure = None;
    for m in pulled {
        match handle(inbound, m.data, &mut stats).await {
            Ok(answer) => {
                acks.push(m.ack_id);
                answers.extend(answer);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    inbound.pubsub.acknowledge(&acks).await?;
    stats.acknowledged = acks.len();
    let replies = inbound.dispatcher.replies();
    for (channel, chat, text) in answers {
        // A failure is logged by the outbound path (and the task notes its own).
        let _ = replies.deliver(&channel, &chat, &text).await;
    }
    failure.map_or(Ok(stats), Err)
}

/// One message: `Ok` with its answer when it may be acknowledged.
async fn handle(
    inbound: &PubSubInbound,
    data: Result<Vec<u8>, &'static str>,
    stats: &mut PullStats,
) -> Result<Option<(String, String, String)>, GatewayError> {
    let dispatcher = &inbound.dispatcher;
    let now = dispatcher.clock().now();
    let parsed = data
        .map_err(|why| GatewayError::parse(CHANNEL, why))
        .and_then(|bytes| inbound.parser.parse(&bytes, now));
    let (event_id, thread, msg) = match parsed {
        Ok(ChatEvent::Message {
            event_id,
            thread,
            inbound,
        }) => (event_id, thread, *inbound),
        Ok(ChatEvent::Ignored { .. }) => {
            stats.not_dispatched += 1;
            return Ok(None);
        }
        Ok(ChatEvent::Refused(refused)) => {
            audit_refused(dispatcher.trail(), inbound.parser.channel(), &refused).await?;
            stats.not_dispatched += 1;
            return Ok(None);
        }
        Err(e) => {
            dispatcher.reject_malformed(CHANNEL, &e).await?;
            stats.not_dispatched += 1;
            return Ok(None);
        }
    };
    if let Some(t) = thread {
        inbound.chat.note_thread(msg.chat(), &t);
    }
    let (channel, chat) = (msg.channel().to_string(), msg.chat().to_string());
    match dispatcher.dispatch(Some(&event_id), msg).await {
        Ok(Dispatched::Replay) => {
            stats.replays += 1;
            Ok(None)
        }
        Ok(Dispatched::Handled { reply, .. }) => {
            stats.dispatched += 1;
            Ok(reply.map(|text| (channel, chat, text)))
        }
        Err(e @ (GatewayError::ValidateInbound { .. } | GatewayError::ParseEvent { .. })) => {
            dispatcher.reject_malformed(CHANNEL, &e).await?;
            stats.not_dispatched += 1;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The pulling loop: runs until `shutdown` turns true; errors back off (1 s
/// doubling to 60 s, shown through `pacer`); a pull answered at once with
/// nothing is not repeated within a second.
pub async fn run_pubsub(
    inbound: Arc<PubSubInbound>,
    pacer: Pacer,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    run_polls(pacer, shutdown, "google chat pub/sub pull", inbound, pull).await;
}

fn pull(inbound: &mut Arc<PubSubInbound>) -> BoxFuture<'_, Result<usize, GatewayError>> {
    Box::pin(async move { pull_once(inbound).await.map(|s| s.received) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_shaped() {
        for ok in [
            "projects/my-project/subscriptions/chat-events",
            "projects/example.com:proj/subscriptions/a.b~c+d_e-f",
        ] {
            assert!(is_subscription(ok), "{ok}");
        }
        for bad in [
            "",
            "chat-events",
            "projects//subscriptions/abc",
            "projects/p/subscriptions/ab",
            "projects/p/subscriptions/1abc",
            "projects/p/subscriptions/a%2Fb",
            "projects/p/subscriptions/abc/x",
            "projects/P/subscriptions/abc",
            "projects/p/topics/abc",
        ] {
            assert!(!is_subscription(bad), "{bad}");
        }
    }
}
