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
use crate::gateway::channels::{Headers, audit_refused};
use crate::gateway::error::GatewayError;
use crate::gateway::transport::jwt::{self, KeySet};
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
    let key = match jwt::bearer(&h) {
        Ok(token) => state.keys.key_for(token).await,
        Err(r) => Err(GatewayError::verify(CHANNEL, r)),
    };
    let event = key.and_then(|key| state.verifier.receive(&h, &body, &key, now));
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
            let trail = hooks.dispatcher().trail();
            match audit_refused(trail, state.verifier.channel(), &refused).await {
                Ok(()) => StatusCode::OK.into_response(),
                Err(e) => hooks.reject(CHANNEL, &e).await,
            }
        }
        Err(e) => hooks.reject(CHANNEL, &e).await,
    }
}
