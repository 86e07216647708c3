//! What a Twitch IRC line asks of the appliance. A `PRIVMSG` becomes an
//! [`Inbound`] only with Twitch's tags: the sender is the `user-id` tag
//! (decimal digits, stable across renames; never the login name, which the
//! prefix carries and anyone may later take), the chat is the `room-id` tag
//! (the channel's own user id, stable too; answers go to the `#channel`
//! the message came in, remembered by the client), the replay key is the
//! `id` tag. A Twitch channel is a group chat: the group policy and its
//! mention rule (`@botlogin`) apply. A line without those tags (a plain IRC
//! server, a forged line) is malformed; one in a channel outside `channels`
//! is refused (audited); the bot's own messages are ignored. Whispers are
//! not handled: `WHISPER` is ignored like any other command.

use crate::gateway::channels::Refused;
use crate::gateway::error::GatewayError;
use crate::gateway::inbound::{Context, Inbound, RawInbound};

use super::irc::{Line, is_plain_tag_value};

pub(crate) const CHANNEL: &str = "twitch";
/// Most channels one bot joins (Twitch lets a bot join 20 a 10 s).
pub const MAX_CHANNELS: usize = 20;

/// A Twitch user id: 1 to 20 decimal digits.
pub fn is_twitch_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// A Twitch login (a channel's name without `#`): 1 to 25 lowercase
/// letters, digits and `_`.
pub fn is_login(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 25
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What a line asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwitchEvent {
    /// A person's message: its id (the replay key), the `#channel` it came
    /// in, the message.
    Message {
        message_id: String,
        channel: String,
        inbound: Box<Inbound>,
    },
    /// An authentic message the owner did not allow (audited).
    Refused(Refused),
    /// Not a prompt (our own message).
    Ignored { reason: &'static str },
}

/// A Twitch channel's rules.
#[derive(Debug, Clone)]
pub struct Twitch {
    /// The configured channel served (stamped on its messages).
    channel: String,
    /// The bot's login.
    login: String,
    /// The Twitch channels joined, as logins without `#`.
    channels: Vec<String>,
}

impl Twitch {
    /// `login`: the bot's; `channels`: the channels it serves (with or
    /// without `#`, at least one, at most [`MAX_CHANNELS`]).
    pub fn new(login: &str, channels: &[String]) -> Result<Twitch, GatewayError> {
        let bad = |reason: String| GatewayError::Settings {
            channel: CHANNEL.to_string(),
            field: "transport",
            reason,
        };
        if !is_login(login) {
            return Err(bad(format!(
                "bot_user: {login:?} is not a Twitch login (lowercase letters, digits, _)"
            )));
        }
        if channels.is_empty() {
            return Err(bad(
                "channels is empty: name the Twitch channels the bot moderates".into(),
            ));
        }
        if channels.len() > MAX_CHANNELS {
            return Err(bad(format!("channels: at most {MAX_CHANNELS}")));
        }
        let mut names = Vec::new();
        for c in channels {
            let name = c.strip_prefix('#').unwrap_or(c);
            if !is_login(name) {
                return Err(bad(format!("channels: {c:?} is not a Twitch channel name")));
            }
            names.push(name.to_string());
        }
        Ok(Twitch {
            channel: CHANNEL.to_string(),
            login: login.to_string(),
            channels: names,
        })
    }

    /// Serves the channel configured as `channel`.
    pub fn named(mut self, channel: &str) -> Twitch {
        self.channel = channel.to_string();
        self
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    /// The Twitch channels joined (logins without `#`).
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// A `PRIVMSG` line; `own_id`: the bot's user id once Twitch said it
    /// (`GLOBALUSERSTATE`).
    pub fn privmsg(&self, line: &Line, own_id: Option<&str>) -> Result<TwitchEvent, GatewayError> {
        let bad = |what: &str| GatewayError::parse(CHANNEL, what.to_string());
        let (Some(target), Some(text)) = (line.param(0), line.param(1)) else {
            return Err(bad("PRIVMSG without a channel and a text"));
        };
        let name = target
            .strip_prefix('#')
            .filter(|n| is_login(n))
            .ok_or_else(|| bad("PRIVMSG to other than a #channel"))?;
        let sender = line
            .tag("user-id")
            .filter(|id| is_twitch_id(id))
            .ok_or_else(|| bad("PRIVMSG without a user-id tag (not from Twitch)"))?;
        let room = line
            .tag("room-id")
            .filter(|id| is_twitch_id(id))
            .ok_or_else(|| bad("PRIVMSG without a room-id tag"))?;
        let message_id = line
            .tag("id")
            .filter(|id| is_plain_tag_value(id))
            .ok_or_else(|| bad("PRIVMSG without an id tag"))?;
        if own_id == Some(sender) || line.source.as_deref() == Some(self.login.as_str()) {
            return Ok(TwitchEvent::Ignored {
                reason: "own message",
            });
        }
        if !self.channels.iter().any(|c| c == name) {
            return Ok(TwitchEvent::Refused(Refused {
                reason: "channel_not_allowed",
                detail: "the channel is not in channels".into(),
                sender: Some(sender.to_string()),
                chat: Some(room.to_string()),
            }));
        }
        // `/me waves` comes as a CTCP ACTION: the text between the markers.
        let text = text
            .strip_prefix("\u{1}ACTION ")
            .map(|t| t.strip_suffix('\u{1}').unwrap_or(t))
            .unwrap_or(text);
        let sender_name = line
            .tag("display-name")
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().filter(|c| !c.is_control()).take(64).collect());
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: None,
            sender: sender.to_string(),
            sender_name,
            chat: room.to_string(),
            context: Context::Group,
            mentions_bot: mentions(text, &self.login),
            text: text.to_string(),
            attachments: Vec::new(),
        })?;
        Ok(TwitchEvent::Message {
            message_id: message_id.to_string(),
            channel: name.to_string(),
            inbound: Box::new(inbound),
        })
    }
}

/// Whether `text` names `@login` (case-insensitive), the name ending where a
/// login cannot go on.
fn mentions(text: &str, login: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let needle = format!("@{login}");
    lower.match_indices(&needle).any(|(at, _)| {
        lower[at + needle.len()..]
            .bytes()
            .next()
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
    })
}

#[cfg(test)]
mod tests {
    use super::super::irc::parse_line;
    use super::*;

    fn twitch() -> Twitch {
        Twitch::new("cowbot", &["#owner".into(), "other".into()])
            .unwrap()
            .named("tw")
    }

    fn line(tags: &str, channel: &str, text: &str) -> Line {
        parse_line(&format!(
            "@{tags} :alice!alice@alice.tmi.twitch.tv PRIVMSG #{channel} :{text}"
        ))
        .unwrap()
    }

    const TAGS: &str = "display-name=Alice;id=abc-1;room-id=1000;user-id=42";

    #[test]
    fn a_message_by_user_id_in_the_room() {
        let TwitchEvent::Message {
            message_id,
            channel,
            inbound,
        } = twitch()
            .privmsg(&line(TAGS, "owner", "hey @CowBot, hi"), None)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((message_id.as_str(), channel.as_str()), ("abc-1", "owner"));
        assert_eq!((inbound.sender(), inbound.chat()), ("42", "1000"));
        assert_eq!(inbound.channel(), "tw");
        assert!(inbound.mentions_bot());
        let TwitchEvent::Message { inbound, .. } = twitch()
            .privmsg(&line(TAGS, "owner", "@cowbotx hi"), None)
            .unwrap()
        else {
            panic!()
        };
        assert!(!inbound.mentions_bot());
    }

    #[test]
    fn a_me_action_is_its_text() {
        let TwitchEvent::Message { inbound, .. } = twitch()
            .privmsg(
                &line(TAGS, "owner", "\u{1}ACTION waves at @cowbot\u{1}"),
                None,
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(inbound.text(), "waves at @cowbot");
        assert!(inbound.mentions_bot());
    }

    #[test]
    fn refusals_and_ignores() {
        assert!(matches!(
            twitch().privmsg(&line(TAGS, "stranger", "hi"), None),
            Ok(TwitchEvent::Refused(Refused {
                reason: "channel_not_allowed",
                ..
            }))
        ));
        assert!(matches!(
            twitch().privmsg(&line(TAGS, "owner", "hi"), Some("42")),
            Ok(TwitchEvent::Ignored { .. })
        ));
        for tags in [
            "id=abc-1;room-id=1000",
            "id=abc-1;room-id=1000;user-id=alice",
            "id=abc-1;user-id=42",
            "room-id=1000;user-id=42",
            "id=a\\sb;room-id=1000;user-id=42",
        ] {
            assert!(
                twitch().privmsg(&line(tags, "owner", "hi"), None).is_err(),
                "{tags}"
            );
        }
        let plain = parse_line(":alice!a@h PRIVMSG #owner :hi").unwrap();
        assert!(twitch().privmsg(&plain, None).is_err());
    }

    #[test]
    fn settings() {
        assert!(Twitch::new("cowbot", &[]).is_err());
        assert!(Twitch::new("CowBot", &["owner".into()]).is_err());
        assert!(Twitch::new("cowbot", &["#Owner".into()]).is_err());
        assert!(Twitch::new("cowbot", &["own er".into()]).is_err());
        assert_eq!(twitch().channels(), ["owner", "other"]);
    }
}
