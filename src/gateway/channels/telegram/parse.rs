//! Telegram: webhook secret token (`X-Telegram-Bot-Api-Secret-Token`, compared in
//! constant time) and Bot API `Update` JSON → [`Inbound`]. Parsing is separate
//! from transport so the long-polling client can feed `parse` directly.
//!
//! Telegram sends no timestamp; replays are bounded by the transport dropping
//! `update_id`s it has already seen.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::gateway::channels::{Headers, check_body_size, parse_json};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Attachment, Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "telegram";
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// What an update carries for the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelegramUpdate {
    Message {
        update_id: i64,
        inbound: Inbound,
    },
    Ignored {
        update_id: i64,
        reason: &'static str,
    },
}

/// The Telegram channel's verifier and parser.
pub struct Telegram {
    /// The configured channel this parser serves (its name in `[channels]`,
    /// stamped on every message; the platform's name unless [`Self::named`]).
    channel: String,
    /// SHA-256 of the secret token: comparing digests keeps the comparison
    /// constant-time regardless of the presented token's length.
    secret_digest: [u8; 32],
    bot_id: i64,
    bot_username: String,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("bot_id", &self.bot_id)
            .field("bot_username", &self.bot_username)
            .finish_non_exhaustive()
    }
}

impl Telegram {
    /// Serves the channel configured as `channel` (messages carry that name,
    /// so its settings, users and replies are the ones that apply).
    pub fn named(mut self, channel: &str) -> Telegram {
        self.channel = channel.to_string();
        self
    }

    /// `secret_token`: 1..=256 of `A-Z a-z 0-9 _ -` (Telegram's rule).
    /// `bot_id` / `bot_username` (without `@`): for mention detection.
    pub fn new(
        secret_token: &str,
        bot_id: i64,
        bot_username: &str,
    ) -> Result<Telegram, GatewayError> {
        let ok = (16..=256).contains(&secret_token.len())
            && secret_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "secret token must be 16 to 256 characters of A-Z a-z 0-9 _ -",
            });
        }
        Ok(Telegram {
            channel: CHANNEL.to_string(),
            secret_digest: Sha256::digest(secret_token.as_bytes()).into(),
            bot_id,
            bot_username: bot_username.trim_start_matches('@').to_string(),
        })
    }

    pub fn verify(&self, headers: &Headers, body: &[u8]) -> Result<(), GatewayError> {
        self.verify_inner(headers, body)
            .map_err(|r| GatewayError::verify(CHANNEL, r))
    }

    fn verify_inner(&self, headers: &Headers, body: &[u8]) -> Result<(), AuthFailure> {
        check_body_size(body)?;
        let given = headers.require(SECRET_HEADER)?;
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.secret_digest)) {
            Ok(())
        } else {
            Err(AuthFailure::BadSignature)
        }
    }

    pub fn receive(&self, headers: &Headers, body: &[u8]) -> Result<TelegramUpdate, GatewayError> {
        self.verify(headers, body)?;
        self.parse(body)
    }

    /// Parses one `Update` (a webhook body or one element of `getUpdates`).
    pub fn parse(&self, body: &[u8]) -> Result<TelegramUpdate, GatewayError> {
        let update: Update = parse_json(CHANNEL, body)?;
        let update_id = update.update_id;
        let Some(msg) = update.message else {
            return Ok(TelegramUpdate::Ignored {
                update_id,
                reason: "not a new message",
            });
        };
        let context = match msg.chat.kind.as_str() {
            "private" => Context::Dm,
            "group" | "supergroup" => Context::Group,
            "channel" => {
                return Ok(TelegramUpdate::Ignored {
                    update_id,
                    reason: "channel post",
                });
            }
            _ => return Err(GatewayError::parse(CHANNEL, "unknown chat type")),
        };
        let Some(from) = msg.from else {
            return Ok(TelegramUpdate::Ignored {
                update_id,
                reason: "message without sender",
            });
        };
        if from.is_bot {
            return Ok(TelegramUpdate::Ignored {
                update_id,
                reason: "bot sender",
            });
        }
        let (text, entities) = match (msg.text, msg.caption) {
            (Some(t), _) => (t, msg.entities.unwrap_or_default()),
            (None, Some(c)) => (c, msg.caption_entities.unwrap_or_default()),
            (None, None) => (String::new(), Vec::new()),
        };
        let mentions_bot = self.mentions_bot(&text, &entities)
            || msg
                .reply_to_message
                .and_then(|r| r.from)
                .is_some_and(|u| u.id == self.bot_id);
        let mut attachments = Vec::new();
        if let Some(d) = msg.document {
            attachments.push(Attachment {
                name: d.file_name.unwrap_or_else(|| "document".into()),
                mime: d.mime_type,
                size: d.file_size,
            });
        }
        if let Some(p) = msg
            .photo
            .and_then(|p| p.into_iter().max_by_key(|s| s.file_size))
        {
            attachments.push(Attachment {
                name: "photo.jpg".into(),
                mime: Some("image/jpeg".into()),
                size: p.file_size,
            });
        }
        let name = match (from.first_name, from.username) {
            (Some(f), _) if !f.is_empty() => Some(f),
            (_, u) => u,
        };
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: None,
            sender: from.id.to_string(),
            sender_name: name,
            chat: msg.chat.id.to_string(),
            context,
            mentions_bot,
            text,
            attachments,
        })?;
        Ok(TelegramUpdate::Message { update_id, inbound })
    }

    fn mentions_bot(&self, text: &str, entities: &[Entity]) -> bool {
        if self.bot_username.is_empty() && self.bot_id == 0 {
            return false;
        }
        let units: Vec<u16> = text.encode_utf16().collect();
        let handle = format!("@{}", self.bot_username);
        entities.iter().any(|e| match e.kind.as_str() {
            "text_mention" => e.user.as_ref().is_some_and(|u| u.id == self.bot_id),
            "mention" | "bot_command" => {
                // Entity offsets are UTF-16 code units; out-of-range is no mention.
                let Some(end) = e.offset.checked_add(e.length) else {
                    return false;
                };
                let Some(slice) = units.get(e.offset..end) else {
                    return false;
                };
                let Ok(s) = String::from_utf16(slice) else {
                    return false;
                };
                if e.kind == "mention" {
                    s.eq_ignore_ascii_case(&handle)
                } else {
                    s.rsplit_once('@')
                        .is_some_and(|(_, bot)| bot.eq_ignore_ascii_case(&self.bot_username))
                }
            }
            _ => false,
        })
    }
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[allow(dead_code)]
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    text: Option<String>,
    caption: Option<String>,
    entities: Option<Vec<Entity>>,
    caption_entities: Option<Vec<Entity>>,
    reply_to_message: Option<ReplyRef>,
    document: Option<Document>,
    photo: Option<Vec<PhotoSize>>,
}

/// Only who wrote the replied-to message; its own nesting is not parsed.
#[derive(Deserialize)]
struct ReplyRef {
    from: Option<User>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    first_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    offset: usize,
    length: usize,
    user: Option<User>,
}

#[derive(Deserialize)]
struct Document {
    file_name: Option<String>,
    mime_type: Option<String>,
    file_size: Option<u64>,
}

#[derive(Deserialize)]
struct PhotoSize {
    file_size: Option<u64>,
}
