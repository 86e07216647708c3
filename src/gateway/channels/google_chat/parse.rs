//! Google Chat: the HTTP endpoint's bearer token (an RS256 JWT from
//! `chat@system.gserviceaccount.com` whose audience is the app's Cloud
//! project number, checked with [`VerifiedTokens`] against the key Google
//! publishes) and the Chat app interaction events (the same JSON arrives by
//! Pub/Sub, base64 in a message's `data`) → [`Inbound`].
//!
//! The token does not cover the body: the event's `message.name` is the
//! replay key and its `eventTime` must be recent (5 minutes either way on
//! the HTTP endpoint, which Google calls at once; up to the replay guard's
//! 24 hours back by Pub/Sub, which holds events while the appliance is away).
//! An authentic event that is not for us is [`ChatEvent::Refused`] (audited,
//! not acted on, answered 200 or acknowledged, so Google does not send it
//! again): one from a sender outside the owner's Workspace organization
//! (`user.domainId` missing or another), or one outside the time window.
//!
//! Sender: `users/<digits>`, the stable id (never the e-mail address or the
//! display name); chat: the space (`spaces/<id>`), a DM or a group space.
//! In a space Google delivers only messages that @mention the app (or its
//! slash commands): the prompt is `argumentText` (the text without the
//! mention), and the message mentions the bot when an annotation says so.

use serde::Deserialize;
use serde::de::IgnoredAny;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::gateway::channels::{Headers, REPLAY_WINDOW_SECS, Refused, check_body_size, parse_json};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Attachment, Context, Inbound, MAX_DISPLAY_NAME_LEN, RawInbound};
use crate::gateway::transport::jwt::{PublishedKey, VerifiedTokens};

pub(crate) const CHANNEL: &str = "google-chat";
/// Who signs the HTTP endpoint's bearer tokens.
pub const ISSUER: &str = "chat@system.gserviceaccount.com";
/// Events older than this are refused by Pub/Sub (the replay guard's window).
pub const MAX_PUBSUB_EVENT_AGE_SECS: i64 = 24 * 3600;
/// Longest message, thread or space name kept (Google's are far shorter).
const MAX_NAME_LEN: usize = 256;

/// One verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    Message {
        /// `message.name` (`spaces/S/messages/M`), the replay key.
        event_id: String,
        /// The message's thread (`spaces/S/threads/T`): answers go there.
        thread: Option<String>,
        inbound: Box<Inbound>,
    },
    /// Authentic but not a prompt (added to a space, a card click, a bot).
    Ignored { reason: &'static str },
    /// Authentic but refused: audited with `reason`, not acted on.
    Refused(Refused),
}

/// The Google Chat channel's verifier and parser.
#[derive(Debug)]
pub struct GoogleChat {
    channel: String,
    /// Checks tokens for the project number, their audience (`None`:
    /// Pub/Sub, no token).
    tokens: Option<VerifiedTokens>,
    /// The Workspace domain id every sender must belong to.
    organization_id: String,
    /// The app's own user (`users/<digits>`), for mentions; any app otherwise.
    bot_user: Option<String>,
    /// How far back `eventTime` may be.
    max_age_secs: i64,
}

/// Whether `id` is a Google Chat user's stable id: `users/` and 1 to 64 digits.
pub fn is_google_chat_user_id(id: &str) -> bool {
    id.strip_prefix("users/")
        .is_some_and(|n| (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `id` is a space's name: `spaces/` and 1 to 64 letters, digits,
/// `_` or `-`.
pub fn is_google_chat_space(id: &str) -> bool {
    id.strip_prefix("spaces/").is_some_and(|s| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// The ids a channel's lists hold: users (allowlist, approvers) and spaces
/// (group allowlist, per-chat settings).
pub fn is_google_chat_id(id: &str) -> bool {
    is_google_chat_user_id(id) || is_google_chat_space(id)
}

/// Whether `s` is a Workspace domain id as Chat reports it (`domainId`).
fn is_domain_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `name` is `{space}/{kind}/<id>` with an id of letters, digits, `.`, `_`, `-`.
fn is_child_of(name: &str, space: &str, kind: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name
            .strip_prefix(space)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_prefix(kind))
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            })
}

impl GoogleChat {
    /// The HTTP endpoint's verifier: tokens for `project_number` (digits),
    /// senders of `organization_id`.
    pub fn endpoint(project_number: &str, organization_id: &str) -> Result<Self, GatewayError> {
        if !(1..=20).contains(&project_number.len())
            || !project_number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "project_number must be the Cloud project's number (1 to 20 digits)",
            });
        }
        let mut chat = Self::pubsub(organization_id)?;
        chat.tokens = Some(VerifiedTokens::new(&[ISSUER], project_number));
        chat.max_age_secs = REPLAY_WINDOW_SECS;
        Ok(chat)
    }

    /// The parser of events pulled from Pub/Sub (no token: the subscription's
    /// IAM vouches for them), senders of `organization_id`.
    pub fn pubsub(organization_id: &str) -> Result<Self, GatewayError> {
        if !is_domain_id(organization_id) {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "organization_id must be the Workspace domain id (1 to 64 letters, digits, _ or -)",
            });
        }
        Ok(GoogleChat {
            channel: CHANNEL.to_string(),
            tokens: None,
            organization_id: organization_id.to_string(),
            bot_user: None,
            max_age_secs: MAX_PUBSUB_EVENT_AGE_SECS,
        })
    }

    /// Serves the channel configured as `channel` (messages carry that name).
    pub fn named(mut self, channel: &str) -> Self {
        self.channel = channel.to_string();
        self
    }

    /// Counts only mentions of `bot_user` (`users/<digits>`), not of any app.
    pub fn bot_user(mut self, bot_user: Option<&str>) -> Result<Self, GatewayError> {
        match bot_user {
            Some(b) if !is_google_chat_user_id(b) => Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "bot_user must be the app's user id (users/ and digits)",
            }),
            _ => {
                self.bot_user = bot_user.map(str::to_string);
                Ok(self)
            }
        }
    }

    /// The channel's configured name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Checks the `Authorization: Bearer` JWT with `key` (the published key
    /// its header names: [`crate::gateway::transport::jwt::KeySet::key_for_request`]).
    pub fn verify(
        &self,
        headers: &Headers,
        key: &PublishedKey,
        now: i64,
    ) -> Result<(), GatewayError> {
        self.verify_inner(headers, key, now)
            .map_err(|r| GatewayError::verify(CHANNEL, r))
    }

    fn verify_inner(
        &self,
        headers: &Headers,
        key: &PublishedKey,
        now: i64,
    ) -> Result<(), AuthFailure> {
        let tokens = self
            .tokens
            .as_ref()
            .ok_or(AuthFailure::BadToken("no audience configured"))?;
        tokens
            .verify_request::<IgnoredAny>(headers, key, now)
            .map(|_| ())
    }

    /// Verifies, then parses (the one to use on the HTTP endpoint).
    pub fn receive(
        &self,
        headers: &Headers,
        body: &[u8],
        key: &PublishedKey,
        now: i64,
    ) -> Result<ChatEvent, GatewayError> {
        check_body_size(body).map_err(|r| GatewayError::verify(CHANNEL, r))?;
        self.verify(headers, key, now)?;
        self.parse(body, now)
    }

    /// Parses an interaction event (call only after [`GoogleChat::verify`],
    /// or for a message pulled from the subscription).
    pub fn parse(&self, body: &[u8], now: i64) -> Result<ChatEvent, GatewayError> {
        let ev: Event = parse_json(CHANNEL, body)?;
        let bad = |reason: &'static str| GatewayError::parse(CHANNEL, reason);
        if ev.kind != "MESSAGE" {
            return Ok(ChatEvent::Ignored {
                reason: "event type",
            });
        }
        let msg = ev
            .message
            .ok_or_else(|| bad("message event without a message"))?;
        let Some(sender) = msg.sender.as_ref().or(ev.user.as_ref()) else {
            return Err(bad("message without a sender"));
        };
        if sender.kind.as_deref() == Some("BOT") {
            return Ok(ChatEvent::Ignored {
                reason: "sent by an app",
            });
        }
        let sender_id = sender
            .name
            .clone()
            .filter(|n| is_google_chat_user_id(n))
            .ok_or_else(|| bad("sender is not a Google Chat user id"))?;
        let space = ev.space.ok_or_else(|| bad("message without a space"))?;
        if !is_google_chat_space(&space.name) {
            return Err(bad("space name is not spaces/<id>"));
        }
        let refused = |reason, detail: String| {
            Ok(ChatEvent::Refused(Refused {
                reason,
                detail,
                sender: Some(sender_id.clone()),
                chat: Some(space.name.clone()),
            }))
        };
        // The user who sent it (the event's `user`, else the message's sender).
        let domain = ev
            .user
            .as_ref()
            .and_then(|u| u.domain_id.as_deref())
            .or(sender.domain_id.as_deref());
        match domain {
            Some(d) if d == self.organization_id => {}
            Some(d) => {
                let shown: String = d.chars().take(64).collect();
                return refused(
                    "other_organization",
                    format!(
                        "the sender's Workspace domain {shown:?} is not the configured organization"
                    ),
                );
            }
            None => {
                return refused(
                    "other_organization",
                    "the sender has no Workspace domain (a consumer account)".into(),
                );
            }
        }
        let at = ev
            .event_time
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or_else(|| bad("eventTime is not an RFC 3339 time"))?
            .unix_timestamp();
        if now - at > self.max_age_secs || at - now > REPLAY_WINDOW_SECS {
            return refused(
                "stale_event",
                format!(
                    "eventTime {at} is outside the window ({} s back, {REPLAY_WINDOW_SECS} s ahead) around {now}",
                    self.max_age_secs
                ),
            );
        }
        let event_id = msg
            .name
            .filter(|n| is_child_of(n, &space.name, "messages"))
            .ok_or_else(|| bad("message name is not <space>/messages/<id>"))?;
        let context = match (space.space_type.as_deref(), space.legacy_type.as_deref()) {
            (Some("DIRECT_MESSAGE"), _) | (None, Some("DM")) => Context::Dm,
            (Some("SPACE" | "GROUP_CHAT"), _) | (None, Some("ROOM")) => Context::Group,
            _ => return Err(bad("unknown space type")),
        };
        let mentions_bot = msg.annotations.iter().any(|a| match a.kind.as_str() {
            "SLASH_COMMAND" => true,
            "USER_MENTION" => a
                .user_mention
                .as_ref()
                .and_then(|m| m.user.as_ref())
                .is_some_and(|u| match &self.bot_user {
                    Some(bot) => u.name.as_deref() == Some(bot.as_str()),
                    None => u.kind.as_deref() == Some("BOT"),
                }),
            _ => false,
        });
        let text = match msg.argument_text {
            Some(t) => t.trim().to_string(),
            None => msg.text.unwrap_or_default(),
        };
        let attachments = msg
            .attachment
            .into_iter()
            .map(|a| Attachment {
                name: a.content_name.unwrap_or_else(|| "attachment".into()),
                mime: a.content_type,
                size: None,
            })
            .collect();
        let sender_name = sender
            .display_name
            .clone()
            .filter(|n| n.len() <= MAX_DISPLAY_NAME_LEN && !n.chars().any(char::is_control));
        let thread = msg
            .thread
            .and_then(|t| t.name)
            .filter(|t| is_child_of(t, &space.name, "threads"));
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: None,
            sender: sender_id,
            sender_name,
            chat: space.name,
            context,
            mentions_bot,
            text,
            attachments,
        })?;
        Ok(ChatEvent::Message {
            event_id,
            thread,
            inbound: Box::new(inbound),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    event_time: Option<String>,
    message: Option<Message>,
    user: Option<User>,
    space: Option<Space>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    name: Option<String>,
    sender: Option<User>,
    text: Option<String>,
    argument_text: Option<String>,
    thread: Option<Thread>,
    #[serde(default)]
    annotations: Vec<Annotation>,
    #[serde(default)]
    attachment: Vec<ChatAttachment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    name: Option<String>,
    display_name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    domain_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Space {
    name: String,
    space_type: Option<String>,
    /// The deprecated `type` (`DM`, `ROOM`), still sent beside `spaceType`.
    #[serde(rename = "type")]
    legacy_type: Option<String>,
}

#[derive(Deserialize)]
struct Thread {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Annotation {
    #[serde(rename = "type")]
    kind: String,
    user_mention: Option<UserMention>,
}

#[derive(Deserialize)]
struct UserMention {
    user: Option<User>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatAttachment {
    content_name: Option<String>,
    content_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::transport::jwt;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    const KEY_A: &[u8] = include_bytes!("../../../../tests/data/jwt/key-a.pem");
    const KEY_B: &[u8] = include_bytes!("../../../../tests/data/jwt/key-b.pem");
    const JWKS_AB: &[u8] = include_bytes!("../../../../tests/data/jwt/jwks-ab.json");
    const NOW: i64 = 1_800_000_000;
    const PROJECT: &str = "1234567890";
    const ORG: &str = "C03abc123";
    const USER: &str = "users/112233445566778899000";
    const SPACE: &str = "spaces/AAAAb3Xyz_1";

    fn chat() -> GoogleChat {
        GoogleChat::endpoint(PROJECT, ORG).unwrap()
    }

    fn time(at: i64) -> String {
        OffsetDateTime::from_unix_timestamp(at)
            .unwrap()
            .format(&Rfc3339)
            .unwrap()
    }

    fn token(pem: &[u8], kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({"iss": ISSUER, "aud": PROJECT, "iat": NOW - 5, "exp": NOW + 3600})
    }

    fn bearer(t: &str) -> Headers {
        [("Authorization", format!("Bearer {t}"))]
            .into_iter()
            .collect()
    }

    fn event(space_type: &str, text: &str) -> serde_json::Value {
        json!({
            "type": "MESSAGE",
            "eventTime": time(NOW - 1),
            "space": {"name": SPACE, "spaceType": space_type},
            "message": {
                "name": format!("{SPACE}/messages/m1.m1"),
                "sender": {"name": USER, "displayName": "Ada", "type": "HUMAN", "domainId": ORG},
                "text": text,
                "argumentText": text,
                "thread": {"name": format!("{SPACE}/threads/t1")},
            },
            "user": {"name": USER, "displayName": "Ada", "type": "HUMAN", "domainId": ORG},
        })
    }

    fn parse(ev: &serde_json::Value) -> Result<ChatEvent, GatewayError> {
        chat().parse(ev.to_string().as_bytes(), NOW)
    }

    fn summary(got: Result<ChatEvent, GatewayError>) -> String {
        match got {
            Ok(ChatEvent::Message { inbound, .. }) => format!(
                "{:?} {} -> {} mention={} {:?}",
                inbound.context(),
                inbound.sender(),
                inbound.chat(),
                inbound.mentions_bot(),
                inbound.text()
            ),
            Ok(ChatEvent::Ignored { reason }) => format!("ignored: {reason}"),
            Ok(ChatEvent::Refused(r)) => format!("refused: {}", r.reason),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn a_signed_dm_becomes_one_message_in_its_thread() {
        let jwks = jwt::Jwks::parse(JWKS_AB).unwrap();
        let key = jwks.get("test-key-a").unwrap();
        let body = event("DIRECT_MESSAGE", "hello").to_string();
        let got = chat()
            .receive(
                &bearer(&token(KEY_A, "test-key-a", claims())),
                body.as_bytes(),
                &key,
                NOW,
            )
            .unwrap();
        let ChatEvent::Message {
            event_id,
            thread,
            inbound,
        } = got
        else {
            panic!("{got:?}")
        };
        assert_eq!(event_id, format!("{SPACE}/messages/m1.m1"));
        assert_eq!(thread.as_deref(), Some("spaces/AAAAb3Xyz_1/threads/t1"));
        assert_eq!((inbound.sender(), inbound.chat()), (USER, SPACE));
        assert_eq!((inbound.context(), inbound.text()), (Context::Dm, "hello"));
        assert_eq!(inbound.sender_name(), Some("Ada"));
        assert_eq!(inbound.channel(), "google-chat");
    }

    #[test]
    fn tokens_hold_only_from_chat_for_the_project_signed_by_the_key_named() {
        let jwks = jwt::Jwks::parse(JWKS_AB).unwrap();
        let (a, b) = (
            jwks.get("test-key-a").unwrap(),
            jwks.get("test-key-b").unwrap(),
        );
        let c = chat();
        let with = |k: &str, v: serde_json::Value| {
            let mut cl = claims();
            cl[k] = v;
            c.verify(&bearer(&token(KEY_A, "test-key-a", cl)), &a, NOW)
        };
        assert!(with("aud", PROJECT.into()).is_ok());
        let refused = |r: Result<(), GatewayError>| match r {
            Err(GatewayError::VerifyRequest { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(with("iss", "accounts.google.com".into())),
            AuthFailure::BadToken("wrong issuer")
        );
        assert_eq!(
            refused(with("aud", "999".into())),
            AuthFailure::BadToken("wrong audience")
        );
        assert_eq!(
            refused(with("exp", (NOW - 3600).into())),
            AuthFailure::BadToken("expired")
        );
        // Signed by A, checked with B (the key its header would have named).
        let t = token(KEY_A, "test-key-b", claims());
        assert_eq!(
            refused(c.verify(&bearer(&t), &b, NOW)),
            AuthFailure::BadToken("signature does not match")
        );
        assert!(c.verify(&Headers::new(), &a, NOW).is_err());
        assert!(c.verify(&bearer("not.a.jwt"), &a, NOW).is_err());
        // Pub/Sub's parser has no audience: no token ever holds for it.
        let t = token(KEY_B, "test-key-b", claims());
        assert!(
            GoogleChat::pubsub(ORG)
                .unwrap()
                .verify(&bearer(&t), &b, NOW)
                .is_err()
        );
        assert!(GoogleChat::endpoint("12a", ORG).is_err());
        assert!(GoogleChat::endpoint(PROJECT, "").is_err());
        assert!(GoogleChat::endpoint(PROJECT, "a/b").is_err());
        assert!(chat().bot_user(Some("Ada")).is_err());
    }

    #[test]
    fn spaces_mentions_and_what_is_ignored_or_refused() {
        let mut legacy_dm = event("DIRECT_MESSAGE", "hi");
        legacy_dm["space"] = json!({"name": SPACE, "type": "DM"});
        let mut mention = event("SPACE", "@Cowork status?");
        mention["message"]["argumentText"] = json!(" status?");
        mention["message"]["annotations"] = json!([{"type": "USER_MENTION", "startIndex": 0, "length": 7,
            "userMention": {"type": "MENTION", "user": {"name": "users/42", "displayName": "Cowork", "type": "BOT"}}}]);
        let mut human_mention = event("SPACE", "@Bo hi");
        human_mention["message"]["annotations"] = json!([{"type": "USER_MENTION",
            "userMention": {"user": {"name": "users/7", "type": "HUMAN"}}}]);
        let mut room = event("DIRECT_MESSAGE", "x");
        room["space"] = json!({"name": SPACE, "type": "ROOM"});
        let mut bot = event("DIRECT_MESSAGE", "x");
        bot["message"]["sender"]["type"] = json!("BOT");
        let mut added = event("SPACE", "x");
        added["type"] = json!("ADDED_TO_SPACE");
        let mut foreign = event("DIRECT_MESSAGE", "x");
        foreign["user"]["domainId"] = json!("C0other");
        let mut consumer = event("DIRECT_MESSAGE", "x");
        consumer["user"].as_object_mut().unwrap().remove("domainId");
        consumer["message"]["sender"]
            .as_object_mut()
            .unwrap()
            .remove("domainId");
        let mut old = event("DIRECT_MESSAGE", "x");
        old["eventTime"] = json!(time(NOW - REPLAY_WINDOW_SECS - 1));
        let mut future = event("DIRECT_MESSAGE", "x");
        future["eventTime"] = json!(time(NOW + REPLAY_WINDOW_SECS + 1));
        let got: Vec<String> = [
            event("DIRECT_MESSAGE", "hi"),
            legacy_dm,
            mention.clone(),
            human_mention,
            room,
            event("GROUP_CHAT", "x"),
            bot,
            added,
            foreign,
            consumer,
            old.clone(),
            future,
        ]
        .iter()
        .map(|e| summary(parse(e)))
        .collect();
        let (user, space) = (USER, SPACE);
        assert_eq!(
            got,
            [
                format!("Dm {user} -> {space} mention=false \"hi\""),
                format!("Dm {user} -> {space} mention=false \"hi\""),
                format!("Group {user} -> {space} mention=true \"status?\""),
                format!("Group {user} -> {space} mention=false \"@Bo hi\""),
                format!("Group {user} -> {space} mention=false \"x\""),
                format!("Group {user} -> {space} mention=false \"x\""),
                "ignored: sent by an app".into(),
                "ignored: event type".into(),
                "refused: other_organization".into(),
                "refused: other_organization".into(),
                "refused: stale_event".into(),
                "refused: stale_event".into(),
            ]
        );
        // Pub/Sub takes events up to the replay guard's window back.
        let ps = GoogleChat::pubsub(ORG).unwrap();
        assert!(matches!(
            ps.parse(old.to_string().as_bytes(), NOW),
            Ok(ChatEvent::Message { .. })
        ));
        // With bot_user set, only a mention of that app counts.
        let only = chat().bot_user(Some("users/43")).unwrap();
        let got = only.parse(mention.to_string().as_bytes(), NOW);
        assert!(summary(got).contains("mention=false"));
    }

    #[test]
    fn hostile_events_are_refused_with_a_reason() {
        let ok = event("DIRECT_MESSAGE", "x");
        let with = |path: &[&str], v: serde_json::Value| {
            let mut e = ok.clone();
            let mut at = &mut e;
            for p in &path[..path.len() - 1] {
                at = &mut at[*p];
            }
            at[path[path.len() - 1]] = v;
            e
        };
        let cases = [
            with(&["message", "sender", "name"], json!("ada@example.com")),
            with(&["message", "sender", "name"], json!("users/12a")),
            with(&["space", "name"], json!("spaces/../x")),
            with(&["space", "spaceType"], json!("CHANNEL")),
            with(&["message", "name"], json!("spaces/OTHER/messages/1")),
            with(&["message", "name"], json!(format!("{SPACE}/messages/"))),
            with(&["eventTime"], json!("yesterday")),
            with(&["eventTime"], json!(5)),
            with(&["message"], json!(null)),
            with(&["message", "argumentText"], json!("a\u{0}b")),
            with(&["type"], json!(7)),
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(parse(c).is_err(), "{i}: {c}");
        }
        for bad in [&b"{"[..], b"[]", b"null", b"{}", b"\xff"] {
            assert!(chat().parse(bad, NOW).is_err());
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(chat().parse(deep.as_bytes(), NOW).is_err());
        // An odd thread name is dropped, not followed.
        let t = with(
            &["message", "thread", "name"],
            json!("spaces/OTHER/threads/1"),
        );
        assert!(matches!(
            parse(&t),
            Ok(ChatEvent::Message { thread: None, .. })
        ));
    }

    #[test]
    fn ids_are_shaped() {
        for ok in [USER, "users/1"] {
            assert!(is_google_chat_user_id(ok) && is_google_chat_id(ok), "{ok}");
        }
        assert!(is_google_chat_space(SPACE) && is_google_chat_id(SPACE));
        for bad in [
            "",
            "users/",
            "users/app",
            "users/ada@example.com",
            "ada@example.com",
            "Ada",
            "112233445566778899000",
            "spaces/",
            "spaces/a/b",
            "spaces/a b",
        ] {
            assert!(!is_google_chat_id(bad), "{bad}");
        }
    }
}
