//! The Graph API client: text messages to a chat in pieces of
//! [`WHATSAPP_MAX_CHARS`], from the configured business number. WhatsApp
//! lets a business answer freely only within 24 hours of the person's last
//! message (the customer service window); past it only a template may be
//! sent, so the client refuses with a sentence that says so (the task's
//! `task.reply_failed` entry shows it to the owner) rather than failing
//! silently.

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

/// The real Graph API base (its version is part of it).
pub const WHATSAPP_API_BASE: &str = "https://graph.facebook.com/v21.0";
/// Longest text message body WhatsApp accepts, in characters.
pub const WHATSAPP_MAX_CHARS: usize = 4096;
/// The customer service window.
pub const SERVICE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Graph API error code for a message outside the window.
const OUTSIDE_WINDOW_CODE: i64 = 131_047;
/// Most chats whose last message time is kept.
const MAX_CHATS: usize = 100_000;

/// The owner-facing sentence for a reply past the window.
pub const OUTSIDE_WINDOW: &str = "outside WhatsApp's 24-hour customer service window: only an approved template message may be sent now, so the reply was not delivered";

/// Talks to the Graph API with the system user's access token.
#[derive(Debug)]
pub struct WhatsAppClient {
    api: ApiClient,
    phone_number_id: String,
    /// When each chat last wrote (the window opens there).
    last_inbound: Mutex<HashMap<String, Instant>>,
}

impl WhatsAppClient {
    pub fn new(
        cfg: &HttpConfig,
        access_token: &Redacted,
        phone_number_id: &str,
    ) -> Result<Self, GatewayError> {
        Ok(WhatsAppClient {
            api: ApiClient::new(CHANNEL, cfg, "Bearer", access_token)?,
            phone_number_id: phone_number_id.to_string(),
            last_inbound: Mutex::new(HashMap::new()),
        })
    }

    /// `chat` wrote just now: its window is open for 24 hours.
    pub fn note_inbound(&self, chat: &str) {
        let mut seen = lock(&self.last_inbound);
        if seen.len() >= MAX_CHATS {
            seen.retain(|_, at| at.elapsed() < SERVICE_WINDOW);
        }
        if seen.len() < MAX_CHATS {
            seen.insert(chat.to_string(), Instant::now());
        }
    }

    /// Sends `text` to `chat` (a phone number, else a business-scoped id).
    /// A chat known to have been silent past the window is refused before
    /// anything is sent (one not seen since the gateway started is tried,
    /// and WhatsApp's own refusal reads the same).
    pub async fn send_text(&self, chat: &str, text: &str) -> Result<(), GatewayError> {
        let closed = lock(&self.last_inbound)
            .get(chat)
            .is_some_and(|at| at.elapsed() >= SERVICE_WINDOW);
        if closed {
            return Err(outside_window());
        }
        let to = if chat.bytes().all(|b| b.is_ascii_digit()) {
            "to"
        } else {
            "recipient"
        };
        let path = format!("{}/messages", self.phone_number_id);
        for part in chunk_text(text, WHATSAPP_MAX_CHARS) {
            let body = serde_json::json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                to: chat,
                "type": "text",
                "text": { "body": part, "preview_url": false },
            });
            let (status, answer) =
                send_rate_limited(CHANNEL, "send message", || self.api.post(&path).json(&body))
                    .await?;
            if status.is_success() {
                continue;
            }
            let error = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v.get("error").cloned());
            let code = error.as_ref().and_then(|e| e.get("code")?.as_i64());
            if code == Some(OUTSIDE_WINDOW_CODE) {
                return Err(outside_window());
            }
            let said: String = error
                .as_ref()
                .and_then(|e| {
                    e.get("message")?
                        .as_str()
                        .map(|m| m.chars().take(128).collect())
                })
                .unwrap_or_default();
            return Err(GatewayError::ChannelApi {
                channel: CHANNEL,
                operation: "send message",
                reason: format!("HTTP {status}: {said}"),
            });
        }
        Ok(())
    }
}

fn outside_window() -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation: "send message",
        reason: OUTSIDE_WINDOW.into(),
    }
}

impl Outbound for WhatsAppClient {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.send_text(chat, text))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
