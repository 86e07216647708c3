//! The configuration model: what `coworkd.toml` may say, with safe defaults.
//! Unknown keys are errors (`deny_unknown_fields` everywhere).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole configuration after drop-ins are merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `production` (the default) refuses insecure settings; `development` allows
    /// them for a bench or a laptop.
    pub profile: Profile,
    pub log: LogSettings,
    pub supervisor: SupervisorSettings,
    /// Where the master key lives: tpm2, keychain or file (auto picks the best).
    pub keystore: crate::keystore::KeystoreSettings,
    pub admin: AdminSettings,
    /// The audit trail: retention and checkpoint intervals.
    pub audit: crate::audit::AuditSettings,
    /// Command guardrails: trusted and extra blocked argv-prefix rules.
    pub guard: crate::guard::GuardSettings,
    /// Per-task limits: iterations, tokens, cost, deadline, command time, sizes.
    pub limits: crate::guard::LimitSettings,
    /// The sandbox that runs approved commands.
    pub sandbox: crate::sandbox::SandboxSettings,
    /// Messaging channels by name (`local`, `telegram`, `slack`, `discord`, ...).
    pub channels: BTreeMap<String, ChannelSettings>,
    /// The gateway's webhook listener (Telegram webhook, Slack Events API,
    /// Discord interactions); never the admin page's listener.
    pub webhook: crate::gateway::WebhookSettings,
    /// Signed image updates: trusted keys, slots, ESP, state.
    pub update: crate::update::UpdateSettings,
    /// The LLM provider of the agent runtime. Absent = no agent: authorized
    /// messages are answered with a sentence saying so.
    pub agent: Option<crate::agent::AgentSettings>,
    /// `coworkctl doctor`: how old a credential, how long unseen a user may be.
    pub doctor: crate::doctor::DoctorSettings,
}

impl Default for Config {
    fn default() -> Self {
        let mut channels = BTreeMap::new();
        channels.insert(
            crate::gateway::LOCAL_CHANNEL.to_string(),
            ChannelSettings::default(),
        );
        Config {
            profile: Profile::Production,
            log: LogSettings::default(),
            supervisor: SupervisorSettings::default(),
            keystore: crate::keystore::KeystoreSettings::default(),
            admin: AdminSettings::default(),
            audit: crate::audit::AuditSettings::default(),
            guard: crate::guard::GuardSettings::default(),
            limits: crate::guard::LimitSettings::default(),
            sandbox: crate::sandbox::SandboxSettings::default(),
            channels,
            webhook: crate::gateway::WebhookSettings::default(),
            update: crate::update::UpdateSettings::default(),
            agent: None,
            doctor: crate::doctor::DoctorSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Production,
    Development,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Production => "production",
            Profile::Development => "development",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub level: LogLevel,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: LogLevel::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// How the supervisor restarts and watches components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorSettings {
    /// First restart delay after a crash; doubles on each crash in a row.
    pub restart_backoff_initial_ms: u64,
    pub restart_backoff_max_ms: u64,
    /// More restarts than this within the window marks the appliance degraded.
    pub restart_burst: u32,
    pub restart_window_secs: u64,
    /// How long an orderly stop may take before the rest is killed.
    pub stop_timeout_secs: u64,
    pub health_interval_ms: u64,
    pub health_timeout_ms: u64,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            restart_backoff_initial_ms: 100,
            restart_backoff_max_ms: 30_000,
            restart_burst: 5,
            restart_window_secs: 60,
            stop_timeout_secs: 10,
            health_interval_ms: 1000,
            health_timeout_ms: 1000,
        }
    }
}

/// The LAN-only admin page: the admin module's own settings type.
pub use crate::admin::AdminWebSettings as AdminSettings;

// A channel's settings are the gateway's own type (the gateway owns access
// control); the configuration only embeds it as `[channels.NAME]`.
pub use crate::gateway::{AccessMode, ChannelSettings};

impl From<Profile> for crate::gateway::Profile {
    fn from(p: Profile) -> Self {
        match p {
            Profile::Production => crate::gateway::Profile::Production,
            Profile::Development => crate::gateway::Profile::Development,
        }
    }
}

impl Config {
    /// The agent runtime's settings, if `[agent]` is configured: `[agent]` with
    /// `[limits]` as they are (the agent has no limit values of its own).
    pub fn agent_settings(&self) -> Option<crate::agent::AgentSettings> {
        let mut agent = self.agent.clone()?;
        agent.limits = self.limits.clone();
        Some(agent)
    }

    /// The gateway's view of the configuration: its channels.
    pub fn gateway_settings(&self) -> crate::gateway::GatewaySettings {
        crate::gateway::GatewaySettings {
            channels: self.channels.clone(),
        }
    }
}
