//! Microsoft Teams through the Azure Bot Service: a Bot Framework activity
//! posted to the messaging endpoint with `Authorization: Bearer <JWT>`. The
//! token is checked as the Bot Framework says a bot must: RS256 with a key
//! from its OpenID metadata (see [`crate::gateway::transport::jwt`]), issuer
//! [`TOKEN_ISSUER`], audience the bot's app id, ±5 minutes, the key endorsed
//! for the activity's `channelId`, and the token's `serviceurl` claim equal to
//! the activity's `serviceUrl` (where answers go, so it must be Microsoft's
//! word, not the body's). An activity of another tenant than the owner's is
//! refused (audited, not acted on).
//!
//! Sender: `from.aadObjectId`, the user's Microsoft Entra object id (stable;
//! display names and e-mail addresses are never ids). Chat:
//! `conversation.id`; `conversationType` `personal` is a DM, `groupChat` and
//! `channel` are groups (where Teams sends the bot only messages that
//! @mention it; the mention is cut from the text).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::gateway::channels::{Headers, Refused, check_body_size, parse_json};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Context, Inbound, RawInbound};
use crate::gateway::transport::jwt::{PublishedKey, VerifiedTokens};

pub(crate) const CHANNEL: &str = "teams";
/// The issuer of the Bot Connector's tokens to a bot.
pub const TOKEN_ISSUER: &str = "https://api.botframework.com";
/// The Bot Framework's `channelId` of Microsoft Teams.
pub const TEAMS_CHANNEL_ID: &str = "msteams";

/// One verified activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamsEvent {
    Message {
        /// Digest of the conversation and activity ids, the replay key.
        event_id: String,
        /// Where the answer goes (the token vouches for it).
        service_url: String,
        inbound: Box<Inbound>,
    },
    /// Authentic but not a prompt (a conversation update, a reaction...).
    Ignored { reason: &'static str },
    /// Authentic but refused (another tenant): audited, not acted on.
    Refused(Refused),
}

/// The Teams channel's verifier and parser.
#[derive(Debug)]
pub struct Teams {
    channel: String,
    /// Checks tokens for the bot's Microsoft App ID, their audience.
    tokens: VerifiedTokens,
    /// The owner's Microsoft Entra tenant.
    tenant_id: String,
}

/// Whether `id` is a lowercase GUID (`7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e90`),
/// the shape of Microsoft Entra object, tenant and app ids.
pub fn is_entra_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether `id` can name a Teams sender or chat in the configuration: a
/// user's Microsoft Entra object id ([`is_entra_id`]) or a conversation id
/// (`a:...` for a personal chat, `19:...@thread...` for a group chat or a
/// channel). Teams' own `29:` user ids, display names and e-mail addresses
/// are not.
pub fn is_teams_id(id: &str) -> bool {
    let conversation = |rest: &str| {
        (1..=250).contains(&rest.len())
            && rest.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'_' | b':' | b'@' | b'.' | b';' | b'=')
            })
    };
    is_entra_id(id)
        || id.strip_prefix("a:").is_some_and(conversation)
        || id
            .strip_prefix("19:")
            .is_some_and(|rest| conversation(rest) && rest.contains("@thread."))
}

#[derive(Deserialize)]
struct Claims {
    serviceurl: Option<String>,
}

impl Teams {
    /// `app_id`: the bot's Microsoft App ID; `tenant_id`: the owner's tenant.
    pub fn new(app_id: &str, tenant_id: &str) -> Result<Teams, GatewayError> {
        for (id, reason) in [
            (
                app_id,
                "application_id must be the bot's Microsoft App ID (a lowercase GUID)",
            ),
            (
                tenant_id,
                "organization_id must be the Microsoft Entra tenant id (a lowercase GUID)",
            ),
        ] {
            if !is_entra_id(id) {
                return Err(GatewayError::VerifierKey {
                    channel: CHANNEL,
                    reason,
                });
            }
        }
        Ok(Teams {
            channel: CHANNEL.to_string(),
            tokens: VerifiedTokens::new(&[TOKEN_ISSUER], app_id),
            tenant_id: tenant_id.to_string(),
        })
    }

    /// Serves the channel configured as `channel` (messages carry that name).
    pub fn named(mut self, channel: &str) -> Teams {
        self.channel = channel.to_string();
        self
    }

    /// The configured channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Verifies the request (its bearer token, with `key`, the key the token
    /// names, against the activity), then parses it: the one to use in
    /// production.
    pub fn receive(
        &self,
        headers: &Headers,
        body: &[u8],
        key: &PublishedKey,
        now: i64,
    ) -> Result<TeamsEvent, GatewayError> {
        let activity = self.verify(headers, body, key, now)?;
        self.parse_activity(activity)
    }

    /// Checks the bearer token and binds it to the activity (endorsement of
    /// its `channelId`, `serviceurl` claim); the activity read only as far
    /// as that needs.
    pub fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        key: &PublishedKey,
        now: i64,
    ) -> Result<Activity, GatewayError> {
        let verify_err = |r| GatewayError::verify(CHANNEL, r);
        check_body_size(body).map_err(verify_err)?;
        let claims: Claims = self
            .tokens
            .verify_request(headers, key, now)
            .map_err(verify_err)?;
        let activity: Activity = parse_json(CHANNEL, body)?;
        if !key.endorses(&activity.channel_id) {
            return Err(verify_err(AuthFailure::BadToken(
                "its key is not endorsed for the activity's channel",
            )));
        }
        if claims.serviceurl.as_deref() != Some(activity.service_url.as_str()) {
            return Err(verify_err(AuthFailure::BadToken(
                "its serviceurl claim is not the activity's serviceUrl",
            )));
        }
        Ok(activity)
    }

    /// Parses a body without verifying it (benchmarks, fuzzing; production
    /// goes through [`Teams::receive`]).
    pub fn parse(&self, body: &[u8]) -> Result<TeamsEvent, GatewayError> {
        self.parse_activity(parse_json(CHANNEL, body)?)
    }

    fn parse_activity(&self, a: Activity) -> Result<TeamsEvent, GatewayError> {
        let ignored = |reason| Ok(TeamsEvent::Ignored { reason });
        if a.channel_id != TEAMS_CHANNEL_ID {
            return ignored("not a Teams activity");
        }
        // Every tenant the activity names (there may be two) is the owner's.
        let tenants = [
            a.conversation.tenant_id.as_deref(),
            a.channel_data
                .as_ref()
                .and_then(|d| d.tenant.as_ref())
                .map(|t| t.id.as_str()),
        ];
        let given: Vec<&str> = tenants.into_iter().flatten().collect();
        if given.is_empty() || given.iter().any(|t| *t != self.tenant_id) {
            let shown: String = given
                .iter()
                .find(|t| **t != self.tenant_id)
                .unwrap_or(&"none")
                .chars()
                .take(64)
                .collect();
            return Ok(TeamsEvent::Refused(Refused {
                reason: "other_organization",
                detail: format!(
                    "the activity's tenant {shown:?} is not the configured organization"
                ),
                // Only id-shaped values reach the trail.
                sender: a
                    .from
                    .as_ref()
                    .and_then(|f| f.aad_object_id.as_deref())
                    .map(str::to_ascii_lowercase)
                    .filter(|s| is_entra_id(s)),
                chat: Some(a.conversation.id.clone()).filter(|c| is_teams_id(c)),
            }));
        }
        if a.kind != "message" {
            return ignored("not a message");
        }
        crate::net::parse_url(&a.service_url, "https", "http")
            .map_err(|e| GatewayError::parse(CHANNEL, format!("serviceUrl: {e}")))?;
        let (Some(id), Some(from)) = (a.id, a.from) else {
            return Err(GatewayError::parse(
                CHANNEL,
                "message without an id or a sender",
            ));
        };
        if id.is_empty() || id.len() > 256 {
            return Err(GatewayError::parse(
                CHANNEL,
                "activity id length out of range",
            ));
        }
        let Some(sender) = from.aad_object_id.map(|s| s.to_ascii_lowercase()) else {
            return ignored("a sender without a Microsoft Entra object id");
        };
        if !is_entra_id(&sender) {
            return Err(GatewayError::parse(CHANNEL, "aadObjectId is not a GUID"));
        }
        let context = match a.conversation.conversation_type.as_deref() {
            Some("personal") => Context::Dm,
            // groupChat, channel, and any type Teams adds later: the
            // stricter group policy.
            _ => Context::Group,
        };
        let mut text = a.text.unwrap_or_default();
        let mut mentions_bot = false;
        for m in &a.entities {
            if m.kind == "mention"
                && m.mentioned.as_ref().map(|x| &x.id) == a.recipient.as_ref().map(|r| &r.id)
            {
                mentions_bot = true;
                if let Some(t) = m.text.as_deref().filter(|t| !t.is_empty()) {
                    text = text.replacen(t, "", 1);
                }
            }
        }
        let digest = Sha256::digest(format!("{}\n{id}", a.conversation.id).as_bytes());
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: Some(self.tenant_id.clone()),
            sender,
            sender_name: from.name,
            chat: a.conversation.id,
            context,
            mentions_bot,
            text: text.trim().to_string(),
            attachments: Vec::new(),
        })?;
        Ok(TeamsEvent::Message {
            event_id: hex::encode(digest),
            service_url: a.service_url,
            inbound: Box::new(inbound),
        })
    }
}

/// A Bot Framework activity, as far as the appliance reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    service_url: String,
    channel_id: String,
    from: Option<Account>,
    conversation: Conversation,
    recipient: Option<Account>,
    text: Option<String>,
    #[serde(default)]
    entities: Vec<Entity>,
    channel_data: Option<ChannelData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Account {
    id: String,
    name: Option<String>,
    aad_object_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conversation {
    id: String,
    conversation_type: Option<String>,
    tenant_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    mentioned: Option<Mentioned>,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Mentioned {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ChannelData {
    tenant: Option<Tenant>,
}

#[derive(Debug, Deserialize)]
struct Tenant {
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const APP: &str = "2f0a6a5e-8d1c-4f7e-9b3a-1c2d3e4f5a6b";
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const USER: &str = "7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e90";

    fn teams() -> Teams {
        Teams::new(APP, TENANT).unwrap().named("work")
    }

    fn activity(kind: &str, text: &str) -> serde_json::Value {
        json!({"type": "message", "id": "1", "serviceUrl": "https://smba.trafficmanager.net/amer/",
            "channelId": "msteams",
            "from": {"id": "29:1x", "name": "Ann", "aadObjectId": USER.to_uppercase()},
            "conversation": {"conversationType": kind, "tenantId": TENANT, "id": "19:g@thread.v2"},
            "recipient": {"id": format!("28:{APP}"), "name": "CoWork"},
            "text": text})
    }

    fn parse(v: &serde_json::Value) -> Result<TeamsEvent, GatewayError> {
        teams().parse(v.to_string().as_bytes())
    }

    fn inbound(v: &serde_json::Value) -> Inbound {
        match parse(v).unwrap() {
            TeamsEvent::Message { inbound, .. } => *inbound,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn personal_chats_are_dms_and_the_rest_groups_with_the_bots_mention_cut() {
        let dm = inbound(&activity("personal", "hello"));
        assert_eq!(dm.context(), Context::Dm);
        assert_eq!(
            (dm.sender(), dm.channel(), dm.text()),
            (USER, "work", "hello")
        );
        let mut g = activity("groupChat", "<at>CoWork</at> run the report");
        g["entities"] = json!([
            {"type": "mention", "text": "<at>CoWork</at>", "mentioned": {"id": format!("28:{APP}"), "name": "CoWork"}},
            {"type": "clientInfo", "locale": "en-US"}]);
        let group = inbound(&g);
        assert_eq!(group.context(), Context::Group);
        assert!(group.mentions_bot());
        assert_eq!(group.text(), "run the report");
        // Another user's mention is neither the bot's nor cut.
        g["entities"][0]["mentioned"]["id"] = json!("29:other");
        let other = inbound(&g);
        assert!(!other.mentions_bot());
        assert_eq!(other.text(), "<at>CoWork</at> run the report");
        for kind in ["channel", "somethingNew"] {
            assert_eq!(inbound(&activity(kind, "x")).context(), Context::Group);
        }
    }

    #[test]
    fn the_event_id_binds_the_conversation() {
        let id = |conv: &str| {
            let mut a = activity("personal", "x");
            a["conversation"]["id"] = json!(conv);
            match parse(&a).unwrap() {
                TeamsEvent::Message { event_id, .. } => event_id,
                other => panic!("{other:?}"),
            }
        };
        assert_ne!(id("a:1"), id("a:2"));
        assert_eq!(id("a:1").len(), 64);
    }

    #[test]
    fn idle_foreign_or_malformed_activities() {
        let ignored = |v: &serde_json::Value| matches!(parse(v), Ok(TeamsEvent::Ignored { .. }));
        let mut a = activity("personal", "x");
        a["type"] = json!("conversationUpdate");
        assert!(ignored(&a));
        let mut a = activity("personal", "x");
        a["channelId"] = json!("webchat");
        assert!(ignored(&a));
        let mut a = activity("personal", "x");
        a["from"].as_object_mut().unwrap().remove("aadObjectId");
        assert!(ignored(&a));
        for (field, value) in [
            (
                "from",
                json!({"id": "29:1", "aadObjectId": "alice@example.com"}),
            ),
            ("serviceUrl", json!("http://example.com/")),
            ("serviceUrl", json!("not a url")),
            ("id", json!("")),
            ("id", json!("9".repeat(300))),
            ("text", json!("a\u{0}b")),
        ] {
            let mut a = activity("personal", "x");
            a[field] = value;
            assert!(parse(&a).is_err(), "{field}: {a}");
        }
        let mut a = activity("personal", "x");
        a.as_object_mut().unwrap().remove("id");
        assert!(parse(&a).is_err());
        for junk in ["", "{}", "[]", "null", "{\"type\":\"message\"}"] {
            assert!(teams().parse(junk.as_bytes()).is_err(), "{junk}");
        }
    }

    #[test]
    fn ids_take_guids_and_conversation_ids_only() {
        assert!(is_entra_id(USER));
        for bad in [
            "",
            "7FAF1A9C-4B0E-4A52-9D0B-3F1B2C6D8E90",
            "7faf1a9c4b0e4a529d0b3f1b2c6d8e90",
            "7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e9g",
            "7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e900",
        ] {
            assert!(!is_entra_id(bad), "{bad}");
        }
        for good in [
            USER,
            "a:1XJ_kv-9",
            "19:abc@thread.tacv2",
            "19:meeting_M2I@thread.v2;messageid=1",
        ] {
            assert!(is_teams_id(good), "{good}");
        }
        for bad in [
            "alice",
            "alice@example.com",
            "29:1XJKJMvc5",
            "19:abc",
            "19:alice@example.com",
            "a:",
            "a:with space",
            "a:ünïcode",
        ] {
            assert!(!is_teams_id(bad), "{bad}");
        }
        assert!(Teams::new("not-a-guid", TENANT).is_err());
        assert!(Teams::new(APP, "contoso.onmicrosoft.com").is_err());
    }
}
