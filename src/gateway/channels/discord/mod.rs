//! Discord: the Gateway WebSocket (no inbound port) or the interactions
//! endpoint on the webhook listener (Ed25519), replies by REST.

mod client;
pub(crate) mod gateway;
mod interactions;
mod parse;

use std::sync::Arc;

pub use client::{DISCORD_API_BASE, DiscordClient};
pub use gateway::{
    DEFAULT_INTENTS, DISCORD_GATEWAY_URL, DiscordGateway, GatewayConfig, GatewayEnd,
    parse_message_create, run_gateway,
};
pub use interactions::route as interactions_route;
pub use parse::{Discord, DiscordInteraction, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

const TOKEN: (&str, &str) = ("token_secret", "the bot token");

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "discord",
            transports: &[
                TransportSpec {
                    name: "discord-gateway",
                    kind: TransportKind::DiscordGateway,
                    webhook_route: None,
                    api_base: DISCORD_API_BASE,
                    required: &["token_secret"],
                    optional: &["bot_user", "api_base", "ca_file"],
                    secrets: &[TOKEN],
                    id_shape: None,
                },
                TransportSpec {
                    name: "discord-interactions",
                    kind: TransportKind::DiscordInteractions,
                    webhook_route: Some("/discord/interactions"),
                    api_base: DISCORD_API_BASE,
                    required: &["token_secret", "application_id", "public_key"],
                    optional: &["bot_user", "api_base", "ca_file"],
                    secrets: &[TOKEN],
                    id_shape: None,
                },
            ],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let token = start.secret("token_secret", &t.token_secret)?;
        let http = start.http()?;
        let client = Arc::new(DiscordClient::new(&http, &token)?);
        let inbound = if t.kind == TransportKind::DiscordGateway {
            // A test's fake serves the Gateway where its REST API is.
            let url = t
                .api_base
                .as_deref()
                .map(|b| b.replacen("https://", "wss://", 1))
                .unwrap_or_else(|| DISCORD_GATEWAY_URL.into());
            let mut cfg = GatewayConfig::new(url);
            cfg.extra_root_pem = http.extra_root_pem.clone();
            cfg.channel = start.name.to_string();
            let dispatcher = Arc::clone(start.dispatcher);
            InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_gateway(
                    DiscordGateway::new(cfg, token),
                    dispatcher,
                    pacer,
                    stop,
                ))
            }))
        } else {
            let key = start.required("public_key", &t.public_key)?;
            let app_id = start.required("application_id", &t.application_id)?;
            let verifier = Discord::new(key, app_id)?.named(start.name);
            InboundPath::Webhook(Box::new(interactions::route(
                Arc::clone(start.hooks),
                verifier,
            )))
        };
        Ok(Started {
            outbound: client,
            inbound,
        })
    }
}
