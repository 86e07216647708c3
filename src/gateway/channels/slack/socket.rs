//! Slack Socket Mode: `apps.connections.open` with the app-level token (`xapp-`)
//! returns a one-time `wss://` URL; over it Slack sends envelopes
//! (`hello`, `events_api`, `slash_commands`, `interactive`, `disconnect`), each
//! acknowledged with `{"envelope_id": ...}`: an event once it is handled or
//! refused for good, so one whose dispatch failed is left for Slack to deliver
//! again; any other envelope at once. `events_api` payloads are
//! the Events API bodies and go through [`Slack::parse`]; their authenticity is
//! the TLS connection opened with the app token (there is no signature).
//! On `disconnect` or a closed socket the client opens a new connection.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::client::read_answer;
use super::parse::{Slack, SlackEvent};
use crate::gateway::channels::Redacted;
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::sinks::{AuditEvent, audit_detail};
use crate::gateway::transport::{ApiClient, HttpConfig, api_err, read_capped, ws_connect};

const CHANNEL: &str = "slack";

/// Opens Socket Mode connections.
#[derive(Debug)]
pub struct SocketModeClient {
    api: ApiClient,
    extra_root_pem: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct Opened {
    url: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    payload: Option<Box<serde_json::value::RawValue>>,
}

/// One Socket Mode text frame, decoded but not yet acted on.
#[derive(Debug)]
pub(crate) struct SocketFrame {
    /// The id to acknowledge, when the envelope has one.
    pub(crate) ack: Option<String>,
    pub(crate) action: SocketAction,
}

/// What a Socket Mode envelope asks of the session.
#[derive(Debug)]
pub(crate) enum SocketAction {
    /// `disconnect`, with Slack's reason (at most 64 characters).
    Disconnect(String),
    /// `events_api` with its payload: an Events API body for [`Slack::parse`].
    Event(Box<serde_json::value::RawValue>),
    /// `hello`, `slash_commands`, `interactive`, an `events_api` without a
    /// payload: acknowledged, unused.
    Other,
}

/// Decodes one Socket Mode text frame (outside input, authenticated only by
/// the TLS connection).
pub(crate) fn decode_frame(text: &str) -> Result<SocketFrame, serde_json::Error> {
    let env: Envelope = serde_json::from_str(text)?;
    let action = match env.kind.as_str() {
        "disconnect" => SocketAction::Disconnect(
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(|s| s.chars().take(64).collect()))
                .unwrap_or_default(),
        ),
        "events_api" => match env.payload {
            Some(payload) => SocketAction::Event(payload),
            None => SocketAction::Other,
        },
        _ => SocketAction::Other,
    };
    Ok(SocketFrame {
        ack: env.envelope_id,
        action,
    })
}

/// Why one Socket Mode connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Slack sent `disconnect` (reason given): reconnect.
    Disconnect(String),
    /// The socket closed or failed: reconnect.
    Closed,
    /// `shutdown` was signalled.
    Shutdown,
}

impl SocketModeClient {
    /// `app_token`: the app-level `xapp-` token (scope `connections:write`).
    pub fn new(cfg: &HttpConfig, app_token: &Redacted) -> Result<Self, GatewayError> {
        Ok(SocketModeClient {
            api: ApiClient::new(CHANNEL, cfg, "Bearer", app_token)?,
            extra_root_pem: cfg.extra_root_pem.clone(),
        })
    }

    /// `apps.connections.open` → the WebSocket URL (held redacted: it is a ticket).
    pub async fn open(&self) -> Result<Redacted, GatewayError> {
        let op = "apps.connections.open";
        let resp = self
            .api
            .post("apps.connections.open")
            .send()
            .await
            .map_err(api_err(CHANNEL, op))?;
        let status = resp.status();
        let body = read_capped(CHANNEL, op, resp).await?;
        let opened: Opened = read_answer(op, status, &body)?;
        Ok(Redacted::from(opened.url))
    }

    /// Opens one connection and serves it until it ends.
    pub async fn run_session(
        &self,
        parser: &Slack,
        dispatcher: &Dispatcher,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<SessionEnd, GatewayError> {
        let url = self.open().await?;
        let mut ws = ws_connect(CHANNEL, url.expose(), self.extra_root_pem.as_deref()).await?;
        loop {
            let msg = tokio::select! {
                _ = shutdown.changed() => {
                    let _ = ws.close(None).await;
                    return Ok(SessionEnd::Shutdown);
                }
                m = ws.next() => m,
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => return Ok(SessionEnd::Closed),
                Some(Ok(_)) => continue, // ping/pong handled by tungstenite; binary unused
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "slack socket error");
                    return Ok(SessionEnd::Closed);
                }
            };
            let frame = match decode_frame(text.as_str()) {
                Ok(f) => f,
                Err(e) => {
                    let mut ev = AuditEvent::new("gateway.inbound_rejected", "malformed", CHANNEL);
                    ev.detail = Some(audit_detail(&format!("socket envelope: {e}")));
                    dispatcher.trail().event(ev).await?;
                    continue;
                }
            };
            // An event is acknowledged once it is handled (or refused for
            // good): Slack redelivers an envelope it does not see acknowledged,
            // and a dispatch that failed forgot its event id, so the
            // redelivery is a fresh attempt. An error ends the session unacked.
            if let SocketAction::Event(payload) = &frame.action {
                self.handle_event(parser, dispatcher, payload.get().as_bytes())
                    .await?;
            }
            if let Some(id) = &frame.ack {
                let ack = serde_json::json!({ "envelope_id": id }).to_string();
                if ws.send(Message::Text(ack.into())).await.is_err() {
                    return Ok(SessionEnd::Closed);
                }
            }
            if let SocketAction::Disconnect(reason) = frame.action {
                let _ = ws.close(None).await;
                return Ok(SessionEnd::Disconnect(reason));
            }
        }
    }

    async fn handle_event(
        &self,
        parser: &Slack,
        dispatcher: &Dispatcher,
        payload: &[u8],
    ) -> Result<(), GatewayError> {
        match parser.parse(payload) {
            Ok(SlackEvent::Message { event_id, inbound }) => {
                dispatcher
                    .dispatch_and_answer(CHANNEL, event_id.as_deref(), inbound)
                    .await
            }
            Ok(SlackEvent::UrlVerification { .. } | SlackEvent::Ignored { .. }) => Ok(()),
            Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await,
        }
    }
}

/// Socket Mode until `shutdown`: reconnects after `disconnect`, a closed socket
/// or an error (`pacer`: 1 s doubling to 60 s on errors, shown; at most one
/// connection a second).
pub async fn run_socket_mode(
    client: Arc<SocketModeClient>,
    parser: Arc<Slack>,
    dispatcher: Arc<Dispatcher>,
    mut pacer: crate::gateway::transport::pacer::Pacer,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let began = std::time::Instant::now();
        let go_on = match client
            .run_session(&parser, &dispatcher, &mut shutdown)
            .await
        {
            Ok(SessionEnd::Shutdown) => return,
            Ok(end) => {
                tracing::info!(?end, "slack socket mode session ended; reconnecting");
                pacer.ended(began, false, &mut shutdown).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "slack socket mode failed");
                pacer.failed(&e.to_string(), &mut shutdown).await
            }
        };
        if !go_on {
            return;
        }
    }
}
