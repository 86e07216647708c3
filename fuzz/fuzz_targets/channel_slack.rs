//! Slack Events API: the v0 HMAC-SHA256 signature with its timestamp window,
//! and the event JSON. First byte: flags (bit 0 sign the request correctly,
//! bit 1 send the signature header twice, bits 2-3 the timestamp: fresh, at
//! the window's edge, stale, or the fuzzer's text); then a line with the
//! timestamp text, a line with the signature the fuzzer sends otherwise, and
//! the body. Asserts: never a panic; `verify` accepts exactly when the headers
//! are single, the timestamp fresh and the signature the HMAC of
//! `v0:ts:body` (recomputed here); `receive` parses only what `verify` accepts.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use cowork::gateway::channels::slack::{SIGNATURE_HEADER, Slack, TIMESTAMP_HEADER};
use cowork::gateway::channels::{Headers, MAX_BODY_BYTES};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

fn slack() -> &'static Slack {
    static S: OnceLock<Slack> = OnceLock::new();
    S.get_or_init(|| Slack::new(SECRET, "UBOT1").expect("slack verifier"))
}

fn mac(ts: &str, body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(SECRET).expect("hmac key");
    m.update(b"v0:");
    m.update(ts.as_bytes());
    m.update(b":");
    m.update(body);
    m.finalize().into_bytes().into()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 2);
    let (ts, fresh) = split::timestamp(flags >> 2, &lines[0]);
    let want = mac(&ts, body);
    let sig = if flags & 1 != 0 {
        format!("v0={}", hex::encode(want))
    } else {
        lines[1].clone()
    };
    let mut headers = Headers::new();
    headers.insert(TIMESTAMP_HEADER, ts.as_str());
    headers.insert(SIGNATURE_HEADER, sig.as_str());
    if flags & 2 != 0 {
        headers.insert(SIGNATURE_HEADER.to_ascii_uppercase(), sig.as_str());
    }
    let sig_ok = sig
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .is_some_and(|b| b == want);
    let expected = sig_ok && fresh && flags & 2 == 0 && body.len() <= MAX_BODY_BYTES;
    let s = slack();
    let verified = s.verify(&headers, body, split::NOW).is_ok();
    assert_eq!(
        verified, expected,
        "verify disagrees: ts {ts:?} sig {sig:?}"
    );
    if !verified {
        assert!(s.receive(&headers, body, split::NOW).is_err());
    }
    let _ = s.parse(body);
});
