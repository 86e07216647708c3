//! Redaction of secrets before an entry is hashed or stored.
//!
//! Every payload string (and object key), the actor and the subject pass
//! through [`Redactor::redact_text`]; values of JSON keys whose name looks like
//! a credential (`password`, `secret`, `token`, `api_key`, ...) are replaced
//! whole when they are strings, arrays or objects (numbers and booleans such as
//! `max_tokens: 1024` are kept). A match becomes `[REDACTED:<kind>]`.
//! Exact known secret strings (the vault's current values) can be added with
//! [`Redactor::with_known_secrets`]; they are matched literally.

//! Redaction of secrets before an entry is hashed or stored.
//!
//! The trail is append-only and hash-chained: a secret that reaches it cannot
//! be scrubbed without breaking verification, so everything is redacted on
//! the way in. Every payload string (and object key), the actor and the
//! subject pass through [`Redactor::redact_text`] in the audit component's
//! writer, whichever peer sent the entry: `command.*` entries of the sandbox
//! (command line, output), `approval.*`, `task.*` (`task.tool_call` with the
//! tool's input) and `gateway.*` of the gateway, the supervisor's and the
//! admin page's entries. A match becomes `[REDACTED:<kind>]`.
//!
//! ## What is redacted
//! * **Known secrets** (first): every value in the gateway's vault, matched
//!   literally, plus the forms a command could print it in: base64 (standard
//!   and URL-safe, with and without padding, and the alignment-independent
//!   middle of the encoding when the value is inside a longer encoded text
//!   such as `user:value`), hex (lower and upper case) and percent-encoding.
//!   Values shorter than [`MIN_KNOWN_SECRET_LEN`] bytes are ignored (they
//!   would redact ordinary words); the patterns below still apply to them.
//! * **Shapes** (`redact/patterns.rs`): private key blocks (PEM, OpenSSH,
//!   PGP, PuTTY); `Bearer`/`Basic` credentials; JWTs; Anthropic, OpenAI,
//!   Stripe (`sk_live_`, `rk_live_`, `sk_test_`, `whsec_`), Slack (`xox?-`,
//!   `xapp-`, webhook URLs), GitHub, GitLab (`glpat-`), Google (`AIza`), npm,
//!   PyPI, Hugging Face (`hf_`), SendGrid (`SG.`), Twilio (`SK`/`AC` SIDs),
//!   Azure AD client secrets (`…Q~…`), Discord bot tokens (three base64url
//!   parts, the first decoding to the bot's numeric id), AWS access keys and
//!   secret keys, Telegram bot tokens; URLs with a password
//!   (`scheme://user:pass@host`) and scheme-less `user:pass@host.name`;
//!   command-line credentials (`mysql -pX`, `sshpass -p X`, `redis-cli -a X`,
//!   `curl -u user:pass`, `smbclient -U user%pass`, `htpasswd -b file user
//!   pass`, and any `--…password|token|secret|api-key X` option);
//!   `NAME=value` / `NAME: value` where the name contains a credential word
//!   anywhere (`DB_PASSWORD=`, `GITHUB_TOKEN=`, `export PGPASSWORD=`,
//!   `AWS_SECRET_ACCESS_KEY=`, `X-Api-Key:`, `.env` lines). Placeholders
//!   (`$VAR`, `***`, `true`, `<…>`) and names about tokens rather than
//!   holding one (`max_tokens`, `TOKEN_FILE`, `PWD`) are kept.
//! * **JSON keys**: values of keys whose name looks like a credential
//!   (`password`, `secret`, `token`, `api_key`, ...) are replaced whole when
//!   they are strings, arrays or objects (numbers and booleans such as
//!   `max_tokens: 1024` are kept).
//! * Not redacted: a bare secret of no recognisable shape that is not in the
//!   vault (a password typed into a command without an option naming it), and
//!   `-P`-style options whose meaning depends on the program.
//!
//! False positives are measured by `tests/audit_redaction_corpus.rs` on
//! ordinary output (listings, `ps`, `git log`, JSON, kernel log lines,
//! base64 images, UUIDs, checksums, package lists).
//!
//! ## The known-secret flow
//! The gateway owns the vault. When it receives its keys, after every
//! `secret set`/`delete` and master key re-wrap, and whenever its connection
//! to the audit component was re-established (the audit component restarted
//! and forgot them), it reads every vault value and sends them once in
//! [`crate::ipc::AuditRequest::KnownSecrets`]: `SecretBytes`, zeroized on drop
//! on both sides. Only the gateway may send it (peer table). The audit
//! component keeps no copy of the values beyond building a new [`Redactor`]
//! (its input buffers are zeroized; the compiled matcher necessarily holds
//! the literals in the audit process's memory, which no other component
//! reads) and swaps it into the writer. Values are never logged; only their
//! count is.

mod known;
mod patterns;

use serde_json::Value;

use patterns::Rule;

pub use known::MIN_KNOWN_SECRET_LEN;

/// The redaction patterns plus optional exact known secrets.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    known: Option<known::KnownSecrets>,
}

/// Substrings of JSON key names (lowercased, `-` → `_`) whose values are
/// redacted whole.
const SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "private_key",
    "client_secret",
    "credential",
];

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    /// The built-in patterns, no known secrets.
    pub fn new() -> Self {
        Redactor {
            rules: patterns::rules(),
            known: None,
        }
    }

    /// Redacts these exact secret values, and their encoded forms, wherever
    /// they appear (values shorter than [`MIN_KNOWN_SECRET_LEN`] are ignored).
    /// Replaces any known secrets given before.
    pub fn with_known_secrets<I, S>(mut self, secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.known = known::KnownSecrets::build(secrets);
        self
    }

    /// How many secret values (not forms) are matched literally.
    pub fn known_secret_count(&self) -> usize {
        self.known.as_ref().map_or(0, known::KnownSecrets::count)
    }

    /// Redacts secrets inside free text.
    pub fn redact_text(&self, text: &str) -> String {
        let mut out = match &self.known {
            Some(k) => k.redact(text),
            None => text.to_owned(),
        };
        for r in &self.rules {
            if r.re.is_match(&out) {
                out = apply(r, &out);
            }
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
    // A path or URL as a key (`node_modules/jsonwebtoken`) names no credential.
    if key.contains('/') {
        return None;
    }
    let norm = key.to_ascii_lowercase().replace('-', "_");
    SENSITIVE_KEYS.iter().copied().find(|k| norm.contains(k))
}

/// Replaces every accepted match of `r`. A refused match does not hide what
/// follows its kept prefix: the search resumes there (so the `token=…` inside
/// a refused `https:…` is still found).
fn apply(r: &Rule, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut pos = 0;
    while pos <= text.len() {
        let Some(c) = r.re.captures_at(text, pos) else {
            break;
        };
        let Some(whole) = c.get(0) else { break };
        let prefix = r.keep_prefix_group.and_then(|g| c.get(g));
        if (r.accept)(whole.as_str()) {
            out.push_str(&text[copied..whole.start()]);
            out.push_str(prefix.map_or("", |m| m.as_str()));
            out.push_str("[REDACTED:");
            out.push_str(r.kind);
            out.push(']');
            out.push_str(r.suffix);
            if let Some(kept) = r.keep_suffix_group.and_then(|g| c.get(g)) {
                out.push_str(kept.as_str());
            }
            copied = whole.end();
            pos = whole.end().max(whole.start() + 1);
        } else {
            let resume = prefix.map_or(whole.start(), |m| m.end());
            pos = if resume > whole.start() {
                resume
            } else {
                next_char(text, whole.start())
            };
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn next_char(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len() + 1, |ch| at + ch.len_utf8())
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
            "mysql --password=[REDACTED:command_password] -u x"
        );
    }

    /// Issue 17 item 2: each of these was kept in clear before.
    #[test]
    fn prefixed_names_platform_tokens_and_command_lines() {
        let cases: &[(&str, &str)] = &[
            ("DB_PASSWORD=hunter22", "DB_PASSWORD=[REDACTED:credential]"),
            (
                "export PGPASSWORD=s3cr3t-pw",
                "export PGPASSWORD=[REDACTED:credential]",
            ),
            (
                "GITHUB_TOKEN=abcdef0123456789",
                "GITHUB_TOKEN=[REDACTED:credential]",
            ),
            (
                "AWS_SECRET_ACCESS_KEY=\"wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKE\"",
                "AWS_SECRET_ACCESS_KEY=\"[REDACTED:aws_secret_key]\"",
            ),
            (
                "X-Api-Key: 9f8e7d6c5b4a",
                "X-Api-Key: [REDACTED:credential]",
            ),
            (
                "STRIPE_SECRET_KEY=sk_live_51HxAbCdEfGhIjKlMnOp",
                "STRIPE_SECRET_KEY=[REDACTED:stripe_key]",
            ),
            (
                "mysql -u root -phunter22 app",
                "mysql -u root -p[REDACTED:command_password] app",
            ),
            (
                "mysql --password=hunter22 -u x",
                "mysql --password=[REDACTED:command_password] -u x",
            ),
            (
                "sshpass -p 'Tr0ub4dor' ssh host",
                "sshpass -p '[REDACTED:command_password]' ssh host",
            ),
            (
                "curl -u admin:s3cret https://x.example/api",
                "curl -u admin:[REDACTED:command_password] https://x.example/api",
            ),
            (
                "psql postgresql://app:hunter2@db.internal/app",
                "psql postgresql://app:[REDACTED:url_password]@db.internal/app",
            ),
            (
                "htpasswd -bc /etc/nginx/.htpasswd alice Passw0rd!",
                "htpasswd -bc /etc/nginx/.htpasswd alice [REDACTED:command_password]",
            ),
            (
                "tool --api-key abc123def456 --token=zzz999yyy",
                "tool --api-key [REDACTED:command_password] --token=[REDACTED:command_password]",
            ),
            (
                "git clone alice:pa55word@git.example.com/repo",
                "git clone alice:[REDACTED:url_password]@git.example.com/repo",
            ),
            (
                "see https://example.com/cb?token=abc123xyz&x=1",
                "see https://example.com/cb?token=[REDACTED:credential]&x=1",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&r(input), want, "{input}");
        }
        // Discord bot token: base64url(bot id).6.27+
        let discord = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB";
        assert_eq!(
            r(&format!("DISCORD {discord} end")),
            "DISCORD [REDACTED:discord_token] end"
        );
        // The same shape whose first part is not a numeric id is kept.
        let not_discord = "aGVsbG8gd29ybGQgaGVsbG8.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB";
        assert_eq!(r(not_discord), not_discord);
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
            "PWD=/home/alice OLDPWD=/tmp",
            "max_tokens=1024",
            "export TOKEN_FILE=/run/secrets/t",
            "PGPASSWORD=$DB_PASS psql",
            "password: ********",
            "image nginx:1.25@sha256.example.org",
            "mysql -u root -p app",
            "ssh git@github.com:org/repo.git",
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

    #[test]
    fn known_secrets_in_their_encoded_forms() {
        let value = "Vault-Value-42!/x";
        let red = Redactor::new().with_known_secrets([format!("{value}\n")]);
        assert_eq!(red.known_secret_count(), 1);
        let b64 = "VmF1bHQtVmFsdWUtNDIhL3g="; // base64 of the value
        let b64url = "VmF1bHQtVmFsdWUtNDIhL3g"; // same, no padding
        let hex_lower = "5661756c742d56616c75652d3432212f78";
        let pct = "Vault-Value-42%21%2Fx";
        for shown in [
            value.to_string(),
            b64.to_string(),
            b64url.to_string(),
            hex_lower.to_string(),
            hex_lower.to_ascii_uppercase(),
            pct.to_string(),
        ] {
            let out = red.redact_text(&format!("out: {shown} ."));
            assert_eq!(out, "out: [REDACTED:known_secret] .", "{shown}");
        }
        // `echo value | base64` (a newline after it) and `user:value` in
        // Basic credentials: the value inside a longer encoding.
        for inner in [
            "VmF1bHQtVmFsdWUtNDIhL3gK",
            "dXNlcjpWYXVsdC1WYWx1ZS00MiEveA==",
        ] {
            let out = red.redact_text(inner);
            assert!(out.contains("[REDACTED:known_secret]"), "{inner} -> {out}");
            assert!(!out.contains("WYXVsdC1WYWx1ZS00Mi"), "{out}");
        }
        // A JSON credential: each field on its own.
        let red = Redactor::new().with_known_secrets([
            r#"{"access_key_id":"AKIDEXAMPLE1","secret_access_key":"s3cr3t-aws-value"}"#,
        ]);
        assert_eq!(
            red.redact_text("key s3cr3t-aws-value"),
            "key [REDACTED:known_secret]"
        );
        // Too short: ignored.
        assert_eq!(
            Redactor::new()
                .with_known_secrets(["abc12"])
                .known_secret_count(),
            0
        );
        // Never in Debug output.
        assert!(!format!("{red:?}").contains("s3cr3t"));
    }
}
