//! Channel authenticity and payload parsing: Slack signing secret (Slack's
//! published example), Discord Ed25519 (RFC 8032 §7.1 TESTs 1–3, a self-signed
//! interaction, application id, guild allowlist through the policy engine,
//! the interaction `context` deciding DM vs group DM), Slack Connect's sender
//! team judged by the workspace allowlist,
//! Telegram secret token and Update parsing (mentions with UTF-16 offsets, group
//! allowlist). Hostile inputs for each: malformed JSON, oversized bodies,
//! missing fields, wrong types, deep nesting, NULs, replayed timestamps — a
//! typed error every time, never a panic. Fixtures: tests/data/gateway/.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use std::sync::Arc;

use cowork::gateway::channels::discord::{self, Discord, DiscordInteraction};
use cowork::gateway::channels::slack::{self, Slack, SlackEvent};
use cowork::gateway::channels::telegram::{self, Telegram, TelegramUpdate};
use cowork::gateway::channels::{Headers, MAX_BODY_BYTES};
use cowork::gateway::{
    AccessControl, AuthFailure, ChannelSettings, Context, Decision, GatewayError, GatewaySettings,
    Profile, Reason, Store, TestClock,
};
use ed25519_dalek::{Signer, SigningKey};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/gateway/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn auth_failure(e: GatewayError) -> AuthFailure {
    match e {
        GatewayError::VerifyRequest { reason, .. } => reason,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

fn is_parse_error(e: &GatewayError) -> bool {
    matches!(
        e,
        GatewayError::ParseEvent { .. } | GatewayError::ValidateInbound { .. }
    )
}

fn deep_json(depth: usize) -> Vec<u8> {
    let mut v = "[".repeat(depth).into_bytes();
    v.extend("]".repeat(depth).into_bytes());
    v
}

// ====================================================================== Slack

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TS: &str = "1531420618";
const SLACK_NOW: i64 = 1_531_420_618;
/// Slack's published body. (The brief's copy read `token=xyzz0WbapA4vBCDEvpeQ2f6x`,
/// a transcription slip: with it the published signature does not verify; see
/// `slack_brief_transcription_of_the_example_does_not_verify`.)
const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

fn slack() -> Slack {
    Slack::new(SLACK_SECRET.as_bytes(), "UBOT1").unwrap()
}

fn slack_headers(ts: &str, sig: &str) -> Headers {
    [
        (slack::TIMESTAMP_HEADER, ts.to_string()),
        (slack::SIGNATURE_HEADER, sig.to_string()),
    ]
    .into_iter()
    .collect()
}

fn slack_sign(ts: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn slack_published_example_verifies() {
    let s = slack();
    let h = slack_headers(SLACK_TS, SLACK_SIG);
    s.verify(&h, SLACK_BODY.as_bytes(), SLACK_NOW).unwrap();
    s.verify(&h, SLACK_BODY.as_bytes(), SLACK_NOW + 300)
        .unwrap();
    s.verify(&h, SLACK_BODY.as_bytes(), SLACK_NOW - 300)
        .unwrap();
    // Header names are case-insensitive.
    let lower: Headers = [
        ("x-slack-request-timestamp", SLACK_TS),
        ("x-slack-signature", SLACK_SIG),
    ]
    .into_iter()
    .collect();
    s.verify(&lower, SLACK_BODY.as_bytes(), SLACK_NOW).unwrap();
}

#[test]
fn slack_brief_transcription_of_the_example_does_not_verify() {
    let altered = SLACK_BODY.replace("xyzz0WbapA4vBCDEFasx0q6G", "xyzz0WbapA4vBCDEvpeQ2f6x");
    assert_ne!(altered, SLACK_BODY);
    assert_eq!(
        auth_failure(
            slack()
                .verify(
                    &slack_headers(SLACK_TS, SLACK_SIG),
                    altered.as_bytes(),
                    SLACK_NOW
                )
                .unwrap_err()
        ),
        AuthFailure::BadSignature
    );
}

#[test]
fn slack_changed_byte_fails() {
    let s = slack();
    let h = slack_headers(SLACK_TS, SLACK_SIG);
    let mut body = SLACK_BODY.as_bytes().to_vec();
    for i in [0, body.len() / 2, body.len() - 1] {
        body[i] ^= 1;
        assert_eq!(
            auth_failure(s.verify(&h, &body, SLACK_NOW).unwrap_err()),
            AuthFailure::BadSignature
        );
        body[i] ^= 1;
    }
    // A changed signature digit, a changed (still fresh) timestamp.
    let bad_sig = format!("{}4", &SLACK_SIG[..SLACK_SIG.len() - 1]);
    assert_eq!(
        auth_failure(
            s.verify(
                &slack_headers(SLACK_TS, &bad_sig),
                SLACK_BODY.as_bytes(),
                SLACK_NOW
            )
            .unwrap_err()
        ),
        AuthFailure::BadSignature
    );
    assert_eq!(
        auth_failure(
            s.verify(
                &slack_headers("1531420619", SLACK_SIG),
                SLACK_BODY.as_bytes(),
                SLACK_NOW
            )
            .unwrap_err()
        ),
        AuthFailure::BadSignature
    );
    // Another secret.
    let other = Slack::new(b"0000000000000000000000000000000", "UBOT1").unwrap();
    assert!(
        other
            .verify(
                &slack_headers(SLACK_TS, SLACK_SIG),
                SLACK_BODY.as_bytes(),
                SLACK_NOW
            )
            .is_err()
    );
}

#[test]
fn slack_stale_timestamp_fails() {
    let s = slack();
    let h = slack_headers(SLACK_TS, SLACK_SIG);
    for now in [SLACK_NOW + 301, SLACK_NOW - 301, SLACK_NOW + 86_400] {
        assert!(matches!(
            auth_failure(s.verify(&h, SLACK_BODY.as_bytes(), now).unwrap_err()),
            AuthFailure::StaleTimestamp { .. }
        ));
    }
}

#[test]
fn slack_missing_or_malformed_headers_fail() {
    let s = slack();
    let body = SLACK_BODY.as_bytes();
    let only_sig: Headers = [(slack::SIGNATURE_HEADER, SLACK_SIG)].into_iter().collect();
    let only_ts: Headers = [(slack::TIMESTAMP_HEADER, SLACK_TS)].into_iter().collect();
    assert_eq!(
        auth_failure(s.verify(&only_sig, body, SLACK_NOW).unwrap_err()),
        AuthFailure::MissingHeader(slack::TIMESTAMP_HEADER)
    );
    assert_eq!(
        auth_failure(s.verify(&only_ts, body, SLACK_NOW).unwrap_err()),
        AuthFailure::MissingHeader(slack::SIGNATURE_HEADER)
    );
    assert!(s.verify(&Headers::new(), body, SLACK_NOW).is_err());
    for bad in [
        "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "v0=a2114d",
        "v0=zz114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50300",
        "",
    ] {
        assert_eq!(
            auth_failure(
                s.verify(&slack_headers(SLACK_TS, bad), body, SLACK_NOW)
                    .unwrap_err()
            ),
            AuthFailure::MalformedHeader(slack::SIGNATURE_HEADER),
            "{bad:?}"
        );
    }
    for bad in ["", "abc", "-1531420618", "1531420618.5", " 1531420618"] {
        assert_eq!(
            auth_failure(
                s.verify(&slack_headers(bad, SLACK_SIG), body, SLACK_NOW)
                    .unwrap_err()
            ),
            AuthFailure::MalformedHeader(slack::TIMESTAMP_HEADER),
            "{bad:?}"
        );
    }
    let mut dup = slack_headers(SLACK_TS, SLACK_SIG);
    dup.insert("x-slack-signature", "v0=00");
    assert_eq!(
        auth_failure(s.verify(&dup, body, SLACK_NOW).unwrap_err()),
        AuthFailure::DuplicateHeader(slack::SIGNATURE_HEADER)
    );
    assert!(Slack::new(b"short", "U").is_err());
}

#[test]
fn slack_oversized_body_refused_before_mac() {
    let s = slack();
    let body = vec![b'a'; MAX_BODY_BYTES + 1];
    let sig = slack_sign(SLACK_TS, &body);
    assert!(matches!(
        auth_failure(
            s.verify(&slack_headers(SLACK_TS, &sig), &body, SLACK_NOW)
                .unwrap_err()
        ),
        AuthFailure::BodyTooLarge { .. }
    ));
}

#[test]
fn slack_events_parse() {
    let s = slack();
    let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    assert_eq!(
        s.parse(body).unwrap(),
        SlackEvent::UrlVerification {
            challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
        }
    );
    let SlackEvent::Message { event_id, inbound } =
        s.parse(&fixture("slack_message_im.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(event_id.as_deref(), Some("Ev0PV52K21"));
    assert_eq!(inbound.channel(), "slack");
    assert_eq!(inbound.account(), Some("T1DC2JH3J"));
    assert_eq!(inbound.sender(), "U2CERLKJA");
    assert_eq!(inbound.chat(), "D0PNCRP9N");
    assert_eq!(inbound.context(), Context::Dm);
    assert!(!inbound.mentions_bot());
    let SlackEvent::Message { inbound, .. } = s
        .parse(&fixture("slack_message_channel_mention.json"))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(inbound.context(), Context::Group);
    assert!(inbound.mentions_bot());
    assert_eq!(inbound.attachments()[0].name, "report.pdf");
    assert_eq!(inbound.attachments()[0].size, Some(48213));
    // app_mention events are group mentions.
    let am = br#"{"type":"event_callback","team_id":"T1","event":{"type":"app_mention","user":"U1","channel":"C1","text":"<@UBOT1> hi"}}"#;
    let SlackEvent::Message { inbound, .. } = s.parse(am).unwrap() else {
        panic!()
    };
    assert!(inbound.mentions_bot() && inbound.context() == Context::Group);
    // Ignored: other events, edits, bots (our own replies), other envelopes.
    for body in [
        r#"{"type":"event_callback","team_id":"T1","event":{"type":"reaction_added","user":"U1"}}"#,
        r#"{"type":"event_callback","team_id":"T1","event":{"type":"message","subtype":"message_changed","channel":"C1","channel_type":"channel"}}"#,
        r#"{"type":"event_callback","team_id":"T1","event":{"type":"message","bot_id":"B1","user":"UBOT1","channel":"D1","channel_type":"im","text":"hi"}}"#,
        r#"{"type":"app_rate_limited","team_id":"T1"}"#,
    ] {
        assert!(
            matches!(
                s.parse(body.as_bytes()).unwrap(),
                SlackEvent::Ignored { .. }
            ),
            "{body}"
        );
    }
}

#[test]
fn slack_receive_never_parses_unverified() {
    let s = slack();
    let body = fixture("slack_message_im.json");
    let ts = SLACK_NOW.to_string();
    let good = slack_headers(&ts, &slack_sign(&ts, &body));
    assert!(matches!(
        s.receive(&good, &body, SLACK_NOW).unwrap(),
        SlackEvent::Message { .. }
    ));
    let bad = slack_headers(&ts, SLACK_SIG);
    assert!(matches!(
        s.receive(&bad, &body, SLACK_NOW).unwrap_err(),
        GatewayError::VerifyRequest { .. }
    ));
    // A replayed request (old timestamp, valid signature) is refused.
    assert!(matches!(
        auth_failure(s.receive(&good, &body, SLACK_NOW + 600).unwrap_err()),
        AuthFailure::StaleTimestamp { .. }
    ));
}

#[test]
fn slack_hostile_payloads() {
    let s = slack();
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"{\"type\":7}".to_vec(),
        br#"{"type":"url_verification"}"#.to_vec(),
        br#"{"type":"url_verification","challenge":""}"#.to_vec(),
        br#"{"type":"event_callback","event":{"type":"message"}}"#.to_vec(),
        br#"{"type":"event_callback","team_id":"T1","event":{"type":"message","channel":"D1","channel_type":"im"}}"#.to_vec(),
        br#"{"type":"event_callback","team_id":"T1","event":{"type":"message","user":5,"channel":"D1","channel_type":"im"}}"#.to_vec(),
        br#"{"type":"event_callback","team_id":"T1","event":{"type":"message","user":"U1","channel":"D1","channel_type":"weird"}}"#.to_vec(),
        br#"{"type":"event_callback","team_id":"T1","event":{"type":"message","user":"U1","channel":"D1","channel_type":"im","text":"a\u0000b"}}"#.to_vec(),
        br#"{"type":"event_callback","team_id":"","event":{"type":"message","user":"U1","channel":"D1","channel_type":"im"}}"#.to_vec(),
        br#"{"type":"event_callback","team_id":"T1","event":{"type":"message","user":"*","channel":"D1","channel_type":"im"}}"#.to_vec(),
        br#"{"type":"event_callback","team_id":"T1","event":{"type":"message","user":"U1","channel":"D1","channel_type":"im","files":[{"size":-1}]}}"#.to_vec(),
        deep_json(100_000),
        b"\xff\xfe\x00".to_vec(),
    ];
    for body in cases {
        let e = s.parse(&body).unwrap_err();
        assert!(
            is_parse_error(&e),
            "{:?}: {e:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    assert!(matches!(
        auth_failure(s.parse(&huge).unwrap_err()),
        AuthFailure::BodyTooLarge { .. }
    ));
}

// ==================================================================== Discord

struct Rfc8032 {
    secret: &'static str,
    public: &'static str,
    message: &'static str,
    signature: &'static str,
}

/// RFC 8032 section 7.1, TEST 1, 2 and 3.
const RFC8032: [Rfc8032; 3] = [
    Rfc8032 {
        secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message: "",
        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    Rfc8032 {
        secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message: "72",
        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    Rfc8032 {
        secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message: "af82",
        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
];

#[test]
fn ed25519_rfc8032_vectors() {
    for (i, v) in RFC8032.iter().enumerate() {
        let secret: [u8; 32] = hex::decode(v.secret).unwrap().try_into().unwrap();
        let sk = SigningKey::from_bytes(&secret);
        assert_eq!(
            hex::encode(sk.verifying_key().to_bytes()),
            v.public,
            "TEST {}",
            i + 1
        );
        let msg = hex::decode(v.message).unwrap();
        let sig = sk.sign(&msg);
        assert_eq!(hex::encode(sig.to_bytes()), v.signature, "TEST {}", i + 1);
        sk.verifying_key().verify_strict(&msg, &sig).unwrap();
        let mut tampered = sig.to_bytes();
        tampered[10] ^= 0x40;
        assert!(
            sk.verifying_key()
                .verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&tampered))
                .is_err()
        );
        let mut other_msg = msg.clone();
        other_msg.push(0);
        assert!(sk.verifying_key().verify_strict(&other_msg, &sig).is_err());
    }
}

const APP_ID: &str = "1100000000000000000";
const D_NOW: i64 = 1_700_000_000;

fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn discord() -> Discord {
    Discord::new(
        &hex::encode(discord_key().verifying_key().to_bytes()),
        APP_ID,
    )
    .unwrap()
}

fn discord_headers(ts: &str, body: &[u8], key: &SigningKey) -> Headers {
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let sig = key.sign(&signed);
    [
        (discord::SIGNATURE_HEADER, hex::encode(sig.to_bytes())),
        (discord::TIMESTAMP_HEADER, ts.to_string()),
    ]
    .into_iter()
    .collect()
}

#[test]
fn discord_signed_request_verifies_and_tampering_fails() {
    let d = discord();
    let body = fixture("discord_command_guild.json");
    let ts = D_NOW.to_string();
    let h = discord_headers(&ts, &body, &discord_key());
    d.verify(&h, &body, D_NOW).unwrap();
    // Tampered body, timestamp, signature; another key.
    let mut b2 = body.clone();
    b2[20] ^= 1;
    assert_eq!(
        auth_failure(d.verify(&h, &b2, D_NOW).unwrap_err()),
        AuthFailure::BadSignature
    );
    let mut h2 = discord_headers(&ts, &body, &discord_key());
    h2 = {
        let sig = h2.require(discord::SIGNATURE_HEADER).unwrap().to_string();
        [
            (discord::SIGNATURE_HEADER, sig),
            (discord::TIMESTAMP_HEADER, (D_NOW + 1).to_string()),
        ]
        .into_iter()
        .collect()
    };
    assert_eq!(
        auth_failure(d.verify(&h2, &body, D_NOW).unwrap_err()),
        AuthFailure::BadSignature
    );
    let mut sig = hex::decode(h.require(discord::SIGNATURE_HEADER).unwrap()).unwrap();
    sig[0] ^= 1;
    let h3: Headers = [
        (discord::SIGNATURE_HEADER, hex::encode(&sig)),
        (discord::TIMESTAMP_HEADER, ts.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        auth_failure(d.verify(&h3, &body, D_NOW).unwrap_err()),
        AuthFailure::BadSignature
    );
    let evil = SigningKey::from_bytes(&[8u8; 32]);
    assert_eq!(
        auth_failure(
            d.verify(&discord_headers(&ts, &body, &evil), &body, D_NOW)
                .unwrap_err()
        ),
        AuthFailure::BadSignature
    );
    // Replay outside the window.
    assert!(matches!(
        auth_failure(d.verify(&h, &body, D_NOW + 301).unwrap_err()),
        AuthFailure::StaleTimestamp { .. }
    ));
    // Missing / malformed headers.
    let no_sig: Headers = [(discord::TIMESTAMP_HEADER, ts.as_str())]
        .into_iter()
        .collect();
    assert_eq!(
        auth_failure(d.verify(&no_sig, &body, D_NOW).unwrap_err()),
        AuthFailure::MissingHeader(discord::SIGNATURE_HEADER)
    );
    let no_ts: Headers = [(discord::SIGNATURE_HEADER, "00")].into_iter().collect();
    assert_eq!(
        auth_failure(d.verify(&no_ts, &body, D_NOW).unwrap_err()),
        AuthFailure::MissingHeader(discord::TIMESTAMP_HEADER)
    );
    let short: Headers = [
        (discord::SIGNATURE_HEADER, "abcd"),
        (discord::TIMESTAMP_HEADER, ts.as_str()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        auth_failure(d.verify(&short, &body, D_NOW).unwrap_err()),
        AuthFailure::MalformedHeader(discord::SIGNATURE_HEADER)
    );
    // Oversized.
    let big = vec![b'{'; MAX_BODY_BYTES + 1];
    assert!(matches!(
        auth_failure(
            d.verify(&discord_headers(&ts, &big, &discord_key()), &big, D_NOW)
                .unwrap_err()
        ),
        AuthFailure::BodyTooLarge { .. }
    ));
    // Bad configuration.
    assert!(Discord::new("zz", APP_ID).is_err());
    assert!(
        Discord::new(&"00".repeat(32), APP_ID).is_err(),
        "small-order key"
    );
    assert!(
        Discord::new(
            &hex::encode(discord_key().verifying_key().to_bytes()),
            "abc"
        )
        .is_err()
    );
}

#[test]
fn discord_interactions_parse_and_application_id_is_checked() {
    let d = discord();
    let ping = format!(r#"{{"id":"1","application_id":"{APP_ID}","type":1}}"#);
    assert_eq!(d.parse(ping.as_bytes()).unwrap(), DiscordInteraction::Ping);
    let other_app = r#"{"id":"1","application_id":"999","type":1}"#;
    assert!(matches!(
        d.parse(other_app.as_bytes()).unwrap_err(),
        GatewayError::ApplicationMismatch { .. }
    ));
    let DiscordInteraction::Command {
        interaction_id,
        token,
        inbound,
    } = d.parse(&fixture("discord_command_guild.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(interaction_id, "1180000000000000001");
    assert!(
        !format!("{token:?}").contains(token.expose()),
        "token is redacted in Debug"
    );
    assert_eq!(inbound.context(), Context::Group);
    assert_eq!(inbound.account(), Some("900000000000000001"));
    assert_eq!(inbound.sender(), "800000000000000001");
    assert_eq!(inbound.sender_name(), Some("Ada"));
    assert_eq!(inbound.text(), "how full is the disk?");
    assert!(inbound.mentions_bot());
    // A DM /pair command.
    let pair = format!(
        r#"{{"id":"2","application_id":"{APP_ID}","type":2,"token":"t","channel_id":"55","user":{{"id":"66"}},
            "data":{{"name":"pair","options":[{{"name":"code","type":3,"value":"ABCD2345"}}]}}}}"#
    );
    let DiscordInteraction::Command { inbound, .. } = d.parse(pair.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(inbound.context(), Context::Dm);
    assert_eq!(inbound.account(), None);
    assert_eq!(inbound.text(), "/pair ABCD2345");
    // Other interaction types are ignored.
    let comp = format!(r#"{{"id":"3","application_id":"{APP_ID}","type":3}}"#);
    assert!(matches!(
        d.parse(comp.as_bytes()).unwrap(),
        DiscordInteraction::Ignored { .. }
    ));
}

fn engine(channel: &str, ch: ChannelSettings) -> (tempfile::TempDir, AccessControl) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = GatewaySettings::default();
    s.channels.insert(channel.into(), ch);
    let access = AccessControl::new(
        Arc::new(s),
        Profile::Production,
        Arc::new(Store::open(dir.path()).unwrap()),
        Arc::new(TestClock::new(D_NOW)),
    )
    .unwrap();
    (dir, access)
}

#[test]
fn discord_guild_allowlist() {
    let d = discord();
    let body = fixture("discord_command_guild.json");
    let h = discord_headers(&D_NOW.to_string(), &body, &discord_key());
    let DiscordInteraction::Command { inbound, .. } = d.receive(&h, &body, D_NOW).unwrap() else {
        panic!()
    };
    let allowed = ChannelSettings {
        accounts: vec!["900000000000000001".into()],
        allowlist: vec!["800000000000000001".into()],
        ..ChannelSettings::default()
    };
    let (_d1, a) = engine("discord", allowed.clone());
    assert!(matches!(
        a.evaluate(&inbound).unwrap(),
        Decision::Authorized { .. }
    ));
    let (_d2, a) = engine(
        "discord",
        ChannelSettings {
            accounts: vec!["900000000000000002".into()],
            ..allowed
        },
    );
    assert_eq!(
        a.evaluate(&inbound).unwrap(),
        Decision::Denied {
            reason: Reason::AccountNotAllowed
        }
    );
    // The settings key `guilds` is the same list.
    let s: GatewaySettings =
        toml::from_str("[channels.discord]\nguilds = [\"900000000000000001\"]\n").unwrap();
    assert_eq!(s.channels["discord"].accounts, vec!["900000000000000001"]);
}

#[test]
fn discord_hostile_payloads() {
    let d = discord();
    let a = APP_ID;
    let cases = vec![
        "".to_string(),
        "{".to_string(),
        "null".to_string(),
        r#"{"id":"1","type":1}"#.to_string(),
        format!(r#"{{"id":"1","application_id":"{a}","type":"1"}}"#),
        format!(r#"{{"id":"1","application_id":"{a}","type":999}}"#),
        format!(r#"{{"id":"1","application_id":{a},"type":1}}"#),
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"token":"t","channel_id":"5","user":{{"id":"6"}}}}"#
        ),
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"token":"t","channel_id":"5","data":{{"name":"ask"}}}}"#
        ),
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"channel_id":"5","user":{{"id":"6"}},"data":{{"name":"ask"}}}}"#
        ),
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"token":"t","channel_id":"5","guild_id":"9","user":{{"id":"6"}},"data":{{"name":"ask"}}}}"#
        ),
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"token":"t","channel_id":"5","user":{{"id":6}},"data":{{"name":"ask"}}}}"#
        ),
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"token":"t","channel_id":"5","user":{{"id":"6"}},"data":{{"name":"ask","options":[{{"type":3,"value":"x\u0000"}}]}}}}"#
        ),
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"token":"t","channel_id":"5","user":{{"id":""}},"data":{{"name":"ask"}}}}"#
        ),
    ];
    for body in cases {
        let e = d.parse(body.as_bytes()).unwrap_err();
        assert!(is_parse_error(&e), "{body}: {e:?}");
    }
    assert!(is_parse_error(&d.parse(&deep_json(50_000)).unwrap_err()));
}

// =================================================================== Telegram

const TG_SECRET: &str = "s3cr3t-token_0123456789";
const BOT_ID: i64 = 4242;

fn telegram() -> Telegram {
    Telegram::new(TG_SECRET, BOT_ID, "CoworkBot").unwrap()
}

fn tg_headers(token: &str) -> Headers {
    [(telegram::SECRET_HEADER, token)].into_iter().collect()
}

fn tg_update(chat_type: &str, text: &str, extra: &str) -> String {
    format!(
        r#"{{"update_id":1,"message":{{"message_id":2,"from":{{"id":777,"is_bot":false,"first_name":"Ada"}},
            "chat":{{"id":-100,"type":"{chat_type}"}},"text":{}{extra}}}}}"#,
        serde_json::to_string(text).unwrap()
    )
}

fn tg_inbound(t: &Telegram, body: &str) -> cowork::gateway::Inbound {
    match t.parse(body.as_bytes()).unwrap() {
        TelegramUpdate::Message { inbound, .. } => inbound,
        other => panic!("{other:?}"),
    }
}

#[test]
fn telegram_secret_token() {
    let t = telegram();
    let body = fixture("telegram_group_mention.json");
    t.verify(&tg_headers(TG_SECRET), &body).unwrap();
    assert!(matches!(
        t.receive(&tg_headers(TG_SECRET), &body).unwrap(),
        TelegramUpdate::Message { .. }
    ));
    for bad in [
        "s3cr3t-token_0123456788",
        "s3cr3t-token_012345678",
        "s3cr3t-token_01234567890",
        "",
        "S3CR3T-TOKEN_0123456789",
    ] {
        assert_eq!(
            auth_failure(t.verify(&tg_headers(bad), &body).unwrap_err()),
            AuthFailure::BadSignature,
            "{bad:?}"
        );
    }
    assert_eq!(
        auth_failure(t.verify(&Headers::new(), &body).unwrap_err()),
        AuthFailure::MissingHeader(telegram::SECRET_HEADER)
    );
    let mut dup = tg_headers(TG_SECRET);
    dup.insert("x-telegram-bot-api-secret-token", TG_SECRET);
    assert!(matches!(
        auth_failure(t.verify(&dup, &body).unwrap_err()),
        AuthFailure::DuplicateHeader(_)
    ));
    assert!(matches!(
        auth_failure(
            t.receive(&tg_headers("wrong-token-0123456789"), &body)
                .unwrap_err()
        ),
        AuthFailure::BadSignature
    ));
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert!(matches!(
        auth_failure(t.verify(&tg_headers(TG_SECRET), &big).unwrap_err()),
        AuthFailure::BodyTooLarge { .. }
    ));
    for bad in ["short", "has space in it 123456", "ünïcode-token-0123456"] {
        assert!(Telegram::new(bad, BOT_ID, "CoworkBot").is_err(), "{bad:?}");
    }
}

#[test]
fn telegram_updates_parse() {
    let t = telegram();
    let TelegramUpdate::Message { update_id, inbound } =
        t.parse(&fixture("telegram_group_mention.json")).unwrap()
    else {
        panic!()
    };
    assert_eq!(update_id, 815020001);
    assert_eq!(inbound.channel(), "telegram");
    assert_eq!(inbound.sender(), "123456789");
    assert_eq!(inbound.sender_name(), Some("Ada"));
    assert_eq!(inbound.chat(), "-1001234567890");
    assert_eq!(inbound.context(), Context::Group);
    assert!(
        inbound.mentions_bot(),
        "mention after an emoji (UTF-16 offsets)"
    );

    let i = tg_inbound(&t, &tg_update("private", "hello", ""));
    assert_eq!(i.context(), Context::Dm);
    assert!(!i.mentions_bot());
    assert_eq!(
        tg_inbound(&t, &tg_update("group", "hi all", "")).context(),
        Context::Group
    );
    // Mention of someone else; a mention entity pointing at the wrong span.
    let i = tg_inbound(
        &t,
        &tg_update(
            "group",
            "@someone hi",
            r#","entities":[{"type":"mention","offset":0,"length":8}]"#,
        ),
    );
    assert!(!i.mentions_bot());
    // text_mention of the bot, /cmd@CoworkBot, reply to the bot.
    let i = tg_inbound(
        &t,
        &tg_update(
            "supergroup",
            "Bot hi",
            r#","entities":[{"type":"text_mention","offset":0,"length":3,"user":{"id":4242,"is_bot":true}}]"#,
        ),
    );
    assert!(i.mentions_bot());
    let i = tg_inbound(
        &t,
        &tg_update(
            "group",
            "/pair@coworkbot ABCD2345",
            r#","entities":[{"type":"bot_command","offset":0,"length":15}]"#,
        ),
    );
    assert!(i.mentions_bot());
    let i = tg_inbound(
        &t,
        &tg_update(
            "group",
            "yes",
            r#","reply_to_message":{"message_id":1,"from":{"id":4242,"is_bot":true},"chat":{"id":-100,"type":"group"}}"#,
        ),
    );
    assert!(i.mentions_bot());
    // Entities out of range or splitting a surrogate pair are no mention, no panic.
    for ents in [
        r#"[{"type":"mention","offset":1000,"length":5}]"#,
        r#"[{"type":"mention","offset":18446744073709551615,"length":5}]"#,
        r#"[{"type":"mention","offset":1,"length":3}]"#,
    ] {
        let i = tg_inbound(
            &t,
            &tg_update("group", "😀@CoworkBot", &format!(r#","entities":{ents}"#)),
        );
        assert!(!i.mentions_bot(), "{ents}");
    }
    // Attachments: document with a caption.
    let body = r#"{"update_id":3,"message":{"message_id":4,"from":{"id":1,"is_bot":false},"chat":{"id":1,"type":"private"},
        "caption":"see file","document":{"file_id":"x","file_name":"notes.txt","mime_type":"text/plain","file_size":12}}}"#;
    let i = tg_inbound(&t, body);
    assert_eq!(i.text(), "see file");
    assert_eq!(i.attachments()[0].name, "notes.txt");
    // Ignored: edits, channel posts, bots, messages without a sender.
    for body in [
        r#"{"update_id":5,"edited_message":{"message_id":1,"chat":{"id":1,"type":"private"}}}"#,
        r#"{"update_id":5,"message":{"message_id":1,"chat":{"id":-5,"type":"channel"},"text":"x"}}"#,
        r#"{"update_id":5,"message":{"message_id":1,"from":{"id":9,"is_bot":true},"chat":{"id":1,"type":"private"},"text":"x"}}"#,
        r#"{"update_id":5,"message":{"message_id":1,"chat":{"id":1,"type":"private"},"text":"x"}}"#,
    ] {
        assert!(
            matches!(
                t.parse(body.as_bytes()).unwrap(),
                TelegramUpdate::Ignored { update_id: 5, .. }
            ),
            "{body}"
        );
    }
}

#[test]
fn telegram_group_allowlist() {
    let t = telegram();
    let i = tg_inbound(
        &t,
        &tg_update(
            "group",
            "@CoworkBot hi",
            r#","entities":[{"type":"mention","offset":0,"length":10}]"#,
        ),
    );
    let ch = ChannelSettings {
        allowlist: vec!["777".into()],
        group_allowlist: vec!["-100".into()],
        ..ChannelSettings::default()
    };
    let (_d1, a) = engine("telegram", ch.clone());
    assert!(matches!(
        a.evaluate(&i).unwrap(),
        Decision::Authorized { .. }
    ));
    let (_d2, a) = engine(
        "telegram",
        ChannelSettings {
            group_allowlist: vec!["-200".into()],
            ..ch
        },
    );
    assert_eq!(
        a.evaluate(&i).unwrap(),
        Decision::Denied {
            reason: Reason::GroupNotAllowed
        }
    );
}

#[test]
fn telegram_hostile_payloads() {
    let t = telegram();
    let cases = vec![
        "".to_string(),
        "{]".to_string(),
        "{}".to_string(),
        r#"{"update_id":"1"}"#.to_string(),
        r#"{"update_id":1,"message":{"message_id":1}}"#.to_string(),
        r#"{"update_id":1,"message":{"message_id":1,"chat":{"id":"x","type":"private"}}}"#.to_string(),
        r#"{"update_id":1,"message":{"message_id":1,"from":{"id":1},"chat":{"id":1,"type":"secret"}}}"#.to_string(),
        r#"{"update_id":1,"message":{"message_id":1,"from":{"id":1},"chat":{"id":1,"type":"private"},"text":7}}"#.to_string(),
        tg_update("private", "nul\u{0}byte", ""),
        tg_update("private", &"x".repeat(70_000), ""),
        tg_update("private", "x", r#","entities":[{"type":"mention","offset":-1,"length":1}]"#),
        r#"{"update_id":1,"message":{"message_id":1,"from":{"id":1},"from":{"id":1},"chat":{"id":1,"type":"private"},"document":{"file_name":"../../etc/passwd"}}}"#.to_string(),
    ];
    for body in cases {
        let e = t.parse(body.as_bytes()).unwrap_err();
        assert!(
            is_parse_error(&e),
            "{}: {e:?}",
            &body[..body.len().min(100)]
        );
    }
    assert!(is_parse_error(&t.parse(&deep_json(50_000)).unwrap_err()));
    // A deeply nested reply chain: only `from` of the replied-to message is
    // read; the rest is skipped without recursion (no stack overflow).
    let depth = 40_000;
    let body = format!(
        r#"{{"update_id":1,"message":{{"message_id":1,"from":{{"id":1}},"chat":{{"id":1,"type":"private"}},"reply_to_message":{{"from":{{"id":2}},"x":{}1{}}}}}}}"#,
        r#"{"x":"#.repeat(depth),
        "}".repeat(depth)
    );
    assert!(body.len() < MAX_BODY_BYTES);
    let i = tg_inbound(&t, &body);
    assert!(!i.mentions_bot());
}

/// Issue 16 item 7: in a Slack Connect channel the envelope's team is ours but
/// the sender's own team is another organization's; the workspace allowlist
/// (`accounts`) judges the sender's team.
#[test]
fn slack_connect_sender_team_is_checked_not_the_envelope_team() {
    let s = slack();
    let msg = |extra: &str| {
        format!(
            r#"{{"type":"event_callback","team_id":"TOURS","event_id":"Ev1","event":{{"type":"message","channel_type":"channel","channel":"C1","user":"UEXT","text":"<@UBOT1> hi"{extra}}}}}"#
        )
    };
    let parse = |body: &str| match s.parse(body.as_bytes()) {
        Ok(SlackEvent::Message { inbound, .. }) => Ok(inbound),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    let ext = parse(&msg(r#","user_team":"TOTHER""#)).unwrap();
    assert_eq!(ext.account(), Some("TOTHER"));
    let ext_profile = parse(&msg(r#","user_profile":{"team":"TOTHER","name":"x"}"#)).unwrap();
    assert_eq!(ext_profile.account(), Some("TOTHER"));
    let same = parse(&msg("")).unwrap();
    assert_eq!(
        same.account(),
        Some("TOURS"),
        "no claim: the envelope's team"
    );
    let ch = ChannelSettings {
        accounts: vec!["TOURS".into()],
        allowlist: vec!["UEXT".into()],
        ..ChannelSettings::default()
    };
    let (_d, a) = engine("slack", ch);
    for inbound in [&ext, &ext_profile] {
        assert_eq!(
            a.evaluate(inbound).unwrap(),
            Decision::Denied {
                reason: Reason::AccountNotAllowed
            }
        );
    }
    assert!(matches!(
        a.evaluate(&same).unwrap(),
        Decision::Authorized { .. }
    ));
    // Hostile: disagreeing claims, wrong types, an empty team.
    for extra in [
        r#","user_team":"TOURS","user_profile":{"team":"TOTHER"}"#,
        r#","user_team":5"#,
        r#","user_profile":{"team":["TOURS"]}"#,
        r#","user_team":"""#,
        r#","user_team":"T\u0000"#,
    ] {
        assert!(parse(&msg(extra)).is_err(), "{extra}");
    }
}

/// Issue 16 item 7: a Discord interaction without `guild_id` is not always a
/// DM: `context` 2 (a group DM or private channel) gets group policy, 1 (the
/// bot's DM) DM policy; a context that disagrees with `guild_id` is refused.
#[test]
fn discord_group_dm_interaction_gets_group_policy() {
    let d = discord();
    let a = APP_ID;
    let cmd = |extra: &str| {
        format!(
            r#"{{"id":"1","application_id":"{a}","type":2,"token":"t","channel_id":"5","user":{{"id":"6","username":"eve"}},"data":{{"name":"ask","options":[{{"type":3,"name":"prompt","value":"hi"}}]}}{extra}}}"#
        )
    };
    let inbound = |body: &str| match d.parse(body.as_bytes()).unwrap() {
        DiscordInteraction::Command { inbound, .. } => inbound,
        other => panic!("{other:?}"),
    };
    assert_eq!(inbound(&cmd(r#","context":2"#)).context(), Context::Group);
    assert_eq!(inbound(&cmd(r#","context":1"#)).context(), Context::Dm);
    assert_eq!(
        inbound(&cmd("")).context(),
        Context::Dm,
        "no context: as before"
    );
    // Through the engine: the group DM gets group policy (unknown sender in a
    // group is ignored), not the DM's pairing prompt.
    let (_d, engine_) = engine("discord", ChannelSettings::default());
    assert!(matches!(
        engine_.evaluate(&inbound(&cmd(r#","context":2"#))).unwrap(),
        Decision::Ignored { .. } | Decision::Denied { .. }
    ));
    assert_eq!(
        engine_.evaluate(&inbound(&cmd(r#","context":1"#))).unwrap(),
        Decision::PairingPrompt
    );
    // Hostile: contexts that disagree with guild_id, unknown values, wrong types.
    let guild = r#","guild_id":"900000000000000001","member":{"user":{"id":"6"}}"#;
    for extra in [
        r#","context":0"#.to_string(),
        format!(r#","context":1{guild}"#),
        format!(r#","context":2{guild}"#),
        r#","context":3"#.to_string(),
        r#","context":"2""#.to_string(),
        r#","context":-1"#.to_string(),
        r#","context":256"#.to_string(),
    ] {
        assert!(d.parse(cmd(&extra).as_bytes()).is_err(), "{extra}");
    }
    assert_eq!(
        inbound(&cmd(&format!(r#","context":0{guild}"#))).context(),
        Context::Group
    );
}
