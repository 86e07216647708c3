//! What a signal-cli JSON-RPC line says. signal-cli's daemon writes one
//! JSON-RPC 2.0 object a line: notifications (`method: "receive"`, the
//! message in `params.envelope`) and the answers to the appliance's calls
//! (`result` or `error` under the call's `id`). A received message becomes
//! an [`Inbound`] only with the sender's ACI (`sourceUuid`, a UUID that
//! stays with the account; never the phone number, which can change hands)
//! and a text: a DM's chat is the sender's ACI, a group's is its `groupId`
//! (base64). Types are checked by serde: a field of the wrong type makes the
//! line malformed, never a default.

use serde::Deserialize;
use serde_json::Value;

use crate::gateway::error::GatewayError;
use crate::gateway::inbound::{Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "signal";
/// Most bytes of a group id (signal-cli's are 44: base64 of 32 bytes).
pub const MAX_GROUP_ID: usize = 128;
/// Most characters of a sender's profile name kept.
const MAX_NAME_CHARS: usize = 64;

/// A phone number in E.164: `+` and 8 to 15 digits, the first not 0.
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// A Signal ACI as the appliance keeps it: a UUID in lowercase hex
/// (`8-4-4-4-12`).
pub fn is_aci(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// A group id: standard base64 (at most [`MAX_GROUP_ID`] bytes of it) of
/// 16 to 64 bytes (signal-cli's are 32; old groups had 16). A phone number
/// is never one.
pub fn is_group_id(id: &str) -> bool {
    use base64::Engine as _;
    id.len() <= MAX_GROUP_ID
        && base64::engine::general_purpose::STANDARD
            .decode(id)
            .is_ok_and(|b| (16..=64).contains(&b.len()))
}

/// An id the settings may name on a Signal channel: a sender's ACI, or a
/// group's id (in `group_allowlist` and `chats`).
pub fn is_signal_id(id: &str) -> bool {
    is_aci(id) || is_group_id(id)
}

/// A safety number as the owner types it: 60 digits once spaces are gone.
pub fn safety_number(given: &str) -> Option<String> {
    let digits: String = given.chars().filter(|c| *c != ' ').collect();
    (digits.len() == 60 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// One line from signal-cli.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A `receive` notification.
    Receive(Box<Envelope>),
    /// The answer to the call `id`: its result, or signal-cli's error message.
    Answer {
        id: u64,
        outcome: Result<Value, String>,
    },
    /// Another notification (nothing to act on).
    Other,
}

#[derive(Debug, Deserialize)]
struct RawLine {
    jsonrpc: String,
    method: Option<String>,
    params: Option<Value>,
    id: Option<Value>,
    result: Option<Value>,
    error: Option<RawError>,
}

#[derive(Debug, Deserialize)]
struct RawError {
    code: i64,
    message: String,
}

/// A `receive` notification's params: the envelope, or (with
/// `--receive-mode=manual` and `subscribeReceive`) the envelope wrapped in
/// the subscription's `result`.
#[derive(Debug, Deserialize)]
struct ReceiveParams {
    envelope: Option<Envelope>,
    result: Option<Subscribed>,
}

#[derive(Debug, Deserialize)]
struct Subscribed {
    envelope: Envelope,
}

/// A received envelope: the fields the appliance reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub source_uuid: Option<String>,
    pub source_number: Option<String>,
    pub source_name: Option<String>,
    pub timestamp: Option<u64>,
    pub data_message: Option<DataMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataMessage {
    pub message: Option<String>,
    pub group_info: Option<GroupInfo>,
    #[serde(default)]
    pub mentions: Vec<Mention>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    pub group_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Mention {
    pub number: Option<String>,
    pub uuid: Option<String>,
}

fn bad(what: impl Into<String>) -> GatewayError {
    GatewayError::parse(CHANNEL, what.into())
}

/// Parses one line.
pub fn parse_line(text: &str) -> Result<Incoming, GatewayError> {
    let raw: RawLine =
        serde_json::from_str(text).map_err(|e| bad(format!("not a JSON-RPC object: {e}")))?;
    if raw.jsonrpc != "2.0" {
        return Err(bad("not JSON-RPC 2.0"));
    }
    if let Some(method) = raw.method {
        if method != "receive" {
            return Ok(Incoming::Other);
        }
        let params: ReceiveParams = serde_json::from_value(raw.params.unwrap_or(Value::Null))
            .map_err(|e| bad(format!("receive: {e}")))?;
        let envelope = params
            .envelope
            .or(params.result.map(|r| r.envelope))
            .ok_or_else(|| bad("receive without an envelope"))?;
        return Ok(Incoming::Receive(Box::new(envelope)));
    }
    let id = raw
        .id
        .as_ref()
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("an answer without a numeric id"))?;
    let outcome = match (raw.result, raw.error) {
        (_, Some(e)) => Err(format!(
            "{} ({})",
            e.message
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>(),
            e.code
        )),
        (Some(result), None) => Ok(result),
        (None, None) => Ok(Value::Null),
    };
    Ok(Incoming::Answer { id, outcome })
}

/// What a received envelope asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalEvent {
    /// A person's message: its timestamp (the replay key), the sender's
    /// number when signal-cli knows it (to look its identity up), the message.
    Message {
        timestamp: u64,
        number: Option<String>,
        inbound: Box<Inbound>,
    },
    /// Not a prompt (a receipt, typing, our own message, no text).
    Ignored { reason: &'static str },
}

/// A Signal channel's rules.
#[derive(Debug, Clone)]
pub struct Signal {
    /// The configured channel served (stamped on its messages).
    channel: String,
    /// The bot's own number.
    account: String,
}

impl Signal {
    pub fn new(channel: &str, account: &str) -> Result<Signal, GatewayError> {
        if !is_e164(account) {
            return Err(GatewayError::Settings {
                channel: channel.to_string(),
                field: "transport.account",
                reason: format!("{account:?} is not a phone number in E.164 form"),
            });
        }
        Ok(Signal {
            channel: channel.to_string(),
            account: account.to_string(),
        })
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// A received envelope.
    pub fn envelope(&self, env: &Envelope) -> Result<SignalEvent, GatewayError> {
        let Some(data) = &env.data_message else {
            return Ok(SignalEvent::Ignored {
                reason: "not a data message",
            });
        };
        if env.source_number.as_deref() == Some(self.account.as_str()) {
            return Ok(SignalEvent::Ignored {
                reason: "own message",
            });
        }
        let Some(text) = data.message.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Ok(SignalEvent::Ignored {
                reason: "no text (a reaction, an attachment alone)",
            });
        };
        let sender = env
            .source_uuid
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|u| is_aci(u))
            .ok_or_else(|| bad("a message without the sender's ACI (sourceUuid)"))?;
        let timestamp = env
            .timestamp
            .ok_or_else(|| bad("a message without a timestamp"))?;
        let number = env.source_number.clone().filter(|n| is_e164(n));
        let (chat, context) = match &data.group_info {
            Some(g) if is_group_id(&g.group_id) => (g.group_id.clone(), Context::Group),
            Some(_) => return Err(bad("a group id that is not base64 of a sane length")),
            None => (sender.clone(), Context::Dm),
        };
        let mentions_bot = data
            .mentions
            .iter()
            .any(|m| m.number.as_deref() == Some(self.account.as_str()));
        let sender_name = env
            .source_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(|n| {
                n.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_NAME_CHARS)
                    .collect()
            });
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: None,
            sender,
            sender_name,
            chat,
            context,
            mentions_bot,
            text: text.to_string(),
            attachments: Vec::new(),
        })?;
        Ok(SignalEvent::Message {
            timestamp,
            number,
            inbound: Box::new(inbound),
        })
    }
}

/// One identity of `listIdentities`' answer: the fields read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub number: Option<String>,
    pub uuid: Option<String>,
    pub safety_number: String,
    pub trust_level: String,
}

/// The identity of `sender` (an ACI) in a `listIdentities` answer.
pub fn identity_of(answer: Value, sender: &str) -> Result<Option<Identity>, GatewayError> {
    let list: Vec<Identity> = serde_json::from_value(answer)
        .map_err(|e| bad(format!("listIdentities answered oddly: {e}")))?;
    Ok(list.into_iter().find(|i| {
        i.uuid
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(sender))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACI: &str = "7ccae375-cd51-4c82-8b1e-7be3280aa485";
    const GROUP: &str = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=";

    fn rules() -> Signal {
        Signal::new("sig", "+15550001111").unwrap()
    }

    fn receive(envelope: Value) -> Envelope {
        let line = serde_json::json!({"jsonrpc": "2.0", "method": "receive",
            "params": {"envelope": envelope, "account": "+15550001111"}});
        match parse_line(&line.to_string()).unwrap() {
            Incoming::Receive(env) => *env,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dm_and_a_group_message() {
        let env = receive(serde_json::json!({"sourceUuid": ACI.to_uppercase(),
            "sourceNumber": "+15550002222", "sourceName": "Al\u{7}ice", "timestamp": 17,
            "dataMessage": {"message": "hi", "timestamp": 17}}));
        let SignalEvent::Message {
            timestamp,
            number,
            inbound,
        } = rules().envelope(&env).unwrap()
        else {
            panic!()
        };
        assert_eq!((timestamp, number.as_deref()), (17, Some("+15550002222")));
        assert_eq!((inbound.sender(), inbound.chat()), (ACI, ACI));
        assert_eq!(inbound.context(), Context::Dm);
        assert_eq!(inbound.sender_name(), Some("Alice"));
        let env = receive(serde_json::json!({"sourceUuid": ACI, "timestamp": 18,
            "dataMessage": {"message": "hey bot", "groupInfo": {"groupId": GROUP, "type": "DELIVER"},
            "mentions": [{"number": "+15550001111", "uuid": ACI, "start": 0, "length": 1}]}}));
        let SignalEvent::Message { inbound, .. } = rules().envelope(&env).unwrap() else {
            panic!()
        };
        assert_eq!((inbound.chat(), inbound.context()), (GROUP, Context::Group));
        assert!(inbound.mentions_bot());
    }

    #[test]
    fn ignored_and_hostile_envelopes() {
        for env in [
            serde_json::json!({"sourceUuid": ACI, "timestamp": 1, "typingMessage": {}}),
            serde_json::json!({"sourceUuid": ACI, "sourceNumber": "+15550001111", "timestamp": 1,
                "dataMessage": {"message": "echo"}}),
            serde_json::json!({"sourceUuid": ACI, "timestamp": 1, "dataMessage": {"message": " "}}),
        ] {
            assert!(matches!(
                rules().envelope(&receive(env)),
                Ok(SignalEvent::Ignored { .. })
            ));
        }
        let huge = "A".repeat(MAX_GROUP_ID + 1);
        for env in [
            serde_json::json!({"timestamp": 1, "dataMessage": {"message": "x"}}),
            serde_json::json!({"sourceUuid": "+15550002222", "timestamp": 1, "dataMessage": {"message": "x"}}),
            serde_json::json!({"sourceUuid": ACI, "dataMessage": {"message": "x"}}),
            serde_json::json!({"sourceUuid": ACI, "timestamp": 1,
                "dataMessage": {"message": "x", "groupInfo": {"groupId": huge}}}),
            serde_json::json!({"sourceUuid": ACI, "timestamp": 1,
                "dataMessage": {"message": "x", "groupInfo": {"groupId": "a b\n"}}}),
        ] {
            assert!(rules().envelope(&receive(env.clone())).is_err(), "{env}");
        }
    }

    #[test]
    fn hostile_lines() {
        for line in [
            "not json",
            "[]",
            r#"{"jsonrpc":"1.0","method":"receive","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"receive","params":{"envelope":{"sourceUuid":5}}}"#,
            r#"{"jsonrpc":"2.0","method":"receive","params":{"envelope":{"timestamp":"x"}}}"#,
            r#"{"jsonrpc":"2.0","method":"receive"}"#,
            r#"{"jsonrpc":"2.0","method":"receive","params":{"subscription":0}}"#,
            r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"method field must be set","data":null},"id":null}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","result":{},"id":"a"}"#,
        ] {
            assert!(parse_line(line).is_err(), "{line}");
        }
        assert_eq!(
            parse_line(r#"{"jsonrpc":"2.0","error":{"code":-1,"message":"no\u0007pe"},"id":3}"#)
                .unwrap(),
            Incoming::Answer {
                id: 3,
                outcome: Err("nope (-1)".into())
            }
        );
    }

    #[test]
    fn a_subscribed_receive_is_read_too() {
        let line = serde_json::json!({"jsonrpc": "2.0", "method": "receive",
            "params": {"subscription": 0, "result": {"envelope": {"sourceUuid": ACI,
            "timestamp": 3, "dataMessage": {"message": "hi"}}, "account": "+15550001111"}}});
        let Incoming::Receive(env) = parse_line(&line.to_string()).unwrap() else {
            panic!()
        };
        assert!(matches!(
            rules().envelope(&env),
            Ok(SignalEvent::Message { timestamp: 3, .. })
        ));
    }

    #[test]
    fn shapes() {
        assert!(is_aci(ACI));
        assert!(!is_aci(&ACI.to_uppercase()));
        assert!(is_e164("+15550001111"));
        for bad in [
            "15550001111",
            "+0555000111",
            "+1555",
            "+1555000111122223",
            "+1 555",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
        let n = "12345 ".repeat(12);
        assert_eq!(safety_number(&n).unwrap().len(), 60);
        assert!(safety_number("1234").is_none());
        assert!(safety_number(&"x".repeat(60)).is_none());
        assert!(is_group_id(GROUP) && is_signal_id(GROUP) && is_signal_id(ACI));
        for bad in ["+15550001111", "AbC=", "", "not base64!"] {
            assert!(!is_signal_id(bad), "{bad}");
        }
    }
}
