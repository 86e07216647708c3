//! The channel's way out: SMTP submission with the mailbox's login and app
//! password, over TLS from the start (`smtps://`, 465) or STARTTLS that must
//! succeed (`smtp+starttls://`, 587); never in plaintext. An answer to a chat
//! (an address) goes in the thread its last message came in: `Re: ` its
//! subject, `In-Reply-To` its Message-ID, `References` its references and
//! it; and is marked `Auto-Submitted: auto-replied` (RFC 3834), so other
//! robots do not answer it in turn.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::parse::{CHANNEL, Thread};
use crate::gateway::channels::Redacted;
use crate::gateway::error::GatewayError;
use crate::gateway::outbound::Outbound;
use crate::gateway::settings::MailServer;
use crate::gateway::sinks::BoxFuture;

/// Longest answer sent in one mail; a longer one is cut with a note.
pub const MAX_REPLY_BYTES: usize = 256 * 1024;
/// Most chats whose last thread is kept (past it the map starts over: an
/// answer then starts a new thread, nothing worse).
const MAX_THREADS: usize = 1024;
/// Subject of an answer to a chat whose thread is not known (after a restart).
const NEW_SUBJECT: &str = "Message from CoWork";
/// Connecting, the TLS handshake and each SMTP command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends answers by SMTP submission.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    threads: Mutex<HashMap<String, Thread>>,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

fn api_error(operation: &'static str, reason: impl std::fmt::Display) -> GatewayError {
    GatewayError::ChannelApi {
        channel: CHANNEL,
        operation,
        reason: reason.to_string(),
    }
}

impl SmtpSender {
    /// `server` from `smtp_url`; `extra_root_pem`: a configured `ca_file`.
    pub fn new(
        server: &MailServer,
        username: &str,
        password: &Redacted,
        from: &str,
        extra_root_pem: Option<&[u8]>,
    ) -> Result<SmtpSender, GatewayError> {
        let from: Address = from
            .parse()
            .map_err(|e| api_error("smtp setup", format!("address {from:?}: {e}")))?;
        let mut tls = TlsParameters::builder(server.host.clone());
        if let Some(pem) = extra_root_pem {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| api_error("smtp setup", format!("ca_file: {e}")))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls.build_rustls().map_err(|e| api_error("smtp setup", e))?;
        let tls = match server.scheme {
            "smtps" => Tls::Wrapper(tls),
            "smtp+starttls" => Tls::Required(tls),
            other => {
                return Err(api_error(
                    "smtp setup",
                    format!("{other}:// is not an SMTP submission scheme"),
                ));
            }
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .credentials(Credentials::new(
                username.to_string(),
                password.expose().to_string(),
            ))
            .hello_name(ClientId::Domain(from.domain().to_string()))
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(SmtpSender {
            transport,
            from: Mailbox::new(None, from),
            threads: Mutex::new(HashMap::new()),
        })
    }

    /// `chat`'s last message came in `thread`: answers go there.
    pub fn note_thread(&self, chat: &str, thread: Thread) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        if threads.len() >= MAX_THREADS && !threads.contains_key(chat) {
            threads.clear();
        }
        threads.insert(chat.to_string(), thread);
    }

    /// The mail answering `chat` with `text` (for the tests: what is sent).
    pub fn compose(&self, chat: &str, text: &str) -> Result<Message, GatewayError> {
        let to: Address = chat
            .parse()
            .map_err(|e| api_error("compose", format!("chat {chat:?} is not an address: {e}")))?;
        let thread = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(chat)
            .cloned();
        let mut m = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .message_id(Some(format!(
                "<{}@{}>",
                super::super::unused_secret(),
                self.from.email.domain()
            )))
            .header(ContentType::TEXT_PLAIN)
            .header(AutoSubmitted);
        match thread {
            Some(t) => {
                m = m.subject(t.subject);
                if let Some(id) = t.message_id {
                    m = m.in_reply_to(id);
                }
                if !t.references.is_empty() {
                    m = m.references(t.references.join(" "));
                }
            }
            None => m = m.subject(NEW_SUBJECT),
        }
        m.body(bounded_reply(text))
            .map_err(|e| api_error("compose", e))
    }
}

/// `text`, cut to [`MAX_REPLY_BYTES`] with a note when longer.
fn bounded_reply(text: &str) -> String {
    if text.len() <= MAX_REPLY_BYTES {
        return text.to_string();
    }
    let mut end = MAX_REPLY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n\n[The answer was cut here: it is longer than {} KiB.]",
        &text[..end],
        MAX_REPLY_BYTES / 1024
    )
}

impl Outbound for SmtpSender {
    fn send<'a>(&'a self, chat: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            let mail = self.compose(chat, text)?;
            self.transport
                .send(mail)
                .await
                .map_err(|e| api_error("smtp send", e))?;
            Ok(())
        })
    }
}

/// `Auto-Submitted: auto-replied` (RFC 3834 §5).
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> SmtpSender {
        let server = MailServer {
            scheme: "smtps",
            host: "127.0.0.1".into(),
            port: 9,
        };
        SmtpSender::new(
            &server,
            "bot",
            &Redacted::from("pw".to_string()),
            "bot@owner.example",
            None,
        )
        .unwrap()
    }

    #[test]
    fn answers_keep_the_thread_and_are_marked_automatic() {
        let s = sender();
        s.note_thread(
            "alice@example.com",
            Thread {
                message_id: Some("<m2@example.com>".into()),
                references: vec!["<m1@example.com>".into(), "<m2@example.com>".into()],
                subject: "Re: status".into(),
            },
        );
        let m =
            String::from_utf8(s.compose("alice@example.com", "done").unwrap().formatted()).unwrap();
        for want in [
            "Subject: Re: status",
            "In-Reply-To: <m2@example.com>",
            "References: <m1@example.com> <m2@example.com>",
            "Auto-Submitted: auto-replied",
            "From: bot@owner.example",
            "To: alice@example.com",
        ] {
            assert!(m.contains(want), "{want}: {m}");
        }
        let m = String::from_utf8(s.compose("bob@example.com", "hi").unwrap().formatted()).unwrap();
        assert!(m.contains("Subject: Message from CoWork") && !m.contains("In-Reply-To"));
        assert!(s.compose("not an address", "x").is_err());
        let long = bounded_reply(&"é".repeat(MAX_REPLY_BYTES));
        assert!(long.len() < MAX_REPLY_BYTES + 100 && long.ends_with("256 KiB.]"));
    }
}
