//! Slack transport end to end on loopback: the Events API webhook
//! (`/slack/events`: url_verification, v0 signature with the 5-minute window,
//! event_callback → message / app_mention) and replies through a fake Web API
//! over TLS (`chat.postMessage`, Bearer bot token, 3000-char blocks). An unknown
//! user goes through pairing prompt → code redemption → accepted message
//! (TaskSink) → reply delivered. Bad signatures, stale timestamps, replayed
//! event ids, oversized and hostile bodies: 4xx, audited, store unchanged; a
//! flood of 10,000 bad requests adds a bounded number of audit entries; 55
//! strangers' wrong pairing codes do not keep a fresh code from redeeming; a
//! request dropped mid-way (the platform hung up) forgets its event id.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::slack::SlackClient;
use cowork::gateway::channels::slack::{self, Slack};
use cowork::gateway::{PAIRED_REPLY, PAIRING_FAILED_REPLY, PAIRING_PROMPT};
use gateway_transport_common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const SECRET: &str = "slack-signing-secret-0123456789";
const BOT_TOKEN: &str = "xoxb-test-bot-token";

#[derive(Default)]
struct FakeSlack {
    posted: Vec<(String, String)>,
    /// HTTP 429 answers (with `Retry-After: 0`) served first.
    rate_limits: usize,
    attempts: usize,
}
type Fake = Arc<Mutex<FakeSlack>>;

async fn post_message(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {BOT_TOKEN}"))
    {
        return Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    let (Some(ch), Some(text)) = (body["channel"].as_str(), body["text"].as_str()) else {
        return Json(json!({"ok": false, "error": "invalid_arguments"})).into_response();
    };
    assert!(text.chars().count() <= 3000);
    let mut f = fake.lock().unwrap();
    f.attempts += 1;
    if f.rate_limits > 0 {
        f.rate_limits -= 1;
        // Slack's Web API: 429 with the wait in Retry-After, no JSON to rely on.
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "",
        )
            .into_response();
    }
    f.posted.push((ch.to_string(), text.to_string()));
    Json(json!({"ok": true, "channel": ch, "ts": "1.0"})).into_response()
}

/// The fake Web API over TLS: its state, base URL and certificates.
async fn serve_fake() -> (Fake, String, TestTls) {
    let fake: Fake = Arc::default();
    let router = Router::new()
        .route("/api/chat.postMessage", post(post_message))
        .with_state(fake.clone());
    let tls = test_tls();
    let base = serve_tls(router, &tls).await;
    (fake, base, tls)
}

async fn start_fake() -> (Fake, SlackClient, TestTls) {
    let (fake, base, tls) = serve_fake().await;
    let client = SlackClient::new(
        &http_config(&format!("{base}/api"), &tls),
        &Redacted::from(BOT_TOKEN.to_string()),
    )
    .unwrap();
    (fake, client, tls)
}

fn sign(ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn event(event_id: &str, user: &str, text: &str) -> Vec<u8> {
    json!({
        "token": "unused",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": NOW,
        "event": {
            "type": "message",
            "channel_type": "im",
            "channel": format!("D{user}"),
            "user": user,
            "text": text,
            "ts": "1.0",
        }
    })
    .to_string()
    .into_bytes()
}

struct Harness {
    env: Env,
    fake: Fake,
    addr: std::net::SocketAddr,
    _tls: TestTls,
}

async fn harness() -> Harness {
    harness_full(env(&["slack"])).await
}

async fn harness_full(env: Env) -> Harness {
    let (fake, client, tls) = start_fake().await;
    env.replies.register("slack", Arc::new(client));
    let addr = start_webhook(&env, "/slack/events", |hooks| {
        slack::webhook_route(hooks, Slack::new(SECRET.as_bytes(), "UBOT").unwrap())
    })
    .await;
    Harness {
        env,
        fake,
        addr,
        _tls: tls,
    }
}

impl Harness {
    async fn post_raw(&self, ts: &str, sig: &str, body: Vec<u8>) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(format!("http://{}/slack/events", self.addr))
            .header("content-type", "application/json")
            .header(slack::TIMESTAMP_HEADER, ts)
            .header(slack::SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, body: Vec<u8>) -> (u16, String) {
        let ts = NOW.to_string();
        let sig = sign(&ts, &body);
        self.post_raw(&ts, &sig, body).await
    }

    fn posted(&self) -> Vec<(String, String)> {
        self.fake.lock().unwrap().posted.clone()
    }
}

#[tokio::test]
async fn url_verification_answers_the_challenge() {
    let h = harness().await;
    let body = json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    let (status, text) = h.post(body.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["challenge"], body["challenge"]);
    // Unsigned, it gets nothing.
    let (status, text) = h
        .post_raw(&NOW.to_string(), "v0=00", body.to_string().into_bytes())
        .await;
    assert_eq!(status, 401);
    assert!(!text.contains("3eZbrw"));
}

#[tokio::test]
async fn pairing_flow_end_to_end() {
    let h = harness().await;
    // 1. Unknown user → prompt (once per window).
    assert_eq!(h.post(event("Ev1", "U42", "hello")).await.0, 200);
    eventually("prompt", || h.posted().len() == 1).await;
    assert_eq!(
        h.posted()[0],
        ("DU42".to_string(), PAIRING_PROMPT.to_string())
    );
    assert_eq!(h.post(event("Ev2", "U42", "hello?")).await.0, 200);
    // 2. A wrong code → the neutral failure.
    assert_eq!(h.post(event("Ev3", "U42", "/pair ABCD-EFGH")).await.0, 200);
    eventually("failure reply", || h.posted().len() == 2).await;
    assert_eq!(h.posted()[1].1, PAIRING_FAILED_REPLY);
    // 3. The right code.
    let code = h.env.pairing.issue("slack").unwrap();
    let text = format!("/pair {}", code.code.as_str());
    assert_eq!(h.post(event("Ev4", "U42", &text)).await.0, 200);
    eventually("paired reply", || h.posted().len() == 3).await;
    assert_eq!(h.posted()[2].1, PAIRED_REPLY);
    // 4. Accepted: the TaskSink sees it, the ack is posted.
    assert_eq!(
        h.post(event("Ev5", "U42", "summarize the logs")).await.0,
        200
    );
    eventually("ack", || h.posted().len() == 4).await;
    assert_eq!(h.posted()[3], ("DU42".to_string(), ACK.to_string()));
    let task = h.env.try_task().unwrap();
    assert_eq!(task.inbound.text(), "summarize the logs");
    assert_eq!(task.inbound.account(), Some("T1"));
    assert_eq!(
        h.env.audited("gateway.message"),
        vec![
            "pairing_prompt",
            "prompt_already_sent",
            "redeem_pairing",
            "redeem_pairing",
            "authorized_paired"
        ]
    );
    assert_eq!(
        h.env.audited("gateway.pairing"),
        vec!["invalid_code", "paired"]
    );
    // Message text never reaches the audit trail.
    let dump = format!("{:?}", h.env.audit.entries());
    assert!(!dump.contains("summarize") && !dump.contains("hello"));
}

#[tokio::test]
async fn rate_limited_post_is_retried_then_given_up_after_three_tries() {
    let (fake, client, _tls) = start_fake().await;
    fake.lock().unwrap().rate_limits = 2;
    client.post_message("C1", "hello").await.unwrap();
    {
        let f = fake.lock().unwrap();
        assert_eq!(f.attempts, 3);
        assert_eq!(f.posted, vec![("C1".to_string(), "hello".to_string())]);
    }
    fake.lock().unwrap().rate_limits = 3;
    let e = client.post_message("C1", "again").await.unwrap_err();
    assert_rate_limited(&e, "3 tries", BOT_TOKEN);
    assert_eq!(fake.lock().unwrap().posted.len(), 1);
}

#[tokio::test]
async fn long_reply_in_3000_char_blocks() {
    let (fake, client, _tls) = start_fake().await;
    let text = "word ".repeat(1500); // 7500 chars
    client.post_message("C1", &text).await.unwrap();
    let posted = fake.lock().unwrap().posted.clone();
    assert_eq!(posted.len(), 3);
    assert_eq!(
        posted.iter().map(|p| p.1.as_str()).collect::<String>(),
        text
    );
    // A wrong token is an error that does not show the token.
    let tls = test_tls();
    let fake2: Fake = Arc::default();
    let base = serve_tls(
        Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .with_state(fake2),
        &tls,
    )
    .await;
    let bad = SlackClient::new(
        &http_config(&format!("{base}/api"), &tls),
        &Redacted::from("xoxb-wrong".to_string()),
    )
    .unwrap();
    let err = bad.post_message("C1", "hi").await.unwrap_err().to_string();
    assert!(
        err.contains("invalid_auth") && !err.contains("xoxb"),
        "{err}"
    );
}

#[tokio::test]
async fn rejections_are_4xx_audited_and_change_nothing() {
    let h = harness().await;
    // A paired user exists, and one event was accepted.
    assert_eq!(h.post(event("Ev1", "U42", "hello")).await.0, 200);
    let before = h.env.snapshot();
    let n_before = h.env.audit.entries().len();
    let body = event("Ev9", "U42", "hi");
    let ts = NOW.to_string();
    let good_sig = sign(&ts, &body);
    let mut want = Vec::new();

    // Bad signature, tampered body, missing headers.
    assert_eq!(
        h.post_raw(&ts, &sign(&ts, b"other"), body.clone()).await.0,
        401
    );
    want.push("bad_signature");
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(h.post_raw(&ts, &good_sig, tampered).await.0, 401);
    want.push("bad_signature");
    assert_eq!(h.post_raw(&ts, "sha1=abc", body.clone()).await.0, 401);
    want.push("bad_auth_header");
    // Stale and future timestamps (signed correctly).
    for t in [NOW - 301, NOW + 301] {
        let t = t.to_string();
        assert_eq!(h.post_raw(&t, &sign(&t, &body), body.clone()).await.0, 401);
        want.push("stale_timestamp");
    }
    // Replay of an accepted event id → 409 (audited as a replay, not a rejection).
    assert_eq!(h.post(event("Ev1", "U42", "hello")).await.0, 409);
    // Oversized.
    let big = vec![b'a'; 1024 * 1024 + 1];
    assert_eq!(h.post(big).await.0, 413);
    want.push("body_too_large");
    // Hostile but correctly signed payloads.
    let hostile: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        br#"{"type": "event_callback"}"#.to_vec(),
        br#"{"type": "event_callback", "team_id": 5, "event": {}}"#.to_vec(),
        br#"{"type": "event_callback", "team_id": "T1", "event_id": "E", "event": {"type": "message", "channel_type": "im", "channel": "D1"}}"#.to_vec(),
        br#"{"type": "event_callback", "team_id": "T1", "event_id": "E", "event": {"type": "message", "channel_type": "space", "channel": "D1", "user": "U1"}}"#.to_vec(),
        br#"{"type": "event_callback", "team_id": "T1", "event_id": "E", "event": {"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "files": [{"size": 1e999}]}}"#.to_vec(),
        br#"{"type": "event_callback", "team_id": "T1", "event_id": "E", "event": {"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "files": [{"size": -1}]}}"#.to_vec(),
        br#"{"type": "url_verification", "challenge": ""}"#.to_vec(),
        format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)).into_bytes(),
        json!({"type": "event_callback", "team_id": "T1", "event_id": "E\u{1}x", "event": {"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "x"}}).to_string().into_bytes(),
        json!({"type": "event_callback", "team_id": "T1", "event_id": "E".repeat(200), "event": {"type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "x"}}).to_string().into_bytes(),
        json!({"type": "event_callback", "team_id": "T1", "event_id": "E2", "event": {"type": "message", "channel_type": "im", "channel": "D1", "user": "*", "text": "x"}}).to_string().into_bytes(),
    ];
    for b in hostile {
        let shown = String::from_utf8_lossy(&b[..b.len().min(60)]).to_string();
        assert_eq!(h.post(b).await.0, 400, "{shown}");
        want.push("malformed");
    }
    assert_eq!(
        h.env.snapshot(),
        before,
        "no user, code or event id changed"
    );
    let got: Vec<String> = h.env.audit.entries()[n_before..]
        .iter()
        .filter(|e| e.kind == "gateway.webhook_rejected")
        .map(reason)
        .collect();
    assert_eq!(got, want);
    assert_eq!(h.env.audited("gateway.replay").len(), 1);
    assert!(h.env.try_task().is_none());
    // No route for channels that are not configured; wrong method.
    let r = reqwest::Client::new()
        .post(format!("http://{}/discord/interactions", h.addr))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = reqwest::get(format!("http://{}/slack/events", h.addr))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(!format!("{:?}", h.env.audit.entries()).contains(SECRET));
}

#[tokio::test]
async fn replay_survives_a_restart() {
    let h = harness().await;
    assert_eq!(h.post(event("EvR", "U42", "hello")).await.0, 200);
    // A new dispatcher on the same state.db (a restarted gateway) still refuses it.
    let store = Arc::new(cowork::gateway::Store::open(h.env.dir.path()).unwrap());
    let guard = cowork::gateway::ReplayGuard::new(store, 3600, 10_000).unwrap();
    assert_eq!(
        guard.check("slack", "EvR", NOW + 10).await.unwrap(),
        cowork::gateway::Seen::Replay
    );
}

/// A trail writer that always fails (the audit component is down).
#[derive(Debug)]
struct BrokenAudit;

impl cowork::gateway::TrailWriter for BrokenAudit {
    fn append<'a>(
        &'a self,
        _entry: cowork::ipc::AuditAppend,
    ) -> cowork::gateway::BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("down".to_string()) })
    }

    fn queue<'a>(&'a self, _entry: cowork::ipc::AuditAppend) -> cowork::gateway::BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn nothing_is_acknowledged_unaudited() {
    let h = harness_full(env_full(
        &["slack"],
        |c| c.allowlist = vec!["U42".into()],
        ACK,
        Some(Arc::new(BrokenAudit)),
    ))
    .await;
    assert_eq!(h.post(event("EvA", "U42", "do it")).await.0, 500);
    assert!(
        h.env.try_task().is_none(),
        "no task without its audit entry"
    );
    // The failed event id is not remembered: the platform's retry is not a replay.
    assert_eq!(h.env.replay.len(), 0);
    // A bad signature cannot be audited either: 500, not a silent 401.
    let body = event("EvB", "U42", "x");
    assert_eq!(h.post_raw(&NOW.to_string(), "v0=00", body).await.0, 500);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(h.posted().is_empty());
}

/// A trail writer that never answers (the trail hung), and says when an
/// append reached it.
#[derive(Debug, Default)]
struct StuckAudit {
    reached: std::sync::atomic::AtomicBool,
}

impl cowork::gateway::TrailWriter for StuckAudit {
    fn append<'a>(
        &'a self,
        _entry: cowork::ipc::AuditAppend,
    ) -> cowork::gateway::BoxFuture<'a, Result<(), String>> {
        self.reached
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::pending())
    }

    fn queue<'a>(&'a self, _entry: cowork::ipc::AuditAppend) -> cowork::gateway::BoxFuture<'a, ()> {
        Box::pin(std::future::pending())
    }
}

/// Slack gives up on a request after 3 s and retries it: the request the
/// server was still handling is then dropped, and its event id must be
/// forgotten, or the retry is refused as a replay and the message is lost.
#[tokio::test]
async fn a_request_dropped_mid_way_forgets_its_event_id() {
    let audit = Arc::new(StuckAudit::default());
    let h = Arc::new(
        harness_full(env_full(
            &["slack"],
            |c| c.allowlist = vec!["U42".into()],
            ACK,
            Some(audit.clone()),
        ))
        .await,
    );
    let h2 = h.clone();
    let client = tokio::spawn(async move { h2.post(event("EvD", "U42", "do it")).await });
    // The request is in the dispatcher, waiting on the trail: hang up.
    eventually("the request at the trail", || {
        audit.reached.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    assert!(!h.env.replay.is_empty(), "its id is remembered meanwhile");
    client.abort();
    assert!(client.await.unwrap_err().is_cancelled());
    eventually("the abandoned id forgotten", || h.env.replay.is_empty()).await;
    assert!(h.env.try_task().is_none());
}

/// The event id's write runs beside the audit entry; when it fails, nothing
/// is acted on (no task), the platform gets a 500, and its retry is handled
/// as a fresh message, not refused as a replay.
#[tokio::test]
async fn an_event_id_that_could_not_be_written_is_not_acted_on_and_its_retry_is_fresh() {
    let h = harness_full(env_full(
        &["slack"],
        |c| c.allowlist = vec!["U42".into()],
        ACK,
        None,
    ))
    .await;
    // Another connection to the file makes the replay table refuse writes.
    let db = rusqlite::Connection::open(h.env.dir.path().join("state.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_ids BEFORE INSERT ON gateway_seen_events
         BEGIN SELECT RAISE(ABORT, 'disk says no'); END;",
    )
    .unwrap();
    let (status, _) = h.post(event("EvW", "U42", "do it")).await;
    assert_eq!(status, 500);
    assert!(
        h.env.try_task().is_none(),
        "acted on without its id written"
    );
    assert!(h.env.replay.is_empty(), "the failed id is forgotten");

    db.execute_batch("DROP TRIGGER refuse_ids;").unwrap();
    let (status, _) = h.post(event("EvW", "U42", "do it")).await;
    assert_eq!(status, 200);
    assert!(h.env.try_task().is_some(), "the retry is handled");
    assert_eq!(h.env.audited("gateway.replay"), Vec::<String>::new());
}

/// Issue 16 item 4: 10,000 bad-signature requests add a bounded number of
/// entries (the first `FULL_PER_WINDOW` in full, then one summary with the
/// count once the window is over); a legitimate request in the middle is
/// processed and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_requests_adds_a_bounded_number_of_entries() {
    use cowork::gateway::transport::rejections::{FULL_PER_WINDOW, WINDOW_SECS};
    let h = Arc::new(harness().await);
    let n_before = h.env.audit.entries().len();
    let flood = |n: usize| {
        let h = h.clone();
        async move {
            let mut tasks = Vec::new();
            for t in 0..8 {
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    let ts = NOW.to_string();
                    let bad = format!("v0={}", "00".repeat(32));
                    for i in 0..n / 8 {
                        let body = event(&format!("Ebad{t}x{i}"), "U666", "hi");
                        let (status, _) = h.post_raw(&ts, &bad, body).await;
                        assert_eq!(status, 401);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    flood(5_000).await;
    // A legitimate request in the middle: processed (prompt) and audited.
    assert_eq!(h.post(event("EvOK", "U42", "hello")).await.0, 200);
    eventually("prompt", || h.posted().len() == 1).await;
    assert_eq!(h.env.audited("gateway.message").len(), 1);
    flood(5_000).await;
    let added = |h: &Harness| h.env.audit.entries()[n_before..].to_vec();
    let rejected = added(&h)
        .iter()
        .filter(|e| e.kind == "gateway.webhook_rejected")
        .count();
    assert_eq!(rejected, FULL_PER_WINDOW as usize);
    // Bounded: the full entries and the legitimate message's, nothing else yet.
    assert_eq!(added(&h).len(), FULL_PER_WINDOW as usize + 1);
    // The window ends: the next rejection writes the summary with the count.
    h.env.clock.advance(WINDOW_SECS);
    assert_eq!(
        h.post_raw(&NOW.to_string(), "v0=00", b"{}".to_vec())
            .await
            .0,
        401
    );
    let summaries: Vec<_> = added(&h)
        .into_iter()
        .filter(|e| e.kind == "gateway.webhook_rejected_summary")
        .collect();
    assert_eq!(summaries.len(), 1);
    let d = summaries[0].payload["detail"].as_str().unwrap().to_string();
    let suppressed = 10_000 - FULL_PER_WINDOW as usize;
    assert!(
        d.starts_with(&format!("{suppressed} rejected")) && d.contains("bad_signature="),
        "{d}"
    );
    // 20 full + 1 message + 1 summary + the first rejection of the new window.
    assert_eq!(added(&h).len(), FULL_PER_WINDOW as usize + 3);
    let bytes: usize = added(&h).iter().map(|e| format!("{e:?}").len()).sum();
    assert!(bytes < 24 * 1024, "{bytes} bytes for 10,001 requests");
}

/// Issue 16 item 6, end to end: 55 signed DMs from different senders with
/// wrong codes (before any code exists, then against an active code, which
/// they burn) no longer keep the owner's fresh code from redeeming.
#[tokio::test]
async fn strangers_flooding_pair_attempts_do_not_block_a_fresh_code() {
    let h = harness().await;
    let flood = async |tag: &str| {
        for i in 0..55 {
            let body = event(
                &format!("Ev{tag}{i}"),
                &format!("U9{i:03}"),
                "/pair ABCD-EFGH",
            );
            assert_eq!(h.post(body).await.0, 200);
        }
    };
    flood("a").await;
    assert!(
        h.env
            .audited("gateway.pairing")
            .iter()
            .all(|r| r == "invalid_code"),
        "no code active: nothing counts, nothing locks"
    );
    let burned = h.env.pairing.issue("slack").unwrap();
    flood("b").await;
    assert!(h.env.pairing.was_burned(burned.id).unwrap());
    assert_eq!(
        h.env
            .audited("gateway.pairing")
            .iter()
            .filter(|r| *r == "code_burned")
            .count(),
        1,
        "the owner sees the burn in the trail"
    );
    // The owner issues a fresh code; their user redeems it at once.
    let fresh = h.env.pairing.issue("slack").unwrap();
    let text = format!("/pair {}", fresh.code.as_str());
    assert_eq!(h.post(event("EvOwner", "U42", &text)).await.0, 200);
    eventually("paired reply", || {
        h.posted()
            .iter()
            .any(|(chat, t)| chat == "DU42" && t == PAIRED_REPLY)
    })
    .await;
    assert_eq!(h.env.audited("gateway.pairing").last().unwrap(), "paired");
}

/// The runner starts each configured channel through its platform: the
/// first on /slack/events serves it and answers through the outbound it
/// registered; a second channel wanting the same route, and one whose token
/// is not stored, are reported by name while the others run.
#[tokio::test]
async fn the_runner_starts_channels_through_their_platform_and_refuses_a_taken_route() {
    use cowork::gateway::{GatewaySettings, TransportKind, TransportSettings};
    let env = env(&["slack", "slack2", "tg"]);
    let (fake, base, tls) = serve_fake().await;
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let slack_events = TransportSettings {
        kind: TransportKind::SlackEvents,
        api_base: Some(format!("{base}/api")),
        token_secret: Some("slack_token".into()),
        signing_secret: Some("slack_signing".into()),
        bot_user: Some("UBOT".into()),
        ca_file: Some(ca),
        ..TransportSettings::default()
    };
    let mut settings = GatewaySettings::default();
    for (name, transport) in [
        ("slack", slack_events.clone()),
        ("slack2", slack_events),
        (
            "tg",
            TransportSettings {
                kind: TransportKind::TelegramPolling,
                token_secret: Some("tg_token".into()),
                ..TransportSettings::default()
            },
        ),
    ] {
        let ch = cowork::gateway::ChannelSettings {
            transport,
            ..Default::default()
        };
        settings.channels.insert(name.into(), ch);
    }
    let vault = Vault(
        [("slack_token", BOT_TOKEN), ("slack_signing", SECRET)]
            .into_iter()
            .collect(),
    );
    // A reply path left from an earlier start of a channel that no longer
    // starts is dropped: a late reply there fails, saying why.
    env.replies.register("tg", std::sync::Arc::new(NeverSent));
    let running = start_runner(&env, &settings, &vault).await;
    let started: Vec<&str> = running.started.iter().map(|s| s.channel.as_str()).collect();
    assert_eq!(started, ["slack"]);
    let late = env.replies.deliver("tg", "1", "late").await.unwrap_err();
    assert!(late.contains("no running transport"), "{late}");
    let failed: Vec<(String, String)> = running
        .failed
        .iter()
        .map(|(c, e)| (c.clone(), e.to_string()))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, "slack2");
    assert!(
        failed[0].1.contains("already serves /slack/events"),
        "{failed:?}"
    );
    assert_eq!(failed[1].0, "tg");
    assert!(failed[1].1.contains("not stored"), "{failed:?}");

    let addr = running.webhook_addr.unwrap();
    let body = event("Ev1", "U1", "hello");
    let ts = NOW.to_string();
    let status = reqwest::Client::new()
        .post(format!("http://{addr}/slack/events"))
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign(&ts, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    eventually("prompt", || !fake.lock().unwrap().posted.is_empty()).await;
    assert_eq!(
        fake.lock().unwrap().posted[0],
        ("DU1".to_string(), PAIRING_PROMPT.to_string())
    );
    running.stop();
}

/// An outbound that must never be used.
#[derive(Debug)]
struct NeverSent;

impl cowork::gateway::outbound::Outbound for NeverSent {
    fn send<'a>(
        &'a self,
        _chat: &'a str,
        _text: &'a str,
    ) -> cowork::gateway::BoxFuture<'a, Result<(), cowork::gateway::GatewayError>> {
        panic!("a reply went out through a channel that no longer runs")
    }
}
