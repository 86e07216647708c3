//! iMessage through `imsg rpc` on the owner's Mac (issue 21): the Linux
//! appliance serves a Mac's Messages by running `imsg rpc` (JSON-RPC 2.0
//! over stdio) there over SSH ([`ssh`]: in process, the Mac on the local
//! network only, its host key pinned, the appliance's own ed25519 key from
//! the vault, generated and shown by the settings page). The session
//! ([`session`]) watches every chat and sends the answers; messages become
//! [`Inbound`](crate::gateway::inbound::Inbound) by [`parse`]: senders are
//! handles (E.164 numbers, lowercase e-mail addresses), chats imsg's chat
//! ids, the owner's own messages (`is_from_me`) never prompts, and the
//! optional `contacts` list admits only those handles, beside pairing.
//! `docs/channels/imessage.md` says what the owner sets up on the Mac.

pub mod client;
pub mod parse;
pub mod session;
pub mod ssh;

use std::sync::Arc;

pub use client::{Chunk, IMESSAGE_MAX_CHARS, ImessageSender, QUEUE_CHUNKS, send_request};
pub use parse::{
    Imessage, ImessageEvent, MAX_EVENT_AGE_SECS, MAX_LINE_BYTES, RpcLine, is_chat_id,
    is_imessage_id, normalise_handle, parse_line,
};
pub use session::{Carry, ImessageConnection, SessionEnd, run_connection, session};
pub use ssh::{KEY_COMMENT, SshTarget, generate_key, parse_host_key, parse_private_key};

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::{TransportKind, TransportSettings};

/// The SSH port unless `port` says otherwise.
pub const DEFAULT_PORT: u16 = 22;
/// The `imsg` command unless `imsg_path` says otherwise (on the PATH of the
/// Mac user's non-interactive SSH login).
pub const DEFAULT_IMSG: &str = "imsg";

/// One line as a session reads it, then a message through `rules` at `now`:
/// the fuzz target's entry (`crate::fuzzing`).
pub(crate) fn decode_line(
    text: &str,
    rules: &Imessage,
    now: i64,
) -> Result<Option<ImessageEvent>, GatewayError> {
    match parse_line(text).map_err(|e| GatewayError::parse(parse::CHANNEL, e))? {
        RpcLine::Message(data) => rules.message(data, now).map(Some),
        _ => Ok(None),
    }
}

/// Whether `host` is a local-network host (an address, `NAME.local`,
/// `localhost`) as `crate::net::is_lan` judges a URL's.
fn is_lan_host(host: &str) -> bool {
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    !host.is_empty()
        && !host.contains(['/', '@', '?', '#', ' '])
        && reqwest::Url::parse(&format!("ssh://{bracketed}"))
            .is_ok_and(|url| crate::net::is_lan(&url))
}

/// The iMessage settings' checks (by `check-config` and the settings page),
/// as the field and the problem.
pub fn check_settings(t: &TransportSettings) -> Result<(), (&'static str, String)> {
    if let Some(host) = &t.host
        && !is_lan_host(host)
    {
        return Err((
            "transport.host",
            format!(
                "host {host:?} is not a local-network address: only loopback, 10/8, \
                 172.16/12, 192.168/16, fc00::/7, fe80::/10 or a NAME.local host"
            ),
        ));
    }
    if let Some(key) = &t.host_key {
        parse_host_key(key).map_err(|e| ("transport.host_key", format!("host_key: {e}")))?;
    }
    if let Some(path) = &t.imsg_path
        && !ssh::is_command_path(path)
    {
        return Err((
            "transport.imsg_path",
            format!(
                "imsg_path {path:?}: one word of A-Z a-z 0-9 / . _ - (the imsg command on the Mac)"
            ),
        ));
    }
    if let Some(user) = &t.user
        && !is_mac_user(user)
    {
        return Err((
            "transport.user",
            format!("user {user:?} is not a Mac short user name (a-z A-Z 0-9 . _ -)"),
        ));
    }
    if t.port == Some(0) {
        return Err(("transport.port", "port 0 is not a port".into()));
    }
    Imessage::new(&t.contacts, "").map_err(|e| ("transport.contacts", format!("contacts: {e}")))?;
    Ok(())
}

fn is_mac_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What the private key secret holds.
const KEY: &str = "the appliance's SSH private key for the Mac (OpenSSH form): generated on the channel's settings page, which shows its public key";

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "imessage",
            transports: &[TransportSpec {
                name: "imessage",
                kind: TransportKind::Imessage,
                webhook_route: None,
                // Not an HTTP API: the Mac is `host`.
                api_base: "",
                required: &["host", "user", "host_key", "key_secret"],
                optional: &["port", "imsg_path", "contacts", "bot_user", "public_key"],
                secrets: &[("key_secret", KEY)],
                id_shape: Some((
                    is_imessage_id,
                    "an iMessage handle (+15551234567 or a lowercase e-mail address) or an imsg chat id (decimal); not a contact name",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let settings = |reason: String| GatewayError::Settings {
            channel: start.name.to_string(),
            field: "transport",
            reason,
        };
        check_settings(t).map_err(|(_, reason)| settings(reason))?;
        let host = start.required("host", &t.host)?.to_string();
        let user = start.required("user", &t.user)?.to_string();
        let host_key = parse_host_key(start.required("host_key", &t.host_key)?)
            .map_err(|e| settings(format!("host_key: {e}")))?;
        let secret = start.secret("key_secret", &t.key_secret)?;
        let key =
            parse_private_key(secret.expose()).map_err(|e| settings(format!("key_secret: {e}")))?;
        let imsg = t.imsg_path.as_deref().unwrap_or(DEFAULT_IMSG);
        let rules = Imessage::new(&t.contacts, t.bot_user.as_deref().unwrap_or_default())
            .map_err(|e| settings(format!("contacts: {e}")))?
            .named(start.name);
        let (sender, rx) = ImessageSender::new();
        let conn = Arc::new(ImessageConnection {
            target: SshTarget {
                host,
                port: t.port.unwrap_or(DEFAULT_PORT),
                user,
                host_key,
            },
            key: Arc::new(key),
            command: format!("{imsg} rpc"),
            rules,
        });
        let dispatcher = Arc::clone(start.dispatcher);
        Ok(Started {
            outbound: Arc::new(sender),
            inbound: InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_connection(
                    conn,
                    dispatcher,
                    Carry::new(rx),
                    pacer,
                    stop,
                ))
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_keep_the_mac_on_the_lan_and_the_words_plain() {
        let ok = TransportSettings {
            kind: TransportKind::Imessage,
            host: Some("192.168.1.20".into()),
            user: Some("owner".into()),
            host_key: Some(generate_key().unwrap().1),
            imsg_path: Some("/opt/homebrew/bin/imsg".into()),
            contacts: vec!["+15551234567".into()],
            ..TransportSettings::default()
        };
        assert_eq!(check_settings(&ok), Ok(()));
        for host in ["mac.local", "127.0.0.1", "::1", "fe80::1", "10.0.0.2"] {
            let t = TransportSettings {
                host: Some(host.into()),
                ..ok.clone()
            };
            assert_eq!(check_settings(&t), Ok(()), "{host}");
        }
        let bad = [
            TransportSettings {
                host: Some("mac.example.com".into()),
                ..ok.clone()
            },
            TransportSettings {
                host: Some("8.8.8.8".into()),
                ..ok.clone()
            },
            TransportSettings {
                host: Some("user@10.0.0.2".into()),
                ..ok.clone()
            },
            TransportSettings {
                host: Some("10.0.0.2/x".into()),
                ..ok.clone()
            },
            TransportSettings {
                host_key: Some("ssh-rsa AAAA".into()),
                ..ok.clone()
            },
            TransportSettings {
                imsg_path: Some("imsg; reboot".into()),
                ..ok.clone()
            },
            TransportSettings {
                user: Some("-oProxyCommand=x".into()),
                ..ok.clone()
            },
            TransportSettings {
                port: Some(0),
                ..ok.clone()
            },
            TransportSettings {
                contacts: vec!["Ada".into()],
                ..ok.clone()
            },
        ];
        for t in bad {
            assert!(check_settings(&t).is_err(), "{t:?}");
        }
    }
}
