//! Google Chat: the HTTP endpoint's `Authorization: Bearer` JWT (RS256 from
//! `chat@system.gserviceaccount.com` for the project number, checked with the
//! key its header names in the published set) and the Chat interaction event
//! (the same body Pub/Sub carries). First byte: flags (bits 0-2 choose the
//! token: 0 a right one, 1 another issuer, 2 another audience, 3 expired,
//! 4 signed by key B naming key A, 5 the fuzzer's own line, 6 no header, 7 a
//! right one sent twice); then that line; the rest is the body. Asserts:
//! never a panic; `verify` accepts exactly one header with a right token (a
//! right one is only ever the one signed here); `receive` parses only what
//! `verify` accepts; every message parsed, by either parser, carries the
//! channel's name, a `users/` sender, a `spaces/` chat, a message name and
//! thread in that space, and came from a body naming the organization.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use cowork::gateway::channels::Headers;
use cowork::gateway::channels::google_chat::{
    ChatEvent, GoogleChat, ISSUER, is_google_chat_space, is_google_chat_user_id,
};
use cowork::gateway::transport::jwt::{Jwks, key_id};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;

const PROJECT: &str = "1234567890";
const ORG: &str = "C03abc123";
const KEY_A: &[u8] = include_bytes!("../../tests/data/jwt/key-a.pem");
const KEY_B: &[u8] = include_bytes!("../../tests/data/jwt/key-b.pem");
const JWKS_AB: &[u8] = include_bytes!("../../tests/data/jwt/jwks-ab.json");

struct Fixture {
    endpoint: GoogleChat,
    pubsub: GoogleChat,
    jwks: Jwks,
    /// The right token, then the wrong ones (flags 1 to 4).
    tokens: [String; 5],
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let sign = |pem: &[u8], iss: &str, aud: &str, exp: i64| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("test-key-a".into());
            let claims = serde_json::json!({"iss": iss, "aud": aud, "iat": split::NOW, "exp": exp});
            let key = EncodingKey::from_rsa_pem(pem).expect("test key");
            jsonwebtoken::encode(&header, &claims, &key).expect("sign")
        };
        let later = split::NOW + 3600;
        Fixture {
            endpoint: GoogleChat::endpoint(PROJECT, ORG).expect("verifier"),
            pubsub: GoogleChat::pubsub(ORG).expect("parser"),
            jwks: Jwks::parse(JWKS_AB).expect("jwks"),
            tokens: [
                sign(KEY_A, ISSUER, PROJECT, later),
                sign(KEY_A, "accounts.google.com", PROJECT, later),
                sign(KEY_A, ISSUER, "999", later),
                sign(KEY_A, ISSUER, PROJECT, split::NOW - 3600),
                sign(KEY_B, ISSUER, PROJECT, later),
            ],
        }
    })
}

/// What every message parsed must be.
fn check(got: &ChatEvent, body: &[u8]) {
    if let ChatEvent::Message {
        event_id,
        thread,
        inbound,
    } = got
    {
        assert_eq!(inbound.channel(), "google-chat");
        assert!(is_google_chat_user_id(inbound.sender()));
        assert!(is_google_chat_space(inbound.chat()));
        let under = |name: &str, kind: &str| {
            name.strip_prefix(inbound.chat())
                .and_then(|r| r.strip_prefix(kind))
                .is_some_and(|id| !id.is_empty())
        };
        assert!(under(event_id, "/messages/"), "{event_id}");
        assert!(thread.as_deref().is_none_or(|t| under(t, "/threads/")));
        assert!(body.windows(ORG.len()).any(|w| w == ORG.as_bytes()));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 1);
    let f = fixture();
    let choice = usize::from(flags & 7);
    let token = match choice {
        0..=4 => Some(f.tokens[choice].as_str()),
        5 => Some(lines[0].as_str()),
        6 => None,
        _ => Some(f.tokens[0].as_str()),
    };
    let mut headers = Headers::new();
    if let Some(t) = token {
        headers.insert("Authorization", format!("Bearer {t}"));
        if choice == 7 {
            headers.insert("authorization", format!("Bearer {t}"));
        }
    }
    // As the route does: the key the token names, if the set holds it.
    let key = token
        .and_then(|t| key_id(t.trim()).ok())
        .and_then(|kid| f.jwks.get(&kid));
    let expected = token.is_some_and(|t| t.trim() == f.tokens[0]) && choice != 7;
    let verified = key
        .as_ref()
        .is_some_and(|k| f.endpoint.verify(&headers, k, split::NOW).is_ok());
    assert_eq!(verified, expected, "verify disagrees for choice {choice}");
    if let Some(k) = &key {
        if let Ok(got) = f.endpoint.receive(&headers, body, k, split::NOW) {
            assert!(verified, "receive parsed an unverified body");
            check(&got, body);
        }
    }
    for parser in [&f.endpoint, &f.pubsub] {
        if let Ok(got) = parser.parse(body, split::NOW) {
            check(&got, body);
        }
    }
});
