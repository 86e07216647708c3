//! `POST /bluebubbles/webhook?secret=…`: the URL's secret checked, then the
//! event dispatched ([`Hooks::dispatch`] says the statuses); an event that
//! is no prompt (the owner's own message, a tapback, a typing indicator) is
//! answered 200 and acted on no further.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::parse::{BlueBubbles, BlueBubblesEvent, CHANNEL};
use crate::gateway::channels::Headers;
use crate::gateway::transport::webhook::{Hooks, post_route_with_query};

/// The route, verifying with `verifier`.
pub fn route(hooks: Arc<Hooks>, verifier: BlueBubbles) -> MethodRouter {
    post_route_with_query(hooks, CHANNEL, Arc::new(verifier), handle)
}

async fn handle(
    hooks: Arc<Hooks>,
    verifier: Arc<BlueBubbles>,
    query: Option<String>,
    _headers: Headers,
    body: Bytes,
) -> Response {
    let now = hooks.dispatcher().clock().now();
    match verifier.receive(query.as_deref(), &body, now) {
        Ok(BlueBubblesEvent::Message { guid, inbound }) => {
            hooks.dispatch(CHANNEL, Some(&guid), *inbound).await
        }
        Ok(BlueBubblesEvent::Ignored { .. }) => StatusCode::OK.into_response(),
        Err(e) => hooks.reject(CHANNEL, &e).await,
    }
}
