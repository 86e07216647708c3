//! What `imsg rpc` writes on its stdout, one JSON-RPC 2.0 object a line
//! ([`parse_line`]): answers to the appliance's requests (`watch.subscribe`,
//! `send`) and `message` notifications, whose message objects become
//! [`Inbound`] messages through [`Imessage::message`].
//!
//! Identity: the sender is the message's `sender` handle as Messages keeps
//! it, normalised ([`normalise_handle`]): a phone number in E.164
//! (`+15551234567`, spaces, dashes, dots and brackets dropped) or an Apple ID
//! e-mail address (lowercased: Apple treats them case-insensitively); never
//! the contact name `imsg` resolves. The chat is imsg's `chat_id` (the row id
//! of the chat on the Mac, which `send` takes back), written in decimal; a
//! chat is a group when imsg says `is_group` or it has more than one other
//! participant. The owner's own messages (`is_from_me`: what the appliance
//! sent, or the owner typing on the Mac or the phone) and tapbacks are never
//! prompts; neither is a message older than [`MAX_EVENT_AGE_SECS`] (the
//! replay guard's window: its guid would no longer be remembered).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::super::Refused;
use super::super::bluebubbles::{is_handle, mentions, messages_attachments};
use crate::gateway::error::GatewayError;
use crate::gateway::inbound::{Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "imessage";
/// Longest line read from `imsg rpc` (a message of a few thousand words with
/// its attachments' metadata fits many times over); a longer one is skipped
/// whole and audited as malformed.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// Messages older than this are ignored: the replay guard remembers message
/// guids for as long (`gateway::service`, 24 h).
pub const MAX_EVENT_AGE_SECS: i64 = 24 * 3600;
/// Longest message guid accepted (Messages' are a UUID, 36 characters).
const MAX_GUID_LEN: usize = 128;
/// Most characters of imsg's error message quoted in a problem.
const QUOTED_CHARS: usize = 160;

/// One line of `imsg rpc`.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcLine {
    /// A `message` notification of a watch subscription: the message object,
    /// parsed by [`Imessage::message`].
    Message(serde_json::Value),
    /// The answer to the request `id`.
    Result { id: u64, result: serde_json::Value },
    /// An error answer (to the request `id`, or to none imsg could read),
    /// its message capped and without control characters.
    Error { id: Option<u64>, message: String },
    /// Another notification: nothing to act on.
    Other,
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: String,
    #[serde(default)]
    id: serde_json::Value,
    method: Option<String>,
    #[serde(default)]
    params: serde_json::Value,
    result: Option<serde_json::Value>,
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct MessageParams {
    message: serde_json::Value,
}

/// A request id as the appliance sends it (a number), or as a peer may
/// echo it (the number in a string).
fn request_id(id: &serde_json::Value) -> Option<u64> {
    match id {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) if s.len() <= 20 => s.parse().ok(),
        _ => None,
    }
}

/// Someone else's words, quoted in a problem: capped, no control characters.
pub(crate) fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(QUOTED_CHARS)
        .collect()
}

/// Parses one line of `imsg rpc` (at most [`MAX_LINE_BYTES`]).
pub fn parse_line(text: &str) -> Result<RpcLine, String> {
    if text.len() > MAX_LINE_BYTES {
        return Err(format!(
            "line of {} bytes; at most {MAX_LINE_BYTES}",
            text.len()
        ));
    }
    let env: Envelope = serde_json::from_str(text).map_err(|e| format!("not JSON-RPC: {e}"))?;
    if env.jsonrpc != "2.0" {
        return Err("not JSON-RPC 2.0".into());
    }
    if let Some(error) = env.error {
        return Ok(RpcLine::Error {
            id: request_id(&env.id),
            message: quoted(&error.message),
        });
    }
    if let Some(result) = env.result {
        let id = request_id(&env.id).ok_or("an answer without a request id of the appliance's")?;
        return Ok(RpcLine::Result { id, result });
    }
    match env.method.as_deref() {
        Some("message") => {
            let params: MessageParams = serde_json::from_value(env.params)
                .map_err(|e| format!("message notification: {e}"))?;
            Ok(RpcLine::Message(params.message))
        }
        Some(_) => Ok(RpcLine::Other),
        None => Err("neither an answer nor a notification".into()),
    }
}

/// One message notification's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImessageEvent {
    Message {
        /// The message guid, the replay key.
        guid: String,
        inbound: Box<Inbound>,
    },
    /// A sender outside `contacts`.
    Refused(Refused),
    /// Not a prompt (the owner's own message, a tapback, an old message).
    Ignored { reason: &'static str },
}

/// Whether `id` is a chat id as imsg gives it: a positive decimal row id.
pub fn is_chat_id(id: &str) -> bool {
    (1..=18).contains(&id.len()) && !id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit())
}

/// What an allowlist, an approver list or a per-chat setting of an iMessage
/// channel may hold: a handle or a chat id.
pub fn is_imessage_id(id: &str) -> bool {
    is_handle(id) || is_chat_id(id)
}

/// A handle as Messages may write it, normalised: `tel:`/`mailto:` dropped,
/// an e-mail address lowercased, a phone number without its spaces, dashes,
/// dots and brackets. `None` when what is left is no handle.
pub fn normalise_handle(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let lower = raw.to_lowercase();
    let raw = if lower.starts_with("tel:") || lower.starts_with("mailto:") {
        raw.split_once(':').map_or(raw, |(_, rest)| rest)
    } else {
        raw
    };
    let handle = if raw.contains('@') {
        raw.to_lowercase()
    } else {
        raw.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect()
    };
    is_handle(&handle).then_some(handle)
}

/// The iMessage channel's parser: its name, its contact allowlist and what
/// addresses it in a group.
pub struct Imessage {
    channel: String,
    /// Normalised handles; empty: anyone (pairing decides).
    contacts: BTreeSet<String>,
    /// What addresses the appliance in a group (iMessage has no mentions),
    /// lowercased; empty: nothing does.
    bot_name: String,
}

impl std::fmt::Debug for Imessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Imessage({}, {} contacts, bot {:?})",
            self.channel,
            self.contacts.len(),
            self.bot_name
        )
    }
}

impl Imessage {
    /// `contacts`: handles, each normalised (one that is no handle is an error).
    pub fn new(contacts: &[String], bot_name: &str) -> Result<Imessage, String> {
        let contacts = contacts
            .iter()
            .map(|c| {
                normalise_handle(c).ok_or_else(|| {
                    format!("{c:?} is not a phone number (+15551234567) or e-mail handle")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Imessage {
            channel: CHANNEL.to_string(),
            contacts,
            bot_name: bot_name.trim().to_lowercase(),
        })
    }

    /// Serves the channel configured as `channel` (messages carry that name).
    pub fn named(mut self, channel: &str) -> Imessage {
        self.channel = channel.to_string();
        self
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Parses one message object of a `message` notification; `now` in
    /// seconds since the epoch.
    pub fn message(
        &self,
        data: serde_json::Value,
        now: i64,
    ) -> Result<ImessageEvent, GatewayError> {
        let ignored = |reason| Ok(ImessageEvent::Ignored { reason });
        let msg: Message = serde_json::from_value(data)
            .map_err(|e| GatewayError::parse(CHANNEL, format!("message: {e}")))?;
        if msg.is_from_me {
            return ignored("the owner's own message");
        }
        if msg.is_reaction {
            return ignored("a reaction");
        }
        if let Some(at) = msg.created_at.as_deref() {
            let at =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                        GatewayError::parse(CHANNEL, "created_at is not an RFC 3339 time")
                    })?;
            if at.unix_timestamp() < now - MAX_EVENT_AGE_SECS {
                return ignored("older than the replay window");
            }
        }
        let guid = Some(msg.guid)
            .filter(|g| {
                !g.is_empty() && g.len() <= MAX_GUID_LEN && !g.chars().any(char::is_control)
            })
            .ok_or_else(|| GatewayError::parse(CHANNEL, "message guid empty or too long"))?;
        let sender = normalise_handle(&msg.sender).ok_or_else(|| {
            GatewayError::parse(CHANNEL, "sender is not a phone number or e-mail handle")
        })?;
        if msg.chat_id <= 0 {
            return Err(GatewayError::parse(
                CHANNEL,
                "chat_id is not a positive row id",
            ));
        }
        let chat = msg.chat_id.to_string();
        let context = if msg.is_group || msg.participants.len() > 1 {
            Context::Group
        } else {
            Context::Dm
        };
        if !self.contacts.is_empty() && !self.contacts.contains(&sender) {
            return Ok(ImessageEvent::Refused(Refused {
                reason: "not_a_contact",
                detail: "the sender is not in the channel's contacts".into(),
                sender: Some(sender),
                chat: Some(chat),
            }));
        }
        let attachments = messages_attachments(
            CHANNEL,
            msg.attachments
                .into_iter()
                .map(|a| (a.transfer_name, a.mime_type, a.total_bytes))
                .collect(),
        )?;
        let text = msg.text;
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
        Ok(ImessageEvent::Message {
            guid,
            inbound: Box::new(inbound),
        })
    }
}

/// A message's row id (imsg's `id`), the cursor a new subscription resumes
/// after; `None` when it has none.
pub fn row_id(data: &serde_json::Value) -> Option<i64> {
    data.get("id")?.as_i64().filter(|id| *id > 0)
}

#[derive(Deserialize)]
struct Message {
    chat_id: i64,
    #[serde(default)]
    guid: String,
    #[serde(default)]
    sender: String,
    is_from_me: bool,
    #[serde(default)]
    is_group: bool,
    #[serde(default)]
    is_reaction: bool,
    #[serde(default)]
    text: String,
    created_at: Option<String>,
    #[serde(default)]
    participants: Vec<String>,
    #[serde(default)]
    attachments: Vec<AttachmentInfo>,
}

#[derive(Deserialize)]
struct AttachmentInfo {
    transfer_name: Option<String>,
    mime_type: Option<String>,
    #[serde(alias = "byte_size")]
    total_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn message(sender: &str, chat_id: i64, text: &str) -> serde_json::Value {
        json!({
            "id": 77, "chat_id": chat_id, "guid": "6B1D4A5C-1E2F-4A3B-9C8D-0123456789AB",
            "sender": sender, "is_from_me": false, "is_group": false, "text": text,
            "created_at": "2027-01-15T08:00:00.000Z", "participants": [sender],
            "chat_identifier": sender, "chat_guid": format!("iMessage;-;{sender}"),
        })
    }

    #[test]
    fn lines_of_the_rpc() {
        let l = parse_line(r#"{"jsonrpc":"2.0","id":1,"result":{"subscription":3}}"#).unwrap();
        assert_eq!(
            l,
            RpcLine::Result {
                id: 1,
                result: json!({"subscription": 3})
            }
        );
        let l = parse_line(r#"{"jsonrpc":"2.0","id":"7","error":{"code":-32000,"message":"Full Disk Access\u0007 missing"}}"#).unwrap();
        assert_eq!(
            l,
            RpcLine::Error {
                id: Some(7),
                message: "Full Disk Access missing".into()
            }
        );
        let m = parse_line(r#"{"jsonrpc":"2.0","method":"message","params":{"subscription":3,"message":{"id":5}}}"#).unwrap();
        assert_eq!(m, RpcLine::Message(json!({"id": 5})));
        assert_eq!(
            parse_line(r#"{"jsonrpc":"2.0","method":"typing","params":{}}"#).unwrap(),
            RpcLine::Other
        );
        for bad in [
            "",
            "not json",
            "[1,2]",
            r#"{"jsonrpc":"1.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":2,"id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":-1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":{"a":1},"result":{}}"#,
            r#"{"jsonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","method":"message","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":7}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        let long = format!(
            r#"{{"jsonrpc":"2.0","method":"x","pad":"{}"}}"#,
            "a".repeat(MAX_LINE_BYTES)
        );
        assert!(parse_line(&long).unwrap_err().contains("at most"));
    }

    #[test]
    fn handles_are_normalised_and_chat_ids_checked() {
        assert_eq!(
            normalise_handle("+1 (555) 123-4567").as_deref(),
            Some("+15551234567")
        );
        assert_eq!(
            normalise_handle("tel:+15551234567").as_deref(),
            Some("+15551234567")
        );
        assert_eq!(
            normalise_handle("Ada@Example.COM").as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "Ada Lovelace",
            "+1555abc",
            "@",
            "a@b",
            "+1234567890123456789",
        ] {
            assert_eq!(normalise_handle(bad), None, "{bad}");
        }
        assert!(is_chat_id("42") && is_imessage_id("42") && is_imessage_id("+15551234567"));
        for bad in ["0", "042", "-1", "1234567890123456789", "x"] {
            assert!(!is_chat_id(bad), "{bad}");
        }
    }

    #[test]
    fn messages_become_inbound_the_owners_own_never() {
        let p = Imessage::new(&[], "Cowork").unwrap().named("mac");
        let ImessageEvent::Message { guid, inbound } =
            p.message(message("+15551234567", 12, "hi"), NOW).unwrap()
        else {
            panic!("not a message")
        };
        assert_eq!(guid, "6B1D4A5C-1E2F-4A3B-9C8D-0123456789AB");
        assert_eq!(
            (
                inbound.channel(),
                inbound.sender(),
                inbound.chat(),
                inbound.context()
            ),
            ("mac", "+15551234567", "12", Context::Dm)
        );
        let mut own = message("+15551234567", 12, "hi");
        own["is_from_me"] = json!(true);
        assert!(matches!(
            p.message(own, NOW),
            Ok(ImessageEvent::Ignored { .. })
        ));
        let mut group = message("Ada@Example.com", 13, "cowork, help");
        group["is_group"] = json!(true);
        let Ok(ImessageEvent::Message { inbound, .. }) = p.message(group, NOW) else {
            panic!("group")
        };
        assert_eq!(inbound.context(), Context::Group);
        assert_eq!(inbound.sender(), "ada@example.com");
        assert!(inbound.mentions_bot());
        let mut old = message("+15551234567", 12, "hi");
        old["created_at"] = json!("2020-01-01T00:00:00Z");
        assert!(matches!(
            p.message(old, NOW),
            Ok(ImessageEvent::Ignored { .. })
        ));
    }

    #[test]
    fn contacts_refuse_the_others_and_hostile_messages_are_errors() {
        let p = Imessage::new(&["+1 555 123 4567".into()], "").unwrap();
        assert!(matches!(
            p.message(message("+15551234567", 12, "hi"), NOW),
            Ok(ImessageEvent::Message { .. })
        ));
        let Ok(ImessageEvent::Refused(r)) = p.message(message("+15550000000", 12, "hi"), NOW)
        else {
            panic!("not refused")
        };
        assert_eq!(
            (r.reason, r.sender.as_deref()),
            ("not_a_contact", Some("+15550000000"))
        );
        assert!(Imessage::new(&["Ada".into()], "").is_err());
        let cases = [
            json!({"chat_id": 1}),
            json!("a string"),
            json!({"chat_id": "12", "guid": "g", "sender": "+15551234567", "is_from_me": false}),
            json!({"chat_id": 12, "guid": "g", "sender": "+15551234567", "is_from_me": "no"}),
            json!({"chat_id": 0, "guid": "g", "sender": "+15551234567", "is_from_me": false}),
            json!({"chat_id": 12, "guid": "", "sender": "+15551234567", "is_from_me": false}),
            json!({"chat_id": 12, "guid": "g".repeat(200), "sender": "+15551234567", "is_from_me": false}),
            json!({"chat_id": 12, "guid": "g", "sender": "Ada Lovelace", "is_from_me": false}),
            json!({"chat_id": 12, "guid": "g", "sender": "+15551234567", "is_from_me": false, "created_at": "yesterday"}),
            json!({"chat_id": 12, "guid": "g", "sender": "+15551234567", "is_from_me": false, "text": 5}),
        ];
        let p = Imessage::new(&[], "").unwrap();
        for case in cases {
            assert!(p.message(case.clone(), NOW).is_err(), "{case}");
        }
    }
}
