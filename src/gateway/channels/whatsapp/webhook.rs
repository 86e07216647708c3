//! `GET /whatsapp/webhook`: the subscription handshake (the challenge echoed
//! for the verify token; 403 otherwise, audited). `POST /whatsapp/webhook`:
//! the signature checked, then each message dispatched in order, its chat's
//! service window noted first ([`Hooks::dispatch_all`] says the statuses).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::client::WhatsAppClient;
use super::parse::{CHANNEL, WhatsApp, WhatsAppEvent};
use crate::gateway::channels::Headers;
use crate::gateway::error::GatewayError;
use crate::gateway::transport::webhook::{Hooks, post_route};

/// The route (`GET` and `POST`), verifying with `verifier`.
pub fn route(hooks: Arc<Hooks>, verifier: WhatsApp, client: Arc<WhatsAppClient>) -> MethodRouter {
    let state = Arc::new((verifier, client));
    let (get_hooks, get_state) = (Arc::clone(&hooks), Arc::clone(&state));
    post_route(hooks, CHANNEL, state, handle).get(
        move |Query(q): Query<HashMap<String, String>>| async move {
            let (verifier, _) = &*get_state;
            let param = |k: &str| q.get(k).map(String::as_str);
            match verifier.handshake(
                param("hub.mode"),
                param("hub.verify_token"),
                param("hub.challenge"),
            ) {
                Ok(challenge) => (StatusCode::OK, challenge).into_response(),
                Err(reason) => {
                    let err = GatewayError::verify(CHANNEL, reason);
                    let mut answer = get_hooks.reject(CHANNEL, &err).await;
                    // Meta's handshake expects 403 for a wrong token.
                    if answer.status() == StatusCode::UNAUTHORIZED {
                        *answer.status_mut() = StatusCode::FORBIDDEN;
                    }
                    answer
                }
            }
        },
    )
}

async fn handle(
    hooks: Arc<Hooks>,
    state: Arc<(WhatsApp, Arc<WhatsAppClient>)>,
    h: Headers,
    body: Bytes,
) -> Response {
    let (verifier, client) = &*state;
    let now = hooks.dispatcher().clock().now();
    let events = match verifier.receive(&h, &body, now) {
        Ok(events) => events,
        Err(e) => return hooks.reject(CHANNEL, &e).await,
    };
    // Lazily: each chat's window is noted just before its message.
    let messages = events.into_iter().map(|event| match event? {
        WhatsAppEvent::Message { event_id, inbound } => {
            client.note_inbound(inbound.chat());
            Ok(Some((event_id, *inbound)))
        }
        WhatsAppEvent::Ignored { .. } => Ok(None),
    });
    hooks.dispatch_all(CHANNEL, messages).await
}
