//! Channel adapters' parsing half: authenticity checks (constant time) and
//! payload → [`super::Inbound`]. Transport (HTTP servers, long polling) lives
//! elsewhere and hands over raw headers and body bytes.
//!
//! Each channel offers `verify` (authenticity only), `parse` (payload only) and
//! `receive` (verify, then parse: the one to use in production, so a payload is
//! never parsed before its signature holds).

pub mod discord;
pub mod email;
pub mod registry;
pub mod slack;
pub mod telegram;

use super::error::{AuthFailure, GatewayError};

/// Largest webhook body accepted, checked before any MAC or parse.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Allowed distance between a request's timestamp and now (both directions).
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// Request headers as received (names compared case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The single value of `name`; a repeated header is refused (ambiguity is
    /// how signature checks get bypassed).
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, AuthFailure> {
        let mut found = None;
        for (n, v) in &self.0 {
            if n.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(AuthFailure::DuplicateHeader(name));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    pub fn require(&self, name: &'static str) -> Result<&str, AuthFailure> {
        self.get(name)?.ok_or(AuthFailure::MissingHeader(name))
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Headers {
        Headers(
            iter.into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        )
    }
}

pub(crate) fn check_body_size(body: &[u8]) -> Result<(), AuthFailure> {
    if body.len() > MAX_BODY_BYTES {
        Err(AuthFailure::BodyTooLarge {
            len: body.len(),
            max: MAX_BODY_BYTES,
        })
    } else {
        Ok(())
    }
}

/// Parses a decimal Unix timestamp header and checks it is within the window.
pub(crate) fn check_timestamp(
    name: &'static str,
    value: &str,
    now: i64,
    window_secs: i64,
) -> Result<i64, AuthFailure> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthFailure::MalformedHeader(name));
    }
    let ts: i64 = value
        .parse()
        .map_err(|_| AuthFailure::MalformedHeader(name))?;
    if (now - ts).abs() > window_secs {
        return Err(AuthFailure::StaleTimestamp {
            timestamp: ts,
            now,
            window_secs,
        });
    }
    Ok(ts)
}

/// Parses JSON with a typed error (serde_json's recursion limit bounds nesting).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    channel: &'static str,
    body: &[u8],
) -> Result<T, GatewayError> {
    check_body_size(body).map_err(|r| GatewayError::verify(channel, r))?;
    serde_json::from_slice(body).map_err(|e| GatewayError::parse(channel, e.to_string()))
}

/// A redacted string for response credentials (Discord interaction tokens).
#[derive(Clone, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct Redacted(String);

impl Redacted {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redacted(..)")
    }
}

impl From<String> for Redacted {
    fn from(s: String) -> Redacted {
        Redacted(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_case_insensitive_and_duplicates_refused() {
        let h: Headers = [("x-a", "1"), ("X-B", "2"), ("x-b", "3")]
            .into_iter()
            .collect();
        assert_eq!(h.get("X-A").unwrap(), Some("1"));
        assert_eq!(h.get("X-B"), Err(AuthFailure::DuplicateHeader("X-B")));
        assert_eq!(h.require("X-C"), Err(AuthFailure::MissingHeader("X-C")));
    }

    #[test]
    fn timestamps() {
        assert_eq!(check_timestamp("T", "1000", 1200, 300), Ok(1000));
        assert!(matches!(
            check_timestamp("T", "1000", 1301, 300),
            Err(AuthFailure::StaleTimestamp { .. })
        ));
        assert!(matches!(
            check_timestamp("T", "1400", 1000, 300),
            Err(AuthFailure::StaleTimestamp { .. })
        ));
        for bad in ["", "-5", "1e9", " 100", "99999999999999999999", "12a"] {
            assert_eq!(
                check_timestamp("T", bad, 1000, 300),
                Err(AuthFailure::MalformedHeader("T")),
                "{bad:?}"
            );
        }
    }
}
