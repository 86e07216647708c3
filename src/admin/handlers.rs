//! Routes and page handlers. Every handler: session check → body (413) →
//! CSRF (403) → validation (400) → one backend call → redirect or page.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;

use super::backend::IssuedCode;
use super::http::{self, BODY_LIMIT, Form, PageError, PeerAddr, cookie, redirect, set_cookie};
use super::ratelimit::{Finished, Refusal, Ticket};
use super::server::AppState;
use super::session::{COOKIE_NAME, PRE_COOKIE_NAME, SessionView, ct_eq, random_token};
use super::views::{self, Nav, PageCtx};
use super::{owner, validate};

type St = State<Arc<AppState>>;
pub(crate) type Body = Result<Bytes, BytesRejection>;
pub(crate) type PageResult = Result<Response, PageError>;

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/setup", get(setup_page).post(setup_submit))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/pairing", get(pairing_page))
        .route("/pairing/issue", post(pairing_issue))
        .route("/pairing/cancel", post(pairing_cancel))
        .route("/pairing/cancel-all", post(pairing_cancel_all))
        .route("/pairing/lockouts/clear", post(pairing_lockout_clear))
        .route("/users", get(users_page))
        .route("/users/revoke", post(user_revoke))
        .route("/users/revoke-all", post(users_revoke_all))
        .route("/tasks", get(tasks_page))
        .route("/tasks/cancel", post(task_cancel))
        .route("/approvals", get(approvals_page))
        .route("/approvals/decide", post(approval_decide))
        .route("/audit", get(audit_page))
        .route("/audit/verify", post(audit_verify))
        .route("/password", get(password_page).post(password_submit))
        .route("/security-reset", get(reset_page).post(reset_submit))
        .route("/settings", get(super::settings_page::overview))
        .route(
            "/settings/channels",
            get(super::settings_page::channels_page),
        )
        .route(
            "/settings/channels/add",
            post(super::settings_page::channel_add),
        )
        .route(
            "/settings/channels/{name}",
            get(super::settings_page::channel_page).post(super::settings_page::channel_save),
        )
        .route(
            "/settings/channels/{name}/ssh-key",
            post(super::settings_page::channel_ssh_key),
        )
        .route(
            "/settings/credentials",
            get(super::settings_page::credentials_page),
        )
        .route(
            "/settings/credentials/set",
            post(super::settings_page::secret_set),
        )
        .route(
            "/settings/credentials/delete",
            post(super::settings_page::secret_delete),
        )
        .route("/settings/ca", post(super::settings_page::ca_store))
        .route(
            "/settings/guard/check",
            post(super::settings_page::guard_check),
        )
        .route(
            "/settings/agent/test",
            post(super::settings_page::provider_test),
        )
        .route(
            "/settings/{section}",
            get(super::settings_page::section_page).post(super::settings_page::section_save),
        )
        .route("/updates", get(super::updates::page))
        .route("/updates/upload", post(super::updates::upload))
        .route("/updates/check", post(super::updates::check))
        .route("/updates/install", post(super::updates::install))
        .route(
            "/assets/admin.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
        .route(
            "/assets/admin.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    JS,
                )
            }),
        )
        .fallback(|| async { PageError::NotFound("There is no such page.".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::lan_guard,
        ))
        .layer(axum::middleware::from_fn(http::security_headers))
        .with_state(state)
}

pub(crate) fn html(m: Markup) -> Response {
    Html(m.into_string()).into_response()
}

fn ip_of(peer: PeerAddr) -> IpAddr {
    peer.0.ip().to_canonical()
}

pub(crate) fn actor(peer: PeerAddr) -> String {
    format!("owner@{}", ip_of(peer))
}

/// An owner-account event (setup, login, password) from `ip`.
async fn audit_owner(st: &AppState, kind: &str, actor: String, ip: IpAddr) {
    audit(
        st,
        kind,
        actor,
        "owner",
        serde_json::json!({ "peer": ip.to_string() }),
    )
    .await;
}

pub(crate) async fn audit(
    st: &AppState,
    kind: &str,
    actor: String,
    subject: &str,
    payload: serde_json::Value,
) {
    if let Err(e) = st
        .backend
        .audit_record(kind.into(), actor, subject.into(), payload)
        .await
    {
        tracing::warn!(kind, error = %e, "admin page: could not write an audit entry");
    }
}

/// For GET pages: the session, or where to redirect (setup or login).
pub(crate) fn session_or_redirect(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<SessionView, &'static str> {
    if !owner::owner_exists(&st.state_dir) {
        return Err("/setup");
    }
    cookie(headers, COOKIE_NAME)
        .and_then(|id| st.sessions.get(&id, st.clock.now()))
        .ok_or("/login")
}

/// For POST actions: a valid session, the parsed body and a matching CSRF
/// token, or a refusal that changes nothing.
pub(crate) fn authorize_post(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(SessionView, Form), PageError> {
    let sess = cookie(headers, COOKIE_NAME)
        .and_then(|id| st.sessions.get(&id, st.clock.now()))
        .ok_or_else(|| {
            PageError::Forbidden(
                "Your session has ended. Log in again; nothing was changed.".into(),
            )
        })?;
    let form = Form::parse(body)?;
    match form.get("csrf")? {
        Some(t) if ct_eq(t, &sess.csrf) => Ok((sess, form)),
        _ => Err(PageError::csrf()),
    }
}

pub(crate) fn ctx(s: &SessionView) -> PageCtx {
    PageCtx {
        csrf: s.csrf.clone(),
        flash: s.flash.clone(),
    }
}

pub(crate) fn flash_redirect(st: &AppState, s: &SessionView, msg: String, to: &str) -> Response {
    st.sessions.set_flash(&s.key, msg);
    redirect(to)
}

/// A pre-login form response with a fresh double-submit cookie.
fn pre_form(status: StatusCode, title: &str, make: impl FnOnce(&str) -> Markup) -> Response {
    let pre = random_token();
    let mut r = (status, html(views::bare_page(title, make(&pre)))).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(PRE_COOKIE_NAME, &pre, None));
    r
}

fn check_pre(headers: &HeaderMap, form: &Form) -> Result<(), PageError> {
    match (cookie(headers, PRE_COOKIE_NAME), form.get("csrf")?) {
        (Some(c), Some(f)) if c.len() == 64 && ct_eq(&c, f) => Ok(()),
        _ => Err(PageError::csrf()),
    }
}

// ---- setup, login, logout ----

async fn setup_page(State(st): St) -> Response {
    if owner::owner_exists(&st.state_dir) {
        return redirect("/login");
    }
    pre_form(StatusCode::OK, "Owner setup", |pre| {
        views::setup_form(pre, None)
    })
}

async fn setup_submit(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let form = Form::parse(body)?;
    check_pre(&headers, &form)?;
    let _guard = st.setup_lock.lock().await;
    if owner::owner_exists(&st.state_dir) {
        return Err(PageError::Conflict(
            "The owner is already set up; log in instead.".into(),
        ));
    }
    let ip = ip_of(peer);
    let token = form.require("token")?;
    let check = reserve_check(&st, ip)?;
    let right = owner::check_setup_token(&st.state_dir, token);
    check.finish(matches!(right, Ok(true))).await;
    if !right? {
        audit_owner(&st, "admin.setup_failed", ip.to_string(), ip).await;
        return Ok(pre_form(StatusCode::FORBIDDEN, "Owner setup", |pre| {
            views::setup_form(pre, Some("The setup token is wrong."))
        }));
    }
    let password = zeroize::Zeroizing::new(form.require("password")?.to_string());
    let again = zeroize::Zeroizing::new(form.require("password2")?.to_string());
    let problem = owner::new_password_problem(&password, &again);
    if let Some(p) = problem {
        return Ok(pre_form(StatusCode::BAD_REQUEST, "Owner setup", |pre| {
            views::setup_form(pre, Some(&p))
        }));
    }
    store_owner_password(&st, password).await?;
    audit_owner(&st, "admin.setup", actor(peer), ip).await;
    tracing::info!(peer = %ip, "admin page: owner password set; setup token discarded");
    Ok(redirect("/login?setup=done"))
}

async fn login_page(State(st): St, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if !owner::owner_exists(&st.state_dir) {
        return redirect("/setup");
    }
    if cookie(&headers, COOKIE_NAME)
        .and_then(|id| st.sessions.get(&id, st.clock.now()))
        .is_some()
    {
        return redirect("/");
    }
    let note = (q.as_deref() == Some("setup=done"))
        .then_some("The owner password is set. Log in with it.");
    pre_form(StatusCode::OK, "Log in", |pre| {
        maud::html! {
            @if let Some(n) = note { p.flash { (n) } }
            (views::login_form(pre, None))
        }
    })
}

async fn login_submit(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let form = Form::parse(body)?;
    check_pre(&headers, &form)?;
    if !owner::owner_exists(&st.state_dir) {
        return Ok(redirect("/setup"));
    }
    let ip = ip_of(peer);
    let password = zeroize::Zeroizing::new(form.require("password")?.to_string());
    if !owner_password_ok(&st, ip, password).await? {
        audit_owner(&st, "admin.login_failed", ip.to_string(), ip).await;
        return Ok(pre_form(StatusCode::UNAUTHORIZED, "Log in", |pre| {
            views::login_form(pre, Some("Wrong password."))
        }));
    }
    let id = st.sessions.create(st.clock.now());
    audit_owner(&st, "admin.login", actor(peer), ip).await;
    let mut r = redirect("/");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE_NAME, &id, None));
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(PRE_COOKIE_NAME, "", Some(0)));
    Ok(r)
}

async fn logout(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (sess, _) = authorize_post(&st, &headers, body)?;
    st.sessions.remove(&sess.key);
    audit(
        &st,
        "admin.logout",
        actor(peer),
        "owner",
        serde_json::json!({}),
    )
    .await;
    let mut r = redirect("/login");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE_NAME, "", Some(0)));
    Ok(r)
}

// ---- dashboard ----

async fn dashboard(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let d = st.backend.status().await?;
    // The checklist is shown even when it cannot be gathered (with why).
    let doctor = st.backend.doctor().await.map_err(|e| e.to_string());
    Ok(html(views::page(
        &ctx(&sess),
        Nav::Dashboard,
        "Dashboard",
        views::dashboard(&d, &doctor, &st.cert()),
    )))
}

// ---- pairing ----

async fn channel_names(st: &AppState) -> Result<Vec<String>, PageError> {
    Ok(st
        .backend
        .status()
        .await?
        .channels
        .into_iter()
        .map(|c| c.name)
        .collect())
}

async fn render_pairing(
    st: &AppState,
    sess: &SessionView,
    issued: Option<&IssuedCode>,
) -> PageResult {
    let channels = channel_names(st).await?;
    let active = st.backend.pairing_list().await?;
    let lockouts = st.backend.lockouts().await?;
    let svg = match issued {
        Some(code) => Some(qr_svg(&code.code)?),
        None => None,
    };
    let issued = issued.zip(svg.as_deref());
    let body = views::pairing(
        &ctx(sess),
        &channels,
        &active,
        &lockouts,
        issued,
        st.clock.now(),
    );
    Ok(html(views::page(&ctx(sess), Nav::Pairing, "Pairing", body)))
}

/// The code as an SVG QR code (inline; the SVG holds only our own markup).
fn qr_svg(code: &str) -> Result<String, PageError> {
    let qr = qrcode::QrCode::new(code.as_bytes())
        .map_err(|e| PageError::Internal(format!("QR code: {e}")))?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    })
}

async fn pairing_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    render_pairing(&st, &sess, None).await
}

async fn pairing_issue(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let channel = validate::channel(form.require("channel")?)?;
    let ttl = validate::ttl(form.get("ttl")?)?;
    let issued = st.backend.pairing_issue(channel, ttl, actor(peer)).await?;
    render_pairing(&st, &sess, Some(&issued)).await
}

async fn pairing_cancel(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let id = validate::id(form.require("id")?)?;
    let msg = if st.backend.pairing_cancel(id).await? {
        "The pairing code was cancelled.".to_string()
    } else {
        "That pairing code was no longer active.".to_string()
    };
    Ok(flash_redirect(&st, &sess, msg, "/pairing"))
}

async fn pairing_lockout_clear(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let channel = validate::channel(form.require("channel")?)?;
    let sender = validate::sender(form.require("sender")?)?;
    let n = st
        .backend
        .lockout_clear(channel.clone(), sender.clone(), actor(peer))
        .await?;
    let msg = if n > 0 {
        format!("{sender} on {channel} may try pairing codes again.")
    } else {
        format!("{sender} on {channel} was not paused.")
    };
    Ok(flash_redirect(&st, &sess, msg, "/pairing"))
}

async fn pairing_cancel_all(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, _) = authorize_post(&st, &headers, body)?;
    let n = st.backend.pairing_cancel_all().await?;
    Ok(flash_redirect(
        &st,
        &sess,
        format!(
            "{} cancelled.",
            crate::plural(n as u64, "pairing code", "pairing codes")
        ),
        "/pairing",
    ))
}

// ---- users ----

async fn users_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let users = st.backend.users_list(None).await?;
    let mut channels = channel_names(&st).await?;
    for u in &users {
        if !channels.contains(&u.channel) {
            channels.push(u.channel.clone());
        }
    }
    Ok(html(views::page(
        &ctx(&sess),
        Nav::Users,
        "Users",
        views::users(&ctx(&sess), &users, &channels),
    )))
}

async fn user_revoke(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let channel = validate::channel(form.require("channel")?)?;
    let sender = validate::sender(form.require("sender")?)?;
    let done = st
        .backend
        .user_revoke(channel.clone(), sender.clone())
        .await?;
    let msg = if done.users > 0 {
        format!("Revoked {sender} on {channel}.{}", ended(&done))
    } else {
        format!(
            "{sender} on {channel} had no active access.{}",
            ended(&done)
        )
    };
    Ok(flash_redirect(&st, &sess, msg, "/users"))
}

async fn users_revoke_all(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let channel = match form.get("channel")? {
        Some(c) if !c.is_empty() => Some(validate::channel(c)?),
        _ => None,
    };
    let done = st.backend.users_revoke_all(channel).await?;
    Ok(flash_redirect(
        &st,
        &sess,
        format!(
            "{} revoked.{}",
            crate::plural(done.users as u64, "user", "users"),
            ended(&done)
        ),
        "/users",
    ))
}

/// What a revocation ended besides access, for the flash message.
fn ended(done: &super::backend::Revocation) -> String {
    format!(
        " {} cancelled, {} of other tasks denied.",
        crate::plural(done.tasks_cancelled, "task", "tasks"),
        crate::plural(
            done.approvals_denied,
            "pending approval",
            "pending approvals"
        )
    )
}

// ---- tasks and approvals ----

async fn tasks_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let tasks = st.backend.tasks_list().await?;
    Ok(html(views::page(
        &ctx(&sess),
        Nav::Tasks,
        "Tasks",
        views::tasks(&ctx(&sess), &tasks),
    )))
}

async fn task_cancel(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let id = validate::id(form.require("id")?)?;
    let force = match form.get("force")? {
        None | Some("") => false,
        Some("1") => true,
        Some(_) => {
            return Err(PageError::BadRequest(
                "The force flag must be 1 or absent.".into(),
            ));
        }
    };
    let msg = match (st.backend.task_cancel(id, force).await?, force) {
        (true, true) => format!("Task {id} was force-stopped."),
        (true, false) => format!("Task {id} was cancelled."),
        (false, _) => format!("Task {id} was not running."),
    };
    Ok(flash_redirect(&st, &sess, msg, "/tasks"))
}

async fn approvals_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let list = st.backend.approvals_list().await?;
    let body = views::approvals(&ctx(&sess), &list, st.clock.now());
    Ok(html(views::page(
        &ctx(&sess),
        Nav::Approvals,
        "Approvals",
        body,
    )))
}

async fn approval_decide(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let id = validate::id(form.require("id")?)?;
    let approve = match form.require("decision")? {
        "approve" => true,
        "deny" => false,
        _ => {
            return Err(PageError::BadRequest(
                "The decision must be approve or deny.".into(),
            ));
        }
    };
    st.backend.approval_decide(id, approve, actor(peer)).await?;
    let msg = format!(
        "Approval {id} {}.",
        if approve { "approved once" } else { "denied" }
    );
    Ok(flash_redirect(&st, &sess, msg, "/approvals"))
}

// ---- audit ----

async fn render_audit(
    st: &AppState,
    sess: &SessionView,
    query: Option<&str>,
    verdict: Option<&super::backend::AuditVerdict>,
) -> PageResult {
    let filter = audit_filter(query)?;
    let since = filter.since.map(|w| st.clock.now().saturating_sub(w));
    let entries = st
        .backend
        .audit_tail(filter.kind.clone(), since, 200)
        .await?;
    let since_text = filter.since.map(|w| w.to_string()).unwrap_or_default();
    let body = views::audit(
        &ctx(sess),
        &entries,
        filter.kind.as_deref().unwrap_or(""),
        &since_text,
        verdict,
    );
    Ok(html(views::page(&ctx(sess), Nav::Audit, "Audit", body)))
}

/// The audit page's filter, validated from its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditFilter {
    /// Entries of this kind only (`[a-z0-9_.]{1,64}`).
    pub(crate) kind: Option<String>,
    /// Entries of the last this many seconds only (one of the offered windows).
    pub(crate) since: Option<u64>,
}

pub(crate) fn audit_filter(query: Option<&str>) -> Result<AuditFilter, PageError> {
    let fields: Vec<(String, String)> = match query {
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| PageError::BadRequest("The filter is malformed.".into()))?,
        None => Vec::new(),
    };
    let field = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    Ok(AuditFilter {
        kind: validate::audit_kind(field("kind"))?,
        since: validate::audit_since(field("since"))?,
    })
}

async fn audit_page(State(st): St, headers: HeaderMap, RawQuery(q): RawQuery) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    render_audit(&st, &sess, q.as_deref(), None).await
}

async fn audit_verify(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, _) = authorize_post(&st, &headers, body)?;
    let verdict = st.backend.audit_verify().await?;
    render_audit(&st, &sess, None, Some(&verdict)).await
}

// ---- owner password ----

/// A reserved password check. Dropped unfinished (the client went away while
/// the hash ran, so axum dropped the handler) it counts as a failure, so the
/// reservation is never leaked and aborting a request does not buy a free
/// check.
struct Reserved<'a> {
    st: &'a AppState,
    ip: IpAddr,
    ticket: Option<Ticket>,
}

impl Reserved<'_> {
    /// Records the result; a lockout it starts is logged and audited once.
    async fn finish(mut self, passed: bool) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let now = self.st.clock.now();
        let done = self.st.lock_limiter().finish(ticket, passed, now);
        if let Finished::LockedOut { until } = done {
            let secs = until.saturating_sub(now);
            tracing::warn!(peer = %self.ip, secs, "admin page: too many wrong passwords; address locked out");
            audit(
                self.st,
                "admin.login_lockout",
                self.ip.to_string(),
                "owner",
                serde_json::json!({ "peer": self.ip.to_string(), "until": until, "secs": secs }),
            )
            .await;
        }
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let now = self.st.clock.now();
            if let Finished::LockedOut { until } = self.st.lock_limiter().finish(ticket, false, now)
            {
                tracing::warn!(peer = %self.ip, secs = until.saturating_sub(now), "admin page: too many wrong or abandoned password attempts; address locked out");
            }
        }
    }
}

/// Reserves one password check for `ip` under the lockout rule (see
/// `ratelimit`), before any hashing; a refusal is the 429 to send.
fn reserve_check(st: &AppState, ip: IpAddr) -> Result<Reserved<'_>, PageError> {
    let ticket = st
        .lock_limiter()
        .reserve(ip, st.clock.now())
        .map_err(|why| match why {
            Refusal::AddressLocked => PageError::TooManyAttempts(
                "Too many failed attempts from this address. Wait and try again later.".into(),
            ),
            Refusal::Busy => PageError::TooManyAttempts(
                "Too many password attempts on this appliance right now. Try again in a few seconds."
                    .into(),
            ),
        })?;
    Ok(Reserved {
        st,
        ip,
        ticket: Some(ticket),
    })
}

/// Checks `password` against the owner's hash (argon2, off the async
/// threads) after reserving the check: a wrong one counts towards `ip`'s
/// lockout, a right one clears it, a refused one is never hashed (429).
async fn owner_password_ok(
    st: &AppState,
    ip: IpAddr,
    password: zeroize::Zeroizing<String>,
) -> Result<bool, PageError> {
    let check = reserve_check(st, ip)?;
    let dir = st.state_dir.clone();
    let ok = tokio::task::spawn_blocking(move || owner::verify_owner_password(&dir, &password))
        .await
        .map_err(|e| PageError::Internal(e.to_string()))
        .and_then(|r| r.map_err(PageError::from));
    check.finish(matches!(ok, Ok(true))).await;
    ok
}

/// Hashes and stores a new owner password (off the async threads).
async fn store_owner_password(
    st: &AppState,
    password: zeroize::Zeroizing<String>,
) -> Result<(), PageError> {
    let dir = st.state_dir.clone();
    tokio::task::spawn_blocking(move || owner::set_owner_password(&dir, &password))
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?
        .map_err(PageError::from)
}

async fn password_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    Ok(password_form(&sess, StatusCode::OK, None))
}

fn password_form(sess: &SessionView, status: StatusCode, error: Option<&str>) -> Response {
    let c = ctx(sess);
    let page = views::page(
        &c,
        Nav::Password,
        "Owner password",
        views::password_form(&c, error),
    );
    (status, html(page)).into_response()
}

/// Changes the owner password: the current one is checked under the login
/// lockout rule (reserved first, failures count, 429 when refused), the new one must pass the setup rules, and
/// every session but this one ends.
async fn password_submit(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let ip = ip_of(peer);
    let current = zeroize::Zeroizing::new(form.require("current")?.to_string());
    let password = zeroize::Zeroizing::new(form.require("password")?.to_string());
    let again = zeroize::Zeroizing::new(form.require("password2")?.to_string());
    // One change at a time (the hash file is replaced through one temp name).
    let _guard = st.setup_lock.lock().await;
    if !owner_password_ok(&st, ip, current.clone()).await? {
        audit(
            &st,
            "admin.password_change_failed",
            actor(peer),
            "owner",
            serde_json::json!({ "peer": ip.to_string(), "reason": "wrong current password" }),
        )
        .await;
        return Ok(password_form(
            &sess,
            StatusCode::UNAUTHORIZED,
            Some("The current password is wrong; nothing was changed."),
        ));
    }
    let problem = owner::new_password_problem(&password, &again).or_else(|| {
        ct_eq(&password, &current)
            .then(|| "The new password is the same as the current one.".to_string())
    });
    if let Some(p) = problem {
        return Ok(password_form(
            &sess,
            StatusCode::BAD_REQUEST,
            Some(&format!("{p} Nothing was changed.")),
        ));
    }
    store_owner_password(&st, password).await?;
    // Every other browser is logged out; this one gets a fresh session.
    st.sessions.clear();
    let id = st.sessions.create(st.clock.now());
    audit_owner(&st, "admin.password_changed", actor(peer), ip).await;
    tracing::info!(peer = %ip, "admin page: owner password changed; other sessions ended");
    if let Some(new) = st.sessions.get(&id, st.clock.now()) {
        st.sessions.set_flash(
            &new.key,
            "Password changed. Every other browser was logged out.".into(),
        );
    }
    let mut r = redirect("/");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE_NAME, &id, None));
    Ok(r)
}

// ---- security reset ----

async fn reset_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    Ok(html(views::page(
        &ctx(&sess),
        Nav::Reset,
        "Security reset",
        views::reset_form(&ctx(&sess)),
    )))
}

async fn reset_submit(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (_sess, form) = authorize_post(&st, &headers, body)?;
    if form.get("confirm")? != Some("RESET") {
        return Err(PageError::BadRequest(
            "Type RESET in the confirmation box to reset; nothing was changed.".into(),
        ));
    }
    let users = st.backend.users_revoke_all(None).await?.users;
    let codes = st.backend.pairing_cancel_all().await?;
    let old = st.cert().fingerprint;
    let cert = st.rotate_certificate()?;
    st.sessions.clear();
    audit(
        &st,
        "admin.cert_rotated",
        actor(peer),
        "admin-certificate",
        serde_json::json!({ "old_fingerprint": old, "new_fingerprint": cert.fingerprint }),
    )
    .await;
    audit(
        &st,
        "admin.security_reset",
        actor(peer),
        "appliance",
        serde_json::json!({ "users_revoked": users, "codes_cancelled": codes }),
    )
    .await;
    let secrets = st.backend.secret_names().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not list vault secret names");
        Vec::new()
    });
    let mut r = html(views::bare_page(
        "Security reset done",
        views::reset_done(users, codes, &cert, &secrets),
    ));
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE_NAME, "", Some(0)));
    Ok(r)
}
