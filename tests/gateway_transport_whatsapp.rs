//! WhatsApp Business (Cloud API): the real client and webhook route against a
//! local fake of the Graph API over TLS (`/{phone_number_id}/messages`, its
//! error for a message past the 24-hour window): the `GET` handshake, pairing
//! end to end, answers to a phone number or to a business-scoped id, long
//! answers split to 4,096 characters, the window's refusal said in one
//! sentence, replays, and hostile or unsigned bodies (401/403/400/413,
//! audited, nothing changed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_transport_common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::whatsapp::{self, OUTSIDE_WINDOW, WhatsApp, WhatsAppClient};
use cowork::gateway::{PAIRED_REPLY, PAIRING_PROMPT};
use gateway_transport_common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const APP_SECRET: &str = "whatsapp-app-secret-0123456789";
const VERIFY_TOKEN: &str = "verify-token-0123456789";
const TOKEN: &str = "EAAG-whatsapp-access-token";
const NUMBER: &str = "106540352242922";
const PHONE: &str = "16505551234";
const BSUID: &str = "US.13491208655302741918";

/// What the fake saw: (the address key, the address, the text).
#[derive(Default)]
struct FakeGraph {
    sent: Vec<(String, String, String)>,
    /// Chats WhatsApp says are past the window.
    closed: Vec<String>,
}

type Fake = Arc<Mutex<FakeGraph>>;

async fn messages(
    State(fake): State<Fake>,
    Path(number): Path<String>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let auth = h.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) || number != NUMBER {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Invalid OAuth access token", "code": 190}})),
        )
            .into_response();
    }
    let (key, to) = match (body["to"].as_str(), body["recipient"].as_str()) {
        (Some(t), _) => ("to", t),
        (None, Some(r)) => ("recipient", r),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": "no recipient", "code": 100}})),
            )
                .into_response();
        }
    };
    let text = body["text"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(body["messaging_product"], "whatsapp");
    assert!(text.chars().count() <= 4096);
    let mut f = fake.lock().unwrap();
    if f.closed.iter().any(|c| c == to) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {
            "message": "(#131047) Re-engagement message", "code": 131047}})),
        )
            .into_response();
    }
    f.sent.push((key.to_string(), to.to_string(), text));
    Json(json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.out"}]}))
        .into_response()
}

struct Harness {
    env: Env,
    fake: Fake,
    addr: std::net::SocketAddr,
    client: Arc<WhatsAppClient>,
    _tls: TestTls,
}

async fn harness() -> Harness {
    let env = env(&["whatsapp"]);
    let fake: Fake = Arc::default();
    let router = Router::new()
        .route("/v21.0/{number}/messages", post(messages))
        .with_state(fake.clone());
    let tls = test_tls();
    let base = serve_tls(router, &tls).await;
    let client = Arc::new(
        WhatsAppClient::new(
            &http_config(&format!("{base}/v21.0"), &tls),
            &Redacted::from(TOKEN.to_string()),
            NUMBER,
        )
        .unwrap(),
    );
    env.replies.register("whatsapp", client.clone());
    let verifier = WhatsApp::new(APP_SECRET.as_bytes(), VERIFY_TOKEN, NUMBER).unwrap();
    let route_client = client.clone();
    let addr = start_webhook(&env, "/whatsapp/webhook", |hooks| {
        whatsapp::webhook_route(hooks, verifier, route_client)
    })
    .await;
    Harness {
        env,
        fake,
        addr,
        client,
        _tls: tls,
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A body with one text message `id` from `contact` (a `contacts[]` entry)
/// and `from` (the phone number, when the sender shares it).
fn body(contact: Value, from: Option<&str>, id: &str, text: &str) -> Vec<u8> {
    let mut msg =
        json!({"id": id, "timestamp": NOW.to_string(), "type": "text", "text": {"body": text}});
    if let Some(f) = from {
        msg["from"] = json!(f);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
            "contacts": [contact], "messages": [msg]}}]}]})
    .to_string()
    .into_bytes()
}

fn from_phone(id: &str, text: &str) -> Vec<u8> {
    body(
        json!({"profile": {"name": "Ann"}, "wa_id": PHONE}),
        Some(PHONE),
        id,
        text,
    )
}

impl Harness {
    async fn post_raw(&self, sig: Option<&str>, body: Vec<u8>) -> u16 {
        let mut req = reqwest::Client::new()
            .post(format!("http://{}/whatsapp/webhook", self.addr))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = sig {
            req = req.header("x-hub-signature-256", s);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn post(&self, body: Vec<u8>) -> u16 {
        self.post_raw(Some(&sign(&body)), body).await
    }

    async fn get(&self, query: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}/whatsapp/webhook?{query}", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn sent(&self, n: usize) -> Vec<(String, String, String)> {
        eventually("Graph API sends", || {
            self.fake.lock().unwrap().sent.len() >= n
        })
        .await;
        self.fake.lock().unwrap().sent.clone()
    }
}

#[tokio::test]
async fn the_handshake_answers_only_the_verify_token() {
    let h = harness().await;
    let ok = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444");
    assert_eq!(h.get(&ok).await, (200, "1158201444".to_string()));
    let before = h.env.snapshot();
    for bad in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        &format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=%3Cscript%3E"),
    ] {
        assert_eq!(h.get(bad).await.0, 403, "{bad}");
    }
    assert_eq!(h.env.audited("gateway.webhook_rejected").len(), 3);
    assert_eq!(h.env.snapshot(), before);
}

#[tokio::test]
async fn pairing_then_answers_to_the_phone_number_and_task_replies() {
    let h = harness().await;
    assert_eq!(h.post(from_phone("wamid.1", "hello")).await, 200);
    assert_eq!(
        h.sent(1).await[0],
        ("to".into(), PHONE.into(), PAIRING_PROMPT.into())
    );
    let code = h.env.pairing.issue("whatsapp").unwrap();
    assert_eq!(
        h.post(from_phone(
            "wamid.2",
            &format!("/pair {}", code.code.as_str())
        ))
        .await,
        200
    );
    assert_eq!(h.sent(2).await[1].2, PAIRED_REPLY);
    assert_eq!(h.post(from_phone("wamid.3", "status?")).await, 200);
    assert_eq!(h.sent(3).await[2].2, ACK);
    let task = h.env.try_task().unwrap();
    assert_eq!(
        (task.user.sender.as_str(), task.inbound.chat()),
        (PHONE, PHONE)
    );
    // A long answer later: 4,096-character pieces.
    let long = "y".repeat(9000);
    h.env
        .replies
        .deliver("whatsapp", PHONE, &long)
        .await
        .unwrap();
    let lens: Vec<usize> = h.sent(6).await[3..]
        .iter()
        .map(|s| s.2.chars().count())
        .collect();
    assert_eq!(lens, [4096, 4096, 808]);
}

#[tokio::test]
async fn a_username_user_is_known_and_answered_by_business_scoped_id() {
    let h = harness().await;
    let b = body(
        json!({"profile": {"name": "Bo"}, "user_id": BSUID}),
        None,
        "wamid.9",
        "hi",
    );
    assert_eq!(h.post(b).await, 200);
    assert_eq!(
        h.sent(1).await[0],
        ("recipient".into(), BSUID.into(), PAIRING_PROMPT.into())
    );
    assert_eq!(
        h.env
            .audit
            .entries()
            .iter()
            .filter(|e| e.subject == format!("whatsapp:{BSUID}"))
            .count(),
        1
    );
}

#[tokio::test]
async fn past_the_service_window_the_refusal_says_why() {
    let h = harness().await;
    h.fake.lock().unwrap().closed.push(PHONE.into());
    let e = h
        .client
        .send_text(PHONE, "late answer")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(OUTSIDE_WINDOW), "{e}");
    assert!(
        h.env
            .replies
            .deliver("whatsapp", PHONE, "late")
            .await
            .unwrap_err()
            .contains("template")
    );
    assert!(h.fake.lock().unwrap().sent.is_empty());
}

#[tokio::test]
async fn replays_hostile_and_unsigned_bodies_change_nothing() {
    let h = harness().await;
    let first = from_phone("wamid.1", "hello");
    assert_eq!(h.post(first.clone()).await, 200);
    h.sent(1).await;
    let before = h.env.snapshot();
    assert_eq!(h.post(first.clone()).await, 200);
    assert_eq!(h.env.audited("gateway.replay").len(), 1);

    let b = from_phone("wamid.2", "x");
    let mut want = Vec::new();
    assert_eq!(h.post_raw(None, b.clone()).await, 401);
    want.push("bad_auth_header");
    assert_eq!(h.post_raw(Some(&sign(b"other")), b.clone()).await, 401);
    want.push("bad_signature");
    assert_eq!(h.post_raw(Some("sha1=abc"), b.clone()).await, 401);
    want.push("bad_auth_header");
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(h.post_raw(Some(&sign(&big)), big).await, 413);
    want.push("body_too_large");
    for hostile in [&b"not json"[..], b"{\"object\": 5}", b"\xff\xfe"] {
        assert_eq!(h.post(hostile.to_vec()).await, 400);
        want.push("malformed");
    }
    // Signed, but a message that is not from a WhatsApp id: audited as malformed.
    let spoof = body(
        json!({"wa_id": "alice@example.com"}),
        Some("alice@example.com"),
        "wamid.3",
        "hi",
    );
    assert_eq!(h.post(spoof).await, 200);
    assert_eq!(h.env.audited("gateway.webhook_rejected"), want);
    assert_eq!(h.env.audited("gateway.inbound_rejected"), ["malformed"]);
    assert_eq!(h.env.snapshot(), before);
    assert_eq!(h.fake.lock().unwrap().sent.len(), 1);
}
