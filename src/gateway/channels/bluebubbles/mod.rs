//! BlueBubbles: iMessage through the owner's BlueBubbles server on the local
//! network. Inbound by the server's webhook on the webhook listener
//! (unsigned: the URL carries a per-channel secret, compared in constant
//! time); answers by its REST API with the server password. The server URL
//! must be a loopback or local-network address (`crate::net::is_lan`); the
//! owner's own messages (`isFromMe`) are never prompts. Senders are handle
//! addresses (`+15551234567`, `ada@example.com`); DMs and groups follow the
//! channel's `dm` and `group` policies (pairing by default).

mod client;
mod parse;
mod webhook;

use std::sync::Arc;

pub use client::{BLUEBUBBLES_MAX_CHARS, BlueBubblesClient};
pub use parse::{
    BlueBubbles, BlueBubblesEvent, MAX_EVENT_AGE_SECS, SECRET_PARAM, is_bluebubbles_id,
    is_chat_guid, is_handle,
};
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
            name: "bluebubbles",
            transports: &[TransportSpec {
                name: "bluebubbles",
                kind: TransportKind::Bluebubbles,
                webhook_route: Some("/bluebubbles/webhook"),
                // Self-hosted on the LAN: the owner's server is `api_base`.
                api_base: "",
                required: &["api_base", "password_secret", "signing_secret"],
                optional: &["bot_user", "ca_file"],
                secrets: &[
                    (
                        "password_secret",
                        "the BlueBubbles server's password (as set in the server's settings)",
                    ),
                    (
                        "signing_secret",
                        "the webhook secret (32 to 256 of A-Z a-z 0-9 _ -): the ?secret= of the webhook URL given to the server",
                    ),
                ],
                id_shape: Some((
                    is_bluebubbles_id,
                    "a BlueBubbles handle (+15551234567 or a lowercase e-mail address) or chat guid (iMessage;-;… or iMessage;+;chat…); not a contact name",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        start.required("api_base", &t.api_base)?;
        let password = start.secret("password_secret", &t.password_secret)?;
        let secret = start.secret("signing_secret", &t.signing_secret)?;
        let bot = t.bot_user.clone().unwrap_or_default();
        let verifier = BlueBubbles::new(secret.expose(), &bot)?.named(start.name);
        let client = Arc::new(BlueBubblesClient::new(&start.http()?, &password)?);
        let route = webhook::route(Arc::clone(start.hooks), verifier);
        Ok(Started {
            outbound: client,
            inbound: InboundPath::Webhook(Box::new(route)),
        })
    }
}
