//! Telegram Bot API client: `getUpdates` long polling (offset + timeout) and
//! `sendMessage`, plus the polling loop that feeds the [`Dispatcher`].
//! The bot token is part of every URL (`/bot<token>/<method>`), so request
//! errors are reported without their URL.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::parse::{Telegram, TelegramUpdate};
use crate::gateway::channels::Redacted;
use crate::gateway::chunk::{TELEGRAM_MAX_CHARS, chunk_text};
use crate::gateway::dispatch::{Dispatched, Dispatcher};
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::{HttpConfig, send_rate_limited};

const CHANNEL: &str = "telegram";
/// The real Bot API base.
pub const TELEGRAM_API_BASE: &str = "https://api.telegram.org";
/// Updates asked for per poll.
const POLL_LIMIT: u32 = 100;

/// Talks to the Bot API.
#[derive(Debug)]
pub struct TelegramClient {
    http: reqwest::Client,
    base: String,
    token: Redacted,
    timeout: Duration,
}

#[derive(Deserialize)]
struct ApiResponse<T> {
    ok: bool,
    result: Option<T>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct UpdateId {
    update_id: i64,
}

impl TelegramClient {
    /// `bot_token`: `<digits>:<A-Z a-z 0-9 _ ->` as BotFather gives it.
    pub fn new(cfg: &HttpConfig, bot_token: Redacted) -> Result<Self, GatewayError> {
        let ok = bot_token
            .expose()
            .split_once(':')
            .is_some_and(|(id, secret)| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && !secret.is_empty()
                    && secret
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !ok {
            return Err(GatewayError::HttpClient {
                channel: CHANNEL,
                reason: "bot token is not <id>:<secret>".into(),
            });
        }
        Ok(TelegramClient {
            http: cfg.client(CHANNEL)?,
            base: cfg.base().to_string(),
            token: bot_token,
            timeout: cfg.timeout,
        })
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base, self.token.expose())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        body: serde_json::Value,
        timeout: Duration,
    ) -> Result<T, GatewayError> {
        let (status, bytes) = send_rate_limited(CHANNEL, op, || {
            self.http.post(self.url(op)).timeout(timeout).json(&body)
        })
        .await?;
        let parsed: ApiResponse<T> =
            serde_json::from_slice(&bytes).map_err(|e| GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: op,
                reason: format!("HTTP {status}: bad response: {e}"),
            })?;
        match (parsed.ok, parsed.result) {
            (true, Some(r)) => Ok(r),
            (_, _) => Err(GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: op,
                reason: format!(
                    "HTTP {status}: {}",
                    parsed
                        .description
                        .unwrap_or_default()
                        .chars()
                        .take(128)
                        .collect::<String>()
                ),
            }),
        }
    }

    /// One long poll: updates from `offset` on, waiting up to `timeout_secs`.
    /// Returns each update's raw JSON (for [`Telegram::parse`]).
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_secs: u32,
    ) -> Result<Vec<Box<RawValue>>, GatewayError> {
        let mut body = serde_json::json!({
            "timeout": timeout_secs,
            "limit": POLL_LIMIT,
            "allowed_updates": ["message"],
        });
        if let Some(o) = offset {
            body["offset"] = o.into();
        }
        let timeout = self.timeout + Duration::from_secs(u64::from(timeout_secs));
        self.call("getUpdates", body, timeout).await
    }

    /// Sends `text` to `chat_id` in pieces of [`TELEGRAM_MAX_CHARS`].
    pub async fn send_message(&self, chat_id: &str, text: &str) -> Result<(), GatewayError> {
        for part in chunk_text(text, TELEGRAM_MAX_CHARS) {
            let _: serde_json::Value = self
                .call(
                    "sendMessage",
                    serde_json::json!({ "chat_id": chat_id, "text": part }),
                    self.timeout,
                )
                .await?;
        }
        Ok(())
    }
}

impl Outbound for TelegramClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.send_message(chat, text))
    }
}

/// What one poll did (returned by [`poll_once`] for tests and metrics).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollStats {
    pub received: usize,
    pub dispatched: usize,
    pub replays: usize,
    pub rejected: usize,
}

/// Polls once from `*offset`, dispatches every update, sends the replies and
/// advances `*offset` past each update once it is handled. An update whose
/// handling fails (the audit trail unreachable) ends the poll with the error
/// and `*offset` still at it: the next poll fetches it again, since Telegram
/// drops every update below the offset it is sent.
pub async fn poll_once(
    client: &TelegramClient,
    parser: &Telegram,
    dispatcher: &Dispatcher,
    offset: &mut Option<i64>,
    timeout_secs: u32,
) -> Result<PollStats, GatewayError> {
    let updates = client.get_updates(*offset, timeout_secs).await?;
    let mut stats = PollStats {
        received: updates.len(),
        ..PollStats::default()
    };
    for raw in updates {
        let bytes = raw.get().as_bytes();
        handle_update(parser, dispatcher, bytes, &mut stats).await?;
        if let Ok(id) = serde_json::from_slice::<UpdateId>(bytes) {
            let next = id.update_id.saturating_add(1);
            *offset = Some(offset.map_or(next, |o| o.max(next)));
        }
    }
    Ok(stats)
}

/// One update: parsed, dispatched (or its rejection audited), replied to.
async fn handle_update(
    parser: &Telegram,
    dispatcher: &Dispatcher,
    bytes: &[u8],
    stats: &mut PollStats,
) -> Result<(), GatewayError> {
    let (update_id, inbound) = match parser.parse(bytes) {
        Ok(TelegramUpdate::Message { update_id, inbound }) => (update_id, inbound),
        Ok(TelegramUpdate::Ignored { .. }) => return Ok(()),
        Err(e) => {
            dispatcher.reject_malformed(CHANNEL, &e).await?;
            stats.rejected += 1;
            return Ok(());
        }
    };
    let (channel, chat) = (inbound.channel().to_string(), inbound.chat().to_string());
    match dispatcher
        .dispatch(Some(&update_id.to_string()), inbound)
        .await?
    {
        Dispatched::Replay => stats.replays += 1,
        Dispatched::Handled { reply, .. } => {
            stats.dispatched += 1;
            // Awaited, so one chat's answers keep the order of its messages;
            // a failure is logged by the outbound path.
            if let Some(text) = reply {
                let _ = dispatcher.replies().deliver(&channel, &chat, &text).await;
            }
        }
    }
    Ok(())
}

/// The long-polling loop: runs until `shutdown` turns true; errors back off
/// (1 s doubling to 60 s, shown through `pacer`) and are logged without the
/// token; a poll answered at once with nothing is not repeated within a second.
pub async fn run_polling(
    client: Arc<TelegramClient>,
    parser: Arc<Telegram>,
    dispatcher: Arc<Dispatcher>,
    timeout_secs: u32,
    pacer: crate::gateway::transport::pacer::Pacer,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let state = Polling {
        client,
        parser,
        dispatcher,
        timeout_secs,
        offset: None,
    };
    crate::gateway::transport::pacer::run_polls(pacer, shutdown, "telegram poll", state, poll)
        .await;
}

/// What the long-polling loop holds: the next offset among the rest.
struct Polling {
    client: Arc<TelegramClient>,
    parser: Arc<Telegram>,
    dispatcher: Arc<Dispatcher>,
    timeout_secs: u32,
    offset: Option<i64>,
}

fn poll(p: &mut Polling) -> BoxFuture<'_, Result<usize, GatewayError>> {
    Box::pin(async move {
        poll_once(
            &p.client,
            &p.parser,
            &p.dispatcher,
            &mut p.offset,
            p.timeout_secs,
        )
        .await
        .map(|s| s.received)
    })
}
