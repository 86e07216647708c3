//! Microsoft Teams: the bearer JWT (RS256, issuer, audience, times, the key's
//! endorsements, the `serviceurl` claim) and the Bot Framework activity
//! behind it. First byte: flags (bit 0 send the one validly signed token,
//! bit 1 leave the `Authorization` header out); then a line with the token
//! the fuzzer sends otherwise; the rest is the body. Asserts: never a panic;
//! `receive` accepts only the validly signed token (nothing else verifies
//! under the published keys), only with an activity whose `serviceUrl` is the
//! token's, whose channel the key is endorsed for and whose tenant is the
//! owner's; every message carries the channel's name, an Entra object id as
//! sender and the owner's tenant.
#![no_main]

#[path = "common/split.rs"]
mod split;

use std::sync::OnceLock;

use cowork::gateway::channels::Headers;
use cowork::gateway::channels::teams::{Teams, TeamsEvent, is_entra_id};
use cowork::gateway::transport::jwt::{Jwks, key_id};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;

const APP: &str = "2f0a6a5e-8d1c-4f7e-9b3a-1c2d3e4f5a6b";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SERVICE_URL: &str = "https://smba.trafficmanager.net/amer/";

struct Fixture {
    teams: Teams,
    jwks: Jwks,
    token: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-key-b".into());
        let claims = serde_json::json!({"iss": "https://api.botframework.com", "aud": APP,
            "exp": split::NOW + 3600, "nbf": split::NOW - 60, "serviceurl": SERVICE_URL});
        let key = EncodingKey::from_rsa_pem(include_bytes!("../../tests/data/jwt/key-b.pem"))
            .expect("test key");
        Fixture {
            teams: Teams::new(APP, TENANT).expect("verifier"),
            jwks: Jwks::parse(include_bytes!("../../tests/data/jwt/jwks-ab.json")).expect("jwks"),
            token: jsonwebtoken::encode(&header, &claims, &key).expect("token"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (lines, body) = split::lines(rest, 1);
    let f = fixture();
    let token = if flags & 1 != 0 {
        f.token.clone()
    } else {
        lines[0].clone()
    };
    let mut headers = Headers::new();
    if flags & 2 == 0 {
        headers.insert("Authorization", format!("Bearer {token}"));
    }
    // The key the token names, as the route looks it up (B when it names none).
    let key = key_id(&token)
        .ok()
        .and_then(|kid| f.jwks.get(&kid))
        .or_else(|| f.jwks.get("test-key-b"))
        .expect("key");
    let received = f.teams.receive(&headers, body, &key, split::NOW);
    if let Ok(event) = &received {
        assert!(flags & 2 == 0, "accepted without a token");
        assert!(
            token == f.token || token.trim() == f.token,
            "accepted another token: {token:?}"
        );
        let v: serde_json::Value = serde_json::from_slice(body).expect("accepted JSON");
        assert_eq!(v["serviceUrl"], SERVICE_URL);
        assert_eq!(
            v["channelId"], "msteams",
            "key B is endorsed for msteams only"
        );
        if let TeamsEvent::Message { inbound, .. } = event {
            assert_eq!(inbound.channel(), "teams");
            assert!(is_entra_id(inbound.sender()));
            assert_eq!(inbound.account(), Some(TENANT));
        }
    }
    if let Ok(TeamsEvent::Message { inbound, .. }) = f.teams.parse(body) {
        assert!(is_entra_id(inbound.sender()));
    }
});
