//! `/settings`: the owner sets the appliance up from the page alone. Every
//! form sends its changed keys to the supervisor (the admin component holds no
//! store), which validates the whole configuration with the same code as
//! `coworkd check-config` and `coworkctl settings`, writes the owner's file and
//! applies it, or refuses with every problem at its key; the form then shows
//! each problem next to its field and nothing is written. Each form carries
//! the version of the settings it was opened on: a second tab's save after a
//! first one is refused, never a silent overwrite.
//!
//! Sections are the configuration's own (`[agent]`, `[limits]`, `[guard]`,
//! `[sandbox]`, each `[channels.NAME]`, ...): a channel kind or key added to
//! the model later shows here without a page change. Secrets never pass
//! through a settings form: the credentials form stores them in the vault
//! (write-only) and settings name them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use maud::{Markup, html};

use super::handlers::{PageResult, authorize_post, ctx, flash_redirect, html as page_html};
use super::http::{PageError, PeerAddr, redirect};
use super::server::AppState;
use super::views::{self, Nav, PageCtx};
use crate::gateway::channels::registry;
use crate::ipc::{SettingChange, SettingProblem, SettingsResponse, SettingsView};

type St = State<Arc<AppState>>;
type Body = super::handlers::Body;

/// The sections with a form of their own, in the order the overview lists
/// them, with what each is for.
const SECTIONS: &[(&str, &str, &str)] = &[
    (
        "agent",
        "Agent",
        "the LLM provider, model, prices and approvals' lifetime",
    ),
    (
        "limits",
        "Limits",
        "per task and per sender: iterations, tokens, cost, time, sizes",
    ),
    (
        "guard",
        "Guardrails",
        "trusted and blocked command rules, with a tester",
    ),
    (
        "sandbox",
        "Tools and workspace",
        "network for commands, workspace quota, isolation",
    ),
    (
        "webhook",
        "Webhook listener",
        "where Telegram, Slack and Discord deliver events",
    ),
    ("audit", "Audit trail", "retention and size"),
    (
        "admin",
        "Admin page",
        "listen addresses and port (the page restarts)",
    ),
    ("log", "Logging", "log level"),
    (
        "update",
        "Updates",
        "update keys and where bundles come from",
    ),
    (
        "supervisor",
        "Supervisor",
        "restart policy and health checks",
    ),
];

/// Optional keys of a section that show as empty fields when unset (the
/// model omits unset options, so the form could not offer them otherwise).
const OPTIONAL: &[(&str, &[&str])] = &[
    (
        "agent",
        &[
            "provider",
            "model",
            "base_url",
            "region",
            "ca_file",
            "secret_name",
        ],
    ),
    // A transport's keys come from the registry, by its kind: see
    // `transport_keys`.
    ("channels.*.transport", &["kind"]),
    ("channels.*", &["approvers"]),
];

/// The settings of the transport `kind` names (none for a kind the
/// appliance does not know: the form then offers `kind` alone).
fn transport_keys(view: &SettingsView, transport: &str) -> Vec<&'static str> {
    let kind = view
        .values
        .iter()
        .find(|v| v.key == format!("{transport}.kind"))
        .map(|v| unquoted(&v.value))
        .unwrap_or_default();
    registry::transports()
        .find(|t| t.name == kind)
        .map(|t| t.keys())
        .unwrap_or_default()
}

fn problems_by_key(problems: &[SettingProblem]) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut general = Vec::new();
    for p in problems {
        match &p.key {
            Some(k) => by_key.entry(k.clone()).or_default().push(p.message.clone()),
            None => general.push(p.message.clone()),
        }
    }
    (by_key, general)
}

/// Keys that name a vault secret.
fn names_a_secret(key: &str) -> bool {
    key.ends_with("_secret") || key.ends_with("secret_name")
}

/// A TOML string value's text ("\"x\"" → x).
fn unquoted(value: &str) -> String {
    // The same reading as a value typed into `coworkctl settings set`.
    match crate::config::owner::parse_value(value) {
        Ok(toml::Value::String(text)) => text,
        _ => value.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Overview.

pub(crate) async fn overview(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match super::handlers::session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let view = st.backend.settings_show().await?;
    let channels = channel_names(&view);
    let body = html! {
        (owner_problems(&view))
        section.card {
            h2 { "Set up" }
            p.muted { "Each form checks the whole configuration before anything is saved and says which components restarted to apply it." }
            table {
                tr { td { a href="/settings/credentials" { "Credentials" } } td.muted { "bot tokens, signing secrets, API keys: stored in the vault, never shown again" } }
                tr { td { a href="/settings/channels" { "Channels" } } td.muted { "Telegram, Slack, Discord, local: access modes, allowlists, approvers, tools" } }
                @for (name, title, what) in SECTIONS {
                    tr { td { a href={ "/settings/" (name) } { (title) } } td.muted { (what) } }
                }
            }
        }
        section.card {
            h2 { "Channels" }
            @if channels.is_empty() { p.muted { "No channel yet." } }
            ul { @for c in &channels { li { a href={ "/settings/channels/" (c) } { (c) } } } }
        }
        p.muted { "Saved in " code { (view.owner_file) } " on the data partition (survives reboots and updates); the image's own files stay read-only. Version " code { (view.owner_version) } "." }
    };
    Ok(page_html(views::page(
        &ctx(&sess),
        Nav::Settings,
        "Settings",
        body,
    )))
}

fn owner_problems(view: &SettingsView) -> Markup {
    html! {
        @if !view.owner_problems.is_empty() {
            div.warn role="alert" {
                "The saved settings are NOT applied (they do not fit this version); the image's settings run until they are fixed:"
                ul { @for p in &view.owner_problems { li { (p.message) } } }
            }
        }
    }
}

fn channel_names(view: &SettingsView) -> Vec<String> {
    let mut out: Vec<String> = view
        .values
        .iter()
        .filter_map(|v| v.key.strip_prefix("channels."))
        .filter_map(|rest| rest.split('.').next())
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------
// A section's form (generic over the configuration's keys).

/// What a form shows besides the fields: problems from a refused save, the
/// values the owner typed and the version they were typed on, a guard
/// tester's answer.
#[derive(Debug, Default)]
struct FormState {
    problems: Vec<SettingProblem>,
    typed: BTreeMap<String, String>,
    /// The version `typed` was opened on (the form carries it again, so a
    /// second save of those values cannot pass over another tab's save).
    version: Option<String>,
    /// After a stale save: what the form sent, not saved (the fields show
    /// the settings as they are now).
    not_saved: Vec<SettingChange>,
    tester: Option<(String, String)>,
    /// The provider test's answer: what the model said, or why it failed.
    provider_test: Option<Result<String, String>>,
}

fn section_title(prefix: &str) -> String {
    if let Some(name) = prefix.strip_prefix("channels.") {
        return format!("Channel {name}");
    }
    SECTIONS
        .iter()
        .find(|(n, _, _)| *n == prefix)
        .map_or_else(|| prefix.to_string(), |(_, t, _)| (*t).to_string())
}

pub(crate) fn valid_section(prefix: &str) -> Result<(), PageError> {
    let known = SECTIONS.iter().any(|(n, _, _)| *n == prefix)
        || prefix.strip_prefix("channels.").is_some_and(|c| {
            !c.is_empty()
                && c.len() <= 32
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_'
                })
        });
    if known {
        Ok(())
    } else {
        Err(PageError::NotFound(
            "There is no such settings section.".into(),
        ))
    }
}

/// The keys a section's form lists: its running values, and its optional
/// keys that are unset.
fn section_keys(view: &SettingsView, prefix: &str) -> Vec<(String, String, String)> {
    let mut rows: Vec<(String, String, String)> = view
        .values
        .iter()
        .filter(|v| v.key.starts_with(&format!("{prefix}.")))
        .map(|v| (v.key.clone(), v.value.clone(), v.origin.clone()))
        .collect();
    for (pattern, keys) in OPTIONAL {
        let base = match pattern.strip_prefix("channels.*") {
            Some(rest) if prefix.starts_with("channels.") => format!("{prefix}{rest}"),
            Some(_) => continue,
            None if *pattern == prefix => prefix.to_string(),
            None => continue,
        };
        let from_kind = if *pattern == "channels.*.transport" {
            transport_keys(view, &base)
        } else {
            Vec::new()
        };
        for k in keys.iter().chain(&from_kind) {
            let key = format!("{base}.{k}");
            if !rows.iter().any(|(existing, _, _)| *existing == key) {
                rows.push((key, String::new(), "not set".into()));
            }
        }
    }
    rows.sort();
    rows
}

fn section_form(
    ctx: &PageCtx,
    view: &SettingsView,
    prefix: &str,
    secrets: &[String],
    state: &FormState,
) -> Markup {
    let (by_key, general) = problems_by_key(&state.problems);
    let rows = section_keys(view, prefix);
    let action = format!("/settings/{}", prefix.replace('.', "/"));
    let owner_file = &view.owner_file;
    html! {
        (owner_problems(view))
        @if !general.is_empty() || !by_key.is_empty() {
            div.warn role="alert" id="form-problems" {
                "Nothing was saved."
                ul { @for m in &general { li { (m) } } }
                @if !state.not_saved.is_empty() {
                    "The form shows the settings as they are now. What you sent differs at:"
                    ul id="not-saved" {
                        @for c in &state.not_saved {
                            li { code { (c.key) } " = " code { (c.value.as_deref().unwrap_or("(reset)")) } }
                        }
                    }
                }
            }
        }
        @for (key, value, _) in &rows {
            @if names_a_secret(key) && !value.is_empty() && !secrets.contains(&unquoted(value)) {
                div.warn { (key) " names the secret " code { (unquoted(value)) } ", which is not in the vault: store it under " a href="/settings/credentials" { "Credentials" } "." }
            }
        }
        section.card {
            form method="post" action=(action) id="settings-form" {
                (views::csrf_field(&ctx.csrf))
                input type="hidden" name="version" value=(state.version.as_deref().unwrap_or(&view.owner_version));
                p.muted { "Values are TOML: numbers, true/false, [\"lists\"], and text (quotes optional). An empty field, or \"reset\", returns to the image's value." }
                table {
                    tr { th { "Setting" } th { "Value" } th { "Set by" } }
                    @for (key, value, origin) in &rows {
                        @let short = key.strip_prefix(&format!("{prefix}.")).unwrap_or(key);
                        @let shown = state.typed.get(key).cloned().unwrap_or_else(|| value.clone());
                        tr id={ "row-" (key) } {
                            td { label for={ "f-" (key) } { code { (short) } } }
                            td {
                                input type="text" id={ "f-" (key) } name={ "v:" (key) } value=(shown) size="48";
                                @if let Some(msgs) = by_key.get(key) {
                                    @for m in msgs { div.error.field-error { (m) } }
                                }
                                @if origin == owner_file {
                                    label.inline-check { input type="checkbox" name={ "r:" (key) } value="1"; " reset" }
                                }
                            }
                            td.muted { @if origin == owner_file { "you (this page)" } @else { (origin) } }
                        }
                    }
                    tr {
                        td { label for="f-other-key" { "Another key" } input type="text" id="f-other-key" name="other_key" placeholder={ (prefix) ".…" } value=[state.typed.get("other_key")]; }
                        td { input type="text" id="f-other-value" name="other_value" size="48" value=[state.typed.get("other_value")];
                            @for (k, msgs) in &by_key {
                                @if !rows.iter().any(|(r, _, _)| r == k) { @for m in msgs { div.error.field-error { (k) ": " (m) } } }
                            }
                        }
                        td.muted { "e.g. a model's price: agent.prices.MODEL.input_usd_per_mtok" }
                    }
                }
                button type="submit" id="save" { "Save and apply" }
            }
        }
    }
}

/// A form sent back refused (400): its problems at their fields, nothing saved.
async fn refused_form(
    st: &AppState,
    sess: &super::session::SessionView,
    prefix: &str,
    state: FormState,
) -> PageResult {
    let mut r = render_section(st, sess, prefix, state).await?;
    *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    Ok(r)
}

async fn render_section(
    st: &AppState,
    sess: &super::session::SessionView,
    prefix: &str,
    state: FormState,
) -> PageResult {
    let view = st.backend.settings_show().await?;
    let secrets = st.backend.secret_names().await.unwrap_or_default();
    let mut body = section_form(&ctx(sess), &view, prefix, &secrets, &state);
    let ca_keys: Vec<String> = section_keys(&view, prefix)
        .into_iter()
        .map(|(k, _, _)| k)
        .filter(|k| k.ends_with(".ca_file"))
        .collect();
    if !ca_keys.is_empty() {
        body = html! { (body) (ca_form(&ctx(sess), &view, prefix, &ca_keys)) };
    }
    if prefix == "guard" {
        body = html! { (body) (guard_tester(&ctx(sess), &state)) };
    }
    if prefix == "agent" {
        body = html! { (provider_tester(&ctx(sess), &state)) (body) };
    }
    if prefix.starts_with("channels.") && channel_kind(&view, prefix) == IMESSAGE {
        body = html! { (ssh_key_card(&ctx(sess), &view, prefix)) (body) };
    }
    if let Some(name) = prefix.strip_prefix("channels.") {
        let states = st.backend.channel_states().await.unwrap_or_default();
        let live = states.iter().find(|s| s.name == name);
        body = html! {
            section.card id="channel-state" {
                table { tr { th { "State" } th { "Last message" } } tr { (state_cells(live)) } }
            }
            (body)
        };
    }
    if prefix.starts_with("channels.")
        && !view
            .values
            .iter()
            .any(|v| v.key.starts_with(&format!("{prefix}.")))
    {
        return Err(PageError::NotFound(
            "There is no such channel; add it on the Channels page.".into(),
        ));
    }
    Ok(page_html(views::page(
        &ctx(sess),
        Nav::Settings,
        &section_title(prefix),
        body,
    )))
}

pub(crate) async fn section_page(
    State(st): St,
    Path(section): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let sess = match super::handlers::session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    valid_section(&section)?;
    render_section(&st, &sess, &section, FormState::default()).await
}

pub(crate) async fn channel_page(
    State(st): St,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let sess = match super::handlers::session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let prefix = format!("channels.{name}");
    valid_section(&prefix)?;
    render_section(&st, &sess, &prefix, FormState::default()).await
}

pub(crate) async fn section_save(
    State(st): St,
    Path(section): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    valid_section(&section)?;
    save(&st, &headers, body, &section).await
}

pub(crate) async fn channel_save(
    State(st): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let prefix = format!("channels.{name}");
    valid_section(&prefix)?;
    save(&st, &headers, body, &prefix).await
}

/// The changed fields of a posted section form.
pub(crate) fn changes_of(
    form: &super::http::Form,
    view: &SettingsView,
    prefix: &str,
) -> Result<(Vec<SettingChange>, BTreeMap<String, String>), PageError> {
    let current: BTreeMap<&str, &str> = view
        .values
        .iter()
        .map(|v| (v.key.as_str(), v.value.as_str()))
        .collect();
    let mut changes = Vec::new();
    let mut typed = BTreeMap::new();
    for (name, value) in form.fields() {
        if let Some(key) = name.strip_prefix("v:") {
            if !key.starts_with(&format!("{prefix}.")) {
                return Err(PageError::BadRequest(format!(
                    "{key} is not in this section."
                )));
            }
            typed.insert(key.to_string(), value.to_string());
            let value = value.trim();
            let was = current.get(key).copied().unwrap_or("");
            if value == was {
                continue;
            }
            let reset = value.is_empty() || value == "reset";
            if reset && was.is_empty() {
                continue;
            }
            changes.push(SettingChange {
                key: key.to_string(),
                value: (!reset).then(|| value.to_string()),
            });
        } else if let Some(key) = name.strip_prefix("r:") {
            if !key.starts_with(&format!("{prefix}.")) {
                return Err(PageError::BadRequest(format!(
                    "{key} is not in this section."
                )));
            }
            changes.retain(|c| c.key != key);
            changes.push(SettingChange {
                key: key.to_string(),
                value: None,
            });
        }
    }
    let other_key = form.get("other_key")?.unwrap_or("").trim();
    if !other_key.is_empty() {
        let other_value = form.get("other_value")?.unwrap_or("").trim();
        typed.insert("other_key".into(), other_key.to_string());
        typed.insert("other_value".into(), other_value.to_string());
        if !other_key.starts_with(&format!("{prefix}.")) {
            return Err(PageError::BadRequest(format!(
                "{other_key} is not in this section (keys here start with {prefix}.)."
            )));
        }
        changes.push(SettingChange {
            key: other_key.to_string(),
            value: (!other_value.is_empty()).then(|| other_value.to_string()),
        });
    }
    Ok((changes, typed))
}

async fn save(st: &Arc<AppState>, headers: &HeaderMap, body: Body, prefix: &str) -> PageResult {
    let (sess, form) = authorize_post(st, headers, body)?;
    let version = form.require("version")?.to_string();
    let view = st.backend.settings_show().await?;
    let (changes, typed) = changes_of(&form, &view, prefix)?;
    if changes.is_empty() {
        return Ok(flash_redirect(
            st,
            &sess,
            "Nothing changed.".into(),
            &section_path(prefix),
        ));
    }
    // A setting that names a secret must name one the vault has: the page's
    // flow is credentials first.
    let secrets = st.backend.secret_names().await?;
    let missing: Vec<SettingProblem> = changes
        .iter()
        .filter(|c| names_a_secret(&c.key))
        .filter_map(|c| c.value.as_ref().map(|v| (c, unquoted(v))))
        .filter(|(_, name)| !secrets.contains(name))
        .map(|(c, name)| SettingProblem {
            key: Some(c.key.clone()),
            message: format!(
                "there is no secret named {name:?} in the vault; store it under Credentials first"
            ),
        })
        .collect();
    if !missing.is_empty() {
        let state = FormState {
            problems: missing,
            typed,
            version: Some(version),
            ..FormState::default()
        };
        return refused_form(st, &sess, prefix, state).await;
    }
    let changes_sent = changes.clone();
    match st
        .backend
        .settings_change(changes, Some(version.clone()))
        .await?
    {
        SettingsResponse::Applied { report, .. } => Ok(flash_redirect(
            st,
            &sess,
            format!("Saved: {}.", report.summary()),
            &section_path(prefix),
        )),
        SettingsResponse::Refused {
            problems,
            current_version,
        } => {
            // Another tab saved since this form was opened: every field it
            // sent holds the old values, so the form shows the settings as
            // they are now (saving the typed form again would undo the other
            // save) and lists what was sent.
            let state = if current_version != version {
                FormState {
                    problems,
                    not_saved: changes_sent,
                    ..FormState::default()
                }
            } else {
                FormState {
                    problems,
                    typed,
                    version: Some(version),
                    ..FormState::default()
                }
            };
            refused_form(st, &sess, prefix, state).await
        }
        SettingsResponse::View(_) => Err(PageError::Internal(
            "unexpected answer from the supervisor".into(),
        )),
    }
}

fn section_path(prefix: &str) -> String {
    format!("/settings/{}", prefix.replace('.', "/"))
}

// ---------------------------------------------------------------------------
// iMessage: the appliance's SSH key for the owner's Mac.

/// The transport kind whose channels get an SSH key card.
const IMESSAGE: &str = "imessage";

/// A channel's transport kind as its settings name it.
fn channel_kind(view: &SettingsView, prefix: &str) -> String {
    let key = format!("{prefix}.transport.kind");
    view.values
        .iter()
        .find(|v| v.key == key)
        .map(|v| unquoted(&v.value))
        .unwrap_or_default()
}

/// A setting's text, empty when unset.
fn value_of(view: &SettingsView, key: &str) -> String {
    view.values
        .iter()
        .find(|v| v.key == key)
        .map(|v| unquoted(&v.value))
        .unwrap_or_default()
}

/// The public key the Mac must know, with the `authorized_keys` line that
/// lets it run nothing but `imsg rpc`, and the form that generates the key.
fn ssh_key_card(ctx: &PageCtx, view: &SettingsView, prefix: &str) -> Markup {
    let public = value_of(view, &format!("{prefix}.transport.public_key"));
    let imsg = value_of(view, &format!("{prefix}.transport.imsg_path"));
    let imsg = if imsg.is_empty() {
        "imsg".to_string()
    } else {
        imsg
    };
    let action = format!("{}/ssh-key", section_path(prefix));
    html! {
        section.card id="ssh-key" {
            h2 { "SSH key for the Mac" }
            @if public.is_empty() {
                p { "The appliance reaches the Mac's Messages over SSH with a key of its own. Generate it, then add its public key to the Mac user's " code { "~/.ssh/authorized_keys" } "." }
            } @else {
                p { "The appliance's public key (add it to the Mac user's " code { "~/.ssh/authorized_keys" } "):" }
                pre.cmd id="ssh-public-key" { (public) }
                p.muted { "Better: the line below lets this key run nothing but " code { (imsg) " rpc" } " (no shell, no forwarding):" }
                pre.cmd id="authorized-keys-line" { "command=\"" (imsg) " rpc\",restrict " (public) }
            }
            form method="post" action=(action) id="ssh-key-form" {
                (views::csrf_field(&ctx.csrf))
                input type="hidden" name="version" value=(view.owner_version);
                @if public.is_empty() {
                    button type="submit" id="ssh-key-generate" { "Generate a key" }
                } @else {
                    label.inline-check { input type="checkbox" name="replace" value="yes"; " replace it (the Mac must then be given the new key)" }
                    " " button.secondary type="submit" id="ssh-key-generate" { "Generate a new key" }
                }
            }
        }
    }
}

/// Generates the channel's SSH key: the private key into the vault (never
/// shown), the channel's `key_secret` naming it and its `public_key` showing
/// the public half.
pub(crate) async fn channel_ssh_key(
    State(st): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let prefix = format!("channels.{name}");
    valid_section(&prefix)?;
    let version = form.require("version")?.to_string();
    let view = st.backend.settings_show().await?;
    if channel_kind(&view, &prefix) != IMESSAGE {
        return Err(PageError::BadRequest(format!(
            "{name} is not an iMessage channel; only those have an SSH key."
        )));
    }
    let had = !value_of(&view, &format!("{prefix}.transport.public_key")).is_empty();
    if had && form.get("replace")? != Some("yes") {
        return Err(PageError::Conflict(
            "The channel has a key already; tick \"replace it\" to generate a new one. Nothing changed.".into(),
        ));
    }
    let (private, public) =
        crate::gateway::channels::imessage::generate_key().map_err(PageError::Internal)?;
    let secret = secret_name(&format!("{name}_ssh_key"))?;
    st.backend
        .secret_set(
            secret.clone(),
            crate::ipc::SecretBytes(private.as_bytes().to_vec()),
        )
        .await?;
    let text = |v: &str| toml::Value::String(v.to_string()).to_string();
    let changes = vec![
        SettingChange {
            key: format!("{prefix}.transport.key_secret"),
            value: Some(text(&secret)),
        },
        SettingChange {
            key: format!("{prefix}.transport.public_key"),
            value: Some(text(&public)),
        },
    ];
    match st.backend.settings_change(changes, Some(version)).await? {
        SettingsResponse::Applied { report, .. } => Ok(flash_redirect(
            &st,
            &sess,
            format!(
                "SSH key generated (stored in the vault as {secret}); add the public key to the Mac: {}.",
                report.summary()
            ),
            &section_path(&prefix),
        )),
        SettingsResponse::Refused { problems, .. } => {
            let state = FormState {
                problems,
                ..FormState::default()
            };
            refused_form(&st, &sess, &prefix, state).await
        }
        SettingsResponse::View(_) => Err(PageError::Internal(
            "unexpected answer from the supervisor".into(),
        )),
    }
}

// ---------------------------------------------------------------------------
// CA files: for a LAN model server or a platform behind a private CA.

fn ca_form(ctx: &PageCtx, view: &SettingsView, prefix: &str, keys: &[String]) -> Markup {
    html! {
        section.card id="ca-upload" {
            h2 { "Trust a private CA" }
            p.muted { "Paste the CA certificate(s) in PEM form: they are stored on the data partition and the setting points at them." }
            form method="post" action="/settings/ca" {
                (views::csrf_field(&ctx.csrf))
                input type="hidden" name="version" value=(view.owner_version);
                input type="hidden" name="section" value=(prefix);
                label for="ca-key" { "For" }
                select id="ca-key" name="key" { @for k in keys { option value=(k) { (k) } } }
                label for="ca-pem" { "PEM" }
                textarea id="ca-pem" name="pem" rows="6" cols="64" placeholder="-----BEGIN CERTIFICATE-----" {}
                br;
                button type="submit" id="ca-store" { "Store and use" }
            }
        }
    }
}

pub(crate) async fn ca_store(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let section = form.require("section")?.to_string();
    valid_section(&section)?;
    let key = form.require("key")?.to_string();
    if !key.starts_with(&format!("{section}.")) || !key.ends_with(".ca_file") {
        return Err(PageError::BadRequest(format!(
            "{key} is not a CA setting of this section."
        )));
    }
    let pem = form.require("pem")?.to_string();
    let version = form.require("version")?.to_string();
    match st
        .backend
        .settings_store_ca(key, pem, Some(version))
        .await?
    {
        SettingsResponse::Applied { report, .. } => Ok(flash_redirect(
            &st,
            &sess,
            format!("CA stored and in use: {}.", report.summary()),
            &section_path(&section),
        )),
        SettingsResponse::Refused { problems, .. } => {
            let state = FormState {
                problems,
                ..FormState::default()
            };
            refused_form(&st, &sess, &section, state).await
        }
        SettingsResponse::View(_) => Err(PageError::Internal(
            "unexpected answer from the supervisor".into(),
        )),
    }
}

// ---------------------------------------------------------------------------
// Guardrails: the tester.

fn guard_tester(ctx: &PageCtx, state: &FormState) -> Markup {
    html! {
        section.card id="guard-tester" {
            h2 { "Test a command" }
            p.muted { "The guard's verdict under the rules saved now, as " code { "coworkctl guard check" } " prints it." }
            form method="post" action="/settings/guard/check" {
                (views::csrf_field(&ctx.csrf))
                input type="text" name="command" id="guard-command" size="60" value=[state.tester.as_ref().map(|(c, _)| c)];
                " " button type="submit" id="guard-check" { "Check" }
            }
            @if let Some((_, verdict)) = &state.tester {
                pre.cmd id="guard-verdict" { (verdict) }
            }
        }
    }
}

fn provider_tester(ctx: &PageCtx, state: &FormState) -> Markup {
    html! {
        section.card id="provider-test" {
            h2 { "Test the connection" }
            p.muted { "One short request to the model under the saved settings (it costs a few tokens)." }
            form method="post" action="/settings/agent/test" {
                (views::csrf_field(&ctx.csrf))
                button type="submit" id="provider-test-run" { "Test connection" }
            }
            @match &state.provider_test {
                Some(Ok(said)) => p.ok id="provider-test-result" { "Connected: " (said) },
                Some(Err(why)) => p.error id="provider-test-result" { "Failed: " (why) },
                None => {}
            }
        }
    }
}

pub(crate) async fn provider_test(
    State(st): St,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> PageResult {
    let (sess, _form) = authorize_post(&st, &headers, body)?;
    let answer = st
        .backend
        .provider_test(super::handlers::actor(peer))
        .await?;
    render_section(
        &st,
        &sess,
        "agent",
        FormState {
            provider_test: Some(answer),
            ..FormState::default()
        },
    )
    .await
}

pub(crate) async fn guard_check(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let command = form.require("command")?;
    if command.len() > 16 * 1024 || command.contains('\0') {
        return Err(PageError::BadRequest(
            "The command is longer than 16 KiB or contains a NUL byte.".into(),
        ));
    }
    let verdict = st.backend.guard_check(command.to_string()).await?;
    render_section(
        &st,
        &sess,
        "guard",
        FormState {
            tester: Some((command.to_string(), verdict)),
            ..FormState::default()
        },
    )
    .await
}

// ---------------------------------------------------------------------------
// Channels.

pub(crate) async fn channels_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match super::handlers::session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let view = st.backend.settings_show().await?;
    let states = st.backend.channel_states().await.unwrap_or_default();
    let state_of = |name: &str| states.iter().find(|s| s.name == name).cloned();
    let value = |key: String| {
        view.values
            .iter()
            .find(|v| v.key == key)
            .map(|v| unquoted(&v.value))
            .unwrap_or_default()
    };
    let body = html! {
        (owner_problems(&view))
        section.card {
            table {
                tr { th { "Channel" } th { "Transport" } th { "State" } th { "Last message" } th { "Direct messages" } th { "Groups" } }
                @for name in channel_names(&view) {
                    tr {
                        td { a href={ "/settings/channels/" (name) } { (name) } }
                        td { (value(format!("channels.{name}.transport.kind"))) }
                        (state_cells(state_of(&name).as_ref()))
                        td { (value(format!("channels.{name}.dm"))) }
                        td { (value(format!("channels.{name}.group"))) }
                    }
                }
            }
            @if states.is_empty() { p.muted { "The gateway did not report its channels (it may be restarting); refresh in a moment." } }
        }
        section.card {
            h2 { "Add a channel" }
            form method="post" action="/settings/channels/add" id="add-channel" {
                (views::csrf_field(&ctx(&sess).csrf))
                input type="hidden" name="version" value=(view.owner_version);
                label for="channel-name" { "Name" }
                input type="text" id="channel-name" name="name" placeholder="telegram";
                label for="channel-kind" { "Transport" }
                select id="channel-kind" name="kind" { @for t in registry::transports() { option value=(t.name) { (t.name) } } }
                " " button type="submit" { "Add" }
            }
            p.muted { "Then store its secrets under Credentials and name them in the channel's transport settings. What each transport needs:" }
            table id="transport-needs" {
                tr { th { "Transport" } th { "Needs" } th { "Inbound" } }
                @for t in registry::transports().filter(|t| !t.required.is_empty()) {
                    tr {
                        td { code { (t.name) } }
                        td { @for (i, key) in t.required.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (key) }
                            @if let Some((_, what)) = t.secrets.iter().find(|(k, _)| k == key) { " (" (what) ")" }
                        } }
                        td { @match t.webhook_route { Some(r) => { "webhook " code { (r) } } None => "connects out" } }
                    }
                }
            }
        }
    };
    Ok(page_html(views::page(
        &ctx(&sess),
        Nav::Settings,
        "Channels",
        body,
    )))
}

pub(crate) async fn channel_add(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let name = form.require("name")?.trim().to_string();
    let kind = form.require("kind")?.to_string();
    let version = form.require("version")?.to_string();
    if !registry::transports().any(|t| t.name == kind) {
        return Err(PageError::BadRequest(format!(
            "{kind:?} is not a transport this appliance knows."
        )));
    }
    let prefix = format!("channels.{name}");
    if valid_section(&prefix).is_err() {
        return Err(PageError::BadRequest(
            "A channel name is 1-32 characters of a-z, 0-9, - or _.".into(),
        ));
    }
    let changes = vec![
        SettingChange {
            key: format!("{prefix}.enabled"),
            value: Some("true".into()),
        },
        SettingChange {
            key: format!("{prefix}.transport.kind"),
            value: Some(kind),
        },
    ];
    match st.backend.settings_change(changes, Some(version)).await? {
        SettingsResponse::Applied { report, .. } => Ok(flash_redirect(
            &st,
            &sess,
            format!("Channel {name} added: {}.", report.summary()),
            &section_path(&prefix),
        )),
        SettingsResponse::Refused { problems, .. } => Err(PageError::BadRequest(format!(
            "The channel was not added: {}",
            problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ))),
        SettingsResponse::View(_) => Err(PageError::Internal(
            "unexpected answer from the supervisor".into(),
        )),
    }
}

/// A channel's live state and its last message, as two table cells.
fn state_cells(state: Option<&crate::ipc::ChannelState>) -> Markup {
    html! {
        @match state {
            Some(s) => {
                td class={ "channel-state " (s.state) } {
                    (s.state)
                    @if let Some(e) = &s.error { br; span.error { (e) } }
                }
                td { @match s.last_message_at { Some(t) => (views::fmt_time(u64::try_from(t).unwrap_or(0))), None => "never" } }
            }
            None => { td.muted { "unknown" } td {} }
        }
    }
}

// ---------------------------------------------------------------------------
// Credentials.

pub(crate) async fn credentials_page(State(st): St, headers: HeaderMap) -> PageResult {
    let sess = match super::handlers::session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return Ok(redirect(to)),
    };
    let secrets = st.backend.secrets().await?;
    let view = st.backend.settings_show().await?;
    let used_by = |name: &str| -> Vec<String> {
        view.values
            .iter()
            .filter(|v| names_a_secret(&v.key) && unquoted(&v.value) == name)
            .map(|v| v.key.clone())
            .collect()
    };
    let c = ctx(&sess);
    let body = html! {
        section.card {
            p.muted { "Values are stored in the vault, encrypted under the appliance's master key. They are never shown, logged or audited; replace one by storing it again." }
            table id="secrets" {
                tr { th { "Name" } th { "Used by" } th { "Version" } th { "Last change" } th {} }
                @for s in &secrets {
                    tr {
                        td { code { (s.name) } }
                        td { @for k in used_by(&s.name) { code { (k) } br; } }
                        td { (s.version) }
                        td { (s.updated_at) }
                        td {
                            form.inline method="post" action="/settings/credentials/delete" {
                                (views::csrf_field(&c.csrf))
                                input type="hidden" name="name" value=(s.name);
                                label.inline-check { input type="checkbox" name="confirm" value="yes"; " yes, delete" }
                                button.secondary type="submit" { "Delete" }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Store a secret" }
            form method="post" action="/settings/credentials/set" id="secret-form" autocomplete="off" {
                (views::csrf_field(&c.csrf))
                label for="secret-name" { "Name" }
                input type="text" id="secret-name" name="name" placeholder="telegram_bot_token";
                label for="secret-value" { "Value" }
                input type="password" id="secret-value" name="value" autocomplete="new-password";
                @if secrets.is_empty() {} @else {
                    label.inline-check { input type="checkbox" name="replace" value="yes"; " replace it if it exists" }
                }
                " " button type="submit" id="secret-store" { "Store" }
            }
        }
    };
    Ok(page_html(views::page(
        &c,
        Nav::Settings,
        "Credentials",
        body,
    )))
}

/// Secret names as the vault takes them.
pub(crate) fn secret_name(name: &str) -> Result<String, PageError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(name.to_string())
    } else {
        Err(PageError::BadRequest(
            "A secret's name is 1-64 characters of a-z, A-Z, 0-9, _, - or .".into(),
        ))
    }
}

pub(crate) async fn secret_set(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let name = secret_name(form.require("name")?)?;
    let value = zeroize::Zeroizing::new(form.require("value")?.as_bytes().to_vec());
    if value.is_empty() {
        return Err(PageError::BadRequest(
            "The value is empty; nothing was stored.".into(),
        ));
    }
    let exists = st.backend.secret_names().await?.contains(&name);
    if exists && form.get("replace")? != Some("yes") {
        return Err(PageError::Conflict(format!(
            "A secret named {name} exists already; tick \"replace it if it exists\" to store a new version. Nothing was stored."
        )));
    }
    let version = st
        .backend
        .secret_set(name.clone(), crate::ipc::SecretBytes(value.to_vec()))
        .await?;
    Ok(flash_redirect(
        &st,
        &sess,
        format!("Stored {name} (version {version})."),
        "/settings/credentials",
    ))
}

pub(crate) async fn secret_delete(State(st): St, headers: HeaderMap, body: Body) -> PageResult {
    let (sess, form) = authorize_post(&st, &headers, body)?;
    let name = secret_name(form.require("name")?)?;
    if form.get("confirm")? != Some("yes") {
        return Err(PageError::BadRequest(format!(
            "Tick \"yes, delete\" to delete {name}; nothing was deleted."
        )));
    }
    st.backend.secret_delete(name.clone()).await?;
    Ok(flash_redirect(
        &st,
        &sess,
        format!("Deleted {name}."),
        "/settings/credentials",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_secret_keys() {
        assert!(valid_section("agent").is_ok());
        assert!(valid_section("channels.telegram").is_ok());
        for bad in [
            "",
            "keystore",
            "channels.",
            "channels.Bad",
            "channels.a/b",
            "../x",
            "channels.x.y",
        ] {
            assert!(valid_section(bad).is_err(), "{bad}");
        }
        assert!(names_a_secret("channels.t.transport.token_secret"));
        assert!(names_a_secret("agent.secret_name"));
        assert!(!names_a_secret("agent.model"));
        assert_eq!(unquoted("\"abc\""), "abc");
        assert_eq!(unquoted("abc"), "abc");
        assert_eq!(unquoted("5"), "5");
    }

    /// A channel's form offers the settings of its own transport kind, from
    /// the registry (every platform's, the ones added later included).
    #[test]
    fn a_transport_form_offers_its_kinds_settings() {
        let view = |kind: &str| SettingsView {
            values: vec![crate::ipc::SettingValue {
                key: "channels.m.transport.kind".into(),
                value: format!("{kind:?}"),
                origin: "owner".into(),
            }],
            owner_file: String::new(),
            owner_version: String::new(),
            owner_problems: Vec::new(),
        };
        let keys = |kind: &str| -> Vec<String> {
            section_keys(&view(kind), "channels.m")
                .into_iter()
                .map(|(k, _, _)| k)
                .collect()
        };
        for kind in [
            "mattermost",
            "matrix",
            "email",
            "teams",
            "twitch",
            "bluebubbles",
            "signal",
            "imessage",
        ] {
            let spec = registry::transports().find(|t| t.name == kind).unwrap();
            let offered = keys(kind);
            for k in spec.keys() {
                let key = format!("channels.m.transport.{k}");
                assert!(offered.contains(&key), "{kind}: {key} not offered");
            }
        }
        assert!(keys("mattermost").contains(&"channels.m.transport.team_allowlist".to_string()));
        assert!(!keys("mattermost").contains(&"channels.m.transport.imap_url".to_string()));
        // An unknown kind: only the kind itself to correct.
        let unknown: Vec<String> = keys("no-such-kind")
            .into_iter()
            .filter(|k| k.starts_with("channels.m.transport."))
            .collect();
        assert_eq!(unknown, ["channels.m.transport.kind"]);
    }
}
