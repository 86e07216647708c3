//! Discord transport end to end on loopback: the interactions endpoint
//! (`/discord/interactions`: Ed25519 over timestamp ‖ body, replay window,
//! PING → type 1, application command → type 4 with the reply, or deferred
//! ephemeral type 5 when there is none; application id check; guild limits)
//! and reply pieces past the first 2000 characters through a fake REST API
//! over TLS (`POST /channels/{id}/messages`, Bot token). An unknown user goes
//! through pairing prompt → code redemption → accepted command (TaskSink) →
//! reply; bad signatures, stale timestamps, wrong application, replayed
//! interaction ids and hostile bodies are 4xx, audited, store unchanged.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::discord::DiscordClient;
use cowork::gateway::channels::discord::{self, Discord};
use cowork::gateway::{PAIRED_REPLY, PAIRING_PROMPT};
use ed25519_dalek::{Signer, SigningKey};
use gateway_transport_common::*;
use serde_json::{Value, json};

const APP_ID: &str = "1100000000000000000";
const BOT_TOKEN: &str = "discord-bot-token.abc";

#[derive(Default)]
struct FakeDiscord {
    messages: Vec<(String, String)>,
    /// `retry_after` (seconds) of HTTP 429 answers served first.
    rate_limits: std::collections::VecDeque<f64>,
    attempts: usize,
}
type Fake = Arc<Mutex<FakeDiscord>>;

async fn create_message(
    State(fake): State<Fake>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bot {BOT_TOKEN}"))
    {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401: Unauthorized", "code": 0})),
        );
    }
    let text = body["content"].as_str().unwrap().to_string();
    assert!(text.chars().count() <= 2000);
    assert_eq!(body["allowed_mentions"]["parse"], json!([]));
    let mut f = fake.lock().unwrap();
    f.attempts += 1;
    if let Some(secs) = f.rate_limits.pop_front() {
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            Json(
                json!({"message": "You are being rate limited.", "retry_after": secs, "global": false}),
            ),
        );
    }
    f.messages.push((channel.clone(), text));
    (
        axum::http::StatusCode::OK,
        Json(json!({"id": "1", "channel_id": channel})),
    )
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

struct Harness {
    env: Env,
    fake: Fake,
    addr: std::net::SocketAddr,
    _tls: TestTls,
}

async fn harness_with(tweak: impl Fn(&mut cowork::gateway::ChannelSettings)) -> Harness {
    harness_full(env_with(&["discord"], tweak)).await
}

/// The fake REST API and a client for it.
async fn start_rest() -> (Fake, DiscordClient, TestTls) {
    let fake: Fake = Arc::default();
    let router = Router::new()
        .route("/api/v10/channels/{id}/messages", post(create_message))
        .with_state(fake.clone());
    let tls = test_tls();
    let base = serve_tls(router, &tls).await;
    let client = DiscordClient::new(
        &http_config(&format!("{base}/api/v10"), &tls),
        &Redacted::from(BOT_TOKEN.to_string()),
    )
    .unwrap();
    (fake, client, tls)
}

#[tokio::test]
async fn rate_limited_message_waits_and_is_delivered_or_fails_after_three_tries() {
    let (fake, client, _tls) = start_rest().await;
    fake.lock().unwrap().rate_limits.push_back(0.05);
    client.create_message("1234", "hello").await.unwrap();
    {
        let f = fake.lock().unwrap();
        assert_eq!(f.attempts, 2);
        assert_eq!(f.messages, vec![("1234".to_string(), "hello".to_string())]);
    }
    fake.lock()
        .unwrap()
        .rate_limits
        .extend([0.01, 0.01, 0.01, 0.01]);
    let e = client.create_message("1234", "again").await.unwrap_err();
    assert_rate_limited(&e, "3 tries", BOT_TOKEN);
    let f = fake.lock().unwrap();
    assert_eq!(f.attempts, 5);
    assert_eq!(f.messages.len(), 1);
}

async fn harness_full(env: Env) -> Harness {
    let (fake, client, tls) = start_rest().await;
    let verifier = Discord::new(&hex::encode(key().verifying_key().to_bytes()), APP_ID).unwrap();
    env.replies.register("discord", Arc::new(client));
    let addr = start_webhook(&env, "/discord/interactions", |hooks| {
        discord::interactions_route(hooks, verifier)
    })
    .await;
    Harness {
        env,
        fake,
        addr,
        _tls: tls,
    }
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

fn dm_command(id: &str, user: &str, name: &str, value: &str) -> Vec<u8> {
    let opt = if name == "pair" { "code" } else { "prompt" };
    json!({
        "id": id,
        "application_id": APP_ID,
        "type": 2,
        "token": "interaction-token-secret",
        "version": 1,
        "channel_id": "920000000000000001",
        "user": {"id": user, "username": "ada"},
        "data": {"id": "1", "name": name, "type": 1,
                 "options": [{"name": opt, "type": 3, "value": value}]},
    })
    .to_string()
    .into_bytes()
}

impl Harness {
    async fn post_raw(&self, ts: &str, sig: &str, body: Vec<u8>) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("http://{}/discord/interactions", self.addr))
            .header("content-type", "application/json")
            .header(discord::TIMESTAMP_HEADER, ts)
            .header(discord::SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, body: Vec<u8>) -> (u16, Value) {
        let ts = NOW.to_string();
        let mut signed = ts.as_bytes().to_vec();
        signed.extend_from_slice(&body);
        let sig = hex::encode(key().sign(&signed).to_bytes());
        self.post_raw(&ts, &sig, body).await
    }
}

#[tokio::test]
async fn ping_pong() {
    let h = harness().await;
    let body = json!({"id": "1", "application_id": APP_ID, "type": 1, "token": "t", "version": 1});
    let (status, v) = h.post(body.to_string().into_bytes()).await;
    assert_eq!((status, v), (200, json!({"type": 1})));
}

#[tokio::test]
async fn pairing_flow_end_to_end() {
    let h = harness().await;
    let user = "800000000000000042";
    // 1. Unknown user → the prompt as the interaction response.
    let (s, v) = h.post(dm_command("1001", user, "ask", "hello")).await;
    assert_eq!(s, 200);
    assert_eq!(v["type"], 4);
    assert_eq!(v["data"]["content"], PAIRING_PROMPT);
    // Prompt already sent: no reply → deferred, ephemeral, never followed up.
    let (_, v) = h.post(dm_command("1002", user, "ask", "hello?")).await;
    assert_eq!(v, json!({"type": 5, "data": {"flags": 64}}));
    // 2. /pair code:XXXX
    let code = h.env.pairing.issue("discord").unwrap();
    let (_, v) = h
        .post(dm_command("1003", user, "pair", code.code.as_str()))
        .await;
    assert_eq!(v["data"]["content"], PAIRED_REPLY);
    // 3. Accepted: TaskSink sees it; the ack is the response.
    let (_, v) = h
        .post(dm_command("1004", user, "ask", "check the backups"))
        .await;
    assert_eq!(v["data"]["content"], ACK);
    let task = h.env.try_task().unwrap();
    assert_eq!(task.inbound.text(), "check the backups");
    assert_eq!(task.inbound.sender(), user);
    assert_eq!(
        h.env.audited("gateway.message"),
        vec![
            "pairing_prompt",
            "prompt_already_sent",
            "redeem_pairing",
            "authorized_paired"
        ]
    );
    // 4. The interaction token never reaches the audit trail.
    assert!(!format!("{:?}", h.env.audit.entries()).contains("interaction-token-secret"));
}

#[tokio::test]
async fn long_reply_first_piece_in_response_rest_over_rest() {
    let h = harness().await;
    // A dispatcher reply longer than 2000 characters: exercise the client directly
    // and through the REST fake.
    let text = "x".repeat(4500);
    let client = {
        // Reuse the harness fake through a second client with the right token.
        let tls = test_tls();
        let fake = h.fake.clone();
        let router = Router::new()
            .route("/api/v10/channels/{id}/messages", post(create_message))
            .with_state(fake);
        let base = serve_tls(router, &tls).await;
        (
            DiscordClient::new(
                &http_config(&format!("{base}/api/v10"), &tls),
                &Redacted::from(BOT_TOKEN.to_string()),
            )
            .unwrap(),
            tls,
        )
    };
    client
        .0
        .create_message("920000000000000001", &text)
        .await
        .unwrap();
    let msgs = h.fake.lock().unwrap().messages.clone();
    assert_eq!(msgs.len(), 3);
    assert!(msgs.iter().all(|m| m.0 == "920000000000000001"));
    assert_eq!(msgs.iter().map(|m| m.1.as_str()).collect::<String>(), text);
    // Path injection through the channel id is refused before any request.
    assert!(
        client
            .0
            .create_message("1/../../users/@me", "hi")
            .await
            .is_err()
    );
    assert_eq!(h.fake.lock().unwrap().messages.len(), 3);
}

#[tokio::test]
async fn guild_limits_apply() {
    let h = harness_with(|c| {
        c.accounts = vec!["900000000000000001".into()];
        c.allowlist = vec!["800000000000000001".into()];
    })
    .await;
    let cmd = |id: &str, guild: &str| {
        json!({
            "id": id, "application_id": APP_ID, "type": 2, "token": "t", "version": 1,
            "guild_id": guild, "channel_id": "910000000000000001",
            "member": {"user": {"id": "800000000000000001", "username": "ada"}},
            "data": {"id": "1", "name": "ask", "type": 1,
                     "options": [{"name": "prompt", "type": 3, "value": "hi"}]},
        })
        .to_string()
        .into_bytes()
    };
    let (_, v) = h.post(cmd("2001", "900000000000000001")).await;
    assert_eq!(v["data"]["content"], ACK);
    let (_, v) = h.post(cmd("2002", "900000000000000099")).await;
    assert_eq!(v["type"], 5, "another guild: denied, no reply");
    assert_eq!(
        h.env.audited("gateway.message"),
        vec!["authorized_allowlisted", "account_not_allowed"]
    );
}

#[tokio::test]
async fn rejections_are_4xx_audited_and_change_nothing() {
    let h = harness().await;
    assert_eq!(
        h.post(dm_command("3001", "800000000000000042", "ask", "hi"))
            .await
            .0,
        200
    );
    let before = h.env.snapshot();
    let n_before = h.env.audit.entries().len();
    let body = dm_command("3002", "800000000000000042", "ask", "hi");
    let ts = NOW.to_string();
    let mut want = Vec::new();
    // Signature by another key; malformed signature; missing headers.
    let other = SigningKey::from_bytes(&[1; 32]);
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(&body);
    let bad = hex::encode(other.sign(&signed).to_bytes());
    assert_eq!(h.post_raw(&ts, &bad, body.clone()).await.0, 401);
    want.push("bad_signature");
    assert_eq!(h.post_raw(&ts, "zz", body.clone()).await.0, 401);
    want.push("bad_auth_header");
    // Correctly signed with a stale timestamp.
    let old = (NOW - 301).to_string();
    let mut signed = old.as_bytes().to_vec();
    signed.extend_from_slice(&body);
    let sig = hex::encode(key().sign(&signed).to_bytes());
    assert_eq!(h.post_raw(&old, &sig, body.clone()).await.0, 401);
    want.push("stale_timestamp");
    // Another application's interaction.
    let foreign = String::from_utf8(body.clone())
        .unwrap()
        .replace(APP_ID, "1200000000000000000");
    assert_eq!(h.post(foreign.into_bytes()).await.0, 401);
    want.push("application_mismatch");
    // Replayed interaction id.
    assert_eq!(
        h.post(dm_command("3001", "800000000000000042", "ask", "hi"))
            .await
            .0,
        409
    );
    // Oversized.
    assert_eq!(h.post(vec![b'{'; 1024 * 1024 + 1]).await.0, 413);
    want.push("body_too_large");
    // Hostile, correctly signed.
    let hostile: Vec<Vec<u8>> = vec![
        b"\xc3\x28".to_vec(),
        b"[]".to_vec(),
        br#"{"id": 1, "application_id": "1100000000000000000", "type": 2}"#.to_vec(),
        br#"{"id": "1", "application_id": "1100000000000000000", "type": 99999}"#.to_vec(),
        br#"{"id": "1", "application_id": "1100000000000000000", "type": 2, "token": "t"}"#.to_vec(),
        br#"{"id": "1", "application_id": "1100000000000000000", "type": 2, "token": "t", "channel_id": "1", "data": {"name": "ask"}}"#.to_vec(),
        format!("{}{}", "[".repeat(1000), "]".repeat(1000)).into_bytes(),
    ];
    for b in hostile {
        let shown = String::from_utf8_lossy(&b[..b.len().min(60)]).to_string();
        assert_eq!(h.post(b).await.0, 400, "{shown}");
        want.push("malformed");
    }
    assert_eq!(h.env.snapshot(), before);
    let got: Vec<String> = h.env.audit.entries()[n_before..]
        .iter()
        .filter(|e| e.kind == "gateway.webhook_rejected")
        .map(reason)
        .collect();
    assert_eq!(got, want);
    assert_eq!(h.env.audited("gateway.replay").len(), 1);
}

#[tokio::test]
async fn long_reply_through_the_webhook() {
    let long = format!("{}{}", "a".repeat(2000), "b".repeat(1500));
    let h = harness_full(env_full(
        &["discord"],
        |c| c.allowlist = vec!["800000000000000042".into()],
        &long,
        None,
    ))
    .await;
    let (_, v) = h
        .post(dm_command("4001", "800000000000000042", "ask", "hi"))
        .await;
    assert_eq!(v["type"], 4);
    assert_eq!(v["data"]["content"], "a".repeat(2000));
    eventually("rest piece", || h.fake.lock().unwrap().messages.len() == 1).await;
    assert_eq!(
        h.fake.lock().unwrap().messages[0],
        ("920000000000000001".to_string(), "b".repeat(1500))
    );
}
