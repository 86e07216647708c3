//! Telegram transport end to end on loopback: a fake Bot API over TLS (test CA)
//! serving `getUpdates` / `sendMessage`; long polling drives an unknown user
//! through pairing prompt → code redemption → accepted message (TaskSink) →
//! reply delivered; replayed update ids are dropped and audited; hostile
//! getUpdates responses; the webhook mode (secret token, 401/400/409/413, each
//! audited, store unchanged); the bot token never appears in errors; an update
//! whose dispatch failed is fetched again, never passed by the offset.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::telegram::{self, Telegram};
use cowork::gateway::channels::telegram::{TelegramClient, poll_once};
use cowork::gateway::{PAIRED_REPLY, PAIRING_PROMPT};
use gateway_transport_common::*;
use serde_json::{Value, json};

const TOKEN: &str = "123456:AAbbCC-dd_ee";
const SECRET: &str = "webhook-secret-0123456789";

#[derive(Default)]
struct FakeTelegram {
    /// Served to getUpdates (filtered by offset unless `ignore_offset`).
    updates: Vec<Value>,
    /// Raw body served instead, if set (hostile responses).
    raw: Option<String>,
    ignore_offset: bool,
    offsets: Vec<Option<i64>>,
    sent: Vec<(String, String)>,
    /// `retry_after` of HTTP 429 answers served to sendMessage first.
    rate_limits: std::collections::VecDeque<i64>,
    send_attempts: usize,
}

type Fake = Arc<Mutex<FakeTelegram>>;

async fn fake_method(
    State(fake): State<Fake>,
    Path((bot, method)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if bot != format!("bot{TOKEN}") {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response();
    }
    let mut f = fake.lock().unwrap();
    match method.as_str() {
        "getUpdates" => {
            assert!(body["timeout"].is_u64());
            let offset = body["offset"].as_i64();
            f.offsets.push(offset);
            if let Some(raw) = &f.raw {
                return raw.clone().into_response();
            }
            let result: Vec<Value> = f
                .updates
                .iter()
                .filter(|u| {
                    f.ignore_offset || offset.is_none_or(|o| u["update_id"].as_i64().unwrap() >= o)
                })
                .cloned()
                .collect();
            Json(json!({"ok": true, "result": result})).into_response()
        }
        "sendMessage" => {
            f.send_attempts += 1;
            if let Some(secs) = f.rate_limits.pop_front() {
                return (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({
                        "ok": false,
                        "error_code": 429,
                        "description": format!("Too Many Requests: retry after {secs}"),
                        "parameters": {"retry_after": secs},
                    })),
                )
                    .into_response();
            }
            let chat = match &body["chat_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let text = body["text"].as_str().unwrap().to_string();
            assert!(text.chars().count() <= 4096);
            f.sent.push((chat, text));
            Json(json!({"ok": true, "result": {"message_id": f.sent.len()}})).into_response()
        }
        _ => (
            axum::http::StatusCode::NOT_FOUND,
            Json(json!({"ok": false, "description": "Not Found"})),
        )
            .into_response(),
    }
}

async fn start_fake() -> (Fake, Arc<TelegramClient>, TestTls) {
    let fake: Fake = Arc::default();
    let router = Router::new()
        .route("/{bot}/{method}", post(fake_method))
        .with_state(fake.clone());
    let tls = test_tls();
    let base = serve_tls(router, &tls).await;
    let client =
        TelegramClient::new(&http_config(&base, &tls), Redacted::from(TOKEN.to_string())).unwrap();
    (fake, Arc::new(client), tls)
}

fn parser() -> Telegram {
    Telegram::new(SECRET, 999, "cowork_bot").unwrap()
}

fn dm(update_id: i64, from: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": NOW,
            "from": {"id": from, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": from, "type": "private"},
            "text": text,
        }
    })
}

#[tokio::test]
async fn polling_pairing_flow_end_to_end() {
    let env = env(&["telegram"]);
    let (fake, client, _tls) = start_fake().await;
    env.replies.register("telegram", client.clone());
    let p = parser();
    let mut offset = None;

    // 1. Unknown user → pairing prompt.
    fake.lock().unwrap().updates.push(dm(10, 42, "hello"));
    let s = poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!((s.received, s.dispatched), (1, 1));
    assert_eq!(offset, Some(11));
    assert_eq!(
        fake.lock().unwrap().sent,
        vec![("42".to_string(), PAIRING_PROMPT.to_string())]
    );
    assert!(env.try_task().is_none());

    // 2. The owner issues a code; the user redeems it.
    let code = env.pairing.issue("telegram").unwrap();
    fake.lock()
        .unwrap()
        .updates
        .push(dm(11, 42, &format!("/pair {}", code.code.as_str())));
    poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!(fake.lock().unwrap().sent.last().unwrap().1, PAIRED_REPLY);
    assert_eq!(env.audited("gateway.pairing"), vec!["paired"]);

    // 3. Now a message is accepted, reaches the TaskSink, and is acknowledged.
    fake.lock()
        .unwrap()
        .updates
        .push(dm(12, 42, "how full is the disk?"));
    poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    let task = env.try_task().unwrap();
    assert_eq!(task.inbound.text(), "how full is the disk?");
    assert_eq!(task.user.sender, "42");
    assert_eq!(
        fake.lock().unwrap().sent.last().unwrap(),
        &("42".to_string(), ACK.to_string())
    );
    assert_eq!(offset, Some(13));
    assert_eq!(
        fake.lock().unwrap().offsets,
        vec![None, Some(11), Some(12)],
        "offset advances past each update"
    );

    // 4. A server that re-sends old updates: dropped as replays, audited, no task.
    let sent_before = fake.lock().unwrap().sent.len();
    fake.lock().unwrap().ignore_offset = true;
    let s = poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!((s.received, s.replays, s.dispatched), (3, 3, 0));
    assert!(env.try_task().is_none());
    assert_eq!(fake.lock().unwrap().sent.len(), sent_before);
    assert_eq!(env.audited("gateway.replay").len(), 3);
    let msgs = env.audited("gateway.message");
    assert_eq!(
        msgs,
        vec!["pairing_prompt", "redeem_pairing", "authorized_paired"]
    );
    // The audit never carries message text, only its length.
    let ev = env
        .audit
        .entries()
        .into_iter()
        .find(|e| reason(e) == "pairing_prompt")
        .unwrap();
    assert_eq!(ev.payload["length"], 5);
    assert_eq!(ev.subject, "telegram:42");
}

/// A channel not named after its platform (`[channels.tg2]` on Telegram):
/// its messages carry its name, so its settings, codes and users apply, and
/// every answer leaves through the outbound registered under that name, the
/// one way out that a task's later replies take too.
#[tokio::test]
async fn a_channel_named_otherwise_is_served_under_its_own_name_and_outbound() {
    let env = env(&["tg2"]);
    let (fake, client, _tls) = start_fake().await;
    let p = parser().named("tg2");
    let mut offset = None;

    // No outbound registered yet: the answer has no way out (nothing sent,
    // nothing lost from the poll).
    fake.lock().unwrap().updates.push(dm(10, 41, "hello"));
    let s = poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!((s.received, s.dispatched), (1, 1));
    assert_eq!(fake.lock().unwrap().send_attempts, 0);

    env.replies.register("tg2", client.clone());
    fake.lock().unwrap().updates.push(dm(11, 42, "hello"));
    poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!(
        fake.lock().unwrap().sent,
        vec![("42".to_string(), PAIRING_PROMPT.to_string())]
    );
    let code = env.pairing.issue("tg2").unwrap();
    fake.lock()
        .unwrap()
        .updates
        .push(dm(12, 42, &format!("/pair {}", code.code.as_str())));
    fake.lock().unwrap().updates.push(dm(13, 42, "status?"));
    poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    let task = env.try_task().unwrap();
    assert_eq!(task.inbound.channel(), "tg2");
    assert_eq!(
        env.store.list_users(None).unwrap()[0].channel,
        "tg2",
        "paired on the channel the message came through"
    );
    // A task's later reply takes the same path as the answers.
    env.replies.deliver("tg2", "42", "later").await.unwrap();
    let sent: Vec<String> = fake
        .lock()
        .unwrap()
        .sent
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(sent[1..], [PAIRED_REPLY, ACK, "later"]);
    let subjects: Vec<String> = env
        .audit
        .entries()
        .into_iter()
        .filter(|e| e.kind == "gateway.message")
        .map(|e| e.subject)
        .collect();
    assert!(
        subjects.iter().all(|s| s.starts_with("tg2:")),
        "{subjects:?}"
    );
}

#[tokio::test]
async fn long_reply_is_chunked_to_4096() {
    let env = env(&["telegram"]);
    let (fake, client, _tls) = start_fake().await;
    env.replies.register("telegram", client.clone());
    let text = "é".repeat(4096 * 2 + 10);
    client.send_message("42", &text).await.unwrap();
    let sent = fake.lock().unwrap().sent.clone();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent.iter().map(|s| s.1.as_str()).collect::<String>(), text);
    drop(env);
}

#[tokio::test]
async fn rate_limited_reply_waits_as_asked_and_is_delivered() {
    let (fake, client, _tls) = start_fake().await;
    fake.lock().unwrap().rate_limits.push_back(1);
    let started = std::time::Instant::now();
    client.send_message("42", "hello").await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let f = fake.lock().unwrap();
    assert_eq!(f.send_attempts, 2);
    assert_eq!(f.sent, vec![("42".to_string(), "hello".to_string())]);
}

#[tokio::test]
async fn rate_limit_past_the_cap_fails_at_once_with_a_reason() {
    let (fake, client, _tls) = start_fake().await;
    fake.lock().unwrap().rate_limits.push_back(3600);
    let e = client.send_message("42", "hello").await.unwrap_err();
    assert_rate_limited(&e, "3600", TOKEN);
    let f = fake.lock().unwrap();
    assert_eq!(f.send_attempts, 1);
    assert!(f.sent.is_empty());
}

#[tokio::test]
async fn hostile_get_updates_responses() {
    let env = env(&["telegram"]);
    let (fake, client, _tls) = start_fake().await;
    env.replies.register("telegram", client.clone());
    let p = parser();
    let mut offset = None;
    // Whole-response garbage: an error, offset unchanged, nothing dispatched.
    for raw in [
        "not json",
        "{\"ok\": true}",
        "{\"ok\": false, \"description\": \"Conflict\"}",
        "{\"ok\": true, \"result\": {\"update_id\": 1}}",
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    ] {
        fake.lock().unwrap().raw = Some(raw.to_string());
        assert!(
            poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
                .await
                .is_err(),
            "{raw:.40}"
        );
        assert_eq!(offset, None);
    }
    // Hostile elements: each rejected and audited; the good one still goes through.
    fake.lock().unwrap().raw = Some(
        json!({"ok": true, "result": [
            {"update_id": 1, "message": {"message_id": 1, "chat": {"id": "x", "type": "private"}}},
            {"update_id": 2, "message": {"message_id": 99999999999999999999u128 as f64, "from": {"id": 1}, "chat": {"id": 1, "type": "private"}}},
            {"update_id": 3, "message": {"message_id": 3, "from": {"id": 7, "is_bot": false}, "chat": {"id": 7, "type": "weird"}}},
            {"update_id": 4},
            {"no_update_id": true},
            dm(5, 43, "hi"),
        ]})
        .to_string(),
    );
    let s = poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!(s.received, 6);
    assert_eq!(s.dispatched, 1);
    assert_eq!(s.rejected, 4);
    assert_eq!(offset, Some(6));
    assert_eq!(env.audited("gateway.inbound_rejected").len(), 4);
    assert_eq!(
        fake.lock().unwrap().sent.len(),
        1,
        "the prompt to the good update"
    );
}

#[tokio::test]
async fn token_never_in_errors() {
    // Nothing listens on this port: the connection error must not carry the URL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = TelegramClient::new(
        &cowork::gateway::HttpConfig::new(format!("http://127.0.0.1:{port}")),
        Redacted::from(TOKEN.to_string()),
    )
    .unwrap();
    let err = client.get_updates(None, 0).await.unwrap_err();
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains("AAbbCC"), "{shown}");
    // A wrong token is refused by the fake; the error says so without the token.
    let (_fake, _c, tls) = start_fake().await;
    let _ = tls;
    // Plain http to a non-loopback host is refused outright.
    assert!(
        TelegramClient::new(
            &cowork::gateway::HttpConfig::new("http://api.example.org"),
            Redacted::from(TOKEN.to_string())
        )
        .is_err()
    );
    assert!(
        TelegramClient::new(
            &cowork::gateway::HttpConfig::new("https://api.example.org"),
            Redacted::from("12/../x:y".to_string())
        )
        .is_err()
    );
}

#[tokio::test]
async fn untrusted_server_certificate_is_refused() {
    let (_fake, _client, _tls) = start_fake().await;
    // A client that does not trust the test CA cannot talk to the fake.
    let other = test_tls();
    let fake: Fake = Arc::default();
    let router = Router::new()
        .route("/{bot}/{method}", post(fake_method))
        .with_state(fake.clone());
    let base = serve_tls(router, &other).await;
    let mut cfg = cowork::gateway::HttpConfig::new(base);
    cfg.extra_root_pem = Some(test_tls().ca_pem);
    let client = TelegramClient::new(&cfg, Redacted::from(TOKEN.to_string())).unwrap();
    assert!(client.get_updates(None, 0).await.is_err());
    assert!(fake.lock().unwrap().offsets.is_empty());
}

// ---------------------------------------------------------------- webhook mode

async fn webhook_env() -> (Env, Fake, std::net::SocketAddr, TestTls) {
    let env = env(&["telegram"]);
    let (fake, client, tls) = start_fake().await;
    env.replies.register("telegram", client);
    let addr = start_webhook(&env, "/telegram/webhook", |hooks| {
        telegram::webhook_route(hooks, parser())
    })
    .await;
    (env, fake, addr, tls)
}

async fn post_update(addr: std::net::SocketAddr, secret: Option<&str>, body: Vec<u8>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/telegram/webhook"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = secret {
        req = req.header(telegram::SECRET_HEADER, s);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn webhook_flow_and_rejections() {
    let (env, fake, addr, _tls) = webhook_env().await;
    let hello = serde_json::to_vec(&dm(100, 42, "hello")).unwrap();
    assert_eq!(post_update(addr, Some(SECRET), hello.clone()).await, 200);
    eventually("prompt delivered", || fake.lock().unwrap().sent.len() == 1).await;

    let before = env.snapshot();
    let audited_before = env.audit.entries().len();
    let mut expected = Vec::new();
    // Wrong / missing secret → 401.
    assert_eq!(
        post_update(addr, Some("wrong-secret-0123456789"), hello.clone()).await,
        401
    );
    expected.push("bad_signature");
    assert_eq!(post_update(addr, None, hello.clone()).await, 401);
    expected.push("bad_auth_header");
    // Replay of update 100 → 409.
    assert_eq!(post_update(addr, Some(SECRET), hello.clone()).await, 409);
    // Oversized → 413.
    assert_eq!(
        post_update(addr, Some(SECRET), vec![b' '; 1024 * 1024 + 1]).await,
        413
    );
    expected.push("body_too_large");
    // Hostile payloads → 400.
    let hostile: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"\xff\xfe{\"update_id\": 1}".to_vec(),
        br#"{"update_id": 1e400}"#.to_vec(),
        br#"{"update_id": 99999999999999999999999}"#.to_vec(),
        br#"{"update_id": "1"}"#.to_vec(),
        br#"{"message": {}}"#.to_vec(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        json!({"update_id": 5, "message": {"message_id": 1, "from": {"id": 1, "is_bot": false}, "chat": {"id": 1, "type": "private"}, "text": "a\u{0}b"}}).to_string().into_bytes(),
        b"{\"update_id\": 6, \"message\": {\"message_id\": 1, \"from\": {\"id\": 1}, \"chat\": {\"id\": 1, \"type\": \"private\"}, \"text\": \"\xc3\x28\"}}".to_vec(),
    ];
    for body in hostile {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).to_string();
        assert_eq!(post_update(addr, Some(SECRET), body).await, 400, "{shown}");
        expected.push("malformed");
    }
    assert_eq!(env.snapshot(), before, "rejected requests change nothing");
    let rejected: Vec<String> = env.audit.entries()[audited_before..]
        .iter()
        .filter(|e| e.kind == "gateway.webhook_rejected")
        .map(reason)
        .collect();
    assert_eq!(rejected, expected);
    assert_eq!(env.audited("gateway.replay").len(), 1);
    assert_eq!(fake.lock().unwrap().sent.len(), 1);
    // The secret never appears in the audit.
    assert!(!format!("{:?}", env.audit.entries()).contains("webhook-secret"));
}

fn group(update_id: i64, from: i64, chat: i64, text: &str, mention: bool) -> Value {
    let entities = if mention {
        json!([{"type": "mention", "offset": 0, "length": 11}])
    } else {
        json!([])
    };
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": NOW,
            "from": {"id": from, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": chat, "type": "supergroup", "title": "ops"},
            "text": text, "entities": entities,
        }
    })
}

#[tokio::test]
async fn group_restrictions_come_from_settings() {
    let env = env_with(&["telegram"], |c| {
        c.allowlist = vec!["42".into()];
        c.group_allowlist = vec!["-100".into()];
    });
    let (fake, client, _tls) = start_fake().await;
    env.replies.register("telegram", client.clone());
    let p = parser();
    let mut offset = None;
    fake.lock().unwrap().updates.extend([
        // Allowed group, mentioned, allowlisted sender → task.
        group(1, 42, -100, "@cowork_bot disk?", true),
        // Allowed group, not mentioned → ignored.
        group(2, 42, -100, "just chatting", false),
        // Another group → denied.
        group(3, 42, -200, "@cowork_bot hi", true),
        // Unknown sender in an allowed group → ignored (no pairing in groups).
        group(4, 77, -100, "@cowork_bot hi", true),
    ]);
    let s = poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!(s.dispatched, 4);
    assert_eq!(
        env.audited("gateway.message"),
        vec![
            "authorized_allowlisted",
            "not_mentioned",
            "group_not_allowed",
            "unknown_sender_in_group"
        ]
    );
    let task = env.try_task().unwrap();
    assert_eq!(task.inbound.chat(), "-100");
    assert!(!task.tools.allows("memory"), "group tool policy applies");
    assert!(env.try_task().is_none());
    assert_eq!(
        fake.lock().unwrap().sent,
        vec![("-100".to_string(), ACK.to_string())]
    );
}

/// Telegram drops every update below the offset a poll sends: an update whose
/// dispatch failed (the trail unreachable) must not be passed, or it is lost.
#[tokio::test]
async fn an_update_that_failed_is_fetched_again_not_lost() {
    let audit = Arc::new(FlakyAudit::default());
    let env = env_full(&["telegram"], |_| {}, ACK, Some(audit.clone()));
    let (fake, client, _tls) = start_fake().await;
    env.replies.register("telegram", client.clone());
    let p = parser();
    let mut offset = None;
    fake.lock().unwrap().updates.push(dm(10, 42, "hello"));
    poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!(offset, Some(11));

    // The trail goes down: the poll fails and the offset stays at update 11,
    // also for the update behind it in the same answer.
    fake.lock().unwrap().updates.push(dm(11, 43, "hello"));
    fake.lock().unwrap().updates.push(dm(12, 44, "hello"));
    audit.fail_next(usize::MAX);
    poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap_err();
    assert_eq!(offset, Some(11));
    let prompts = |to: &str| {
        fake.lock()
            .unwrap()
            .sent
            .iter()
            .filter(|(chat, text)| chat == to && text == PAIRING_PROMPT)
            .count()
    };
    assert_eq!(prompts("43"), 0);

    // Back up: both are fetched again and handled once each.
    audit.fail_next(0);
    let s = poll_once(&client, &p, &env.dispatcher, &mut offset, 0)
        .await
        .unwrap();
    assert_eq!((s.received, s.dispatched, s.replays), (2, 2, 0));
    assert_eq!(offset, Some(13));
    assert_eq!((prompts("43"), prompts("44")), (1, 1));
    assert_eq!(fake.lock().unwrap().offsets, vec![None, Some(11), Some(11)]);
}
