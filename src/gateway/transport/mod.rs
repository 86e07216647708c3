//! What every channel's transport is built on (the platforms' own clients,
//! loops and routes live in their folders under [`super::channels`]): the HTTP
//! client settings and request helpers, the WebSocket connector, the
//! reconnect [`pacer`], the bounded [`lines`] reader (IRC, JSON-RPC), and
//! the webhook listener ([`webhook`]) with its rejection accounting. Every client takes its base URL and an optional extra
//! root CA from [`HttpConfig`] (so tests point it at a local fake over TLS),
//! never follows redirects (a token must not travel elsewhere), caps response
//! bodies, and strips URLs from errors (the Telegram token is part of its
//! URLs). Tokens are held in [`Redacted`] and never logged.

pub mod jwt;
pub mod lines;
pub mod oauth;
pub mod pacer;
pub mod rejections;
pub mod webhook;

use std::time::Duration;

use super::error::{AuthFailure, GatewayError};

/// Largest webhook body accepted, checked before any MAC or parse.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Request headers as received (names compared case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The single value of `name`; a repeated header is refused (ambiguity is
    /// how signature checks get bypassed).
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, AuthFailure> {
        let mut found = None;
        for (n, v) in &self.0 {
            if n.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(AuthFailure::DuplicateHeader(name));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    pub fn require(&self, name: &'static str) -> Result<&str, AuthFailure> {
        self.get(name)?.ok_or(AuthFailure::MissingHeader(name))
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Headers {
        Headers(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

/// A redacted string for response credentials (Discord interaction tokens).
#[derive(Clone, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct Redacted(String);

impl Redacted {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redacted(..)")
    }
}

impl From<String> for Redacted {
    fn from(s: String) -> Redacted {
        Redacted(s)
    }
}

/// Largest API response body read.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Where a platform client connects.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `https://...` (plain `http://` only to a loopback address), no trailing `/`.
    pub base_url: String,
    /// PEM root certificate(s) trusted besides the built-in roots (tests).
    pub extra_root_pem: Option<Vec<u8>>,
    /// Per-request timeout (long polls add their poll timeout).
    pub timeout: Duration,
}

impl HttpConfig {
    pub fn new(base_url: impl Into<String>) -> Self {
        HttpConfig {
            base_url: base_url.into(),
            extra_root_pem: None,
            timeout: Duration::from_secs(30),
        }
    }

    pub(crate) fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    pub(crate) fn client(&self, channel: &'static str) -> Result<reqwest::Client, GatewayError> {
        crate::net::parse_url(self.base(), "https", "http").map_err(|e| {
            GatewayError::HttpClient {
                channel,
                reason: format!("base URL: {e}"),
            }
        })?;
        http_client(channel, self.extra_root_pem.as_deref(), self.timeout)
    }
}

/// A client for a platform's servers: no redirects, the built-in roots and
/// `extra_root_pem`, `timeout` per request.
pub(crate) fn http_client(
    channel: &'static str,
    extra_root_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<reqwest::Client, GatewayError> {
    build_client(
        channel,
        http_client_builder(channel, extra_root_pem, timeout)?,
    )
}

/// [`http_client`]'s builder, for a platform that adds to it (BlueBubbles:
/// a resolver keeping to the local network); then [`build_client`].
pub(crate) fn http_client_builder(
    channel: &'static str,
    extra_root_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<reqwest::ClientBuilder, GatewayError> {
    Ok(crate::net::client_builder(extra_root_pem)
        .map_err(|reason| GatewayError::HttpClient { channel, reason })?
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent("cowork-gateway"))
}

/// Builds `builder`, its error without a URL.
pub(crate) fn build_client(
    channel: &'static str,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, GatewayError> {
    builder.build().map_err(|e| GatewayError::HttpClient {
        channel,
        reason: e.without_url().to_string(),
    })
}

/// A platform's HTTP API reached with a token in the `Authorization` header
/// (Slack's Web API, Discord's REST API).
#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    auth: reqwest::header::HeaderValue,
}

impl ApiClient {
    /// `scheme`: the header's scheme (`Bearer`, `Bot`).
    pub(crate) fn new(
        channel: &'static str,
        cfg: &HttpConfig,
        scheme: &str,
        token: &Redacted,
    ) -> Result<ApiClient, GatewayError> {
        Ok(ApiClient {
            http: cfg.client(channel)?,
            base: cfg.base().to_string(),
            auth: auth_header(channel, scheme, token)?,
        })
    }

    /// A `POST` of `{base}/{path}` carrying the token.
    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    /// A `GET` of `{base}/{path}` carrying the token.
    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// A request of any method (`PUT`: Matrix) of `{base}/{path}` carrying the token.
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
    }
}

/// A request error without its URL (which may hold a token).
pub(crate) fn api_err(
    channel: &'static str,
    operation: &'static str,
) -> impl Fn(reqwest::Error) -> GatewayError {
    move |e| GatewayError::ChannelApi {
        channel,
        operation,
        reason: e.without_url().to_string(),
    }
}

/// Reads a response body up to [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_capped(
    channel: &'static str,
    operation: &'static str,
    mut resp: reqwest::Response,
) -> Result<Vec<u8>, GatewayError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(api_err(channel, operation))? {
        if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(GatewayError::ChannelApi {
                channel,
                operation,
                reason: "response body too large".into(),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Longest wait a platform's rate limit may ask for before a request is
/// given up (a reply later than this is worse than a clear failure).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// Tries of one request while the platform answers HTTP 429.
pub const RATE_LIMIT_TRIES: u32 = 3;

/// Sends the request `build` makes and reads its body (capped); while the
/// platform answers HTTP 429, waits as long as it asks and tries again, at
/// most [`RATE_LIMIT_TRIES`] times, so a reply is delayed, not lost. The
/// status and body returned are the last answer's, for the caller to judge.
pub(crate) async fn send_rate_limited(
    channel: &'static str,
    operation: &'static str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, Vec<u8>), GatewayError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let resp = build().send().await.map_err(api_err(channel, operation))?;
        let status = resp.status();
        let header = resp.headers().get(reqwest::header::RETRY_AFTER).cloned();
        let body = read_capped(channel, operation, resp).await?;
        if status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Ok((status, body));
        }
        match retry_after(header.as_ref(), &body) {
            Some(wait) if wait <= MAX_RATE_LIMIT_WAIT && tries < RATE_LIMIT_TRIES => {
                tracing::info!(
                    channel,
                    operation,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "rate limited; waiting"
                );
                tokio::time::sleep(wait).await;
            }
            wait => {
                let asked = wait.map_or("an unusable time".to_string(), |w| {
                    format!("{:.1} s", w.as_secs_f64())
                });
                return Err(GatewayError::ChannelApi {
                    channel,
                    operation,
                    reason: format!(
                        "rate limited by the platform (HTTP 429, retry after {asked}, {tries} tries); not sent"
                    ),
                });
            }
        }
    }
}

/// How long a 429 answer asks to wait: the `Retry-After` header (seconds),
/// else the body's `retry_after` (Discord, fractional seconds),
/// `parameters.retry_after` (Telegram) or `retry_after_ms` (Matrix,
/// milliseconds); one second when it says nothing.
/// `None`: a negative, non-finite or absurd value.
pub(crate) fn retry_after(
    header: Option<&reqwest::header::HeaderValue>,
    body: &[u8],
) -> Option<Duration> {
    let from_header = header
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok());
    let from_body = || {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        v.get("retry_after")
            .or_else(|| v.get("parameters")?.get("retry_after"))
            .and_then(|r| r.as_f64())
            .or_else(|| Some(v.get("retry_after_ms")?.as_f64()? / 1000.0))
    };
    match from_header.or_else(from_body) {
        None => Some(Duration::from_secs(1)),
        Some(secs) if secs.is_finite() && (0.0..=86_400.0).contains(&secs) => {
            Some(Duration::from_secs_f64(secs))
        }
        Some(_) => None,
    }
}

/// An `Authorization` header value marked sensitive (hidden from debug output).
pub(crate) fn auth_header(
    channel: &'static str,
    scheme: &str,
    token: &Redacted,
) -> Result<reqwest::header::HeaderValue, GatewayError> {
    let mut v = reqwest::header::HeaderValue::from_str(&format!("{scheme} {}", token.expose()))
        .map_err(|_| GatewayError::HttpClient {
            channel,
            reason: "token is not a valid header value".into(),
        })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The TLS client settings for a platform connection that is not HTTP (a
/// WebSocket, IMAP): the built-in web roots plus every certificate in
/// `extra_root_pem` (a configured `ca_file`, a test CA).
pub(crate) fn tls_client_config(
    extra_root_pem: Option<&[u8]>,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_root_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("root CA: {e}"))?;
            roots.add(cert).map_err(|e| format!("root CA: {e}"))?;
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A TLS WebSocket to a platform (Slack Socket Mode, Discord Gateway).
pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Largest WebSocket message accepted.
pub const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;

/// Connects a WebSocket to `url` (`wss://`, or `ws://` on loopback only),
/// trusting the built-in web roots plus `extra_root_pem`.
pub(crate) async fn ws_connect(
    channel: &'static str,
    url: &str,
    extra_root_pem: Option<&[u8]>,
) -> Result<WsStream, GatewayError> {
    let err = |reason: String| GatewayError::ChannelApi {
        channel,
        operation: "websocket connect",
        reason,
    };
    crate::net::parse_url(url, "wss", "ws").map_err(|e| err(format!("URL: {e}")))?;
    let tls = tls_client_config(extra_root_pem).map_err(err)?;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(config),
        true,
        Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
            tls,
        ))),
    );
    let (ws, _) = tokio::time::timeout(Duration::from_secs(15), connect)
        .await
        .map_err(|_| err("timed out".into()))?
        // The URL may carry a ticket: report the error kind only.
        .map_err(|e| err(ws_error_kind(&e).into()))?;
    Ok(ws)
}

fn ws_error_kind(e: &tokio_tungstenite::tungstenite::Error) -> &'static str {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => "connection closed",
        E::Io(_) => "I/O error",
        E::Tls(_) => "TLS error",
        E::Capacity(_) => "message too large",
        E::Protocol(_) => "protocol error",
        E::Http(_) | E::HttpFormat(_) => "HTTP handshake refused",
        E::Url(_) => "bad URL",
        _ => "websocket error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn headers_case_insensitive_and_duplicates_refused() {
        let h: Headers = [("x-a", "1"), ("X-B", "2"), ("x-b", "3")]
            .into_iter()
            .collect();
        assert_eq!(h.get("X-A").unwrap(), Some("1"));
        assert_eq!(h.get("X-B"), Err(AuthFailure::DuplicateHeader("X-B")));
        assert_eq!(h.require("X-C"), Err(AuthFailure::MissingHeader("X-C")));
    }

    #[test]
    fn retry_after_from_header_then_body_then_a_second() {
        let h = HeaderValue::from_static("7");
        assert_eq!(retry_after(Some(&h), b"{}"), Some(Duration::from_secs(7)));
        let discord =
            br#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#;
        assert_eq!(retry_after(None, discord), Some(Duration::from_millis(250)));
        let telegram = br#"{"ok":false,"error_code":429,"parameters":{"retry_after":3}}"#;
        assert_eq!(retry_after(None, telegram), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(None, b""), Some(Duration::from_secs(1)));
        let matrix = br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500}"#;
        assert_eq!(retry_after(None, matrix), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after(None, b"<html>busy</html>"),
            Some(Duration::from_secs(1))
        );
        // An HTTP date in the header is not used; the body still is.
        let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(
            retry_after(Some(&date), telegram),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn hostile_retry_after_values_are_unusable() {
        for v in ["-1", "NaN", "inf", "1e300", "86401"] {
            let h = HeaderValue::from_str(v).unwrap();
            assert_eq!(retry_after(Some(&h), b""), None, "{v}");
        }
        assert_eq!(retry_after(None, br#"{"retry_after":-5}"#), None);
        assert_eq!(
            retry_after(None, br#"{"retry_after":1e999}"#),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after(None, br#"{"retry_after":"soon"}"#),
            Some(Duration::from_secs(1))
        );
    }
}
