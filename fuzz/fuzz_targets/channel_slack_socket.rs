//! Slack Socket Mode frames: the envelope (`hello`, `events_api`,
//! `disconnect`...) and an `events_api` payload through the Events API
//! parser, as a session reads them. Asserts: never a panic; a disconnect
//! reason is capped.
#![no_main]

use std::sync::OnceLock;

use cowork::gateway::channels::slack::Slack;
use libfuzzer_sys::fuzz_target;

fn slack() -> &'static Slack {
    static S: OnceLock<Slack> = OnceLock::new();
    S.get_or_init(|| Slack::new(b"8f742231b10e8888abcd99yyyzzz85a5", "UBOT1").expect("slack"))
}

fuzz_target!(|data: &[u8]| {
    // Socket Mode frames are WebSocket text messages: UTF-8 only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cowork::fuzzing::slack_socket_frame(text, slack());
});
