//! Entry types: the raw `NewEntry` a peer sends, and the validated `Entry`
//! the writer accepts (validate once, at the edge: `Entry::try_from(raw)`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{AuditError, Result};

/// Maximum length of a kind (`area.event`), in bytes.
pub const MAX_KIND_LEN: usize = 64;
/// Maximum length of a component name, in bytes.
pub const MAX_COMPONENT_LEN: usize = 32;
/// Maximum length of actor and subject, in bytes (checked before and after redaction).
pub const MAX_PARTY_LEN: usize = 256;
/// Maximum canonical payload size after redaction, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

/// An append request as it arrives from a peer: unvalidated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    /// Component that reports the event (`gateway`, `sandbox`, ...).
    pub component: String,
    /// Dotted lowercase event kind (`pairing.code_issued`).
    pub kind: String,
    /// Who caused it (`telegram:12345`, `admin:owner`, `system`).
    pub actor: String,
    /// What it concerns (task id, command, user), may be empty.
    pub subject: String,
    /// Details; must be a JSON object.
    pub payload: serde_json::Value,
}

/// A validated event kind: `[a-z0-9_]+(\.[a-z0-9_]+)+`, at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kind(String);

impl Kind {
    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Kind {
    type Error = AuditError;
    fn try_from(s: &str) -> Result<Self> {
        let bad = |reason: &str| AuditError::ValidateEntry {
            field: "kind",
            reason: format!("{reason} (got {:?})", truncate_for_error(s)),
        };
        if s.is_empty() || s.len() > MAX_KIND_LEN {
            return Err(bad("must be 1 to 64 bytes"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        {
            return Err(bad("only [a-z0-9_.] allowed"));
        }
        let segments: Vec<&str> = s.split('.').collect();
        if segments.len() < 2 || segments.iter().any(|seg| seg.is_empty()) {
            return Err(bad(
                "must be dotted like `area.event` with non-empty segments",
            ));
        }
        Ok(Kind(s.to_owned()))
    }
}

/// A validated component name: `[a-z0-9_-]`, 1..=32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Component(String);

impl Component {
    /// The component name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Component {
    type Error = AuditError;
    fn try_from(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > MAX_COMPONENT_LEN {
            return Err(AuditError::ValidateEntry {
                field: "component",
                reason: format!("must be 1 to {MAX_COMPONENT_LEN} bytes"),
            });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(AuditError::ValidateEntry {
                field: "component",
                reason: format!("only [a-z0-9_-] allowed (got {:?})", truncate_for_error(s)),
            });
        }
        Ok(Component(s.to_owned()))
    }
}

/// Checks actor/subject text: at most 256 bytes, no control characters
/// (the one-line journald summary and the CLI stay clean).
pub(crate) fn check_party(field: &'static str, s: &str, allow_empty: bool) -> Result<()> {
    if s.is_empty() && !allow_empty {
        return Err(AuditError::ValidateEntry {
            field,
            reason: "must not be empty".into(),
        });
    }
    if s.len() > MAX_PARTY_LEN {
        return Err(AuditError::ValidateEntry {
            field,
            reason: format!("{} bytes, max {MAX_PARTY_LEN}", s.len()),
        });
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(AuditError::ValidateEntry {
            field,
            reason: format!("contains control character U+{:04X}", c as u32),
        });
    }
    Ok(())
}

/// A validated (not yet redacted) entry. Redaction, the payload size check
/// and canonical encoding happen in [`super::writer::AuditWriter::append`].
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub(crate) component: Component,
    pub(crate) kind: Kind,
    pub(crate) actor: String,
    pub(crate) subject: String,
    pub(crate) payload: serde_json::Map<String, serde_json::Value>,
}

impl Entry {
    /// The event kind.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }
    /// The reporting component.
    pub fn component(&self) -> &Component {
        &self.component
    }
}

impl TryFrom<NewEntry> for Entry {
    type Error = AuditError;
    fn try_from(raw: NewEntry) -> Result<Self> {
        let component = Component::try_from(raw.component.as_str())?;
        let kind = Kind::try_from(raw.kind.as_str())?;
        check_party("actor", &raw.actor, false)?;
        check_party("subject", &raw.subject, true)?;
        let payload = match raw.payload {
            serde_json::Value::Object(map) => map,
            other => {
                return Err(AuditError::ValidateEntry {
                    field: "payload",
                    reason: format!("must be a JSON object, got {}", json_type_name(&other)),
                });
            }
        };
        Ok(Entry {
            component,
            kind,
            actor: raw.actor,
            subject: raw.subject,
            payload,
        })
    }
}

fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn truncate_for_error(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A committed entry as read back from the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub seq: u64,
    pub time: String,
    pub component: String,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    /// The canonical JSON payload, parsed.
    pub payload: serde_json::Value,
    /// Hex of the previous entry's hash.
    pub prev_hash: String,
    /// Hex of this entry's hash.
    pub hash: String,
}

/// What an acknowledged append returns: the entry is durable when you hold this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    pub seq: u64,
    pub hash: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw() -> NewEntry {
        NewEntry {
            component: "gateway".into(),
            kind: "pairing.code_issued".into(),
            actor: "telegram:42".into(),
            subject: "".into(),
            payload: json!({"a": 1}),
        }
    }

    #[test]
    fn good_entry_validates() {
        assert!(Entry::try_from(raw()).is_ok());
    }

    #[test]
    fn kinds() {
        for ok in ["a.b", "command.output", "update.applied", "x1.y_2.z"] {
            assert!(Kind::try_from(ok).is_ok(), "{ok}");
        }
        let long = format!("a.{}", "b".repeat(63));
        for bad in [
            "", "nodot", "A.b", "a..b", ".a", "a.", "a.b-c", "a b.c", "a.b\0", &long,
        ] {
            assert!(Kind::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostile_fields_refused() {
        let mut r = raw();
        r.component = "".into();
        assert!(Entry::try_from(r).is_err());
        let mut r = raw();
        r.actor = "a\0b".into();
        assert!(Entry::try_from(r).is_err());
        let mut r = raw();
        r.subject = "line\nbreak".into();
        assert!(Entry::try_from(r).is_err());
        let mut r = raw();
        r.actor = "x".repeat(257);
        assert!(Entry::try_from(r).is_err());
        let mut r = raw();
        r.payload = json!([1, 2]);
        assert!(Entry::try_from(r).is_err());
        let mut r = raw();
        r.payload = json!("str");
        assert!(Entry::try_from(r).is_err());
    }
}
