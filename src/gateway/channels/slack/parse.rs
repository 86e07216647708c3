//! Slack: request signing (v0 HMAC-SHA256 with the app's signing secret) and
//! Events API payloads (`url_verification`, `event_callback` with `message` /
//! `app_mention` events).
//!
//! Signature: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:" ts ":" body)>`,
//! `X-Slack-Request-Timestamp: <unix seconds>` within ±5 minutes of now.
//! Replays inside the window are left to the transport's event-id dedupe.

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::gateway::channels::{
    Headers, REPLAY_WINDOW_SECS, check_body_size, check_hmac_sha256, check_timestamp, parse_json,
};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Attachment, Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "slack";
pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";

/// What a verified Slack request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackEvent {
    /// Answer with the challenge (only ever after `verify` succeeded).
    UrlVerification { challenge: String },
    Message {
        event_id: Option<String>,
        inbound: Inbound,
    },
    /// Authentic but not for us (other event types, edits, bots' messages).
    Ignored { reason: &'static str },
}

/// The Slack channel's verifier and parser.
pub struct Slack {
    /// The configured channel this parser serves (its name in `[channels]`,
    /// stamped on every message; the platform's name unless [`Self::named`]).
    channel: String,
    signing_secret: Zeroizing<Vec<u8>>,
    bot_user_id: String,
    window_secs: i64,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("bot_user_id", &self.bot_user_id)
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

impl Slack {
    /// Serves the channel configured as `channel` (messages carry that name,
    /// so its settings, users and replies are the ones that apply).
    pub fn named(mut self, channel: &str) -> Slack {
        self.channel = channel.to_string();
        self
    }

    /// `bot_user_id` is the app's bot user (`U...`), for mention detection.
    pub fn new(signing_secret: &[u8], bot_user_id: &str) -> Result<Slack, GatewayError> {
        if signing_secret.len() < 16 {
            return Err(GatewayError::VerifierKey {
                channel: CHANNEL,
                reason: "signing secret shorter than 16 bytes",
            });
        }
        Ok(Slack {
            channel: CHANNEL.to_string(),
            signing_secret: Zeroizing::new(signing_secret.to_vec()),
            bot_user_id: bot_user_id.to_string(),
            window_secs: REPLAY_WINDOW_SECS,
        })
    }

    /// Checks the signature headers against `body`; `now` in Unix seconds.
    pub fn verify(&self, headers: &Headers, body: &[u8], now: i64) -> Result<(), GatewayError> {
        self.verify_inner(headers, body, now)
            .map_err(|r| GatewayError::verify(CHANNEL, r))
    }

    fn verify_inner(&self, headers: &Headers, body: &[u8], now: i64) -> Result<(), AuthFailure> {
        check_body_size(body)?;
        let ts_text = headers.require(TIMESTAMP_HEADER)?;
        let sig_text = headers.require(SIGNATURE_HEADER)?;
        check_timestamp(TIMESTAMP_HEADER, ts_text, now, self.window_secs)?;
        let hex_sig = sig_text
            .strip_prefix("v0=")
            .ok_or(AuthFailure::MalformedHeader(SIGNATURE_HEADER))?;
        let mut given = [0u8; 32];
        hex::decode_to_slice(hex_sig, &mut given)
            .map_err(|_| AuthFailure::MalformedHeader(SIGNATURE_HEADER))?;
        check_hmac_sha256(
            &self.signing_secret,
            &[b"v0:", ts_text.as_bytes(), b":", body],
            &given,
        )
    }

    /// Verifies, then parses.
    pub fn receive(
        &self,
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<SlackEvent, GatewayError> {
        self.verify(headers, body, now)?;
        self.parse(body)
    }

    /// Parses an Events API body (call only after [`Slack::verify`]).
    pub fn parse(&self, body: &[u8]) -> Result<SlackEvent, GatewayError> {
        let env: Envelope = parse_json(CHANNEL, body)?;
        match env {
            Envelope::UrlVerification { challenge } => {
                if challenge.is_empty() || challenge.len() > 256 {
                    return Err(GatewayError::parse(
                        CHANNEL,
                        "challenge length out of range",
                    ));
                }
                Ok(SlackEvent::UrlVerification { challenge })
            }
            Envelope::EventCallback {
                team_id,
                event_id,
                event,
            } => self.message(team_id, event_id, *event),
            Envelope::Other => Ok(SlackEvent::Ignored {
                reason: "envelope type",
            }),
        }
    }

    fn message(
        &self,
        team_id: String,
        event_id: Option<String>,
        ev: Event,
    ) -> Result<SlackEvent, GatewayError> {
        let is_mention_event = match ev.kind.as_str() {
            "message" => false,
            "app_mention" => true,
            _ => {
                return Ok(SlackEvent::Ignored {
                    reason: "event type",
                });
            }
        };
        // Edits, deletions, joins and our own (or any bot's) posts are not prompts.
        if ev.subtype.as_deref().is_some_and(|s| s != "file_share") {
            return Ok(SlackEvent::Ignored {
                reason: "message subtype",
            });
        }
        if ev.bot_id.is_some() {
            return Ok(SlackEvent::Ignored {
                reason: "bot message",
            });
        }
        let user = ev
            .user
            .ok_or_else(|| GatewayError::parse(CHANNEL, "message event without user"))?;
        let channel = ev
            .channel
            .ok_or_else(|| GatewayError::parse(CHANNEL, "message event without channel"))?;
        let context = match ev.channel_type.as_deref() {
            Some("im") => Context::Dm,
            Some("channel" | "group" | "mpim") => Context::Group,
            None if is_mention_event => Context::Group,
            Some(_) | None => return Err(GatewayError::parse(CHANNEL, "unknown channel_type")),
        };
        // The workspace allowlist judges the sender's own team: in a Slack
        // Connect channel the envelope's team is ours while the sender comes
        // from another organization (`user_team`, or `user_profile.team`).
        // Two disagreeing claims are refused rather than one picked.
        let profile_team = ev.user_profile.and_then(|p| p.team);
        let account = match (ev.user_team, profile_team) {
            (Some(a), Some(b)) if a != b => {
                return Err(GatewayError::parse(
                    CHANNEL,
                    "user_team and user_profile.team disagree",
                ));
            }
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => team_id,
        };
        let text = ev.text.unwrap_or_default();
        let mentions_bot = is_mention_event
            || (!self.bot_user_id.is_empty() && text.contains(&format!("<@{}>", self.bot_user_id)));
        let attachments = ev
            .files
            .unwrap_or_default()
            .into_iter()
            .map(|f| Attachment {
                name: f.name.unwrap_or_else(|| "file".into()),
                mime: f.mimetype,
                size: f.size,
            })
            .collect();
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: Some(account),
            sender: user,
            sender_name: None,
            chat: channel,
            context,
            mentions_bot,
            text,
            attachments,
        })?;
        Ok(SlackEvent::Message { event_id, inbound })
    }
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Envelope {
    #[serde(rename = "url_verification")]
    UrlVerification { challenge: String },
    #[serde(rename = "event_callback")]
    EventCallback {
        team_id: String,
        event_id: Option<String>,
        event: Box<Event>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    subtype: Option<String>,
    user: Option<String>,
    bot_id: Option<String>,
    text: Option<String>,
    channel: Option<String>,
    channel_type: Option<String>,
    files: Option<Vec<File>>,
    /// The sender's own team (Slack Connect: another organization's).
    user_team: Option<String>,
    user_profile: Option<UserProfile>,
}

#[derive(Deserialize)]
struct UserProfile {
    team: Option<String>,
}

#[derive(Deserialize)]
struct File {
    name: Option<String>,
    mimetype: Option<String>,
    size: Option<u64>,
}
