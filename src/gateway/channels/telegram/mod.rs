//! Telegram: the Bot API by long polling (`getUpdates`) or by webhook (the
//! secret-token header), replies by `sendMessage`.

mod client;
mod parse;
mod webhook;

use std::sync::Arc;

pub use client::{PollStats, TELEGRAM_API_BASE, TelegramClient, poll_once, run_polling};
pub use parse::{SECRET_HEADER, Telegram, TelegramUpdate};
pub use webhook::route as webhook_route;

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started, unused_secret};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

/// Seconds one long poll waits for updates.
const POLL_TIMEOUT_SECS: u32 = 25;

const TOKEN: (&str, &str) = ("token_secret", "the bot token from @BotFather");

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "telegram",
            transports: &[
                TransportSpec {
                    name: "telegram-polling",
                    kind: TransportKind::TelegramPolling,
                    webhook_route: None,
                    api_base: TELEGRAM_API_BASE,
                    required: &["token_secret"],
                    optional: &["bot_user", "api_base", "ca_file"],
                    secrets: &[TOKEN],
                    id_shape: None,
                },
                TransportSpec {
                    name: "telegram-webhook",
                    kind: TransportKind::TelegramWebhook,
                    webhook_route: Some("/telegram/webhook"),
                    api_base: TELEGRAM_API_BASE,
                    required: &["token_secret", "signing_secret"],
                    optional: &["bot_user", "api_base", "ca_file"],
                    secrets: &[
                        TOKEN,
                        (
                            "signing_secret",
                            "the webhook's secret token (X-Telegram-Bot-Api-Secret-Token)",
                        ),
                    ],
                    id_shape: None,
                },
            ],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let token = start.secret("token_secret", &t.token_secret)?;
        // The bot's own id is the token's first part (for mention detection).
        let bot_id = token
            .expose()
            .split_once(':')
            .and_then(|(id, _)| id.parse::<i64>().ok())
            .unwrap_or(0);
        let client = Arc::new(TelegramClient::new(&start.http()?, token)?);
        let bot = t.bot_user.clone().unwrap_or_default();
        let inbound = if t.kind == TransportKind::TelegramPolling {
            let parser = Arc::new(Telegram::new(&unused_secret(), bot_id, &bot)?.named(start.name));
            let (client, dispatcher) = (Arc::clone(&client), Arc::clone(start.dispatcher));
            InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_polling(
                    client,
                    parser,
                    dispatcher,
                    POLL_TIMEOUT_SECS,
                    pacer,
                    stop,
                ))
            }))
        } else {
            let secret = start.secret("signing_secret", &t.signing_secret)?;
            let verifier = Telegram::new(secret.expose(), bot_id, &bot)?.named(start.name);
            InboundPath::Webhook(Box::new(webhook::route(Arc::clone(start.hooks), verifier)))
        };
        Ok(Started {
            outbound: client,
            inbound,
        })
    }
}
