//! Discord REST client: `POST /channels/{id}/messages` with the bot token.

use crate::gateway::channels::Redacted;
use crate::gateway::chunk::{DISCORD_MAX_CHARS, chunk_text};
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::{ApiClient, HttpConfig, send_rate_limited};

const CHANNEL: &str = "discord";
/// The real REST API base.
pub const DISCORD_API_BASE: &str = "https://discord.com/api/v10";

/// Posts replies to Discord channels.
#[derive(Debug)]
pub struct DiscordClient {
    api: ApiClient,
}

impl DiscordClient {
    pub fn new(cfg: &HttpConfig, bot_token: &Redacted) -> Result<Self, GatewayError> {
        Ok(DiscordClient {
            api: ApiClient::new(CHANNEL, cfg, "Bot", bot_token)?,
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
                self.api
                    .post(&format!("channels/{channel_id}/messages"))
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

impl Outbound for DiscordClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.create_message(chat, text))
    }
}
