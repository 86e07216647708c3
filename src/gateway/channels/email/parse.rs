//! One fetched e-mail → what the appliance does with it. Pure (no I/O), so
//! the IMAP loop, the tests and the fuzz target share it:
//! - too large, unparsable or without one usable From: malformed (audited,
//!   marked read so it is not fetched again);
//! - an automatic message (auto-reply, bounce, a list's mail) or the
//!   appliance's own: ignored, marked read (answering one could start a loop
//!   of automatic mail);
//! - a subject without the subject filter: not for the appliance, left
//!   unread for the owner (routing, not access control: anyone can write any
//!   subject, so a matching one is checked like every other message);
//! - a From the receiving server did not vouch for ([`authenticate`]):
//!   refused (audited), marked read;
//! - otherwise the message: its sender is the authenticated address,
//!   lowercased; its chat is that address (a DM: the answer goes only to the
//!   sender, never to others in To or Cc).
//!
//! The text is the plain-text body (mail-parser's text/plain part, or its
//! minimal text of the HTML one), without the quoted earlier messages and
//! the signature.

use mail_parser::MessageParser;

use super::auth::{MAX_HEADER_BYTES, authenticate};
use crate::gateway::channels::Refused;
use crate::gateway::error::GatewayError;
use crate::gateway::inbound::{
    Context, Inbound, MAX_DISPLAY_NAME_LEN, MAX_ID_LEN, MAX_TEXT_LEN, RawInbound,
};

pub(crate) const CHANNEL: &str = "email";
/// Largest message fetched and read (headers, text and any attachment).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Most header fields read from one message.
const MAX_HEADERS: usize = 512;
/// Most `References` kept on a reply (the oldest and the newest ones).
pub const MAX_REFERENCES: usize = 20;
/// Longest subject kept for the reply.
const MAX_SUBJECT_BYTES: usize = 512;
/// Longest Message-ID used as it is for replay dedupe (the replay guard
/// takes 128 bytes); a longer one is used by its SHA-256.
const MAX_PLAIN_EVENT_ID: usize = 120;

/// What the channel's settings say about its mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The channel's name in `[channels]`, stamped on its messages.
    pub channel: String,
    /// The receiving server's authserv-id.
    pub authserv_id: String,
    /// Lowercased; messages without it in the subject are not for us.
    pub subject_filter: Option<String>,
    /// The appliance's own address (lowercased): its own mail is ignored.
    pub own_address: String,
}

/// Where the answer to a message goes, so it keeps the thread.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Thread {
    /// The message's `Message-ID` (with its angle brackets), if it had one.
    pub message_id: Option<String>,
    /// Its `References`, then its Message-ID: the reply's `References`
    /// (bounded to [`MAX_REFERENCES`]).
    pub references: Vec<String>,
    /// `Re: ` and the message's subject (never `Re: Re: `).
    pub subject: String,
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    /// An authenticated sender's message, to dispatch.
    Message {
        /// For replay dedupe: the Message-ID (or its SHA-256); `None` when the
        /// message has none (the transport uses its mailbox position).
        event_id: Option<String>,
        inbound: Inbound,
        thread: Thread,
    },
    /// Not for the appliance (the subject filter): left unread.
    NotForUs,
    /// Automatic or the appliance's own: marked read, nothing else.
    Ignored(&'static str),
    /// A sender the receiving server did not vouch for: audited, marked read.
    Refused(Refused),
}

/// Reads one raw message (RFC 5322 bytes as fetched).
pub fn parse_message(raw: &[u8], rules: &Rules) -> Result<Mail, GatewayError> {
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(malformed(format!(
            "message of {} bytes; at most {MAX_MESSAGE_BYTES} are read",
            raw.len()
        )));
    }
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| malformed("not an e-mail message"))?;
    let top = msg
        .parts
        .first()
        .ok_or_else(|| malformed("not an e-mail message"))?;
    if top.headers.len() > MAX_HEADERS {
        return Err(malformed(format!("more than {MAX_HEADERS} header fields")));
    }
    // Every header in order, its raw value (lossily decoded, so none is left
    // out: a skipped one could let a forged Authentication-Results below it
    // count).
    let headers: Vec<(String, String)> = top
        .headers
        .iter()
        .map(|h| {
            let value = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            (
                h.name.as_str().to_string(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect();
    let named = |name: &'static str| named(&headers, name);
    let from_values: Vec<&str> = named("From").collect();
    let [from_raw] = from_values[..] else {
        return Err(malformed(format!(
            "{} From header fields; exactly one is read",
            from_values.len()
        )));
    };
    if from_raw.len() > MAX_HEADER_BYTES {
        return Err(malformed("a From header longer than 8 KiB"));
    }
    let address = match msg.from().and_then(|a| a.as_list()) {
        Some([one]) => one.address().unwrap_or_default().trim().to_lowercase(),
        _ => return Err(malformed("From does not hold exactly one address")),
    };
    let display_name = msg.from().and_then(|a| a.first()).and_then(|a| a.name());

    if is_automatic(&headers)
        || address.starts_with("mailer-daemon@")
        || address.starts_with("postmaster@")
    {
        return Ok(Mail::Ignored("an automatic message"));
    }
    if address == rules.own_address {
        return Ok(Mail::Ignored("the appliance's own message"));
    }
    let subject = msg.subject().unwrap_or_default();
    if let Some(filter) = &rules.subject_filter
        && !subject.to_lowercase().contains(filter.as_str())
    {
        return Ok(Mail::NotForUs);
    }

    let refused = |detail: String| {
        Ok(Mail::Refused(Refused {
            reason: "sender_not_authenticated",
            detail: format!("{detail} (From claimed {})", claimed(&address)),
            sender: None,
            chat: None,
        }))
    };
    let domain = match authenticate(
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        from_raw,
        &rules.authserv_id,
    ) {
        Ok((_proof, domain)) => domain,
        Err(why) => return refused(why.to_string()),
    };
    // The address mail-parser read must be the one the check vouched for:
    // two parsers disagreeing on a crafted From must not admit anyone.
    match address.rsplit_once('@') {
        Some((local, d)) if !local.is_empty() && d.trim_end_matches('.') == domain => {}
        _ => {
            return refused(format!(
                "sender not authenticated: the From address is not at {domain}, the domain \
                 the server vouched for"
            ));
        }
    }
    if address.len() > MAX_ID_LEN || address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(malformed("the From address is not a usable id"));
    }

    let body = msg.body_text(0).unwrap_or_default();
    let text = strip_quoted(&body);
    if text.len() > MAX_TEXT_LEN {
        return Err(malformed(format!(
            "a text of {} bytes; at most {MAX_TEXT_LEN} are read",
            text.len()
        )));
    }
    let sender_name = display_name
        .map(|n| {
            bounded(
                &n.chars().filter(|c| !c.is_control()).collect::<String>(),
                MAX_DISPLAY_NAME_LEN,
            )
        })
        .filter(|n| !n.trim().is_empty());

    let message_id = msg.message_id().and_then(message_id_token);
    let mut references: Vec<String> = named("References")
        .flat_map(str::split_whitespace)
        .filter_map(message_id_token)
        .collect();
    references.extend(message_id.clone());
    if references.len() > MAX_REFERENCES {
        // RFC 5322 §3.6.4: keep the first (the thread's root) and the newest.
        let keep_tail = references.len() - (MAX_REFERENCES - 1);
        references.drain(1..keep_tail);
    }
    let event_id = message_id.as_deref().map(event_id);
    let inbound = Inbound::try_from(RawInbound {
        channel: rules.channel.clone(),
        account: None,
        sender: address.clone(),
        sender_name,
        chat: address,
        context: Context::Dm,
        mentions_bot: false,
        text,
        attachments: Vec::new(),
    })?;
    Ok(Mail::Message {
        event_id,
        inbound,
        thread: Thread {
            message_id: message_id.map(|m| format!("<{m}>")),
            references: references.into_iter().map(|r| format!("<{r}>")).collect(),
            subject: reply_subject(subject),
        },
    })
}

fn malformed(reason: impl Into<String>) -> GatewayError {
    GatewayError::parse(CHANNEL, reason)
}

/// The values of the header fields called `name`, in order.
fn named<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// RFC 3834: `Auto-Submitted` other than `no` is automatic, and so are a
/// mailing list's and bulk mail (`List-Id`, `Precedence: bulk|junk|list`).
fn is_automatic(headers: &[(String, String)]) -> bool {
    named(headers, "Auto-Submitted").any(|v| !v.trim().eq_ignore_ascii_case("no"))
        || named(headers, "List-Id").next().is_some()
        || named(headers, "Precedence").any(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "bulk" | "junk" | "list"
            )
        })
}

/// A claimed (unverified) address for the audit detail: quoted, bounded.
fn claimed(address: &str) -> String {
    format!("{:?}", bounded(address, 128))
}

/// `s` cut to at most `max` bytes at a character boundary.
fn bounded(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A message id without its angle brackets, if it is one token of printable
/// ASCII holding an `@` (anything else is not carried into a reply).
fn message_id_token(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = !id.is_empty()
        && id.len() <= 250
        && id.contains('@')
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\'));
    ok.then(|| id.to_string())
}

/// The replay-guard id of a Message-ID.
fn event_id(message_id: &str) -> String {
    if message_id.len() <= MAX_PLAIN_EVENT_ID {
        format!("<{message_id}>")
    } else {
        use sha2::{Digest, Sha256};
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(message_id.as_bytes()))
        )
    }
}

/// `Re: ` and the subject, once (`Re: Re: x` and `RE: x` become `Re: x`),
/// without line breaks, bounded.
pub fn reply_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.get(..3).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("re:") => s = s[3..].trim_start(),
            _ => break,
        }
    }
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("Re: {}", bounded(clean.trim(), MAX_SUBJECT_BYTES))
}

/// The new text of a reply: up to the signature (`-- `), without quoted
/// lines (`>`) and the `On … wrote:` line introducing them.
pub fn strip_quoted(body: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line == "-- " {
            break;
        }
        if line.trim_start().starts_with('>') {
            if out
                .last()
                .is_some_and(|l| l.trim_end().ends_with("wrote:") || l.trim().is_empty())
            {
                while out
                    .last()
                    .is_some_and(|l| l.trim().is_empty() || l.trim_end().ends_with("wrote:"))
                {
                    out.pop();
                }
            }
            continue;
        }
        out.push(line);
    }
    out.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            channel: "email".into(),
            authserv_id: "mx.owner.example".into(),
            subject_filter: None,
            own_address: "bot@owner.example".into(),
        }
    }

    fn mail(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}")
            .replace("\n", "\r\n")
            .replace("\r\r", "\r")
            .into_bytes()
    }

    const PASS: &str =
        "Authentication-Results: mx.owner.example; dmarc=pass header.from=example.com";

    #[test]
    fn an_authenticated_message_is_a_dm_of_its_lowercased_address() {
        let raw = mail(
            &format!(
                "{PASS}\nFrom: \"Alice (work)\" <Alice@Example.COM>\nTo: bot@owner.example\n\
                 Cc: carol@example.com\nSubject: Re: RE: status\nMessage-ID: <m1@example.com>\n\
                 References: <r0@example.com> <r1@example.com>"
            ),
            "Please check.\n\nOn Mon, Bob wrote:\n> old\n> text\n-- \nAlice",
        );
        let Mail::Message {
            event_id,
            inbound,
            thread,
        } = parse_message(&raw, &rules()).unwrap()
        else {
            panic!()
        };
        assert_eq!(inbound.sender(), "alice@example.com");
        assert_eq!(inbound.chat(), "alice@example.com");
        assert_eq!(inbound.context(), Context::Dm);
        assert_eq!(inbound.sender_name(), Some("Alice (work)"));
        assert_eq!(inbound.text(), "Please check.");
        assert_eq!(event_id.as_deref(), Some("<m1@example.com>"));
        assert_eq!(thread.message_id.as_deref(), Some("<m1@example.com>"));
        assert_eq!(
            thread.references,
            ["<r0@example.com>", "<r1@example.com>", "<m1@example.com>"]
        );
        assert_eq!(thread.subject, "Re: status");
    }

    #[test]
    fn refusals_ignores_and_routing() {
        let r = rules();
        // No server header: refused, with the claimed address in the detail.
        let raw = mail("From: ceo@example.com\nSubject: wire money", "now");
        let Mail::Refused(refused) = parse_message(&raw, &r).unwrap() else {
            panic!()
        };
        assert_eq!(refused.reason, "sender_not_authenticated");
        assert!(refused.detail.contains("no Authentication-Results"));
        assert!(refused.detail.contains("\"ceo@example.com\""));
        assert_eq!(refused.sender, None);
        // Automatic and own mail.
        for h in [
            "Auto-Submitted: auto-replied",
            "Precedence: bulk",
            "List-Id: <l.example.com>",
        ] {
            let raw = mail(&format!("{PASS}\nFrom: a@example.com\n{h}"), "x");
            assert_eq!(
                parse_message(&raw, &r).unwrap(),
                Mail::Ignored("an automatic message")
            );
        }
        let raw = mail("From: MAILER-DAEMON@example.com", "bounce");
        assert!(matches!(parse_message(&raw, &r).unwrap(), Mail::Ignored(_)));
        let raw = mail("From: Bot <BOT@owner.example>", "me");
        assert!(matches!(parse_message(&raw, &r).unwrap(), Mail::Ignored(_)));
        // The subject filter routes: others are not for us, a match is still checked.
        let r = Rules {
            subject_filter: Some("[cowork]".into()),
            ..rules()
        };
        let raw = mail(
            &format!("{PASS}\nFrom: a@example.com\nSubject: lunch?"),
            "x",
        );
        assert_eq!(parse_message(&raw, &r).unwrap(), Mail::NotForUs);
        let raw = mail("From: a@example.com\nSubject: [CoWork] do it", "x");
        assert!(matches!(parse_message(&raw, &r).unwrap(), Mail::Refused(_)));
    }

    #[test]
    fn hostile_messages_are_malformed_not_admitted() {
        let r = rules();
        let big = mail(
            &format!("{PASS}\nFrom: a@example.com"),
            &"x".repeat(MAX_MESSAGE_BYTES),
        );
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (big, "at most"),
            (mail(&format!("{PASS}\nSubject: x"), "x"), "0 From"),
            (
                mail(
                    &format!("{PASS}\nFrom: a@example.com\nFrom: b@example.com"),
                    "x",
                ),
                "2 From",
            ),
            (
                mail(&format!("{PASS}\nFrom: a@example.com, b@example.com"), "x"),
                "exactly one address",
            ),
            (
                mail(
                    &format!("{PASS}\nFrom: a@example.com"),
                    &"y".repeat(MAX_TEXT_LEN + 1),
                ),
                "a text of",
            ),
        ];
        for (raw, why) in cases {
            let e = parse_message(&raw, &r).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
        // Two parsers must agree on the address the server vouched for.
        let raw = mail(
            &format!("{PASS}\nFrom: \"a@example.com\" <x@evil.example>"),
            "x",
        );
        assert!(matches!(parse_message(&raw, &r).unwrap(), Mail::Refused(_)));
        // A forged pass below the server's own fail does not count, even when
        // the server's header is not UTF-8.
        let mut raw = b"Authentication-Results: mx.owner.example; dmarc=fail header.from=example.com (\xff)\r\n".to_vec();
        raw.extend(mail(&format!("{PASS}\nFrom: a@example.com"), "x"));
        assert!(matches!(parse_message(&raw, &r).unwrap(), Mail::Refused(_)));
        // Junk never panics.
        for junk in [
            &b""[..],
            b"\r\n\r\n",
            b"\xff\xfe\x00",
            b"From:\r\n\r\n",
            b"From: <>\r\n\r\n",
        ] {
            let _ = parse_message(junk, &r);
        }
    }

    #[test]
    fn subjects_ids_and_quotes() {
        assert_eq!(reply_subject("RE: re:Re: x\r\ny"), "Re: x  y");
        assert_eq!(reply_subject(""), "Re: ");
        assert_eq!(message_id_token(" <a@b> "), Some("a@b".into()));
        assert_eq!(message_id_token("<a b@c>"), None);
        assert_eq!(message_id_token("<nobrackets>"), None);
        assert!(event_id(&format!("{}@x", "a".repeat(200))).starts_with("sha256:"));
        assert_eq!(strip_quoted("new\r\n\r\n> old\r\nmore"), "new\nmore");
        assert_eq!(strip_quoted("> only quoted"), "");
    }
}
