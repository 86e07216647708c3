//! Telegram webhooks: the secret-token header check and the Update JSON.
//! First byte: flags (bit 0 send the right secret, bit 1 send the header
//! twice, bit 2 change the header name's case); then a line with the secret
//! the fuzzer sends otherwise; the rest is the body. Asserts: never a panic;
//! `verify` accepts exactly when one header carries the configured secret and
//! the body is within the cap; `receive` parses only what `verify` accepts.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use cowork::gateway::channels::telegram::{SECRET_HEADER, Telegram};
use cowork::gateway::channels::{Headers, MAX_BODY_BYTES};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret-token_0123456789";

fn telegram() -> &'static Telegram {
    static T: OnceLock<Telegram> = OnceLock::new();
    T.get_or_init(|| Telegram::new(SECRET, 4242, "cowork_bot").expect("telegram verifier"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 1);
    let sent = if flags & 1 != 0 {
        SECRET
    } else {
        lines[0].as_str()
    };
    let name = if flags & 4 != 0 {
        SECRET_HEADER.to_ascii_lowercase()
    } else {
        SECRET_HEADER.to_string()
    };
    let mut headers = Headers::new();
    headers.insert(name.clone(), sent);
    if flags & 2 != 0 {
        headers.insert(name, sent);
    }
    let t = telegram();
    let expected = sent == SECRET && flags & 2 == 0 && body.len() <= MAX_BODY_BYTES;
    let verified = t.verify(&headers, body).is_ok();
    assert_eq!(verified, expected, "verify disagrees for secret {sent:?}");
    let received = t.receive(&headers, body);
    if !verified {
        assert!(received.is_err(), "receive accepted what verify refused");
    }
    let _ = t.parse(body);
});
