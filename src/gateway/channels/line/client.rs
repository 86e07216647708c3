//! The Messaging API client: replies with a message's reply token when one
//! is fresh (free, about a minute, once), else push messages; text in pieces
//! of [`LINE_MAX_CHARS`], at most [`MESSAGES_PER_REQUEST`] per request. The
//! webhook route hands each message's reply token over before dispatching
//! it, so the answer leaves through the one outbound path and still uses it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::parse::CHANNEL;
use crate::gateway::channels::Redacted;
use crate::gateway::chunk::chunk_text;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::{ApiClient, HttpConfig, send_rate_limited};

/// The real API base.
pub const LINE_API_BASE: &str = "https://api.line.me";
/// Longest text message LINE accepts, in characters.
pub const LINE_MAX_CHARS: usize = 5000;
/// Most messages one reply or push request carries.
pub const MESSAGES_PER_REQUEST: usize = 5;
/// A reply token older than this is not tried (LINE keeps it about a minute).
const REPLY_TOKEN_TTL: Duration = Duration::from_secs(50);
/// Most reply tokens held at once (one per chat; stale ones are dropped first).
const MAX_REPLY_TOKENS: usize = 10_000;

/// Talks to the Messaging API with the channel access token.
#[derive(Debug)]
pub struct LineClient {
    api: ApiClient,
    /// The newest unused reply token of each chat, and when it came.
    reply_tokens: Mutex<HashMap<String, (Redacted, Instant)>>,
}

impl LineClient {
    /// `access_token`: the channel access token (long-lived or v2.1).
    pub fn new(cfg: &HttpConfig, access_token: &Redacted) -> Result<Self, GatewayError> {
        Ok(LineClient {
            api: ApiClient::new(CHANNEL, cfg, "Bearer", access_token)?,
            reply_tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Keeps `token` to answer `chat` with (replacing an older one).
    pub fn note_reply_token(&self, chat: &str, token: &str) {
        let mut tokens = lock(&self.reply_tokens);
        if tokens.len() >= MAX_REPLY_TOKENS {
            tokens.retain(|_, (_, at)| at.elapsed() < REPLY_TOKEN_TTL);
        }
        if tokens.len() < MAX_REPLY_TOKENS {
            tokens.insert(
                chat.to_string(),
                (Redacted::from(token.to_string()), Instant::now()),
            );
        }
    }

    fn take_reply_token(&self, chat: &str) -> Option<Redacted> {
        lock(&self.reply_tokens)
            .remove(chat)
            .filter(|(_, at)| at.elapsed() < REPLY_TOKEN_TTL)
            .map(|(t, _)| t)
    }

    /// Sends `text` to `chat` (a user, group or room id): the first
    /// [`MESSAGES_PER_REQUEST`] pieces as a reply when a fresh token is held
    /// (a refused token falls back to push), the rest pushed.
    pub async fn send_text(&self, chat: &str, text: &str) -> Result<(), GatewayError> {
        let pieces = chunk_text(text, LINE_MAX_CHARS);
        let mut token = self.take_reply_token(chat);
        for batch in pieces.chunks(MESSAGES_PER_REQUEST) {
            let messages: Vec<serde_json::Value> = batch
                .iter()
                .map(|t| serde_json::json!({ "type": "text", "text": t }))
                .collect();
            if let Some(t) = token.take() {
                let body = serde_json::json!({ "replyToken": t.expose(), "messages": messages });
                match self.call("reply", "v2/bot/message/reply", &body).await {
                    Ok(()) => continue,
                    // An expired or used token: the same pieces are pushed.
                    Err(e) => tracing::info!(error = %e, "line reply token refused; pushing"),
                }
            }
            let body = serde_json::json!({ "to": chat, "messages": messages });
            self.call("push", "v2/bot/message/push", &body).await?;
        }
        Ok(())
    }

    async fn call(
        &self,
        op: &'static str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), GatewayError> {
        let (status, answer) =
            send_rate_limited(CHANNEL, op, || self.api.post(path).json(body)).await?;
        if status.is_success() {
            return Ok(());
        }
        // Errors are `{"message": "..."}`: the platform's text, shortened.
        let said: String = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                v.get("message")?
                    .as_str()
                    .map(|m| m.chars().take(128).collect())
            })
            .unwrap_or_default();
        Err(GatewayError::ChannelApi {
            channel: CHANNEL,
            operation: op,
            reason: format!("HTTP {status}: {said}"),
        })
    }
}

impl Outbound for LineClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.send_text(chat, text))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
