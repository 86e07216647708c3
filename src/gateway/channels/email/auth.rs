//! Who sent an e-mail, as far as the receiving server could tell.
//!
//! `From:` is whatever the sender typed. The receiving server (postfix with
//! OpenDKIM/OpenDMARC, rspamd, a hosted mailbox) checks DKIM signatures and
//! the DMARC policy and records the outcome in an `Authentication-Results`
//! header (RFC 8601) that it prepends. A sender is admitted only when that
//! header, added by the server the owner names (its *authserv-id*), says:
//! - `dmarc=pass` with `header.from` equal to the From domain, or
//! - `dkim=pass` with `header.d` equal to the From domain (a signature by the
//!   sender's own domain; a pass for another domain proves nothing about
//!   From).
//!
//! Domains compare exactly (ASCII case-insensitive, trailing dot ignored): a
//! signature by `mail.example.com` does not vouch for `example.com`, since
//! relaxed alignment needs the public suffix list to be safe.
//!
//! **Which header counts.** Anyone can write an `Authentication-Results`
//! header into a message. RFC 8601 §5 asks the border server to remove ones
//! that claim its own authserv-id; the server also prepends its own above
//! every header that came with the message. So only the *topmost* header with
//! the owner's authserv-id is read, and the others are ignored. This relies on
//! the server adding one to every message it delivers (a server that does not
//! would leave a forged one topmost): `docs/channels/email.md` says how to
//! check that.

use std::fmt;

/// Longest `Authentication-Results` value read (a real one is a few hundred
/// bytes); a longer one is refused, not truncated.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Most results (`method=result` parts) in one header.
const MAX_RESULTS: usize = 64;
/// Deepest nesting of `( comments )`.
const MAX_COMMENT_DEPTH: usize = 8;

/// One `Authentication-Results` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// The server that wrote it.
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

/// `method=result` and its `ptype.property=value` parts, lower-cased except
/// the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    pub method: String,
    pub result: String,
    pub properties: Vec<(String, String)>,
}

impl MethodResult {
    /// The value of `ptype.property` (e.g. `header.d`), if given once.
    pub fn property(&self, name: &str) -> Option<&str> {
        let mut found = self.properties.iter().filter(|(k, _)| k == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Authentication-Results is longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
    #[error("Authentication-Results has more than {MAX_RESULTS} results")]
    TooManyResults,
    #[error("Authentication-Results nests comments deeper than {MAX_COMMENT_DEPTH}")]
    TooDeep,
    #[error("Authentication-Results is malformed: {0}")]
    Malformed(&'static str),
}

/// How a sender was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Dmarc,
    Dkim,
}

/// Why a message's sender is not admitted; the sentence goes into the audit
/// trail (`gateway.denied`) and the settings page's last-error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthenticated {
    /// The From header does not hold exactly one address with a domain.
    BadFrom(String),
    /// No `Authentication-Results` header from the owner's server.
    NoResults { authserv_id: String },
    /// The server's header does not parse.
    Unreadable(ParseError),
    /// The server's header holds no passing, aligned DMARC or DKIM result.
    NotAligned { from_domain: String, seen: String },
}

impl fmt::Display for Unauthenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unauthenticated::BadFrom(why) => write!(f, "sender not authenticated: {why}"),
            Unauthenticated::NoResults { authserv_id } => write!(
                f,
                "sender not authenticated: no Authentication-Results header from {authserv_id} \
                 (is DKIM/DMARC checking on for this mailbox?)"
            ),
            Unauthenticated::Unreadable(e) => write!(f, "sender not authenticated: {e}"),
            Unauthenticated::NotAligned { from_domain, seen } => write!(
                f,
                "sender not authenticated: no DMARC or DKIM pass for {from_domain} ({seen})"
            ),
        }
    }
}

/// Decides whether the message's From is authenticated. `headers` are the
/// message's header fields in order (topmost first), names as received;
/// `from` is the From header's value; `authserv_id` is the receiving
/// server's id, from the channel's settings.
pub fn authenticate<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    from: &str,
    authserv_id: &str,
) -> Result<(Proof, String), Unauthenticated> {
    let from_domain = from_domain(from).map_err(Unauthenticated::BadFrom)?;
    let mut ours = None;
    for (name, value) in headers {
        if !name.trim().eq_ignore_ascii_case("Authentication-Results") {
            continue;
        }
        // A header that does not parse might still be the server's own: only
        // its authserv-id decides, and an unreadable one of ours is an error.
        match parse(value) {
            Ok(r) if same_id(&r.authserv_id, authserv_id) => {
                ours = Some(Ok(r));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                if leading_id(value).is_some_and(|id| same_id(&id, authserv_id)) {
                    ours = Some(Err(e));
                    break;
                }
            }
        }
    }
    let results = match ours {
        None => {
            return Err(Unauthenticated::NoResults {
                authserv_id: authserv_id.to_string(),
            });
        }
        Some(Err(e)) => return Err(Unauthenticated::Unreadable(e)),
        Some(Ok(r)) => r,
    };
    let aligned = |r: &MethodResult, property: &str| {
        r.result == "pass"
            && r.property(property)
                .is_some_and(|d| same_domain(d, &from_domain))
    };
    if results
        .results
        .iter()
        .any(|r| r.method == "dmarc" && aligned(r, "header.from"))
    {
        return Ok((Proof::Dmarc, from_domain));
    }
    if results
        .results
        .iter()
        .any(|r| r.method == "dkim" && aligned(r, "header.d"))
    {
        return Ok((Proof::Dkim, from_domain));
    }
    let seen = results
        .results
        .iter()
        .filter(|r| r.method == "dmarc" || r.method == "dkim")
        .map(|r| {
            let domain = r
                .property(if r.method == "dmarc" {
                    "header.from"
                } else {
                    "header.d"
                })
                .unwrap_or("?");
            format!("{}={} for {domain}", r.method, r.result)
        })
        .collect::<Vec<_>>();
    Err(Unauthenticated::NotAligned {
        from_domain,
        seen: if seen.is_empty() {
            "the server recorded no DMARC or DKIM result".into()
        } else {
            seen.join(", ")
        },
    })
}

/// The domain of the one address in a From header value (`Name <a@b>` or
/// `a@b`), lower-cased.
fn from_domain(from: &str) -> Result<String, String> {
    let stripped = strip_comments(from).map_err(|e| format!("From: {e}"))?;
    let addr = match (stripped.rfind('<'), stripped.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            if stripped[..open].contains('<') {
                return Err("From holds more than one address".into());
            }
            stripped[open + 1..close].trim().to_string()
        }
        (None, None) => stripped.trim().to_string(),
        _ => return Err("From has unbalanced angle brackets".into()),
    };
    if addr.contains(',') || addr.contains(char::is_whitespace) {
        return Err("From holds more than one address".into());
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Err(format!("From address {addr:?} has no domain"));
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if local.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(format!("From address {addr:?} has no valid domain"));
    }
    Ok(domain)
}

fn same_domain(a: &str, b: &str) -> bool {
    // `header.d` may carry `@domain` (header.i style) in some writers.
    let a = a.trim_start_matches('@').trim_end_matches('.');
    let b = b.trim_end_matches('.');
    a.eq_ignore_ascii_case(b)
}

fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b.trim())
}

/// The first word of a header value: its authserv-id, even when the rest
/// does not parse (leading comments are skipped).
fn leading_id(value: &str) -> Option<String> {
    let mut rest = value.trim_start();
    while rest.starts_with('(') {
        let mut depth = 0usize;
        let end = rest.char_indices().find_map(|(i, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            (depth == 0).then_some(i)
        })?;
        rest = rest[end + 1..].trim_start();
    }
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .unwrap_or(rest.len());
    let id = rest[..end].trim_matches('"');
    (!id.is_empty()).then(|| id.to_string())
}

/// Parses an `Authentication-Results` value (RFC 8601 §2.2).
pub fn parse(value: &str) -> Result<AuthResults, ParseError> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(ParseError::TooLong);
    }
    let text = strip_comments(value)?;
    let mut parts = split_outside_quotes(&text, ';').into_iter();
    let head = parts.next().unwrap_or_default();
    let mut words = split_words(&head);
    let authserv_id = words
        .next()
        .ok_or(ParseError::Malformed("no authserv-id"))?;
    let authserv_id = unquote(&authserv_id)?;
    if authserv_id.is_empty() {
        return Err(ParseError::Malformed("empty authserv-id"));
    }
    // An optional version (`1`); anything else after the id is malformed.
    match words.next() {
        None => {}
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) && v.len() <= 4 => {}
        Some(_) => return Err(ParseError::Malformed("text after the authserv-id")),
    }
    if words.next().is_some() {
        return Err(ParseError::Malformed("text after the version"));
    }
    let mut results = Vec::new();
    for part in parts {
        let part = part.trim();
        if part.eq_ignore_ascii_case("none") && results.is_empty() {
            continue;
        }
        if results.len() == MAX_RESULTS {
            return Err(ParseError::TooManyResults);
        }
        results.push(result_info(part)?);
    }
    Ok(AuthResults {
        authserv_id,
        results,
    })
}

/// `method[/version]=result [reason=value] [ptype.property=value ...]`, with
/// optional whitespace around `/`, `=` and `.`.
fn result_info(part: &str) -> Result<MethodResult, ParseError> {
    let mut c = Cursor::new(part);
    let method = c
        .keyword()
        .ok_or(ParseError::Malformed("a result without a method"))?;
    if c.eat('/') {
        c.keyword()
            .ok_or(ParseError::Malformed("a method version is not a keyword"))?;
    }
    if !c.eat('=') {
        return Err(ParseError::Malformed("a result without `method=result`"));
    }
    let result = c
        .keyword()
        .ok_or(ParseError::Malformed("a result is not a keyword"))?;
    let mut properties = Vec::new();
    while !c.at_end() {
        let ptype = c
            .keyword()
            .ok_or(ParseError::Malformed("a property type is not a keyword"))?
            .to_ascii_lowercase();
        if ptype == "reason" && c.eat('=') {
            c.value()?;
            continue;
        }
        if !c.eat('.') {
            return Err(ParseError::Malformed("a property without `ptype.`"));
        }
        let property = c
            .keyword()
            .ok_or(ParseError::Malformed("a property name is not a keyword"))?
            .to_ascii_lowercase();
        if !c.eat('=') {
            return Err(ParseError::Malformed("a property without `=`"));
        }
        properties.push((format!("{ptype}.{property}"), c.value()?));
    }
    Ok(MethodResult {
        method: method.to_ascii_lowercase(),
        result: result.to_ascii_lowercase(),
        properties,
    })
}

/// Reads one result part; whitespace between items is skipped.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Cursor<'a> {
        Cursor {
            rest: s.trim_start(),
        }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// Consumes `c` (and the whitespace after it) if it comes next.
    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest.trim_start();
                true
            }
            None => false,
        }
    }

    /// A keyword: letters, digits, `-` and `_`.
    fn keyword(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        if !keyword(word) {
            return None;
        }
        self.rest = rest.trim_start();
        Some(word)
    }

    /// A value: a quoted string, or everything up to the next whitespace
    /// (`user@example.com`, `example.com`, `1024`).
    fn value(&mut self) -> Result<String, ParseError> {
        let end = if self.rest.starts_with('"') {
            closing_quote(self.rest).ok_or(ParseError::Malformed("an unclosed quote"))? + 1
        } else {
            self.rest
                .find(char::is_whitespace)
                .unwrap_or(self.rest.len())
        };
        let (word, rest) = self.rest.split_at(end);
        if word.is_empty() {
            return Err(ParseError::Malformed("an empty value"));
        }
        self.rest = rest.trim_start();
        unquote(word)
    }
}

/// The byte index of the quote closing the quoted string `s` starts with.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

fn keyword(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && s.bytes().last().is_some_and(|b| b != b'-')
}

/// Removes `( comments )` (nested, with `\` escapes) outside quoted strings;
/// each comment becomes one space.
fn strip_comments(s: &str) -> Result<String, ParseError> {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quote || depth > 0 => {
                let escaped = chars
                    .next()
                    .ok_or(ParseError::Malformed("a dangling `\\`"))?;
                if depth == 0 {
                    out.push('\\');
                    out.push(escaped);
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => {
                depth += 1;
                if depth > MAX_COMMENT_DEPTH {
                    return Err(ParseError::TooDeep);
                }
            }
            ')' if !in_quote => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(ParseError::Malformed("an unopened `)`"))?;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth > 0 => {}
            // Folded lines: CR/LF are whitespace here.
            '\r' | '\n' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    if depth > 0 {
        return Err(ParseError::Malformed("an unclosed `(`"));
    }
    if in_quote {
        return Err(ParseError::Malformed("an unclosed quote"));
    }
    Ok(out)
}

/// Splits on `sep` outside quoted strings.
fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut in_quote = false;
    let mut escaped = false;
    for c in s.chars() {
        if let Some(last) = parts.last_mut() {
            if escaped {
                escaped = false;
                last.push(c);
                continue;
            }
            match c {
                '\\' if in_quote => {
                    escaped = true;
                    last.push(c);
                }
                '"' => {
                    in_quote = !in_quote;
                    last.push(c);
                }
                c if c == sep && !in_quote => parts.push(String::new()),
                c => last.push(c),
            }
        }
    }
    parts
}

/// Whitespace-separated words, quoted strings kept whole.
fn split_words(s: &str) -> impl Iterator<Item = String> {
    split_outside_quotes(&s.replace(char::is_whitespace, " "), ' ')
        .into_iter()
        .filter(|w| !w.is_empty())
}

/// A value: a token, or a quoted string with `\` escapes removed.
fn unquote(v: &str) -> Result<String, ParseError> {
    let Some(inner) = v.strip_prefix('"') else {
        if v.contains('"') {
            return Err(ParseError::Malformed("a quote inside a token"));
        }
        return Ok(v.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or(ParseError::Malformed("an unclosed quote"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(
                chars
                    .next()
                    .ok_or(ParseError::Malformed("a dangling `\\`"))?,
            ),
            '"' => return Err(ParseError::Malformed("a quote inside a quoted string")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "mx.owner.example";

    fn check(headers: &[(&str, &str)], from: &str) -> Result<(Proof, String), Unauthenticated> {
        authenticate(headers.iter().copied(), from, ID)
    }

    #[test]
    fn real_world_headers_parse() {
        // Gmail's shape: version-less id, comments, reason=, header.i with @.
        let gmail = "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=Ab+/cD;\r\n       spf=pass (google.com: domain of a@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=a@example.com;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com";
        let r = parse(gmail).unwrap();
        assert_eq!(r.authserv_id, "mx.google.com");
        let methods: Vec<_> = r
            .results
            .iter()
            .map(|m| (m.method.as_str(), m.result.as_str()))
            .collect();
        assert_eq!(
            methods,
            [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
        );
        assert_eq!(r.results[2].property("header.from"), Some("example.com"));
        assert_eq!(r.results[0].property("header.b"), Some("Ab+/cD"));
        // OpenDMARC / OpenDKIM with a version and spaces around `=` and `.`.
        let r = parse("mx.owner.example 1; dkim = pass (2048-bit key; unprotected) header . d = Example.COM header.i=@example.com; dmarc=fail reason=\"policy; quarantine\" header.from=example.org").unwrap();
        assert_eq!(r.results[0].property("header.d"), Some("Example.COM"));
        assert_eq!(r.results[1].result, "fail");
        assert_eq!(r.results[1].property("header.from"), Some("example.org"));
        // Quoted authserv-id and `none`.
        let r = parse("\"mx.owner.example\"; none").unwrap();
        assert_eq!(r.authserv_id, "mx.owner.example");
        assert!(r.results.is_empty());
        // A method version.
        let r = parse("x; auth/1=pass smtp.auth=owner").unwrap();
        assert_eq!(r.results[0].method, "auth");
    }

    #[test]
    fn dmarc_or_dkim_pass_for_the_from_domain_admits() {
        let h = [(
            "Authentication-Results",
            "mx.owner.example; dmarc=pass header.from=example.com",
        )];
        assert_eq!(
            check(&h, "Alice <alice@Example.com>").unwrap(),
            (Proof::Dmarc, "example.com".to_string())
        );
        let h = [(
            "authentication-results",
            "mx.owner.example; spf=fail smtp.mailfrom=x@y; dkim=pass header.d=example.com.",
        )];
        assert_eq!(check(&h, "alice@example.com").unwrap().0, Proof::Dkim);
        let h = [(
            "Authentication-Results",
            "mx.owner.example; dkim=pass header.d=@example.com",
        )];
        assert_eq!(
            check(&h, "\"Alice (work)\" <alice@example.com>").unwrap().0,
            Proof::Dkim
        );
    }

    #[test]
    fn spoofed_or_unaligned_senders_are_refused_with_a_reason() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            // No header at all.
            (
                &[("Subject", "hi")],
                "a@example.com",
                "no Authentication-Results header from mx.owner.example",
            ),
            // Another server's (or the sender's own forged) header.
            (
                &[(
                    "Authentication-Results",
                    "mx.evil.example; dmarc=pass header.from=example.com",
                )],
                "a@example.com",
                "no Authentication-Results",
            ),
            // SPF alone proves nothing about From.
            (
                &[(
                    "Authentication-Results",
                    "mx.owner.example; spf=pass smtp.mailfrom=a@example.com",
                )],
                "a@example.com",
                "the server recorded no DMARC or DKIM result",
            ),
            // A DKIM pass for another domain (the attacker's own).
            (
                &[(
                    "Authentication-Results",
                    "mx.owner.example; dkim=pass header.d=evil.example",
                )],
                "ceo@example.com",
                "dkim=pass for evil.example",
            ),
            // A subdomain or parent does not count.
            (
                &[(
                    "Authentication-Results",
                    "mx.owner.example; dkim=pass header.d=mail.example.com",
                )],
                "a@example.com",
                "no DMARC or DKIM pass for example.com",
            ),
            (
                &[(
                    "Authentication-Results",
                    "mx.owner.example; dmarc=pass header.from=com",
                )],
                "a@example.com",
                "dmarc=pass for com",
            ),
            // Failures and neutral results.
            (
                &[(
                    "Authentication-Results",
                    "mx.owner.example; dmarc=fail header.from=example.com; dkim=neutral header.d=example.com",
                )],
                "a@example.com",
                "dmarc=fail for example.com, dkim=neutral for example.com",
            ),
            // dmarc=pass without header.from, or with it twice.
            (
                &[("Authentication-Results", "mx.owner.example; dmarc=pass")],
                "a@example.com",
                "dmarc=pass for ?",
            ),
            (
                &[(
                    "Authentication-Results",
                    "mx.owner.example; dmarc=pass header.from=evil.example header.from=example.com",
                )],
                "a@example.com",
                "dmarc=pass for ?",
            ),
            // Bad From values.
            (&[], "alice", "has no domain"),
            (&[], "a@example.com, b@example.com", "more than one address"),
            (
                &[],
                "A <a@example.com>, B <b@example.com>",
                "more than one address",
            ),
            (&[], "<a@exa mple.com>", "more than one address"),
            (&[], "a@ex_ample.com", "no valid domain"),
            (&[], "a@example.com>", "unbalanced"),
            (&[], "a@(unclosed", "unclosed"),
        ];
        for (headers, from, reason) in cases {
            let e = check(headers, from).unwrap_err().to_string();
            assert!(e.contains(reason), "{headers:?} {from}: {e}");
        }
    }

    #[test]
    fn only_the_topmost_header_of_the_owners_server_counts() {
        // The server's own (topmost) says fail; a forged one below says pass.
        let h = [
            ("Received", "from x by mx.owner.example"),
            (
                "Authentication-Results",
                "mx.owner.example; dmarc=fail header.from=example.com",
            ),
            (
                "Authentication-Results",
                "mx.owner.example; dmarc=pass header.from=example.com",
            ),
        ];
        assert!(check(&h, "a@example.com").is_err());
        // Another server's header above ours is skipped.
        let h = [
            (
                "Authentication-Results",
                "spamfilter.example; dmarc=fail header.from=example.com",
            ),
            (
                "Authentication-Results",
                "mx.owner.example; dmarc=pass header.from=example.com",
            ),
        ];
        assert!(check(&h, "a@example.com").is_ok());
        // Ours unreadable: refused, not skipped in favour of a lower one.
        let h = [
            (
                "Authentication-Results",
                "mx.owner.example; dmarc=pass header.from=\"example.com",
            ),
            (
                "Authentication-Results",
                "mx.owner.example; dmarc=pass header.from=example.com",
            ),
        ];
        let e = check(&h, "a@example.com").unwrap_err();
        assert!(matches!(e, Unauthenticated::Unreadable(_)), "{e}");
    }

    #[test]
    fn hostile_headers_are_clear_errors() {
        let deep = format!(
            "x; dkim=pass {}a{} header.d=example.com",
            "(".repeat(9),
            ")".repeat(9)
        );
        let many = format!("x{}", "; dkim=pass".repeat(MAX_RESULTS + 1));
        let long = format!("x; dkim=pass header.d={}", "a".repeat(MAX_HEADER_BYTES));
        let cases: Vec<(String, ParseError)> = vec![
            (deep, ParseError::TooDeep),
            (many, ParseError::TooManyResults),
            (long, ParseError::TooLong),
            ("".into(), ParseError::Malformed("no authserv-id")),
            (
                "; dkim=pass".into(),
                ParseError::Malformed("no authserv-id"),
            ),
            (
                "x y z; dkim=pass".into(),
                ParseError::Malformed("text after the authserv-id"),
            ),
            (
                "x; dkim".into(),
                ParseError::Malformed("a result without `method=result`"),
            ),
            (
                "x; =pass".into(),
                ParseError::Malformed("a result without a method"),
            ),
            (
                "x; dkim=".into(),
                ParseError::Malformed("a result is not a keyword"),
            ),
            (
                "x; dkim=pass header.d".into(),
                ParseError::Malformed("a property without `=`"),
            ),
            (
                "x; dkim=pass d=example.com".into(),
                ParseError::Malformed("a property without `ptype.`"),
            ),
            (
                "x; dkim=pass header.d=\"a".into(),
                ParseError::Malformed("an unclosed quote"),
            ),
            (
                "x; dkim=pass (a".into(),
                ParseError::Malformed("an unclosed `(`"),
            ),
            (
                "x; dkim=pass a)".into(),
                ParseError::Malformed("an unopened `)`"),
            ),
            (
                "x; dkim=pass header.d=a\"b\"".into(),
                ParseError::Malformed("a quote inside a token"),
            ),
            (
                "x; dk!m=pass".into(),
                ParseError::Malformed("a result without `method=result`"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(&input), Err(want.clone()), "{input:?}");
        }
        // Non-ASCII and control bytes are data, not a crash.
        assert!(parse("x; dkim=pass header.d=exämple.com\u{0}").is_ok());
        let h = [(
            "Authentication-Results",
            "mx.owner.example; dkim=pass header.d=exämple.com",
        )];
        assert!(check(&h, "a@exämple.com").is_err());
    }
}
