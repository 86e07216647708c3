//! The Bot Connector client: text messages into a conversation, through the
//! service URL its last verified activity named (else the configured one),
//! with the bot's own token (client credentials, [`TokenSource`]). A message
//! is at most [`TEAMS_MAX_CHARS`] characters: Teams refuses an activity over
//! about 28 KB, and that many characters stay under it even when each is
//! escaped to six bytes of JSON.

use super::parse::CHANNEL;
use crate::gateway::channels::ChatMemory;
use crate::gateway::chunk::chunk_text;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::HttpConfig;
use crate::gateway::transport::oauth::TokenSource;

/// The global connector, for conversations not heard from since the start.
pub const TEAMS_API_BASE: &str = "https://smba.trafficmanager.net/teams";
/// Longest text of one message, in characters.
pub const TEAMS_MAX_CHARS: usize = 4000;
/// The scope of the bot's token for the Bot Connector.
pub const CONNECTOR_SCOPE: &str = "https://api.botframework.com/.default";
/// Most conversations whose service URL is kept.
const MAX_CONVERSATIONS: usize = 100_000;

/// Talks to the Bot Connector.
#[derive(Debug)]
pub struct TeamsClient {
    http: reqwest::Client,
    default_service_url: String,
    tokens: TokenSource,
    /// The service URL of each conversation's last verified activity.
    service_urls: ChatMemory,
}

impl TeamsClient {
    pub fn new(cfg: &HttpConfig, tokens: TokenSource) -> Result<Self, GatewayError> {
        Ok(TeamsClient {
            http: cfg.client(CHANNEL)?,
            default_service_url: cfg.base().to_string(),
            tokens,
            service_urls: ChatMemory::new(MAX_CONVERSATIONS),
        })
    }

    /// A verified activity of `conversation` named `service_url`.
    pub fn note_inbound(&self, conversation: &str, service_url: &str) {
        self.service_urls.note(conversation, service_url);
    }

    /// Sends `text` into `conversation`, in pieces of [`TEAMS_MAX_CHARS`].
    pub async fn send_text(&self, conversation: &str, text: &str) -> Result<(), GatewayError> {
        const OP: &str = "send message";
        let base = self
            .service_urls
            .get(conversation)
            .unwrap_or_else(|| self.default_service_url.clone());
        let mut url = crate::net::parse_url(&base, "https", "http").map_err(|e| {
            GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: OP,
                reason: format!("service URL: {e}"),
            }
        })?;
        // The conversation id is one path segment, escaped (it holds `:`, `;`, `@`).
        url.path_segments_mut()
            .map_err(|()| GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: OP,
                reason: "service URL cannot take a path".into(),
            })?
            .pop_if_empty()
            .extend(["v3", "conversations", conversation, "activities"]);
        for part in chunk_text(text, TEAMS_MAX_CHARS) {
            let body =
                serde_json::json!({ "type": "message", "text": part, "textFormat": "plain" });
            self.tokens
                .post_json(&self.http, OP, url.as_str(), &body, None)
                .await?;
        }
        Ok(())
    }
}

impl Outbound for TeamsClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.send_text(chat, text))
    }
}
