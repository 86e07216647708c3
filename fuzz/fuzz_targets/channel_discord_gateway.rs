//! Discord Gateway frames (the bot's WebSocket): Hello, READY and
//! MESSAGE_CREATE dispatches as a session decodes them. Asserts: never a
//! panic, with and without a known bot user id.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Gateway frames are WebSocket text messages: UTF-8 only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cowork::fuzzing::discord_gateway_frame(text, None);
    let _ = cowork::fuzzing::discord_gateway_frame(text, Some("1100000000000000001"));
});
