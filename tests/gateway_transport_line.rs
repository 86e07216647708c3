//! LINE: the real client and webhook route against a local fake of the
//! Messaging API over TLS (`/v2/bot/message/reply` with one-use reply
//! tokens, `/v2/bot/message/push`, their limits and HTTP 429): pairing
//! end to end, the answer by reply token and later ones pushed, long
//! replies split to 5,000 characters and 5 messages a request, groups,
//! several events in one body, replays, and hostile or unsigned bodies
//! (401/400/413, audited, nothing changed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_transport_common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::line::{self, Line, LineClient};
use cowork::gateway::{PAIRED_REPLY, PAIRING_PROMPT};
use gateway_transport_common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const SECRET: &str = "line-channel-secret-0123456789";
const TOKEN: &str = "line-channel-access-token";
const USER: &str = "U0123456789abcdef0123456789abcdef";
const GROUP: &str = "C0123456789abcdef0123456789abcdef";

/// What the fake saw: each accepted request as (endpoint, to, texts).
#[derive(Default)]
struct FakeLine {
    /// Reply tokens the fake issued and not yet used.
    tokens: HashSet<String>,
    sent: Vec<(&'static str, String, Vec<String>)>,
    /// HTTP 429 answers to serve to push first.
    push_429: usize,
}

type Fake = Arc<Mutex<FakeLine>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

/// Enforces the Messaging API's limits on `messages`; their texts.
fn texts(body: &Value) -> Result<Vec<String>, &'static str> {
    let msgs = body["messages"].as_array().ok_or("messages missing")?;
    if msgs.is_empty() || msgs.len() > 5 {
        return Err("1 to 5 messages per request");
    }
    msgs.iter()
        .map(|m| {
            let t = m["text"].as_str().ok_or("text missing")?;
            if m["type"] != "text" || t.chars().count() > 5000 {
                return Err("a text message of at most 5000 characters");
            }
            Ok(t.to_string())
        })
        .collect()
}

fn refuse(status: axum::http::StatusCode, message: &str) -> axum::response::Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// One send request: authorized, within the limits, and (for a reply) with a
/// token the fake issued and nobody used; else refused as LINE does.
fn accept(
    fake: &Fake,
    h: &HeaderMap,
    body: &Value,
    kind: &'static str,
) -> axum::response::Response {
    use axum::http::StatusCode;
    if !authorized(h) {
        return refuse(StatusCode::UNAUTHORIZED, "Authentication failed");
    }
    let mut f = fake.lock().unwrap();
    let to = match kind {
        "reply" => {
            let token = body["replyToken"].as_str().unwrap_or_default().to_string();
            if !f.tokens.remove(&token) {
                return refuse(StatusCode::BAD_REQUEST, "Invalid reply token");
            }
            token
        }
        _ if f.push_429 > 0 => {
            f.push_429 -= 1;
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "The API rate limit has been exceeded.",
            );
        }
        _ => body["to"].as_str().unwrap_or_default().to_string(),
    };
    match texts(body) {
        Ok(t) => {
            f.sent.push((kind, to, t));
            Json(json!({})).into_response()
        }
        Err(m) => refuse(StatusCode::BAD_REQUEST, m),
    }
}

async fn reply(
    State(fake): State<Fake>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    accept(&fake, &h, &body, "reply")
}

async fn push(
    State(fake): State<Fake>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    accept(&fake, &h, &body, "push")
}

/// POSTs `body` to the LINE route of the listener at `addr`; the status.
async fn post_to(addr: std::net::SocketAddr, sig: Option<&str>, body: Vec<u8>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/line/webhook"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = sig {
        req = req.header("x-line-signature", s);
    }
    req.send().await.unwrap().status().as_u16()
}

struct Harness {
    env: Env,
    fake: Fake,
    addr: std::net::SocketAddr,
    next_event: Mutex<u32>,
    _tls: TestTls,
}

async fn harness() -> Harness {
    harness_with(env(&["line"])).await
}

/// The fake Messaging API over TLS: its state, base URL and certificates.
async fn serve_fake() -> (Fake, String, TestTls) {
    let fake: Fake = Arc::default();
    let router = Router::new()
        .route("/v2/bot/message/reply", post(reply))
        .route("/v2/bot/message/push", post(push))
        .with_state(fake.clone());
    let tls = test_tls();
    let base = serve_tls(router, &tls).await;
    (fake, base, tls)
}

async fn harness_with(env: Env) -> Harness {
    let (fake, base, tls) = serve_fake().await;
    let client = Arc::new(
        LineClient::new(
            &http_config(&base, &tls),
            &Redacted::from(TOKEN.to_string()),
        )
        .unwrap(),
    );
    env.replies.register("line", client.clone());
    let addr = start_webhook(&env, "/line/webhook", |hooks| {
        line::webhook_route(hooks, Line::new(SECRET.as_bytes(), "").unwrap(), client)
    })
    .await;
    Harness {
        env,
        fake,
        addr,
        next_event: Mutex::new(0),
        _tls: tls,
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Harness {
    /// A text message event from `user` in `source`, with a fresh reply
    /// token the fake will accept once, and a fresh event id.
    fn event(&self, source: Value, text: &str) -> Value {
        let mut n = self.next_event.lock().unwrap();
        *n += 1;
        let token = format!("reply-token-{n}");
        self.fake.lock().unwrap().tokens.insert(token.clone());
        json!({
            "type": "message", "mode": "active", "timestamp": NOW * 1000,
            "webhookEventId": format!("01FZ74A0TDDPYRVKNK77XK{n:04}"),
            "deliveryContext": {"isRedelivery": false},
            "replyToken": token,
            "source": source,
            "message": {"id": n.to_string(), "type": "text", "text": text},
        })
    }

    fn dm(&self, text: &str) -> Value {
        self.event(json!({"type": "user", "userId": USER}), text)
    }

    async fn post_raw(&self, sig: Option<&str>, body: Vec<u8>) -> u16 {
        post_to(self.addr, sig, body).await
    }

    async fn post(&self, events: Vec<Value>) -> u16 {
        let body = json!({"destination": "Ufedcba9876543210fedcba9876543210", "events": events})
            .to_string()
            .into_bytes();
        self.post_raw(Some(&sign(&body)), body).await
    }

    async fn sent(&self, n: usize) -> Vec<(&'static str, String, Vec<String>)> {
        eventually("LINE messages", || {
            self.fake.lock().unwrap().sent.len() >= n
        })
        .await;
        self.fake.lock().unwrap().sent.clone()
    }
}

#[tokio::test]
async fn pairing_by_reply_token_then_task_replies_pushed() {
    let h = harness().await;
    assert_eq!(h.post(vec![h.dm("hello")]).await, 200);
    let sent = h.sent(1).await;
    assert_eq!(
        sent[0],
        (
            "reply",
            "reply-token-1".into(),
            vec![PAIRING_PROMPT.to_string()]
        )
    );

    let code = h.env.pairing.issue("line").unwrap();
    assert_eq!(
        h.post(vec![h.dm(&format!("/pair {}", code.code.as_str()))])
            .await,
        200
    );
    assert_eq!(h.sent(2).await[1].2, [PAIRED_REPLY]);

    assert_eq!(h.post(vec![h.dm("how full is the disk?")]).await, 200);
    assert_eq!(h.sent(3).await[2].2, [ACK]);
    let task = h.env.try_task().unwrap();
    assert_eq!(
        (task.inbound.channel(), task.user.sender.as_str()),
        ("line", USER)
    );
    // The task's later answer has no token left: it is pushed to the chat.
    h.env.replies.deliver("line", USER, "done").await.unwrap();
    assert_eq!(
        h.sent(4).await[3],
        ("push", USER.into(), vec!["done".to_string()])
    );
    assert_eq!(
        h.env.audited("gateway.message"),
        ["pairing_prompt", "redeem_pairing", "authorized_paired"]
    );
}

#[tokio::test]
async fn long_answers_are_split_to_the_platform_limits_and_429_waited_out() {
    let h = harness().await;
    // The pairing prompt uses the message's reply token; a task's
    // 26,000-character answer later is pushed in 6 pieces: 5 in one request
    // (answered 429 once, then accepted), the sixth in a second.
    assert_eq!(h.post(vec![h.dm("hi")]).await, 200);
    assert_eq!(h.sent(1).await[0].0, "reply");
    h.fake.lock().unwrap().push_429 = 1;
    let long = "x".repeat(26_000);
    h.env.replies.deliver("line", USER, &long).await.unwrap();
    let sent = h.sent(3).await;
    let lens = |i: usize| {
        sent[i]
            .2
            .iter()
            .map(|t| t.chars().count())
            .collect::<Vec<_>>()
    };
    assert_eq!((sent[1].0, lens(1)), ("push", vec![5000; 5]));
    assert_eq!((sent[2].0, lens(2)), ("push", vec![1000]));
}

#[tokio::test]
async fn a_used_reply_token_falls_back_to_push() {
    let h = harness().await;
    let ev = h.dm("hello");
    // Someone else used the token first: the fake refuses it.
    let token = ev["replyToken"].as_str().unwrap().to_string();
    assert_eq!(h.post(vec![ev.clone()]).await, 200);
    h.sent(1).await;
    let mut again = h.dm("hello again");
    again["replyToken"] = json!(token);
    // A second prompt inside the window is not sent; a pairing code's
    // answer is. Issue one and redeem it with the used token.
    let code = h.env.pairing.issue("line").unwrap();
    again["message"]["text"] = json!(format!("/pair {}", code.code.as_str()));
    assert_eq!(h.post(vec![again]).await, 200);
    let sent = h.sent(2).await;
    assert_eq!(
        sent[1],
        ("push", USER.into(), vec![PAIRED_REPLY.to_string()])
    );
}

#[tokio::test]
async fn groups_need_a_mention_and_one_body_carries_several_events() {
    let h = harness_with(env_with(&["line"], |c| {
        c.allowlist = vec![USER.into()];
        c.group_allowlist = vec![GROUP.into()];
    }))
    .await;
    let group = json!({"type": "group", "groupId": GROUP, "userId": USER});
    let plain = h.event(group.clone(), "chatter");
    let mut mention = h.event(group, "@bot status?");
    mention["message"]["mention"] =
        json!({"mentionees": [{"index": 0, "length": 4, "type": "user", "isSelf": true}]});
    let sticker = json!({"type": "follow", "timestamp": NOW * 1000, "source": {"type": "user", "userId": USER}});
    assert_eq!(h.post(vec![plain, mention, sticker]).await, 200);
    let sent = h.sent(1).await;
    assert_eq!(sent[0].0, "reply");
    assert_eq!(sent[0].2, [ACK]);
    let task = h.env.try_task().unwrap();
    assert_eq!(task.inbound.chat(), GROUP);
    assert!(
        h.env.try_task().is_none(),
        "the unmentioned message is no task"
    );
}

#[tokio::test]
async fn replays_hostile_and_unsigned_bodies_change_nothing() {
    let h = harness().await;
    let ev = h.dm("hello");
    assert_eq!(h.post(vec![ev.clone()]).await, 200);
    h.sent(1).await;
    let before = h.env.snapshot();
    let entries = h.env.audit.entries().len();

    // The same event again (LINE's redelivery, or a captured body): dropped.
    assert_eq!(h.post(vec![ev.clone()]).await, 200);
    assert_eq!(h.env.audited("gateway.replay").len(), 1);

    let body = json!({"destination": "U0", "events": [h.dm("x")]})
        .to_string()
        .into_bytes();
    let mut want = Vec::new();
    assert_eq!(h.post_raw(None, body.clone()).await, 401);
    want.push("bad_auth_header");
    assert_eq!(h.post_raw(Some(&sign(b"other")), body.clone()).await, 401);
    want.push("bad_signature");
    assert_eq!(h.post_raw(Some("***"), body.clone()).await, 401);
    want.push("bad_auth_header");
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(h.post_raw(Some(&sign(&big)), big).await, 413);
    want.push("body_too_large");
    for hostile in [
        &b"not json"[..],
        b"{\"events\": 5}",
        b"{\"destination\": \"U0\"}",
        b"\xff\xfe",
    ] {
        assert_eq!(
            h.post_raw(Some(&sign(hostile)), hostile.to_vec()).await,
            400
        );
        want.push("malformed");
    }
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({"type": "follow", "timestamp": 0}))
        .collect();
    assert_eq!(h.post(too_many).await, 400);
    want.push("malformed");
    // A signed body with one bad event: the event is audited as malformed.
    assert_eq!(
        h.post(vec![json!({"type": "message", "timestamp": NOW * 1000})])
            .await,
        200
    );

    assert_eq!(h.env.audited("gateway.webhook_rejected"), want);
    assert_eq!(h.env.audited("gateway.inbound_rejected"), ["malformed"]);
    assert_eq!(h.env.snapshot(), before);
    assert_eq!(
        h.fake.lock().unwrap().sent.len(),
        1,
        "nothing more was sent"
    );
    assert!(h.env.audit.entries().len() > entries);
}

/// Started by the runner from its settings like any platform: the route is
/// served at `/line/webhook` and the answer leaves through the client it
/// registered (the fake's certificate from `ca_file`).
#[tokio::test]
async fn the_runner_serves_a_configured_line_channel() {
    use cowork::gateway::{GatewaySettings, TransportKind, TransportSettings};
    let h = harness().await;
    let (fake, base, tls) = serve_fake().await;
    let ca = h.env.dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let mut settings = GatewaySettings::default();
    settings.channels.insert(
        "line".into(),
        cowork::gateway::ChannelSettings {
            transport: TransportSettings {
                kind: TransportKind::Line,
                api_base: Some(base),
                token_secret: Some("line_token".into()),
                signing_secret: Some("line_secret".into()),
                ca_file: Some(ca),
                ..TransportSettings::default()
            },
            ..Default::default()
        },
    );
    let vault = Vault(
        [("line_token", TOKEN), ("line_secret", SECRET)]
            .into_iter()
            .collect(),
    );
    let running = start_runner(&h.env, &settings, &vault).await;
    assert!(running.failed.is_empty(), "{:?}", running.failed);
    let addr = running.webhook_addr.unwrap();
    let ev = h.dm("hello");
    fake.lock()
        .unwrap()
        .tokens
        .insert(ev["replyToken"].as_str().unwrap().to_string());
    let body = json!({"destination": "U0", "events": [ev]})
        .to_string()
        .into_bytes();
    assert_eq!(post_to(addr, Some(&sign(&body)), body).await, 200);
    eventually("the reply", || !fake.lock().unwrap().sent.is_empty()).await;
    assert_eq!(fake.lock().unwrap().sent[0].2, [PAIRING_PROMPT]);
    running.stop();
}
