//! Configuration: `coworkd.toml` plus drop-ins in `coworkd.toml.d/*.toml` (applied in
//! name order, later files overriding earlier ones key by key), then the owner's
//! settings on the data partition (`$STATE/settings/owner.toml`, see [`owner`]),
//! parsed into the typed model, then validated once. Every problem is reported as `file:line:column:
//! message`; unknown keys are errors; the production profile refuses insecure
//! settings.
//!
//! Owner: the supervisor loads it at start and on SIGHUP; each component loads the
//! same files itself (they hold no secrets, only settings).

mod error;
mod model;
pub mod owner;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigProblem};
pub use model::*;

use crate::agent::settings::{MAX_MEMORY_BYTES, MIN_MEMORY_BYTES};

/// One configuration file as read from disk.
#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    text: String,
}

/// Loads and validates the configuration at `path` and its drop-ins.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let sources = read_sources(path)?;
    parse_sources(&sources)
}

/// The configuration as it runs: the image's files and the owner's settings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Which file set each value (dotted key); a key not here is a default.
    pub origins: BTreeMap<String, PathBuf>,
    /// The owner's settings file and what became of it.
    pub owner: OwnerState,
    /// The version of the owner's file these settings were made from.
    pub owner_version: String,
}

/// What became of the owner's settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerState {
    /// There is none (nothing was set on the page or with coworkctl).
    Absent,
    Applied,
    /// It does not fit this version's configuration (e.g. after an update):
    /// the image's settings run alone, and the page says why.
    Refused(ConfigError),
}

impl Loaded {
    /// Which file set `key` ("default" when none did).
    pub fn origin(&self, key: &str) -> String {
        self.origins
            .get(key)
            .map_or_else(|| "default".to_string(), |p| p.display().to_string())
    }
}

/// Loads the configuration with the owner's settings (`owner_file`, usually
/// [`crate::paths::Paths::owner_settings`]). The image's files must be valid;
/// owner settings that are not are left out (see [`OwnerState::Refused`])
/// rather than keeping the appliance, and so its admin page, from starting.
pub fn load_layers(path: &Path, owner_file: &Path) -> Result<Loaded, ConfigError> {
    let base = read_sources(path)?;
    let text = owner::read(owner_file).map_err(|e| ConfigError {
        problems: vec![unplaced(
            owner_file,
            format!("cannot read: {}", crate::plain(&e.to_string())),
        )],
    });
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            let config = parse_sources(&base)?;
            return Ok(Loaded {
                origins: origins(&base),
                config,
                owner: OwnerState::Refused(e),
                owner_version: owner::version(""),
            });
        }
    };
    if text.trim().is_empty() {
        let config = parse_sources(&base)?;
        return Ok(Loaded {
            origins: origins(&base),
            config,
            owner: OwnerState::Absent,
            owner_version: owner::version(&text),
        });
    }
    match with_owner(&base, owner_file, &text) {
        Ok(loaded) => Ok(loaded),
        Err(refused) => {
            let config = parse_sources(&base)?;
            Ok(Loaded {
                origins: origins(&base),
                config,
                owner: OwnerState::Refused(refused),
                owner_version: owner::version(&text),
            })
        }
    }
}

/// Validates a candidate text for the owner's file against the image's files:
/// what the settings would be, or every problem (placed in the file that has it).
pub fn check_owner(path: &Path, owner_file: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let base = read_sources(path)?;
    with_owner(&base, owner_file, text)
}

fn with_owner(base: &[Source], owner_file: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let mut all = base.to_vec();
    let owner = Source {
        path: owner_file.to_path_buf(),
        text: text.to_string(),
    };
    all.push(owner.clone());
    let config = parse_sources(&all)?;
    // The image's files decide the profile (the last that says one; else production).
    let base_profile = base
        .iter()
        .filter_map(|s| s.text.parse::<toml::Table>().ok())
        .filter_map(|t| {
            t.get("profile")
                .and_then(|p| p.as_str().map(str::to_string))
        })
        .next_back();
    if base_profile.as_deref() != Some("development") {
        let problems: Vec<ConfigProblem> = production_owner_rules(&owner)
            .into_iter()
            .map(|(key, message)| locate(std::slice::from_ref(&owner), &key, message))
            .collect();
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
    }
    Ok(Loaded {
        origins: origins(&all),
        config,
        owner: OwnerState::Applied,
        owner_version: owner::version(text),
    })
}

/// What the owner's settings (the page, `coworkctl settings`) may not do on a
/// production image: leave the profile, move the master key, or accept a
/// weaker sandbox. The image's own files decide those.
fn production_owner_rules(owner: &Source) -> Vec<(Vec<String>, String)> {
    let Ok(table) = owner.text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let key = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = Vec::new();
    if table.contains_key("profile") {
        out.push((
            key(&["profile"]),
            "the profile is the image's: the owner's settings cannot leave production".to_string(),
        ));
    }
    if table.contains_key("keystore") {
        out.push((
            key(&["keystore"]),
            "where the master key lives is the image's choice in production".to_string(),
        ));
    }
    let weaker = table
        .get("sandbox")
        .and_then(|s| s.get("require_full_isolation"))
        .and_then(toml::Value::as_bool)
        == Some(false);
    if weaker {
        out.push((
            key(&["sandbox", "require_full_isolation"]),
            "weaker sandbox isolation cannot be accepted from the owner's settings in production"
                .to_string(),
        ));
    }
    out
}

/// Which source set each leaf key (the last one that did).
fn origins(sources: &[Source]) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for source in sources {
        if let Ok(table) = source.text.parse::<toml::Table>() {
            for key in owner::flatten(&toml::Value::Table(table)).into_keys() {
                out.insert(key, source.path.clone());
            }
        }
    }
    out
}

/// Parses and validates configuration text, as if it were the file `path` alone.
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    parse_sources(&[Source {
        path: path.to_path_buf(),
        text: text.to_string(),
    }])
}

fn read_sources(path: &Path) -> Result<Vec<Source>, ConfigError> {
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    match std::fs::read_to_string(path) {
        Ok(text) => sources.push(Source {
            path: path.to_path_buf(),
            text,
        }),
        Err(e) => problems.push(unplaced(
            path,
            format!("cannot read: {}", crate::plain(&e.to_string())),
        )),
    }
    let dropin_dir = crate::paths::Paths::config_dropin_dir(path);
    match std::fs::read_dir(&dropin_dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for file in files {
                match std::fs::read_to_string(&file) {
                    Ok(text) => sources.push(Source { path: file, text }),
                    Err(e) => problems.push(unplaced(
                        &file,
                        format!("cannot read: {}", crate::plain(&e.to_string())),
                    )),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(unplaced(
            &dropin_dir,
            format!(
                "cannot read drop-in directory: {}",
                crate::plain(&e.to_string())
            ),
        )),
    }
    if problems.is_empty() {
        Ok(sources)
    } else {
        Err(ConfigError { problems })
    }
}

fn parse_sources(sources: &[Source]) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut merged = toml::Table::new();
    for source in sources {
        // Each file on its own must be valid TOML and fit the model, so that every
        // error points into the file that has it.
        let table = match source.text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => {
                problems.push(at_span(source, e.span(), e.message()));
                continue;
            }
        };
        let wrong = type_problems(source);
        if !wrong.is_empty() {
            problems.extend(wrong);
            continue;
        }
        merge(&mut merged, table);
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let config: Config = match toml::Value::Table(merged).try_into() {
        Ok(c) => c,
        Err(e) => {
            let last = sources.last().map(|s| s.path.clone()).unwrap_or_default();
            return Err(ConfigError {
                problems: vec![unplaced(&last, format!("merged configuration: {e}"))],
            });
        }
    };
    let problems: Vec<ConfigProblem> = validate(&config)
        .into_iter()
        .map(|(key, message)| locate(sources, &key, message))
        .collect();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

/// Every entry of one file that does not fit the model, not only the first:
/// serde stops at the first, so that entry is blanked out (spaces of the same
/// length, so every later position stays true in the file as written) and the
/// file read again, up to [`MAX_TYPE_PROBLEMS`] times.
fn type_problems(source: &Source) -> Vec<ConfigProblem> {
    let mut text = source.text.clone();
    let mut problems: Vec<ConfigProblem> = Vec::new();
    let mut seen = Vec::new();
    while problems.len() < MAX_TYPE_PROBLEMS {
        let Err(e) = toml::from_str::<Config>(&text) else {
            break;
        };
        // A field missing because its entry was blanked is not news.
        if problems.is_empty() || !e.message().starts_with("missing field") {
            problems.push(at_span(source, e.span(), e.message()));
        }
        let Some(span) = e.span() else {
            break;
        };
        if seen.contains(&span) {
            break;
        }
        seen.push(span.clone());
        match blank_entry(&text, span) {
            Some(blanked) => text = blanked,
            None => break,
        }
    }
    problems
}

/// At most this many type problems are listed per file.
const MAX_TYPE_PROBLEMS: usize = 20;

/// `text` with the lines of the entry at `span` turned to spaces (newlines
/// kept); a table header takes its whole table with it. `None` when that
/// changes nothing.
fn blank_entry(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let from = text.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
    let mut to = text.get(end..)?.find('\n').map_or(text.len(), |i| end + i);
    if text.get(from..)?.trim_start().starts_with('[') {
        // Up to the next table header (or the end).
        let mut at = to;
        to = text.len();
        while at < text.len() {
            let line_start = at + 1;
            let rest = text.get(line_start..).unwrap_or("");
            if rest.trim_start().starts_with('[') {
                to = line_start;
                break;
            }
            at = rest.find('\n').map_or(text.len(), |i| line_start + i);
        }
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(text.get(..from)?);
    for c in text.get(from..to)?.chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out.push_str(text.get(to..)?);
    (out != text).then_some(out)
}

/// `[sandbox]` sets the executor's ceilings (time, output, file size) and
/// `[limits]` what the agent's commands get, which must fit under them: a
/// limit above its ceiling would be cut silently at every command.
fn sandbox_ceiling_problems(
    sb: &crate::sandbox::SandboxSettings,
    l: &crate::guard::LimitSettings,
) -> Vec<([&'static str; 2], String)> {
    let mut out = Vec::new();
    let output_cap = u64::try_from(sb.output_cap_bytes).unwrap_or(u64::MAX);
    for (field, value) in [
        ("default_timeout_secs", sb.default_timeout_secs),
        ("max_timeout_secs", sb.max_timeout_secs),
        ("output_cap_bytes", output_cap),
        ("max_file_bytes", sb.max_file_bytes),
    ] {
        if value == 0 {
            out.push((
                ["sandbox", field],
                format!("{field} must be greater than 0"),
            ));
        }
    }
    if sb.default_timeout_secs > sb.max_timeout_secs {
        out.push((
            ["sandbox", "default_timeout_secs"],
            format!(
                "default_timeout_secs ({}) is greater than max_timeout_secs ({})",
                sb.default_timeout_secs, sb.max_timeout_secs
            ),
        ));
    }
    let max_output = crate::sandbox::MAX_OUTPUT_CAP;
    if sb.output_cap_bytes > max_output {
        out.push((
            ["sandbox", "output_cap_bytes"],
            format!("output_cap_bytes must be at most {max_output} (64 MiB)"),
        ));
    }
    for (field, limit, ceiling_field, ceiling) in [
        (
            "command_timeout_max_secs",
            l.command_timeout_max_secs,
            "max_timeout_secs",
            sb.max_timeout_secs,
        ),
        (
            "output_cap_bytes",
            l.output_cap_bytes,
            "output_cap_bytes",
            output_cap,
        ),
        (
            "max_file_bytes",
            l.max_file_bytes,
            "max_file_bytes",
            sb.max_file_bytes,
        ),
    ] {
        if limit > ceiling {
            out.push((
                ["limits", field],
                format!(
                    "{field} ({limit}) is greater than [sandbox] {ceiling_field} ({ceiling}), the most the sandbox allows; lower it or raise the sandbox's"
                ),
            ));
        }
    }
    out
}

/// Later tables override earlier ones key by key; other values are replaced whole.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Checks that go beyond the types. Returns (key path, message) pairs.
fn validate(c: &Config) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let key = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let production = c.profile == Profile::Production;

    if production && matches!(c.log.level, LogLevel::Debug | LogLevel::Trace) {
        out.push((
            key(&["log", "level"]),
            format!(
                "log level \"{}\" is not allowed in the production profile (debug logs may carry message text); use \"info\" or set profile = \"development\"",
                c.log.level.name()
            ),
        ));
    }
    for (name, ch) in &c.channels {
        if !valid_name(name) {
            out.push((
                key(&["channels", name]),
                format!("channel name \"{name}\" must be 1-32 characters of a-z, 0-9, - or _"),
            ));
        }
        for (ctx, mode) in [("dm", ch.dm), ("group", ch.group)] {
            if production && mode == AccessMode::Open {
                out.push((
                    key(&["channels", name, ctx]),
                    format!(
                        "open mode lets anyone on {name} use the agent; it is refused in the production profile (use \"pairing\" or \"allowlist\")"
                    ),
                ));
            }
        }
        if let Some(spec) = crate::gateway::channels::registry::spec(ch.transport.kind) {
            // Access is granted to stable ids only: a display name or an
            // e-mail address can be changed or spoofed.
            if let Some((shaped, what)) = spec.id_shape {
                let chats = ch.chats.keys();
                for (field, ids) in [
                    ("allowlist", ch.allowlist.iter().collect::<Vec<_>>()),
                    ("group_allowlist", ch.group_allowlist.iter().collect()),
                    ("approvers", ch.approvers.iter().collect()),
                    ("chats", chats.collect()),
                    (
                        "transport.team_allowlist",
                        ch.transport.team_allowlist.iter().collect(),
                    ),
                    (
                        "transport.channel_allowlist",
                        ch.transport.channel_allowlist.iter().collect(),
                    ),
                ] {
                    if let Some(bad) = ids.into_iter().find(|id| !shaped(id)) {
                        let mut at = vec!["channels", name.as_str()];
                        at.extend(field.split('.'));
                        out.push((key(&at), format!("{field}: {bad:?} is not {what}")));
                    }
                }
            }
            // The transport reads only what its registry entry lists: a key it
            // would ignore is a mistake (a secret named for the wrong transport).
            for set in ch.transport.keys_set() {
                if !spec.accepts(set) {
                    let reads = match spec.keys() {
                        k if k.is_empty() => "nothing".to_string(),
                        k => k.join(", "),
                    };
                    out.push((
                        key(&["channels", name, "transport", set]),
                        format!(
                            "transport \"{}\" does not read {set} (it reads {reads})",
                            spec.name
                        ),
                    ));
                }
            }
        }
        // The gateway's own checks (lists, TTLs, limits); open mode was said above.
        let one = crate::gateway::GatewaySettings {
            channels: [(name.clone(), ch.clone())].into_iter().collect(),
        };
        if valid_name(name)
            && let Err(crate::gateway::GatewayError::Settings { field, reason, .. }) =
                one.validate(crate::gateway::Profile::Development)
        {
            let field = field.split('.').next().unwrap_or(field);
            out.push((
                key(&["channels", name, field]),
                format!("{field}: {reason}"),
            ));
        }
    }
    let s = &c.supervisor;
    for (field, value) in [
        ("restart_backoff_initial_ms", s.restart_backoff_initial_ms),
        ("restart_backoff_max_ms", s.restart_backoff_max_ms),
        ("restart_window_secs", s.restart_window_secs),
        ("stop_timeout_secs", s.stop_timeout_secs),
        ("health_interval_ms", s.health_interval_ms),
        ("health_timeout_ms", s.health_timeout_ms),
    ] {
        if value == 0 {
            out.push((
                key(&["supervisor", field]),
                format!("{field} must be greater than 0"),
            ));
        }
    }
    if s.restart_backoff_max_ms < s.restart_backoff_initial_ms {
        out.push((
            key(&["supervisor", "restart_backoff_max_ms"]),
            "restart_backoff_max_ms must be at least restart_backoff_initial_ms".to_string(),
        ));
    }
    if s.stop_timeout_secs > 300 {
        out.push((
            key(&["supervisor", "stop_timeout_secs"]),
            "stop_timeout_secs must be at most 300".to_string(),
        ));
    }
    if c.keystore.tcti.is_empty() {
        out.push((
            key(&["keystore", "tcti"]),
            "tcti must not be empty".to_string(),
        ));
    }
    let lan = crate::admin::LanFilter {
        allow_cgnat: c.admin.allow_cgnat,
    };
    for addr in &c.admin.listen {
        let problem = match addr.parse::<std::net::IpAddr>() {
            Err(_) if addr.parse::<std::net::SocketAddr>().is_ok() => Some(format!(
                "{addr:?}: give the address without a port; the port is [admin] port"
            )),
            Err(_) => Some(format!("{addr:?} is not an IP address")),
            Ok(ip) if !lan.admits(ip) || ip.is_unspecified() => Some(format!(
                "{addr} is not a loopback or LAN address (CGNAT needs allow_cgnat = true); the admin page never listens on public or wildcard addresses"
            )),
            Ok(_) => None,
        };
        if let Some(p) = problem {
            out.push((key(&["admin", "listen"]), p));
        }
    }
    for (field, value) in [
        ("session_idle_secs", c.admin.session_idle_secs),
        ("session_max_secs", c.admin.session_max_secs),
        ("login_lockout_secs", c.admin.login_lockout_secs),
        (
            "login_checks_per_minute",
            u64::from(c.admin.login_checks_per_minute),
        ),
        (
            "login_lockout_after",
            u64::from(c.admin.login_lockout_after),
        ),
    ] {
        if value == 0 {
            out.push((
                key(&["admin", field]),
                format!("{field} must be greater than 0"),
            ));
        }
    }
    // Guard rules are compiled (and their examples checked) at load time, so a bad
    // rule is a configuration error, not a surprise at the first command.
    if let Err(e) = crate::guard::Guard::from_settings(&c.guard) {
        let field = match &e {
            crate::guard::GuardError::InvalidPattern { rule, .. }
                if rule.starts_with("trusted:") =>
            {
                "trusted"
            }
            crate::guard::GuardError::InvalidPattern { rule, .. }
                if rule.starts_with("config:") =>
            {
                "blocked"
            }
            _ => "rules_file",
        };
        out.push((key(&["guard", field]), e.to_string()));
    }
    if let Some(url) = &c.update.feed_url
        && let Err(e) = crate::update::download::check_url(url)
    {
        out.push((key(&["update", "feed_url"]), format!("feed_url: {e}")));
    }
    if let Err(e) = c.doctor.validate() {
        let field = if e.starts_with("doctor.credential") {
            "credential_max_age_days"
        } else {
            "inactive_user_days"
        };
        out.push((key(&["doctor", field]), e));
    }
    if c.sandbox.workspace_quota_bytes < 1024 * 1024 {
        out.push((
            key(&["sandbox", "workspace_quota_bytes"]),
            "workspace_quota_bytes must be at least 1048576 (1 MiB)".to_string(),
        ));
    }
    if let Err(crate::guard::GuardError::InvalidLimit { key: field, reason }) = c.limits.validate()
    {
        out.push((key(&["limits", field]), format!("{field}: {reason}")));
    }
    for (field, problem) in sandbox_ceiling_problems(&c.sandbox, &c.limits) {
        out.push((key(&field), problem));
    }
    if let Some(agent) = &c.agent {
        for (field, problem) in agent_problems(agent, c.limits.max_cost_usd) {
            out.push((key(&["agent", field]), problem));
        }
    }
    match c.webhook.listen.parse::<std::net::SocketAddr>() {
        Err(_) => out.push((
            key(&["webhook", "listen"]),
            format!("{:?} is not an address:port", c.webhook.listen),
        )),
        Ok(a) if a.port() != 0 && a.port() == c.admin.port => out.push((
            key(&["webhook", "listen"]),
            "the webhook listener must not share the admin page's port".to_string(),
        )),
        Ok(a) if production && a.port() == 0 => out.push((
            key(&["webhook", "listen"]),
            "port 0 (any free port) is for the development profile only".to_string(),
        )),
        Ok(a)
            if production
                && !c.webhook.allow_public
                && (a.ip().is_unspecified()
                    || !crate::admin::LanFilter {
                        allow_cgnat: c.admin.allow_cgnat,
                    }
                    .admits(a.ip())) =>
        {
            out.push((
                key(&["webhook", "listen"]),
                format!(
                    "{a} is a public or wildcard address; the webhook listener stays on \
                     loopback or the LAN (behind a reverse tunnel) unless [webhook] \
                     allow_public = true says otherwise"
                ),
            ))
        }
        Ok(_) => {}
    }
    if c.admin.port == 0 && production {
        out.push((
            key(&["admin", "port"]),
            "port 0 (any free port) is for the development profile only".to_string(),
        ));
    }
    if let Some(socket) = &c.update.writer_socket
        && !socket.is_absolute()
    {
        out.push((
            key(&["update", "writer_socket"]),
            format!(
                "writer_socket must be an absolute path, not {}",
                socket.display()
            ),
        ));
    }
    out
}

/// `[agent]` checks: (field, problem). Keys never appear here: only the name
/// of the vault secret that holds one.
fn agent_problems(
    a: &crate::agent::AgentSettings,
    max_cost_usd: f64,
) -> Vec<(&'static str, String)> {
    use crate::agent::ProviderKind;
    let mut out = Vec::new();
    if a.model.trim().is_empty() {
        out.push((
            "model",
            "model must name the model to use, e.g. \"claude-sonnet-4-5\"".to_string(),
        ));
    }
    if !a.base_url.is_empty() {
        match reqwest::Url::parse(&a.base_url) {
            Err(_) => out.push(("base_url", format!("{:?} is not a URL", a.base_url))),
            Ok(u) => {
                if let Err(e) = crate::net::check_url(&u, "https", "http") {
                    out.push(("base_url", format!("{:?}: {e}", a.base_url)));
                }
            }
        }
    }
    if !a.secret_name.is_empty() && crate::keystore::vault::validate_name(&a.secret_name).is_err() {
        out.push((
            "secret_name",
            "secret_name must be 1-64 characters of A-Z a-z 0-9 _ - . (the name given to coworkctl secret set)".to_string(),
        ));
    }
    if a.secret_name.is_empty() && a.provider != ProviderKind::OpenaiCompatible {
        out.push((
            "secret_name",
            format!(
                "the {} provider needs its credentials: name the vault secret (coworkctl secret set NAME)",
                a.provider.as_str()
            ),
        ));
    }
    if a.provider == ProviderKind::Bedrock && a.region.trim().is_empty() {
        out.push(("region", "bedrock needs an AWS region".to_string()));
    }
    if let Some(path) = &a.ca_file {
        match std::fs::read(path) {
            Err(e) => out.push(("ca_file", format!("{}: {e}", path.display()))),
            Ok(pem)
                if reqwest::Certificate::from_pem(&pem).is_err()
                    || !pem.starts_with(b"-----BEGIN") =>
            {
                out.push((
                    "ca_file",
                    format!("{} is not a PEM certificate", path.display()),
                ))
            }
            Ok(_) => {}
        }
    }
    if a.max_tokens_per_call == 0 {
        out.push((
            "max_tokens_per_call",
            "max_tokens_per_call must be greater than 0".to_string(),
        ));
    }
    if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&a.max_memory_bytes) {
        out.push((
            "max_memory_bytes",
            format!(
                "max_memory_bytes must be between {MIN_MEMORY_BYTES} and {MAX_MEMORY_BYTES} (one user's memory notes)"
            ),
        ));
    }
    if !(30..=86_400).contains(&a.approval_ttl_secs) {
        out.push((
            "approval_ttl_secs",
            "approval_ttl_secs must be between 30 and 86400".to_string(),
        ));
    }
    for (model, price) in &a.prices {
        for v in [price.input_usd_per_mtok, price.output_usd_per_mtok] {
            if !v.is_finite() || v < 0.0 {
                out.push((
                    "prices",
                    format!("the price of {model:?} must be a finite number of USD, 0 or more"),
                ));
                break;
            }
        }
    }
    if max_cost_usd > 0.0 && !a.model.trim().is_empty() && !a.prices.contains_key(&a.model) {
        out.push((
            "model",
            format!(
                "model {:?} has no price in [agent.prices.\"{}\"], so the cost limit ([limits] max_cost_usd) cannot be kept; add input_usd_per_mtok and output_usd_per_mtok (0.0 for a local server)",
                a.model, a.model
            ),
        ));
    }
    if a.http.request_timeout_secs == 0
        || a.http.connect_timeout_secs == 0
        || a.http.max_attempts == 0
    {
        out.push((
            "http",
            "http timeouts and max_attempts must be greater than 0".to_string(),
        ));
    }
    out
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Finds where `key` was last set (drop-ins override the main file) and places the
/// message there; a key set nowhere is a default, reported against the main file.
fn locate(sources: &[Source], key: &[String], message: String) -> ConfigProblem {
    for source in sources.iter().rev() {
        if let Some(offset) = key_offset(&source.text, key) {
            let (line, column) = line_col(&source.text, offset);
            return ConfigProblem {
                file: source.path.clone(),
                line,
                column,
                message,
                key: Some(key.join(".")),
            };
        }
    }
    let file = sources.first().map(|s| s.path.clone()).unwrap_or_default();
    ConfigProblem {
        file,
        line: 0,
        column: 0,
        message: format!("{message} (a default value)"),
        key: Some(key.join(".")),
    }
}

fn key_offset(text: &str, key: &[String]) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let (last, parents) = key.split_last()?;
    for part in parents {
        table = table.get(part)?.as_table_like()?;
    }
    let (k, _) = table.get_key_value(last)?;
    k.span().map(|s| s.start)
}

fn at_span(source: &Source, span: Option<std::ops::Range<usize>>, message: &str) -> ConfigProblem {
    let (line, column) = span
        .clone()
        .map_or((0, 0), |s| line_col(&source.text, s.start));
    ConfigProblem {
        file: source.path.clone(),
        line,
        column,
        message: message.trim().to_string(),
        key: span.and_then(|s| key_at(&source.text, s.start)),
    }
}

fn unplaced(path: &Path, message: String) -> ConfigProblem {
    ConfigProblem {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
        key: None,
    }
}

/// The dotted key whose entry (key or value) covers byte `offset` of `text`:
/// the field a type error from serde belongs to.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut best: Option<String> = None;
    let mut path = Vec::new();
    find_key_at(doc.as_table(), offset, &mut path, &mut best);
    best
}

fn find_key_at(
    table: &dyn toml_edit::TableLike,
    offset: usize,
    path: &mut Vec<String>,
    best: &mut Option<String>,
) {
    for (k, item) in table.iter() {
        path.push(k.to_string());
        let key_start = table
            .get_key_value(k)
            .and_then(|(key, _)| key.span())
            .map(|s| s.start);
        let covers = match (key_start, item.span()) {
            (Some(start), Some(span)) => start <= offset && offset < span.end.max(start + 1),
            (_, Some(span)) => span.contains(&offset),
            _ => false,
        };
        if covers {
            *best = Some(path.join("."));
        }
        if let Some(inner) = item.as_table_like() {
            find_key_at(inner, offset, path, best);
        }
        path.pop();
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match load_str(Path::new("/etc/cowork/coworkd.toml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn every_type_problem_of_a_file_is_listed_at_its_line() {
        let text = "[supervisor]\nrestart_burst = \"five\"\nbogus = 1\n\
                    [log]\nlevel = 3\n\
                    [nowhere]\nx = 1\n\
                    [limits]\nmax_iterations = \"many\"\n";
        let found = problems(text);
        let lines: Vec<&str> = found
            .iter()
            .map(|p| p.split(": ").next().unwrap_or(""))
            .collect();
        assert_eq!(
            lines,
            [
                "/etc/cowork/coworkd.toml:2:17",
                "/etc/cowork/coworkd.toml:3:1",
                "/etc/cowork/coworkd.toml:5:9",
                "/etc/cowork/coworkd.toml:6:2",
                "/etc/cowork/coworkd.toml:9:18",
            ],
            "{found:#?}"
        );
        // Positions stay true in a file with multi-byte text before them.
        let found = problems("# größe\n[log]\nlevel = 3\n[limits]\nmax_iterations = true\n");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[1].contains(":5:18:"), "{found:#?}");
    }

    #[test]
    fn blanking_keeps_every_offset() {
        let text = "a = 1\n[t]\nb = \"ü\"\nc = 2\n[u]\nd = 3\n";
        let at = text.find("[t]").unwrap();
        let out = blank_entry(text, at..at + 3).unwrap();
        assert_eq!(out.len(), text.len());
        assert_eq!(out.lines().count(), text.lines().count());
        assert!(
            out.starts_with("a = 1\n") && out.ends_with("[u]\nd = 3\n"),
            "{out:?}"
        );
        assert!(!out.contains('b') && !out.contains('c'), "{out:?}");
        assert_eq!(blank_entry("   \n", 0..1), None);
    }

    #[test]
    fn defaults_are_production_and_pairing() {
        let c = load_str(Path::new("x.toml"), "").unwrap();
        assert_eq!(c.profile, Profile::Production);
        assert_eq!(c.channels["local"].dm, AccessMode::Pairing);
        assert_eq!(c.supervisor.restart_backoff_initial_ms, 100);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let p = problems("profile = \"development\"\n[log]\nlevle = \"info\"\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("/etc/cowork/coworkd.toml:3:1: unknown field `levle`"),
            "{p:?}"
        );
    }

    #[test]
    fn syntax_error_is_placed() {
        let p = problems("[log\nlevel = 1\n");
        assert!(p[0].starts_with("/etc/cowork/coworkd.toml:1:"), "{p:?}");
    }

    #[test]
    fn wrong_type_is_placed() {
        let p = problems("[supervisor]\nrestart_burst = \"five\"\n");
        assert!(p[0].starts_with("/etc/cowork/coworkd.toml:2:17:"), "{p:?}");
    }

    #[test]
    fn channel_settings_are_the_gateways() {
        // A wildcard allowlist would silently switch pairing off elsewhere; here it
        // is refused, placed at the channel's table.
        let p = problems("[channels.slack]\nallowlist = [\"*\"]\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("allowlist"), "{p:?}");
        let p = problems("[channels.local]\npairing_ttl_secs = 5\n");
        assert!(p[0].contains("pairing_ttl_secs"), "{p:?}");
        let p = problems("[channels.local]\nrequire_mention = false\nsilent = true\n");
        assert!(p.is_empty(), "{p:?}");
    }

    /// Issue 16 item 7: a public or wildcard webhook address needs the owner's
    /// explicit `allow_public` in production.
    #[test]
    fn production_refuses_a_public_webhook_listener_unless_allowed() {
        for addr in [
            "0.0.0.0:8444",
            "203.0.113.7:8444",
            "[::]:8444",
            "[2001:db8::1]:8444",
        ] {
            let p = problems(&format!("[webhook]\nlisten = \"{addr}\"\n"));
            assert_eq!(p.len(), 1, "{addr}: {p:?}");
            assert!(
                p[0].starts_with("/etc/cowork/coworkd.toml:2:1: ") && p[0].contains("allow_public"),
                "{addr}: {p:?}"
            );
            let allowed = format!("[webhook]\nlisten = \"{addr}\"\nallow_public = true\n");
            assert!(problems(&allowed).is_empty(), "{addr}");
            let dev = format!("profile = \"development\"\n[webhook]\nlisten = \"{addr}\"\n");
            assert!(problems(&dev).is_empty(), "{addr}");
        }
        for addr in ["127.0.0.1:8444", "192.168.1.5:8444", "[::1]:8444"] {
            let p = problems(&format!("[webhook]\nlisten = \"{addr}\"\n"));
            assert!(p.is_empty(), "{addr}: {p:?}");
        }
    }

    #[test]
    fn production_refuses_open_mode_and_debug() {
        let p = problems("[log]\nlevel = \"debug\"\n[channels.telegram]\ndm = \"open\"\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("/etc/cowork/coworkd.toml:2:1: log level \"debug\""),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("/etc/cowork/coworkd.toml:4:1: open mode"),
            "{p:?}"
        );
        assert!(problems("profile = \"development\"\n[log]\nlevel = \"debug\"\n[channels.telegram]\ndm = \"open\"\n").is_empty());
    }

    /// `[limits]` is the one definition of the limits: the agent's are the
    /// section as it is, and without the section they are the one set of
    /// defaults, which is what config/coworkd.toml ships.
    #[test]
    fn agent_limits_are_the_limits_section_and_its_defaults() {
        use crate::guard::LimitSettings;
        let agent = "[agent]\nmodel = \"m\"\n[agent.prices.m]\ninput_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0\n";
        let a = load_str(Path::new("x.toml"), agent)
            .unwrap()
            .agent_settings()
            .unwrap();
        assert_eq!(a.limits, LimitSettings::default());
        let run = crate::agent::Limits::default();
        assert_eq!(
            run.max_total_tokens,
            LimitSettings::default().max_tokens_per_task
        );
        assert_eq!(
            run.max_cost_usd,
            Some(LimitSettings::default().max_cost_usd)
        );
        assert_eq!(run.max_iterations, LimitSettings::default().max_iterations);
        let set = format!("{agent}[limits]\nmax_file_bytes = 1000\noutput_cap_bytes = 100\n");
        let a = load_str(Path::new("x.toml"), &set)
            .unwrap()
            .agent_settings()
            .unwrap();
        assert_eq!(a.limits.max_file_bytes, 1000);
        assert_eq!(a.limits.output_cap_bytes, 100);
        assert_eq!(a.limits.max_tokens_per_task, 200_000);

        let shipped = load_str(
            Path::new("config/coworkd.toml"),
            include_str!("../../config/coworkd.toml"),
        )
        .unwrap();
        assert_eq!(shipped.limits, LimitSettings::default());
    }

    /// `[sandbox]` holds the ceilings; a `[limits]` value above one is refused
    /// at its key, as is a sandbox default above its own maximum.
    #[test]
    fn limits_above_the_sandbox_ceilings_are_refused() {
        let p = problems(
            "[sandbox]\nmax_timeout_secs = 100\n[limits]\ncommand_timeout_max_secs = 200\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("/etc/cowork/coworkd.toml:4:1: command_timeout_max_secs (200) is greater than [sandbox] max_timeout_secs (100)"),
            "{p:?}"
        );
        // A lowered ceiling under a default limit: named at the limit's key.
        let p = problems("[sandbox]\noutput_cap_bytes = 4096\nmax_file_bytes = 8192\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains(
                "output_cap_bytes (1048576) is greater than [sandbox] output_cap_bytes (4096)"
            ),
            "{p:?}"
        );
        assert!(
            p[1].contains(
                "max_file_bytes (10485760) is greater than [sandbox] max_file_bytes (8192)"
            ),
            "{p:?}"
        );
        assert!(p.iter().all(|x| x.ends_with("(a default value)")), "{p:?}");
        let p = problems("[sandbox]\ndefault_timeout_secs = 700\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("/etc/cowork/coworkd.toml:2:1: default_timeout_secs (700) is greater than max_timeout_secs (600)"),
            "{p:?}"
        );
        let p = problems("[sandbox]\nmax_file_bytes = 0\n");
        assert!(
            p.iter().any(|x| x.starts_with(
                "/etc/cowork/coworkd.toml:2:1: max_file_bytes must be greater than 0"
            )),
            "{p:?}"
        );
        // Lowered together: accepted.
        let p = problems(
            "[sandbox]\nmax_timeout_secs = 100\ndefault_timeout_secs = 30\noutput_cap_bytes = 4096\nmax_file_bytes = 8192\n\
             [limits]\ncommand_timeout_secs = 30\ncommand_timeout_max_secs = 100\noutput_cap_bytes = 4096\nmax_file_bytes = 8192\n",
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn agent_section_is_checked_and_placed() {
        let ok = "[agent]\nprovider = \"anthropic\"\nmodel = \"m\"\n[agent.prices.m]\ninput_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0\n";
        assert!(problems(ok).is_empty(), "{:?}", problems(ok));
        let c = load_str(Path::new("x.toml"), ok).unwrap();
        let a = c.agent_settings().unwrap();
        assert_eq!(a.limits.max_iterations, 50);
        assert_eq!(a.approval_ttl_secs, 300);
        assert!(
            load_str(Path::new("x.toml"), "")
                .unwrap()
                .agent_settings()
                .is_none()
        );

        // No price for the model under a cost limit: placed at `model`.
        let p = problems("[agent]\nprovider = \"openai\"\nmodel = \"llama\"\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("/etc/cowork/coworkd.toml:3:1: model \"llama\" has no price"),
            "{p:?}"
        );
        // Plain http only on loopback; a missing ca_file; an unknown provider.
        let p = problems(
            "[agent]\nmodel = \"m\"\nbase_url = \"http://10.0.0.2:8080\"\nca_file = \"/nonexistent/ca.pem\"\n[agent.prices.m]\ninput_usd_per_mtok = 0.0\noutput_usd_per_mtok = 0.0\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains(":3:1:") && p[0].contains("https"), "{p:?}");
        assert!(
            p[1].contains(":4:1:") && p[1].contains("/nonexistent/ca.pem"),
            "{p:?}"
        );
        assert!(problems("[agent]\nprovider = \"gpt\"\nmodel = \"m\"\n")[0].contains(":2:"));
        // Keys never in the configuration: an api_key field is unknown.
        let p = problems("[agent]\nmodel = \"m\"\napi_key = \"sk-1\"\n");
        assert!(p[0].contains("unknown field `api_key`"), "{p:?}");
        let p = problems(
            "[agent]\nprovider = \"bedrock\"\nmodel = \"m\"\nsecret_name = \"\"\napproval_ttl_secs = 1\n[agent.prices.m]\ninput_usd_per_mtok = -1.0\noutput_usd_per_mtok = 0.0\n",
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().any(|m| m.contains("approval_ttl_secs")), "{p:?}");
        // The memory cap: a sane range, the default inside it.
        for bad in [0, 1023, 16 * 1024 * 1024 + 1] {
            let p = problems(&format!(
                "[agent]\nmodel = \"m\"\nmax_memory_bytes = {bad}\n"
            ));
            assert!(
                p.iter().any(|m| m.contains("max_memory_bytes")),
                "{bad}: {p:?}"
            );
        }
        for good in ["max_memory_bytes = 4096\n", ""] {
            let p = problems(&format!("[agent]\nmodel = \"m\"\n{good}"));
            assert!(!p.iter().any(|m| m.contains("max_memory_bytes")), "{p:?}");
        }
    }

    #[test]
    fn public_admin_address_is_refused() {
        let p = problems(
            "[admin]\nlisten = [\"0.0.0.0\", \"192.168.1.2\", \"8.8.8.8\", \"::\", \"fd00::1\"]\n",
        );
        assert_eq!(p.len(), 3, "{p:?}");
        let p = problems("[admin]\nlisten = [\"192.168.1.2:8443\", \"not-an-ip\"]\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("without a port"), "{p:?}");
        assert!(problems("[admin]\nport = 0\n")[0].contains("development"));
        assert!(problems("profile = \"development\"\n[admin]\nport = 0\n").is_empty());
        assert!(problems("[admin]\nsession_idle_secs = 0\n")[0].contains("session_idle_secs"));
        assert!(
            problems("[admin]\nlogin_checks_per_minute = 0\n")[0]
                .contains("login_checks_per_minute")
        );
    }

    /// A CGNAT listen address (Tailscale) needs `allow_cgnat = true`.
    #[test]
    fn cgnat_admin_address_needs_opt_in() {
        let p = problems("[admin]\nlisten = [\"100.64.0.1\", \"::ffff:100.100.1.1\"]\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("allow_cgnat"), "{p:?}");
        let allowed =
            "[admin]\nallow_cgnat = true\nlisten = [\"100.64.0.1\", \"::ffff:100.100.1.1\"]\n";
        assert!(problems(allowed).is_empty(), "{:?}", problems(allowed));
        // Still never a public neighbour of the range.
        let p = problems("[admin]\nallow_cgnat = true\nlisten = [\"100.128.0.1\"]\n");
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn dropins_override_and_errors_point_into_them() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("coworkd.toml");
        std::fs::write(&main, "profile = \"production\"\n[log]\nlevel = \"warn\"\n").unwrap();
        let d = dir.path().join("coworkd.toml.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("10-log.toml"), "[log]\nlevel = \"error\"\n").unwrap();
        assert_eq!(load(&main).unwrap().log.level, LogLevel::Error);
        std::fs::write(
            d.join("20-chan.toml"),
            "\n[channels.slack]\ngroup = \"open\"\n",
        )
        .unwrap();
        let e = load(&main).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(
            e.problems[0]
                .to_string()
                .contains("20-chan.toml:3:1: open mode"),
            "{e}"
        );
        std::fs::write(d.join("30-bad.toml"), "bogus = 1\n").unwrap();
        let e = load(&main).unwrap_err();
        assert!(
            e.to_string()
                .contains("30-bad.toml:1:1: unknown field `bogus`"),
            "{e}"
        );
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for text in [
            "\u{0}",
            "[[[[",
            "a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            "profile = 1",
            "\u{feff}x=1",
            "[channels.\"\"]\n",
        ] {
            let _ = load_str(Path::new("x.toml"), text);
        }
        assert!(!problems("[channels.\"Bad Name\"]\n").is_empty());
        let missing = load(Path::new("/nonexistent/coworkd.toml")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/coworkd.toml: cannot read")
        );
    }

    /// Issue 15: what the owner's settings may set on a production image, and
    /// where each value came from.
    #[test]
    fn the_owners_layer_is_checked_and_placed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("coworkd.toml");
        let owner = dir.path().join("owner.toml");
        std::fs::write(&base, "[channels.local]\npairing_ttl_secs = 120\n").unwrap();
        let refused = |text: &str| -> Vec<(Option<String>, String)> {
            match check_owner(&base, &owner, text) {
                Ok(_) => Vec::new(),
                Err(e) => e.problems.into_iter().map(|p| (p.key, p.message)).collect(),
            }
        };
        for (text, key, says) in [
            (
                "profile = \"development\"\n",
                "profile",
                "cannot leave production",
            ),
            ("[keystore]\ntier = \"file\"\n", "keystore", "master key"),
            (
                "[sandbox]\nrequire_full_isolation = false\n",
                "sandbox.require_full_isolation",
                "weaker",
            ),
            (
                "[channels.local]\ndm = \"open\"\n",
                "channels.local.dm",
                "open mode",
            ),
            ("[log]\nlevel = \"debug\"\n", "log.level", "debug"),
            (
                "[limits]\nmax_iterations = \"x\"\n",
                "limits.max_iterations",
                "invalid type",
            ),
        ] {
            let p = refused(text);
            assert_eq!(p.len(), 1, "{text}: {p:?}");
            assert_eq!(p[0].0.as_deref(), Some(key), "{text}: {p:?}");
            assert!(p[0].1.contains(says), "{text}: {p:?}");
        }
        // The same under a development base is the owner's to choose.
        std::fs::write(&base, "profile = \"development\"\n").unwrap();
        assert!(refused("[sandbox]\nrequire_full_isolation = false\n").is_empty());

        // Origins: the base, the owner's file, or a default.
        std::fs::write(&base, "[channels.local]\npairing_ttl_secs = 120\n").unwrap();
        std::fs::write(&owner, "[limits]\nmax_iterations = 7\n").unwrap();
        let loaded = load_layers(&base, &owner).unwrap();
        assert_eq!(loaded.owner, OwnerState::Applied);
        assert_eq!(loaded.config.limits.max_iterations, 7);
        assert_eq!(
            loaded.origin("limits.max_iterations"),
            owner.display().to_string()
        );
        assert_eq!(
            loaded.origin("channels.local.pairing_ttl_secs"),
            base.display().to_string()
        );
        assert_eq!(loaded.origin("limits.max_cost_usd"), "default");
        // An owner's file that does not fit is left out, and says why.
        std::fs::write(&owner, "[limits]\nmax_iterations = 7\nnope = 1\n").unwrap();
        let loaded = load_layers(&base, &owner).unwrap();
        assert!(matches!(loaded.owner, OwnerState::Refused(_)));
        assert_eq!(loaded.config.limits.max_iterations, 50);
        // The image's own files must be valid, whatever the owner's say.
        std::fs::write(&base, "nope = 1\n").unwrap();
        assert!(load_layers(&base, &owner).is_err());
    }
}
