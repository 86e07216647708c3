//! E-mail (issue 21): the appliance reads a dedicated mailbox over IMAP
//! ([`imap`]: TLS, IDLE with a fallback poll) and answers over SMTP
//! submission ([`smtp`]: TLS or required STARTTLS), logged in with the
//! mailbox's app password from the vault. A sender is admitted only when the
//! receiving server vouched for the From domain ([`auth`]) and the address
//! is paired or allowlisted; [`parse`] decides what each message is.
//! `docs/channels/email.md` says what the owner sets up.

pub mod auth;
pub mod imap;
pub mod parse;
pub mod smtp;

use std::sync::Arc;

pub use auth::{AuthResults, MethodResult, ParseError, Proof, Unauthenticated, authenticate};
pub use imap::{CheckStats, ImapConfig, Inbox};
pub use parse::{MAX_MESSAGE_BYTES, Mail, Rules, Thread, parse_message};
pub use smtp::SmtpSender;

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::{IMAP_SCHEMES, SMTP_SCHEMES, TransportKind, mail_server};

/// The folder read unless `mailbox` says otherwise.
pub const DEFAULT_MAILBOX: &str = "INBOX";

/// An e-mail address as the channel's ids hold it: lowercase, one `@` with
/// something on each side, no whitespace.
pub fn is_address(id: &str) -> bool {
    id.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c.is_uppercase())
}

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "email",
            transports: &[TransportSpec {
                name: "email",
                kind: TransportKind::Email,
                webhook_route: None,
                // No default server: the owner names the mailbox's.
                api_base: "",
                required: &[
                    "imap_url",
                    "smtp_url",
                    "username",
                    "password_secret",
                    "authserv_id",
                ],
                optional: &["address", "subject_filter", "mailbox", "ca_file"],
                secrets: &[(
                    "password_secret",
                    "the mailbox's app password (never the account's main password)",
                )],
                id_shape: Some((is_address, "an e-mail address in lowercase")),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let server = |key: &'static str, value: &Option<String>, schemes| {
            mail_server(start.required(key, value)?, schemes).map_err(|reason| {
                GatewayError::Settings {
                    channel: start.name.to_string(),
                    field: "transport",
                    reason: format!("{key}: {reason}"),
                }
            })
        };
        let imap_server = server("imap_url", &t.imap_url, IMAP_SCHEMES)?;
        let smtp_server = server("smtp_url", &t.smtp_url, SMTP_SCHEMES)?;
        let username = start.required("username", &t.username)?;
        let password = start.secret("password_secret", &t.password_secret)?;
        let authserv_id = start.required("authserv_id", &t.authserv_id)?;
        let address = t.address.as_deref().unwrap_or(username);
        let extra_roots = start.http()?.extra_root_pem;
        let sender = Arc::new(SmtpSender::new(
            &smtp_server,
            username,
            &password,
            address,
            extra_roots.as_deref(),
        )?);
        let tls = start.tls()?;
        let inbox = Inbox::new(
            ImapConfig {
                server: imap_server,
                username: username.to_string(),
                password,
                mailbox: t.mailbox.clone().unwrap_or_else(|| DEFAULT_MAILBOX.into()),
                tls: Arc::new(tls),
            },
            Rules {
                channel: start.name.to_string(),
                authserv_id: authserv_id.to_string(),
                subject_filter: t.subject_filter.as_deref().map(str::to_lowercase),
                own_address: address.to_lowercase(),
            },
            Arc::clone(&sender),
            Arc::clone(start.dispatcher),
        );
        Ok(Started {
            outbound: sender,
            inbound: InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(inbox.run(pacer, stop))
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_ids() {
        assert!(is_address("alice@example.com"));
        for bad in [
            "Alice@example.com",
            "alice",
            "@example.com",
            "a@",
            "a b@c",
            "a@b@c",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }
}
