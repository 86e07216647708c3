//! `POST /discord/interactions`: the Ed25519 signature and timestamp checked,
//! `PING` answered, then the command dispatched. The first piece of the reply
//! is the interaction's response (Discord's protocol: the answer travels in
//! the HTTP response); the pieces past it go out through the chat's outbound
//! path. Statuses as in [`crate::gateway::transport::webhook`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::parse::{CHANNEL, Discord, DiscordInteraction};
use crate::gateway::channels::Headers;
use crate::gateway::chunk::{DISCORD_MAX_CHARS, chunk_text};
use crate::gateway::dispatch::Dispatched;
use crate::gateway::transport::webhook::{Hooks, post_route, replay_response};

/// The route, verifying with `verifier`.
pub fn route(hooks: Arc<Hooks>, verifier: Discord) -> MethodRouter {
    post_route(hooks, CHANNEL, Arc::new(verifier), handle)
}

/// A deferred, ephemeral acknowledgement that is never followed up.
fn deferred() -> Response {
    axum::Json(serde_json::json!({ "type": 5, "data": { "flags": 64 } })).into_response()
}

async fn handle(hooks: Arc<Hooks>, verifier: Arc<Discord>, h: Headers, body: Bytes) -> Response {
    let now = hooks.dispatcher().clock().now();
    let (interaction_id, inbound) = match verifier.receive(&h, &body, now) {
        Ok(DiscordInteraction::Ping) => {
            return axum::Json(serde_json::json!({ "type": 1 })).into_response();
        }
        Ok(DiscordInteraction::Command {
            interaction_id,
            inbound,
            ..
        }) => (interaction_id, *inbound),
        Ok(DiscordInteraction::Ignored { .. }) => return deferred(),
        Err(e) => return hooks.reject(CHANNEL, &e).await,
    };
    let (channel, chat) = (inbound.channel().to_string(), inbound.chat().to_string());
    match hooks
        .dispatcher()
        .dispatch(Some(&interaction_id), inbound)
        .await
    {
        Ok(Dispatched::Replay) => replay_response(),
        Ok(Dispatched::Handled { reply: None, .. }) => deferred(),
        Ok(Dispatched::Handled {
            reply: Some(text), ..
        }) => {
            let mut parts = chunk_text(&text, DISCORD_MAX_CHARS).into_iter();
            let first = parts.next().unwrap_or_default();
            let rest: Vec<String> = parts.collect();
            if !rest.is_empty() {
                hooks
                    .dispatcher()
                    .replies()
                    .deliver_later(&channel, &chat, rest);
            }
            axum::Json(serde_json::json!({
                "type": 4,
                "data": { "content": first, "allowed_mentions": { "parse": [] } },
            }))
            .into_response()
        }
        Err(e) => hooks.reject(CHANNEL, &e).await,
    }
}
