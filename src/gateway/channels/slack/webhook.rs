//! `POST /slack/events`: the signing secret and timestamp checked, the URL
//! verification challenge answered, then the event dispatched (see
//! [`crate::gateway::transport::webhook`] for the statuses).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::parse::{CHANNEL, Slack, SlackEvent};
use crate::gateway::channels::Headers;
use crate::gateway::transport::webhook::{Hooks, post_route};

/// The route, verifying with `verifier`.
pub fn route(hooks: Arc<Hooks>, verifier: Slack) -> MethodRouter {
    post_route(hooks, CHANNEL, Arc::new(verifier), handle)
}

async fn handle(hooks: Arc<Hooks>, verifier: Arc<Slack>, h: Headers, body: Bytes) -> Response {
    let now = hooks.dispatcher().clock().now();
    match verifier.receive(&h, &body, now) {
        Ok(SlackEvent::UrlVerification { challenge }) => {
            axum::Json(serde_json::json!({ "challenge": challenge })).into_response()
        }
        Ok(SlackEvent::Message { event_id, inbound }) => {
            hooks.dispatch(CHANNEL, event_id.as_deref(), inbound).await
        }
        Ok(SlackEvent::Ignored { .. }) => StatusCode::OK.into_response(),
        Err(e) => hooks.reject(CHANNEL, &e).await,
    }
}
