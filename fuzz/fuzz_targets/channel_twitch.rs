//! Twitch IRC lines (the bot's TLS connection): IRCv3 tags, a prefix, a
//! command and parameters, as a session parses them, `PRIVMSG` through the
//! rules of one served channel with the bot's own id known.
//! Asserts: never a panic; a message carries the channel's name, a Twitch
//! user id as sender (never the bot's) and a room id as chat, came in the
//! served channel, and has a plain message id; a refusal names only ids.
#![no_main]

use std::sync::OnceLock;

use cowork::gateway::channels::twitch::{Twitch, TwitchEvent, is_twitch_id};
use libfuzzer_sys::fuzz_target;

const BOT_ID: &str = "999";

fn rules() -> &'static Twitch {
    static R: OnceLock<Twitch> = OnceLock::new();
    R.get_or_init(|| {
        Twitch::new("cowbot", &["#owner".to_string()])
            .expect("rules")
            .named("tw-fuzz")
    })
}

fuzz_target!(|data: &[u8]| {
    // A session reads UTF-8 lines only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match cowork::fuzzing::twitch_line(text, rules(), Some(BOT_ID)) {
        Ok(Some(TwitchEvent::Message {
            message_id,
            channel,
            inbound,
        })) => {
            assert_eq!(inbound.channel(), "tw-fuzz");
            assert_eq!(channel, "owner");
            assert!(is_twitch_id(inbound.sender()) && is_twitch_id(inbound.chat()));
            assert_ne!(
                inbound.sender(),
                BOT_ID,
                "the bot's own message became a message"
            );
            assert!(
                !message_id.is_empty()
                    && message_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            );
        }
        Ok(Some(TwitchEvent::Refused(r))) => {
            assert!(r.sender.iter().chain(&r.chat).all(|id| is_twitch_id(id)));
        }
        _ => {}
    }
});
