//! `POST /google-chat/events`: the Chat app's HTTP endpoint. The bearer
//! token's key is found in Google's published set, the token checked, then
//! the event parsed and dispatched (its thread handed to the client first).
//! A verification failure is 401 (audited, nothing changed); an authentic
//! event refused (another organization, outside the time window) is audited
//! and answered 200 with nothing done, as Google would only send it again.
//! Success answers `{}`: Chat reads the body as the app's (empty) reply; the
//! answer itself goes out through the Chat API.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::client::GoogleChatClient;
use super::parse::{CHANNEL, ChatEvent, GoogleChat};
use crate::gateway::channels::Headers;
use crate::gateway::channels::answer_refused;
use crate::gateway::error::GatewayError;
use crate::gateway::transport::jwt::KeySet;
use crate::gateway::transport::webhook::{Hooks, post_route};

/// What the route holds: the verifier, Google's keys, the client (threads).
struct Endpoint {
    verifier: GoogleChat,
    keys: KeySet,
    client: Arc<GoogleChatClient>,
}

/// The route, verifying with `verifier` and the keys in `keys`.
pub fn route(
    hooks: Arc<Hooks>,
    verifier: GoogleChat,
    keys: KeySet,
    client: Arc<GoogleChatClient>,
) -> MethodRouter {
    let endpoint = Endpoint {
        verifier,
        keys,
        client,
    };
    post_route(hooks, CHANNEL, Arc::new(endpoint), handle)
}

async fn handle(hooks: Arc<Hooks>, endpoint: Arc<Endpoint>, h: Headers, body: Bytes) -> Response {
    let now = hooks.dispatcher().clock().now();
    let event = match receive(&endpoint, &h, &body, now).await {
        Ok(event) => event,
        Err(e) => return hooks.reject(CHANNEL, &e).await,
    };
    let answer = match event {
        ChatEvent::Message {
            event_id,
            thread,
            inbound,
        } => {
            if let Some(t) = thread {
                endpoint.client.note_thread(inbound.chat(), &t);
            }
            hooks.dispatch(CHANNEL, Some(&event_id), *inbound).await
        }
        ChatEvent::Ignored { .. } => StatusCode::OK.into_response(),
        ChatEvent::Refused(refused) => {
            answer_refused(&hooks, CHANNEL, endpoint.verifier.channel(), &refused).await
        }
    };
    if answer.status() == StatusCode::OK {
        return Json(serde_json::json!({})).into_response();
    }
    answer
}

/// The key the token names (fetched when not held), then the token and event.
async fn receive(
    endpoint: &Endpoint,
    h: &Headers,
    body: &[u8],
    now: i64,
) -> Result<ChatEvent, GatewayError> {
    let key = endpoint.keys.key_for_request(h).await?;
    endpoint.verifier.receive(h, body, &key, now)
}
