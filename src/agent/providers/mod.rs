//! LLM providers behind one object-safe async trait, and the HTTP plumbing they
//! share: client construction (rustls, optional extra root CA), retries with
//! backoff and `retry-after`, cancellation, SSE parsing.

mod anthropic;
mod bedrock;
mod openai;
mod retry;
mod sigv4;
mod sse;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use anthropic::AnthropicProvider;
pub use bedrock::BedrockProvider;
pub use openai::OpenAiProvider;
pub use sigv4::{AwsCredentials, SigningScope, sign_headers};

use super::error::ProviderError;
use super::secret::SecretSource;
use super::settings::{AgentSettings, HttpSettings, ProviderKind};
use super::types::{ChatRequest, ChatResponse};

/// An LLM provider. Object safe: the loop holds an `Arc<dyn Provider>`.
///
/// Dropping the returned future aborts the in-flight HTTP request; so does
/// cancelling `cancel`, which makes the call return [`ProviderError::Cancelled`].
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// Short name for logs and errors (`anthropic`, `openai-compatible`, `bedrock`).
    fn name(&self) -> &'static str;

    /// One model call.
    async fn complete(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, ProviderError>;
}

/// Connection settings shared by all providers.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Scheme, host and port (and optional path prefix), no trailing slash needed.
    pub base_url: String,
    /// Vault name of the credentials; `None` = send none (local servers).
    pub secret_name: Option<String>,
    pub secrets: Arc<dyn SecretSource>,
    /// PEM of an extra root certificate to trust (tests, private CAs).
    pub extra_root_ca_pem: Option<Vec<u8>>,
    pub http: HttpSettings,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("base_url", &self.base_url)
            .field("secret_name", &self.secret_name)
            .field("extra_root_ca", &self.extra_root_ca_pem.is_some())
            .field("http", &self.http)
            .finish()
    }
}

impl ProviderConfig {
    /// A config with default HTTP settings.
    pub fn new(
        base_url: impl Into<String>,
        secret_name: Option<String>,
        secrets: Arc<dyn SecretSource>,
    ) -> Self {
        ProviderConfig {
            base_url: base_url.into(),
            secret_name,
            secrets,
            extra_root_ca_pem: None,
            http: HttpSettings::default(),
        }
    }

    /// `path` (`/v1/...`) under the base URL. Owners copy base URLs with the
    /// API version in them (`http://host:11434/v1`, as OpenAI-compatible
    /// servers document theirs): the version is not doubled then.
    pub(crate) fn url(&self, path: &str) -> String {
        let base = self.base_url.trim_end_matches('/');
        match path.strip_prefix("/v1/") {
            Some(rest) if base.ends_with("/v1") => format!("{base}/{rest}"),
            _ => format!("{base}{path}"),
        }
    }
}

/// Build the provider `settings` names.
pub fn provider_from_settings(
    settings: &AgentSettings,
    secrets: Arc<dyn SecretSource>,
    extra_root_ca_pem: Option<Vec<u8>>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let secret_name = if settings.secret_name.is_empty() {
        None
    } else {
        Some(settings.secret_name.clone())
    };
    let default_url = match settings.provider {
        ProviderKind::Anthropic => "https://api.anthropic.com".to_string(),
        ProviderKind::OpenaiCompatible => "http://127.0.0.1:11434".to_string(),
        ProviderKind::Bedrock => {
            format!("https://bedrock-runtime.{}.amazonaws.com", settings.region)
        }
    };
    let base_url = if settings.base_url.is_empty() {
        default_url
    } else {
        settings.base_url.clone()
    };
    let mut config = ProviderConfig::new(base_url, secret_name, secrets);
    config.extra_root_ca_pem = extra_root_ca_pem;
    config.http = settings.http.clone();
    Ok(match settings.provider {
        ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(config)?),
        ProviderKind::OpenaiCompatible => Arc::new(OpenAiProvider::new(config)?),
        ProviderKind::Bedrock => Arc::new(BedrockProvider::new(config, &settings.region)?),
    })
}

/// The reqwest client every provider uses: rustls, no redirects, timeouts.
pub(crate) fn build_client(
    provider: &'static str,
    config: &ProviderConfig,
) -> Result<reqwest::Client, ProviderError> {
    crate::net::client_builder(config.extra_root_ca_pem.as_deref())
        .map_err(|_| ProviderError::Configure {
            provider,
            what: "the extra root certificate is not valid PEM".into(),
        })?
        .connect_timeout(Duration::from_secs(config.http.connect_timeout_secs))
        .timeout(Duration::from_secs(config.http.request_timeout_secs))
        .build()
        .map_err(|_| ProviderError::Configure {
            provider,
            what: "the HTTP client could not be built".into(),
        })
}

/// Describe a reqwest error without its URL or any server text.
pub(crate) fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body read failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    }
}

/// Cap of one response body (whole or streamed).
pub(crate) const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Cap of an error body (only its error type is read).
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Read a whole body, refusing more than `cap` bytes. A transport failure is
/// retryable (nothing was used yet); an oversized body is final.
pub(crate) async fn read_capped(
    provider: &'static str,
    resp: reqwest::Response,
    cap: usize,
    attempt: u32,
) -> Result<Vec<u8>, retry::AttemptError> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_read_error(provider, &e, false, attempt))?;
        if out.len() + chunk.len() > cap {
            return Err(too_large(provider));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A failure while reading a body: retryable while nothing of it had been
/// received (the request can simply be sent again), final once content arrived.
pub(crate) fn body_read_error(
    provider: &'static str,
    e: &reqwest::Error,
    received: bool,
    attempt: u32,
) -> retry::AttemptError {
    let kind = transport_kind(e);
    if received {
        retry::AttemptError::Fatal(ProviderError::StreamInterrupted { provider, kind })
    } else {
        retry::AttemptError::Retry {
            error: ProviderError::Connect {
                provider,
                kind,
                attempts: attempt,
            },
            after: None,
        }
    }
}

pub(crate) fn too_large(provider: &'static str) -> retry::AttemptError {
    retry::AttemptError::Fatal(ProviderError::ParseResponse {
        provider,
        what: format!("the response exceeds {MAX_RESPONSE_BYTES} bytes"),
    })
}

/// Describe a serde_json error by position only (its message can quote input).
pub(crate) fn json_what(e: &serde_json::Error) -> String {
    format!(
        "invalid JSON ({:?}) at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::secret::StaticSecrets;

    #[test]
    fn base_urls_with_or_without_the_version_reach_the_same_endpoint() {
        let secrets: Arc<dyn SecretSource> = Arc::new(StaticSecrets::new());
        for base in [
            "https://llm.lan:8443",
            "https://llm.lan:8443/",
            "https://llm.lan:8443/v1",
            "https://llm.lan:8443/v1/",
        ] {
            let c = ProviderConfig::new(base, None, secrets.clone());
            assert_eq!(
                c.url("/v1/chat/completions"),
                "https://llm.lan:8443/v1/chat/completions",
                "{base}"
            );
        }
        // A prefix that only looks like it is kept.
        let c = ProviderConfig::new("https://proxy.lan/openai/v1x", None, secrets);
        assert_eq!(
            c.url("/v1/messages"),
            "https://proxy.lan/openai/v1x/v1/messages"
        );
    }

    #[test]
    fn settings_pick_the_provider_and_debug_hides_secrets() {
        let secrets: Arc<dyn SecretSource> =
            Arc::new(StaticSecrets::new().with("anthropic_api_key", "sk-hidden-value"));
        for (kind, name) in [
            (ProviderKind::Anthropic, "anthropic"),
            (ProviderKind::OpenaiCompatible, "openai-compatible"),
            (ProviderKind::Bedrock, "bedrock"),
        ] {
            let settings = AgentSettings {
                provider: kind,
                ..AgentSettings::default()
            };
            let p = provider_from_settings(&settings, secrets.clone(), None).unwrap();
            assert_eq!(p.name(), name);
            assert!(!format!("{p:?}").contains("sk-hidden-value"));
        }
        let settings = AgentSettings {
            base_url: "not a url".into(),
            provider: ProviderKind::Bedrock,
            ..AgentSettings::default()
        };
        assert!(provider_from_settings(&settings, secrets.clone(), None).is_err());
        let bad_ca = provider_from_settings(
            &AgentSettings::default(),
            secrets,
            Some(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n".to_vec()),
        );
        assert!(bad_ca.is_err());
    }
}
