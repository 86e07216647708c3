//! LINE: webhook signing (`x-line-signature`: base64 of HMAC-SHA256 of the raw
//! body with the channel secret, compared in constant time) and webhook
//! bodies (`destination` and up to [`MAX_EVENTS`] event objects) →
//! [`Inbound`] messages.
//!
//! LINE signs no timestamp: a captured body is refused as a replay by its
//! events' `webhookEventId` inside the replay guard's window, and an event
//! older than that window ([`MAX_EVENT_AGE_SECS`]) is ignored, so a body is
//! never acted on twice.

use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::gateway::channels::{Headers, check_body_size, check_hmac_sha256, parse_json};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Attachment, Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "line";
pub const SIGNATURE_HEADER: &str = "x-line-signature";
/// Most events one body may carry (LINE batches a handful).
pub const MAX_EVENTS: usize = 100;
/// Events older than this are ignored: the replay guard remembers event ids
/// for as long (`gateway::service`, 24 h).
pub const MAX_EVENT_AGE_SECS: i64 = 24 * 3600;

/// One event of a verified body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    Message {
        /// `webhookEventId`, the replay key.
        event_id: String,
        /// Answers this message for free within about a minute, once.
        reply_token: Option<String>,
        inbound: Box<Inbound>,
    },
    /// Authentic but not a prompt (follows, joins, stickers, standby mode...).
    Ignored { reason: &'static str },
}

/// The LINE channel's verifier and parser.
pub struct Line {
    /// The configured channel this parser serves (its name in `[channels]`).
    channel: String,
    secret: Zeroizing<Vec<u8>>,
    /// The bot's own user id (`U` + 32 hex), for mentions without `isSelf`.
    bot_user_id: String,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Line({}, bot {:?})", self.channel, self.bot_user_id)
    }
}

/// Whether `id` is shaped like a LINE user, group or room id (`U`, `C` or
/// `R` and 32 lowercase hex digits).
pub fn is_line_id(id: &str) -> bool {
    id.len() == 33
        && matches!(id.as_bytes()[0], b'U' | b'C' | b'R')
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Line {
    /// `channel_secret`: the channel's secret from the LINE Developers
    /// Console; `bot_user_id` may be empty.
    pub fn new(channel_secret: &[u8], bot_user_id: &str) -> Result<Line, GatewayError> {
        if !(16..=256).contains(&channel_secret.len()) {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "channel secret must be 16 to 256 bytes",
            });
        }
        Ok(Line {
            channel: CHANNEL.to_string(),
            secret: Zeroizing::new(channel_secret.to_vec()),
            bot_user_id: bot_user_id.to_string(),
        })
    }

    /// Serves the channel configured as `channel` (messages carry that name).
    pub fn named(mut self, channel: &str) -> Line {
        self.channel = channel.to_string();
        self
    }

    /// Checks `x-line-signature` against `body`.
    pub fn verify(&self, headers: &Headers, body: &[u8]) -> Result<(), GatewayError> {
        self.verify_inner(headers, body)
            .map_err(|r| GatewayError::verify(CHANNEL, r))
    }

    fn verify_inner(&self, headers: &Headers, body: &[u8]) -> Result<(), AuthFailure> {
        check_body_size(body)?;
        let given = headers.require(SIGNATURE_HEADER)?;
        // 32 bytes are 44 base64 characters; anything longer is not a MAC.
        if given.len() > 64 {
            return Err(AuthFailure::MalformedHeader(SIGNATURE_HEADER));
        }
        let given = base64::engine::general_purpose::STANDARD
            .decode(given)
            .map_err(|_| AuthFailure::MalformedHeader(SIGNATURE_HEADER))?;
        check_hmac_sha256(&self.secret, &[body], &given)
    }

    /// Verifies, then parses (the one to use in production).
    pub fn receive(
        &self,
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<Result<LineEvent, GatewayError>>, GatewayError> {
        self.verify(headers, body)?;
        self.parse(body, now)
    }

    /// Parses a webhook body (call only after [`Line::verify`]): the body's
    /// shape is checked whole; each event is judged on its own, so one
    /// malformed event is reported without dropping the others.
    pub fn parse(
        &self,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<Result<LineEvent, GatewayError>>, GatewayError> {
        let body: Body = parse_json(CHANNEL, body)?;
        if body.events.len() > MAX_EVENTS {
            return Err(GatewayError::parse(CHANNEL, "too many events in one body"));
        }
        Ok(body
            .events
            .into_iter()
            .map(|ev| {
                let ev: Event = serde_json::from_value(ev)
                    .map_err(|e| GatewayError::parse(CHANNEL, e.to_string()))?;
                self.event(ev, now)
            })
            .collect())
    }

    fn event(&self, ev: Event, now: i64) -> Result<LineEvent, GatewayError> {
        let ignored = |reason| Ok(LineEvent::Ignored { reason });
        if ev.kind != "message" {
            return ignored("event type");
        }
        // Another channel of the account answers in standby mode.
        if ev.mode.as_deref() == Some("standby") {
            return ignored("standby mode");
        }
        if ev.timestamp / 1000 < now - MAX_EVENT_AGE_SECS {
            return ignored("older than the replay window");
        }
        let event_id = ev
            .webhook_event_id
            .filter(|id| !id.is_empty() && id.len() <= 64)
            .ok_or_else(|| GatewayError::parse(CHANNEL, "message without a webhookEventId"))?;
        let source = ev
            .source
            .ok_or_else(|| GatewayError::parse(CHANNEL, "message without a source"))?;
        let (context, chat) = match source.kind.as_str() {
            "user" => (Context::Dm, source.user_id.clone()),
            "group" => (Context::Group, source.group_id),
            "room" => (Context::Group, source.room_id),
            _ => return Err(GatewayError::parse(CHANNEL, "unknown source type")),
        };
        let chat = chat.ok_or_else(|| GatewayError::parse(CHANNEL, "source without its id"))?;
        // Access control needs the sender's stable id; LINE leaves it out
        // for a group member who has not consented to share it.
        let Some(sender) = source.user_id else {
            return ignored("sender without a user id");
        };
        let Some(msg) = ev.message else {
            return Err(GatewayError::parse(
                CHANNEL,
                "message event without a message",
            ));
        };
        let mut attachments = Vec::new();
        let text = match msg.kind.as_str() {
            "text" => msg.text.unwrap_or_default(),
            "image" | "video" | "audio" | "file" => {
                attachments.push(Attachment {
                    name: msg.file_name.unwrap_or_else(|| format!("{}.bin", msg.kind)),
                    mime: None,
                    size: msg.file_size,
                });
                String::new()
            }
            _ => return ignored("message type"),
        };
        let mentions_bot = msg.mention.is_some_and(|m| {
            m.mentionees.iter().any(|p| {
                p.is_self == Some(true)
                    || (!self.bot_user_id.is_empty()
                        && p.user_id.as_deref() == Some(self.bot_user_id.as_str()))
            })
        });
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
        Ok(LineEvent::Message {
            event_id,
            reply_token: ev.reply_token.filter(|t| !t.is_empty() && t.len() <= 256),
            inbound: Box::new(inbound),
        })
    }
}

#[derive(Deserialize)]
struct Body {
    /// Kept as values: each event is parsed on its own.
    events: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    mode: Option<String>,
    /// Milliseconds since the epoch.
    timestamp: i64,
    webhook_event_id: Option<String>,
    reply_token: Option<String>,
    source: Option<Source>,
    message: Option<Message>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    #[serde(rename = "type")]
    kind: String,
    user_id: Option<String>,
    group_id: Option<String>,
    room_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    file_name: Option<String>,
    file_size: Option<u64>,
    mention: Option<Mention>,
}

#[derive(Deserialize)]
struct Mention {
    mentionees: Vec<Mentionee>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mentionee {
    user_id: Option<String>,
    is_self: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;
    const USER: &str = "U0123456789abcdef0123456789abcdef";
    const GROUP: &str = "C0123456789abcdef0123456789abcdef";
    const BOT: &str = "Ufedcba9876543210fedcba9876543210";

    fn line() -> Line {
        Line::new(SECRET, BOT).unwrap()
    }

    fn sign(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    fn headers(sig: &str) -> Headers {
        [(SIGNATURE_HEADER, sig)].into_iter().collect()
    }

    fn text_event(source: serde_json::Value, text: &str) -> serde_json::Value {
        json!({
            "type": "message", "mode": "active", "timestamp": NOW * 1000,
            "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR",
            "deliveryContext": {"isRedelivery": false},
            "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
            "source": source,
            "message": {"id": "444573844083572737", "type": "text", "text": text},
        })
    }

    fn body(events: Vec<serde_json::Value>) -> Vec<u8> {
        json!({"destination": BOT, "events": events})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_signed_dm_becomes_one_message() {
        let b = body(vec![text_event(
            json!({"type": "user", "userId": USER}),
            "hi",
        )]);
        let got = line().receive(&headers(&sign(&b)), &b, NOW).unwrap();
        let [
            Ok(LineEvent::Message {
                event_id,
                reply_token,
                inbound,
            }),
        ] = &got[..]
        else {
            panic!("{got:?}");
        };
        assert_eq!(event_id, "01FZ74A0TDDPYRVKNK77XKC3ZR");
        assert!(reply_token.is_some());
        assert_eq!((inbound.sender(), inbound.chat()), (USER, USER));
        assert_eq!(inbound.context(), Context::Dm);
        assert_eq!(inbound.channel(), "line");
    }

    #[test]
    fn signatures_are_checked_before_anything_else() {
        let b = body(vec![]);
        let good = sign(&b);
        assert!(line().verify(&headers(&good), &b).is_ok());
        let mut tampered = b.clone();
        tampered.push(b' ');
        for (h, body, want) in [
            (headers(&good), &tampered[..], AuthFailure::BadSignature),
            (
                Headers::new(),
                &b[..],
                AuthFailure::MissingHeader(SIGNATURE_HEADER),
            ),
            (
                headers("not base64!"),
                &b[..],
                AuthFailure::MalformedHeader(SIGNATURE_HEADER),
            ),
            (
                headers(&"A".repeat(200)),
                &b[..],
                AuthFailure::MalformedHeader(SIGNATURE_HEADER),
            ),
            // Valid base64 of a MAC that is too short.
            (headers("AAAA"), &b[..], AuthFailure::BadSignature),
        ] {
            match line().verify(&h, body) {
                Err(GatewayError::VerifyRequest { reason, .. }) => assert_eq!(reason, want),
                other => panic!("{other:?}"),
            }
        }
        let twice: Headers = [
            (SIGNATURE_HEADER, good.as_str()),
            ("X-Line-Signature", good.as_str()),
        ]
        .into_iter()
        .collect();
        assert!(line().verify(&twice, &b).is_err());
        assert!(Line::new(b"short", "").is_err());
    }

    #[test]
    fn groups_rooms_mentions_and_what_is_ignored() {
        let group = json!({"type": "group", "groupId": GROUP, "userId": USER});
        let mut ev = text_event(group.clone(), "@bot hi");
        ev["message"]["mention"] = json!({"mentionees": [
            {"index": 0, "length": 4, "type": "user", "userId": BOT}]});
        let got = line().parse(&body(vec![ev]), NOW).unwrap();
        let Ok(LineEvent::Message { inbound, .. }) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((inbound.context(), inbound.chat()), (Context::Group, GROUP));
        assert!(inbound.mentions_bot());
        let mut ev = text_event(group.clone(), "@bot hi");
        ev["message"]["mention"] = json!({"mentionees": [
            {"index": 0, "length": 4, "type": "user", "isSelf": true}]});
        let plain = text_event(
            json!({"type": "room", "roomId": "R0123456789abcdef0123456789abcdef", "userId": USER}),
            "hi",
        );
        let no_user = text_event(json!({"type": "group", "groupId": GROUP}), "hi");
        let mut standby = plain.clone();
        standby["mode"] = json!("standby");
        let mut old = plain.clone();
        old["timestamp"] = json!((NOW - MAX_EVENT_AGE_SECS - 1) * 1000);
        let mut sticker = plain.clone();
        sticker["message"] =
            json!({"id": "1", "type": "sticker", "packageId": "1", "stickerId": "1"});
        let follow = json!({"type": "follow", "timestamp": NOW * 1000, "source": {"type": "user", "userId": USER}});
        let got = line()
            .parse(
                &body(vec![ev, plain, no_user, standby, old, sticker, follow]),
                NOW,
            )
            .unwrap();
        let reasons: Vec<String> = got
            .iter()
            .map(|r| match r {
                Ok(LineEvent::Message { inbound, .. }) => {
                    format!("message mention={}", inbound.mentions_bot())
                }
                Ok(LineEvent::Ignored { reason }) => reason.to_string(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "message mention=true",
                "message mention=false",
                "sender without a user id",
                "standby mode",
                "older than the replay window",
                "message type",
                "event type",
            ]
        );
    }

    #[test]
    fn hostile_bodies_and_events_are_refused_with_a_reason() {
        let l = line();
        for bad in [&b"{"[..], b"[]", b"{\"events\": {}}", b"{\"events\": [1]}x"] {
            assert!(
                l.parse(bad, NOW).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = body(vec![
            json!({"type": "follow", "timestamp": 0});
            MAX_EVENTS + 1
        ]);
        assert!(l.parse(&many, NOW).is_err());
        let user = json!({"type": "user", "userId": USER});
        let mut no_id = text_event(user.clone(), "x");
        no_id.as_object_mut().unwrap().remove("webhookEventId");
        let mut long_id = text_event(user.clone(), "x");
        long_id["webhookEventId"] = json!("x".repeat(65));
        let mut no_source = text_event(user.clone(), "x");
        no_source.as_object_mut().unwrap().remove("source");
        let odd_source = text_event(json!({"type": "space", "userId": USER}), "x");
        let nul_sender = text_event(json!({"type": "user", "userId": "U\u{0}"}), "x");
        let mut not_object = text_event(user.clone(), "x");
        not_object["message"] = json!("text");
        let got = l
            .parse(
                &body(vec![
                    no_id,
                    long_id,
                    no_source,
                    odd_source,
                    nul_sender,
                    not_object,
                    json!(7),
                ]),
                NOW,
            )
            .unwrap();
        assert_eq!(got.len(), 7);
        assert!(got.iter().all(Result::is_err), "{got:?}");
        // One bad event does not cost the good one beside it.
        let got = l
            .parse(&body(vec![json!(7), text_event(user, "fine")]), NOW)
            .unwrap();
        assert!(got[0].is_err() && matches!(got[1], Ok(LineEvent::Message { .. })));
    }

    #[test]
    fn line_ids_are_shaped() {
        assert!(is_line_id(USER) && is_line_id(GROUP));
        for bad in [
            "",
            "U123",
            "u0123456789abcdef0123456789abcdef",
            "U0123456789ABCDEF0123456789ABCDEF",
            "alice@example.com",
            "X0123456789abcdef0123456789abcdef",
        ] {
            assert!(!is_line_id(bad), "{bad}");
        }
    }
}
