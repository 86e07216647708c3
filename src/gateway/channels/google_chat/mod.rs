//! Google Chat: a Chat app reached at its HTTP endpoint on the webhook
//! listener (Google-signed bearer JWTs) or by pulling a Pub/Sub subscription
//! (no inbound port); answers by the Chat API as the app's service account.
//! Only senders of the owner's Workspace organization are served.

mod account;
mod client;
mod parse;
mod pubsub;
mod webhook;

use std::sync::Arc;

pub use account::{CHAT_SCOPE, GOOGLE_TOKEN_URL, PUBSUB_SCOPE, ServiceAccountKey, token_source};
pub use client::{GOOGLE_CHAT_API_BASE, GOOGLE_CHAT_MAX_BYTES, GoogleChatClient};
pub use parse::{
    ChatEvent, GoogleChat, ISSUER, MAX_PUBSUB_EVENT_AGE_SECS, is_google_chat_id,
    is_google_chat_space, is_google_chat_user_id,
};
pub use pubsub::{
    MAX_MESSAGES_PER_PULL, PUBSUB_API_BASE, PubSubClient, PubSubInbound, PullStats, Pulled,
    is_subscription, pull_once, run_pubsub,
};
pub use webhook::route as webhook_route;

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;
use crate::gateway::transport::HttpConfig;
use crate::gateway::transport::jwt::{KeySet, KeySource};

/// Where Google publishes the keys that sign the HTTP endpoint's tokens.
pub const GOOGLE_CHAT_KEYS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/chat@system.gserviceaccount.com";

const KEY: (&str, &str) = (
    "token_secret",
    "the service account's JSON key (client_email, private_key, token_uri)",
);
const ID_SHAPE: (fn(&str) -> bool, &str) = (
    is_google_chat_id,
    "a Google Chat user id (users/ and digits) or space (spaces/ and its id)",
);

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "google-chat",
            transports: &[
                TransportSpec {
                    name: "google-chat",
                    kind: TransportKind::GoogleChat,
                    webhook_route: Some("/google-chat/events"),
                    api_base: GOOGLE_CHAT_API_BASE,
                    required: &["token_secret", "project_number", "organization_id"],
                    optional: &["bot_user", "keys_url", "token_url", "api_base", "ca_file"],
                    secrets: &[KEY],
                    id_shape: Some(ID_SHAPE),
                },
                TransportSpec {
                    name: "google-chat-pubsub",
                    kind: TransportKind::GoogleChatPubsub,
                    webhook_route: None,
                    api_base: GOOGLE_CHAT_API_BASE,
                    required: &["token_secret", "subscription", "organization_id"],
                    optional: &[
                        "bot_user",
                        "pubsub_base",
                        "token_url",
                        "api_base",
                        "ca_file",
                    ],
                    secrets: &[KEY],
                    id_shape: Some(ID_SHAPE),
                },
            ],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let secret = start.required("token_secret", &t.token_secret)?;
        let organization = start.required("organization_id", &t.organization_id)?;
        // Read once now, so a missing or broken key shows when the channel starts.
        let key = account::read_key(&**start.secrets, secret)?;
        let token_url = t
            .token_url
            .clone()
            .or(key.token_uri)
            .unwrap_or_else(|| GOOGLE_TOKEN_URL.to_string());
        let http = start.http()?;
        let roots = http.extra_root_pem.as_deref();
        let chat_tokens = token_source(start.secrets, secret, CHAT_SCOPE, &token_url, roots)?;
        let client = Arc::new(GoogleChatClient::new(&http, chat_tokens)?);
        let bot = t.bot_user.as_deref();
        let inbound = if t.kind == TransportKind::GoogleChatPubsub {
            let subscription = start.required("subscription", &t.subscription)?;
            let mut cfg = HttpConfig::new(t.pubsub_base.as_deref().unwrap_or(PUBSUB_API_BASE));
            cfg.extra_root_pem = http.extra_root_pem.clone();
            let tokens = token_source(start.secrets, secret, PUBSUB_SCOPE, &token_url, roots)?;
            let pulled = Arc::new(PubSubInbound {
                pubsub: PubSubClient::new(&cfg, subscription, tokens)?,
                parser: GoogleChat::pubsub(organization)?
                    .named(start.name)
                    .bot_user(bot)?,
                dispatcher: Arc::clone(start.dispatcher),
                chat: Arc::clone(&client),
            });
            InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_pubsub(pulled, pacer, stop))
            }))
        } else {
            let project = start.required("project_number", &t.project_number)?;
            let verifier = GoogleChat::endpoint(project, organization)?
                .named(start.name)
                .bot_user(bot)?;
            let keys_url = t.keys_url.as_deref().unwrap_or(GOOGLE_CHAT_KEYS_URL);
            let keys = KeySet::new(parse::CHANNEL, KeySource::Jwks(keys_url.into()), roots)?;
            let route =
                webhook::route(Arc::clone(start.hooks), verifier, keys, Arc::clone(&client));
            InboundPath::Webhook(Box::new(route))
        };
        Ok(Started {
            outbound: client,
            inbound,
        })
    }
}
