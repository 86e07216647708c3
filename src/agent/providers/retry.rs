//! Retry policy: 401/403 fail at once; 429 honours `retry-after` (capped);
//! 500/502/503/529 and connection failures back off exponentially; a stream cut
//! after data arrived is never retried. Cancellation wins over any wait.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::agent::error::ProviderError;
use crate::agent::settings::HttpSettings;

/// Outcome of one failed attempt.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// May be tried again after the wait (if given) or the backoff.
    Retry {
        error: ProviderError,
        after: Option<Duration>,
    },
    /// Final.
    Fatal(ProviderError),
}

/// Parse `retry-after`: delta seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Classify a non-success HTTP status.
pub(crate) fn classify_status(
    provider: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    detail: String,
    attempts: u32,
) -> AttemptError {
    match status {
        401 | 403 => AttemptError::Fatal(ProviderError::Authenticate { provider, status }),
        429 => AttemptError::Retry {
            error: ProviderError::RateLimited { provider, attempts },
            after: retry_after,
        },
        500 | 502 | 503 | 504 | 529 => AttemptError::Retry {
            error: ProviderError::ServerFailure {
                provider,
                status,
                attempts,
            },
            after: retry_after,
        },
        _ => AttemptError::Fatal(ProviderError::RejectRequest {
            provider,
            status,
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(", {detail}")
            },
        }),
    }
}

/// Run `attempt` (given the 1-based attempt number) until it succeeds, fails
/// fatally, the attempts run out, or `cancel` fires.
pub(crate) async fn with_retry<T, F, Fut>(
    provider: &'static str,
    http: &HttpSettings,
    cancel: &CancellationToken,
    mut attempt: F,
) -> Result<T, ProviderError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let max_attempts = http.max_attempts.max(1);
    let cap = Duration::from_secs(http.max_retry_wait_secs);
    let mut backoff = Duration::from_millis(http.backoff_initial_ms);
    let mut n = 1;
    loop {
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ProviderError::Cancelled { provider }),
            r = attempt(n) => r,
        };
        match result {
            Ok(v) => return Ok(v),
            Err(AttemptError::Fatal(e)) => return Err(e),
            Err(AttemptError::Retry { error, after }) => {
                if n >= max_attempts {
                    return Err(error);
                }
                let wait = after.unwrap_or(backoff).min(cap);
                tracing::warn!(provider, attempt = n, wait_ms = wait.as_millis() as u64, error = %error, "provider call failed; retrying");
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(ProviderError::Cancelled { provider }),
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = backoff.saturating_mul(2).min(cap);
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let future = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(future)).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
