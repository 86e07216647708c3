//! The webhook listener: one axum [`Router`] with a route for each channel
//! served by webhook (each platform's route lives in its folder under
//! [`crate::gateway::channels`], built on [`Hooks`] and [`post_route`]),
//! bound where [`WebhookSettings::listen`] says (default `127.0.0.1:8444`,
//! for a reverse tunnel). It is its own listener, never the admin page's.
//!
//! Every request: body read up to [`MAX_BODY_BYTES`] (over → 413), headers to
//! [`Headers`], authenticity first (bad → 401, stale timestamp → 401), then the
//! payload (malformed → 400), then the [`Dispatcher`] (replayed event id → 409).
//! Rejections are audited (`gateway.webhook_rejected`) before the answer, the
//! first 20 per route per hour one by one and the rest counted into one
//! summary entry (see [`super::rejections`]), so a flood of unauthenticated
//! requests adds a bounded number of entries.
//! Replies go out through the chat's outbound path in a spawned task, so the
//! platform's webhook deadline (Slack, Discord: 3 s) is not spent on them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde::{Deserialize, Serialize};

use super::rejections::{Rejections, Verdict};
use super::{Headers, MAX_BODY_BYTES};
use crate::gateway::dispatch::{Dispatched, Dispatcher};
use crate::gateway::error::{AuthFailure, GatewayError};
use crate::gateway::inbound::Inbound;
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

/// What every webhook route shares: the dispatcher (and through it the
/// trail and the chats' outbound path) and the rejection windows.
#[derive(Debug)]
pub struct Hooks {
    dispatcher: Arc<Dispatcher>,
    rejections: Rejections,
}

impl Hooks {
    pub fn new(dispatcher: Arc<Dispatcher>) -> Arc<Hooks> {
        Arc::new(Hooks {
            dispatcher,
            rejections: Rejections::default(),
        })
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Audits the rejections counted but not yet summarized (when the
    /// listener stops), so none is dropped.
    pub async fn flush(&self) {
        let now = self.dispatcher.clock().now();
        for ev in self.rejections.flush(now, true) {
            if let Err(e) = self.dispatcher.trail().event(ev).await {
                tracing::error!(error = %e, "audit of the webhook rejection summary failed");
            }
        }
    }

    /// Audits a rejected request (in full, or counted into its window's
    /// summary) and answers with its status (500 if an audit write fails:
    /// nothing is answered unaccounted for).
    pub(crate) async fn reject(&self, channel: &'static str, err: &GatewayError) -> Response {
        let (status, reason) = classify(err);
        let now = self.dispatcher.clock().now();
        let (verdict, summaries) = self.rejections.note(channel, reason, now);
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
            if let Err(e) = self.dispatcher.trail().event(ev).await {
                tracing::error!(channel, error = %e, "audit of a rejected webhook failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
        (status, reason).into_response()
    }

    /// Reads the body (cap → 413) and converts headers (non-UTF-8 value → 401,
    /// as no authentic request carries one in the headers we read).
    pub(crate) async fn read_request(
        &self,
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
                return Err(self.reject(channel, &err).await);
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

    /// Dispatches a verified message and answers the platform: 200 (the
    /// reply, if any, goes out through the chat's outbound path in the
    /// background, so the platform's deadline is not spent on it), 409 for a
    /// replayed event id, the rejection's status for an error.
    pub(crate) async fn dispatch(
        &self,
        channel: &'static str,
        event_id: Option<&str>,
        inbound: Inbound,
    ) -> Response {
        let (name, chat) = (inbound.channel().to_string(), inbound.chat().to_string());
        match self.dispatcher.dispatch(event_id, inbound).await {
            Ok(Dispatched::Replay) => replay_response(),
            Ok(Dispatched::Handled { reply, .. }) => {
                if let Some(text) = reply {
                    self.dispatcher
                        .replies()
                        .deliver_later(&name, &chat, vec![text]);
                }
                StatusCode::OK.into_response()
            }
            Err(e) => self.reject(channel, &e).await,
        }
    }
}

/// A platform's `POST` route: each request's body is read (capped) and its
/// headers gathered before `handle` gets them with the platform's verifier
/// (shared with the platform's other routes, hence the `Arc`).
pub fn post_route<V, F, Fut>(
    hooks: Arc<Hooks>,
    channel: &'static str,
    verifier: Arc<V>,
    handle: F,
) -> MethodRouter
where
    V: Send + Sync + 'static,
    F: Fn(Arc<Hooks>, Arc<V>, Headers, axum::body::Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    post_route_with_query(
        hooks,
        channel,
        verifier,
        move |hooks, v, _query, h, body| handle(hooks, v, h, body),
    )
}

/// [`post_route`] for a platform whose proof rides in the URL (an unsigned
/// webhook's secret: BlueBubbles): `handle` also gets the raw query string.
pub fn post_route_with_query<V, F, Fut>(
    hooks: Arc<Hooks>,
    channel: &'static str,
    verifier: Arc<V>,
    handle: F,
) -> MethodRouter
where
    V: Send + Sync + 'static,
    F: Fn(Arc<Hooks>, Arc<V>, Option<String>, Headers, axum::body::Bytes) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    axum::routing::post(
        move |axum::extract::RawQuery(query): axum::extract::RawQuery,
              headers: HeaderMap,
              body: Body| async move {
            match hooks.read_request(channel, &headers, body).await {
                Ok((h, body)) => handle(hooks, verifier, query, h, body).await,
                Err(r) => r,
            }
        },
    )
}

impl Hooks {
    /// Dispatches the messages of one verified body in order (a platform
    /// that batches several: LINE, WhatsApp): `None` for an event that is
    /// authentic but no message, an error for one that is malformed (audited,
    /// the others go on). 200 when every one was handled, ignored or seen
    /// before; when one could not be handled (the trail unreachable), the
    /// rejection's status (500), so the platform delivers the body again
    /// and the messages already handled are dropped then as replays.
    pub(crate) async fn dispatch_all(
        &self,
        channel: &'static str,
        events: impl IntoIterator<Item = Result<Option<(String, Inbound)>, GatewayError>>,
    ) -> Response {
        for event in events {
            let done = match event {
                Ok(Some((event_id, inbound))) => {
                    self.dispatcher
                        .dispatch_and_answer(channel, Some(&event_id), inbound)
                        .await
                }
                Ok(None) => Ok(()),
                Err(e) => self.dispatcher.reject_malformed(channel, &e).await,
            };
            if let Err(e) = done {
                return self.reject(channel, &e).await;
            }
        }
        StatusCode::OK.into_response()
    }
}

/// The listener's router: one route per channel served by webhook, each
/// path as the registry names it ([`crate::gateway::channels::registry`]).
pub fn router(routes: impl IntoIterator<Item = (&'static str, MethodRouter)>) -> Router {
    routes
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route))
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
            AuthFailure::BadToken(_) => (StatusCode::UNAUTHORIZED, "bad_token"),
            AuthFailure::BadUrlSecret(_) => (StatusCode::UNAUTHORIZED, "bad_secret"),
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

/// Answers a replayed event: 409 (audited by the dispatcher).
pub(crate) fn replay_response() -> Response {
    (StatusCode::CONFLICT, "replayed event").into_response()
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
            classify(&v(AuthFailure::BadUrlSecret("missing"))),
            (StatusCode::UNAUTHORIZED, "bad_secret")
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
