//! `POST /line/webhook`: the signature checked, then each event of the body
//! dispatched in order (its reply token handed to the client first). A body
//! whose every event was handled, ignored or seen before is answered 200; an
//! event that could not be handled (the trail unreachable) answers 500, so
//! LINE delivers the body again and the events already handled are dropped
//! as replays. Other statuses as in [`crate::gateway::transport::webhook`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::client::LineClient;
use super::parse::{CHANNEL, Line, LineEvent};
use crate::gateway::channels::Headers;
use crate::gateway::transport::webhook::{Hooks, post_route};

/// The route, verifying with `verifier` and keeping reply tokens in `client`.
pub fn route(hooks: Arc<Hooks>, verifier: Line, client: Arc<LineClient>) -> MethodRouter {
    post_route(hooks, CHANNEL, (verifier, client), handle)
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
    let dispatcher = hooks.dispatcher();
    for event in events {
        let done = match event {
            Ok(LineEvent::Message {
                event_id,
                reply_token,
                inbound,
            }) => {
                if let Some(token) = reply_token {
                    client.note_reply_token(inbound.chat(), &token);
                }
                dispatcher
                    .dispatch_and_answer(CHANNEL, Some(&event_id), *inbound)
                    .await
            }
            Ok(LineEvent::Ignored { .. }) => Ok(()),
            Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await,
        };
        if let Err(e) = done {
            return hooks.reject(CHANNEL, &e).await;
        }
    }
    StatusCode::OK.into_response()
}
