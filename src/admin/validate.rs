//! Validation of form and query input, once, at the edge: raw strings become
//! these values or a 400 with a plain sentence.

use super::http::PageError;

pub const TTL_MIN: u64 = 60;
pub const TTL_MAX: u64 = 3600;

/// `[a-z][a-z0-9_-]{0,31}`.
pub fn channel(s: &str) -> Result<String, PageError> {
    let ok = (1..=32).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(PageError::BadRequest(
            "That is not a valid channel name.".into(),
        ))
    }
}

/// A channel sender id: 1..=256 bytes, no control characters.
pub fn sender(s: &str) -> Result<String, PageError> {
    if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        return Err(PageError::BadRequest(
            "That is not a valid sender id.".into(),
        ));
    }
    Ok(s.to_string())
}

/// A numeric id (decimal digits only).
pub fn id(s: &str) -> Result<u64, PageError> {
    let bad = || PageError::BadRequest("The id must be a number.".into());
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// Pairing TTL in seconds: empty = default (None), else 60..=3600.
pub fn ttl(s: Option<&str>) -> Result<Option<u64>, PageError> {
    let s = s.unwrap_or("").trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || {
        PageError::BadRequest(format!(
            "The validity must be a whole number of seconds from {TTL_MIN} to {TTL_MAX}."
        ))
    };
    if s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let v: u64 = s.parse().map_err(|_| bad())?;
    if (TTL_MIN..=TTL_MAX).contains(&v) {
        Ok(Some(v))
    } else {
        Err(bad())
    }
}

/// Audit kind filter: `[a-z0-9_.]{0,64}`; empty = no filter.
pub fn audit_kind(s: &str) -> Result<Option<String>, PageError> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        return Err(PageError::BadRequest(
            "The audit kind may contain only a-z, 0-9, '_' and '.'.".into(),
        ));
    }
    Ok(Some(s.to_string()))
}

/// Audit "since": one of the offered windows (seconds back), empty = all time.
pub fn audit_since(s: &str) -> Result<Option<u64>, PageError> {
    match s {
        "" => Ok(None),
        "3600" | "86400" | "604800" => Ok(s.parse().ok()),
        _ => Err(PageError::BadRequest(
            "Choose one of the offered time windows.".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_inputs() {
        assert!(channel("telegram").is_ok());
        for bad in [
            "",
            "Telegram",
            "tele gram",
            "1abc",
            "x".repeat(33).as_str(),
            "télé",
            "a\u{202e}b",
            "../x",
        ] {
            assert!(channel(bad).is_err(), "{bad:?}");
        }
        assert_eq!(id("42").unwrap(), 42);
        for bad in [
            "",
            "-1",
            "1e3",
            "0x10",
            "99999999999999999999999",
            "٣",
            " 1",
        ] {
            assert!(id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ttl(None).unwrap(), None);
        assert_eq!(ttl(Some("60")).unwrap(), Some(60));
        assert_eq!(ttl(Some("3600")).unwrap(), Some(3600));
        for bad in ["59", "3601", "-5", "abc", "300.5", "１２０"] {
            assert!(ttl(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(sender("alice").is_ok());
        assert!(sender("a\nb").is_err());
        assert!(audit_kind("admin.login").unwrap().is_some());
        assert!(audit_kind("<script>").is_err());
        assert!(audit_since("123").is_err());
    }
}
