//! Discord: interaction webhooks signed with Ed25519 (`X-Signature-Ed25519`, hex,
//! over `X-Signature-Timestamp ‖ body`, with the application's public key),
//! a replay window, the application id check, and interaction → [`Inbound`].
//!
//! Verification uses `verify_strict` (rejects non-canonical and small-order
//! inputs). The inputs are public, so timing does not leak a secret; the
//! signature comparison inside ed25519-dalek does not branch on secret data.
//! Guild restrictions are the policy engine's `accounts` (alias `guilds`).

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;

use crate::gateway::channels::{
    Headers, REPLAY_WINDOW_SECS, Redacted, check_body_size, check_timestamp, parse_json,
};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::{Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "discord";
pub const SIGNATURE_HEADER: &str = "X-Signature-Ed25519";
pub const TIMESTAMP_HEADER: &str = "X-Signature-Timestamp";

/// What a verified interaction asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscordInteraction {
    /// Answer `{"type": 1}`.
    Ping,
    /// A slash command: `/pair code:X` becomes the text `/pair X`; other
    /// commands' string options are joined as the text.
    Command {
        interaction_id: String,
        /// The response credential (valid ~15 min); never logged.
        token: Redacted,
        inbound: Box<Inbound>,
    },
    Ignored {
        reason: &'static str,
    },
}

/// The Discord channel's verifier and parser.
#[derive(Debug)]
pub struct Discord {
    /// The configured channel this parser serves (its name in `[channels]`,
    /// stamped on every message; the platform's name unless [`Self::named`]).
    channel: String,
    key: VerifyingKey,
    application_id: String,
    window_secs: i64,
}

impl Discord {
    /// Serves the channel configured as `channel` (messages carry that name,
    /// so its settings, users and replies are the ones that apply).
    pub fn named(mut self, channel: &str) -> Discord {
        self.channel = channel.to_string();
        self
    }

    /// `public_key_hex`: the application's 32-byte Ed25519 public key in hex.
    pub fn new(public_key_hex: &str, application_id: &str) -> Result<Discord, GatewayError> {
        let bad = |reason| GatewayError::VerifierKey {
            channel: CHANNEL,
            reason,
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(public_key_hex.trim(), &mut bytes)
            .map_err(|_| bad("public key is not 64 hex digits"))?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| bad("public key is not a curve point"))?;
        if key.is_weak() {
            return Err(bad("public key has small order"));
        }
        if application_id.is_empty() || !application_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("application id must be a decimal snowflake"));
        }
        Ok(Discord {
            channel: CHANNEL.to_string(),
            key,
            application_id: application_id.to_string(),
            window_secs: REPLAY_WINDOW_SECS,
        })
    }

    pub fn verify(&self, headers: &Headers, body: &[u8], now: i64) -> Result<(), GatewayError> {
        self.verify_inner(headers, body, now)
            .map_err(|r| GatewayError::verify(CHANNEL, r))
    }

    fn verify_inner(&self, headers: &Headers, body: &[u8], now: i64) -> Result<(), AuthFailure> {
        check_body_size(body)?;
        let sig_hex = headers.require(SIGNATURE_HEADER)?;
        let ts = headers.require(TIMESTAMP_HEADER)?;
        check_timestamp(TIMESTAMP_HEADER, ts, now, self.window_secs)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(sig_hex, &mut sig)
            .map_err(|_| AuthFailure::MalformedHeader(SIGNATURE_HEADER))?;
        let sig = Signature::from_bytes(&sig);
        let mut signed = Vec::with_capacity(ts.len() + body.len());
        signed.extend_from_slice(ts.as_bytes());
        signed.extend_from_slice(body);
        self.key
            .verify_strict(&signed, &sig)
            .map_err(|_| AuthFailure::BadSignature)
    }

    pub fn receive(
        &self,
        headers: &Headers,
        body: &[u8],
        now: i64,
    ) -> Result<DiscordInteraction, GatewayError> {
        self.verify(headers, body, now)?;
        self.parse(body)
    }

    /// Parses an interaction (call only after [`Discord::verify`]); refuses one
    /// addressed to another application.
    pub fn parse(&self, body: &[u8]) -> Result<DiscordInteraction, GatewayError> {
        let ia: Interaction = parse_json(CHANNEL, body)?;
        if ia.application_id != self.application_id {
            return Err(GatewayError::ApplicationMismatch {
                channel: CHANNEL,
                got: ia.application_id.chars().take(32).collect(),
            });
        }
        match ia.kind {
            1 => return Ok(DiscordInteraction::Ping),
            2 => {}
            _ => {
                return Ok(DiscordInteraction::Ignored {
                    reason: "interaction type",
                });
            }
        }
        let data = ia
            .data
            .ok_or_else(|| GatewayError::parse(CHANNEL, "command without data"))?;
        let channel_id = ia
            .channel_id
            .ok_or_else(|| GatewayError::parse(CHANNEL, "command without channel_id"))?;
        let token = ia
            .token
            .ok_or_else(|| GatewayError::parse(CHANNEL, "command without token"))?;
        // The interaction's `context` says where it happened (0 guild, 1 the
        // bot's DM, 2 a private channel or group DM: several people, so group
        // policy). Without it, the guild id decides as before.
        let in_guild = ia.guild_id.is_some();
        let context = match (ia.context, in_guild) {
            (Some(INTERACTION_CONTEXT_GUILD), true) | (None, true) => Context::Group,
            (Some(INTERACTION_CONTEXT_BOT_DM), false) | (None, false) => Context::Dm,
            (Some(INTERACTION_CONTEXT_PRIVATE_CHANNEL), false) => Context::Group,
            (Some(INTERACTION_CONTEXT_GUILD | INTERACTION_CONTEXT_BOT_DM), _)
            | (Some(INTERACTION_CONTEXT_PRIVATE_CHANNEL), true) => {
                return Err(GatewayError::parse(
                    CHANNEL,
                    "interaction context disagrees with guild_id",
                ));
            }
            (Some(_), _) => {
                return Err(GatewayError::parse(CHANNEL, "unknown interaction context"));
            }
        };
        let user = match (in_guild, ia.member, ia.user) {
            (true, Some(m), _) => m.user,
            (false, _, Some(u)) => u,
            _ => return Err(GatewayError::parse(CHANNEL, "command without member/user")),
        };
        let strings: Vec<&str> = data
            .options
            .iter()
            .flatten()
            .filter(|o| o.kind == 3)
            .filter_map(|o| o.value.as_ref().and_then(|v| v.as_str()))
            .collect();
        let text = if data.name == "pair" {
            format!("/pair {}", strings.join(" "))
        } else {
            strings.join(" ")
        };
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: ia.guild_id,
            sender: user.id,
            sender_name: user.global_name.or(user.username),
            chat: channel_id,
            context,
            // A slash command is addressed to the bot by construction.
            mentions_bot: true,
            text,
            attachments: Vec::new(),
        })?;
        Ok(DiscordInteraction::Command {
            interaction_id: ia.id,
            token: token.into(),
            inbound: Box::new(inbound),
        })
    }
}

const INTERACTION_CONTEXT_GUILD: u8 = 0;
const INTERACTION_CONTEXT_BOT_DM: u8 = 1;
const INTERACTION_CONTEXT_PRIVATE_CHANNEL: u8 = 2;

#[derive(Deserialize)]
struct Interaction {
    id: String,
    application_id: String,
    #[serde(rename = "type")]
    kind: u8,
    token: Option<String>,
    data: Option<CommandData>,
    guild_id: Option<String>,
    channel_id: Option<String>,
    /// Interaction context type: 0 guild, 1 bot DM, 2 private channel.
    context: Option<u8>,
    member: Option<Member>,
    user: Option<User>,
}

#[derive(Deserialize)]
struct CommandData {
    name: String,
    options: Option<Vec<CommandOption>>,
}

#[derive(Deserialize)]
struct CommandOption {
    #[serde(rename = "type")]
    kind: u8,
    value: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Member {
    user: User,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    global_name: Option<String>,
}
