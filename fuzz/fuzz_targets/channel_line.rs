//! LINE webhooks: the `x-line-signature` check (base64 HMAC-SHA256 of the
//! raw body) and the webhook body with its events. First byte: flags (bit 0
//! sign the body correctly, bit 1 send the header twice); then a line with
//! the signature the fuzzer sends otherwise; the rest is the body. Asserts:
//! never a panic; `verify` accepts exactly when one header carries a
//! standard base64 encoding of the HMAC (recomputed here) and the body is
//! within the cap; `receive` parses only what `verify` accepts; every message
//! parsed carries the channel's name and an event id of 1 to 64 bytes.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use base64::Engine;
use cowork::gateway::channels::line::{Line, LineEvent, SIGNATURE_HEADER};
use cowork::gateway::channels::{Headers, MAX_BODY_BYTES};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

fn line() -> &'static Line {
    static L: OnceLock<Line> = OnceLock::new();
    L.get_or_init(|| Line::new(SECRET, "Ufedcba9876543210fedcba9876543210").expect("line verifier"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 1);
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(SECRET).expect("hmac key");
    m.update(body);
    let want: [u8; 32] = m.finalize().into_bytes().into();
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = if flags & 1 != 0 {
        b64.encode(want)
    } else {
        lines[0].clone()
    };
    let mut headers = Headers::new();
    headers.insert(SIGNATURE_HEADER, sig.as_str());
    if flags & 2 != 0 {
        headers.insert(SIGNATURE_HEADER.to_ascii_uppercase(), sig.as_str());
    }
    let sig_ok = sig.len() <= 64 && b64.decode(&sig).is_ok_and(|d| d == want);
    let expected = sig_ok && flags & 2 == 0 && body.len() <= MAX_BODY_BYTES;
    let l = line();
    let verified = l.verify(&headers, body).is_ok();
    assert_eq!(verified, expected, "verify disagrees for {sig:?}");
    let received = l.receive(&headers, body, split::NOW);
    if !verified {
        assert!(received.is_err(), "receive accepted what verify refused");
    }
    if let Ok(events) = l.parse(body, split::NOW) {
        for ev in events.into_iter().flatten() {
            if let LineEvent::Message {
                event_id, inbound, ..
            } = ev
            {
                assert_eq!(inbound.channel(), "line");
                assert!((1..=64).contains(&event_id.len()));
            }
        }
    }
});
