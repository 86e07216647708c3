//! Slack Web API client: `chat.postMessage` with the bot token (Bearer).

use serde::Deserialize;

use super::{HttpConfig, auth_header, send_rate_limited};
use crate::gateway::channels::Redacted;
use crate::gateway::chunk::{SLACK_MAX_CHARS, chunk_text};
use crate::gateway::error::GatewayError;

const CHANNEL: &str = "slack";
/// The real Web API base.
pub const SLACK_API_BASE: &str = "https://slack.com/api";

/// Posts replies to Slack.
#[derive(Debug)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    auth: reqwest::header::HeaderValue,
}

#[derive(Deserialize)]
struct ApiResponse {
    ok: bool,
    error: Option<String>,
}

impl SlackClient {
    /// `bot_token`: the `xoxb-` bot token.
    pub fn new(cfg: &HttpConfig, bot_token: &Redacted) -> Result<Self, GatewayError> {
        Ok(SlackClient {
            http: cfg.client(CHANNEL)?,
            base: cfg.base().to_string(),
            auth: auth_header(CHANNEL, "Bearer", bot_token)?,
        })
    }

    /// Posts `text` to `channel` in blocks of [`SLACK_MAX_CHARS`].
    pub async fn post_message(&self, channel: &str, text: &str) -> Result<(), GatewayError> {
        for part in chunk_text(text, SLACK_MAX_CHARS) {
            let op = "chat.postMessage";
            let (status, body) = send_rate_limited(CHANNEL, op, || {
                self.http
                    .post(format!("{}/chat.postMessage", self.base))
                    .header(reqwest::header::AUTHORIZATION, self.auth.clone())
                    .json(&serde_json::json!({ "channel": channel, "text": part }))
            })
            .await?;
            let parsed: ApiResponse =
                serde_json::from_slice(&body).map_err(|e| GatewayError::ChannelApi {
                    channel: CHANNEL,
                    operation: op,
                    reason: format!("HTTP {status}: bad response: {e}"),
                })?;
            if !parsed.ok {
                return Err(GatewayError::ChannelApi {
                    channel: CHANNEL,
                    operation: op,
                    reason: format!(
                        "HTTP {status}: {}",
                        parsed
                            .error
                            .unwrap_or_default()
                            .chars()
                            .take(64)
                            .collect::<String>()
                    ),
                });
            }
        }
        Ok(())
    }
}
