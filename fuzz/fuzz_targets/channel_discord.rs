//! Discord interactions: the Ed25519 signature over timestamp and body, with
//! its window, and the interaction JSON. First byte: flags (bit 0 sign the
//! request with the application's key, bit 1 change one body byte after
//! signing, bit 2 send the signature header twice, bits 3-4 the timestamp:
//! fresh, at the window's edge, stale, or the fuzzer's text); then a line with
//! the timestamp text, a line with the signature the fuzzer sends otherwise,
//! and the body. Asserts: never a panic; a correct signature with a fresh
//! timestamp and single headers is accepted, anything else (an edited body, a
//! stale time, a duplicate header, the fuzzer's own signature) refused;
//! `receive` parses only what `verify` accepts.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use cowork::gateway::channels::discord::{Discord, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use cowork::gateway::channels::{Headers, MAX_BODY_BYTES};
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;

const APP_ID: &str = "1100000000000000001";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn discord() -> &'static Discord {
    static D: OnceLock<Discord> = OnceLock::new();
    D.get_or_init(|| {
        Discord::new(&hex::encode(key().verifying_key().as_bytes()), APP_ID).expect("discord")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 2);
    let (ts, fresh) = split::timestamp(flags >> 3, &lines[0]);
    let signed = [ts.as_bytes(), body].concat();
    let sig = if flags & 1 != 0 {
        hex::encode(key().sign(&signed).to_bytes())
    } else {
        lines[1].clone()
    };
    let mut body = body.to_vec();
    let mut edited = false;
    if flags & 2 != 0 && !body.is_empty() {
        let at = usize::from(flags) % body.len();
        body[at] ^= 0x20;
        edited = true;
    }
    let mut headers = Headers::new();
    headers.insert(TIMESTAMP_HEADER, ts.as_str());
    headers.insert(SIGNATURE_HEADER, sig.as_str());
    if flags & 4 != 0 {
        headers.insert(SIGNATURE_HEADER.to_ascii_lowercase(), sig.as_str());
    }
    let d = discord();
    let verified = d.verify(&headers, &body, split::NOW).is_ok();
    if flags & 1 != 0 {
        let expected = fresh && !edited && flags & 4 == 0 && body.len() <= MAX_BODY_BYTES;
        assert_eq!(
            verified, expected,
            "verify disagrees: ts {ts:?} edited {edited}"
        );
    } else {
        // The fuzzer cannot sign; its own signature only verifies if copied
        // from a seed for this exact timestamp and body.
        if verified {
            assert!(fresh && flags & 4 == 0);
            assert_eq!(sig, hex::encode(key().sign(&signed).to_bytes()));
        }
    }
    if !verified {
        assert!(d.receive(&headers, &body, split::NOW).is_err());
    }
    let _ = d.parse(&body);
});
