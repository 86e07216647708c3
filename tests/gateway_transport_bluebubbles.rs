//! BlueBubbles: the real client and webhook route against a local fake of
//! a BlueBubbles server on loopback (`POST /api/v1/message/text` with the
//! password in the query string, a unique `tempGuid` per send): pairing end
//! to end and the answer to the message's chat guid, the owner's own
//! messages and tapbacks skipped, DMs and groups, long replies split to
//! 4,000 characters in order, replays, a wrong or missing webhook secret
//! (401) and hostile bodies (400/413), all audited with nothing changed;
//! the server password never in a log line, an audit entry or an error; the
//! runner serving a configured channel on a plain-http LAN server; polling
//! (`/api/v1/message/query`: new messages only, each once) directly and
//! through the runner; and a public server URL refused by the settings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway_transport_common;
mod tracing_capture;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use cowork::gateway::channels::Redacted;
use cowork::gateway::channels::bluebubbles::{self, BlueBubbles, BlueBubblesClient};
use cowork::gateway::{PAIRED_REPLY, PAIRING_PROMPT};
use gateway_transport_common::*;
use serde_json::{Value, json};
use tracing_capture::capture_tracing;

const PASSWORD: &str = "bb-server-password-7f3a91";
const SECRET: &str = "bb-webhook-secret-0123456789abcdef";
const PHONE: &str = "+15551234567";
const DM: &str = "iMessage;-;+15551234567";
const GROUP: &str = "iMessage;+;chat123456789012345678";

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    chat: String,
    text: String,
    method: String,
}

#[derive(Default)]
struct FakeServer {
    sent: Vec<Sent>,
    temp_guids: HashSet<String>,
    /// The messages `/api/v1/message/query` serves (polling).
    inbox: Vec<Value>,
    /// The `after` of each query, in order.
    queries: Vec<i64>,
}

type Fake = Arc<Mutex<FakeServer>>;

fn refuse(status: StatusCode, message: &str) -> axum::response::Response {
    let body = json!({"status": status.as_u16(), "message": message,
        "error": {"type": "Error", "message": message}});
    (status, Json(body)).into_response()
}

/// `POST /api/v1/message/text` as BlueBubbles serves it: the password in
/// the query, a chat guid, a fresh temp guid, the text and a send method.
async fn send_text(
    State(fake): State<Fake>,
    RawQuery(query): RawQuery,
    Json(body): Json<Value>,
) -> axum::response::Response {
    if query.as_deref() != Some(&format!("password={PASSWORD}")) {
        // The real server says little; this fake echoes what it was given,
        // so a client quoting it verbatim would leak the password.
        let given = query.unwrap_or_default();
        return refuse(StatusCode::UNAUTHORIZED, &format!("Unauthorized: {given}"));
    }
    let field = |k: &str| body[k].as_str().map(str::to_string);
    let (Some(chat), Some(temp), Some(text), Some(method)) = (
        field("chatGuid"),
        field("tempGuid"),
        field("message"),
        field("method"),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "chatGuid, tempGuid, message, method",
        );
    };
    if !matches!(method.as_str(), "apple-script" | "private-api") {
        return refuse(StatusCode::BAD_REQUEST, "unknown method");
    }
    if !bluebubbles::is_chat_guid(&chat) || text.is_empty() || text.chars().count() > 4000 {
        return refuse(StatusCode::BAD_REQUEST, "bad chat or text");
    }
    let mut f = fake.lock().unwrap();
    if !f.temp_guids.insert(temp) {
        return refuse(StatusCode::BAD_REQUEST, "tempGuid reused");
    }
    f.sent.push(Sent { chat, text, method });
    Json(json!({"status": 200, "message": "Message sent!", "data": {}})).into_response()
}

/// `POST /api/v1/message/query`: the inbox's messages created at or after
/// `after`, oldest first, at most `limit`.
async fn query_messages(
    State(fake): State<Fake>,
    RawQuery(query): RawQuery,
    Json(body): Json<Value>,
) -> axum::response::Response {
    if query.as_deref() != Some(&format!("password={PASSWORD}")) {
        return refuse(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let (Some(after), Some(limit)) = (body["after"].as_i64(), body["limit"].as_u64()) else {
        return refuse(StatusCode::BAD_REQUEST, "after and limit");
    };
    let mut f = fake.lock().unwrap();
    f.queries.push(after);
    let mut data: Vec<Value> = f
        .inbox
        .iter()
        .filter(|m| m["dateCreated"].as_i64().unwrap_or(0) >= after)
        .cloned()
        .collect();
    data.sort_by_key(|m| m["dateCreated"].as_i64());
    data.truncate(limit as usize);
    Json(json!({"status": 200, "message": "Success", "data": data})).into_response()
}

fn fake_router(fake: &Fake) -> Router {
    Router::new()
        .route("/api/v1/message/text", post(send_text))
        .route("/api/v1/message/query", post(query_messages))
        .with_state(fake.clone())
}

/// The fake over TLS on loopback: its state, base URL and certificates.
async fn serve_fake() -> (Fake, String, TestTls) {
    let fake: Fake = Arc::default();
    let tls = test_tls();
    let base = serve_tls(fake_router(&fake), &tls).await;
    (fake, base, tls)
}

/// The same fake in plain HTTP (a LAN server without a certificate).
async fn serve_fake_plain() -> (Fake, String) {
    let fake: Fake = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = fake_router(&fake);
    tokio::spawn(async move { axum::serve(listener, router).await });
    (fake, format!("http://{addr}"))
}

struct Harness {
    env: Env,
    fake: Fake,
    addr: std::net::SocketAddr,
    next: Mutex<u32>,
    _tls: TestTls,
}

async fn harness() -> Harness {
    harness_with(env(&["bluebubbles"])).await
}

async fn harness_with(env: Env) -> Harness {
    let (fake, base, tls) = serve_fake().await;
    let client = Arc::new(
        BlueBubblesClient::new(
            &http_config(&base, &tls),
            &Redacted::from(PASSWORD.to_string()),
        )
        .unwrap(),
    );
    env.replies.register("bluebubbles", client);
    let addr = start_webhook(&env, "/bluebubbles/webhook", |hooks| {
        bluebubbles::webhook_route(hooks, BlueBubbles::new(SECRET, "@cowork").unwrap())
    })
    .await;
    Harness {
        env,
        fake,
        addr,
        next: Mutex::new(0),
        _tls: tls,
    }
}

/// POSTs `body` to the BlueBubbles route at `addr` with `query`; the status.
async fn post_to(addr: std::net::SocketAddr, query: &str, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/bluebubbles/webhook{query}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn good_query() -> String {
    format!("?secret={SECRET}")
}

impl Harness {
    /// A `new-message` event from `address` in `chat`, with a fresh guid.
    fn message(&self, address: &str, chat: &str, text: &str) -> Value {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        json!({"type": "new-message", "data": {
            "guid": format!("6B1D4A5C-1E2F-4A3B-9C8D-{:012}", *n),
            "text": text, "isFromMe": false, "dateCreated": NOW * 1000,
            "handle": {"address": address, "service": "iMessage", "country": "us"},
            "chats": [{"guid": chat, "chatIdentifier": address, "style": 45}],
            "attachments": [], "associatedMessageGuid": null,
        }})
    }

    fn dm(&self, text: &str) -> Value {
        self.message(PHONE, DM, text)
    }

    async fn post_raw(&self, query: &str, body: Vec<u8>) -> u16 {
        post_to(self.addr, query, body).await
    }

    async fn post(&self, event: &Value) -> u16 {
        self.post_raw(&good_query(), event.to_string().into_bytes())
            .await
    }

    async fn sent(&self, n: usize) -> Vec<Sent> {
        eventually("messages at the fake", || {
            self.fake.lock().unwrap().sent.len() >= n
        })
        .await;
        self.fake.lock().unwrap().sent.clone()
    }

    fn sent_now(&self) -> usize {
        self.fake.lock().unwrap().sent.len()
    }
}

fn sent(chat: &str, text: &str) -> Sent {
    Sent {
        chat: chat.into(),
        text: text.into(),
        method: "apple-script".into(),
    }
}

#[tokio::test]
async fn a_paired_handle_is_answered_in_its_chat_and_the_password_never_shows() {
    let (logs, _guard) = capture_tracing();
    let h = harness().await;
    assert_eq!(h.post(&h.dm("hello")).await, 200);
    assert_eq!(h.sent(1).await[0], sent(DM, PAIRING_PROMPT));

    let code = h.env.pairing.issue("bluebubbles").unwrap();
    let redeem = h.dm(&format!("/pair {}", code.code.as_str()));
    assert_eq!(h.post(&redeem).await, 200);
    assert_eq!(h.sent(2).await[1], sent(DM, PAIRED_REPLY));

    assert_eq!(h.post(&h.dm("how full is the disk?")).await, 200);
    assert_eq!(h.sent(3).await[2], sent(DM, ACK));
    let task = h.env.try_task().unwrap();
    assert_eq!(
        (
            task.inbound.channel(),
            task.user.sender.as_str(),
            task.inbound.chat()
        ),
        ("bluebubbles", PHONE, DM)
    );
    assert_eq!(task.inbound.sender_name(), None);
    h.env
        .replies
        .deliver("bluebubbles", DM, "done")
        .await
        .unwrap();
    assert_eq!(h.sent(4).await[3], sent(DM, "done"));
    assert_eq!(
        h.env.audited("gateway.message"),
        ["pairing_prompt", "redeem_pairing", "authorized_paired"]
    );
    // A webhook rejection is logged and audited too: with the secret, never.
    assert_eq!(h.post_raw("?secret=wrong", b"{}".to_vec()).await, 401);
    let audit = format!("{:?}", h.env.audit.entries());
    let logged = logs.text();
    assert!(!logged.is_empty(), "the capture saw nothing");
    for (what, text) in [("audit", &audit), ("logs", &logged)] {
        assert!(!text.contains(PASSWORD), "{what} show the password");
        assert!(!text.contains(SECRET), "{what} show the webhook secret");
    }
}

#[tokio::test]
async fn the_servers_refusal_names_no_password() {
    let (logs, _guard) = capture_tracing();
    let (fake, base, tls) = serve_fake().await;
    let wrong = "wrong-password-55aa77";
    let client = BlueBubblesClient::new(
        &http_config(&base, &tls),
        &Redacted::from(wrong.to_string()),
    )
    .unwrap();
    let e = client.send_text(DM, "hi").await.unwrap_err().to_string();
    assert!(e.contains("HTTP 401") && e.contains("Unauthorized"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(PASSWORD), "{e}");
    assert!(fake.lock().unwrap().sent.is_empty());
    // Nothing listening: reqwest's error, without the URL and its query.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let client = BlueBubblesClient::new(
        &http_config(&format!("http://127.0.0.1:{port}"), &tls),
        &Redacted::from(PASSWORD.to_string()),
    )
    .unwrap();
    let e = client.send_text(DM, "hi").await.unwrap_err().to_string();
    assert!(e.contains("send message"), "{e}");
    assert!(!e.contains(PASSWORD) && !e.contains("password="), "{e}");
    assert!(!logs.text().contains(PASSWORD) && !logs.text().contains(wrong));
}

#[tokio::test]
async fn the_owners_own_messages_tapbacks_and_other_events_are_skipped() {
    let h = harness().await;
    let mut mine = h.dm("a note to self");
    mine["data"]["isFromMe"] = json!(true);
    let mut tapback = h.dm("Loved “hello”");
    tapback["data"]["associatedMessageGuid"] = json!("p:0/6B1D4A5C");
    let typing = json!({"type": "typing-indicator", "data": {"display": true, "guid": DM}});
    let read = json!({"type": "chat-read-status-changed", "data": {"chatGuid": DM, "read": true}});
    for ev in [&mine, &tapback, &typing, &read] {
        assert_eq!(h.post(ev).await, 200, "{ev}");
    }
    // One real message after them: only it is answered.
    assert_eq!(h.post(&h.dm("hello")).await, 200);
    assert_eq!(h.sent(1).await, [sent(DM, PAIRING_PROMPT)]);
    assert_eq!(h.env.audited("gateway.message"), ["pairing_prompt"]);
    assert!(h.env.try_task().is_none());
}

#[tokio::test]
async fn groups_need_the_bots_name_and_dms_and_groups_answer_in_their_own_chat() {
    let h = harness_with(env_with(&["bluebubbles"], |c| {
        c.allowlist = vec![PHONE.into(), "ada@example.com".into()];
        c.group_allowlist = vec![GROUP.into()];
        c.dm = cowork::gateway::AccessMode::Allowlist;
        c.group = cowork::gateway::AccessMode::Allowlist;
    }))
    .await;
    assert_eq!(h.post(&h.message(PHONE, GROUP, "chatter")).await, 200);
    // An Apple ID handle, its case as the server gives it: lowercased.
    let mention = h.message("Ada@Example.com", GROUP, "@Cowork status?");
    assert_eq!(h.post(&mention).await, 200);
    assert_eq!(h.sent(1).await, [sent(GROUP, ACK)]);
    let task = h.env.try_task().unwrap();
    assert_eq!(
        (task.inbound.chat(), task.user.sender.as_str()),
        (GROUP, "ada@example.com")
    );
    assert!(
        h.env.try_task().is_none(),
        "the unaddressed message is no task"
    );
    assert_eq!(h.post(&h.dm("and privately?")).await, 200);
    assert_eq!(h.sent(2).await[1], sent(DM, ACK));
    // Another group than the allowed one is not served.
    let other = h.message(PHONE, "iMessage;+;chat999", "@cowork hi");
    assert_eq!(h.post(&other).await, 200);
    assert!(h.env.try_task().is_some(), "the DM's task");
    assert!(h.env.try_task().is_none(), "no task for the other group");
}

#[tokio::test]
async fn long_replies_go_in_4000_character_pieces_in_order() {
    let h = harness().await;
    let long: String = ["a", "b", "c"]
        .iter()
        .map(|c| c.repeat(4000))
        .collect::<String>()
        + "tail";
    h.env
        .replies
        .deliver("bluebubbles", GROUP, &long)
        .await
        .unwrap();
    let got = h.sent(4).await;
    let lens: Vec<usize> = got.iter().map(|s| s.text.chars().count()).collect();
    assert_eq!(lens, [4000, 4000, 4000, 4]);
    assert_eq!(
        got.iter().map(|s| s.text.as_str()).collect::<String>(),
        long
    );
    assert!(got.iter().all(|s| s.chat == GROUP));
    assert_eq!(h.fake.lock().unwrap().temp_guids.len(), 4);
}

#[tokio::test]
async fn replays_bad_secrets_and_hostile_bodies_change_nothing() {
    let h = harness().await;
    let ev = h.dm("hello");
    assert_eq!(h.post(&ev).await, 200);
    h.sent(1).await;
    let before = h.env.snapshot();

    // The same message guid again (a captured body, a resend): dropped.
    assert_eq!(h.post(&ev).await, 409);
    assert_eq!(h.env.audited("gateway.replay").len(), 1);

    let body = h.dm("x").to_string().into_bytes();
    let mut want = Vec::new();
    for query in [
        "",
        "?secret=",
        "?secret=bb-webhook-secret-0123456789abcdeX",
        "?password=bb-webhook-secret-0123456789abcdef",
        &format!("?secret={SECRET}&secret={SECRET}"),
        &format!("?Secret={SECRET}"),
    ] {
        assert_eq!(h.post_raw(query, body.clone()).await, 401, "{query}");
        want.push("bad_secret");
    }
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(h.post_raw(&good_query(), big).await, 413);
    want.push("body_too_large");
    let mut no_handle = h.dm("x");
    no_handle["data"]["handle"] = json!(null);
    let mut display_name = h.dm("x");
    display_name["data"]["handle"]["address"] = json!("Mom");
    let mut odd_chat = h.dm("x");
    odd_chat["data"]["chats"][0]["guid"] = json!("iMessage;?;x");
    let mut nul = h.dm("x");
    nul["data"]["text"] = json!("a\u{0}b");
    let mut deep = String::new();
    for _ in 0..200 {
        deep.push('[');
    }
    for hostile in [
        b"not json".to_vec(),
        b"{\"type\": 5}".to_vec(),
        b"{\"type\": \"new-message\", \"data\": {}}".to_vec(),
        b"\xff\xfe".to_vec(),
        deep.into_bytes(),
        no_handle.to_string().into_bytes(),
        display_name.to_string().into_bytes(),
        odd_chat.to_string().into_bytes(),
        nul.to_string().into_bytes(),
    ] {
        assert_eq!(
            h.post_raw(&good_query(), hostile.clone()).await,
            400,
            "{}",
            String::from_utf8_lossy(&hostile)
        );
        want.push("malformed");
    }
    assert_eq!(h.env.audited("gateway.webhook_rejected"), want);
    assert_eq!(h.env.snapshot(), before);
    assert_eq!(h.sent_now(), 1, "nothing more was sent");
    assert!(h.env.try_task().is_none());
}

/// Started by the runner from its settings like any platform, the server
/// a plain-http LAN name: the route is served at `/bluebubbles/webhook`
/// and the answer leaves through the client it registered.
#[tokio::test]
async fn the_runner_serves_a_configured_bluebubbles_channel() {
    use cowork::gateway::{GatewaySettings, TransportKind, TransportSettings};
    let h = harness().await;
    let (fake, base) = serve_fake_plain().await;
    let mut settings = GatewaySettings::default();
    settings.channels.insert(
        "bluebubbles".into(),
        cowork::gateway::ChannelSettings {
            transport: TransportSettings {
                kind: TransportKind::Bluebubbles,
                // A name: resolved by the client's LAN-only resolver.
                api_base: Some(base.replace("127.0.0.1", "localhost")),
                password_secret: Some("bb_password".into()),
                signing_secret: Some("bb_webhook".into()),
                ..TransportSettings::default()
            },
            ..Default::default()
        },
    );
    settings
        .validate(cowork::gateway::Profile::Production)
        .unwrap();
    let vault = Vault(
        [("bb_password", PASSWORD), ("bb_webhook", SECRET)]
            .into_iter()
            .collect(),
    );
    let running = start_runner(&h.env, &settings, &vault).await;
    assert!(running.failed.is_empty(), "{:?}", running.failed);
    let addr = running.webhook_addr.unwrap();
    let body = h.dm("hello").to_string().into_bytes();
    assert_eq!(post_to(addr, &good_query(), body.clone()).await, 200);
    eventually("the reply", || !fake.lock().unwrap().sent.is_empty()).await;
    assert_eq!(fake.lock().unwrap().sent[0], sent(DM, PAIRING_PROMPT));
    assert_eq!(post_to(addr, "?secret=nope", body).await, 401);
    running.stop();
}

/// The server must be on the local network: a public address or name is
/// refused by the settings (and by the client), with the reason.
#[tokio::test]
async fn a_public_server_url_is_refused() {
    use cowork::gateway::{GatewaySettings, Profile, TransportKind, TransportSettings};
    let with = |url: &str| {
        let mut settings = GatewaySettings::default();
        settings.channels.insert(
            "bb".into(),
            cowork::gateway::ChannelSettings {
                transport: TransportSettings {
                    kind: TransportKind::Bluebubbles,
                    api_base: Some(url.into()),
                    password_secret: Some("p".into()),
                    signing_secret: Some("s".into()),
                    ..TransportSettings::default()
                },
                ..Default::default()
            },
        );
        settings.validate(Profile::Production)
    };
    for ok in [
        "http://192.168.1.20:1234",
        "https://10.1.2.3:1234/",
        "http://macmini.local:1234",
        "http://[fd00::5]:1234",
    ] {
        assert!(with(ok).is_ok(), "{ok}: {:?}", with(ok));
    }
    for bad in [
        "https://bluebubbles.example.com",
        "http://203.0.113.7:1234",
        "http://169.254.169.254/",
        "https://my-mac.trycloudflare.com",
    ] {
        let e = with(bad).unwrap_err().to_string();
        assert!(
            e.contains("not a local-network address") && e.contains("transport.api_base"),
            "{bad}: {e}"
        );
    }
    let e = BlueBubblesClient::new(
        &cowork::gateway::HttpConfig::new("https://bluebubbles.example.com"),
        &Redacted::from(PASSWORD.to_string()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a local-network address"), "{e}");
}

/// Polling: only what is created after the channel started, each message
/// once although the server's `after` keeps returning its millisecond, the
/// owner's own skipped, a malformed one audited; the answers go to the
/// chat guid; a wrong password fails with the status and no password.
#[tokio::test]
async fn polling_reads_each_new_message_once() {
    use bluebubbles::{Cursor, poll_once};
    let (logs, _guard) = capture_tracing();
    let h = harness().await;
    let client = BlueBubblesClient::new(
        &http_config(&serve_base(&h).await, &h._tls),
        &Redacted::from(PASSWORD.to_string()),
    )
    .unwrap();
    let parser = BlueBubbles::new(SECRET, "").unwrap();
    let mut old = h.dm("from last week");
    old["data"]["dateCreated"] = json!((NOW - 7 * 86_400) * 1000);
    let mut mine = h.dm("note to self");
    mine["data"]["isFromMe"] = json!(true);
    let mut malformed = h.dm("x");
    malformed["data"]["handle"]["address"] = json!("Mom");
    let hello = h.dm("hello");
    h.fake.lock().unwrap().inbox = [old, mine, malformed, hello]
        .iter()
        .map(|m| m["data"].clone())
        .collect();
    let mut cursor = Cursor::from(NOW);
    for _ in 0..3 {
        poll_once(&client, &parser, &h.env.dispatcher, &mut cursor)
            .await
            .unwrap();
    }
    assert_eq!(h.sent(1).await, [sent(DM, PAIRING_PROMPT)]);
    assert_eq!(h.fake.lock().unwrap().queries, [NOW * 1000; 3]);
    assert_eq!(h.env.audited("gateway.message"), ["pairing_prompt"]);
    assert_eq!(h.env.audited("gateway.inbound_rejected"), ["malformed"]);
    assert!(h.env.audited("gateway.replay").is_empty());
    // A later message moves the cursor on.
    let mut later = h.dm("/pair 000000");
    later["data"]["dateCreated"] = json!(NOW * 1000 + 5);
    h.fake.lock().unwrap().inbox.push(later["data"].clone());
    poll_once(&client, &parser, &h.env.dispatcher, &mut cursor)
        .await
        .unwrap();
    poll_once(&client, &parser, &h.env.dispatcher, &mut cursor)
        .await
        .unwrap();
    assert_eq!(h.fake.lock().unwrap().queries[4], NOW * 1000 + 5);
    assert_eq!(h.env.audited("gateway.message").len(), 2);

    let wrong = BlueBubblesClient::new(
        &http_config(&serve_base(&h).await, &h._tls),
        &Redacted::from("wrong-password-55aa77".to_string()),
    )
    .unwrap();
    let e = poll_once(&wrong, &parser, &h.env.dispatcher, &mut cursor)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 401"), "{e}");
    assert!(!e.contains("wrong-password") && !logs.text().contains(PASSWORD));
}

/// The harness's fake, reached again: its base URL.
async fn serve_base(h: &Harness) -> String {
    serve_tls(fake_router(&h.fake), &h._tls).await
}

/// The runner starts a `bluebubbles-polling` channel as a loop: no webhook
/// route, no webhook secret needed, the answer through the same client.
#[tokio::test]
async fn the_runner_polls_a_configured_bluebubbles_channel() {
    use cowork::gateway::{GatewaySettings, TransportKind, TransportSettings};
    let h = harness().await;
    let (fake, base) = serve_fake_plain().await;
    fake.lock()
        .unwrap()
        .inbox
        .push(h.dm("hello")["data"].clone());
    let mut settings = GatewaySettings::default();
    settings.channels.insert(
        "bluebubbles".into(),
        cowork::gateway::ChannelSettings {
            transport: TransportSettings {
                kind: TransportKind::BluebubblesPolling,
                api_base: Some(base),
                password_secret: Some("bb_password".into()),
                ..TransportSettings::default()
            },
            ..Default::default()
        },
    );
    settings
        .validate(cowork::gateway::Profile::Production)
        .unwrap();
    let vault = Vault([("bb_password", PASSWORD)].into_iter().collect());
    let running = start_runner(&h.env, &settings, &vault).await;
    assert!(running.failed.is_empty(), "{:?}", running.failed);
    assert!(running.webhook_addr.is_none());
    eventually("the reply", || !fake.lock().unwrap().sent.is_empty()).await;
    assert_eq!(fake.lock().unwrap().sent[0], sent(DM, PAIRING_PROMPT));
    running.stop();
}
