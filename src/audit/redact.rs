//! Redaction of secrets before an entry is hashed or stored.
//!
//! Every payload string (and object key), the actor and the subject pass
//! through [`Redactor::redact_text`]; values of JSON keys whose name looks like
//! a credential (`password`, `secret`, `token`, `api_key`, ...) are replaced
//! whole when they are strings, arrays or objects (numbers and booleans such as
//! `max_tokens: 1024` are kept). A match becomes `[REDACTED:<kind>]`.
//! Exact known secret strings (the vault's current values) can be added with
//! [`Redactor::with_known_secrets`]; they are matched literally.

use regex::{Captures, Regex};
use serde_json::Value;

/// One pattern: what it finds, how it is labelled, which capture group (if
/// any) is a prefix to keep in front of the marker.
#[derive(Debug)]
struct Rule {
    kind: &'static str,
    re: Regex,
    keep_prefix_group: Option<usize>,
    /// Extra check on the whole match; `false` leaves it untouched.
    accept: fn(&str) -> bool,
    /// Text put back after the marker (the part of the match that is not secret).
    suffix: &'static str,
}

/// The redaction patterns plus optional exact known secrets.
#[derive(Debug)]
pub struct Redactor {
    rules: Vec<Rule>,
    known: Option<Regex>,
}

/// Substrings of JSON key names (lowercased, `-` → `_`) whose values are
/// redacted whole.
const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "private_key",
    "client_secret",
];

/// Shortest known secret that is matched literally (shorter ones would
/// redact ordinary words).
pub const MIN_KNOWN_SECRET_LEN: usize = 6;

fn rule(kind: &'static str, pattern: &str, keep_prefix_group: Option<usize>) -> Rule {
    // Patterns are compile-time constants covered by the unit tests.
    match Regex::new(pattern) {
        Ok(re) => Rule {
            kind,
            re,
            keep_prefix_group,
            accept: |_| true,
            suffix: "",
        },
        Err(e) => panic!("audit redaction pattern {kind} does not compile: {e}"),
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    /// The built-in patterns, no known secrets.
    pub fn new() -> Self {
        let rules = vec![
            // PEM private key blocks (an unterminated block is redacted to the end).
            rule(
                "private_key",
                r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
                None,
            ),
            // Authorization header values.
            Rule {
                // "Basic configuration" is prose; a credential has a digit or
                // symbol, or is long.
                accept: |m| {
                    let value = m.rsplit(char::is_whitespace).next().unwrap_or(m);
                    value.len() >= 24 || value.bytes().any(|b| !b.is_ascii_alphabetic())
                },
                ..rule(
                    "authorization",
                    r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}",
                    Some(1),
                )
            },
            rule(
                "jwt",
                r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
                None,
            ),
            rule("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{10,}", None),
            rule("openai_key", r"\bsk-proj-[A-Za-z0-9_-]{10,}", None),
            rule("api_key", r"\bsk-[A-Za-z0-9_-]{16,}", None),
            rule("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", None),
            rule(
                "github_token",
                r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
                None,
            ),
            rule("aws_access_key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", None),
            rule(
                "aws_secret_key",
                r#"(?i)(aws_?secret[a-z_]*["']?\s*[:=]\s*["']?)[A-Za-z0-9/+]{40}"#,
                Some(1),
            ),
            rule("telegram_token", r"\b\d{6,}:[A-Za-z0-9_-]{30,}", None),
            // scheme://user:password@host
            Rule {
                suffix: "@",
                ..rule(
                    "url_password",
                    r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@",
                    Some(1),
                )
            },
            // password=..., token: ... in free text (command lines, env dumps).
            rule(
                "credential",
                r#"(?i)(\b(?:password|passwd|pwd|secret|token|api_key|apikey|client_secret)\s*[:=]\s*["']?)[^\s"'&,;]{4,}"#,
                Some(1),
            ),
        ];
        Redactor { rules, known: None }
    }

    /// Adds exact secret strings to redact wherever they appear (values
    /// shorter than [`MIN_KNOWN_SECRET_LEN`] are ignored).
    pub fn with_known_secrets<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut lits: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.as_ref().len() >= MIN_KNOWN_SECRET_LEN)
            .map(|s| regex::escape(s.as_ref()))
            .collect();
        // Longest first so a secret containing another is removed whole.
        lits.sort_by_key(|s| std::cmp::Reverse(s.len()));
        lits.dedup();
        self.known = if lits.is_empty() {
            None
        } else {
            Regex::new(&lits.join("|")).ok()
        };
        self
    }

    /// Redacts secrets inside free text.
    pub fn redact_text(&self, text: &str) -> String {
        let mut out = match &self.known {
            Some(re) => re.replace_all(text, "[REDACTED:known_secret]").into_owned(),
            None => text.to_owned(),
        };
        for r in &self.rules {
            if !r.re.is_match(&out) {
                continue;
            }
            out =
                r.re.replace_all(&out, |c: &Captures<'_>| {
                    let whole = c.get(0).map_or("", |m| m.as_str());
                    if !(r.accept)(whole) {
                        return whole.to_owned();
                    }
                    let prefix = r
                        .keep_prefix_group
                        .and_then(|g| c.get(g))
                        .map_or("", |m| m.as_str());
                    format!("{prefix}[REDACTED:{}]{}", r.kind, r.suffix)
                })
                .into_owned();
        }
        out
    }

    /// Redacts a JSON value in place: strings and keys by pattern, values of
    /// sensitive-looking keys whole.
    pub fn redact_json(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                let r = self.redact_text(s);
                if r != *s {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    let key = self.redact_text(&k);
                    match sensitive_key(&k) {
                        Some(kind)
                            if matches!(
                                val,
                                Value::String(_) | Value::Array(_) | Value::Object(_)
                            ) =>
                        {
                            val = Value::String(format!("[REDACTED:{kind}]"));
                        }
                        _ => self.redact_json(&mut val),
                    }
                    map.insert(key, val);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

fn sensitive_key(key: &str) -> Option<&'static str> {
    let norm = key.to_ascii_lowercase().replace('-', "_");
    SENSITIVE_KEYS.iter().copied().find(|k| norm.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(s: &str) -> String {
        Redactor::new().redact_text(s)
    }

    #[test]
    fn patterns() {
        let ant = format!("key sk-ant-api03-{} end", "A".repeat(40));
        assert_eq!(r(&ant), "key [REDACTED:anthropic_key] end");
        assert_eq!(
            r(&format!("sk-proj-{}", "x".repeat(30))),
            "[REDACTED:openai_key]"
        );
        assert_eq!(r(&format!("sk-{}", "a1".repeat(12))), "[REDACTED:api_key]");
        assert_eq!(r("xoxb-1234567890-abcdefghij"), "[REDACTED:slack_token]");
        assert_eq!(
            r(&format!("ghp_{}", "a".repeat(36))),
            "[REDACTED:github_token]"
        );
        assert_eq!(
            r(&format!("github_pat_{}", "B".repeat(40))),
            "[REDACTED:github_token]"
        );
        assert_eq!(r("AKIAIOSFODNN7EXAMPLE"), "[REDACTED:aws_access_key]");
        assert_eq!(
            r("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "aws_secret_access_key = [REDACTED:aws_secret_key]"
        );
        assert_eq!(
            r("bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ go"),
            "bot [REDACTED:telegram_token] go"
        );
        assert_eq!(
            r("Authorization: Bearer abcdef123456.xyz"),
            "Authorization: Bearer [REDACTED:authorization]"
        );
        assert_eq!(
            r("Basic dXNlcjpwYXNzd29yZA=="),
            "Basic [REDACTED:authorization]"
        );
        assert_eq!(
            r("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_nature"),
            "t=[REDACTED:jwt]"
        );
        assert_eq!(
            r("-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----\nafter"),
            "[REDACTED:private_key]\nafter"
        );
        assert_eq!(
            r("-----BEGIN PRIVATE KEY-----\nMIIE truncated"),
            "[REDACTED:private_key]"
        );
        assert_eq!(
            r("postgres://app:hunter2@db:5432/x"),
            "postgres://app:[REDACTED:url_password]@db:5432/x"
        );
        assert_eq!(
            r("mysql --password=hunter22 -u x"),
            "mysql --password=[REDACTED:credential] -u x"
        );
    }

    #[test]
    fn innocent_text_is_kept() {
        for s in [
            "ls -la /tmp",
            "task-1234 finished",
            "mask-abcdefghijklmnopqrstuvwxyz",
            "https://example.com/path?q=1",
            "max_tokens reached",
            "the basic idea",
            "Basic configuration",
        ] {
            assert_eq!(r(s), s);
        }
    }

    #[test]
    fn json_keys_and_nesting() {
        let mut v = json!({
            "password": "hunter2",
            "Api-Key": "abc",
            "nested": {"client_secret": "s", "list": ["Bearer abcdefgh1234"]},
            "max_tokens": 1024,
            "tokens": ["a", "b"],
            "cmd": "echo hi"
        });
        Redactor::new().redact_json(&mut v);
        assert_eq!(v["password"], "[REDACTED:password]");
        assert_eq!(v["Api-Key"], "[REDACTED:api_key]");
        assert_eq!(v["nested"]["client_secret"], "[REDACTED:secret]");
        assert_eq!(v["nested"]["list"][0], "Bearer [REDACTED:authorization]");
        assert_eq!(v["max_tokens"], 1024);
        assert_eq!(v["tokens"], "[REDACTED:token]");
        assert_eq!(v["cmd"], "echo hi");
    }

    #[test]
    fn known_secrets() {
        let red = Redactor::new().with_known_secrets(["vault-value-1", "abc", "vault-value-12"]);
        assert_eq!(
            red.redact_text("x vault-value-12 y vault-value-1 abc"),
            "x [REDACTED:known_secret] y [REDACTED:known_secret] abc"
        );
        // regex metacharacters are literal
        let red = Redactor::new().with_known_secrets(["a.b*c+d"]);
        assert_eq!(
            red.redact_text("a.b*c+d axbbbccd"),
            "[REDACTED:known_secret] axbbbccd"
        );
    }
}
