//! `POST /teams/messages`: the bearer token's key looked up (fetched when
//! new), the request verified and parsed, then the activity dispatched
//! ([`Hooks::dispatch`] says the statuses); the conversation's service URL
//! is noted for its answers first. Another tenant's activity is audited and
//! answered 200 with nothing done.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::client::TeamsClient;
use super::parse::{CHANNEL, Teams, TeamsEvent};
use crate::gateway::channels::{Headers, answer_refused};
use crate::gateway::transport::jwt::KeySet;
use crate::gateway::transport::webhook::{Hooks, post_route};

/// What the route holds.
#[derive(Debug)]
pub struct Route {
    pub verifier: Teams,
    pub keys: KeySet,
    pub client: Arc<TeamsClient>,
}

/// The route.
pub fn route(hooks: Arc<Hooks>, state: Route) -> MethodRouter {
    post_route(hooks, CHANNEL, Arc::new(state), handle)
}

async fn handle(hooks: Arc<Hooks>, state: Arc<Route>, h: Headers, body: Bytes) -> Response {
    let now = hooks.dispatcher().clock().now();
    let event = match state.keys.key_for_request(&h).await {
        Ok(key) => state.verifier.receive(&h, &body, &key, now),
        Err(e) => Err(e),
    };
    match event {
        Ok(TeamsEvent::Message {
            event_id,
            service_url,
            inbound,
        }) => {
            state.client.note_inbound(inbound.chat(), &service_url);
            hooks.dispatch(CHANNEL, Some(&event_id), *inbound).await
        }
        Ok(TeamsEvent::Ignored { .. }) => StatusCode::OK.into_response(),
        Ok(TeamsEvent::Refused(refused)) => {
            answer_refused(&hooks, CHANNEL, state.verifier.channel(), &refused).await
        }
        Err(e) => hooks.reject(CHANNEL, &e).await,
    }
}
