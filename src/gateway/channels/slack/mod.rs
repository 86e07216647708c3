//! Slack: the Events API on the webhook listener (signing secret) or Socket
//! Mode (an app-level token, no inbound port), replies by `chat.postMessage`.

mod client;
mod parse;
pub(crate) mod socket;
mod webhook;

use std::sync::Arc;

pub use client::{SLACK_API_BASE, SlackClient};
pub use parse::{SIGNATURE_HEADER, Slack, SlackEvent, TIMESTAMP_HEADER};
pub use socket::{SessionEnd, SocketModeClient, run_socket_mode};
pub use webhook::route as webhook_route;

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Redacted, Start, Started, unused_secret};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

const TOKEN: (&str, &str) = ("token_secret", "the bot token (xoxb-)");

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "slack",
            transports: &[
                TransportSpec {
                    name: "slack-events",
                    kind: TransportKind::SlackEvents,
                    webhook_route: Some("/slack/events"),
                    api_base: SLACK_API_BASE,
                    required: &["token_secret", "signing_secret"],
                    optional: &["bot_user", "api_base", "ca_file"],
                    secrets: &[TOKEN, ("signing_secret", "the app's signing secret")],
                    id_shape: None,
                },
                TransportSpec {
                    name: "slack-socket",
                    kind: TransportKind::SlackSocket,
                    webhook_route: None,
                    api_base: SLACK_API_BASE,
                    required: &["token_secret", "app_token_secret"],
                    optional: &["bot_user", "signing_secret", "api_base", "ca_file"],
                    secrets: &[
                        TOKEN,
                        (
                            "app_token_secret",
                            "the app-level token (xapp-) with connections:write",
                        ),
                        (
                            "signing_secret",
                            "the app's signing secret (not used by Socket Mode)",
                        ),
                    ],
                    id_shape: None,
                },
            ],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let socket_mode = t.kind == TransportKind::SlackSocket;
        let token = start.secret("token_secret", &t.token_secret)?;
        let signing = match &t.signing_secret {
            Some(_) => start.secret("signing_secret", &t.signing_secret)?,
            // Socket Mode needs no signing secret; the parser still wants one.
            None if socket_mode => Redacted::from(unused_secret()),
            None => start.secret("signing_secret", &None)?,
        };
        let bot = t.bot_user.clone().unwrap_or_default();
        let parser = Slack::new(signing.expose().as_bytes(), &bot)?.named(start.name);
        let http = start.http()?;
        let client = Arc::new(SlackClient::new(&http, &token)?);
        let inbound = if socket_mode {
            let app_token = start.secret("app_token_secret", &t.app_token_secret)?;
            let socket = Arc::new(SocketModeClient::new(&http, &app_token)?);
            let dispatcher = Arc::clone(start.dispatcher);
            InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_socket_mode(
                    socket,
                    Arc::new(parser),
                    dispatcher,
                    pacer,
                    stop,
                ))
            }))
        } else {
            InboundPath::Webhook(Box::new(webhook::route(Arc::clone(start.hooks), parser)))
        };
        Ok(Started {
            outbound: client,
            inbound,
        })
    }
}
