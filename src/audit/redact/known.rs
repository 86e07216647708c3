//! Known secrets: the vault's values and the encodings a command could print
//! them in, matched literally. The inputs and every intermediate string are
//! zeroized; the compiled matcher keeps the literals (inside `regex`) for as
//! long as this redactor lives.

use regex::{Regex, RegexBuilder};
use zeroize::Zeroizing;

/// Shortest known secret that is matched literally, in bytes (shorter ones
/// would redact ordinary words; they are ignored, the patterns still apply).
pub const MIN_KNOWN_SECRET_LEN: usize = 6;

/// Values longer than this are matched as they are and trimmed, without the
/// encoded forms (a certificate bundle would make the matcher huge).
const MAX_ENCODED_LEN: usize = 4096;

/// The shortest piece of a base64 encoding matched on its own (the middle of
/// an encoding of a longer text that contains the value).
const MIN_BASE64_CORE: usize = 8;

/// Compiled matcher of every form of every known value.
#[derive(Clone)]
pub(super) struct KnownSecrets {
    re: Regex,
    count: usize,
}

impl std::fmt::Debug for KnownSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnownSecrets(<{} values redacted>)", self.count)
    }
}

impl KnownSecrets {
    /// `None` when no value is long enough to be matched.
    pub(super) fn build<I, S>(secrets: I) -> Option<KnownSecrets>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut forms: Vec<Zeroizing<String>> = Vec::new();
        let mut count = 0;
        for s in secrets {
            let value = s.as_ref();
            let mut values = vec![Zeroizing::new(value.to_vec())];
            let trimmed = value.trim_ascii();
            if trimmed.len() != value.len() {
                values.push(Zeroizing::new(trimmed.to_vec()));
            }
            // A JSON credential (Bedrock's keys): its string fields too.
            values.extend(json_strings(trimmed));
            let before = forms.len();
            for v in values.iter().filter(|v| v.len() >= MIN_KNOWN_SECRET_LEN) {
                add_forms(v, &mut forms);
            }
            if forms.len() > before {
                count += 1;
            }
        }
        // Longest first so a secret containing another is removed whole.
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        if forms.is_empty() {
            return None;
        }
        let mut pattern = Zeroizing::new(String::new());
        for (i, f) in forms.iter().enumerate() {
            if i > 0 {
                pattern.push('|');
            }
            pattern.push_str(&Zeroizing::new(regex::escape(f)));
        }
        match RegexBuilder::new(&pattern)
            .size_limit(64 << 20)
            .dfa_size_limit(16 << 20)
            .build()
        {
            Ok(re) => Some(KnownSecrets { re, count }),
            Err(_) => {
                // Never print the error: it quotes the pattern.
                tracing::error!(
                    values = count,
                    "the known-secret matcher could not be built; vault values are not redacted by value"
                );
                None
            }
        }
    }

    pub(super) fn count(&self) -> usize {
        self.count
    }

    pub(super) fn redact(&self, text: &str) -> String {
        self.re
            .replace_all(text, "[REDACTED:known_secret]")
            .into_owned()
    }
}

/// The value as text (if it is UTF-8) and its encoded forms.
fn add_forms(v: &[u8], forms: &mut Vec<Zeroizing<String>>) {
    if let Ok(text) = std::str::from_utf8(v) {
        forms.push(Zeroizing::new(text.to_string()));
        let pct = percent_encode(v);
        if *pct != text {
            forms.push(pct);
        }
    }
    if v.len() > MAX_ENCODED_LEN {
        return;
    }
    forms.push(Zeroizing::new(hex::encode(v)));
    forms.push(Zeroizing::new(hex::encode_upper(v)));
    for alphabet in [STANDARD, URL_SAFE] {
        let full = base64(&[], v, alphabet);
        let padded = pad(&full);
        if *padded != *full {
            forms.push(padded);
        }
        // The value at each byte offset of a longer encoded text: the
        // characters that depend on its bytes only.
        for shift in 0..3usize {
            let enc = base64(&[0u8; 2][..shift], v, alphabet);
            let start = (shift * 8).div_ceil(6);
            let end = (shift + v.len()) * 8 / 6;
            if end >= start + MIN_BASE64_CORE {
                forms.push(Zeroizing::new(enc[start..end].to_string()));
            }
        }
        forms.push(full);
    }
}

/// The string fields of a JSON object value, if it is one.
fn json_strings(v: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    if !v.starts_with(b"{") {
        return Vec::new();
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(v) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(_, field)| match field {
            serde_json::Value::String(mut s) => {
                let bytes = Zeroizing::new(s.as_bytes().to_vec());
                zeroize::Zeroize::zeroize(&mut s);
                Some(bytes)
            }
            _ => None,
        })
        .collect()
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64 of `prefix || v`.
fn base64(prefix: &[u8], v: &[u8], alphabet: &[u8; 64]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity((prefix.len() + v.len()) * 4 / 3 + 4));
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &b in prefix.iter().chain(v) {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(alphabet[((bits >> nbits) & 63) as usize]));
        }
        bits &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(char::from(alphabet[((bits << (6 - nbits)) & 63) as usize]));
    }
    out
}

fn pad(unpadded: &str) -> Zeroizing<String> {
    let mut s = Zeroizing::new(unpadded.to_string());
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

/// RFC 3986 percent-encoding (unreserved characters kept), upper-case hex.
fn percent_encode(v: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(v.len() * 3));
    for &b in v {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_reference_encodings() {
        assert_eq!(*base64(&[], b"", STANDARD), "");
        assert_eq!(*base64(&[], b"f", STANDARD), "Zg");
        assert_eq!(*base64(&[], b"fo", STANDARD), "Zm8");
        assert_eq!(*base64(&[], b"foobar", STANDARD), "Zm9vYmFy");
        assert_eq!(*pad(&base64(&[], b"fooba", STANDARD)), "Zm9vYmE=");
        assert_eq!(*base64(&[], &[0xfb, 0xff], URL_SAFE), "-_8");
        assert_eq!(*base64(&[], &[0xfb, 0xff], STANDARD), "+/8");
    }

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(*percent_encode(b"a b/c~d"), "a%20b%2Fc~d");
    }

    #[test]
    fn debug_never_shows_values() {
        let k = KnownSecrets::build(["hunter2-secret"]).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(k.count(), 1);
    }
}
