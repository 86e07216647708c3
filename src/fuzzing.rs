//! Entry points of the fuzz targets in `fuzz/` (README, "Fuzzing"): the parsers
//! of outside input that are private to their modules, reachable here without
//! making those modules public. Not an API: hidden from the docs, used by the
//! fuzz targets only. Each function runs the parser as production does and
//! asserts what its validated output promises; a failed assertion is a finding.

use axum::body::Bytes;

use crate::admin::{handlers, http::Form, owner, settings_page, validate};
use crate::gateway::GatewayError;
use crate::gateway::channels::discord::gateway as discord_gateway;
use crate::gateway::channels::imessage;
use crate::gateway::channels::matrix;
use crate::gateway::channels::mattermost;
use crate::gateway::channels::signal;
use crate::gateway::channels::slack::socket as slack_socket;
use crate::gateway::channels::slack::{Slack, SlackEvent};
use crate::gateway::channels::twitch;
use crate::ipc::{SettingValue, SettingsView};

/// One Slack Socket Mode text frame as a session reads it: the envelope, then
/// an `events_api` payload through [`Slack::parse`] (`Ok(None)` for envelopes
/// that carry no event).
pub fn slack_socket_frame(text: &str, parser: &Slack) -> Result<Option<SlackEvent>, GatewayError> {
    let frame = slack_socket::decode_frame(text)
        .map_err(|e| GatewayError::parse("slack", format!("socket envelope: {e}")))?;
    match frame.action {
        slack_socket::SocketAction::Disconnect(reason) => {
            assert!(reason.chars().count() <= 64, "disconnect reason not capped");
            Ok(None)
        }
        slack_socket::SocketAction::Event(payload) => {
            parser.parse(payload.get().as_bytes()).map(Some)
        }
        slack_socket::SocketAction::Other => Ok(None),
    }
}

/// One Discord Gateway text frame as a session reads it (Hello, READY,
/// MESSAGE_CREATE), acting on nothing.
pub fn discord_gateway_frame(text: &str, bot_user_id: Option<&str>) -> Result<(), GatewayError> {
    discord_gateway::decode_frame(text, bot_user_id)
}

/// One Mattermost WebSocket text frame as a session reads it (the challenge's
/// answer, `hello`, `posted` through [`mattermost::Mattermost::posted`] with
/// the restrictions of `parser`, as the bot `me`), acting on nothing.
pub fn mattermost_frame(
    text: &str,
    parser: &mattermost::Mattermost,
    me: &mattermost::Me,
) -> Result<Option<mattermost::MattermostEvent>, GatewayError> {
    mattermost::decode_frame(text, parser, me)
}

/// One Matrix `/sync` answer as the sync loop reads it (its size cap, the
/// ids' shapes, each event on its own), as the account `me`, acting on
/// nothing.
pub fn matrix_sync(body: &[u8], me: &str) -> Result<matrix::SyncBatch, GatewayError> {
    matrix::decode_sync(body, me)
}

/// One Twitch IRC line as a session reads it (IRCv3 tags, prefix, command,
/// parameters; a `PRIVMSG` through [`twitch::Twitch::privmsg`] with the
/// rules of `rules`, the bot's own id `own_id`), acting on nothing.
pub fn twitch_line(
    text: &str,
    rules: &twitch::Twitch,
    own_id: Option<&str>,
) -> Result<Option<twitch::TwitchEvent>, GatewayError> {
    twitch::decode_line(text, rules, own_id)
}

/// One line from signal-cli's JSON-RPC socket as a session reads it (a
/// `receive` notification through [`signal::Signal::envelope`] with the
/// rules of `rules`, an answer, another notification), acting on nothing;
/// asserts the ids a message promises.
pub fn signal_line(
    text: &str,
    rules: &signal::Signal,
) -> Result<Option<signal::SignalEvent>, GatewayError> {
    let event = signal::decode_line(text, rules)?;
    if let Some(signal::SignalEvent::Message { inbound, .. }) = &event {
        assert!(signal::is_aci(inbound.sender()), "sender not an ACI");
        assert!(
            signal::is_signal_id(inbound.chat()),
            "chat not an ACI or group id"
        );
    }
    Ok(event)
}

/// One line of `imsg rpc` as a session reads it (a JSON-RPC 2.0 answer or
/// notification; a `message` notification's message through
/// [`imessage::Imessage::message`] with the contacts of `rules` at `now`),
/// acting on nothing.
pub fn imessage_line(
    text: &str,
    rules: &imessage::Imessage,
    now: i64,
) -> Result<Option<imessage::ImessageEvent>, GatewayError> {
    imessage::decode_line(text, rules, now)
}

/// The sections a settings form may be posted to, as the fuzz target tries them.
const FORM_PREFIXES: [&str; 4] = ["agent", "limits", "guard", "channels.telegram"];

/// A `application/x-www-form-urlencoded` body as the admin page's forms read it
/// (setup, login, pairing, users, settings sections, secrets), with every field
/// value also run through each validator; asserts what each validator's `Ok`
/// promises.
pub fn admin_form(body: &[u8]) {
    let Ok(form) = Form::parse(Ok(Bytes::copy_from_slice(body))) else {
        return;
    };
    for (name, value) in form.fields() {
        admin_value(value);
        let _ = crate::config::owner::Change::parse(name, Some(value));
    }
    for name in [
        "csrf",
        "token",
        "password",
        "password2",
        "channel",
        "sender",
        "id",
        "ttl",
        "name",
        "value",
        "version",
    ] {
        let _ = form.get(name);
        let _ = form.require(name);
    }
    if let (Ok(Some(p)), Ok(Some(again))) = (form.get("password"), form.get("password2"))
        && owner::new_password_problem(p, again).is_none()
    {
        assert_eq!(p, again, "two different passwords accepted");
        assert!(
            !p.chars().any(char::is_control),
            "control character accepted"
        );
    }
    let view = settings_view();
    for prefix in FORM_PREFIXES {
        let _ = settings_page::valid_section(prefix);
        if let Ok((changes, _typed)) = settings_page::changes_of(&form, &view, prefix) {
            for c in changes {
                assert!(
                    c.key.starts_with(&format!("{prefix}.")),
                    "change of {} accepted in section {prefix}",
                    c.key
                );
            }
        }
    }
}

/// Every admin validator on one value; asserts each `Ok`'s promise.
fn admin_value(value: &str) {
    if let Ok(c) = validate::channel(value) {
        let b = c.as_bytes();
        assert!((1..=32).contains(&b.len()) && b[0].is_ascii_lowercase());
        assert!(
            b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'_' || x == b'-')
        );
    }
    if let Ok(s) = validate::sender(value) {
        assert!((1..=256).contains(&s.len()) && !s.chars().any(char::is_control));
    }
    if let Ok(n) = validate::id(value) {
        assert_eq!(value.parse::<u64>().ok(), Some(n));
    }
    if let Ok(Some(t)) = validate::ttl(Some(value)) {
        assert!((validate::TTL_MIN..=validate::TTL_MAX).contains(&t));
    }
    if let Ok(Some(k)) = validate::audit_kind(value) {
        assert!(k.len() <= 64 && !k.is_empty());
    }
    if let Ok(Some(w)) = validate::audit_since(value) {
        assert!([3600, 86400, 604800].contains(&w));
    }
    if let Ok(n) = settings_page::secret_name(value) {
        assert!((1..=64).contains(&n.len()));
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        );
    }
    if settings_page::valid_section(value).is_ok() {
        assert!(!value.is_empty() && value.len() <= 64);
    }
}

/// The audit page's query string (`kind`, `since`).
pub fn admin_audit_query(query: &str) {
    if let Ok(f) = handlers::audit_filter(Some(query)) {
        if let Some(k) = &f.kind {
            assert!(
                !k.is_empty()
                    && k.len() <= 64
                    && k.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'_'
                        || b == b'.')
            );
        }
        if let Some(w) = f.since {
            assert!([3600, 86400, 604800].contains(&w));
        }
    }
}

/// A settings view like the page gets from the supervisor.
fn settings_view() -> SettingsView {
    let value = |key: &str, value: &str| SettingValue {
        key: key.to_string(),
        value: value.to_string(),
        origin: "default".to_string(),
    };
    SettingsView {
        values: vec![
            value("agent.provider", "\"anthropic\""),
            value("agent.model", "\"claude\""),
            value("limits.max_iterations", "50"),
            value("guard.trusted", "[\"ls\"]"),
            value("channels.telegram.dm", "\"pairing\""),
        ],
        owner_file: "/var/lib/cowork/owner-settings.toml".to_string(),
        owner_version: "0000000000000000".to_string(),
        owner_problems: Vec::new(),
    }
}
