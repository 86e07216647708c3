//! Channels through the running appliance: the gateway component starts the
//! transports named in `[channels.NAME.transport]` with tokens from the vault.
//! Local fakes (TLS on loopback) stand in for the Telegram Bot API and Slack's
//! Web API. Covers: a missing token → that channel is reported and audited, the
//! others run, and `coworkctl reload` retries it once the token is stored;
//! Telegram long polling: unknown user → pairing prompt → `coworkctl pair new`
//! code redeemed → message accepted → reply delivered; Slack Events API through
//! the gateway's own webhook listener (never the admin page's): signed event →
//! prompt posted; replay → 409; bad signature → 401; oversized → 413; stale
//! timestamp → 401; each audited; `coworkctl users list` shows the paired user.

#![allow(clippy::unwrap_used)]

mod common;
mod gateway_transport_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::{DEV_CONFIG, Instance, wait_until};
use gateway_transport_common::telegram::{self, SharedTelegram, dm};
use gateway_transport_common::{serve_tls, test_tls};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const TG_TOKEN: &str = "123456:AAbbCC-dd_ee";
const SLACK_BOT: &str = "xoxb-test-token";
const SLACK_SECRET: &str = "slack-signing-secret-0123456789";

#[derive(Default)]
struct Fakes {
    slack_posted: Vec<(String, String)>,
}

type Shared = Arc<Mutex<Fakes>>;

async fn slack_post(State(f): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    f.lock().unwrap().slack_posted.push((
        body["channel"].as_str().unwrap_or("").to_string(),
        body["text"].as_str().unwrap_or("").to_string(),
    ));
    Json(json!({"ok": true}))
}

fn slack_event(event_id: &str, user: &str, text: &str) -> Vec<u8> {
    json!({
        "token": "unused", "team_id": "T1", "api_app_id": "A1",
        "type": "event_callback", "event_id": event_id, "event_time": 1_800_000_000,
        "event": {"type": "message", "channel_type": "im", "channel": format!("D{user}"),
                  "user": user, "text": text, "ts": "1.0"}
    })
    .to_string()
    .into_bytes()
}

fn sign(ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The gateway's channel states, asked as the admin page asks.
async fn channel_states(i: &Instance) -> Vec<cowork::ipc::ChannelState> {
    use cowork::ipc::{
        Client, ComponentRequest, ComponentResponse, GatewayRequest, GatewayResponse, Role,
    };
    let client = Client::<ComponentRequest, ComponentResponse>::new(
        i.runtime_dir().join("gateway/gateway.sock"),
        Role::Admin,
        Duration::from_secs(5),
    );
    match client
        .call(ComponentRequest::Gateway(GatewayRequest::ChannelStates))
        .await
    {
        Ok(ComponentResponse::Gateway(GatewayResponse::ChannelStates(list))) => list,
        other => panic!("channel states: {other:?}"),
    }
}

/// Waits (up to 15 s) until `f` answers something.
async fn loop_until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ok(i: &Instance, args: &[&str]) -> String {
    let out = i.ctl(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_secret(i: &Instance, name: &str, value: &str) {
    let out = i.ctl_with_input(&["secret", "set", name], value.as_bytes());
    assert!(out.status.success(), "{out:?}");
}

fn webhook_addr(i: &Instance) -> String {
    wait_until(Duration::from_secs(10), "webhook listener", || {
        i.log()
            .lines()
            .rev()
            .find_map(|l| l.split("webhook listener started on ").nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
    })
}

fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_and_slack_through_the_appliance() {
    let fakes: Shared = Arc::default();
    let tg: SharedTelegram = Arc::default();
    let tls = test_tls();
    let tg_base = serve_tls(telegram::router(tg.clone(), TG_TOKEN), &tls).await;
    let slack_base = serve_tls(
        Router::new()
            .route("/api/chat.postMessage", post(slack_post))
            .with_state(fakes.clone()),
        &tls,
    )
    .await;
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    let ca = dir.path().join("fake-ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let config = format!(
        "{DEV_CONFIG}
[webhook]
listen = \"127.0.0.1:0\"

[channels.telegram.transport]
kind = \"telegram-polling\"
api_base = \"{tg_base}\"
token_secret = \"telegram_bot_token\"
bot_user = \"cowork_bot\"
ca_file = \"{ca}\"

[channels.tg2.transport]
kind = \"telegram-polling\"
api_base = \"{tg_base}\"
token_secret = \"tg2_bot_token\"
bot_user = \"other_bot\"
ca_file = \"{ca}\"

[channels.slack.transport]
kind = \"slack-events\"
api_base = \"{slack_base}/api\"
token_secret = \"slack_bot_token\"
signing_secret = \"slack_signing_secret\"
bot_user = \"UBOT\"
ca_file = \"{ca}\"
",
        ca = ca.display()
    );
    std::fs::write(Instance::config_path(dir.path()), config).unwrap();
    let mut i = Instance::start_in(dir, &[], &[]);
    i.wait_notification("READY=1", Duration::from_secs(15));

    // No tokens yet: both channels reported, audited; the appliance is up.
    wait_until(Duration::from_secs(10), "transport failure logged", || {
        i.log()
            .contains("channel transport not started")
            .then_some(())
    });
    let trail = ok(&i, &["audit", "tail", "-n", "50", "--json"]);
    assert!(trail.contains("gateway.transport_failed"), "{trail}");
    assert!(!trail.contains(TG_TOKEN));

    // Store the tokens: the transports waiting for them start (no reload).
    set_secret(&i, "telegram_bot_token", TG_TOKEN);
    set_secret(&i, "slack_bot_token", SLACK_BOT);
    set_secret(&i, "slack_signing_secret", SLACK_SECRET);
    let addr = webhook_addr(&i);
    let admin = ok(&i, &["admin", "info", "--json"]);
    assert!(!admin.contains(&addr), "webhook shares the admin listener");

    // --- Telegram, long polling ---------------------------------------------
    let sent = |n: usize| {
        let f = tg.clone();
        wait_until(Duration::from_secs(10), "telegram reply", move || {
            let f = f.lock().unwrap();
            (f.sent.len() >= n).then(|| f.sent[n - 1].1.clone())
        })
    };
    tg.lock().unwrap().push(dm(10, 42, "hello"));
    assert!(sent(1).contains("requires pairing"));
    let code: Value =
        serde_json::from_str(&ok(&i, &["pair", "new", "--channel", "telegram", "--json"])).unwrap();
    let code = code["code"].as_str().unwrap().to_string();
    tg.lock()
        .unwrap()
        .push(dm(11, 42, &format!("/pair {code}")));
    assert!(sent(2).contains("Paired"));
    tg.lock().unwrap().push(dm(12, 42, "summarise my inbox"));
    assert!(sent(3).contains("no LLM provider is configured"));

    let users = ok(&i, &["users", "list", "--json"]);
    assert!(
        users.contains("\"telegram\"") && users.contains("\"42\""),
        "{users}"
    );

    // --- Slack Events API through the webhook listener ---------------------
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, ts: String, sig: String| {
        let http = http.clone();
        let url = format!("http://{addr}/slack/events");
        async move {
            http.post(url)
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let body = slack_event("Ev1", "U77", "hi");
    let ts = now();
    assert_eq!(post(body.clone(), ts.clone(), sign(&ts, &body)).await, 200);
    let posted = wait_until(Duration::from_secs(10), "slack reply", || {
        let f = fakes.lock().unwrap();
        f.slack_posted.first().cloned()
    });
    assert_eq!(posted.0, "DU77");
    assert!(posted.1.contains("requires pairing"), "{posted:?}");
    // The same event again: a replay.
    assert_eq!(post(body.clone(), ts.clone(), sign(&ts, &body)).await, 409);
    // A changed byte, a stale timestamp, an oversized body.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(post(tampered, ts.clone(), sign(&ts, &body)).await, 401);
    let stale = "1531420618".to_string();
    let other = slack_event("Ev2", "U77", "hi");
    assert_eq!(
        post(other.clone(), stale.clone(), sign(&stale, &other)).await,
        401
    );
    let big = vec![b'x'; 2 * 1024 * 1024];
    assert_eq!(post(big.clone(), ts.clone(), sign(&ts, &big)).await, 413);
    assert_eq!(
        fakes.lock().unwrap().slack_posted.len(),
        1,
        "nothing else sent"
    );

    // A master key rotation re-keys pairing codes: the transports restart with
    // the new key, and a code issued afterwards pairs a new Telegram user.
    ok(&i, &["secret", "rotate-master"]);
    let code: Value =
        serde_json::from_str(&ok(&i, &["pair", "new", "--channel", "telegram", "--json"])).unwrap();
    let code = code["code"].as_str().unwrap().to_string();
    tg.lock()
        .unwrap()
        .push(dm(13, 43, &format!("/pair {code}")));
    let paired = wait_until(Duration::from_secs(15), "pairing after rotation", || {
        let f = tg.lock().unwrap();
        f.sent
            .iter()
            .find(|(chat, text)| chat == "43" && text.contains("Paired"))
            .cloned()
    });
    assert_eq!(paired.0, "43");

    // What the page's channel list shows: a working channel runs; one whose
    // platform refuses its token is retrying, paced, and says why.
    set_secret(&i, "tg2_bot_token", "999:wrong");
    let states = loop_until("tg2 retrying", || async {
        let states = channel_states(&i).await;
        let tg2 = states.iter().find(|s| s.name == "tg2")?;
        (tg2.state == "retrying").then_some(states)
    })
    .await;
    let of = |name: &str| states.iter().find(|s| s.name == name).unwrap().clone();
    assert_eq!(of("telegram").state, "running", "{states:?}");
    assert_eq!(of("slack").state, "running", "{states:?}");
    let why = of("tg2").error.unwrap_or_default();
    assert!(
        why.contains("401") && why.contains("trying again in"),
        "{why}"
    );
    assert!(!why.contains("999:wrong"), "the token shown: {why}");
    let to_42 = |tg: &SharedTelegram| {
        tg.lock()
            .unwrap()
            .sent
            .iter()
            .filter(|(c, _)| c == "42")
            .count()
    };
    let before = to_42(&tg);
    tg.lock().unwrap().push(dm(14, 42, "still there?"));
    wait_until(
        Duration::from_secs(10),
        "the working channel answers",
        || (to_42(&tg) > before).then_some(()),
    );

    let trail = ok(&i, &["audit", "tail", "-n", "200", "--json"]);
    for needle in [
        "gateway.replay",
        "gateway.webhook_rejected",
        "\"telegram:42\"",
    ] {
        assert!(trail.contains(needle), "{needle} not in the trail");
    }
    for secret in [TG_TOKEN, SLACK_BOT, SLACK_SECRET] {
        assert!(!trail.contains(secret));
        assert!(!i.log().contains(secret), "secret in the log");
    }
    i.stop();
}
