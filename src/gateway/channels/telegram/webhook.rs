//! `POST /telegram/webhook`: the secret token checked, then the update
//! dispatched (see [`crate::gateway::transport::webhook`] for the statuses).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::parse::{CHANNEL, Telegram, TelegramUpdate};
use crate::gateway::channels::Headers;
use crate::gateway::transport::webhook::{Hooks, post_route};

/// The route, verifying with `verifier`.
pub fn route(hooks: Arc<Hooks>, verifier: Telegram) -> MethodRouter {
    post_route(hooks, CHANNEL, Arc::new(verifier), handle)
}

async fn handle(hooks: Arc<Hooks>, verifier: Arc<Telegram>, h: Headers, body: Bytes) -> Response {
    match verifier.receive(&h, &body) {
        Ok(TelegramUpdate::Message { update_id, inbound }) => {
            hooks
                .dispatch(CHANNEL, Some(&update_id.to_string()), inbound)
                .await
        }
        Ok(TelegramUpdate::Ignored { .. }) => StatusCode::OK.into_response(),
        Err(e) => hooks.reject(CHANNEL, &e).await,
    }
}
