//! Twitch chat (issue 21): the bot's account reaches Twitch's IRC interface
//! out over TLS ([`socket`]: `ircs://irc.chat.twitch.tv:6697` unless
//! `server` says otherwise), logged in with a user access token from the
//! vault (scopes `chat:read chat:edit` only). It joins only the channels of
//! `channels` (those the owner moderates; an empty list starts nothing);
//! each is a group chat whose id is its `room-id`, and a sender is known by
//! the `user-id` tag only ([`parse`]). Answers are lines of 500 characters
//! replying to the message, at most 20 in 30 s ([`client`]). Whispers are
//! not implemented: `WHISPER` lines are ignored, and no setting turns them
//! on. `docs/channels/twitch.md` says what the owner sets up.

pub mod client;
pub mod irc;
pub mod parse;
pub mod socket;

use std::sync::Arc;

pub use crate::gateway::settings::MailServer as IrcServer;
pub use client::{
    QUEUE_LINES, SendWindow, TWITCH_MAX_CHARS, TwitchSender, WINDOW, WINDOW_MESSAGES,
};
pub use irc::{Line, MAX_LINE_BYTES, parse_line};
pub use parse::{Twitch, TwitchEvent, is_login, is_twitch_id};
pub use socket::{Outgoing, SessionEnd, TwitchConnection, run_connection};

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::{IRC_SCHEMES, TransportKind, mail_server};

/// Twitch's IRC interface.
pub const DEFAULT_SERVER: &str = "ircs://irc.chat.twitch.tv:6697";

/// One line as a session reads it, then a `PRIVMSG` through `rules` (the
/// bot's own id `own_id`): the fuzz target's entry (`crate::fuzzing`).
pub(crate) fn decode_line(
    text: &str,
    rules: &Twitch,
    own_id: Option<&str>,
) -> Result<Option<TwitchEvent>, GatewayError> {
    let line = parse_line(text).map_err(|e| GatewayError::parse(parse::CHANNEL, e))?;
    if line.command == "PRIVMSG" {
        rules.privmsg(&line, own_id).map(Some)
    } else {
        Ok(None)
    }
}

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "twitch",
            transports: &[TransportSpec {
                name: "twitch",
                kind: TransportKind::Twitch,
                webhook_route: None,
                // Not an HTTP API: the IRC server is `server`.
                api_base: "",
                required: &["token_secret", "bot_user", "channels"],
                optional: &["server", "ca_file"],
                secrets: &[(
                    "token_secret",
                    "the bot account's user access token (scopes chat:read chat:edit only)",
                )],
                id_shape: Some((
                    is_twitch_id,
                    "a Twitch user id (decimal digits, as the user-id tag and the API show it; not a login name)",
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
        let server = mail_server(t.server.as_deref().unwrap_or(DEFAULT_SERVER), IRC_SCHEMES)
            .map_err(|r| settings(format!("server: {r}")))?;
        let login = start.required("bot_user", &t.bot_user)?;
        let rules = Twitch::new(login, &t.channels)
            .map_err(|e| match e {
                GatewayError::Settings { reason, .. } => settings(reason),
                other => other,
            })?
            .named(start.name);
        let token = start.secret("token_secret", &t.token_secret)?;
        let tls = start.tls()?;
        let (sender, rx) = TwitchSender::new();
        let sender = Arc::new(sender);
        let conn = Arc::new(TwitchConnection {
            server,
            tls: Arc::new(tls),
            token,
            rules,
            sender: Arc::clone(&sender),
        });
        let dispatcher = Arc::clone(start.dispatcher);
        Ok(Started {
            outbound: sender,
            inbound: InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_connection(
                    conn,
                    dispatcher,
                    Outgoing::new(rx),
                    pacer,
                    stop,
                ))
            })),
        })
    }
}
