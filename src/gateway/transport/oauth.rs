//! The appliance's own OAuth 2.0 access token for a platform's API (the Bot
//! Connector for Teams: client credentials; Google Chat and Pub/Sub: a
//! service account's signed assertion). [`TokenSource`] asks the token
//! endpoint with the form its grant builds (built anew each time, so a
//! credential replaced in the vault is used from the next token on, without
//! a restart), keeps the token until five minutes before it expires, and
//! forgets it when the API refuses it.

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::{Redacted, auth_header, send_rate_limited};
use crate::gateway::error::GatewayError;

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// Longest lifetime believed (a platform's tokens live about an hour).
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Builds the token request's form fields (reading the credential each time).
pub type Grant = Box<dyn Fn() -> Result<Vec<(&'static str, String)>, GatewayError> + Send + Sync>;

/// One platform's access token, fetched when needed.
pub struct TokenSource {
    channel: &'static str,
    http: reqwest::Client,
    token_url: String,
    grant: Grant,
    held: tokio::sync::Mutex<Option<(HeaderValue, Instant)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSource({}, {})", self.channel, self.token_url)
    }
}

impl TokenSource {
    /// Tokens from `token_url` (https, or http to a loopback address).
    pub fn new(
        channel: &'static str,
        token_url: &str,
        extra_root_pem: Option<&[u8]>,
        grant: Grant,
    ) -> Result<TokenSource, GatewayError> {
        crate::net::parse_url(token_url, "https", "http").map_err(|e| {
            GatewayError::HttpClient {
                channel,
                reason: format!("token URL: {e}"),
            }
        })?;
        Ok(TokenSource {
            channel,
            http: super::http_client(channel, extra_root_pem, Duration::from_secs(30))?,
            token_url: token_url.to_string(),
            grant,
            held: tokio::sync::Mutex::new(None),
        })
    }

    /// The `Authorization` header value carrying a current token.
    pub async fn header(&self) -> Result<HeaderValue, GatewayError> {
        let mut held = self.held.lock().await;
        if let Some((header, until)) = &*held
            && Instant::now() < *until
        {
            return Ok(header.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        let header = auth_header(self.channel, "Bearer", &token)?;
        let keep = lifetime.min(MAX_LIFETIME).saturating_sub(RENEW_BEFORE);
        *held = Some((header.clone(), Instant::now() + keep));
        Ok(header)
    }

    /// Drops the held token (the API refused it: the next call fetches one).
    pub async fn forget(&self) {
        *self.held.lock().await = None;
    }

    async fn fetch(&self) -> Result<(Redacted, Duration), GatewayError> {
        const OP: &str = "get access token";
        let form = (self.grant)()?;
        let (status, body) = send_rate_limited(self.channel, OP, || {
            self.http.post(&self.token_url).form(&form)
        })
        .await?;
        #[derive(Deserialize)]
        struct Answer {
            access_token: Option<String>,
            expires_in: Option<serde_json::Value>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let err = |reason: String| GatewayError::ChannelApi {
            channel: self.channel,
            operation: OP,
            reason,
        };
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| err(format!("HTTP {status}: the answer is not a token response")))?;
        let token = match answer.access_token {
            Some(t) if status.is_success() && !t.is_empty() => t,
            _ => {
                let said: String = [answer.error, answer.error_description]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ")
                    .chars()
                    .take(200)
                    .collect();
                return Err(err(format!("HTTP {status}: {said}")));
            }
        };
        // Some endpoints send the lifetime as a string.
        let secs = match answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| err("the token response has no usable expires_in".into()))?;
        Ok((Redacted::from(token), Duration::from_secs(secs)))
    }
}
