//! Discord Gateway on loopback: a fake Gateway WebSocket over TLS and a fake
//! REST API over TLS. Covers: Hello → Identify (token, intents) → READY;
//! heartbeats carrying the last sequence and acknowledged; MESSAGE_CREATE from
//! an unknown user → pairing prompt → code redeemed → message accepted
//! (TaskSink) → replies posted over REST; the bot's own and other bots'
//! messages ignored; op 7 Reconnect → Resume with session id and sequence on
//! the resume URL; a replayed message id dropped and audited; op 9 Invalid
//! Session (not resumable) → a fresh Identify; hostile MESSAGE_CREATE payloads
//! audited; shutdown; a MESSAGE_CREATE whose dispatch failed asked for again
//! by the resume (the sequence moves only past handled events).

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::discord::DiscordClient;
use cowork::gateway::channels::discord::{
    DEFAULT_INTENTS, DiscordGateway, GatewayConfig, parse_message_create, run_gateway,
};
use cowork::gateway::{PAIRED_REPLY, PAIRING_PROMPT};
use futures_util::{SinkExt, StreamExt};
use gateway_transport_common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const BOT_TOKEN: &str = "discord-bot-token.gateway";
const BOT_ID: &str = "700000000000000001";
const USER: &str = "800000000000000042";
const DM: &str = "930000000000000001";

#[derive(Default)]
struct Fake {
    ws_url: std::sync::OnceLock<String>,
    code: std::sync::OnceLock<String>,
    identifies: Mutex<Vec<Value>>,
    resumes: Mutex<Vec<Value>>,
    heartbeats: Mutex<Vec<Value>>,
    rest: Mutex<Vec<(String, String)>>,
}

fn msg(id: &str, author: &str, text: &str, bot: bool) -> Value {
    json!({"id": id, "channel_id": DM, "type": 0, "content": text, "mentions": [],
           "attachments": [], "author": {"id": author, "username": "ada", "bot": bot}})
}

fn dispatch(s: i64, t: &str, d: Value) -> Message {
    Message::Text(json!({"op": 0, "s": s, "t": t, "d": d}).to_string().into())
}

/// Reads frames, acking heartbeats, until one with another op arrives (or the
/// socket closes: `None`).
async fn next_op(ws: &mut FakeWs, f: &Fake) -> Option<Value> {
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["op"] == 1 {
            f.heartbeats.lock().unwrap().push(v["d"].clone());
            ws.send(Message::Text(json!({"op": 11}).to_string().into()))
                .await
                .unwrap();
            continue;
        }
        return Some(v);
    }
    None
}

/// Acks heartbeats until one carries sequence >= `seq`.
async fn wait_heartbeat(ws: &mut FakeWs, f: &Fake, seq: i64) {
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("closed before heartbeat {seq}");
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!(v["op"], 1, "only heartbeats expected here: {v}");
        f.heartbeats.lock().unwrap().push(v["d"].clone());
        ws.send(Message::Text(json!({"op": 11}).to_string().into()))
            .await
            .unwrap();
        if v["d"].as_i64().unwrap_or(0) >= seq {
            return;
        }
    }
}

/// READY (sequence 1) for `session_id`, resumable at the fake's URL.
async fn send_ready(ws: &mut FakeWs, f: &Fake, session_id: &str) {
    let ready = json!({"v": 10, "session_id": session_id,
        "resume_gateway_url": f.ws_url.get().unwrap(),
        "user": {"id": BOT_ID, "username": "cowork", "bot": true}});
    ws.send(dispatch(1, "READY", ready)).await.unwrap();
}

async fn session(i: usize, mut ws: FakeWs, f: Arc<Fake>) {
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 100}}).to_string();
    ws.send(Message::Text(hello.into())).await.unwrap();
    let first = next_op(&mut ws, &f).await.unwrap();
    match i {
        0 => {
            assert_eq!(first["op"], 2);
            f.identifies.lock().unwrap().push(first);
            send_ready(&mut ws, &f, "sess-1").await;
            ws.send(dispatch(
                2,
                "MESSAGE_CREATE",
                msg("1001", USER, "hello", false),
            ))
            .await
            .unwrap();
            let pair = format!("/pair {}", f.code.get().unwrap());
            ws.send(dispatch(
                3,
                "MESSAGE_CREATE",
                msg("1002", USER, &pair, false),
            ))
            .await
            .unwrap();
            // Our own message and another bot's: ignored.
            ws.send(dispatch(
                4,
                "MESSAGE_CREATE",
                msg("1003", BOT_ID, "echo", true),
            ))
            .await
            .unwrap();
            ws.send(dispatch(
                5,
                "MESSAGE_CREATE",
                msg("1004", "555", "spam", true),
            ))
            .await
            .unwrap();
            // Hostile payloads: wrong types, missing fields, a NUL.
            ws.send(dispatch(
                6,
                "MESSAGE_CREATE",
                json!({"id": 5, "channel_id": DM}),
            ))
            .await
            .unwrap();
            ws.send(dispatch(
                7,
                "MESSAGE_CREATE",
                msg("1005", USER, "a\u{0}b", false),
            ))
            .await
            .unwrap();
            ws.send(Message::Text("{\"op\": \"x\"".into()))
                .await
                .unwrap();
            wait_heartbeat(&mut ws, &f, 7).await;
            ws.send(Message::Text(
                json!({"op": 7, "d": null}).to_string().into(),
            ))
            .await
            .unwrap();
            while next_op(&mut ws, &f).await.is_some() {}
        }
        1 => {
            assert_eq!(first["op"], 6, "resume after op 7: {first}");
            f.resumes.lock().unwrap().push(first);
            ws.send(dispatch(8, "RESUMED", json!({}))).await.unwrap();
            ws.send(dispatch(
                9,
                "MESSAGE_CREATE",
                msg("1006", USER, "run the backups", false),
            ))
            .await
            .unwrap();
            // A replay of an already handled message id.
            ws.send(dispatch(
                10,
                "MESSAGE_CREATE",
                msg("1006", USER, "run the backups", false),
            ))
            .await
            .unwrap();
            wait_heartbeat(&mut ws, &f, 10).await;
            ws.send(Message::Text(
                json!({"op": 9, "d": false}).to_string().into(),
            ))
            .await
            .unwrap();
            while next_op(&mut ws, &f).await.is_some() {}
        }
        _ => {
            assert_eq!(first["op"], 2, "identify anew after op 9 false: {first}");
            f.identifies.lock().unwrap().push(first);
            send_ready(&mut ws, &f, "sess-2").await;
            while next_op(&mut ws, &f).await.is_some() {}
        }
    }
}

async fn create_message(
    State(f): State<Arc<Fake>>,
    Path(channel): Path<String>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    assert_eq!(
        headers.get("authorization").unwrap().to_str().unwrap(),
        format!("Bot {BOT_TOKEN}")
    );
    f.rest.lock().unwrap().push((
        channel.clone(),
        body["content"].as_str().unwrap().to_string(),
    ));
    Json(json!({"id": "1", "channel_id": channel}))
}

/// The fake REST API, then the gateway loop against `ws_url`.
async fn start_gateway(
    env: &Env,
    fake: &Arc<Fake>,
    tls: &TestTls,
    ws_url: String,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    fake.ws_url.set(ws_url.clone()).unwrap();
    let rest = Router::new()
        .route("/api/v10/channels/{id}/messages", post(create_message))
        .with_state(fake.clone());
    let base = serve_tls(rest, tls).await;
    let replies = DiscordClient::new(
        &http_config(&format!("{base}/api/v10"), tls),
        &Redacted::from(BOT_TOKEN.to_string()),
    )
    .unwrap();
    let mut cfg = GatewayConfig::new(format!("{ws_url}?v=10&encoding=json"));
    cfg.extra_root_pem = Some(tls.ca_pem.clone());
    cfg.reidentify_delay_ms = 10..20;
    let gw = DiscordGateway::new(cfg, Redacted::from(BOT_TOKEN.to_string()));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    env.replies.register("discord", Arc::new(replies));
    let runner = tokio::spawn(run_gateway(
        gw,
        env.dispatcher.clone(),
        cowork::gateway::transport::pacer::Pacer::unobserved("discord"),
        shutdown,
    ));
    (stop, runner)
}

#[tokio::test]
async fn gateway_session_pairing_resume_and_reidentify() {
    let env = env(&["discord"]);
    let code = env.pairing.issue("discord").unwrap();
    let tls = test_tls();
    let fake = Arc::new(Fake::default());
    fake.code.set(code.code.as_str().to_string()).unwrap();
    let f2 = fake.clone();
    let ws_url = serve_ws_tls(&tls, move |i, ws| session(i, ws, f2.clone())).await;
    let (stop, runner) = start_gateway(&env, &fake, &tls, ws_url).await;

    eventually("second identify", || {
        fake.identifies.lock().unwrap().len() == 2
    })
    .await;
    eventually("three replies", || fake.rest.lock().unwrap().len() == 3).await;
    let rest: Vec<(String, String)> = fake.rest.lock().unwrap().clone();
    assert!(rest.iter().all(|r| r.0 == DM));
    let texts: Vec<&str> = rest.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(texts, vec![PAIRING_PROMPT, PAIRED_REPLY, ACK]);

    let id = fake.identifies.lock().unwrap()[0].clone();
    assert_eq!(id["d"]["token"], BOT_TOKEN);
    assert_eq!(id["d"]["intents"], DEFAULT_INTENTS);
    let resume = fake.resumes.lock().unwrap()[0].clone();
    assert_eq!(resume["d"]["session_id"], "sess-1");
    assert_eq!(resume["d"]["seq"], 7);
    assert!(fake.heartbeats.lock().unwrap().iter().any(|h| h == 10));

    let task = env.try_task().unwrap();
    assert_eq!(task.inbound.text(), "run the backups");
    assert!(env.try_task().is_none());
    assert_eq!(env.audited("gateway.replay").len(), 1);
    assert_eq!(
        env.audited("gateway.inbound_rejected"),
        vec!["malformed", "malformed", "malformed"]
    );
    assert_eq!(
        env.audited("gateway.message"),
        vec!["pairing_prompt", "redeem_pairing", "authorized_paired"]
    );
    assert!(!format!("{:?}", env.audit.entries()).contains(BOT_TOKEN));
    stop_runner(stop, runner).await;
}

#[test]
fn message_create_parsing() {
    let m = |v: Value| parse_message_create(v.to_string().as_bytes(), Some(BOT_ID));
    // Guild message mentioning the bot, with an attachment.
    let (id, i) = m(
        json!({"id": "1", "channel_id": "2", "guild_id": "3", "type": 0,
        "content": "<@700000000000000001> hi", "author": {"id": "4", "global_name": "Ada"},
        "mentions": [{"id": BOT_ID}],
        "attachments": [{"filename": "a.txt", "content_type": "text/plain", "size": 3}]}),
    )
    .unwrap()
    .unwrap();
    assert_eq!(id, "1");
    assert_eq!(i.account(), Some("3"));
    assert!(i.mentions_bot());
    assert_eq!(i.attachments().len(), 1);
    assert_eq!(i.sender_name(), Some("Ada"));
    // System message types, webhooks, bots: not prompts.
    for v in [
        json!({"id": "1", "channel_id": "2", "type": 7, "author": {"id": "4"}}),
        json!({"id": "1", "channel_id": "2", "type": 0, "webhook_id": "9", "author": {"id": "4"}}),
        json!({"id": "1", "channel_id": "2", "type": 0, "author": {"id": "4", "bot": true}}),
    ] {
        assert!(m(v).unwrap().is_none());
    }
    // Hostile.
    for v in [
        json!({"id": "1", "channel_id": "2", "type": 99999, "author": {"id": "4"}}),
        json!({"id": "1", "channel_id": "2", "type": 0, "author": {"id": 4}}),
        json!({"id": "1", "type": 0, "author": {"id": "4"}}),
        json!({"id": "1", "channel_id": "", "type": 0, "author": {"id": "4"}}),
        json!({"id": "1", "channel_id": "2", "type": 0, "author": {"id": "4"},
               "attachments": [{"filename": "../x"}]}),
        json!({"id": "1", "channel_id": "2", "type": 0, "author": {"id": "4"},
               "attachments": [{"filename": "x", "size": -5}]}),
    ] {
        assert!(m(v.clone()).is_err(), "{v}");
    }
    assert!(parse_message_create(b"\xff", None).is_err());
}

/// A MESSAGE_CREATE whose dispatch failed (the trail unreachable) does not
/// move the sequence: the resume asks for it again (Discord replays what came
/// after the given number) and it is handled once.
#[tokio::test]
async fn a_message_that_failed_is_asked_for_again_on_resume() {
    let audit = Arc::new(FlakyAudit::default());
    audit.fail_next(1);
    let env = env_full(&["discord"], |_| {}, ACK, Some(audit.clone()));
    let tls = test_tls();
    let fake = Arc::new(Fake::default());
    let f2 = fake.clone();
    let ws_url = serve_ws_tls(&tls, move |i, mut ws: FakeWs| {
        let f = f2.clone();
        async move {
            let hello = json!({"op": 10, "d": {"heartbeat_interval": 100}}).to_string();
            ws.send(Message::Text(hello.into())).await.unwrap();
            let first = next_op(&mut ws, &f).await.unwrap();
            if i == 0 {
                assert_eq!(first["op"], 2);
                send_ready(&mut ws, &f, "sess-1").await;
                ws.send(dispatch(
                    2,
                    "MESSAGE_CREATE",
                    msg("2001", USER, "hello", false),
                ))
                .await
                .unwrap();
            } else {
                assert_eq!(first["op"], 6, "resume: {first}");
                let seq = first["d"]["seq"].as_i64().unwrap();
                f.resumes.lock().unwrap().push(first);
                // Discord replays every event after `seq`.
                if seq < 2 {
                    ws.send(dispatch(
                        2,
                        "MESSAGE_CREATE",
                        msg("2001", USER, "hello", false),
                    ))
                    .await
                    .unwrap();
                }
                ws.send(dispatch(3, "RESUMED", json!({}))).await.unwrap();
            }
            while next_op(&mut ws, &f).await.is_some() {}
        }
    })
    .await;
    let (stop, runner) = start_gateway(&env, &fake, &tls, ws_url).await;
    eventually("the prompt", || fake.rest.lock().unwrap().len() == 1).await;
    assert_eq!(fake.resumes.lock().unwrap()[0]["d"]["seq"], 1);
    assert_eq!(fake.rest.lock().unwrap()[0].1, PAIRING_PROMPT);
    assert_eq!(audit.count("gateway.replay"), 0);
    stop_runner(stop, runner).await;
}
