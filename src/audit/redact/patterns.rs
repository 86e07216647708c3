//! The built-in redaction patterns, in the order they are applied (specific
//! shapes before the generic `NAME=value` rule, so a value is labelled by what
//! it is). Each pattern is a compile-time constant covered by the unit tests
//! in `redact.rs` and by the corpus in `tests/data/redaction/`.

use regex::Regex;

/// One pattern: what it finds, how it is labelled, which capture group (if
/// any) is a prefix to keep in front of the marker.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub kind: &'static str,
    pub re: Regex,
    pub keep_prefix_group: Option<usize>,
    /// Extra check on the whole match; `false` leaves it untouched.
    pub accept: fn(&str) -> bool,
    /// Text put back after the marker (the part of the match that is not secret).
    pub suffix: &'static str,
    /// A capture group put back after the suffix (the host after `user:pass@`).
    pub keep_suffix_group: Option<usize>,
}

fn rule(kind: &'static str, pattern: &str, keep_prefix_group: Option<usize>) -> Rule {
    // Patterns are compile-time constants covered by the unit tests.
    match Regex::new(pattern) {
        Ok(re) => Rule {
            kind,
            re,
            keep_prefix_group,
            accept: |_| true,
            suffix: "",
            keep_suffix_group: None,
        },
        Err(e) => panic!("audit redaction pattern {kind} does not compile: {e}"),
    }
}

/// Words that make a `NAME=value` / `NAME: value` name a credential when
/// they appear anywhere in the name (lowercased, `-` and `.` read as `_`).
const NAME_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "accesskey",
    "account_key",
    "accountkey",
    "private_key",
    "credential",
];

/// Words that name a credential only as a whole `_`-separated segment
/// (`DB_PASS`, `SMTP_PWD`; not `BYPASS`, `COMPASS` or the shell's `PWD`).
const NAME_SEGMENTS: &[&str] = &["pass", "pwd", "pw"];

/// Whether `name` (the part before `=` or `:`) names a credential.
fn credential_name(name: &str) -> bool {
    let norm: String = name
        .trim_matches(|c| c == '"' || c == '\'')
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let norm = norm.trim_matches('_');
    // The shell's working directories, and counts or settings about tokens.
    if matches!(norm, "pwd" | "oldpwd")
        || norm.contains("tokens")
        || [
            "_file", "_path", "_dir", "_type", "_count", "_limit", "_len", "_length", "_size",
            "_secs", "_seconds", "_ms", "_ttl", "_name", "_header", "_policy", "_at",
        ]
        .iter()
        .any(|s| norm.ends_with(s))
    {
        return false;
    }
    NAME_WORDS.iter().any(|w| norm.contains(w))
        || norm
            .split('_')
            .any(|segment| NAME_SEGMENTS.contains(&segment))
}

/// Values that are references or placeholders, not secrets.
fn placeholder_value(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    v.starts_with('$')
        || v.starts_with("[REDACTED")
        || v.starts_with('<')
        || v.starts_with("{{")
        || v.chars().all(|c| c == '*' || c == 'x' || c == 'X')
        || version(v)
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "none" | "yes" | "no" | "required" | "optional"
        )
}

/// A version or a version requirement (`==1.2.3`, `^0.8.0`, `>=2`): package
/// lists name packages after credentials (`jsonwebtoken`, `secretstorage`).
fn version(v: &str) -> bool {
    let core = v.trim_start_matches(['=', '^', '~', '<', '>', '!', 'v']);
    core.len() < v.len() && core.starts_with(|c: char| c.is_ascii_digit())
        || core.split('.').count() >= 2
            && core
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `NAME=value` with a credential name: the name and a real-looking value.
fn accept_name_value(whole: &str) -> bool {
    let Some(at) = whole.find(['=', ':']) else {
        return false;
    };
    let (name, rest) = whole.split_at(at);
    let value = rest[1..].trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
    credential_name(name) && !placeholder_value(value)
}

/// A Discord bot token's first part is the bot's id, base64url: decimal digits.
fn discord_token(whole: &str) -> bool {
    let first = whole.split('.').next().unwrap_or_default();
    crate::guard::decode::base64(first, false)
        .is_some_and(|id| id.len() >= 15 && id.bytes().all(|b| b.is_ascii_digit()))
}

/// `user:value@host` without a scheme: not a version pinned by digest
/// (`nginx:1.25@sha256:…`) nor a time.
fn userinfo(whole: &str) -> bool {
    let Some((before_at, host)) = whole.rsplit_once('@') else {
        return false;
    };
    let value = before_at.rsplit(':').next().unwrap_or_default();
    !host.starts_with("sha") && !value.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// The built-in rules, most specific first.
pub(super) fn rules() -> Vec<Rule> {
    vec![
        // PEM / OpenSSH / PGP private key blocks (an unterminated block is
        // redacted to the end).
        rule(
            "private_key",
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            None,
        ),
        rule(
            "private_key",
            r"(?s)PuTTY-User-Key-File-\d+:.*?(?:Private-MAC: [0-9a-f]+|\z)",
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
        // Stripe secret and restricted keys (publishable `pk_` keys are public),
        // and webhook signing secrets.
        rule(
            "stripe_key",
            r"\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})",
            None,
        ),
        rule(
            "slack_token",
            r"\b(?:xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,})",
            None,
        ),
        rule(
            "slack_webhook",
            r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]{10,}",
            Some(1),
        ),
        rule(
            "github_token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
            None,
        ),
        rule(
            "gitlab_token",
            r"\bgl(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_-]{20,}",
            None,
        ),
        rule("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}", None),
        rule("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", None),
        rule("pypi_token", r"\bpypi-[A-Za-z0-9_-]{50,}", None),
        rule("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b", None),
        rule(
            "sendgrid_key",
            r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{30,50}",
            None,
        ),
        // Twilio API key and account SIDs (the auth token is plain hex and is
        // caught by its variable name).
        rule("twilio_key", r"\b(?:SK|AC)[0-9a-f]{32}\b", None),
        // Azure AD / Teams app client secrets: `xxx8Q~` then 31-34 characters.
        rule(
            "azure_client_secret",
            r"\b[A-Za-z0-9_.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}",
            None,
        ),
        Rule {
            accept: discord_token,
            ..rule(
                "discord_token",
                r"\b[A-Za-z0-9_-]{18,32}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,45}\b",
                None,
            )
        },
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
        // Command-line credentials whose option says what follows.
        // mysql/mariadb -pSECRET (no space: `-p` alone prompts).
        rule(
            "command_password",
            r"(\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mariadb|mariadb-dump)\b[^\n|;&]*?\s-p['\x22]?)[^\s'\x22,)-][^\s'\x22]*",
            Some(1),
        ),
        rule(
            "command_password",
            r"(\bsshpass\b[^\n|;&]*?\s-p\s*['\x22]?)[^\s'\x22-][^\s'\x22]*",
            Some(1),
        ),
        rule(
            "command_password",
            r"(\bredis-cli\b[^\n|;&]*?\s-a\s+['\x22]?)[^\s'\x22-][^\s'\x22]*",
            Some(1),
        ),
        // curl/wget/httpie user:password.
        rule(
            "command_password",
            r#"(\b(?:curl|wget|http|https)\b[^\n|;&]*?\s(?:-u|--user|--proxy-user|-U)(?:\s+|=)?["']?[^\s:"']+:)[^\s"'@]+"#,
            Some(1),
        ),
        rule(
            "command_password",
            r#"(\bsmbclient\b[^\n|;&]*?\s(?:-U|--user)(?:\s+|=)?["']?[^\s%"']+%)[^\s"']+"#,
            Some(1),
        ),
        // htpasswd -b[c...] FILE USER PASSWORD
        rule(
            "command_password",
            r"(\bhtpasswd\s+(?:-[A-Za-z]+\s+)*-[A-Za-z]*b[A-Za-z]*\s+(?:-[A-Za-z]+\s+)*\S+\s+\S+\s+)\S+",
            Some(1),
        ),
        // --password X, --api-key X, --client-secret X, --auth-token X ...
        rule(
            "command_password",
            r#"(--(?:[a-z0-9]+-)*(?:password|passwd|passphrase|token|api-key|apikey|secret)(?:=|\s+)["']?)[^\s"'-][^\s"']*"#,
            Some(1),
        ),
        // user:password@host without a scheme.
        Rule {
            accept: userinfo,
            keep_suffix_group: Some(2),
            ..rule(
                "url_password",
                r"(\b[A-Za-z0-9._%+-]+:)[^\s@/:'\x22\[\]]{3,}(@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)",
                Some(1),
            )
        },
        // NAME=value, NAME: value, "name": "value" with a credential word
        // anywhere in the name (DB_PASSWORD, GITHUB_TOKEN, X-Api-Key, ...):
        // env dumps, `export` lines, `.env` files, headers, command lines.
        Rule {
            accept: accept_name_value,
            ..rule(
                "credential",
                r#"([A-Za-z_][A-Za-z0-9_.-]*["']?\s*(?::|=)\s*["']?)[^\s"'&,;]{4,}"#,
                Some(1),
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for yes in [
            "DB_PASSWORD",
            "GITHUB_TOKEN",
            "PGPASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "X-Api-Key",
            "client.secret",
            "SMTP_PASS",
            "db_pwd",
            "\"password\"",
            "AccountKey",
            "SharedAccessKey",
        ] {
            assert!(credential_name(yes), "{yes}");
        }
        for no in [
            "PWD",
            "OLDPWD",
            "BYPASS",
            "COMPASS_HOME",
            "max_tokens",
            "TOKEN_FILE",
            "password_path",
            "token_type",
            "PATH",
            "HOME",
        ] {
            assert!(!credential_name(no), "{no}");
        }
    }
}
