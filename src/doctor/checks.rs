//! The checks, in the checklist's order: the appliance, the channels, the
//! agent's bounds, the keys and the trail, the people, the updates. Each is a
//! pure function of the [`Snapshot`].

use super::{Check, CheckStatus, SafeFix, Snapshot};
use crate::config::{LogLevel, Profile};
use crate::gateway::channels::registry;
use crate::gateway::{AccessMode, ChannelSettings, TransportKind};
use crate::ipc::UserState;

const DAY: i64 = 86_400;
/// Secrets that authenticate a platform's requests to the webhook listener
/// (the others are the appliance's credentials toward the platform).
const WEBHOOK_SECRET_KEYS: [&str; 2] = ["signing_secret", "verify_token_secret"];
/// Fewer bytes than this in such a secret is guessable.
const MIN_WEBHOOK_SECRET_BYTES: u32 = 16;
/// What group chats must not reach: the owner's memory and clipboard.
const GROUP_DENIED_TOOLS: [&str; 2] = ["memory", "clipboard"];

pub(super) fn all(s: &Snapshot) -> Vec<Check> {
    let mut out = vec![profile(s), updates(s), updates_feed(s)];
    for (name, ch) in s.config.channels.iter().filter(|(_, c)| c.enabled) {
        out.push(channel_access(name, ch));
        if ch.group != AccessMode::Disabled {
            out.push(group_mention(name, ch));
            out.push(group_tools(name, ch));
        }
        out.extend(allowlist_ids(name, ch));
        out.extend(channel_secrets(s, name, ch));
        out.extend(channel_running(s, name));
    }
    out.extend(webhook_listener(s));
    out.push(file_modes(s));
    out.push(guard_trusted(s));
    out.push(limits(s));
    out.push(sandbox(s));
    out.push(logging(s));
    out.push(keystore(s));
    out.push(audit(s));
    out.extend(users(s));
    out.push(pairing(s));
    out.push(credentials(s));
    out
}

fn check(id: impl Into<String>, status: CheckStatus, message: impl Into<String>) -> Check {
    Check {
        id: id.into(),
        status,
        message: message.into(),
        fix: String::new(),
        page: String::new(),
        safe_fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>, page: &str) -> Check {
        if self.status != CheckStatus::Ok {
            self.fix = fix.into();
        }
        self.page = page.to_string();
        self
    }

    fn safe(mut self, key: &str, value: &str) -> Check {
        if self.status != CheckStatus::Ok {
            self.safe_fix = Some(SafeFix {
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        self
    }
}

fn profile(s: &Snapshot) -> Check {
    match s.config.profile {
        Profile::Production => check(
            "profile",
            CheckStatus::Ok,
            "production profile: insecure settings (open channels, debug logs) are refused",
        ),
        Profile::Development => check(
            "profile",
            CheckStatus::Warn,
            "development profile: open channels, debug logs and weaker isolation are allowed; an appliance in use runs the production profile",
        ),
    }
    .fix("coworkctl settings set profile production", "/settings")
}

fn updates(s: &Snapshot) -> Check {
    let status = match &s.update {
        Ok(v) => v,
        // Not an appliance install (a development box has no update slots).
        Err(e) if s.config.profile == Profile::Development => {
            return check(
                "updates",
                CheckStatus::Ok,
                format!("no update slots on this machine (development): {e}"),
            );
        }
        Err(e) => {
            return check(
                "updates",
                CheckStatus::Warn,
                format!("the update state could not be read: {e}"),
            )
            .fix("coworkctl update status", "/updates");
        }
    };
    let running = status["running_version"].as_u64().unwrap_or(0);
    let other = status["other_version"]
        .as_str()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let other_bootable = matches!(status["other_entry"].as_str(), Some("good" | "pending"));
    if let Some(why) = status["fallback"].as_str() {
        return check(
            "updates",
            CheckStatus::Warn,
            format!("running version {running} after a fallback: {why}; the update did not take"),
        )
        .fix("coworkctl update status", "/updates");
    }
    match other {
        Some(v) if v > running && other_bootable => check(
            "updates",
            CheckStatus::Warn,
            format!(
                "version {v} is installed in the other slot but version {running} is running: reboot to run it"
            ),
        )
        .fix("reboot the appliance", "/updates"),
        _ => check(
            "updates",
            CheckStatus::Ok,
            format!(
                "running version {running}, the newest installed"
            ),
        )
        .fix("", "/updates"),
    }
}

/// A check older than this means the daily check stopped.
const FEED_CHECK_STALE_SECS: i64 = 3 * DAY;

fn updates_feed(s: &Snapshot) -> Check {
    let id = "updates.feed";
    if s.config.update.feed_url.is_none() {
        let status = match s.config.profile {
            Profile::Production => CheckStatus::Warn,
            Profile::Development => CheckStatus::Ok,
        };
        return check(
            id,
            status,
            "no update feed is configured: nothing checks for updates; bring bundles by hand or set one",
        )
        .fix("coworkctl settings set update.feed_url https://.../feed.json", "/updates");
    }
    let last = match &s.feed {
        Err(e) => {
            return check(
                id,
                CheckStatus::Warn,
                format!("the update checks' state could not be read: {e}"),
            )
            .fix("coworkctl update check", "/updates");
        }
        Ok(state) => match &state.last_check {
            None => {
                return check(id, CheckStatus::Warn, "the update feed was never checked")
                    .fix("coworkctl update check", "/updates");
            }
            Some(c) => c,
        },
    };
    let checked = i64::try_from(last.checked_at).unwrap_or(i64::MAX);
    let when = ago(s.now, checked);
    if let Some(e) = &last.error {
        return check(
            id,
            CheckStatus::Warn,
            format!("the last update check ({when}) failed: {e}"),
        )
        .fix("coworkctl update check", "/updates");
    }
    if last.installable {
        let newest = last.newest_version.unwrap_or(0);
        return check(
            id,
            CheckStatus::Warn,
            format!(
                "version {newest} is available (checked {when}); version {} runs",
                last.running_version
            ),
        )
        .fix(
            format!(
                "coworkctl update apply {}",
                last.bundle_url.as_deref().unwrap_or("URL")
            ),
            "/updates",
        );
    }
    if s.now.saturating_sub(checked) > FEED_CHECK_STALE_SECS {
        return check(
            id,
            CheckStatus::Warn,
            format!("updates were last checked {when}: the daily check is not running"),
        )
        .fix(
            "coworkctl update check; systemctl status cowork-update-check.timer",
            "/updates",
        );
    }
    check(id, CheckStatus::Ok, format!("up to date (checked {when})")).fix("", "/updates")
}

/// "3 h ago" for a person.
fn ago(now: i64, then: i64) -> String {
    let secs = now.saturating_sub(then).max(0);
    match secs {
        s if s < 120 => "just now".to_string(),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 2 * DAY => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / DAY),
    }
}

fn channel_access(name: &str, ch: &ChannelSettings) -> Check {
    let id = format!("channel.{name}.access");
    let mut open: Vec<String> = [("dm", ch.dm), ("group", ch.group)]
        .into_iter()
        .filter(|(_, m)| *m == AccessMode::Open)
        .map(|(k, _)| format!("{k} = open"))
        .collect();
    for (chat, policy) in &ch.chats {
        if policy.mode == Some(AccessMode::Open) {
            open.push(format!("chat {chat} open"));
        }
    }
    if open.is_empty() {
        return check(
            id,
            CheckStatus::Ok,
            format!(
                "channel {name}: DMs {}, groups {}",
                mode_name(ch.dm),
                mode_name(ch.group)
            ),
        )
        .fix("", "/settings");
    }
    let key = if ch.dm == AccessMode::Open {
        "dm"
    } else {
        "group"
    };
    check(
        id,
        CheckStatus::Fail,
        format!(
            "channel {name} is open ({}): anyone who finds the bot can use the agent; use pairing or an allowlist",
            open.join(", ")
        ),
    )
    .fix(
        format!("coworkctl settings set channels.{name}.{key} pairing"),
        "/settings",
    )
}

fn mode_name(m: AccessMode) -> &'static str {
    match m {
        AccessMode::Pairing => "by pairing",
        AccessMode::Allowlist => "by allowlist",
        AccessMode::Open => "open",
        AccessMode::Disabled => "disabled",
    }
}

fn group_mention(name: &str, ch: &ChannelSettings) -> Check {
    let id = format!("channel.{name}.group-mention");
    if ch.require_mention {
        check(
            id,
            CheckStatus::Ok,
            format!("channel {name}: in groups the bot answers only when mentioned"),
        )
    } else {
        check(
            id,
            CheckStatus::Warn,
            format!(
                "channel {name}: in groups the bot reads and answers every message, not only those that mention it"
            ),
        )
    }
    .fix(
        format!("coworkctl settings set channels.{name}.require_mention true"),
        "/settings",
    )
    .safe(&format!("channels.{name}.require_mention"), "true")
}

fn group_tools(name: &str, ch: &ChannelSettings) -> Check {
    let id = format!("channel.{name}.group-tools");
    let allowed: Vec<&str> = GROUP_DENIED_TOOLS
        .into_iter()
        .filter(|t| ch.group_tools.allows(t))
        .collect();
    if allowed.is_empty() {
        return check(
            id,
            CheckStatus::Ok,
            format!("channel {name}: memory and clipboard tools are denied in groups"),
        )
        .fix("", "/settings");
    }
    let mut deny: Vec<String> = ch.group_tools.deny.iter().cloned().collect();
    deny.extend(allowed.iter().map(|t| t.to_string()));
    deny.sort();
    deny.dedup();
    let value = toml::Value::Array(deny.into_iter().map(toml::Value::String).collect());
    check(
        id,
        CheckStatus::Warn,
        format!(
            "channel {name}: the agent may use {} in groups, where other members see its answers",
            allowed.join(" and ")
        ),
    )
    .fix(
        format!("coworkctl settings set channels.{name}.group_tools.deny '{value}'"),
        "/settings",
    )
    .safe(
        &format!("channels.{name}.group_tools.deny"),
        &value.to_string(),
    )
}

fn allowlist_ids(name: &str, ch: &ChannelSettings) -> Option<Check> {
    if ch.allowlist.is_empty() && ch.approvers.is_empty() {
        return None;
    }
    let id = format!("channel.{name}.allowlist-ids");
    match registry::spec(ch.transport.kind).and_then(|s| s.id_shape) {
        // The configuration refuses any other at load: what is running holds these.
        Some((_, what)) => Some(check(
            id,
            CheckStatus::Ok,
            format!("channel {name}: the allowlist and approvers hold {what}s (checked at load)"),
        )),
        None => Some(
            check(
                id,
                CheckStatus::Warn,
                format!(
                    "channel {name}: this platform's ids are not checked; make sure the allowlist and approvers hold stable user ids, never names or e-mail addresses"
                ),
            )
            .fix(format!("coworkctl settings show channels.{name}"), "/settings"),
        ),
    }
}

/// The vault secrets an enabled channel's transport names, and whether each is stored.
fn channel_secrets(s: &Snapshot, name: &str, ch: &ChannelSettings) -> Option<Check> {
    if ch.transport.kind == TransportKind::None {
        return None;
    }
    let spec = registry::spec(ch.transport.kind)?;
    let stored = s.secrets.as_ref().ok()?;
    let transport = toml::Value::try_from(&ch.transport).ok()?;
    let mut missing = Vec::new();
    let mut short = Vec::new();
    for (key, what) in spec.secrets {
        let Some(secret) = transport.get(key).and_then(|v| v.as_str()) else {
            missing.push(format!("{key} ({what}) is not set"));
            continue;
        };
        match stored.iter().find(|l| l.name == secret) {
            None => missing.push(format!("{secret} ({what}) is not in the vault")),
            // A secret that authenticates requests must not be guessable.
            Some(l)
                if spec.webhook_route.is_some()
                    && WEBHOOK_SECRET_KEYS.contains(key)
                    && l.bytes.is_some_and(|b| b < MIN_WEBHOOK_SECRET_BYTES) =>
            {
                short.push(format!(
                    "{secret} ({what}) has {} bytes, fewer than {MIN_WEBHOOK_SECRET_BYTES}",
                    l.bytes.unwrap_or(0)
                ));
            }
            Some(_) => {}
        }
    }
    let id = format!("channel.{name}.secrets");
    if missing.is_empty() && !short.is_empty() {
        return Some(
            check(
                id,
                CheckStatus::Warn,
                format!(
                    "channel {name}: a webhook secret anyone could guess: {}",
                    short.join("; ")
                ),
            )
            .fix(
                "a new random secret (e.g. openssl rand -hex 32), set on the platform and with coworkctl secret set",
                "/settings",
            ),
        );
    }
    Some(if missing.is_empty() {
        let how = if spec.webhook_route.is_some() {
            "every request's signature is checked with it"
        } else {
            "stored in the vault"
        };
        check(
            id,
            CheckStatus::Ok,
            format!("channel {name}: its credentials are set ({how})"),
        )
        .fix("", "/settings")
    } else {
        check(
            id,
            CheckStatus::Warn,
            format!("channel {name} cannot start: {}", missing.join("; ")),
        )
        .fix(
            "coworkctl secret set NAME (or the settings page's credentials)",
            "/settings",
        )
    })
}

/// A channel whose transport did not start says why (a refused token, a
/// LAN bridge's socket with loose permissions, a server that is down).
fn channel_running(s: &Snapshot, name: &str) -> Option<Check> {
    let id = format!("channel.{name}.running");
    let states = match &s.channels {
        Ok(states) => states,
        Err(e) => {
            return Some(
                check(
                    id,
                    CheckStatus::Warn,
                    format!("channel {name}: its state could not be read: {e}"),
                )
                .fix("coworkctl status", "/settings"),
            );
        }
    };
    let state = states.iter().find(|c| c.name == name)?;
    Some(match (state.state.as_str(), &state.error) {
        ("waiting", why) => check(
            id,
            CheckStatus::Warn,
            format!(
                "channel {name} is not running: {}",
                why.as_deref().unwrap_or("its transport did not start")
            ),
        )
        .fix("see the channel on the settings page", "/settings"),
        (_, Some(problem)) => check(id, CheckStatus::Warn, format!("channel {name}: {problem}"))
            .fix("see the channel on the settings page", "/settings"),
        (state, None) => {
            check(id, CheckStatus::Ok, format!("channel {name}: {state}")).fix("", "/settings")
        }
    })
}

fn webhook_listener(s: &Snapshot) -> Option<Check> {
    let webhooks: Vec<&str> = s
        .config
        .channels
        .iter()
        .filter(|(_, c)| c.enabled)
        .filter(|(_, c)| {
            registry::spec(c.transport.kind).is_some_and(|t| t.webhook_route.is_some())
        })
        .map(|(n, _)| n.as_str())
        .collect();
    if webhooks.is_empty() {
        return None;
    }
    let listen = &s.config.webhook.listen;
    let ip = listen.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
    let c = match ip {
        Some(ip) if ip.is_loopback() => check(
            "webhook.listen",
            CheckStatus::Ok,
            format!(
                "the webhook listener ({}) is on loopback: only a tunnel on this box reaches it",
                listen
            ),
        ),
        Some(ip) if !ip.is_unspecified() && crate::net::is_lan_ip(ip) => check(
            "webhook.listen",
            CheckStatus::Ok,
            format!("the webhook listener ({listen}) is on the local network"),
        ),
        _ => check(
            "webhook.listen",
            CheckStatus::Warn,
            format!(
                "the webhook listener ({listen}) for {} is reachable beyond this box and the LAN; put it on loopback behind a tunnel unless the box is meant to face the internet",
                webhooks.join(", ")
            ),
        ),
    };
    Some(c.fix(
        "coworkctl settings set webhook.listen 127.0.0.1:PORT",
        "/settings",
    ))
}

/// No other user may change the appliance's state; none may read its secrets.
fn file_modes(s: &Snapshot) -> Check {
    let mut writable = Vec::new();
    let mut readable = Vec::new();
    for f in &s.files {
        let Some(mode) = f.mode else { continue };
        if mode & 0o022 != 0 {
            writable.push(format!("{} ({mode:o})", f.path));
        } else if f.secret && mode & 0o007 != 0 {
            readable.push(format!("{} ({mode:o})", f.path));
        }
    }
    if !writable.is_empty() {
        check(
            "files.permissions",
            CheckStatus::Fail,
            format!(
                "other users can change the appliance's state: {} is group- or world-writable",
                writable.join(", ")
            ),
        )
        .fix(
            "chmod go-w on each (the units' StateDirectoryMode sets them at boot)",
            "/",
        )
    } else if !readable.is_empty() {
        check(
            "files.permissions",
            CheckStatus::Warn,
            format!(
                "other users can see into what holds the keys: {}",
                readable.join(", ")
            ),
        )
        .fix("chmod o-rwx on each", "/")
    } else {
        check(
            "files.permissions",
            CheckStatus::Ok,
            format!(
                "{} state directories and files: none writable by others, the keys' closed to them",
                s.files.iter().filter(|f| f.mode.is_some()).count()
            ),
        )
        .fix("", "/")
    }
}

/// Programs that run whatever their arguments say: a trusted rule starting
/// with one trusts every command.
const INTERPRETERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "fish",
    "busybox",
    "python",
    "python3",
    "perl",
    "ruby",
    "node",
    "deno",
    "bun",
    "php",
    "lua",
    "tclsh",
    "pwsh",
    "osascript",
    "eval",
    "exec",
];
/// Programs that run another program named in their options or arguments,
/// or the project's own code (build scripts, package scripts, test runners).
const RUNS_PROGRAMS: &[&str] = &[
    "env", "xargs", "find", "timeout", "nice", "nohup", "watch", "sudo", "su", "doas", "command",
    "time", "strace", "gdb", "chroot", "unshare", "nsenter", "setsid", "stdbuf", "flock",
    "parallel", "awk", "gawk", "mawk", "sed", "make", "tar", "rsync", "ssh", "scp", "vim", "vi",
    "nvim", "less", "man", "npm", "npx", "yarn", "pnpm", "pip", "pip3", "cargo", "go", "mvn",
    "gradle", "pytest", "tox",
];

/// Why a trusted argv-prefix rule trusts more than it seems to, if it does.
pub(super) fn risky_rule(rule: &str) -> Option<&'static str> {
    let mut words = rule.split_whitespace();
    let first = words.next()?;
    let program = first.rsplit('/').next().unwrap_or(first);
    if INTERPRETERS.contains(&program) {
        return Some("an interpreter: it runs any code it is given");
    }
    if RUNS_PROGRAMS.contains(&program) {
        return Some("its options or the project's files can make it run other programs");
    }
    if program == "git" && words.next().is_none_or(|w| w.starts_with('-')) {
        return Some("git's options (-c, --exec-path) can make it run other programs");
    }
    None
}

fn guard_trusted(s: &Snapshot) -> Check {
    let risky: Vec<String> = s
        .config
        .guard
        .trusted
        .iter()
        .filter_map(|r| risky_rule(r).map(|why| format!("\"{r}\" ({why})")))
        .collect();
    let n = s.config.guard.trusted.len();
    if risky.is_empty() {
        check(
            "guard.trusted",
            CheckStatus::Ok,
            format!(
                "guardrails on; {n} trusted rule(s), none trusting an interpreter or a program that runs others"
            ),
        )
        .fix("", "/settings")
    } else {
        check(
            "guard.trusted",
            CheckStatus::Warn,
            format!(
                "trusted rules run without approval, and these trust more than one command: {}",
                risky.join("; ")
            ),
        )
        .fix(
            "remove them from guard.trusted (coworkctl settings set guard.trusted '[...]')",
            "/settings",
        )
    }
}

/// Bounds above which a task can run away before anyone looks.
struct Ceiling {
    key: &'static str,
    value: f64,
    max: f64,
}

fn limits(s: &Snapshot) -> Check {
    let l = &s.config.limits;
    let ceilings = [
        Ceiling {
            key: "max_iterations",
            value: f64::from(l.max_iterations),
            max: 200.0,
        },
        Ceiling {
            key: "max_tokens_per_task",
            value: l.max_tokens_per_task as f64,
            max: 2_000_000.0,
        },
        Ceiling {
            key: "max_cost_usd",
            value: l.max_cost_usd,
            max: 50.0,
        },
        Ceiling {
            key: "task_deadline_secs",
            value: l.task_deadline_secs as f64,
            max: 4.0 * 3600.0,
        },
        Ceiling {
            key: "max_tasks_per_user",
            value: f64::from(l.max_tasks_per_user),
            max: 10.0,
        },
        Ceiling {
            key: "max_cost_usd_per_user_per_day",
            value: l.max_cost_usd_per_user_per_day,
            max: 200.0,
        },
        Ceiling {
            key: "max_tokens_per_user_per_day",
            value: l.max_tokens_per_user_per_day as f64,
            max: 20_000_000.0,
        },
    ];
    let over: Vec<String> = ceilings
        .iter()
        .filter(|c| c.value > c.max)
        .map(|c| format!("limits.{} = {} (above {})", c.key, c.value, c.max))
        .collect();
    if over.is_empty() {
        check(
            "limits",
            CheckStatus::Ok,
            format!(
                "task bounds set: {} model calls, ${} per task, ${} per user per day",
                l.max_iterations, l.max_cost_usd, l.max_cost_usd_per_user_per_day
            ),
        )
        .fix("", "/settings")
    } else {
        check(
            "limits",
            CheckStatus::Warn,
            format!("task bounds above sane ceilings: {}", over.join(", ")),
        )
        .fix(
            "coworkctl settings unset limits.KEY (the default)",
            "/settings",
        )
    }
}

fn sandbox(s: &Snapshot) -> Check {
    if s.config.sandbox.require_full_isolation {
        check(
            "sandbox.isolation",
            CheckStatus::Ok,
            "commands run only at full isolation (namespaces, landlock, seccomp, cgroup); file access is confined to the task's workspace",
        )
        .fix("", "/settings")
    } else {
        check(
            "sandbox.isolation",
            CheckStatus::Warn,
            "sandbox.require_full_isolation = false: commands run even where a mechanism (landlock, cgroups, user namespaces) is missing",
        )
        .fix("coworkctl settings set sandbox.require_full_isolation true", "/settings")
    }
}

fn logging(s: &Snapshot) -> Check {
    match s.config.log.level {
        LogLevel::Debug | LogLevel::Trace => check(
            "log.level",
            CheckStatus::Warn,
            format!(
                "log level {}: debug logs may carry message text into the journal",
                s.config.log.level.name()
            ),
        ),
        level => check(
            "log.level",
            CheckStatus::Ok,
            format!("log level {}: no message text in the journal", level.name()),
        ),
    }
    .fix("coworkctl settings set log.level info", "/settings")
    .safe("log.level", "\"info\"")
}

fn keystore(s: &Snapshot) -> Check {
    if s.keystore.contains("software-bound") {
        check(
            "keystore",
            CheckStatus::Warn,
            format!(
                "keystore {}: a copy of the disk is enough to read the vault; a TPM 2.0 binds the keys to this machine",
                s.keystore
            ),
        )
        .fix("add a TPM 2.0 (or enable it in the firmware) and restart: the key moves into it", "/")
    } else {
        check(
            "keystore",
            CheckStatus::Ok,
            format!(
                "keystore {}: the master key is bound to this machine",
                s.keystore
            ),
        )
        .fix("", "/")
    }
}

fn audit(s: &Snapshot) -> Check {
    // Checkpoints come every `checkpoint_every_entries` entries (and after a
    // quiet interval, and at shutdown): twice that many unwitnessed entries
    // means the audit component stopped writing them.
    let every = s.config.audit.checkpoint_every_entries.max(1);
    match &s.audit {
        Ok(v) if v.intact => {
            let since = v
                .last_seq
                .saturating_sub(v.newest_checkpoint.as_ref().map_or(0, |c| c.0));
            if since > every.saturating_mul(2) {
                let newest = match &v.newest_checkpoint {
                    Some((seq, time)) => format!("the newest is at #{seq} ({time})"),
                    None => "there is none".to_string(),
                };
                check(
                    "audit.verify",
                    CheckStatus::Warn,
                    format!(
                        "the audit trail verifies, but {since} entries have no checkpoint ({newest}; one is due every {every}): a cut tail could go unnoticed"
                    ),
                )
                .fix("coworkctl status (is the audit component up?); restarting coworkd writes one", "/audit")
            } else {
                check(
                    "audit.verify",
                    CheckStatus::Ok,
                    format!(
                        "the audit trail verifies: {} entries, up to #{}, the newest checkpoint {} entries back",
                        v.entries, v.last_seq, since
                    ),
                )
                .fix("", "/audit")
            }
        }
        Ok(v) => check(
            "audit.verify",
            CheckStatus::Fail,
            format!(
                "the audit trail does not verify{}: {}",
                v.first_bad_seq
                    .map(|n| format!(" from entry #{n}"))
                    .unwrap_or_default(),
                v.detail
            ),
        )
        .fix(
            "coworkctl audit verify; keep the disk for examination",
            "/audit",
        ),
        Err(e) => check(
            "audit.verify",
            CheckStatus::Warn,
            format!("the audit trail could not be verified: {e}"),
        )
        .fix("coworkctl audit verify", "/audit"),
    }
}

fn users(s: &Snapshot) -> Vec<Check> {
    let users = match &s.users {
        Ok(u) => u,
        Err(e) => {
            return vec![
                check(
                    "users",
                    CheckStatus::Warn,
                    format!("the users could not be read: {e}"),
                )
                .fix("coworkctl users list", "/users"),
            ];
        }
    };
    let active: Vec<_> = users
        .iter()
        .filter(|u| matches!(u.state, UserState::Paired | UserState::Allowlisted))
        .collect();
    let mut per_channel: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for u in &active {
        let e = per_channel.entry(u.channel.as_str()).or_default();
        match u.state {
            UserState::Paired => e.0 += 1,
            _ => e.1 += 1,
        }
    }
    let who = if per_channel.is_empty() {
        "nobody is paired or allowlisted".to_string()
    } else {
        per_channel
            .iter()
            .map(|(ch, (p, a))| format!("{ch}: {p} paired, {a} allowlisted"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut out = vec![
        check(
            "users.access",
            CheckStatus::Ok,
            format!("who has access: {who}"),
        )
        .fix("", "/users"),
    ];
    let days = i64::from(s.config.doctor.inactive_user_days);
    let cutoff = s.now.saturating_sub(days * DAY);
    let idle: Vec<String> = active
        .iter()
        .filter(|u| u.last_seen.unwrap_or(u.since) < cutoff)
        .map(|u| format!("{} on {}", u.sender, u.channel))
        .collect();
    out.push(if idle.is_empty() {
        check(
            "users.inactive",
            CheckStatus::Ok,
            format!("every user was seen in the last {days} days"),
        )
        .fix("", "/users")
    } else {
        check(
            "users.inactive",
            CheckStatus::Warn,
            format!(
                "not seen for {days} days or more: {}; remove access nobody uses",
                idle.join(", ")
            ),
        )
        .fix("coworkctl users revoke CHANNEL SENDER", "/users")
    });
    out
}

fn pairing(s: &Snapshot) -> Check {
    match &s.pairing {
        Err(e) => check("pairing.outstanding", CheckStatus::Warn, format!("the pairing codes could not be read: {e}")),
        Ok(codes) => {
            let live: Vec<String> = codes
                .iter()
                .filter(|c| c.expires_at > s.now)
                .map(|c| format!("{} (expires in {} s)", c.channel, c.expires_at.saturating_sub(s.now)))
                .collect();
            if live.is_empty() {
                check("pairing.outstanding", CheckStatus::Ok, "no pairing code outstanding")
            } else {
                check(
                    "pairing.outstanding",
                    CheckStatus::Warn,
                    format!(
                        "{} pairing code(s) outstanding: {}; whoever holds one can pair until it expires",
                        live.len(),
                        live.join(", ")
                    ),
                )
            }
        }
    }
    .fix("coworkctl pair cancel --all", "/pairing")
}

fn credentials(s: &Snapshot) -> Check {
    let secrets = match &s.secrets {
        Ok(l) => l,
        Err(e) => {
            return check(
                "credentials.age",
                CheckStatus::Warn,
                format!("the vault could not be listed: {e}"),
            )
            .fix("coworkctl secret list", "/settings");
        }
    };
    let days = i64::from(s.config.doctor.credential_max_age_days);
    let cutoff = s.now.saturating_sub(days * DAY);
    let old: Vec<String> = secrets
        .iter()
        .filter(|l| {
            time::OffsetDateTime::parse(
                &l.updated_at,
                &time::format_description::well_known::Rfc3339,
            )
            .is_ok_and(|t| t.unix_timestamp() < cutoff)
        })
        .map(|l| {
            format!(
                "{} (set {})",
                l.name,
                l.updated_at.get(..10).unwrap_or(&l.updated_at)
            )
        })
        .collect();
    if old.is_empty() {
        check(
            "credentials.age",
            CheckStatus::Ok,
            format!(
                "{} credential(s), each set within {days} days",
                secrets.len()
            ),
        )
        .fix("", "/settings")
    } else {
        check(
            "credentials.age",
            CheckStatus::Warn,
            format!(
                "not rotated for {days} days: {}; rotate them on the platform, then store the new value",
                old.join(", ")
            ),
        )
        .fix("coworkctl secret set NAME", "/settings")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FileMode, Report, run};
    use super::*;
    use crate::config::Config;
    use crate::ipc::{AuditVerdict, ChannelState, PairingListing, SecretListing, UserListing};

    const NOW: i64 = 1_800_000_000;
    use crate::update::feed::{FeedCheck, FeedState};

    /// A production appliance with nothing to report.
    fn healthy() -> Snapshot {
        let mut config = Config::default();
        config.update.feed_url = Some("https://updates.example.com/feed.json".into());
        Snapshot {
            now: NOW,
            config,
            keystore: "tpm2".into(),
            update: Ok(serde_json::json!({
                "running": "a", "running_version": 7, "other": "b",
                "other_version": "6", "other_entry": "good", "fallback": null,
            })),
            audit: Ok(AuditVerdict {
                intact: true,
                entries: 10,
                last_seq: 10,
                first_bad_seq: None,
                detail: String::new(),
                newest_checkpoint: Some((8, "2027-01-15T00:00:00Z".into())),
            }),
            users: Ok(vec![user("local", "1000", NOW - DAY)]),
            pairing: Ok(Vec::new()),
            secrets: Ok(vec![secret("llm_key", "2030-01-01T00:00:00Z")]),
            feed: Ok(FeedState {
                seen_feed_version: 3,
                last_check: Some(FeedCheck {
                    checked_at: (NOW - 3600) as u64,
                    running_version: 7,
                    newest_version: Some(7),
                    newest_label: None,
                    installable: false,
                    bundle_url: None,
                    bundle_size: None,
                    bundle_sha256: None,
                    feed_version: Some(3),
                    expires_at: None,
                    error: None,
                }),
            }),
            files: vec![
                FileMode {
                    path: "/var/lib/cowork".into(),
                    mode: Some(0o755),
                    secret: false,
                },
                FileMode {
                    path: "/var/lib/cowork/supervisor".into(),
                    mode: Some(0o700),
                    secret: true,
                },
                FileMode {
                    path: "/var/lib/cowork/gone".into(),
                    mode: None,
                    secret: true,
                },
            ],
            channels: Ok(vec![ChannelState {
                name: "local".into(),
                enabled: true,
                state: "none".into(),
                error: None,
                last_message_at: None,
            }]),
        }
    }

    fn user(channel: &str, sender: &str, last_seen: i64) -> UserListing {
        UserListing {
            channel: channel.into(),
            sender: sender.into(),
            state: UserState::Paired,
            since: last_seen,
            last_seen: Some(last_seen),
            display_name: None,
        }
    }

    fn secret(name: &str, updated_at: &str) -> SecretListing {
        SecretListing {
            name: name.into(),
            version: 1,
            updated_at: updated_at.into(),
            bytes: Some(32),
        }
    }

    fn status_of(r: &Report, id: &str) -> CheckStatus {
        r.get(id)
            .unwrap_or_else(|| panic!("no check {id} in {r:#?}"))
            .status
    }

    #[test]
    fn a_healthy_appliance_passes_every_check() {
        let r = run(&healthy());
        assert!(
            r.checks.iter().all(|c| c.status == CheckStatus::Ok),
            "{r:#?}"
        );
        assert_eq!(r.exit_code(), 0);
        assert!(
            r.checks
                .iter()
                .all(|c| c.fix.is_empty() && c.safe_fix.is_none())
        );
    }

    #[test]
    fn each_finding_turns_its_check_and_only_its_check() {
        type Mutate = fn(&mut Snapshot);
        let cases: &[(&str, Mutate, &str, CheckStatus)] = &[
            (
                "development profile",
                |s| s.config.profile = Profile::Development,
                "profile",
                CheckStatus::Warn,
            ),
            (
                "open DMs",
                |s| s.config.channels.get_mut("local").unwrap().dm = AccessMode::Open,
                "channel.local.access",
                CheckStatus::Fail,
            ),
            (
                "open groups",
                |s| s.config.channels.get_mut("local").unwrap().group = AccessMode::Open,
                "channel.local.access",
                CheckStatus::Fail,
            ),
            (
                "one open chat",
                |s| {
                    s.config.channels.get_mut("local").unwrap().chats.insert(
                        "g1".into(),
                        crate::gateway::ChatPolicy {
                            mode: Some(AccessMode::Open),
                            ..Default::default()
                        },
                    );
                },
                "channel.local.access",
                CheckStatus::Fail,
            ),
            (
                "groups without mention",
                |s| s.config.channels.get_mut("local").unwrap().require_mention = false,
                "channel.local.group-mention",
                CheckStatus::Warn,
            ),
            (
                "memory in groups",
                |s| {
                    s.config
                        .channels
                        .get_mut("local")
                        .unwrap()
                        .group_tools
                        .deny
                        .remove("memory");
                },
                "channel.local.group-tools",
                CheckStatus::Warn,
            ),
            (
                "debug logs",
                |s| s.config.log.level = LogLevel::Debug,
                "log.level",
                CheckStatus::Warn,
            ),
            (
                "trace logs",
                |s| s.config.log.level = LogLevel::Trace,
                "log.level",
                CheckStatus::Warn,
            ),
            (
                "trusting bash",
                |s| s.config.guard.trusted = vec!["bash".into()],
                "guard.trusted",
                CheckStatus::Warn,
            ),
            (
                "trusting sh -c",
                |s| s.config.guard.trusted = vec!["sh -c".into()],
                "guard.trusted",
                CheckStatus::Warn,
            ),
            (
                "trusting find",
                |s| s.config.guard.trusted = vec!["/usr/bin/find .".into()],
                "guard.trusted",
                CheckStatus::Warn,
            ),
            (
                "trusting bare git",
                |s| s.config.guard.trusted = vec!["git".into()],
                "guard.trusted",
                CheckStatus::Warn,
            ),
            (
                "trusting git -c",
                |s| s.config.guard.trusted = vec!["git -c".into()],
                "guard.trusted",
                CheckStatus::Warn,
            ),
            (
                "a task allowed 500 model calls",
                |s| s.config.limits.max_iterations = 500,
                "limits",
                CheckStatus::Warn,
            ),
            (
                "$500 a task",
                |s| s.config.limits.max_cost_usd = 500.0,
                "limits",
                CheckStatus::Warn,
            ),
            (
                "weaker isolation",
                |s| s.config.sandbox.require_full_isolation = false,
                "sandbox.isolation",
                CheckStatus::Warn,
            ),
            (
                "file keystore",
                |s| s.keystore = "file (software-bound)".into(),
                "keystore",
                CheckStatus::Warn,
            ),
            (
                "a tampered trail",
                |s| {
                    s.audit = Ok(AuditVerdict {
                        intact: false,
                        entries: 10,
                        last_seq: 10,
                        first_bad_seq: Some(4),
                        detail: "hash mismatch".into(),
                        newest_checkpoint: None,
                    })
                },
                "audit.verify",
                CheckStatus::Fail,
            ),
            (
                "checkpoints stopped",
                |s| {
                    if let Ok(v) = &mut s.audit {
                        v.last_seq = 5_000;
                        v.newest_checkpoint = Some((100, "2027-01-01T00:00:00Z".into()));
                    }
                },
                "audit.verify",
                CheckStatus::Warn,
            ),
            (
                "no checkpoint at all",
                |s| {
                    if let Ok(v) = &mut s.audit {
                        v.last_seq = 2_500;
                        v.newest_checkpoint = None;
                    }
                },
                "audit.verify",
                CheckStatus::Warn,
            ),
            (
                "a channel waiting",
                |s| {
                    if let Ok(c) = &mut s.channels {
                        c[0].state = "waiting".into();
                        c[0].error = Some("retrying in 8 s: 401 bad token".into());
                    }
                },
                "channel.local.running",
                CheckStatus::Warn,
            ),
            (
                "channel states unreadable",
                |s| s.channels = Err("gateway down".into()),
                "channel.local.running",
                CheckStatus::Warn,
            ),
            (
                "a world-writable state directory",
                |s| s.files[0].mode = Some(0o777),
                "files.permissions",
                CheckStatus::Fail,
            ),
            (
                "a group-writable state directory",
                |s| s.files[0].mode = Some(0o775),
                "files.permissions",
                CheckStatus::Fail,
            ),
            (
                "a world-listable keystore",
                |s| s.files[1].mode = Some(0o701),
                "files.permissions",
                CheckStatus::Warn,
            ),
            (
                "no feed configured",
                |s| s.config.update.feed_url = None,
                "updates.feed",
                CheckStatus::Warn,
            ),
            (
                "never checked",
                |s| s.feed = Ok(FeedState::default()),
                "updates.feed",
                CheckStatus::Warn,
            ),
            (
                "a failed check",
                |s| {
                    if let Ok(f) = &mut s.feed {
                        f.last_check.as_mut().unwrap().error = Some("the feed expired".into());
                    }
                },
                "updates.feed",
                CheckStatus::Warn,
            ),
            (
                "an update offered",
                |s| {
                    if let Ok(f) = &mut s.feed {
                        let c = f.last_check.as_mut().unwrap();
                        c.installable = true;
                        c.newest_version = Some(8);
                    }
                },
                "updates.feed",
                CheckStatus::Warn,
            ),
            (
                "a stale check",
                |s| {
                    if let Ok(f) = &mut s.feed {
                        f.last_check.as_mut().unwrap().checked_at = (NOW - 4 * DAY) as u64;
                    }
                },
                "updates.feed",
                CheckStatus::Warn,
            ),
            (
                "feed state unreadable",
                |s| s.feed = Err("bad json".into()),
                "updates.feed",
                CheckStatus::Warn,
            ),
            (
                "an unreadable trail",
                |s| s.audit = Err("unreachable".into()),
                "audit.verify",
                CheckStatus::Warn,
            ),
            (
                "a user away 91 days",
                |s| s.users = Ok(vec![user("local", "1000", NOW - 91 * DAY)]),
                "users.inactive",
                CheckStatus::Warn,
            ),
            (
                "users unreadable",
                |s| s.users = Err("gateway down".into()),
                "users",
                CheckStatus::Warn,
            ),
            (
                "a live pairing code",
                |s| {
                    s.pairing = Ok(vec![PairingListing {
                        id: 1,
                        channel: "local".into(),
                        issued_at: NOW - 10,
                        expires_at: NOW + 290,
                    }])
                },
                "pairing.outstanding",
                CheckStatus::Warn,
            ),
            (
                "an old credential",
                |s| s.secrets = Ok(vec![secret("llm_key", "2020-01-01T00:00:00Z")]),
                "credentials.age",
                CheckStatus::Warn,
            ),
            (
                "a newer slot not booted",
                |s| {
                    s.update = Ok(
                        serde_json::json!({"running_version": 7, "other_version": "8", "other_entry": "good", "fallback": null}),
                    )
                },
                "updates",
                CheckStatus::Warn,
            ),
            (
                "a fallback",
                |s| {
                    s.update = Ok(
                        serde_json::json!({"running_version": 7, "other_version": "8", "other_entry": "bad", "fallback": "slot b failed to boot 3 times"}),
                    )
                },
                "updates",
                CheckStatus::Warn,
            ),
            (
                "no update state in production",
                |s| s.update = Err("no ESP".into()),
                "updates",
                CheckStatus::Warn,
            ),
        ];
        for (what, mutate, id, expected) in cases {
            let mut s = healthy();
            mutate(&mut s);
            let r = run(&s);
            assert_eq!(status_of(&r, id), *expected, "{what}: {r:#?}");
            let others: Vec<_> = r
                .checks
                .iter()
                .filter(|c| c.id != *id && c.status != CheckStatus::Ok)
                .collect();
            assert!(
                others.is_empty(),
                "{what} turned other checks too: {others:#?}"
            );
            let c = r.get(id).unwrap();
            assert!(!c.fix.is_empty(), "{what}: no fix given");
            assert_eq!(r.checks[0].id, *id, "{what}: not listed first");
            let code = if *expected == CheckStatus::Fail { 2 } else { 1 };
            assert_eq!(r.exit_code(), code, "{what}");
        }
    }

    #[test]
    fn an_open_channel_is_a_fail_naming_it() {
        let mut s = healthy();
        s.config.profile = Profile::Development;
        s.config.channels.insert(
            "tg".into(),
            ChannelSettings {
                dm: AccessMode::Open,
                ..Default::default()
            },
        );
        let r = run(&s);
        let c = r.get("channel.tg.access").unwrap();
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.message.contains("channel tg is open"), "{}", c.message);
        assert_eq!(c.fix, "coworkctl settings set channels.tg.dm pairing");
        // Opening access is the owner's decision to undo: no automatic fix.
        assert!(c.safe_fix.is_none());
        assert_eq!(r.exit_code(), 2);
    }

    #[test]
    fn safe_fixes_are_settings_that_restore_the_default() {
        let mut s = healthy();
        let local = s.config.channels.get_mut("local").unwrap();
        local.require_mention = false;
        local.group_tools.deny = ["shell".to_string()].into_iter().collect();
        s.config.log.level = LogLevel::Debug;
        s.config.guard.trusted = vec!["bash".into()];
        let r = run(&s);
        let fixes: Vec<_> = r
            .checks
            .iter()
            .filter_map(|c| {
                c.safe_fix
                    .as_ref()
                    .map(|f| (f.key.as_str(), f.value.as_str()))
            })
            .collect();
        assert_eq!(
            fixes,
            [
                ("channels.local.require_mention", "true"),
                (
                    "channels.local.group_tools.deny",
                    r#"["clipboard", "memory", "shell"]"#
                ),
                ("log.level", "\"info\""),
            ]
        );
        // Each value parses as the owner's settings take values.
        for (key, value) in fixes {
            crate::config::owner::Change::parse(key, Some(value)).unwrap();
        }
    }

    #[test]
    fn disabled_channels_and_groups_are_not_checked() {
        let mut s = healthy();
        let local = s.config.channels.get_mut("local").unwrap();
        local.group = AccessMode::Disabled;
        local.require_mention = false;
        let r = run(&s);
        assert!(r.get("channel.local.group-mention").is_none());
        s.config.channels.get_mut("local").unwrap().enabled = false;
        s.config.channels.get_mut("local").unwrap().dm = AccessMode::Open;
        assert!(run(&s).get("channel.local.access").is_none());
    }

    #[test]
    fn a_webhook_channel_needs_its_secrets_and_long_ones() {
        let mut s = healthy();
        let mut tg = ChannelSettings::default();
        tg.transport.kind = TransportKind::TelegramWebhook;
        tg.transport.token_secret = Some("tg_token".into());
        tg.transport.signing_secret = Some("tg_hook".into());
        s.config.channels.insert("tg".into(), tg);
        // Missing: the channel cannot start.
        let c = run(&s).get("channel.tg.secrets").unwrap().clone();
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(
            c.message.contains("tg_hook") && c.message.contains("not in the vault"),
            "{}",
            c.message
        );
        // Stored, but short: guessable.
        let mut hook = secret("tg_hook", "2030-01-01T00:00:00Z");
        hook.bytes = Some(6);
        s.secrets = Ok(vec![secret("tg_token", "2030-01-01T00:00:00Z"), hook]);
        let c = run(&s).get("channel.tg.secrets").unwrap().clone();
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(c.message.contains("6 bytes"), "{}", c.message);
        // Long enough: ok, and the listener on loopback is ok too.
        if let Ok(l) = &mut s.secrets {
            l[1].bytes = Some(32);
        }
        let r = run(&s);
        assert_eq!(r.get("channel.tg.secrets").unwrap().status, CheckStatus::Ok);
        assert_eq!(r.get("webhook.listen").unwrap().status, CheckStatus::Ok);
        // A short bot token is not a webhook secret: not this check's business.
        if let Ok(l) = &mut s.secrets {
            l[0].bytes = Some(4);
        }
        assert_eq!(
            run(&s).get("channel.tg.secrets").unwrap().status,
            CheckStatus::Ok
        );
        // Listening on every interface: a warning naming the channel.
        s.config.webhook.listen = "0.0.0.0:8080".into();
        let c = run(&s).get("webhook.listen").unwrap().clone();
        assert_eq!(c.status, CheckStatus::Warn);
        assert!(c.message.contains("tg"), "{}", c.message);
    }

    #[test]
    fn harmless_trusted_rules_pass() {
        for rule in [
            "git status",
            "git diff",
            "ls",
            "cat",
            "rg",
            "/usr/bin/git log",
        ] {
            assert_eq!(risky_rule(rule), None, "{rule}");
        }
        for rule in [
            "python3 -c",
            "env",
            "xargs",
            "cargo build",
            "npm test",
            "sudo ls",
            "git --exec-path=x",
        ] {
            assert!(risky_rule(rule).is_some(), "{rule}");
        }
    }

    #[test]
    fn hostile_snapshot_parts_do_not_panic() {
        let mut s = healthy();
        s.update =
            Ok(serde_json::json!({"running_version": "x", "other_version": 5, "fallback": 3}));
        s.secrets = Ok(vec![secret("a", "not a date"), secret("b", "")]);
        s.users = Ok(vec![UserListing {
            last_seen: None,
            since: i64::MIN,
            ..user("x", "y", 0)
        }]);
        s.pairing = Ok(vec![PairingListing {
            id: 1,
            channel: "x".into(),
            issued_at: i64::MIN,
            expires_at: i64::MAX,
        }]);
        s.now = i64::MIN;
        let r = run(&s);
        assert!(!r.checks.is_empty());
    }
}
