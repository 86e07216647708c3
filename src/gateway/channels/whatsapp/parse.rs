//! WhatsApp Business (Cloud API): the webhook's `GET` subscription handshake
//! (`hub.mode`, `hub.verify_token`, `hub.challenge`), `X-Hub-Signature-256:
//! sha256=<hex HMAC-SHA256 of the raw body with the app secret>` compared in
//! constant time, and `whatsapp_business_account` bodies → [`Inbound`].
//!
//! Sender: the business-scoped user id (`contacts[].user_id`, `CC.` and up to
//! 128 alphanumerics) when Meta sends one, else the phone number (`wa_id`,
//! digits); the chat (where answers go) is the phone number when known, else
//! that user id. Every chat is a DM. Meta signs no timestamp: a message id
//! (`wamid`) is the replay key, and a message older than the replay guard's
//! window ([`MAX_MESSAGE_AGE_SECS`]) is ignored.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::gateway::channels::{Headers, check_body_size, check_hmac_sha256, parse_json};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Attachment, Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "whatsapp";
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// Most messages one body may carry.
pub const MAX_MESSAGES: usize = 100;
/// Messages older than this are ignored (the replay guard's window, 24 h).
pub const MAX_MESSAGE_AGE_SECS: i64 = 24 * 3600;

/// One message of a verified body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhatsAppEvent {
    Message {
        /// The `wamid`, the replay key.
        event_id: String,
        inbound: Box<Inbound>,
    },
    /// Authentic but not a prompt (statuses, reactions, another number...).
    Ignored { reason: &'static str },
}

/// The WhatsApp channel's verifier and parser.
pub struct WhatsApp {
    channel: String,
    app_secret: Zeroizing<Vec<u8>>,
    /// SHA-256 of the verify token (compared as digests, in constant time).
    verify_token_digest: [u8; 32],
    /// Only messages to this business number are ours.
    phone_number_id: String,
}

impl std::fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WhatsApp({}, number {})",
            self.channel, self.phone_number_id
        )
    }
}

/// Whether `id` is shaped like a WhatsApp user id: a phone number (`wa_id`,
/// 6 to 15 digits) or a business-scoped user id (`US.1349...`, parent ids
/// `US.ENT.1181...`).
pub fn is_whatsapp_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(id) {
        return (6..=15).contains(&id.len());
    }
    let mut parts = id.split('.');
    let country = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let tail = match rest[..] {
        [t] => t,
        ["ENT", t] => t,
        _ => return false,
    };
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=128).contains(&tail.len())
        && tail.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl WhatsApp {
    /// `app_secret`: the Meta app's secret; `verify_token`: the token typed
    /// into the app's webhook settings; `phone_number_id`: the business number.
    pub fn new(
        app_secret: &[u8],
        verify_token: &str,
        phone_number_id: &str,
    ) -> Result<WhatsApp, GatewayError> {
        if !(16..=256).contains(&app_secret.len()) {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "app secret must be 16 to 256 bytes",
            });
        }
        if !(16..=256).contains(&verify_token.len()) {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "verify token must be 16 to 256 characters",
            });
        }
        if phone_number_id.is_empty()
            || phone_number_id.len() > 32
            || !phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "phone_number_id must be 1 to 32 digits",
            });
        }
        Ok(WhatsApp {
            channel: CHANNEL.to_string(),
            app_secret: Zeroizing::new(app_secret.to_vec()),
            verify_token_digest: Sha256::digest(verify_token.as_bytes()).into(),
            phone_number_id: phone_number_id.to_string(),
        })
    }

    /// Serves the channel configured as `channel` (messages carry that name).
    pub fn named(mut self, channel: &str) -> WhatsApp {
        self.channel = channel.to_string();
        self
    }

    /// The `GET` handshake: the challenge to echo when `mode` is `subscribe`
    /// and `token` is the verify token; a challenge that is not a short run
    /// of letters, digits, `-` or `_` is refused too (it is echoed).
    pub fn handshake(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, AuthFailure> {
        let token = token.ok_or(AuthFailure::MissingHeader("hub.verify_token"))?;
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !bool::from(given.ct_eq(&self.verify_token_digest)) {
            return Err(AuthFailure::BadSignature);
        }
        if mode != Some("subscribe") {
            return Err(AuthFailure::MalformedHeader("hub.mode"));
        }
        match challenge {
            Some(c)
                if (1..=128).contains(&c.len())
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(c.to_string())
            }
            _ => Err(AuthFailure::MalformedHeader("hub.challenge")),
        }
    }

    /// Checks `X-Hub-Signature-256` against `body`.
    pub fn verify(&self, headers: &Headers, body: &[u8]) -> Result<(), GatewayError> {
        self.verify_inner(headers, body)
            .map_err(|r| GatewayError::verify(CHANNEL, r))
    }

    fn verify_inner(&self, headers: &Headers, body: &[u8]) -> Result<(), AuthFailure> {
        check_body_size(body)?;
        let given = headers
            .require(SIGNATURE_HEADER)?
            .strip_prefix("sha256=")
            .ok_or(AuthFailure::MalformedHeader(SIGNATURE_HEADER))?;
        let mut mac_given = [0u8; 32];
        hex::decode_to_slice(given, &mut mac_given)
            .map_err(|_| AuthFailure::MalformedHeader(SIGNATURE_HEADER))?;
        check_hmac_sha256(&self.app_secret, &[body], &mac_given)
    }

    /// Verifies, then parses (the one to use in production).
    pub fn receive(
        &self,
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<Result<WhatsAppEvent, GatewayError>>, GatewayError> {
        self.verify(headers, body)?;
        self.parse(body, now)
    }

    /// Parses a webhook body (call only after [`WhatsApp::verify`]); each
    /// message is judged on its own.
    pub fn parse(
        &self,
        body: &[u8],
        now: i64,
    ) -> Result<Vec<Result<WhatsAppEvent, GatewayError>>, GatewayError> {
        let body: Body = parse_json(CHANNEL, body)?;
        let ignored = |reason| vec![Ok(WhatsAppEvent::Ignored { reason })];
        if body.object != "whatsapp_business_account" {
            return Ok(ignored("object"));
        }
        let mut out = Vec::new();
        for change in body.entry.into_iter().flat_map(|e| e.changes) {
            if change.field != "messages" {
                out.push(Ok(WhatsAppEvent::Ignored { reason: "field" }));
                continue;
            }
            // Parsed only for `messages`: other fields carry other shapes.
            let value: Value = match serde_json::from_value(change.value) {
                Ok(v) => v,
                Err(e) => return Err(GatewayError::parse(CHANNEL, e.to_string())),
            };
            if value.metadata.phone_number_id != self.phone_number_id {
                out.push(Ok(WhatsAppEvent::Ignored {
                    reason: "another business number",
                }));
                continue;
            }
            for msg in value.messages {
                if out.len() >= MAX_MESSAGES {
                    return Err(GatewayError::parse(
                        CHANNEL,
                        "too many messages in one body",
                    ));
                }
                let msg: Message = match serde_json::from_value(msg) {
                    Ok(m) => m,
                    Err(e) => {
                        out.push(Err(GatewayError::parse(CHANNEL, e.to_string())));
                        continue;
                    }
                };
                out.push(self.message(msg, &value.contacts, now));
            }
        }
        Ok(out)
    }

    fn message(
        &self,
        msg: Message,
        contacts: &[Contact],
        now: i64,
    ) -> Result<WhatsAppEvent, GatewayError> {
        let ignored = |reason| Ok(WhatsAppEvent::Ignored { reason });
        if msg.group_id.is_some() {
            return ignored("group message");
        }
        let sent_at: i64 = msg
            .timestamp
            .parse()
            .map_err(|_| GatewayError::parse(CHANNEL, "timestamp is not a number"))?;
        if sent_at < now - MAX_MESSAGE_AGE_SECS {
            return ignored("older than the replay window");
        }
        if msg.id.is_empty() || msg.id.len() > 256 {
            return Err(GatewayError::parse(
                CHANNEL,
                "message id length out of range",
            ));
        }
        // The sender's contact: the one with its phone number, else the only one.
        let contact = match &msg.from {
            Some(from) => contacts.iter().find(|c| c.wa_id.as_deref() == Some(from)),
            None if contacts.len() == 1 => contacts.first(),
            None => None,
        };
        let user_id = contact.and_then(|c| c.user_id.clone());
        let (sender, chat) = match (user_id, msg.from) {
            (Some(u), Some(phone)) => (u, phone),
            (Some(u), None) => (u.clone(), u),
            (None, Some(phone)) => (phone.clone(), phone),
            (None, None) => return Err(GatewayError::parse(CHANNEL, "message without a sender")),
        };
        if !is_whatsapp_id(&sender) || !is_whatsapp_id(&chat) {
            return Err(GatewayError::parse(CHANNEL, "sender is not a WhatsApp id"));
        }
        let mut attachments = Vec::new();
        let text = match (msg.kind.as_str(), msg.text, msg.document) {
            ("text", Some(t), _) => t.body,
            ("document", _, Some(d)) => {
                attachments.push(Attachment {
                    name: d.filename.unwrap_or_else(|| "document".into()),
                    mime: d.mime_type,
                    size: None,
                });
                d.caption.unwrap_or_default()
            }
            ("text", None, _) => {
                return Err(GatewayError::parse(CHANNEL, "text message without text"));
            }
            _ => return ignored("message type"),
        };
        let name = contact.and_then(|c| c.profile.as_ref()?.name.clone());
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: None,
            sender,
            sender_name: name,
            chat,
            context: Context::Dm,
            mentions_bot: false,
            text,
            attachments,
        })?;
        Ok(WhatsAppEvent::Message {
            event_id: msg.id,
            inbound: Box::new(inbound),
        })
    }
}

#[derive(Deserialize)]
struct Body {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    #[serde(default)]
    value: serde_json::Value,
}

#[derive(Deserialize)]
struct Value {
    metadata: Metadata,
    #[serde(default)]
    contacts: Vec<Contact>,
    /// Kept as values: each message is parsed on its own.
    #[serde(default)]
    messages: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct Contact {
    wa_id: Option<String>,
    user_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: String,
    from: Option<String>,
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    text: Option<Text>,
    document: Option<Document>,
    group_id: Option<String>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Document {
    filename: Option<String>,
    mime_type: Option<String>,
    caption: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const VERIFY: &str = "verify-token-0123456789";
    const NUMBER: &str = "106540352242922";
    const NOW: i64 = 1_800_000_000;

    fn wa() -> WhatsApp {
        WhatsApp::new(SECRET, VERIFY, NUMBER).unwrap()
    }

    fn sign(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn body(contacts: serde_json::Value, messages: Vec<serde_json::Value>) -> Vec<u8> {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
            "field": "messages",
            "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
                "contacts": contacts, "messages": messages}}]}]})
        .to_string()
        .into_bytes()
    }

    fn text(id: &str, from: Option<&str>, t: &str) -> serde_json::Value {
        let mut m =
            json!({"id": id, "timestamp": NOW.to_string(), "type": "text", "text": {"body": t}});
        if let Some(f) = from {
            m["from"] = json!(f);
        }
        m
    }

    fn kinds(got: &[Result<WhatsAppEvent, GatewayError>]) -> Vec<String> {
        got.iter()
            .map(|r| match r {
                Ok(WhatsAppEvent::Message { inbound, .. }) => {
                    format!("{} -> {}", inbound.sender(), inbound.chat())
                }
                Ok(WhatsAppEvent::Ignored { reason }) => reason.to_string(),
                Err(e) => e.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_handshake_echoes_only_for_the_verify_token() {
        let w = wa();
        assert_eq!(
            w.handshake(Some("subscribe"), Some(VERIFY), Some("1158201444")),
            Ok("1158201444".into())
        );
        assert_eq!(
            w.handshake(Some("subscribe"), Some("wrong"), Some("1")),
            Err(AuthFailure::BadSignature)
        );
        assert!(w.handshake(Some("subscribe"), None, Some("1")).is_err());
        assert!(
            w.handshake(Some("unsubscribe"), Some(VERIFY), Some("1"))
                .is_err()
        );
        for bad in ["", "<script>", &"9".repeat(129)] {
            assert!(
                w.handshake(Some("subscribe"), Some(VERIFY), Some(bad))
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn signatures_are_checked_before_anything_else() {
        let b = body(json!([]), vec![]);
        let h = |v: &str| -> Headers { [(SIGNATURE_HEADER, v)].into_iter().collect() };
        assert!(wa().verify(&h(&sign(&b)), &b).is_ok());
        let mut tampered = b.clone();
        tampered.push(b' ');
        assert!(wa().verify(&h(&sign(&b)), &tampered).is_err());
        for bad in ["", "sha1=00", "sha256=zz", &sign(&b)[7..], "sha256=00"] {
            assert!(wa().verify(&h(bad), &b).is_err(), "{bad}");
        }
        assert!(wa().verify(&Headers::new(), &b).is_err());
        assert!(WhatsApp::new(b"short", VERIFY, NUMBER).is_err());
        assert!(WhatsApp::new(SECRET, "short", NUMBER).is_err());
        assert!(WhatsApp::new(SECRET, VERIFY, "12a").is_err());
    }

    #[test]
    fn senders_chats_and_what_is_ignored() {
        let contacts = json!([
            {"profile": {"name": "Ann"}, "wa_id": "16505551234", "user_id": "US.13491208655302741918"},
            {"profile": {"name": "Bo"}, "wa_id": "447700900123"}
        ]);
        let mut old = text("wamid.4", Some("447700900123"), "x");
        old["timestamp"] = json!((NOW - MAX_MESSAGE_AGE_SECS - 1).to_string());
        let mut group = text("wamid.5", Some("447700900123"), "x");
        group["group_id"] = json!("G1");
        let sticker = json!({"id": "wamid.6", "from": "447700900123", "timestamp": NOW.to_string(), "type": "sticker"});
        let got = wa()
            .parse(
                &body(
                    contacts,
                    vec![
                        text("wamid.1", Some("16505551234"), "hi"),
                        text("wamid.2", Some("447700900123"), "hello"),
                        old,
                        group,
                        sticker,
                    ],
                ),
                NOW,
            )
            .unwrap();
        assert_eq!(
            kinds(&got),
            [
                "US.13491208655302741918 -> 16505551234",
                "447700900123 -> 447700900123",
                "older than the replay window",
                "group message",
                "message type",
            ]
        );
        // A username user: no phone number, the business-scoped id is both.
        let got = wa()
            .parse(
                &body(
                    json!([{"user_id": "BR.1502576394655843"}]),
                    vec![text("wamid.7", None, "oi")],
                ),
                NOW,
            )
            .unwrap();
        assert_eq!(kinds(&got), ["BR.1502576394655843 -> BR.1502576394655843"]);
        // Another business number's messages and status updates are not ours.
        let other = String::from_utf8(body(
            json!([]),
            vec![text("wamid.8", Some("16505551234"), "x")],
        ))
        .unwrap()
        .replace(NUMBER, "999");
        assert_eq!(
            kinds(&wa().parse(other.as_bytes(), NOW).unwrap()),
            ["another business number"]
        );
        let template = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [
            {"field": "message_template_status_update", "value": {"event": "APPROVED", "message_template_id": 1}}]}]})
        .to_string();
        assert_eq!(
            kinds(&wa().parse(template.as_bytes(), NOW).unwrap()),
            ["field"]
        );
        let statuses = json!({"object": "page", "entry": []}).to_string();
        assert_eq!(
            kinds(&wa().parse(statuses.as_bytes(), NOW).unwrap()),
            ["object"]
        );
    }

    #[test]
    fn hostile_bodies_and_messages_are_refused_with_a_reason() {
        for bad in [&b"{"[..], b"[]", b"{\"object\": 5}", b"{\"object\": \"whatsapp_business_account\", \"entry\": [{\"changes\": [{\"field\": \"messages\", \"value\": {}}]}]}"] {
            assert!(wa().parse(bad, NOW).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let many: Vec<_> = (0..=MAX_MESSAGES)
            .map(|i| text(&format!("w{i}"), Some("16505551234"), "x"))
            .collect();
        assert!(wa().parse(&body(json!([]), many), NOW).is_err());
        let mut bad_ts = text("wamid.1", Some("16505551234"), "x");
        bad_ts["timestamp"] = json!("soon");
        let no_text = json!({"id": "wamid.2", "from": "16505551234", "timestamp": NOW.to_string(), "type": "text"});
        let not_an_id = text("wamid.3", Some("alice@example.com"), "x");
        let nobody = text("wamid.4", None, "x");
        let got = wa()
            .parse(
                &body(
                    json!([]),
                    vec![
                        bad_ts,
                        no_text,
                        not_an_id,
                        nobody,
                        json!(7),
                        text("wamid.5", Some("16505551234"), "fine"),
                    ],
                ),
                NOW,
            )
            .unwrap();
        assert_eq!(got.len(), 6);
        assert!(got[..5].iter().all(Result::is_err), "{got:?}");
        assert!(matches!(got[5], Ok(WhatsAppEvent::Message { .. })));
    }

    #[test]
    fn whatsapp_ids_are_shaped() {
        for ok in [
            "16505551234",
            "US.13491208655302741918",
            "US.ENT.11815799212886844830",
        ] {
            assert!(is_whatsapp_id(ok), "{ok}");
        }
        for bad in [
            "",
            "123",
            "+16505551234",
            "Ann",
            "alice@example.com",
            "us.1",
            "US.",
            "US.a.b",
            "USA.1",
        ] {
            assert!(!is_whatsapp_id(bad), "{bad}");
        }
    }
}
