//! BlueBubbles: iMessage through the owner's BlueBubbles server on the local
//! network. Inbound by the server's webhook on the webhook listener
//! (unsigned: the URL carries a per-channel secret, compared in constant
//! time); answers by its REST API with the server password. The server URL
//! must be a loopback or local-network address (`crate::net::is_lan`); the
//! owner's own messages (`isFromMe`) are never prompts. Senders are handle
//! addresses (`+15551234567`, `ada@example.com`); DMs and groups follow the
//! channel's `dm` and `group` policies (pairing by default). Or, where the
//! Mac cannot reach the appliance, `bluebubbles-polling` asks the server for
//! new messages about once a second instead (`poll.rs`).

mod client;
mod parse;
mod poll;
mod webhook;

use std::sync::Arc;

pub use client::{BLUEBUBBLES_MAX_CHARS, BlueBubblesClient, QUERY_LIMIT};
pub use parse::{
    BlueBubbles, BlueBubblesEvent, MAX_EVENT_AGE_SECS, SECRET_PARAM, is_bluebubbles_id,
    is_chat_guid, is_handle,
};
pub(crate) use parse::{mentions, messages_attachments};
pub use poll::{Cursor, poll_once, run_polling};
pub use webhook::route as webhook_route;

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started, unused_secret};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

/// What the password secret holds.
const PASSWORD: &str = "the BlueBubbles server's password (as set in the server's settings)";
/// The ids allowlists and the like take, in a sentence.
const ID_SHAPE: &str = "a BlueBubbles handle (+15551234567 or a lowercase e-mail address) or chat guid (iMessage;-;… or iMessage;+;chat…); not a contact name";

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "bluebubbles",
            transports: &[
                TransportSpec {
                    name: "bluebubbles",
                    kind: TransportKind::Bluebubbles,
                    webhook_route: Some("/bluebubbles/webhook"),
                    // Self-hosted on the LAN: the owner's server is `api_base`.
                    api_base: "",
                    required: &["api_base", "password_secret", "signing_secret"],
                    optional: &["bot_user", "ca_file"],
                    secrets: &[
                        ("password_secret", PASSWORD),
                        (
                            "signing_secret",
                            "the webhook secret (32 to 256 of A-Z a-z 0-9 _ -): the ?secret= of the webhook URL given to the server",
                        ),
                    ],
                    id_shape: Some((is_bluebubbles_id, ID_SHAPE)),
                },
                TransportSpec {
                    name: "bluebubbles-polling",
                    kind: TransportKind::BluebubblesPolling,
                    webhook_route: None,
                    api_base: "",
                    required: &["api_base", "password_secret"],
                    optional: &["bot_user", "ca_file"],
                    secrets: &[("password_secret", PASSWORD)],
                    id_shape: Some((is_bluebubbles_id, ID_SHAPE)),
                },
            ],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        start.required("api_base", &t.api_base)?;
        let password = start.secret("password_secret", &t.password_secret)?;
        let bot = t.bot_user.clone().unwrap_or_default();
        let client = Arc::new(BlueBubblesClient::new(&start.http()?, &password)?);
        if start.spec.kind == TransportKind::BluebubblesPolling {
            // The webhook's secret is never asked for: no route is served.
            let parser = Arc::new(BlueBubbles::new(&unused_secret(), &bot)?.named(start.name));
            let (poller, dispatcher) = (Arc::clone(&client), Arc::clone(start.dispatcher));
            return Ok(Started {
                outbound: client,
                inbound: InboundPath::Loop(Box::new(move |pacer, stop| {
                    Box::pin(run_polling(poller, parser, dispatcher, pacer, stop))
                })),
            });
        }
        let secret = start.secret("signing_secret", &t.signing_secret)?;
        let verifier = BlueBubbles::new(secret.expose(), &bot)?.named(start.name);
        let route = webhook::route(Arc::clone(start.hooks), verifier);
        Ok(Started {
            outbound: client,
            inbound: InboundPath::Webhook(Box::new(route)),
        })
    }
}
