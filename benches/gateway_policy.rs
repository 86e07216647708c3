//! Throughput of the gateway's access-control core (prints figures; no asserts):
//! authenticity checks per channel, the pure policy, the full engine (store
//! lookup + limits), and verify → parse → evaluate for Slack, LINE, WhatsApp,
//! Teams and Google Chat.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use cowork::gateway::channels::Headers;
use cowork::gateway::channels::discord::{self, Discord};
use cowork::gateway::channels::google_chat::{self, GoogleChat};
use cowork::gateway::channels::line::{self, Line};
use cowork::gateway::channels::slack::{self, Slack, SlackEvent};
use cowork::gateway::channels::teams::{Teams, TeamsEvent};
use cowork::gateway::channels::telegram::{self, Telegram};
use cowork::gateway::channels::whatsapp::{self, WhatsApp};
use cowork::gateway::{
    AccessControl, ChannelSettings, CodeAttempt, Context, GatewaySettings, Inbound, Pairing,
    PairingKey, Profile, RateLimitSettings, RawInbound, Store, TestClock, decide,
};
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};

fn rate(name: &str, n: u64, f: impl FnMut()) {
    let mut f = f;
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{name:<48} {:>12.0} /s   ({:.2} µs each, n={n})",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}

fn main() {
    const NOW: i64 = 1_700_000_000;
    let ts = NOW.to_string();

    // Slack: a 1 KiB event body.
    let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
    let slack = Slack::new(secret, "UBOT1").unwrap();
    let body = format!(
        r#"{{"type":"event_callback","team_id":"T1","event_id":"Ev1","event":{{"type":"message","user":"U1","channel":"D1","channel_type":"im","text":"{}"}}}}"#,
        "x".repeat(900)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body.as_bytes());
    let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let sh: Headers = [
        (slack::TIMESTAMP_HEADER, ts.clone()),
        (slack::SIGNATURE_HEADER, sig),
    ]
    .into_iter()
    .collect();
    rate("slack verify (HMAC-SHA256, 1 KiB)", 200_000, || {
        slack
            .verify(black_box(&sh), black_box(body.as_bytes()), NOW)
            .unwrap()
    });

    // Discord.
    let key = SigningKey::from_bytes(&[7; 32]);
    let d = Discord::new(&hex::encode(key.verifying_key().to_bytes()), "11").unwrap();
    let dbody = br#"{"id":"1","application_id":"11","type":2,"token":"t","channel_id":"5","user":{"id":"6"},"data":{"name":"ask","options":[{"type":3,"value":"hello"}]}}"#;
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(dbody);
    let dh: Headers = [
        (
            discord::SIGNATURE_HEADER,
            hex::encode(key.sign(&signed).to_bytes()),
        ),
        (discord::TIMESTAMP_HEADER, ts.clone()),
    ]
    .into_iter()
    .collect();
    rate("discord verify (Ed25519 verify_strict)", 20_000, || {
        d.verify(black_box(&dh), black_box(dbody), NOW).unwrap()
    });

    // Telegram.
    let tg = Telegram::new("s3cr3t-token_0123456789", 1, "bot").unwrap();
    let th: Headers = [(telegram::SECRET_HEADER, "s3cr3t-token_0123456789")]
        .into_iter()
        .collect();
    rate("telegram verify (SHA-256 + ct_eq)", 500_000, || {
        tg.verify(black_box(&th), black_box(b"{}")).unwrap()
    });

    // LINE: a 1 KiB body with one text event.
    let line_secret = b"0123456789abcdef0123456789abcdef";
    let l = Line::new(line_secret, "").unwrap();
    let lbody = format!(
        r#"{{"destination":"Ufedcba9876543210fedcba9876543210","events":[{{"type":"message","mode":"active","timestamp":{},"webhookEventId":"01FZ74A0TDDPYRVKNK77XKC3ZR","replyToken":"r","source":{{"type":"user","userId":"U0123456789abcdef0123456789abcdef"}},"message":{{"id":"1","type":"text","text":"{}"}}}}]}}"#,
        NOW * 1000,
        "x".repeat(700)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(line_secret).unwrap();
    mac.update(lbody.as_bytes());
    let lsig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let lh: Headers = [(line::SIGNATURE_HEADER, lsig)].into_iter().collect();
    rate("line verify (HMAC-SHA256, 1 KiB)", 200_000, || {
        l.verify(black_box(&lh), black_box(lbody.as_bytes()))
            .unwrap()
    });
    rate("line verify + parse (1 KiB, one event)", 100_000, || {
        black_box(
            l.receive(black_box(&lh), black_box(lbody.as_bytes()), NOW)
                .unwrap(),
        );
    });

    // WhatsApp: a 1 KiB body with one text message.
    let wa = WhatsApp::new(line_secret, "verify-token-0123456789", "106540352242922").unwrap();
    let wbody = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Ann"}},"wa_id":"16505551234"}}],"messages":[{{"from":"16505551234","id":"wamid.1","timestamp":"{NOW}","type":"text","text":{{"body":"{}"}}}}]}}}}]}}]}}"#,
        "x".repeat(650)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(line_secret).unwrap();
    mac.update(wbody.as_bytes());
    let wsig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let wh: Headers = [(whatsapp::SIGNATURE_HEADER, wsig)].into_iter().collect();
    rate(
        "whatsapp verify + parse (1 KiB, one message)",
        100_000,
        || {
            black_box(
                wa.receive(black_box(&wh), black_box(wbody.as_bytes()), NOW)
                    .unwrap(),
            );
        },
    );

    // Teams: an RS256 bearer token and a 1 KiB activity.
    const TEAMS_APP: &str = "2f0a6a5e-8d1c-4f7e-9b3a-1c2d3e4f5a6b";
    const TEAMS_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const TEAMS_USER: &str = "7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e90";
    let teams = Teams::new(TEAMS_APP, TEAMS_TENANT).unwrap();
    let jwks = cowork::gateway::transport::jwt::Jwks::parse(include_bytes!(
        "../tests/data/jwt/jwks-a.json"
    ))
    .unwrap();
    let key_a = jwks.get("test-key-a").unwrap();
    let service_url = "https://smba.trafficmanager.net/amer/";
    let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jwt_header.kid = Some("test-key-a".into());
    let teams_token = jsonwebtoken::encode(
        &jwt_header,
        &serde_json::json!({"iss": "https://api.botframework.com", "aud": TEAMS_APP,
            "exp": NOW + 3600, "serviceurl": service_url}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../tests/data/jwt/key-a.pem"))
            .unwrap(),
    )
    .unwrap();
    let tbody = serde_json::json!({"type": "message", "id": "1481567603816",
        "serviceUrl": service_url, "channelId": "msteams",
        "from": {"id": "29:1abc", "name": "Ann", "aadObjectId": TEAMS_USER},
        "conversation": {"conversationType": "personal", "tenantId": TEAMS_TENANT, "id": "a:1XJKJMvc5GBtc2"},
        "recipient": {"id": format!("28:{TEAMS_APP}"), "name": "CoWork"},
        "text": "x".repeat(600), "channelData": {"tenant": {"id": TEAMS_TENANT}}})
    .to_string();
    let th: Headers = [("Authorization", format!("Bearer {teams_token}"))]
        .into_iter()
        .collect();
    rate("RS256 JWT check, a token not seen before", 5_000, || {
        black_box(
            cowork::gateway::transport::jwt::verify::<serde_json::Value>(
                black_box(&teams_token),
                &key_a,
                &["https://api.botframework.com"],
                TEAMS_APP,
                NOW,
            )
            .unwrap(),
        );
    });
    // The platforms send one token with many requests: the verifiers check
    // its signature once (jwt::VerifiedTokens).
    rate(
        "teams verify (token seen before) + parse (1 KiB)",
        100_000,
        || {
            black_box(
                teams
                    .receive(black_box(&th), black_box(tbody.as_bytes()), &key_a, NOW)
                    .unwrap(),
            );
        },
    );

    // Google Chat: an RS256 bearer JWT (the key already held) and a 1 KiB event.
    let gchat = GoogleChat::endpoint("1234567890", "C03abc123").unwrap();
    let gtoken = jsonwebtoken::encode(
        &jwt_header,
        &serde_json::json!({"iss": google_chat::ISSUER, "aud": "1234567890", "iat": NOW, "exp": NOW + 3600}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../tests/data/jwt/key-a.pem"))
            .unwrap(),
    )
    .unwrap();
    let gh: Headers = [("Authorization", format!("Bearer {gtoken}"))]
        .into_iter()
        .collect();
    let gtime = time::OffsetDateTime::from_unix_timestamp(NOW)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let gbody = format!(
        r#"{{"type":"MESSAGE","eventTime":"{gtime}","space":{{"name":"spaces/AAAAdm1","spaceType":"DIRECT_MESSAGE"}},"message":{{"name":"spaces/AAAAdm1/messages/m1","sender":{{"name":"users/112233445566778899000","displayName":"Ada","type":"HUMAN","domainId":"C03abc123"}},"text":"{0}","argumentText":"{0}","thread":{{"name":"spaces/AAAAdm1/threads/t1"}}}},"user":{{"name":"users/112233445566778899000","type":"HUMAN","domainId":"C03abc123"}}}}"#,
        "x".repeat(300)
    );
    rate(
        "google chat verify (token seen before) + parse (1 KiB)",
        100_000,
        || {
            black_box(
                gchat
                    .receive(black_box(&gh), black_box(gbody.as_bytes()), &key_a, NOW)
                    .unwrap(),
            );
        },
    );

    // Policy.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let clock = TestClock::new(NOW);
    let mut settings = GatewaySettings::default();
    let ch = ChannelSettings {
        rate_limit: RateLimitSettings {
            messages_per_minute: 1_000_000,
            burst: 10_000,
        },
        ..ChannelSettings::default()
    };
    for name in ["slack", "line", "whatsapp", "teams", "google-chat"] {
        settings.channels.insert(name.into(), ch.clone());
    }
    let settings = Arc::new(settings);
    let access = AccessControl::new(
        settings.clone(),
        Profile::Production,
        store.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let pairing = Pairing::new(
        store.clone(),
        PairingKey::from_bytes([1; 32]),
        Arc::new(clock.clone()),
        settings.clone(),
    );
    for (channel, sender) in [
        ("slack", "U1"),
        ("line", "U0123456789abcdef0123456789abcdef"),
        ("whatsapp", "16505551234"),
        ("teams", TEAMS_USER),
        ("google-chat", "users/112233445566778899000"),
    ] {
        let code = pairing.issue(channel).unwrap();
        pairing
            .redeem(channel, sender, None, &CodeAttempt::new(code.code.as_str()))
            .unwrap();
    }
    let msg = Inbound::try_from(RawInbound {
        channel: "slack".into(),
        account: Some("T1".into()),
        sender: "U1".into(),
        sender_name: None,
        chat: "D1".into(),
        context: Context::Dm,
        mentions_bot: false,
        text: "what is on my calendar?".into(),
        attachments: vec![],
    })
    .unwrap();
    rate("policy decide (pure)", 1_000_000, || {
        black_box(decide(
            Some(&ch),
            Profile::Production,
            black_box(&msg),
            Some(cowork::gateway::UserState::Paired),
        ));
    });
    let mut tick = 0u64;
    rate(
        "policy evaluate (store lookup + token bucket)",
        100_000,
        || {
            tick += 1;
            if tick.is_multiple_of(5000) {
                clock.advance(1);
            }
            black_box(access.evaluate(black_box(&msg)).unwrap());
        },
    );
    rate("slack verify + parse + evaluate", 50_000, || {
        tick += 1;
        if tick.is_multiple_of(5000) {
            clock.advance(1);
        }
        let SlackEvent::Message { inbound, .. } = slack.receive(&sh, body.as_bytes(), NOW).unwrap()
        else {
            panic!()
        };
        black_box(access.evaluate(&inbound).unwrap());
    });
    // The batched platforms: one message per body, every body's id the same
    // (the replay guard is not in this path; see gateway_webhook for it).
    rate("line verify + parse + evaluate", 50_000, || {
        tick += 1;
        if tick.is_multiple_of(5000) {
            clock.advance(1);
        }
        for ev in l.receive(&lh, lbody.as_bytes(), NOW).unwrap() {
            if let Ok(line::LineEvent::Message { inbound, .. }) = ev {
                black_box(access.evaluate(&inbound).unwrap());
            }
        }
    });
    rate("whatsapp verify + parse + evaluate", 50_000, || {
        tick += 1;
        if tick.is_multiple_of(5000) {
            clock.advance(1);
        }
        for ev in wa.receive(&wh, wbody.as_bytes(), NOW).unwrap() {
            if let Ok(whatsapp::WhatsAppEvent::Message { inbound, .. }) = ev {
                black_box(access.evaluate(&inbound).unwrap());
            }
        }
    });
    rate("teams verify + parse + evaluate", 50_000, || {
        tick += 1;
        if tick.is_multiple_of(5000) {
            clock.advance(1);
        }
        if let TeamsEvent::Message { inbound, .. } =
            teams.receive(&th, tbody.as_bytes(), &key_a, NOW).unwrap()
        {
            black_box(access.evaluate(&inbound).unwrap());
        }
    });
    rate("google chat verify + parse + evaluate", 50_000, || {
        tick += 1;
        if tick.is_multiple_of(5000) {
            clock.advance(1);
        }
        if let google_chat::ChatEvent::Message { inbound, .. } =
            gchat.receive(&gh, gbody.as_bytes(), &key_a, NOW).unwrap()
        {
            black_box(access.evaluate(&inbound).unwrap());
        }
    });
    rate("pairing redeem, wrong code (sender locked)", 20_000, || {
        black_box(
            pairing
                .redeem("slack", "mallory", None, &CodeAttempt::new("ZZZZ9999"))
                .unwrap(),
        );
    });
}
