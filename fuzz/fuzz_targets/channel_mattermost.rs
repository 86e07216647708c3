//! Mattermost WebSocket frames (the bot's socket): the challenge's answer,
//! `hello`, and `posted` events whose post is a JSON string inside the
//! event, as a session decodes them, with one team and one channel allowed.
//! Asserts: never a panic; a message is never the bot's own, and carries the
//! channel's name, Mattermost ids as sender, chat and thread, and (in a team
//! channel) the allowed team; a refusal names only id-shaped values.
#![no_main]

use std::sync::OnceLock;

use cowork::gateway::channels::mattermost::{Mattermost, MattermostEvent, Me, is_mattermost_id};
use libfuzzer_sys::fuzz_target;

const TEAM: &str = "7eam7eam7eam7eam7eam7eam7e";
const LISTED: &str = "1i5ted1i5ted1i5ted1i5ted1i";
const BOT: &str = "b0tb0tb0tb0tb0tb0tb0tb0tb0";

fn fixture() -> &'static (Mattermost, Me) {
    static F: OnceLock<(Mattermost, Me)> = OnceLock::new();
    F.get_or_init(|| {
        let parser = Mattermost::new(&[TEAM.to_string()], &[LISTED.to_string()])
            .expect("parser")
            .named("mm-fuzz");
        let me = Me {
            id: BOT.to_string(),
            username: "cowork".to_string(),
            is_bot: true,
        };
        (parser, me)
    })
}

fuzz_target!(|data: &[u8]| {
    // WebSocket text messages are UTF-8 only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (parser, me) = fixture();
    match cowork::fuzzing::mattermost_frame(text, parser, me) {
        Ok(Some(MattermostEvent::Message {
            post_id,
            thread,
            inbound,
        })) => {
            assert!(is_mattermost_id(&post_id) && is_mattermost_id(&thread));
            assert_eq!(inbound.channel(), "mm-fuzz");
            assert!(is_mattermost_id(inbound.sender()) && is_mattermost_id(inbound.chat()));
            assert_ne!(inbound.sender(), BOT, "the bot's own post became a message");
            assert!(inbound.account().is_none_or(|t| t == TEAM));
        }
        Ok(Some(MattermostEvent::Refused(r))) => {
            assert!(
                r.sender
                    .iter()
                    .chain(&r.chat)
                    .all(|id| is_mattermost_id(id))
            );
        }
        _ => {}
    }
});
