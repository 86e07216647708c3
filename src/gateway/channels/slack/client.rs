//! Slack Web API client: `chat.postMessage` with the bot token (Bearer).

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::gateway::channels::Redacted;
use crate::gateway::chunk::{SLACK_MAX_CHARS, chunk_text};
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::{ApiClient, HttpConfig, send_rate_limited};

const CHANNEL: &str = "slack";
/// The real Web API base.
pub const SLACK_API_BASE: &str = "https://slack.com/api";

/// Posts replies to Slack.
#[derive(Debug)]
pub struct SlackClient {
    api: ApiClient,
}

/// What every Web API answer says: `ok`, and Slack's `error` code when not.
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    error: Option<String>,
}

/// `chat.postMessage` needs nothing of its answer but `ok`.
#[derive(Deserialize)]
struct Posted {}

/// Reads a Web API answer: `T` when `ok`, else an error with Slack's code
/// (shortened: it is the platform's text).
pub(super) fn read_answer<T: DeserializeOwned>(
    op: &'static str,
    status: reqwest::StatusCode,
    body: &[u8],
) -> Result<T, GatewayError> {
    let err = |reason: String| GatewayError::ChannelApi {
        channel: CHANNEL,
        operation: op,
        reason: format!("HTTP {status}: {reason}"),
    };
    let bad = |e: serde_json::Error| err(format!("bad response: {e}"));
    let answer: Answer = serde_json::from_slice(body).map_err(bad)?;
    if !answer.ok {
        let code = answer.error.unwrap_or_default();
        return Err(err(code.chars().take(64).collect()));
    }
    serde_json::from_slice(body).map_err(bad)
}

impl SlackClient {
    /// `bot_token`: the `xoxb-` bot token.
    pub fn new(cfg: &HttpConfig, bot_token: &Redacted) -> Result<Self, GatewayError> {
        Ok(SlackClient {
            api: ApiClient::new(CHANNEL, cfg, "Bearer", bot_token)?,
        })
    }

    /// Posts `text` to `channel` in blocks of [`SLACK_MAX_CHARS`].
    pub async fn post_message(&self, channel: &str, text: &str) -> Result<(), GatewayError> {
        for part in chunk_text(text, SLACK_MAX_CHARS) {
            let op = "chat.postMessage";
            let (status, body) = send_rate_limited(CHANNEL, op, || {
                self.api
                    .post("chat.postMessage")
                    .json(&serde_json::json!({ "channel": channel, "text": part }))
            })
            .await?;
            let _: Posted = read_answer(op, status, &body)?;
        }
        Ok(())
    }
}

impl Outbound for SlackClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.post_message(chat, text))
    }
}
