//! WhatsApp Business (Cloud API): Meta's webhook on the webhook listener
//! (the `GET` handshake with the verify token, every body signed with the app
//! secret), answers by the Graph API within the 24-hour service window.

mod client;
mod parse;
mod webhook;

use std::sync::Arc;

pub use client::{
    OUTSIDE_WINDOW, SERVICE_WINDOW, WHATSAPP_API_BASE, WHATSAPP_MAX_CHARS, WhatsAppClient,
};
pub use parse::{
    MAX_MESSAGE_AGE_SECS, MAX_MESSAGES, SIGNATURE_HEADER, WhatsApp, WhatsAppEvent, is_whatsapp_id,
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
            name: "whatsapp",
            transports: &[TransportSpec {
                name: "whatsapp-cloud",
                kind: TransportKind::WhatsappCloud,
                webhook_route: Some("/whatsapp/webhook"),
                api_base: WHATSAPP_API_BASE,
                required: &[
                    "token_secret",
                    "signing_secret",
                    "verify_token_secret",
                    "phone_number_id",
                ],
                optional: &["api_base", "ca_file"],
                secrets: &[
                    ("token_secret", "the system user's access token"),
                    (
                        "signing_secret",
                        "the Meta app's secret (signs every webhook)",
                    ),
                    (
                        "verify_token_secret",
                        "the webhook's verify token (the subscription handshake)",
                    ),
                ],
                id_shape: Some((
                    is_whatsapp_id,
                    "a WhatsApp id (a phone number's digits, or a business-scoped id such as US.1349...)",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let token = start.secret("token_secret", &t.token_secret)?;
        let secret = start.secret("signing_secret", &t.signing_secret)?;
        let verify = start.secret("verify_token_secret", &t.verify_token_secret)?;
        let number = start.required("phone_number_id", &t.phone_number_id)?;
        let verifier =
            WhatsApp::new(secret.expose().as_bytes(), verify.expose(), number)?.named(start.name);
        let client = Arc::new(WhatsAppClient::new(&start.http()?, &token, number)?);
        let route = webhook::route(Arc::clone(start.hooks), verifier, Arc::clone(&client));
        Ok(Started {
            outbound: client,
            inbound: InboundPath::Webhook(Box::new(route)),
        })
    }
}
