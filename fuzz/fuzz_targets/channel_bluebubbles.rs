//! BlueBubbles webhooks: the secret in the webhook URL's query string and
//! the event JSON. First byte: flags (bit 0 send the right secret, bit 1
//! send it twice, bit 2 put another parameter before it); then a line with
//! the query the fuzzer sends otherwise (none when empty); the rest is the
//! body. Asserts: never a panic; `verify` accepts exactly when the query
//! (at most 1,024 bytes) has one `secret` parameter carrying the configured
//! secret and the body is within the cap; `receive` parses only what
//! `verify` accepts; a message parsed is never the owner's own
//! (`isFromMe`), and carries the channel's name, a handle as sender, a chat
//! guid whose `;-;` or `;+;` is its context, and a guid of 1 to 128 bytes.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use cowork::gateway::Context;
use cowork::gateway::channels::MAX_BODY_BYTES;
use cowork::gateway::channels::bluebubbles::{
    BlueBubbles, BlueBubblesEvent, SECRET_PARAM, is_chat_guid, is_handle,
};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-bluebubbles-webhook-secret_0123456789";

fn bluebubbles() -> &'static BlueBubbles {
    static B: OnceLock<BlueBubbles> = OnceLock::new();
    B.get_or_init(|| BlueBubbles::new(SECRET, "@cowork").expect("bluebubbles verifier"))
}

/// Whether `query` carries exactly one `secret` parameter, the right one.
fn query_ok(query: &str) -> bool {
    let secrets: Vec<&str> = query
        .split('&')
        .filter(|p| p.split_once('=').map_or(*p, |(n, _)| n) == SECRET_PARAM)
        .collect();
    query.len() <= 1024 && secrets.len() == 1 && secrets[0] == format!("{SECRET_PARAM}={SECRET}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 1);
    let mut query = if flags & 1 != 0 {
        format!("{SECRET_PARAM}={SECRET}")
    } else {
        lines[0].clone()
    };
    if flags & 2 != 0 {
        query = format!("{query}&{query}");
    }
    if flags & 4 != 0 {
        query = format!("password=x&{query}");
    }
    let sent = (!query.is_empty()).then_some(query.as_str());
    let b = bluebubbles();
    let expected = query_ok(&query) && body.len() <= MAX_BODY_BYTES;
    let verified = b.verify(sent, body).is_ok();
    assert_eq!(verified, expected, "verify disagrees for query {query:?}");
    let received = b.receive(sent, body, split::NOW);
    if !verified {
        assert!(received.is_err(), "receive accepted what verify refused");
    }
    if let Ok(BlueBubblesEvent::Message { guid, inbound }) = b.parse(body, split::NOW) {
        let raw: serde_json::Value = serde_json::from_slice(body).expect("parsed JSON");
        assert_ne!(raw["data"]["isFromMe"], true, "the owner's own message");
        assert_eq!(inbound.channel(), "bluebubbles");
        assert!(is_handle(inbound.sender()), "{:?}", inbound.sender());
        let chat = inbound.chat();
        assert!(is_chat_guid(chat), "{chat:?}");
        let want = if chat.contains(";-;") {
            Context::Dm
        } else {
            Context::Group
        };
        assert_eq!(inbound.context(), want, "{chat:?}");
        assert!((1..=128).contains(&guid.len()));
    }
});
