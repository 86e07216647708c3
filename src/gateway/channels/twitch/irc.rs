//! IRC lines with IRCv3 message tags, as Twitch sends them:
//! `@key=value;key2=value2 :nick!user@host COMMAND param :trailing`. Written
//! here rather than taken from a crate: the grammar is a few rules, and the
//! bounds (line length, tag count, parameters) are ours to set. A line is
//! at most [`MAX_LINE_BYTES`] (IRCv3's 8,191 bytes of tags plus RFC 1459's
//! 512 for the rest), UTF-8, without NUL, CR or LF inside; anything else is
//! malformed. Outgoing lines are built only by [`command`], which refuses a
//! parameter that could end the line or start another.

use std::collections::BTreeMap;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes of a line's tags (`@` to the space after them).
pub const MAX_TAG_BYTES: usize = 8191;
/// Most bytes of one line, its CR LF aside.
pub const MAX_LINE_BYTES: usize = MAX_TAG_BYTES + 512;
/// Most tags of one line.
const MAX_TAGS: usize = 64;
/// Most parameters of one command (RFC 1459).
const MAX_PARAMS: usize = 15;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Tags, their values unescaped (a tag without a value maps to "").
    pub tags: BTreeMap<String, String>,
    /// The nick (or server name) of the prefix, if any.
    pub source: Option<String>,
    /// The command, uppercase (`PRIVMSG`, `001`).
    pub command: String,
    pub params: Vec<String>,
}

impl Line {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }
}

/// Parses one line (without its line ending).
pub fn parse_line(text: &str) -> Result<Line, String> {
    if text.len() > MAX_LINE_BYTES {
        return Err(format!(
            "line of {} bytes; at most {MAX_LINE_BYTES}",
            text.len()
        ));
    }
    if text.contains(['\0', '\r', '\n']) {
        return Err("NUL, CR or LF inside a line".into());
    }
    let mut rest = text;
    let mut tags = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('@') {
        let (raw, tail) = after.split_once(' ').ok_or("tags without a command")?;
        if raw.len() + 2 > MAX_TAG_BYTES {
            return Err(format!(
                "tags of {} bytes; at most {MAX_TAG_BYTES}",
                raw.len()
            ));
        }
        for item in raw.split(';').filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'.' | b'+'))
            {
                return Err("a tag key of other than letters, digits, - / . +".into());
            }
            if tags.len() >= MAX_TAGS {
                return Err(format!("more than {MAX_TAGS} tags"));
            }
            tags.insert(key.to_string(), unescape_tag(value));
        }
        rest = tail.trim_start_matches(' ');
    }
    let mut source = None;
    if let Some(after) = rest.strip_prefix(':') {
        let (prefix, tail) = after.split_once(' ').ok_or("prefix without a command")?;
        let nick = prefix.split(['!', '@']).next().unwrap_or_default();
        if nick.is_empty() {
            return Err("empty prefix".into());
        }
        source = Some(nick.to_string());
        rest = tail.trim_start_matches(' ');
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() || !command.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("no command, or a command of other than letters and digits".into());
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if params.len() >= MAX_PARAMS {
            return Err(format!("more than {MAX_PARAMS} parameters"));
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing.to_string());
            break;
        }
        let (param, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(param.to_string());
        rest = tail;
    }
    Ok(Line {
        tags,
        source,
        command: command.to_ascii_uppercase(),
        params,
    })
}

/// A tag value as IRCv3 escapes it: `\:` `;`, `\s` space, `\\`, `\r`, `\n`;
/// another escaped character stands for itself, a lone `\` at the end is
/// dropped.
fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A tag value that needs no escaping and cannot smuggle anything: 1 to 64
/// letters, digits and `-` (Twitch's message ids are UUIDs).
pub fn is_plain_tag_value(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// One outgoing line (CR LF added): `command` and `params`, the last one as
/// trailing (after `:`) when it is empty, has a space or starts with `:`. A parameter with NUL, CR or LF is refused (it would end the line
/// and start another command); so is a middle parameter that is empty, has a
/// space or starts with `:`.
pub fn command(tags: &[(&str, &str)], command: &str, params: &[&str]) -> Result<String, String> {
    let mut line = String::new();
    if !tags.is_empty() {
        line.push('@');
        for (i, (k, v)) in tags.iter().enumerate() {
            if !is_plain_tag_value(k) || !is_plain_tag_value(v) {
                return Err("a tag of other than letters, digits and -".into());
            }
            if i > 0 {
                line.push(';');
            }
            line.push_str(k);
            line.push('=');
            line.push_str(v);
        }
        line.push(' ');
    }
    line.push_str(command);
    for (i, p) in params.iter().enumerate() {
        if p.contains(['\0', '\r', '\n']) {
            return Err(format!("{command}: a parameter holds NUL, CR or LF"));
        }
        line.push(' ');
        let plain = !p.is_empty() && !p.contains(' ') && !p.starts_with(':');
        if i + 1 == params.len() {
            // The last as trailing where it must be (as Twitch's own
            // clients send `PASS oauth:...`, `JOIN #channel`).
            if !plain {
                line.push(':');
            }
        } else if !plain {
            return Err(format!(
                "{command}: a middle parameter is empty or has a space"
            ));
        }
        line.push_str(p);
    }
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("{command}: line of {} bytes", line.len()));
    }
    line.push_str("\r\n");
    Ok(line)
}

/// What [`LineReader::next_line`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Line(String),
    /// A line longer than [`MAX_LINE_BYTES`] or not UTF-8: skipped whole.
    Malformed(String),
    /// The connection ended.
    Closed,
}

/// Reads CR LF (or LF) terminated lines of at most [`MAX_LINE_BYTES`] from
/// a stream, never holding more than one line and one read.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Dropping the rest of an oversized line.
    skipping: bool,
    /// The longest line kept (IRC's [`MAX_LINE_BYTES`] unless another
    /// line protocol, imsg's JSON-RPC, says otherwise).
    max: usize,
}

impl<R> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader::with_limit(inner, MAX_LINE_BYTES)
    }

    /// Lines of at most `max` bytes.
    pub fn with_limit(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            skipping: false,
            max,
        }
    }

    /// The stream, to write to.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// The next line. Cancel-safe: a partial line stays buffered.
    pub async fn next_line(&mut self) -> std::io::Result<Read> {
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=at).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if std::mem::take(&mut self.skipping) {
                    return Ok(Read::Malformed(format!(
                        "line longer than {} bytes",
                        self.max
                    )));
                }
                if line.len() > self.max {
                    return Ok(Read::Malformed(format!(
                        "line of {} bytes; at most {}",
                        line.len(),
                        self.max
                    )));
                }
                return Ok(match String::from_utf8(line) {
                    Ok(text) if text.is_empty() => continue,
                    Ok(text) => Read::Line(text),
                    Err(_) => Read::Malformed("line not UTF-8".into()),
                });
            }
            if self.buf.len() > self.max + 1 {
                self.buf.clear();
                self.skipping = true;
            }
            let mut chunk = [0u8; 4096];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Read::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twitch_privmsg_with_tags() {
        let l = parse_line(
            "@badge-info=;display-name=Ali\\sce;id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;\
             room-id=1337;user-id=42;flag :alice!alice@alice.tmi.twitch.tv PRIVMSG #owner :hi there :)",
        )
        .unwrap();
        assert_eq!(l.command, "PRIVMSG");
        assert_eq!(l.source.as_deref(), Some("alice"));
        assert_eq!(l.params, ["#owner", "hi there :)"]);
        assert_eq!(l.tag("display-name"), Some("Ali ce"));
        assert_eq!(l.tag("user-id"), Some("42"));
        assert_eq!(l.tag("flag"), Some(""));
        assert_eq!(l.tag("badge-info"), Some(""));
    }

    #[test]
    fn plain_lines() {
        let l = parse_line("PING :tmi.twitch.tv").unwrap();
        assert_eq!(
            (l.command.as_str(), l.param(0)),
            ("PING", Some("tmi.twitch.tv"))
        );
        let l = parse_line(":tmi.twitch.tv 001 bot :Welcome, GLHF!").unwrap();
        assert_eq!(l.params, ["bot", "Welcome, GLHF!"]);
        assert_eq!(
            parse_line(":s CAP * NAK :a b").unwrap().params,
            ["*", "NAK", "a b"]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape_tag(r"a\:b\sc\\d\r\n\x\"), "a;b c\\d\r\nx");
    }

    #[test]
    fn hostile_lines_are_refused() {
        let long = format!("PRIVMSG #a :{}", "x".repeat(MAX_LINE_BYTES));
        let bad_key = "@a=b;k\u{e9}y=1 PRIVMSG #a :x".to_string();
        let many = format!(
            "@{} PING",
            (0..100)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(";")
        );
        let params = format!("CMD{}", " p".repeat(20));
        for bad in [
            "",
            "@tags-only",
            ":prefix-only",
            ": PRIVMSG #a :x",
            "PRIV-MSG x",
            "a\rb",
            long.as_str(),
            bad_key.as_str(),
            many.as_str(),
            params.as_str(),
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_never_carry_a_second_line() {
        assert_eq!(
            command(
                &[("reply-parent-msg-id", "ab-12")],
                "PRIVMSG",
                &["#c", "hi :)"]
            )
            .unwrap(),
            "@reply-parent-msg-id=ab-12 PRIVMSG #c :hi :)\r\n"
        );
        assert!(command(&[], "PRIVMSG", &["#c", "hi\r\nJOIN #x"]).is_err());
        assert!(command(&[], "PRIVMSG", &["#c x", "hi"]).is_err());
        assert!(command(&[("reply-parent-msg-id", "a;b=c")], "PRIVMSG", &["#c", "x"]).is_err());
    }

    #[tokio::test]
    async fn reader_bounds_lines() {
        let mut input = b"PING :a\r\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE_BYTES + 5000]);
        input.extend(b"\r\n\xff\xfe\r\n\r\nPING :b\n");
        let mut r = LineReader::new(&input[..]);
        assert_eq!(r.next_line().await.unwrap(), Read::Line("PING :a".into()));
        assert!(matches!(r.next_line().await.unwrap(), Read::Malformed(_)));
        assert!(matches!(r.next_line().await.unwrap(), Read::Malformed(_)));
        assert_eq!(r.next_line().await.unwrap(), Read::Line("PING :b".into()));
        assert_eq!(r.next_line().await.unwrap(), Read::Closed);
    }
}
