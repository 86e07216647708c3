//! The channels: one folder per platform holding everything of it (its
//! registry entry with the settings and secrets each transport reads, the
//! authenticity check and parser, the API client that is its [`Outbound`],
//! and its inbound loop or webhook route), each implementing [`Channel`]. The
//! runner starts every configured channel through the [`registry`]; nothing
//! else names a platform. Shared here: request headers, size and timestamp
//! checks, [`Redacted`] tokens and what a starting channel is given.
//!
//! Each parser offers `verify` (authenticity only), `parse` (payload only) and
//! `receive` (verify, then parse: the one to use in production, so a payload is
//! never parsed before its signature holds).

pub mod bluebubbles;
pub mod discord;
pub mod email;
pub mod google_chat;
pub mod imessage;
pub mod line;
pub mod local;
pub mod matrix;
pub mod mattermost;
pub mod registry;
pub mod signal;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod twitch;
pub mod whatsapp;

use std::sync::Arc;

use super::dispatch::Dispatcher;
use super::error::{AuthFailure, GatewayError};
use super::outbound::Outbound;
use super::settings::TransportSettings;
use super::sinks::BoxFuture;
use super::transport::pacer::Pacer;
use super::transport::webhook::Hooks;
pub use super::transport::{Headers, HttpConfig, MAX_BODY_BYTES, Redacted};
use registry::{ChannelKind, TransportSpec};

/// One platform: its registry entry and how one of its channels starts.
pub trait Channel: Sync {
    /// The platform's transports, with the settings and secrets each reads.
    fn kind(&self) -> &'static ChannelKind;

    /// Builds the channel `start.name` on the transport `start.spec`: its
    /// outbound and its way in. Nothing runs yet: the runner registers the
    /// outbound first (the chat's one way out), then runs the loop or serves
    /// the route.
    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError>;
}

/// Reads a named secret from the vault.
pub trait SecretLookup: Send + Sync {
    fn secret(&self, name: &str) -> Result<Redacted, GatewayError>;
}

/// What a channel is started with.
pub struct Start<'a> {
    /// Its name in `[channels]` (stamped on its messages).
    pub name: &'a str,
    pub spec: &'static TransportSpec,
    pub transport: &'a TransportSettings,
    /// The vault (a channel may keep it to read a credential again later).
    pub secrets: &'a Arc<dyn SecretLookup>,
    pub dispatcher: &'a Arc<Dispatcher>,
    /// For a webhook route: the listener's shared request handling.
    pub hooks: &'a Arc<Hooks>,
}

/// A started channel, not yet running.
#[derive(Debug)]
pub struct Started {
    pub outbound: Arc<dyn Outbound>,
    pub inbound: InboundPath,
}

/// An inbound loop, given its pacer and the stop signal.
pub type RunLoop =
    Box<dyn FnOnce(Pacer, tokio::sync::watch::Receiver<bool>) -> BoxFuture<'static, ()> + Send>;

/// How a channel's messages come in.
pub enum InboundPath {
    /// A loop the appliance runs (long polling, a WebSocket) until the stop
    /// signal, pacing its reconnects with the pacer it is given.
    Loop(RunLoop),
    /// A route on the webhook listener, at the spec's `webhook_route`.
    Webhook(Box<axum::routing::MethodRouter>),
}

impl std::fmt::Debug for Start<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Start({} on {})", self.name, self.spec.name)
    }
}

impl std::fmt::Debug for InboundPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InboundPath::Loop(_) => "a loop",
            InboundPath::Webhook(_) => "a webhook route",
        })
    }
}

impl Start<'_> {
    fn missing(&self, key: &'static str) -> GatewayError {
        GatewayError::Settings {
            channel: self.name.to_string(),
            field: "transport",
            reason: format!("{key} is required for this transport"),
        }
    }

    /// The vault secret that the setting `key` (`value`) names.
    pub fn secret(
        &self,
        key: &'static str,
        value: &Option<String>,
    ) -> Result<Redacted, GatewayError> {
        let name = value.as_deref().ok_or_else(|| self.missing(key))?;
        self.secrets.secret(name)
    }

    /// A plain setting the transport needs.
    pub fn required<'v>(
        &self,
        key: &'static str,
        value: &'v Option<String>,
    ) -> Result<&'v str, GatewayError> {
        value.as_deref().ok_or_else(|| self.missing(key))
    }

    /// The platform client's settings: `api_base` (else the spec's), `ca_file`.
    pub fn http(&self) -> Result<HttpConfig, GatewayError> {
        let t = self.transport;
        let mut cfg = HttpConfig::new(
            t.api_base
                .clone()
                .unwrap_or_else(|| self.spec.api_base.to_string()),
        );
        if let Some(path) = &t.ca_file {
            cfg.extra_root_pem = Some(std::fs::read(path).map_err(|e| GatewayError::Settings {
                channel: self.name.to_string(),
                field: "transport.ca_file",
                reason: format!("{}: {e}", path.display()),
            })?);
        }
        Ok(cfg)
    }
}

impl Start<'_> {
    /// The TLS client settings of a connection that is not HTTP (IMAP, IRC):
    /// the web roots plus the `ca_file`'s certificates.
    pub fn tls(&self) -> Result<rustls::ClientConfig, GatewayError> {
        let extra_roots = self.http()?.extra_root_pem;
        super::transport::tls_client_config(extra_roots.as_deref()).map_err(|reason| {
            GatewayError::Settings {
                channel: self.name.to_string(),
                field: "transport.ca_file",
                reason,
            }
        })
    }
}

/// What each chat's last message named for its answers (the thread of
/// Google Chat and Mattermost, the service URL of Teams), for at most `max`
/// chats: past that the memory starts over, and an answer falls back to the
/// default (a new thread, the configured URL), nothing worse.
#[derive(Debug)]
pub(crate) struct ChatMemory {
    values: std::sync::Mutex<std::collections::HashMap<String, String>>,
    max: usize,
}

impl ChatMemory {
    pub(crate) fn new(max: usize) -> ChatMemory {
        ChatMemory {
            values: std::sync::Mutex::default(),
            max,
        }
    }

    /// `chat`'s last message named `value`.
    pub(crate) fn note(&self, chat: &str, value: &str) {
        let mut values = self.lock();
        if values.len() >= self.max && !values.contains_key(chat) {
            values.clear();
        }
        values.insert(chat.to_string(), value.to_string());
    }

    /// What `chat`'s last message named, if it is remembered.
    pub(crate) fn get(&self, chat: &str) -> Option<String> {
        self.lock().get(chat).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Queues `items` (one answer's lines or chunks) for a connection whole or
/// not at all: `Err` with the free room when they do not all fit (logged
/// here), so an answer is never cut short or dropped silently.
pub(crate) fn queue_whole<T>(
    queue: &tokio::sync::mpsc::Sender<T>,
    items: Vec<T>,
    platform: &'static str,
) -> Result<(), String> {
    let free = queue.capacity();
    if items.len() > free {
        tracing::warn!(
            channel = platform,
            items = items.len(),
            free,
            "send queue full; answer refused"
        );
        return Err(format!("{} to send, room for {free}", items.len()));
    }
    for item in items {
        queue
            .try_send(item)
            .map_err(|_| "the send queue is full or closed; answer cut short".to_string())?;
    }
    Ok(())
}

/// A random secret for a parser whose verifier a transport never uses (a
/// polling Telegram bot, Slack in Socket Mode).
pub(crate) fn unused_secret() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..32)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
        .collect()
}

/// An authentic message the appliance will not act on, and why (a sender of
/// another organization than the owner's, an event outside its time window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The audit reason: `other_organization`, `stale_event`.
    pub reason: &'static str,
    pub detail: String,
    pub sender: Option<String>,
    pub chat: Option<String>,
}

/// Audits a refused message (`gateway.inbound_rejected` with the refusal's
/// reason, sender and chat), so the owner sees who was turned away and why.
/// The platform is answered as for a handled message: sending it again
/// would change nothing.
pub(crate) async fn audit_refused(
    trail: &super::sinks::Trail,
    channel: &str,
    refused: &Refused,
) -> Result<(), GatewayError> {
    let mut ev = super::sinks::AuditEvent::new("gateway.inbound_rejected", refused.reason, channel);
    ev.sender = refused.sender.clone();
    ev.chat = refused.chat.clone();
    ev.detail = Some(refused.detail.clone());
    tracing::info!(
        channel,
        reason = refused.reason,
        "an authentic message refused"
    );
    trail.event(ev).await
}

/// A webhook's answer to a refused message: audited ([`audit_refused`]),
/// then 200; the rejection's status (500) when the audit cannot be written,
/// so the platform sends it again.
pub(crate) async fn answer_refused(
    hooks: &Hooks,
    platform: &'static str,
    channel: &str,
    refused: &Refused,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match audit_refused(hooks.dispatcher().trail(), channel, refused).await {
        Ok(()) => axum::http::StatusCode::OK.into_response(),
        Err(e) => hooks.reject(platform, &e).await,
    }
}

/// Allowed distance between a request's timestamp and now (both directions).
pub const REPLAY_WINDOW_SECS: i64 = 300;

pub(crate) fn check_body_size(body: &[u8]) -> Result<(), AuthFailure> {
    if body.len() > MAX_BODY_BYTES {
        Err(AuthFailure::BodyTooLarge {
            len: body.len(),
            max: MAX_BODY_BYTES,
        })
    } else {
        Ok(())
    }
}

/// Parses a decimal Unix timestamp header and checks it is within the window.
pub(crate) fn check_timestamp(
    name: &'static str,
    value: &str,
    now: i64,
    window_secs: i64,
) -> Result<i64, AuthFailure> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthFailure::MalformedHeader(name));
    }
    let ts: i64 = value
        .parse()
        .map_err(|_| AuthFailure::MalformedHeader(name))?;
    if (now - ts).abs() > window_secs {
        return Err(AuthFailure::StaleTimestamp {
            timestamp: ts,
            now,
            window_secs,
        });
    }
    Ok(ts)
}

/// Checks `given` against HMAC-SHA256 under `key` of `parts` (concatenated),
/// in constant time (`verify_slice`; another length is refused too): the
/// signature of Slack, LINE and WhatsApp webhooks.
pub(crate) fn check_hmac_sha256(
    key: &[u8],
    parts: &[&[u8]],
    given: &[u8],
) -> Result<(), AuthFailure> {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(key).map_err(|_| AuthFailure::BadSignature)?;
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(given)
        .map_err(|_| AuthFailure::BadSignature)
}

/// Parses JSON with a typed error (serde_json's recursion limit bounds
/// nesting). The whole body must be UTF-8: serde_json does not check the
/// strings of fields it skips, and no platform sends anything else.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    channel: &'static str,
    body: &[u8],
) -> Result<T, GatewayError> {
    check_body_size(body).map_err(|r| GatewayError::verify(channel, r))?;
    let text = std::str::from_utf8(body)
        .map_err(|e| GatewayError::parse(channel, format!("not UTF-8: {e}")))?;
    serde_json::from_str(text).map_err(|e| GatewayError::parse(channel, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_utf8_throughout_even_where_no_field_is_read() {
        #[derive(serde::Deserialize, Debug)]
        struct Read {
            #[allow(dead_code)]
            a: u8,
        }
        assert!(parse_json::<Read>("t", br#"{"a": 1, "skipped": "ok"}"#).is_ok());
        let e = parse_json::<Read>("t", b"{\"a\": 1, \"skipped\": \"\xce\xc5\"}").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn chat_memory_starts_over_past_its_bound() {
        let m = ChatMemory::new(2);
        m.note("a", "1");
        m.note("b", "2");
        m.note("a", "3");
        assert_eq!(
            (m.get("a").as_deref(), m.get("b").as_deref()),
            (Some("3"), Some("2"))
        );
        m.note("c", "4");
        assert_eq!((m.get("a"), m.get("b")), (None, None));
        assert_eq!(m.get("c").as_deref(), Some("4"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(check_timestamp("T", "1000", 1200, 300), Ok(1000));
        assert!(matches!(
            check_timestamp("T", "1000", 1301, 300),
            Err(AuthFailure::StaleTimestamp { .. })
        ));
        assert!(matches!(
            check_timestamp("T", "1400", 1000, 300),
            Err(AuthFailure::StaleTimestamp { .. })
        ));
        for bad in ["", "-5", "1e9", " 100", "99999999999999999999", "12a"] {
            assert_eq!(
                check_timestamp("T", bad, 1000, 300),
                Err(AuthFailure::MalformedHeader("T")),
                "{bad:?}"
            );
        }
    }
}
