//! BlueBubbles: the webhook's proof (BlueBubbles signs nothing: the URL the
//! owner gives it carries a secret, `?secret=…`, compared in constant time)
//! and its events (`{"type": "new-message", "data": {message}}`) →
//! [`Inbound`] messages.
//!
//! Identity: the sender is the message's `handle.address` as BlueBubbles
//! gives it, a phone number in E.164 (`+15551234567`) or an Apple ID e-mail
//! address (lowercased here: Apple treats them case-insensitively); never a
//! contact's display name. The chat is the chat guid replies go to:
//! `iMessage;-;HANDLE` (or `SMS;-;…`) is a DM, `iMessage;+;chat…` a group.
//!
//! The owner's own messages (`isFromMe`: what the appliance sent, or the
//! owner typing on the Mac) are never prompts. A captured body is refused as
//! a replay by the message guid inside the replay guard's window, and a
//! message older than that window ([`MAX_EVENT_AGE_SECS`]) is ignored.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::gateway::channels::{check_body_size, parse_json};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Attachment, Context, Inbound, MAX_ATTACHMENTS, RawInbound};

pub(crate) const CHANNEL: &str = "bluebubbles";
/// The query parameter of the webhook URL that carries the secret.
pub const SECRET_PARAM: &str = "secret";
/// Messages older than this are ignored: the replay guard remembers message
/// guids for as long (`gateway::service`, 24 h).
pub const MAX_EVENT_AGE_SECS: i64 = 24 * 3600;
/// Longest message guid accepted (BlueBubbles' are a UUID, 36 characters).
const MAX_GUID_LEN: usize = 128;
/// The longest query string looked at (a secret is at most 256 bytes).
const MAX_QUERY_LEN: usize = 1024;

/// One verified webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlueBubblesEvent {
    Message {
        /// The message guid, the replay key.
        guid: String,
        inbound: Box<Inbound>,
    },
    /// Authentic but not a prompt (the owner's own message, a tapback, a
    /// typing indicator, a read receipt...).
    Ignored { reason: &'static str },
}

/// The BlueBubbles channel's verifier and parser.
pub struct BlueBubbles {
    /// The configured channel this parser serves (its name in `[channels]`).
    channel: String,
    /// SHA-256 of the webhook secret: comparing digests keeps the comparison
    /// constant-time whatever the length presented.
    secret_digest: [u8; 32],
    /// What addresses the appliance in a group (iMessage has no mentions),
    /// lowercased; empty: nothing does.
    bot_name: String,
}

impl std::fmt::Debug for BlueBubbles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlueBubbles({}, bot {:?})", self.channel, self.bot_name)
    }
}

/// Whether `id` is a BlueBubbles handle address: `+` and 3 to 15 digits
/// (E.164; a short code without the `+`), or a lowercase e-mail address.
pub fn is_handle(id: &str) -> bool {
    let digits = id.strip_prefix('+').unwrap_or(id);
    if (3..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let Some((local, domain)) = id.split_once('@') else {
        return false;
    };
    id.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !c.is_ascii_uppercase())
}

/// Whether `id` is a chat guid: a service (`iMessage`, `SMS`, `RCS`, `any`),
/// `;-;` and a handle (a DM) or `;+;` and a group's identifier.
pub fn is_chat_guid(id: &str) -> bool {
    chat_context(id).is_some()
}

/// The context a chat guid names, if it is one.
fn chat_context(guid: &str) -> Option<Context> {
    let mut parts = guid.splitn(3, ';');
    let (service, kind, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if !matches!(service, "iMessage" | "SMS" | "RCS" | "any")
        || rest.is_empty()
        || guid.len() > 256
        || !rest.chars().all(|c| c.is_ascii_graphic() && c != ';')
    {
        return None;
    }
    match kind {
        "-" => Some(Context::Dm),
        "+" => Some(Context::Group),
        _ => None,
    }
}

/// What an allowlist, an approver list or a per-chat setting of a
/// BlueBubbles channel may hold: a handle or a chat guid.
pub fn is_bluebubbles_id(id: &str) -> bool {
    is_handle(id) || is_chat_guid(id)
}

impl BlueBubbles {
    /// `webhook_secret`: 32 to 256 characters of `A-Z a-z 0-9 _ -` (it sits
    /// in a URL unescaped); `bot_name` may be empty.
    pub fn new(webhook_secret: &str, bot_name: &str) -> Result<BlueBubbles, GatewayError> {
        let ok = (32..=256).contains(&webhook_secret.len())
            && webhook_secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "webhook secret must be 32 to 256 characters of A-Z a-z 0-9 _ -",
            });
        }
        Ok(BlueBubbles {
            channel: CHANNEL.to_string(),
            secret_digest: Sha256::digest(webhook_secret.as_bytes()).into(),
            bot_name: bot_name.trim().to_lowercase(),
        })
    }

    /// Serves the channel configured as `channel` (messages carry that name).
    pub fn named(mut self, channel: &str) -> BlueBubbles {
        self.channel = channel.to_string();
        self
    }

    /// Checks the secret of the request's query string (`query`, raw).
    pub fn verify(&self, query: Option<&str>, body: &[u8]) -> Result<(), GatewayError> {
        self.verify_inner(query, body)
            .map_err(|r| GatewayError::verify(CHANNEL, r))
    }

    fn verify_inner(&self, query: Option<&str>, body: &[u8]) -> Result<(), AuthFailure> {
        check_body_size(body)?;
        let query = query.unwrap_or_default();
        if query.len() > MAX_QUERY_LEN {
            return Err(AuthFailure::BadUrlSecret("in an overlong query"));
        }
        let mut given = None;
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name == SECRET_PARAM {
                if given.is_some() {
                    return Err(AuthFailure::BadUrlSecret("given more than once"));
                }
                given = Some(value);
            }
        }
        let given = given.ok_or(AuthFailure::BadUrlSecret("missing"))?;
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.secret_digest)) {
            Ok(())
        } else {
            Err(AuthFailure::BadUrlSecret("does not match"))
        }
    }

    /// Verifies, then parses (the one to use in production).
    pub fn receive(
        &self,
        query: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<BlueBubblesEvent, GatewayError> {
        self.verify(query, body)?;
        self.parse(body, now)
    }

    /// Parses one webhook body (call only after [`BlueBubbles::verify`]).
    pub fn parse(&self, body: &[u8], now: i64) -> Result<BlueBubblesEvent, GatewayError> {
        let ignored = |reason| Ok(BlueBubblesEvent::Ignored { reason });
        let event: Event = parse_json(CHANNEL, body)?;
        if event.kind != "new-message" {
            return ignored("event type");
        }
        self.message(event.data, now)
    }

    /// Parses one message object (a `new-message` event's data, or one
    /// message of the server's `/api/v1/message/query` when polling).
    pub fn message(
        &self,
        data: serde_json::Value,
        now: i64,
    ) -> Result<BlueBubblesEvent, GatewayError> {
        let ignored = |reason| Ok(BlueBubblesEvent::Ignored { reason });
        let msg: Message = serde_json::from_value(data)
            .map_err(|e| GatewayError::parse(CHANNEL, format!("message: {e}")))?;
        if msg.is_from_me {
            return ignored("the owner's own message");
        }
        // Tapbacks and other associated messages point at another message.
        if msg
            .associated_message_guid
            .as_deref()
            .is_some_and(|g| !g.is_empty())
        {
            return ignored("a reaction");
        }
        if msg.date_created / 1000 < now - MAX_EVENT_AGE_SECS {
            return ignored("older than the replay window");
        }
        let guid = Some(msg.guid)
            .filter(|g| !g.is_empty() && g.len() <= MAX_GUID_LEN)
            .ok_or_else(|| GatewayError::parse(CHANNEL, "message guid empty or too long"))?;
        let address = msg
            .handle
            .map(|h| h.address)
            .ok_or_else(|| GatewayError::parse(CHANNEL, "message without a handle"))?;
        let sender = if address.contains('@') {
            address.to_lowercase()
        } else {
            address
        };
        if !is_handle(&sender) {
            return Err(GatewayError::parse(
                CHANNEL,
                "sender is not a phone number or e-mail handle",
            ));
        }
        let chat = match &msg.chats[..] {
            [chat] => chat.guid.clone(),
            [] => return Err(GatewayError::parse(CHANNEL, "message without a chat")),
            _ => return Err(GatewayError::parse(CHANNEL, "message in several chats")),
        };
        let context = chat_context(&chat)
            .ok_or_else(|| GatewayError::parse(CHANNEL, "chat guid of an unknown shape"))?;
        let attachments = messages_attachments(
            CHANNEL,
            msg.attachments
                .into_iter()
                .map(|a| (a.transfer_name, a.mime_type, a.total_bytes))
                .collect(),
        )?;
        let text = msg.text.unwrap_or_default();
        let mentions_bot = mentions(&self.bot_name, &text);
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: None,
            sender,
            sender_name: None,
            chat,
            context,
            mentions_bot,
            text,
            attachments,
        })?;
        Ok(BlueBubblesEvent::Message {
            guid,
            inbound: Box::new(inbound),
        })
    }
}

/// Messages' attachments (its transfer name, MIME type and size, as
/// BlueBubbles and imsg give them), at most [`MAX_ATTACHMENTS`], each named.
pub(crate) fn messages_attachments(
    platform: &'static str,
    list: Vec<(Option<String>, Option<String>, Option<u64>)>,
) -> Result<Vec<Attachment>, GatewayError> {
    if list.len() > MAX_ATTACHMENTS {
        return Err(GatewayError::parse(platform, "too many attachments"));
    }
    Ok(list
        .into_iter()
        .map(|(name, mime, size)| Attachment {
            name: name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "attachment.bin".into()),
            mime,
            size,
        })
        .collect())
}

/// Whether `text` addresses the appliance in a group: iMessage has no
/// mentions, so its name (`bot_name`, lowercased; empty: nothing does).
pub(crate) fn mentions(bot_name: &str, text: &str) -> bool {
    !bot_name.is_empty() && text.to_lowercase().contains(bot_name)
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    /// Parsed by `kind` (other events carry other shapes).
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    guid: String,
    text: Option<String>,
    is_from_me: bool,
    /// Milliseconds since the epoch.
    date_created: i64,
    handle: Option<Handle>,
    #[serde(default)]
    chats: Vec<Chat>,
    #[serde(default)]
    attachments: Vec<AttachmentInfo>,
    associated_message_guid: Option<String>,
}

#[derive(Deserialize)]
struct Handle {
    address: String,
}

#[derive(Deserialize)]
struct Chat {
    guid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttachmentInfo {
    transfer_name: Option<String>,
    mime_type: Option<String>,
    total_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "bb-webhook-secret-0123456789abcdef";
    const NOW: i64 = 1_800_000_000;
    const PHONE: &str = "+15551234567";
    const DM: &str = "iMessage;-;+15551234567";
    const GROUP: &str = "iMessage;+;chat123456789012345678";

    fn bb() -> BlueBubbles {
        BlueBubbles::new(SECRET, "@Cowork").unwrap()
    }

    fn message(address: &str, chat: &str, text: &str) -> serde_json::Value {
        json!({"type": "new-message", "data": {
            "guid": "6B1D4A5C-1E2F-4A3B-9C8D-0123456789AB",
            "text": text, "isFromMe": false, "dateCreated": NOW * 1000,
            "handle": {"address": address, "service": "iMessage"},
            "chats": [{"guid": chat, "displayName": "Family"}],
            "attachments": [], "associatedMessageGuid": null,
        }})
    }

    fn parse(v: &serde_json::Value) -> Result<BlueBubblesEvent, GatewayError> {
        bb().parse(v.to_string().as_bytes(), NOW)
    }

    #[test]
    fn a_dm_becomes_one_message_by_handle_and_chat_guid() {
        let body = message(PHONE, DM, "hi").to_string();
        let q = format!("secret={SECRET}");
        let got = bb().receive(Some(&q), body.as_bytes(), NOW).unwrap();
        let BlueBubblesEvent::Message { guid, inbound } = got else {
            panic!("{got:?}")
        };
        assert_eq!(guid, "6B1D4A5C-1E2F-4A3B-9C8D-0123456789AB");
        assert_eq!((inbound.sender(), inbound.chat()), (PHONE, DM));
        assert_eq!(inbound.context(), Context::Dm);
        assert_eq!(inbound.sender_name(), None);
        assert!(!inbound.mentions_bot());
    }

    #[test]
    fn the_secret_is_checked_before_anything_else() {
        let b = b"{}";
        assert!(bb().verify(Some(&format!("secret={SECRET}")), b).is_ok());
        assert!(
            bb().verify(Some(&format!("a=1&secret={SECRET}&b")), b)
                .is_ok()
        );
        for (q, want) in [
            (None, "missing"),
            (Some(""), "missing"),
            (Some("password=x"), "missing"),
            (Some("secret="), "does not match"),
            (
                Some("secret=bb-webhook-secret-0123456789abcdeX"),
                "does not match",
            ),
            (Some("SECRET=bb-webhook-secret-0123456789abcdef"), "missing"),
        ] {
            match bb().verify(q, b) {
                Err(GatewayError::VerifyRequest {
                    reason: AuthFailure::BadUrlSecret(r),
                    ..
                }) => assert_eq!(r, want, "{q:?}"),
                other => panic!("{q:?}: {other:?}"),
            }
        }
        let twice = format!("secret={SECRET}&secret={SECRET}");
        assert!(bb().verify(Some(&twice), b).is_err());
        let long = format!("secret={SECRET}&x={}", "a".repeat(2000));
        assert!(bb().verify(Some(&long), b).is_err());
        for bad in [
            "short",
            &"a".repeat(257),
            "bb webhook secret 0123456789abcdef",
        ] {
            assert!(BlueBubbles::new(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_mentions_and_what_is_ignored() {
        let got = parse(&message("Ada@Example.com", GROUP, "hey @cowork, status?")).unwrap();
        let BlueBubblesEvent::Message { inbound, .. } = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            (inbound.sender(), inbound.chat(), inbound.context()),
            ("ada@example.com", GROUP, Context::Group)
        );
        assert!(inbound.mentions_bot());
        let mut mine = message(PHONE, DM, "sent by me");
        mine["data"]["isFromMe"] = json!(true);
        let mut tapback = message(PHONE, DM, "Loved “hi”");
        tapback["data"]["associatedMessageGuid"] = json!("p:0/6B1D4A5C");
        let mut old = message(PHONE, DM, "old");
        old["data"]["dateCreated"] = json!((NOW - MAX_EVENT_AGE_SECS - 1) * 1000);
        let typing = json!({"type": "typing-indicator", "data": {"display": true, "guid": DM}});
        let updated = json!({"type": "updated-message", "data": {}});
        for (ev, want) in [
            (mine, "the owner's own message"),
            (tapback, "a reaction"),
            (old, "older than the replay window"),
            (typing, "event type"),
            (updated, "event type"),
        ] {
            assert_eq!(
                parse(&ev).unwrap(),
                BlueBubblesEvent::Ignored { reason: want }
            );
        }
    }

    #[test]
    fn hostile_bodies_are_refused_with_a_reason() {
        let b = bb();
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"type\": 5}",
            b"{\"type\": \"new-message\"}",
            b"{\"type\": \"new-message\", \"data\": []}",
            b"\xff\xfe",
        ] {
            assert!(
                b.parse(bad, NOW).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut m = message(PHONE, DM, "x");
            f(&mut m);
            m
        };
        for (what, ev) in [
            ("no handle", edit(&|m| m["data"]["handle"] = json!(null))),
            (
                "a display name",
                edit(&|m| m["data"]["handle"]["address"] = json!("Ada Lovelace")),
            ),
            (
                "a NUL",
                edit(&|m| m["data"]["handle"]["address"] = json!("+1555\u{0}")),
            ),
            ("no chat", edit(&|m| m["data"]["chats"] = json!([]))),
            (
                "two chats",
                edit(&|m| m["data"]["chats"] = json!([{"guid": DM}, {"guid": GROUP}])),
            ),
            (
                "odd chat",
                edit(&|m| m["data"]["chats"][0]["guid"] = json!("iMessage;*;x")),
            ),
            (
                "odd service",
                edit(&|m| m["data"]["chats"][0]["guid"] = json!("Evil;-;+15551234567")),
            ),
            ("empty guid", edit(&|m| m["data"]["guid"] = json!(""))),
            (
                "long guid",
                edit(&|m| m["data"]["guid"] = json!("g".repeat(129))),
            ),
            (
                "no date",
                edit(&|m| {
                    m["data"]
                        .as_object_mut()
                        .unwrap()
                        .remove("dateCreated")
                        .map(drop)
                        .unwrap_or(())
                }),
            ),
            ("text a number", edit(&|m| m["data"]["text"] = json!(7))),
            (
                "many files",
                edit(&|m| m["data"]["attachments"] = json!(vec![json!({}); 33])),
            ),
        ] {
            assert!(parse(&ev).is_err(), "{what}");
        }
    }

    #[test]
    fn ids_are_shaped() {
        for ok in [
            PHONE,
            "12345",
            "ada@example.com",
            DM,
            GROUP,
            "SMS;-;+15551234567",
        ] {
            assert!(is_bluebubbles_id(ok), "{ok}");
        }
        for bad in [
            "",
            "Ada Lovelace",
            "Ada@Example.com",
            "+1 555 123 4567",
            "+12",
            "ada@",
            "@example.com",
            "ada@example",
            "iMessage;-;",
            "iMessage;+;chat 1",
            "Evil;-;+15551234567",
            "*",
        ] {
            assert!(!is_bluebubbles_id(bad), "{bad}");
        }
    }
}
