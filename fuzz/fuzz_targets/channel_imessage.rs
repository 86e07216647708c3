//! `imsg rpc` lines (the JSON-RPC 2.0 stdout of imsg on the owner's Mac, over
//! SSH): answers and notifications as a session parses them, a `message`
//! notification's message through the rules of a channel with a contact
//! allowlist.
//! Asserts: never a panic; a message is never the owner's own and carries
//! the channel's name, a normalised handle of the contacts as sender and a
//! chat id as chat, and has a bounded guid; a refusal names a handle outside
//! the contacts.
#![no_main]

use std::sync::OnceLock;

use cowork::gateway::channels::imessage::{Imessage, ImessageEvent, is_chat_id, normalise_handle};
use libfuzzer_sys::fuzz_target;

const CONTACTS: [&str; 2] = ["+15551234567", "ada@example.com"];
const NOW: i64 = 1_800_000_000;

fn rules() -> &'static Imessage {
    static R: OnceLock<Imessage> = OnceLock::new();
    R.get_or_init(|| {
        let contacts: Vec<String> = CONTACTS.iter().map(|c| c.to_string()).collect();
        Imessage::new(&contacts, "cowork")
            .expect("rules")
            .named("im-fuzz")
    })
}

fuzz_target!(|data: &[u8]| {
    // A session reads UTF-8 lines only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match cowork::fuzzing::imessage_line(text, rules(), NOW) {
        Ok(Some(ImessageEvent::Message { guid, inbound })) => {
            assert_eq!(inbound.channel(), "im-fuzz");
            assert!(
                CONTACTS.contains(&inbound.sender()),
                "a sender outside the contacts"
            );
            assert_eq!(
                normalise_handle(inbound.sender()).as_deref(),
                Some(inbound.sender())
            );
            assert!(is_chat_id(inbound.chat()));
            assert!(!guid.is_empty() && guid.len() <= 128);
            // The line read again as plain JSON: its message is not the owner's.
            let line: serde_json::Value = serde_json::from_str(text).expect("it parsed once");
            assert_ne!(
                line["params"]["message"]["is_from_me"],
                serde_json::Value::Bool(true),
                "the owner's own message became a message"
            );
        }
        Ok(Some(ImessageEvent::Refused(r))) => {
            let sender = r.sender.expect("a refusal names its sender");
            assert!(!CONTACTS.contains(&sender.as_str()));
            assert!(r.chat.iter().all(|c| is_chat_id(c)));
        }
        _ => {}
    }
});
