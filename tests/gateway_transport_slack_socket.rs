//! Slack Socket Mode on loopback: a fake Web API over TLS (`apps.connections.open`
//! with the app token → a `wss://` URL; `chat.postMessage`) and a fake Socket
//! Mode WebSocket over TLS. Covers: hello, every envelope acknowledged with its
//! `envelope_id`, unknown user → pairing prompt → code redeemed → message
//! accepted (TaskSink) → reply posted, `disconnect` → a new connection, a
//! redelivered event (same event_id) dropped and audited, a malformed envelope
//! and payload audited, a wrong app token refused, shutdown; an event whose
//! dispatch failed left unacknowledged and handled on its redelivery.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::slack::Slack;
use cowork::gateway::channels::slack::SlackClient;
use cowork::gateway::channels::slack::{SocketModeClient, run_socket_mode};
use cowork::gateway::transport::pacer::Pacer;
use cowork::gateway::{PAIRED_REPLY, PAIRING_PROMPT};
use futures_util::{SinkExt, StreamExt};
use gateway_transport_common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const APP_TOKEN: &str = "xapp-1-test-app-token";
const BOT_TOKEN: &str = "xoxb-test-bot-token";

#[derive(Default)]
struct FakeSlack {
    ws_url: std::sync::OnceLock<String>,
    opens: AtomicUsize,
    posted: Mutex<Vec<(String, String)>>,
    acks: Mutex<Vec<String>>,
    /// Per connection: the frames to send, then `disconnect` unless last.
    scripts: Mutex<Vec<Vec<String>>>,
}

async fn connections_open(State(f): State<Arc<FakeSlack>>, headers: HeaderMap) -> Json<Value> {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {APP_TOKEN}"))
    {
        return Json(json!({"ok": false, "error": "invalid_auth"}));
    }
    let n = f.opens.fetch_add(1, Ordering::SeqCst);
    Json(json!({"ok": true, "url": format!("{}?ticket={n}", f.ws_url.get().unwrap())}))
}

async fn post_message(
    State(f): State<Arc<FakeSlack>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    assert_eq!(
        headers.get("authorization").unwrap().to_str().unwrap(),
        format!("Bearer {BOT_TOKEN}")
    );
    f.posted.lock().unwrap().push((
        body["channel"].as_str().unwrap().to_string(),
        body["text"].as_str().unwrap().to_string(),
    ));
    Json(json!({"ok": true}))
}

fn envelope(envelope_id: &str, event_id: &str, text: &str) -> String {
    json!({
        "type": "events_api",
        "envelope_id": envelope_id,
        "accepts_response_payload": false,
        "payload": {
            "type": "event_callback", "team_id": "T1", "event_id": event_id,
            "event": {"type": "message", "channel_type": "im", "channel": "D42",
                      "user": "U42", "text": text, "ts": "1.0"}
        }
    })
    .to_string()
}

async fn start(
    scripts: Vec<Vec<String>>,
) -> (Arc<FakeSlack>, SocketModeClient, SlackClient, TestTls) {
    let tls = test_tls();
    let fake = Arc::new(FakeSlack {
        scripts: Mutex::new(scripts),
        ..FakeSlack::default()
    });
    let f2 = fake.clone();
    let ws_url = serve_ws_tls(&tls, move |i, mut ws: FakeWs| {
        let f = f2.clone();
        async move {
            let (script, last) = {
                let scripts = f.scripts.lock().unwrap();
                (scripts.get(i).cloned(), i + 1 >= scripts.len())
            };
            let Some(script) = script else {
                return;
            };
            ws.send(Message::Text(
                json!({"type": "hello", "num_connections": 1})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
            for frame in script {
                ws.send(Message::Text(frame.into())).await.unwrap();
            }
            if !last {
                ws.send(Message::Text(
                    json!({"type": "disconnect", "reason": "refresh_requested"})
                        .to_string()
                        .into(),
                ))
                .await
                .unwrap();
            }
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(
                        v.as_object().unwrap().len(),
                        1,
                        "an ack is only the envelope id"
                    );
                    f.acks
                        .lock()
                        .unwrap()
                        .push(v["envelope_id"].as_str().unwrap().to_string());
                }
            }
        }
    })
    .await;
    fake.ws_url.set(ws_url).unwrap();
    let router = Router::new()
        .route("/api/apps.connections.open", post(connections_open))
        .route("/api/chat.postMessage", post(post_message))
        .with_state(fake.clone());
    let base = serve_tls(router, &tls).await;
    let cfg = http_config(&format!("{base}/api"), &tls);
    let sm = SocketModeClient::new(&cfg, &Redacted::from(APP_TOKEN.to_string())).unwrap();
    let replies = SlackClient::new(&cfg, &Redacted::from(BOT_TOKEN.to_string())).unwrap();
    (fake, sm, replies, tls)
}

/// The Socket Mode loop for `env`'s dispatcher.
fn spawn_socket_mode(
    sm: SocketModeClient,
    replies: SlackClient,
    env: &Env,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    env.replies.register("slack", Arc::new(replies));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(run_socket_mode(
        Arc::new(sm),
        Arc::new(Slack::new(b"unused-signing-secret-0123", "UBOT").unwrap()),
        env.dispatcher.clone(),
        Pacer::unobserved("slack"),
        shutdown,
    ));
    (stop, runner)
}

#[tokio::test]
async fn socket_mode_pairing_flow_reconnect_and_replay() {
    let env = env(&["slack"]);
    let code = env.pairing.issue("slack").unwrap();
    let pair = format!("/pair {}", code.code.as_str());
    let scripts = vec![
        vec![envelope("e1", "Ev1", "hello"), envelope("e2", "Ev2", &pair)],
        vec![
            envelope("e3", "Ev3", "run the backups"),
            // Redelivery of the same event under a new envelope: acked, dropped.
            envelope("e4", "Ev3", "run the backups"),
            "{not json".to_string(),
            json!({"type": "events_api", "envelope_id": "e5", "payload": {"type": "event_callback", "team_id": "T1", "event_id": "Ev5", "event": {"type": "message", "channel_type": "im", "channel": "D42", "user": "U42", "text": "a\u{0}b"}}}).to_string(),
            json!({"type": "slash_commands", "envelope_id": "e6", "payload": {}}).to_string(),
        ],
    ];
    let (fake, sm, replies, _tls) = start(scripts).await;
    let (stop, runner) = spawn_socket_mode(sm, replies, &env);
    eventually("three replies", || fake.posted.lock().unwrap().len() == 3).await;
    eventually("all acks", || fake.acks.lock().unwrap().len() == 6).await;
    let posted: Vec<String> = fake
        .posted
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.1.clone())
        .collect();
    assert_eq!(posted, vec![PAIRING_PROMPT, PAIRED_REPLY, ACK]);
    assert_eq!(
        *fake.acks.lock().unwrap(),
        vec!["e1", "e2", "e3", "e4", "e5", "e6"]
    );
    assert_eq!(
        fake.opens.load(Ordering::SeqCst),
        2,
        "reconnected after disconnect"
    );
    let task = env.try_task().unwrap();
    assert_eq!(task.inbound.text(), "run the backups");
    assert!(env.try_task().is_none(), "the redelivery made no task");
    assert_eq!(env.audited("gateway.replay").len(), 1);
    assert_eq!(
        env.audited("gateway.inbound_rejected"),
        vec!["malformed", "malformed"]
    );
    stop_runner(stop, runner).await;
}

#[tokio::test]
async fn wrong_app_token_is_refused_without_leaking_it() {
    let (_fake, _sm, _replies, tls) = start(vec![]).await;
    let fake2 = Arc::new(FakeSlack::default());
    fake2.ws_url.set("wss://127.0.0.1:1/".into()).unwrap();
    let router = Router::new()
        .route("/api/apps.connections.open", post(connections_open))
        .with_state(fake2.clone());
    let base = serve_tls(router, &tls).await;
    let sm = SocketModeClient::new(
        &http_config(&format!("{base}/api"), &tls),
        &Redacted::from("xapp-wrong".to_string()),
    )
    .unwrap();
    let err = sm.open().await.unwrap_err().to_string();
    assert!(
        err.contains("invalid_auth") && !err.contains("xapp"),
        "{err}"
    );
    assert_eq!(fake2.opens.load(Ordering::SeqCst), 0);
    assert!(!format!("{sm:?}").contains("xapp"));
}

/// An event whose dispatch failed (the trail unreachable) is not acknowledged:
/// the session ends, and Slack's redelivery after the reconnect is handled
/// once, not refused as a replay.
#[tokio::test]
async fn an_event_that_failed_is_not_acknowledged_and_comes_again() {
    let audit = Arc::new(FlakyAudit::default());
    audit.fail_next(1);
    let env = env_full(&["slack"], |_| {}, ACK, Some(audit.clone()));
    let scripts = vec![
        vec![envelope("e1", "Ev1", "hello")],
        // Slack redelivers the unacknowledged event under a new envelope.
        vec![envelope("e1b", "Ev1", "hello")],
    ];
    let (fake, sm, replies, _tls) = start(scripts).await;
    let (stop, runner) = spawn_socket_mode(sm, replies, &env);
    eventually("the prompt", || fake.posted.lock().unwrap().len() == 1).await;
    eventually("the ack", || !fake.acks.lock().unwrap().is_empty()).await;
    assert_eq!(*fake.acks.lock().unwrap(), vec!["e1b"]);
    assert_eq!(fake.posted.lock().unwrap()[0].1, PAIRING_PROMPT);
    assert_eq!(fake.opens.load(Ordering::SeqCst), 2);
    assert_eq!(audit.count("gateway.replay"), 0);
    stop_runner(stop, runner).await;
}
