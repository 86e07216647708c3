//! HTTP plumbing shared by the pages: the peer address, the LAN guard and
//! security-header middleware, cookies, form parsing, and the one mapping
//! from failures to status codes ([`PageError`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::backend::{BackendError, BackendErrorKind};
use super::server::AppState;
use super::views;

/// Maximum request body (forms are tiny).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Fields of one form: a settings section's form sends every key it shows
/// (a channel has about forty, more with per-chat rules) and each ticked
/// reset box; [`BODY_LIMIT`] bounds the total.
const MAX_FORM_FIELDS: usize = 512;

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The TCP peer of the connection a request came on (set by the accept loop,
/// never taken from a header).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Everything a page can fail with, mapped to a status in one place.
#[derive(Debug)]
pub enum PageError {
    BadRequest(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    TooLarge,
    TooManyAttempts(String),
    Backend(BackendError),
    Internal(String),
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Backend(e) => match e.kind {
                BackendErrorKind::NotFound => StatusCode::NOT_FOUND,
                BackendErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                BackendErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                BackendErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            PageError::BadRequest(m)
            | PageError::Forbidden(m)
            | PageError::NotFound(m)
            | PageError::Conflict(m)
            | PageError::TooManyAttempts(m) => m.clone(),
            PageError::TooLarge => format!(
                "The request is too large (the limit is {} KiB).",
                BODY_LIMIT / 1024
            ),
            PageError::Backend(e) => match e.kind {
                BackendErrorKind::Internal => {
                    "The appliance hit an internal error; see its log.".into()
                }
                BackendErrorKind::Unavailable => {
                    format!(
                        "A component of the appliance is not available right now: {}",
                        sentence(&e.message)
                    )
                }
                _ => sentence(&e.message),
            },
            PageError::Internal(_) => {
                "The admin page hit an internal error; see the appliance log.".into()
            }
        }
    }

    pub fn csrf() -> Self {
        PageError::Forbidden("The form's security token is missing or wrong. Reload the page and try again; nothing was changed.".into())
    }
}

fn sentence(s: &str) -> String {
    let mut s: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
    if let Some(first) = s.get(..1) {
        let up = first.to_uppercase();
        s.replace_range(..1, &up);
    }
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

impl From<BackendError> for PageError {
    fn from(e: BackendError) -> Self {
        PageError::Backend(e)
    }
}

impl From<super::error::AdminError> for PageError {
    fn from(e: super::error::AdminError) -> Self {
        match e {
            // An owner file from an incompatible newer image: the person at
            // the login form gets the one sentence, not "internal error".
            super::error::AdminError::PasswordFileSchema { path, source } => {
                tracing::error!(path = %path.display(), "{source}");
                PageError::Conflict(source.to_string())
            }
            e => PageError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let PageError::Internal(detail) = &self {
            tracing::error!(%detail, "admin page internal error");
        }
        if let PageError::Backend(e) = &self {
            tracing::warn!(kind = ?e.kind, message = %e.message, "admin backend call failed");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = views::bare_page(title, views::error_body(status.as_u16(), &self.message()));
        (status, axum::response::Html(body.into_string())).into_response()
    }
}

/// 303 See Other to `to`.
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The value of cookie `name`, if sent exactly once.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for h in headers.get_all(header::COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v.to_string());
            }
        }
    }
    found
}

/// A `Set-Cookie` value with the attributes every cookie here carries.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        s.push_str(&format!("; Max-Age={a}"));
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A parsed `application/x-www-form-urlencoded` body.
#[derive(Debug)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: Result<Bytes, BytesRejection>) -> Result<Form, PageError> {
        let bytes = body.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                PageError::TooLarge
            } else {
                PageError::BadRequest("The request body could not be read.".into())
            }
        })?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError::BadRequest("The form data is malformed.".into()))?;
        if fields.len() > MAX_FORM_FIELDS {
            return Err(PageError::BadRequest(
                "The form has too many fields.".into(),
            ));
        }
        Ok(Form(fields))
    }

    /// The single value of `name`; a repeated field is an error.
    pub fn get(&self, name: &str) -> Result<Option<&str>, PageError> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(PageError::BadRequest(format!(
                "The form field {name:?} appears more than once."
            )));
        }
        Ok(first)
    }

    /// Every field, in the order sent.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn require(&self, name: &str) -> Result<&str, PageError> {
        self.get(name)?
            .ok_or_else(|| PageError::BadRequest(format!("The form field {name:?} is missing.")))
    }
}

/// Refuse every request whose TCP peer is not on the LAN: 403 and an audit
/// entry (at most one per address per minute, so a scan cannot flood the trail).
pub async fn lan_guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(peer) = req.extensions().get::<PeerAddr>().copied() else {
        tracing::error!("request without a peer address; refusing");
        return PageError::Forbidden("This page is only reachable from the local network.".into())
            .into_response();
    };
    let ip = peer.0.ip().to_canonical();
    if st.lan.admits(ip) {
        return next.run(req).await;
    }
    let now = st.clock.now();
    let first_in_a_while = {
        let mut seen = st.lock_refused();
        if seen.len() > 1024 {
            seen.clear();
        }
        let fresh = seen.get(&ip).is_none_or(|t| now >= t + 60);
        if fresh {
            seen.insert(ip, now);
        }
        fresh
    };
    tracing::warn!(peer = %ip, "admin page: refused a request from outside the LAN");
    if first_in_a_while {
        let path: String = req.uri().path().chars().take(200).collect();
        let payload = serde_json::json!({ "peer": ip.to_string(), "method": req.method().as_str(), "path": path });
        if let Err(e) = st
            .backend
            .audit_record(
                "admin.lan_refused".into(),
                ip.to_string(),
                "admin".into(),
                payload,
            )
            .await
        {
            tracing::warn!(error = %e, "could not audit a refused request");
        }
    }
    PageError::Forbidden("This page is only reachable from the local network.".into())
        .into_response()
}

/// Security headers on every response; `no-store` on everything but the static assets.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp: Response<Body> = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if is_asset {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=3600"),
        );
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
