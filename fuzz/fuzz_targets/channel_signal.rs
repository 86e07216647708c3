//! signal-cli JSON-RPC lines (the daemon's Unix socket): `receive`
//! notifications with their envelope, answers to calls, other
//! notifications, as a session parses them, an envelope through the rules
//! of one channel with the bot's own number known.
//! Asserts: never a panic; a message carries the channel's name, an ACI as
//! sender (never a phone number), the sender's ACI or a group id as chat,
//! and a text.
#![no_main]

use std::sync::OnceLock;

use cowork::gateway::channels::signal::{Signal, SignalEvent, is_aci, is_group_id};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static Signal {
    static R: OnceLock<Signal> = OnceLock::new();
    R.get_or_init(|| Signal::new("sig-fuzz", "+15550001111").expect("rules"))
}

fuzz_target!(|data: &[u8]| {
    // A session reads UTF-8 lines only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(SignalEvent::Message { inbound, .. })) =
        cowork::fuzzing::signal_line(text, rules())
    {
        assert_eq!(inbound.channel(), "sig-fuzz");
        assert!(is_aci(inbound.sender()));
        assert!(inbound.chat() == inbound.sender() || is_group_id(inbound.chat()));
        assert!(!inbound.text().trim().is_empty());
    }
});
