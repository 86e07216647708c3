//! The webhook listener: one axum [`Router`] with `/telegram/webhook`,
//! `/slack/events` and `/discord/interactions` (only for the channels given),
//! bound where [`WebhookSettings::listen`] says (default `127.0.0.1:8444`, for
//! a reverse tunnel). It is its own listener, never the admin page's.
//!
//! Every request: body read up to [`MAX_BODY_BYTES`] (over → 413), headers to
//! [`Headers`], authenticity first (bad → 401, stale timestamp → 401), then the
//! payload (malformed → 400), then the [`Dispatcher`] (replayed event id → 409).
//! Rejections are audited (`gateway.webhook_rejected`) before the answer, the
//! first 20 per route per hour one by one and the rest counted into one
//! summary entry (see [`super::rejections`]), so a flood of unauthenticated
//! requests adds a bounded number of entries.
//! Replies are delivered through the platform's API in a spawned task, so the
//! platform's webhook deadline (Slack, Discord: 3 s) is not spent on them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::discord::DiscordClient;
use super::rejections::{Rejections, Verdict};
use super::slack::SlackClient;
use super::telegram::TelegramClient;
use crate::gateway::channels::discord::{Discord, DiscordInteraction};
use crate::gateway::channels::slack::{Slack, SlackEvent};
use crate::gateway::channels::telegram::{Telegram, TelegramUpdate};
use crate::gateway::channels::{Headers, MAX_BODY_BYTES};
use crate::gateway::chunk::{DISCORD_MAX_CHARS, chunk_text};
use crate::gateway::dispatch::{Dispatched, Dispatcher};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::sinks::{AuditEvent, audit_detail};

/// `[webhook]`: where the webhook listener binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// `address:port`; loopback by default (a reverse tunnel forwards to it).
    pub listen: String,
    /// A public or wildcard `listen` address is refused in production unless
    /// the owner sets this (e.g. the box sits behind no tunnel on purpose).
    pub allow_public: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            listen: "127.0.0.1:8444".into(),
            allow_public: false,
        }
    }
}

impl WebhookSettings {
    pub fn addr(&self) -> Result<SocketAddr, GatewayError> {
        self.listen.parse().map_err(|_| GatewayError::Listen {
            addr: self.listen.clone(),
            reason: "not an address:port".into(),
        })
    }
}

/// Telegram webhook mode: the secret-token verifier and the reply client.
#[derive(Debug)]
pub struct TelegramWebhook {
    pub verifier: Telegram,
    pub client: Arc<TelegramClient>,
}

/// Slack Events API: the signing-secret verifier and the reply client.
#[derive(Debug)]
pub struct SlackWebhook {
    pub verifier: Slack,
    pub client: Arc<SlackClient>,
}

/// Discord interactions: the Ed25519 verifier and the REST client for reply
/// pieces past the first (`None`: only the interaction response).
#[derive(Debug)]
pub struct DiscordWebhook {
    pub verifier: Discord,
    pub client: Option<Arc<DiscordClient>>,
}

/// Everything the listener serves; a `None` channel has no route.
#[derive(Debug)]
pub struct WebhookApp {
    pub dispatcher: Arc<Dispatcher>,
    pub telegram: Option<TelegramWebhook>,
    pub slack: Option<SlackWebhook>,
    pub discord: Option<DiscordWebhook>,
}

/// What the handlers share: the app and its rejection windows.
#[derive(Debug)]
struct Listener {
    app: Arc<WebhookApp>,
    rejections: Arc<Rejections>,
}

impl std::ops::Deref for Listener {
    type Target = WebhookApp;
    fn deref(&self) -> &WebhookApp {
        &self.app
    }
}

/// The router (routes only for the configured channels).
pub fn router(app: Arc<WebhookApp>) -> Router {
    router_with_rejections(app).0
}

/// The router and its rejection windows, whose pending counts the caller
/// audits when the listener stops ([`Rejections::flush`]).
pub fn router_with_rejections(app: Arc<WebhookApp>) -> (Router, Arc<Rejections>) {
    let rejections = Arc::new(Rejections::default());
    let app = Arc::new(Listener {
        app,
        rejections: rejections.clone(),
    });
    let mut r = Router::new();
    if app.telegram.is_some() {
        r = r.route("/telegram/webhook", post(telegram_webhook));
    }
    if app.slack.is_some() {
        r = r.route("/slack/events", post(slack_events));
    }
    if app.discord.is_some() {
        r = r.route("/discord/interactions", post(discord_interactions));
    }
    (r.with_state(app), rejections)
}

/// Binds the listener where `settings` says.
pub async fn bind(settings: &WebhookSettings) -> Result<tokio::net::TcpListener, GatewayError> {
    let addr = settings.addr()?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError::Listen {
            addr: settings.listen.clone(),
            reason: e.to_string(),
        })
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| GatewayError::Listen {
            addr,
            reason: e.to_string(),
        })
}

/// The one mapping from errors to HTTP status and audit reason code.
fn classify(err: &GatewayError) -> (StatusCode, &'static str) {
    match err {
        GatewayError::VerifyRequest { reason, .. } => match reason {
            AuthFailure::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            AuthFailure::StaleTimestamp { .. } => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
            AuthFailure::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
            AuthFailure::MissingHeader(_)
            | AuthFailure::DuplicateHeader(_)
            | AuthFailure::MalformedHeader(_) => (StatusCode::UNAUTHORIZED, "bad_auth_header"),
        },
        GatewayError::ParseEvent { .. } | GatewayError::ValidateInbound { .. } => {
            (StatusCode::BAD_REQUEST, "malformed")
        }
        GatewayError::ApplicationMismatch { .. } => {
            (StatusCode::UNAUTHORIZED, "application_mismatch")
        }
        GatewayError::OpenStore { .. }
        | GatewayError::Schema(_)
        | GatewayError::Db { .. }
        | GatewayError::CorruptRow { .. }
        | GatewayError::Settings { .. }
        | GatewayError::VerifierKey { .. }
        | GatewayError::IssueCode { .. }
        | GatewayError::RedeemCode { .. }
        | GatewayError::ChannelApi { .. }
        | GatewayError::HttpClient { .. }
        | GatewayError::Sink { .. }
        | GatewayError::Listen { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// Audits a rejected request (in full, or counted into its window's summary)
/// and answers with its status (500 if an audit write fails: nothing is
/// answered unaccounted for).
async fn reject(app: &Listener, channel: &'static str, err: &GatewayError) -> Response {
    let (status, reason) = classify(err);
    let now = app.dispatcher.clock().now();
    let (verdict, summaries) = app.rejections.note(channel, reason, now);
    let mut events = summaries;
    if verdict == Verdict::Audit {
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(channel, error = %err, "webhook failed");
        }
        let mut ev = AuditEvent::new("gateway.webhook_rejected", reason, channel);
        ev.detail = Some(audit_detail(&err.to_string()));
        events.push(ev);
    }
    for ev in events {
        if let Err(e) = app.dispatcher.trail().event(ev).await {
            tracing::error!(channel, error = %e, "audit of a rejected webhook failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    (status, reason).into_response()
}

/// Audits a replayed event and answers 409.
fn replay_response() -> Response {
    (StatusCode::CONFLICT, "replayed event").into_response()
}

/// Reads the body (cap → 413) and converts headers (non-UTF-8 value → 401,
/// as no authentic request carries one in the headers we read).
async fn read_request(
    app: &Listener,
    channel: &'static str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Headers, axum::body::Bytes), Response> {
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let err = GatewayError::VerifyRequest {
                channel,
                reason: AuthFailure::BodyTooLarge {
                    len: MAX_BODY_BYTES + 1,
                    max: MAX_BODY_BYTES,
                },
            };
            return Err(reject(app, channel, &err).await);
        }
    };
    let mut h = Headers::new();
    for (name, value) in headers {
        // Values that are not visible ASCII cannot be any header we check.
        if let Ok(v) = value.to_str() {
            h.insert(name.as_str(), v);
        }
    }
    Ok((h, bytes))
}

async fn telegram_webhook(
    State(app): State<Arc<Listener>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const CH: &str = "telegram";
    let Some(tg) = &app.telegram else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (h, body) = match read_request(&app, CH, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (update_id, inbound) = match tg.verifier.receive(&h, &body) {
        Ok(TelegramUpdate::Message { update_id, inbound }) => (update_id, inbound),
        Ok(TelegramUpdate::Ignored { .. }) => return StatusCode::OK.into_response(),
        Err(e) => return reject(&app, CH, &e).await,
    };
    let chat = inbound.chat().to_string();
    match app
        .dispatcher
        .dispatch(Some(&update_id.to_string()), inbound)
        .await
    {
        Ok(Dispatched::Replay) => replay_response(),
        Ok(Dispatched::Handled { reply, .. }) => {
            if let Some(text) = reply {
                let client = tg.client.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.send_message(&chat, &text).await {
                        tracing::warn!(error = %e, "telegram reply failed");
                    }
                });
            }
            StatusCode::OK.into_response()
        }
        Err(e) => reject(&app, CH, &e).await,
    }
}

async fn slack_events(
    State(app): State<Arc<Listener>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const CH: &str = "slack";
    let Some(sl) = &app.slack else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (h, body) = match read_request(&app, CH, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = app.dispatcher.clock().now();
    let (event_id, inbound) = match sl.verifier.receive(&h, &body, now) {
        Ok(SlackEvent::UrlVerification { challenge }) => {
            return axum::Json(serde_json::json!({ "challenge": challenge })).into_response();
        }
        Ok(SlackEvent::Message { event_id, inbound }) => (event_id, inbound),
        Ok(SlackEvent::Ignored { .. }) => return StatusCode::OK.into_response(),
        Err(e) => return reject(&app, CH, &e).await,
    };
    let chat = inbound.chat().to_string();
    match app.dispatcher.dispatch(event_id.as_deref(), inbound).await {
        Ok(Dispatched::Replay) => replay_response(),
        Ok(Dispatched::Handled { reply, .. }) => {
            if let Some(text) = reply {
                let client = sl.client.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.post_message(&chat, &text).await {
                        tracing::warn!(error = %e, "slack reply failed");
                    }
                });
            }
            StatusCode::OK.into_response()
        }
        Err(e) => reject(&app, CH, &e).await,
    }
}

async fn discord_interactions(
    State(app): State<Arc<Listener>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const CH: &str = "discord";
    let Some(dc) = &app.discord else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (h, body) = match read_request(&app, CH, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = app.dispatcher.clock().now();
    let (interaction_id, inbound) = match dc.verifier.receive(&h, &body, now) {
        Ok(DiscordInteraction::Ping) => {
            return axum::Json(serde_json::json!({ "type": 1 })).into_response();
        }
        Ok(DiscordInteraction::Command {
            interaction_id,
            inbound,
            ..
        }) => (interaction_id, inbound),
        Ok(DiscordInteraction::Ignored { .. }) => {
            return axum::Json(serde_json::json!({ "type": 5, "data": { "flags": 64 } }))
                .into_response();
        }
        Err(e) => return reject(&app, CH, &e).await,
    };
    let chat = inbound.chat().to_string();
    match app
        .dispatcher
        .dispatch(Some(&interaction_id), *inbound)
        .await
    {
        Ok(Dispatched::Replay) => replay_response(),
        Ok(Dispatched::Handled { reply: None, .. }) => {
            // No reply: a deferred, ephemeral acknowledgement that is never followed up.
            axum::Json(serde_json::json!({ "type": 5, "data": { "flags": 64 } })).into_response()
        }
        Ok(Dispatched::Handled {
            reply: Some(text), ..
        }) => {
            let mut parts = chunk_text(&text, DISCORD_MAX_CHARS).into_iter();
            let first = parts.next().unwrap_or_default();
            let rest: Vec<String> = parts.collect();
            if let (Some(client), false) = (dc.client.clone(), rest.is_empty()) {
                tokio::spawn(async move {
                    for part in rest {
                        if let Err(e) = client.create_message(&chat, &part).await {
                            tracing::warn!(error = %e, "discord reply failed");
                            return;
                        }
                    }
                });
            }
            axum::Json(serde_json::json!({
                "type": 4,
                "data": { "content": first, "allowed_mentions": { "parse": [] } },
            }))
            .into_response()
        }
        Err(e) => reject(&app, CH, &e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_and_refusals() {
        let s: WebhookSettings = toml::from_str("").unwrap();
        assert_eq!(s.listen, "127.0.0.1:8444");
        assert!(s.addr().unwrap().ip().is_loopback());
        let s: WebhookSettings = toml::from_str("listen = \"127.0.0.1:9000\"").unwrap();
        assert_eq!(s.addr().unwrap().port(), 9000);
        assert!(toml::from_str::<WebhookSettings>("lisen = \"x\"").is_err());
        let bad = WebhookSettings {
            listen: "localhost".into(),
            ..WebhookSettings::default()
        };
        assert!(bad.addr().is_err());
    }

    #[test]
    fn status_mapping() {
        let v = |reason| GatewayError::VerifyRequest {
            channel: "slack",
            reason,
        };
        assert_eq!(
            classify(&v(AuthFailure::BodyTooLarge { len: 2, max: 1 })).0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            classify(&v(AuthFailure::BadSignature)).0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            classify(&GatewayError::parse("slack", "x")).0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            classify(&GatewayError::Sink {
                sink: "audit",
                reason: "down".into()
            })
            .0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
