//! `[admin]` configuration: where the page listens and how long sessions live.

use serde::{Deserialize, Serialize};

/// Settings of the admin page, embedded in the appliance config as `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminWebSettings {
    /// IP addresses to listen on. Empty: every loopback/private address of the
    /// host (never a public one). Wildcards (`0.0.0.0`, `::`) are refused; an
    /// explicitly named public address is bound with a warning, and its
    /// non-LAN peers still get 403.
    pub listen: Vec<String>,
    /// TCP port (8443).
    pub port: u16,
    /// A session unused for this long is logged out (1800 s).
    pub session_idle_secs: u64,
    /// A session ends this long after login whatever its use (43200 s = 12 h).
    pub session_max_secs: u64,
    /// Password checks (login, setup token, current password) one client
    /// address may make per window; that many failures lock it out (5).
    pub login_lockout_after: u32,
    /// The window and how long a lockout lasts (900 s).
    pub login_lockout_secs: u64,
    /// Password checks per minute across all addresses: a token bucket of
    /// this size refilling one check every 60/N s; never a lockout (20).
    pub login_checks_per_minute: u32,
    /// Treat CGNAT addresses (100.64/10, e.g. a Tailscale interface) as LAN:
    /// listen on them by default and admit their peers (false).
    pub allow_cgnat: bool,
}

impl Default for AdminWebSettings {
    fn default() -> Self {
        AdminWebSettings {
            listen: Vec::new(),
            port: 8443,
            session_idle_secs: 30 * 60,
            session_max_secs: 12 * 60 * 60,
            login_lockout_after: 5,
            login_lockout_secs: 15 * 60,
            login_checks_per_minute: 20,
            allow_cgnat: false,
        }
    }
}
