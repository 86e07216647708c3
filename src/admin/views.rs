//! Server-rendered HTML (maud escapes every interpolated value). No inline
//! script or style: the only script is `/assets/admin.js` (countdown, update upload).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::backend::*;
use super::cert::CertInfo;
use crate::ipc::{ApprovalListing, TaskListing, TaskState, UserListing, UserState};

/// Which navigation entry is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Pairing,
    Users,
    Tasks,
    Approvals,
    Audit,
    Settings,
    Updates,
    Password,
    Reset,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Dashboard, "/", "Dashboard"),
    (Nav::Pairing, "/pairing", "Pairing"),
    (Nav::Users, "/users", "Users"),
    (Nav::Tasks, "/tasks", "Tasks"),
    (Nav::Approvals, "/approvals", "Approvals"),
    (Nav::Audit, "/audit", "Audit"),
    (Nav::Settings, "/settings", "Settings"),
    (Nav::Updates, "/updates", "Updates"),
    (Nav::Password, "/password", "Password"),
    (Nav::Reset, "/security-reset", "Security reset"),
];

/// Data every authenticated page needs.
#[derive(Debug, Clone)]
pub struct PageCtx {
    pub csrf: String,
    pub flash: Option<String>,
}

pub fn fmt_time(secs: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
    else {
        return secs.to_string();
    };
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&f).unwrap_or_else(|_| secs.to_string())
}

/// A gateway time (signed unix seconds); before 1970 reads as 1970.
fn fmt_unix(secs: i64) -> String {
    fmt_time(u64::try_from(secs).unwrap_or(0))
}

fn fmt_left(secs: i64) -> String {
    if secs <= 0 {
        "expired".into()
    } else if secs >= 60 {
        format!("{} min {} s left", secs / 60, secs % 60)
    } else {
        format!("{secs} s left")
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · CoWork OS admin" }
            link rel="stylesheet" href="/assets/admin.css";
            script src="/assets/admin.js" defer {}
        }
    }
}

/// A page for a logged-in owner: navigation, logout, flash message.
pub fn page(ctx: &PageCtx, nav: Nav, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    span.brand { "CoWork OS" }
                    nav {
                        @for (n, href, label) in NAV {
                            a href=(href) class=[(*n == nav).then_some("active")] { (label) }
                        }
                    }
                    form method="post" action="/logout" {
                        (csrf_field(&ctx.csrf))
                        button.secondary type="submit" id="logout" { "Log out" }
                    }
                }
                main {
                    @if let Some(f) = &ctx.flash { div.flash role="status" { (f) } }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (login, setup, errors before login).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main.narrow { section.card { h1 { (title) } (body) } } }
        }
    }
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

pub fn error_body(status: u16, message: &str) -> Markup {
    html! {
        p.error { (message) }
        p.muted { "HTTP " (status) ". " a href="/" { "Back to the dashboard" } }
    }
}

pub fn setup_form(pre: &str, error: Option<&str>) -> Markup {
    html! {
        p { "No owner is set up yet. Enter the one-time setup token printed in the appliance log "
            "(" code { "journalctl -u coworkd" } ") and choose the owner password." }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/setup" {
            (csrf_field(pre))
            label for="token" { "Setup token" }
            input type="text" id="token" name="token" autocomplete="off" required size="44";
            (new_password_inputs("Owner password", "Repeat the password"))
            p { button type="submit" id="setup-submit" { "Set owner password" } }
        }
    }
}

/// The two inputs of a new owner password (`password`, `password2`), with the
/// minimum length the server enforces.
fn new_password_inputs(label: &str, again_label: &str) -> Markup {
    let min = super::owner::MIN_PASSWORD_CHARS;
    html! {
        label for="password" { (label) " (at least " (min) " characters)" }
        input type="password" id="password" name="password" autocomplete="new-password" required minlength=(min);
        label for="password2" { (again_label) }
        input type="password" id="password2" name="password2" autocomplete="new-password" required minlength=(min);
    }
}

pub fn login_form(pre: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/login" {
            (csrf_field(pre))
            label for="password" { "Owner password" }
            input type="password" id="password" name="password" autocomplete="current-password" required;
            p { button type="submit" id="login-submit" { "Log in" } }
        }
        p.muted { "Sessions live in memory: restarting the admin component logs everyone out." }
    }
}

pub fn dashboard(
    d: &Dashboard,
    doctor: &Result<crate::doctor::Report, String>,
    cert: &CertInfo,
) -> Markup {
    html! {
        @for w in &d.warnings { div.warn role="alert" { (w) } }
        @if d.keystore_tier == "file" && !d.warnings.iter().any(|w| w.contains("file")) {
            div.warn { "The keystore is on the file tier: secrets are protected only by file permissions." }
        }
        @for c in d.channels.iter().filter(|c| c.enabled && (c.dm_mode == "open" || c.group_mode == "open")) {
            @if !d.warnings.iter().any(|w| w.contains(&c.name) && w.contains("open")) {
                div.warn { "Channel " (c.name) " is in open mode: anyone can talk to the agent." }
            }
        }
        (doctor_card(doctor))
        section.card {
            h2 { "Components" }
            table { thead { tr { th { "Component" } th { "State" } th { "Detail" } } }
                tbody { @for c in &d.components { tr {
                    td { (c.name) }
                    td { @if c.up { span.up { "up" } } @else { span.down { "down" } } }
                    td { (c.detail) }
                } } }
            }
        }
        section.card {
            h2 { "Appliance" }
            table { tbody {
                tr { th { "Version" } td { (d.version) } }
                tr { th { "Keystore tier" } td { (d.keystore_tier) } }
                tr { th { "Admin certificate (SHA-256)" } td.fingerprint id="fingerprint" { (cert.fingerprint) } }
                tr { th { "Certificate valid until" } td { (fmt_time(cert.not_after)) } }
            } }
        }
        section.card {
            h2 { "Stored data" }
            table { thead { tr { th { "File" } th { "Schema" } th { "Path" } } }
                tbody { @for st in &d.stores { tr {
                    td { (st.name) } td.schema { (st.schema) } td { (st.file) }
                } } }
            }
        }
        section.card {
            h2 { "Channels" }
            table { thead { tr { th { "Channel" } th { "Enabled" } th { "DMs" } th { "Groups" } } }
                tbody { @for c in &d.channels { tr {
                    td { (c.name) } td { @if c.enabled { "yes" } @else { "no" } } td { (c.dm_mode) } td { (c.group_mode) }
                } } }
            }
        }
    }
}

/// The security checklist (`coworkctl doctor`): what is not right first,
/// each with its fix and the page that fixes it; the passing checks folded.
fn doctor_card(doctor: &Result<crate::doctor::Report, String>) -> Markup {
    use crate::doctor::CheckStatus;
    html! {
        section.card id="doctor" {
            h2 { "Security checklist" }
            @match doctor {
                Err(e) => p.error role="alert" { "The checklist could not be gathered: " (e) },
                Ok(report) => {
                    @let (ok, todo): (Vec<_>, Vec<_>) = report.checks.iter().partition(|c| c.status == CheckStatus::Ok);
                    p.muted { "The checks of " code { "coworkctl doctor" } ": " (ok.len()) " ok, " (todo.len()) " to look at." }
                    @if !todo.is_empty() {
                        table { thead { tr { th { "Status" } th { "Check" } th { "Found, and what to do" } th {} } }
                            tbody { @for c in &todo { tr data-check=(c.id) {
                                td { span class=(format!("check-{}", c.status.as_str())) { (c.status.as_str()) } }
                                td { code { (c.id) } }
                                td { (c.message) @if !c.fix.is_empty() { br; span.muted { "Fix: " code { (c.fix) } } } }
                                td { @if !c.page.is_empty() { a href=(c.page) { "Open" } } }
                            } } }
                        }
                    }
                    details { summary { (ok.len()) " checks pass" }
                        ul { @for c in &ok { li data-check=(c.id) { span.check-ok { "ok" } " " (c.message) } } }
                    }
                }
            }
        }
    }
}

pub fn pairing(
    ctx: &PageCtx,
    channels: &[String],
    active: &[PairingListing],
    lockouts: &[crate::ipc::LockoutListing],
    issued: Option<(&IssuedCode, &str)>,
    now: u64,
) -> Markup {
    html! {
        @if let Some((code, svg)) = issued {
            section.card id="issued" {
                h2 { "New pairing code for " (code.channel) }
                p { "Send this code to the bot in a direct message on " (code.channel) ". It works once. It is shown only now." }
                p.code id="pairing-code" { (code.code) }
                p { "Expires " (fmt_time(code.expires_at)) " — "
                    span.countdown data-expires-at=(code.expires_at) { (fmt_left(code.expires_at as i64 - now as i64)) } }
                div.qr { (PreEscaped(svg)) }
            }
        }
        section.card {
            h2 { "Issue a code" }
            p.muted { "Issuing a new code for a channel revokes that channel's previous code." }
            form method="post" action="/pairing/issue" {
                (csrf_field(&ctx.csrf))
                label for="channel" { "Channel" }
                select id="channel" name="channel" { @for c in channels { option value=(c) { (c) } } }
                label for="ttl" { "Valid for (seconds, 60–3600)" }
                input type="number" id="ttl" name="ttl" min="60" max="3600" value="300";
                p { button type="submit" id="issue" { "Issue code" } }
            }
        }
        section.card {
            h2 { "Active codes" }
            @if active.is_empty() { p.muted { "No active codes." } } @else {
                table { thead { tr { th { "Channel" } th { "Issued" } th { "Expires" } th {} } }
                    tbody { @for c in active { tr {
                        td { (c.channel) } td { (fmt_time(c.issued_at)) }
                        td { (fmt_time(c.expires_at)) " (" span data-expires-at=(c.expires_at) { (fmt_left(c.expires_at as i64 - now as i64)) } ")" }
                        td { form.inline method="post" action="/pairing/cancel" {
                            (csrf_field(&ctx.csrf)) input type="hidden" name="id" value=(c.id);
                            button.secondary type="submit" { "Cancel" } } }
                    } } }
                }
                form method="post" action="/pairing/cancel-all" {
                    (csrf_field(&ctx.csrf)) p { button.danger type="submit" { "Cancel all codes" } }
                }
            }
        }
        section.card id="lockouts" {
            h2 { "Pairing paused" }
            p.muted { "Senders who sent too many wrong codes; each was told once until when." }
            @if lockouts.is_empty() { p.muted { "Nobody is paused." } } @else {
                table { thead { tr { th { "Channel" } th { "Sender" } th { "Paused until" } th {} } }
                    tbody { @for l in lockouts { tr {
                        td { (l.channel) } td { code { (l.sender) } }
                        td { (fmt_time(u64::try_from(l.until).unwrap_or(0))) }
                        td { form.inline method="post" action="/pairing/lockouts/clear" {
                            (csrf_field(&ctx.csrf))
                            input type="hidden" name="channel" value=(l.channel);
                            input type="hidden" name="sender" value=(l.sender);
                            button.secondary type="submit" { "Let them try again" } } }
                    } } }
                }
            }
        }
    }
}

/// Whether the page offers to revoke a user in this state.
fn revocable(state: UserState) -> bool {
    match state {
        UserState::Paired | UserState::Allowlisted => true,
        UserState::Revoked => false,
    }
}

pub fn users(ctx: &PageCtx, users: &[UserListing], channels: &[String]) -> Markup {
    html! {
        @for ch in channels {
            section.card {
                h2 { (ch) }
                @let list: Vec<&UserListing> = users.iter().filter(|u| &u.channel == ch).collect();
                @if list.is_empty() { p.muted { "Nobody is paired or allowlisted." } } @else {
                    table { thead { tr { th { "Sender" } th { "State" } th { "Since" } th { "Last seen" } th {} } }
                        tbody { @for u in &list { tr {
                            td { code { (u.sender) } } td { (u.state.as_str()) } td { (fmt_unix(u.since)) }
                            td { @if let Some(t) = u.last_seen.and_then(|t| u64::try_from(t).ok()) { (fmt_time(t)) } @else { span.muted { "never" } } }
                            td { @if revocable(u.state) {
                                form.inline method="post" action="/users/revoke" {
                                    (csrf_field(&ctx.csrf))
                                    input type="hidden" name="channel" value=(u.channel);
                                    input type="hidden" name="sender" value=(u.sender);
                                    button.danger type="submit" { "Revoke" }
                                } } }
                        } } }
                    }
                    form method="post" action="/users/revoke-all" {
                        (csrf_field(&ctx.csrf)) input type="hidden" name="channel" value=(ch);
                        p { button.danger type="submit" { "Revoke all users of " (ch) } }
                    }
                }
            }
        }
    }
}

/// The page's name for a task state.
fn task_status(state: TaskState) -> &'static str {
    match state {
        TaskState::Queued => "queued",
        TaskState::Running => "running",
        TaskState::AwaitingApproval => "waiting_approval",
        TaskState::Completed => "done",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
        TaskState::Interrupted => "interrupted",
    }
}

/// Whether the page offers to cancel a task in this state (an interrupted
/// task is closed by a cancel).
fn cancellable(state: TaskState) -> bool {
    match state {
        TaskState::Queued
        | TaskState::Running
        | TaskState::AwaitingApproval
        | TaskState::Interrupted => true,
        TaskState::Completed | TaskState::Failed | TaskState::Cancelled => false,
    }
}

/// How much of a task's message the list shows.
const SUMMARY_CHARS: usize = 120;

pub fn tasks(ctx: &PageCtx, tasks: &[TaskListing]) -> Markup {
    html! { section.card {
        @if tasks.is_empty() { p.muted { "No tasks." } } @else {
            table { thead { tr { th { "#" } th { "Channel / user" } th { "Status" } th { "Summary" } th { "Updated" } th {} } }
                tbody { @for t in tasks { tr {
                    @let id = page_id(&t.id);
                    @let (channel, user) = t.user.split_once(':').unwrap_or(("", &t.user));
                    td { (id) } td { (channel) " / " (user) } td { (task_status(t.state)) }
                    td { (t.prompt.chars().take(SUMMARY_CHARS).collect::<String>()) }
                    td { (fmt_unix(t.updated_at)) }
                    td { @if cancellable(t.state) {
                        form.inline method="post" action="/tasks/cancel" {
                            (csrf_field(&ctx.csrf)) input type="hidden" name="id" value=(id);
                            button.secondary type="submit" { "Cancel" } }
                        " "
                        form.inline method="post" action="/tasks/cancel" {
                            (csrf_field(&ctx.csrf)) input type="hidden" name="id" value=(id);
                            input type="hidden" name="force" value="1";
                            button.danger type="submit" { "Force-stop" } }
                    } }
                } } }
            }
        }
    } }
}

pub fn approvals(ctx: &PageCtx, list: &[ApprovalListing], now: u64) -> Markup {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    html! {
        @if list.is_empty() { section.card { p.muted { "No pending approvals." } } }
        @for a in list { section.card {
            @let id = page_id(&a.id);
            @let expires_at = u64::try_from(a.expires_at).unwrap_or(0);
            h2 { "Approval #" (id) " for task #" (page_id(&a.task_id)) }
            table { tbody {
                tr { th { "Command" } td { pre.cmd { (a.command) } } }
                tr { th { "Working directory" } td { code { (a.cwd) } } }
                tr { th { "Requested by" } td { (a.requester) } }
                tr { th { "Expires" } td { (fmt_time(expires_at)) " (" span data-expires-at=(expires_at) { (fmt_left(a.expires_at.saturating_sub(now))) } ")" } }
            } }
            form.inline method="post" action="/approvals/decide" {
                (csrf_field(&ctx.csrf)) input type="hidden" name="id" value=(id);
                input type="hidden" name="decision" value="approve";
                button type="submit" { "Approve once" } }
            " "
            form.inline method="post" action="/approvals/decide" {
                (csrf_field(&ctx.csrf)) input type="hidden" name="id" value=(id);
                input type="hidden" name="decision" value="deny";
                button.danger type="submit" { "Deny" } }
        } }
    }
}

pub const SINCE_CHOICES: &[(&str, &str)] = &[
    ("3600", "last hour"),
    ("86400", "last 24 hours"),
    ("604800", "last 7 days"),
    ("", "all time"),
];

pub fn audit(
    ctx: &PageCtx,
    entries: &[AuditEntry],
    kind: &str,
    since: &str,
    verdict: Option<&AuditVerdict>,
) -> Markup {
    html! {
        @if let Some(v) = verdict { section.card id="verdict" {
            h2 { "Verification" }
            @if v.intact { p.up { "Intact: " (v.entries) " entries verified. " (v.detail) } }
            @else { p.down { "BROKEN"
                @if let Some(s) = v.first_bad_seq { " at entry " (s) } ": " (v.detail) " (" (v.entries) " entries)" } }
        } }
        section.card {
            form method="get" action="/audit" {
                label for="kind" { "Kind" }
                input type="text" id="kind" name="kind" value=(kind) placeholder="e.g. admin.login";
                label for="since" { "Since" }
                select id="since" name="since" { @for (v, l) in SINCE_CHOICES {
                    option value=(v) selected[*v == since] { (l) } } }
                p { button type="submit" { "Filter" } }
            }
            form method="post" action="/audit/verify" {
                (csrf_field(&ctx.csrf)) button.secondary type="submit" id="verify" { "Verify the audit chain" }
            }
        }
        section.card {
            @if entries.is_empty() { p.muted { "No entries." } } @else {
                table { thead { tr { th { "#" } th { "Time" } th { "Component" } th { "Kind" } th { "Actor" } th { "Subject" } th { "Details" } } }
                    tbody { @for e in entries.iter().rev() { tr {
                        td { (e.seq) } td { (fmt_time(e.time)) } td { (e.component) } td { code { (e.kind) } }
                        td { (e.actor) } td { (e.subject) } td { code { (e.payload.to_string()) } }
                    } } }
                }
            }
        }
    }
}

/// The Updates page: `update status`, then the upload (needs the script for
/// the progress bar; `coworkctl update apply` does the same from a shell).
pub fn updates(ctx: &PageCtx, status: Result<&serde_json::Value, &str>) -> Markup {
    let field = |v: &serde_json::Value, k: &str| match &v[k] {
        serde_json::Value::Null => "none".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    html! {
        section.card {
            h2 { "Slots" }
            @match status {
                Ok(v) => {
                    @if let Some(why) = v["fallback"].as_str() {
                        div.warning role="alert" id="update-fallback" { "The last update did not come up: " (why) }
                    }
                    table {
                        tr { th { "Running slot" } td id="update-running" { (field(v, "running").to_uppercase()) ", image version " (field(v, "running_version")) } }
                        tr { th { "Other slot" } td { (field(v, "other").to_uppercase()) ", version " (field(v, "other_version")) } }
                        tr { th { "Accepts versions" } td { "above " (field(v, "floor")) } }
                        @if let Some(a) = v.get("last_attempt").filter(|a| !a.is_null()) {
                            tr { th { "Last attempt" } td { "version " (field(a, "version")) " to slot " (field(a, "target").to_uppercase()) ": " (a["result"].to_string()) } }
                        }
                    }
                }
                Err(e) => { p.error { "Update status is not available: " (e) } }
            }
        }
        (update_feed_card(ctx, status))
        section.card {
            h2 { "Install an update" }
            p { "Choose a signed CoWork OS update bundle. It is checked (signature, version, hardware) and written to the other slot; the running slot is not touched. The appliance boots the new version on trial at the next restart." }
            div id="update-upload" data-csrf=(ctx.csrf) {
                input type="file" id="update-file" accept=".bundle,application/octet-stream";
                button type="button" id="update-start" { "Upload and install" }
                progress id="update-progress" max="100" value="0" {}
                p id="update-result" role="status" {}
            }
            noscript { p { "Uploading needs JavaScript (for the progress bar). From a shell: " code { "coworkctl update apply FILE|URL" } "." } }
        }
    }
}

/// The signed update feed: the last check, "Check now", and "Install" when
/// it offered a newer version.
fn update_feed_card(ctx: &PageCtx, status: Result<&serde_json::Value, &str>) -> Markup {
    let feed_url = status.ok().and_then(|v| v["feed_url"].as_str());
    let last = status
        .ok()
        .map(|v| &v["last_check"])
        .filter(|c| !c.is_null());
    html! {
        section.card id="update-feed" {
            h2 { "Update feed" }
            @match feed_url {
                None => p.muted { "No update feed is configured ("
                    code { "update.feed_url" } "): bring bundles yourself, below." },
                Some(url) => {
                    p { "Checked at boot and daily: " code { (url) } }
                    @match last {
                        None => p id="update-last-check" { "Not checked yet." },
                        Some(c) => {
                            @if let Some(e) = c["error"].as_str() {
                                p.error id="update-last-check" { "The last check (" (fmt_time(c["checked_at"].as_u64().unwrap_or(0))) ") failed: " (e) }
                            } @else if c["installable"].as_bool() == Some(true) {
                                p.warn id="update-last-check" { "Version " (c["newest_version"]) " (" (c["newest_label"].as_str().unwrap_or("")) ") is available; version " (c["running_version"]) " runs (checked " (fmt_time(c["checked_at"].as_u64().unwrap_or(0))) ")." }
                                form method="post" action="/updates/install" {
                                    (csrf_field(&ctx.csrf))
                                    button type="submit" id="update-install" { "Install version " (c["newest_version"]) }
                                }
                            } @else {
                                p id="update-last-check" { "Up to date: version " (c["running_version"]) " (checked " (fmt_time(c["checked_at"].as_u64().unwrap_or(0))) ")." }
                            }
                        }
                    }
                    form method="post" action="/updates/check" {
                        (csrf_field(&ctx.csrf))
                        button type="submit" id="update-check" { "Check now" }
                    }
                }
            }
        }
    }
}

pub fn password_form(ctx: &PageCtx, error: Option<&str>) -> Markup {
    html! { section.card {
        p { "Changing the owner password logs out every other browser." }
        @if let Some(e) = error { p.error role="alert" id="password-error" { (e) } }
        form method="post" action="/password" {
            (csrf_field(&ctx.csrf))
            label for="current" { "Current password" }
            input type="password" id="current" name="current" autocomplete="current-password" required;
            (new_password_inputs("New password", "New password again"))
            p { button type="submit" id="change-password" { "Change password" } }
        }
    } }
}

pub fn reset_form(ctx: &PageCtx) -> Markup {
    html! { section.card {
        p { "If you suspect a compromise, this does all of the following at once:" }
        ul {
            li { "revokes every paired and allowlisted user on every channel;" }
            li { "invalidates every pairing code;" }
            li { "replaces the admin certificate (your browser will show a new fingerprint) and logs out every session, including this one." }
        }
        p { "Afterwards you get a checklist of credentials to rotate by hand." }
        form method="post" action="/security-reset" {
            (csrf_field(&ctx.csrf))
            label for="confirm" { "Type RESET to confirm" }
            input type="text" id="confirm" name="confirm" autocomplete="off" required;
            p { button.danger type="submit" id="reset" { "Reset security" } }
        }
    } }
}

pub fn reset_done(users: usize, codes: usize, cert: &CertInfo, secrets: &[String]) -> Markup {
    html! {
        p { "Done: " (crate::plural(users as u64, "user revoked", "users revoked")) ", "
            (crate::plural(codes as u64, "pairing code invalidated", "pairing codes invalidated"))
            ", every session ended." }
        p { "New certificate fingerprint (check it when your browser warns you):" }
        p.fingerprint id="fingerprint" { (cert.fingerprint) }
        h2 { "Now rotate these credentials" }
        ul id="checklist" {
            @for s in secrets { li { code { (s) } " — issue a new value at its provider, then store it with " code { "coworkctl secret set " (s) } } }
            li { "The owner password of this page, if it may have been seen." }
            li { "Review the audit log for what happened before the reset." }
        }
        p { a href="/login" { "Log in again" } }
    }
}
