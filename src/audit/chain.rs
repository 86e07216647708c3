//! The hash chain: canonical payload JSON, the length-prefixed entry encoding
//! and the entry hash. See the module doc of `audit` for the normative text an
//! offline verifier follows.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use super::error::{AuditError, Result};

/// Domain tag that starts every entry-hash input.
pub const ENTRY_DOMAIN: &[u8] = b"cowork-audit-entry-v1\0";
/// `prev_hash` of the first entry (seq 1).
pub const GENESIS_PREV: [u8; 32] = [0u8; 32];

/// The fields that the entry hash covers, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct EntryFields<'a> {
    pub seq: u64,
    pub time: &'a str,
    pub component: &'a str,
    pub kind: &'a str,
    pub actor: &'a str,
    pub subject: &'a str,
    pub payload: &'a [u8],
    pub prev_hash: &'a [u8; 32],
}

fn put_field(h: &mut Sha256, bytes: &[u8]) {
    // Every field is < 4 GiB by construction (caps are in the KiB range).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(bytes);
}

/// SHA-256 of the canonical, length-prefixed encoding of an entry.
pub fn entry_hash(f: &EntryFields<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ENTRY_DOMAIN);
    h.update(f.seq.to_be_bytes());
    put_field(&mut h, f.time.as_bytes());
    put_field(&mut h, f.component.as_bytes());
    put_field(&mut h, f.kind.as_bytes());
    put_field(&mut h, f.actor.as_bytes());
    put_field(&mut h, f.subject.as_bytes());
    put_field(&mut h, f.payload);
    h.update(f.prev_hash);
    h.finalize().into()
}

/// Canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes,
/// strings and numbers as serde_json writes them. Written by hand only for the
/// key order, so a `preserve_order` feature elsewhere in the build cannot
/// change the bytes.
pub fn canonical_json(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String((*k).clone()), out);
                out.push(b':');
                if let Some(val) = map.get(*k) {
                    canonical_json(val, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(v: &serde_json::Value, out: &mut Vec<u8>) {
    // Serialising a scalar Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Current time as RFC 3339 UTC with milliseconds: `2025-01-31T12:34:56.789Z`.
pub fn now_rfc3339() -> Result<String> {
    format_time(OffsetDateTime::now_utc())
}

/// Formats a time as the audit trail stores it.
pub fn format_time(t: OffsetDateTime) -> Result<String> {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .map_err(|e| AuditError::Clock {
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_recursively() {
        let v = json!({"b": 1, "a": {"d": [true, null, "x\n"], "c": 1.5}});
        let mut out = Vec::new();
        canonical_json(&v, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"c":1.5,"d":[true,null,"x\n"]},"b":1}"#
        );
    }

    #[test]
    fn hash_depends_on_every_field_and_lengths() {
        let prev = [7u8; 32];
        let base = EntryFields {
            seq: 1,
            time: "t",
            component: "gateway",
            kind: "a.b",
            actor: "ab",
            subject: "c",
            payload: b"{}",
            prev_hash: &prev,
        };
        let h = entry_hash(&base);
        // moving a byte between adjacent fields changes the hash (length prefix)
        let shifted = EntryFields {
            actor: "a",
            subject: "bc",
            ..base
        };
        assert_ne!(h, entry_hash(&shifted));
        assert_ne!(h, entry_hash(&EntryFields { seq: 2, ..base }));
    }

    #[test]
    fn time_format() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(format_time(t).unwrap(), "2023-11-14T22:13:20.123Z");
    }
}
