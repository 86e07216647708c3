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

    /// `POST`s `body` as JSON to `url` (through `http`, `timeout` when given)
    /// with a current token, 429s waited out ([`send_rate_limited`]); a 401
    /// drops the token and the call is made once more with a fresh one. The
    /// body of a 2xx answer; another status is an error quoting the API's
    /// `error.message` (the shape of Google's APIs and the Bot Connector).
    pub async fn post_json(
        &self,
        http: &reqwest::Client,
        operation: &'static str,
        url: &str,
        body: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, GatewayError> {
        let url =
            crate::net::parse_url(url, "https", "http").map_err(|e| GatewayError::ChannelApi {
                channel: self.channel,
                operation,
                reason: format!("URL: {e}"),
            })?;
        let mut renewed = false;
        loop {
            let auth = self.header().await?;
            let (status, answer) = send_rate_limited(self.channel, operation, || {
                let req = http
                    .post(url.clone())
                    .header(reqwest::header::AUTHORIZATION, auth.clone())
                    .json(body);
                match timeout {
                    Some(t) => req.timeout(t),
                    None => req,
                }
            })
            .await?;
            if status.is_success() {
                return Ok(answer);
            }
            // Revoked, or the credential replaced: once more, freshly.
            if status == reqwest::StatusCode::UNAUTHORIZED && !renewed {
                self.forget().await;
                renewed = true;
                continue;
            }
            let said: String = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| Some(v.get("error")?.get("message")?.as_str()?.to_string()))
                .unwrap_or_default()
                .chars()
                .take(128)
                .collect();
            return Err(GatewayError::ChannelApi {
                channel: self.channel,
                operation,
                reason: format!("HTTP {status}: {said}"),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A token endpoint on loopback answering `answers[i]` to the i-th
    /// request (the last one thereafter).
    async fn endpoint(answers: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        let answers = Arc::new(Mutex::new(answers));
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |body: String| {
                assert!(body.contains("grant_type=client_credentials"), "{body}");
                let i = count.fetch_add(1, Ordering::SeqCst);
                let a = answers.lock().unwrap();
                let (status, text) = a[i.min(a.len() - 1)];
                std::future::ready((axum::http::StatusCode::from_u16(status).unwrap(), text))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, asked)
    }

    fn source(url: &str) -> TokenSource {
        let grant: Grant = Box::new(|| Ok(vec![("grant_type", "client_credentials".into())]));
        TokenSource::new("t", url, None, grant).unwrap()
    }

    #[tokio::test]
    async fn a_token_is_kept_until_forgotten_and_its_lifetime_may_be_a_string() {
        let (url, asked) = endpoint(vec![
            (200, r#"{"access_token": "one", "expires_in": "3599"}"#),
            (200, r#"{"access_token": "two", "expires_in": 3599}"#),
        ])
        .await;
        let s = source(&url);
        assert_eq!(s.header().await.unwrap(), "Bearer one");
        assert_eq!(s.header().await.unwrap(), "Bearer one");
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        s.forget().await;
        assert_eq!(s.header().await.unwrap(), "Bearer two");
        assert!(s.header().await.unwrap().is_sensitive());
    }

    #[tokio::test]
    async fn a_token_about_to_expire_is_not_kept() {
        let (url, asked) =
            endpoint(vec![(200, r#"{"access_token": "x", "expires_in": 60}"#)]).await;
        let s = source(&url);
        s.header().await.unwrap();
        s.header().await.unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refusals_and_junk_answers_say_what_the_endpoint_said_and_nothing_more() {
        for (status, body, want) in [
            (
                401,
                r#"{"error": "invalid_client", "error_description": "AADSTS7000215"}"#,
                "invalid_client: AADSTS7000215",
            ),
            (200, r#"{"expires_in": 3599}"#, "HTTP 200 OK: "),
            (200, r#"{"access_token": "x"}"#, "no usable expires_in"),
            (
                200,
                r#"{"access_token": "x", "expires_in": -5}"#,
                "no usable expires_in",
            ),
            (200, "<html>proxy</html>", "not a token response"),
            (500, "", "not a token response"),
        ] {
            let (url, _) = endpoint(vec![(status, body)]).await;
            let e = source(&url).header().await.unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        assert!(
            TokenSource::new(
                "t",
                "http://example.com/token",
                None,
                Box::new(|| Ok(vec![]))
            )
            .is_err()
        );
    }
}
