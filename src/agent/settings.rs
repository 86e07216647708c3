//! `[agent]` configuration section.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::guard::LimitSettings;

/// Which provider implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Anthropic,
    Bedrock,
    /// An OpenAI-compatible server (OpenAI itself, or a LAN/local model server).
    #[serde(alias = "openai")]
    OpenaiCompatible,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::OpenaiCompatible => "openai_compatible",
        }
    }
}

/// Price of one model, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

impl ModelPrice {
    /// Cost in USD of the given token counts.
    pub fn cost_usd(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_usd_per_mtok
            + output_tokens as f64 * self.output_usd_per_mtok)
            / 1_000_000.0
    }
}

/// `max_tokens` of each LLM call when `[agent]` does not say.
pub const DEFAULT_MAX_TOKENS_PER_CALL: u32 = 4096;

/// HTTP behaviour of the providers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub connect_timeout_secs: u64,
    /// Whole-request timeout (covers a streamed response too).
    pub request_timeout_secs: u64,
    /// Attempts for 429 / 5xx / connection failures, the first one included.
    pub max_attempts: u32,
    /// First backoff delay; doubles per attempt.
    pub backoff_initial_ms: u64,
    /// Cap on any wait between attempts, `retry-after` included.
    pub max_retry_wait_secs: u64,
    /// Use streaming responses where the provider supports them.
    pub stream: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout_secs: 10,
            request_timeout_secs: 300,
            max_attempts: 4,
            backoff_initial_ms: 500,
            max_retry_wait_secs: 60,
            stream: true,
        }
    }
}

/// Range of `[agent] max_memory_bytes` (one user's notes), checked at load.
pub const MIN_MEMORY_BYTES: u64 = 1024;
pub const MAX_MEMORY_BYTES: u64 = 16 * 1024 * 1024;

/// Default life of an approval request, in seconds.
pub const DEFAULT_APPROVAL_TTL_SECS: u64 = 300;

/// The `[agent]` section. The per-task limits are not written here: they are
/// the appliance's `[limits]` section ([`LimitSettings`], their one definition
/// and one set of defaults), copied in by [`crate::config::Config::agent_settings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    pub provider: ProviderKind,
    pub model: String,
    /// Empty = the provider's public endpoint (for Bedrock, derived from `region`).
    pub base_url: String,
    /// Name of the vault secret with the API key (Bedrock: a JSON object with
    /// `access_key_id`, `secret_access_key`, optional `session_token`).
    /// Empty = no key (OpenAI-compatible local servers only).
    pub secret_name: String,
    /// AWS region (Bedrock only).
    pub region: String,
    /// Model name → price. A model without a price cannot run under a cost limit.
    pub prices: BTreeMap<String, ModelPrice>,
    /// PEM file of root certificates to trust in addition to the system roots
    /// (a LAN model server with its own CA; local fakes in tests).
    pub ca_file: Option<PathBuf>,
    /// `max_tokens` of each LLM call.
    pub max_tokens_per_call: u32,
    /// How long an approval request stays open before it counts as denied.
    pub approval_ttl_secs: u64,
    /// `[limits]` (not read from `[agent]`).
    #[serde(skip)]
    pub limits: LimitSettings,
    pub http: HttpSettings,
    /// Cap of one user's memory notes, in bytes
    /// ([`MIN_MEMORY_BYTES`]..=[`MAX_MEMORY_BYTES`]).
    pub max_memory_bytes: u64,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            provider: ProviderKind::Anthropic,
            model: String::new(),
            base_url: String::new(),
            secret_name: "anthropic_api_key".to_string(),
            region: "us-east-1".to_string(),
            prices: BTreeMap::new(),
            ca_file: None,
            max_tokens_per_call: DEFAULT_MAX_TOKENS_PER_CALL,
            approval_ttl_secs: DEFAULT_APPROVAL_TTL_SECS,
            limits: LimitSettings::default(),
            http: HttpSettings::default(),
            max_memory_bytes: 64 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_default_and_unknown_fields_refused() {
        let s: AgentSettings = toml::from_str("").unwrap();
        assert_eq!(s, AgentSettings::default());
        assert_eq!(s.limits, LimitSettings::default());
        assert!(toml::from_str::<AgentSettings>("bogus = 1").is_err());
        let s: AgentSettings = toml::from_str(
            "provider = \"openai_compatible\"\nmodel = \"m\"\n[prices.m]\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n",
        )
        .unwrap();
        assert_eq!(s.provider, ProviderKind::OpenaiCompatible);
        assert!((s.prices["m"].cost_usd(1_000_000, 500_000) - 2.0).abs() < 1e-9);
        let s: AgentSettings = toml::from_str("provider = \"openai\"").unwrap();
        assert_eq!(s.provider, ProviderKind::OpenaiCompatible);
        // Limits live in `[limits]`, not here.
        assert!(toml::from_str::<AgentSettings>("[limits]\nmax_iterations = 5").is_err());
    }
}
