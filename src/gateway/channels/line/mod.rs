//! LINE: the Messaging API webhook on the webhook listener (the channel
//! secret signs every body), replies by reply token, else push.

mod client;
mod parse;
mod webhook;

use std::sync::Arc;

pub use client::{LINE_API_BASE, LINE_MAX_CHARS, LineClient, MESSAGES_PER_REQUEST};
pub use parse::{Line, LineEvent, MAX_EVENT_AGE_SECS, MAX_EVENTS, SIGNATURE_HEADER, is_line_id};
pub use webhook::route as webhook_route;

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "line",
            transports: &[TransportSpec {
                name: "line",
                kind: TransportKind::Line,
                webhook_route: Some("/line/webhook"),
                api_base: LINE_API_BASE,
                required: &["token_secret", "signing_secret"],
                optional: &["bot_user", "api_base", "ca_file"],
                secrets: &[
                    ("token_secret", "the channel access token"),
                    ("signing_secret", "the channel secret (signs every webhook)"),
                ],
                id_shape: Some((
                    is_line_id,
                    "a LINE user, group or room id (U, C or R and 32 hex digits)",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let token = start.secret("token_secret", &t.token_secret)?;
        let secret = start.secret("signing_secret", &t.signing_secret)?;
        let bot = t.bot_user.clone().unwrap_or_default();
        let verifier = Line::new(secret.expose().as_bytes(), &bot)?.named(start.name);
        let client = Arc::new(LineClient::new(&start.http()?, &token)?);
        let route = webhook::route(Arc::clone(start.hooks), verifier, Arc::clone(&client));
        Ok(Started {
            outbound: client,
            inbound: InboundPath::Webhook(Box::new(route)),
        })
    }
}
