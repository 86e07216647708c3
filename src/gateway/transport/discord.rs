//! Discord REST client: `POST /channels/{id}/messages` with the bot token.

use super::{HttpConfig, auth_header, send_rate_limited};
use crate::gateway::channels::Redacted;
use crate::gateway::chunk::{DISCORD_MAX_CHARS, chunk_text};
use crate::gateway::error::GatewayError;

const CHANNEL: &str = "discord";
/// The real REST API base.
pub const DISCORD_API_BASE: &str = "https://discord.com/api/v10";

/// Posts replies to Discord channels.
#[derive(Debug)]
pub struct DiscordClient {
    http: reqwest::Client,
    base: String,
    auth: reqwest::header::HeaderValue,
}

impl DiscordClient {
    pub fn new(cfg: &HttpConfig, bot_token: &Redacted) -> Result<Self, GatewayError> {
        Ok(DiscordClient {
            http: cfg.client(CHANNEL)?,
            base: cfg.base().to_string(),
            auth: auth_header(CHANNEL, "Bot", bot_token)?,
        })
    }

    /// Posts `text` to `channel_id` (a snowflake) in pieces of [`DISCORD_MAX_CHARS`];
    /// mentions in the text never ping anyone.
    pub async fn create_message(&self, channel_id: &str, text: &str) -> Result<(), GatewayError> {
        let op = "create message";
        if channel_id.is_empty()
            || channel_id.len() > 20
            || !channel_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: op,
                reason: "channel id is not a snowflake".into(),
            });
        }
        for part in chunk_text(text, DISCORD_MAX_CHARS) {
            let (status, _) = send_rate_limited(CHANNEL, op, || {
                self.http
                    .post(format!("{}/channels/{channel_id}/messages", self.base))
                    .header(reqwest::header::AUTHORIZATION, self.auth.clone())
                    .json(&serde_json::json!({
                        "content": part,
                        "allowed_mentions": { "parse": [] },
                    }))
            })
            .await?;
            if !status.is_success() {
                return Err(GatewayError::ChannelApi {
                    channel: CHANNEL,
                    operation: op,
                    reason: format!("HTTP {status}"),
                });
            }
        }
        Ok(())
    }
}
