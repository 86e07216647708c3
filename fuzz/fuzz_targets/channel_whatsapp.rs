//! WhatsApp Cloud API webhooks: the `GET` handshake, `X-Hub-Signature-256`
//! (`sha256=` and the hex HMAC-SHA256 of the raw body) and the body's
//! messages. First byte: flags (bit 0 sign the body correctly, bit 1 send the
//! header twice, bit 2 send the right verify token); then lines with the
//! signature the fuzzer sends otherwise, the handshake's mode, token and
//! challenge; the rest is the body. Asserts: never a panic; the handshake
//! echoes exactly the challenge, and only for `subscribe` with the verify
//! token and a short challenge of letters, digits, `-` and `_`; `verify`
//! accepts exactly one header with the right MAC (recomputed) and a body
//! within the cap; `receive` parses only what `verify` accepts; every message
//! parsed carries the channel's name and a WhatsApp-shaped sender and chat.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use cowork::gateway::channels::whatsapp::{
    SIGNATURE_HEADER, WhatsApp, WhatsAppEvent, is_whatsapp_id,
};
use cowork::gateway::channels::{Headers, MAX_BODY_BYTES};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
const VERIFY: &str = "verify-token-0123456789";

fn whatsapp() -> &'static WhatsApp {
    static W: OnceLock<WhatsApp> = OnceLock::new();
    W.get_or_init(|| WhatsApp::new(SECRET, VERIFY, "106540352242922").expect("verifier"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 4);
    let w = whatsapp();

    let token = if flags & 4 != 0 {
        VERIFY
    } else {
        lines[2].as_str()
    };
    let (mode, challenge) = (lines[1].as_str(), lines[3].as_str());
    let echo_ok = token == VERIFY
        && mode == "subscribe"
        && (1..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match w.handshake(Some(mode), Some(token), Some(challenge)) {
        Ok(echo) => assert!(echo_ok && echo == challenge, "echoed {echo:?}"),
        Err(_) => assert!(!echo_ok, "refused a right handshake"),
    }

    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(SECRET).expect("hmac key");
    m.update(body);
    let want = hex::encode(m.finalize().into_bytes());
    let sig = if flags & 1 != 0 {
        format!("sha256={want}")
    } else {
        lines[0].clone()
    };
    let mut headers = Headers::new();
    headers.insert(SIGNATURE_HEADER, sig.as_str());
    if flags & 2 != 0 {
        headers.insert(SIGNATURE_HEADER.to_ascii_lowercase(), sig.as_str());
    }
    let sig_ok = sig
        .strip_prefix("sha256=")
        .is_some_and(|h| h.eq_ignore_ascii_case(&want));
    let expected = sig_ok && flags & 2 == 0 && body.len() <= MAX_BODY_BYTES;
    let verified = w.verify(&headers, body).is_ok();
    assert_eq!(verified, expected, "verify disagrees for {sig:?}");
    if !verified {
        assert!(w.receive(&headers, body, split::NOW).is_err());
    }
    if let Ok(events) = w.parse(body, split::NOW) {
        for ev in events.into_iter().flatten() {
            if let WhatsAppEvent::Message { inbound, .. } = ev {
                assert_eq!(inbound.channel(), "whatsapp");
                assert!(is_whatsapp_id(inbound.sender()) && is_whatsapp_id(inbound.chat()));
            }
        }
    }
});
