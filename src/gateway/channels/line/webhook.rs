//! `POST /line/webhook`: the signature checked, then each event of the body
//! dispatched in order, its reply token handed to the client first
//! ([`Hooks::dispatch_all`] says the statuses).

use std::sync::Arc;

use axum::body::Bytes;
use axum::response::Response;
use axum::routing::MethodRouter;

use super::client::LineClient;
use super::parse::{CHANNEL, Line, LineEvent};
use crate::gateway::channels::Headers;
use crate::gateway::transport::webhook::{Hooks, post_route};

/// The route, verifying with `verifier` and keeping reply tokens in `client`.
pub fn route(hooks: Arc<Hooks>, verifier: Line, client: Arc<LineClient>) -> MethodRouter {
    post_route(hooks, CHANNEL, Arc::new((verifier, client)), handle)
}

async fn handle(
    hooks: Arc<Hooks>,
    state: Arc<(Line, Arc<LineClient>)>,
    h: Headers,
    body: Bytes,
) -> Response {
    let (verifier, client) = &*state;
    let now = hooks.dispatcher().clock().now();
    let events = match verifier.receive(&h, &body, now) {
        Ok(events) => events,
        Err(e) => return hooks.reject(CHANNEL, &e).await,
    };
    // Lazily: each reply token is handed over just before its message.
    let messages = events.into_iter().map(|event| match event? {
        LineEvent::Message {
            event_id,
            reply_token,
            inbound,
        } => {
            if let Some(token) = reply_token {
                client.note_reply_token(inbound.chat(), &token);
            }
            Ok(Some((event_id, *inbound)))
        }
        LineEvent::Ignored { .. } => Ok(None),
    });
    hooks.dispatch_all(CHANNEL, messages).await
}
