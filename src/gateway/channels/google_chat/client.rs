//! The Chat API client: text messages to a space (`spaces.messages.create`)
//! as the Chat app, with the service account's token, in pieces of
//! [`GOOGLE_CHAT_MAX_BYTES`]; in the thread the chat's last message came in
//! (falling back to a new thread when that one is gone). A token the API
//! refuses (401) is forgotten and the piece sent once more with a new one.

use super::parse::{CHANNEL, is_google_chat_space};
use crate::gateway::channels::ChatMemory;
use crate::gateway::chunk::chunk_bytes;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::sinks::BoxFuture;
use crate::gateway::transport::HttpConfig;
use crate::gateway::transport::oauth::TokenSource;

/// The real API base.
pub const GOOGLE_CHAT_API_BASE: &str = "https://chat.googleapis.com";
/// Largest message Google Chat accepts, in bytes of UTF-8.
pub const GOOGLE_CHAT_MAX_BYTES: usize = 32_000;
/// Most spaces whose last thread is kept (past it the map starts over: an
/// answer then opens a new thread, nothing worse).
const MAX_SPACES: usize = 10_000;
const OP: &str = "create message";

/// Talks to the Chat API as the Chat app.
#[derive(Debug)]
pub struct GoogleChatClient {
    http: reqwest::Client,
    base: String,
    tokens: TokenSource,
    /// The thread each space's last message came in.
    threads: ChatMemory,
}

impl GoogleChatClient {
    /// `tokens`: the service account's tokens for the `chat.bot` scope.
    pub fn new(cfg: &HttpConfig, tokens: TokenSource) -> Result<Self, GatewayError> {
        Ok(GoogleChatClient {
            http: cfg.client(CHANNEL)?,
            base: cfg.base().to_string(),
            tokens,
            threads: ChatMemory::new(MAX_SPACES),
        })
    }

    /// `space`'s last message came in `thread`: answers go there.
    pub fn note_thread(&self, space: &str, thread: &str) {
        self.threads.note(space, thread);
    }

    /// Sends `text` to `space` in pieces of at most 32,000 bytes.
    pub async fn send_text(&self, space: &str, text: &str) -> Result<(), GatewayError> {
        // The name becomes part of the URL's path.
        if !is_google_chat_space(space) {
            return Err(GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: OP,
                reason: "the chat is not a space name (spaces/<id>)".into(),
            });
        }
        let thread = self.threads.get(space);
        let url = match thread {
            Some(_) => format!(
                "{}/v1/{space}/messages?messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD",
                self.base
            ),
            None => format!("{}/v1/{space}/messages", self.base),
        };
        for part in chunk_bytes(text, GOOGLE_CHAT_MAX_BYTES) {
            let mut body = serde_json::json!({ "text": part });
            if let Some(t) = &thread {
                body["thread"] = serde_json::json!({ "name": t });
            }
            self.tokens
                .post_json(&self.http, OP, &url, &body, None)
                .await?;
        }
        Ok(())
    }
}

impl Outbound for GoogleChatClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.send_text(chat, text))
    }
}
