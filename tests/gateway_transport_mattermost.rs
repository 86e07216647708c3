//! Mattermost on loopback: a fake Mattermost server over TLS (REST
//! `GET /api/v4/users/me`, `POST /api/v4/posts`, and the WebSocket
//! `/api/v4/websocket` with its authentication challenge, `hello` and
//! `posted` events whose post is a JSON string), the channel started by the
//! runner from its settings and the vault. Covers: the token sent as the
//! REST bearer and in the challenge, never in the trail; a DM from an
//! unknown user → pairing prompt → code redeemed → message dispatched,
//! each answer posted in the post's thread; the bot's own, system and
//! edited posts ignored; teams and channels outside the allowlists refused
//! and audited (a public channel only when listed); malformed, oversized
//! and hostile frames audited while the connection goes on; a refused token
//! (HTTP 401) and a refused challenge shown as the transport's problem and
//! retried with a growing wait, cleared once connected; a socket the
//! server closes opened again; a long answer posted in pieces of at most
//! 16,383 characters in one thread.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cowork::gateway::channels::mattermost::MATTERMOST_MAX_CHARS;
use cowork::gateway::{
    ChannelSettings, GatewaySettings, PAIRED_REPLY, PAIRING_PROMPT, TransportKind,
    TransportSettings,
};
use futures_util::{SinkExt, StreamExt};
use gateway_transport_common::*;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "mm-bot-token-6ahfxw3nqb8r1";
const BOT: &str = "b0tb0tb0tb0tb0tb0tb0tb0tb0";
const USER: &str = "u5eru5eru5eru5eru5eru5eru5";
const TEAM: &str = "7eam7eam7eam7eam7eam7eam7e";
const OTHER_TEAM: &str = "0ther0ther0ther0ther0ther0";
/// The DM channel between USER and the bot.
const DM: &str = "dmdmdmdmdmdmdmdmdmdmdmdmdm";
/// A private channel of TEAM, listed in channel_allowlist.
const LISTED: &str = "1i5ted1i5ted1i5ted1i5ted1i";
/// A public channel of TEAM, not listed.
const TOWN: &str = "t0wnt0wnt0wnt0wnt0wnt0wnt0";
const NAME: &str = "mattermost";

/// What the fake server saw, and the way to its live sockets.
#[derive(Default)]
struct Fake {
    refuse_token: AtomicBool,
    /// `users/me` says the token is a person's, not a bot account's.
    personal_token: AtomicBool,
    refuse_challenge: AtomicBool,
    me_calls: AtomicUsize,
    /// Bodies of `POST /posts`.
    posts: Mutex<Vec<Value>>,
    /// `Authorization` of every REST request.
    auth: Mutex<Vec<String>>,
    /// Challenge frames received.
    challenges: Mutex<Vec<Value>>,
    /// One sender per authenticated connection, in order.
    conns: Mutex<Vec<mpsc::UnboundedSender<Cmd>>>,
}

enum Cmd {
    Send(Message),
    Close,
}

impl Fake {
    fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Sends `m` on the newest connection.
    fn send(&self, m: Message) {
        let conns = self.conns.lock().unwrap();
        conns.last().unwrap().send(Cmd::Send(m)).unwrap();
    }

    fn close(&self) {
        let conns = self.conns.lock().unwrap();
        conns.last().unwrap().send(Cmd::Close).unwrap();
    }

    fn posts(&self) -> Vec<Value> {
        self.posts.lock().unwrap().clone()
    }

    fn texts(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|p| p["message"].as_str().unwrap().to_string())
            .collect()
    }
}

fn post_json(id: &str, user: &str, channel: &str, text: &str) -> Value {
    json!({"id": id, "create_at": NOW * 1000, "update_at": NOW * 1000, "edit_at": 0,
           "delete_at": 0, "user_id": user, "channel_id": channel, "root_id": "",
           "message": text, "type": "", "props": {}, "metadata": {}})
}

/// A `posted` event as the server broadcasts it: the post as a JSON string.
fn posted(post: &Value, channel_type: &str, team: &str) -> Message {
    let event = json!({"event": "posted", "seq": 7, "broadcast": {"channel_id": post["channel_id"],
        "team_id": team, "user_id": "", "omit_users": null},
        "data": {"post": post.to_string(), "channel_type": channel_type, "team_id": team,
                 "channel_display_name": "x", "channel_name": "x", "sender_name": "@ada",
                 "set_online": true}});
    Message::Text(event.to_string().into())
}

/// A post id: 26 id characters ending in `n`'s digits.
fn pid(n: u32) -> String {
    format!("p{n:0>25}")
}

fn dm(n: u32, text: &str) -> Message {
    posted(&post_json(&pid(n), USER, DM, text), "D", "")
}

fn check_auth(f: &Fake, headers: &axum::http::HeaderMap) -> bool {
    let got = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    f.auth.lock().unwrap().push(got.clone());
    got == format!("Bearer {TOKEN}") && !f.refuse_token.load(Ordering::SeqCst)
}

fn unauthorized() -> Response {
    let body = json!({"id": "api.context.session_expired.app_error",
        "message": "Invalid or expired session, please login again.", "status_code": 401});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn me(State(f): State<Arc<Fake>>, headers: axum::http::HeaderMap) -> Response {
    f.me_calls.fetch_add(1, Ordering::SeqCst);
    if !check_auth(&f, &headers) {
        return unauthorized();
    }
    let is_bot = !f.personal_token.load(Ordering::SeqCst);
    Json(json!({"id": BOT, "username": "cowork", "is_bot": is_bot})).into_response()
}

async fn create_post(
    State(f): State<Arc<Fake>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !check_auth(&f, &headers) {
        return unauthorized();
    }
    f.posts.lock().unwrap().push(body.clone());
    let mut answer = body;
    answer["id"] = pid(999_999).into();
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// The WebSocket upgrade, done by hand on hyper's upgrade (the test needs no
/// WebSocket feature of axum).
async fn websocket(State(f): State<Arc<Fake>>, mut req: Request) -> Response {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let key = req.headers()["sec-websocket-key"].as_bytes().to_vec();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            io,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        connection(f, ws).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(&key))
        .body(Body::empty())
        .unwrap()
}

/// One connection: the challenge answered (OK then `hello`, or FAIL and
/// closed), then what the test sends, until it closes it or the client goes.
async fn connection<S>(f: Arc<Fake>, mut ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(Ok(Message::Text(first))) = ws.next().await else {
        return;
    };
    let challenge: Value = serde_json::from_str(first.as_str()).unwrap();
    f.challenges.lock().unwrap().push(challenge.clone());
    let ok = challenge["action"] == "authentication_challenge"
        && challenge["data"]["token"] == TOKEN
        && !f.refuse_challenge.load(Ordering::SeqCst);
    if !ok {
        let fail = json!({"status": "FAIL", "seq_reply": challenge["seq"],
            "error": {"id": "api.web_socket_router.not_authenticated.app_error",
                      "message": "Invalid or expired session"}});
        let _ = ws.send(Message::Text(fail.to_string().into())).await;
        let _ = ws.close(None).await;
        return;
    }
    let reply = json!({"status": "OK", "seq_reply": challenge["seq"]});
    let hello = json!({"event": "hello", "data": {"server_version": "10.5.0"}, "seq": 0,
        "broadcast": {"user_id": BOT, "channel_id": "", "team_id": ""}});
    ws.send(Message::Text(reply.to_string().into()))
        .await
        .unwrap();
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.conns.lock().unwrap().push(tx);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(m)) => {
                    if ws.send(m).await.is_err() {
                        return;
                    }
                }
                Some(Cmd::Close) | None => {
                    let _ = ws.close(None).await;
                    return;
                }
            },
            m = ws.next() => match m {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

struct Harness {
    env: Env,
    fake: Arc<Fake>,
    running: cowork::gateway::runner::Running,
}

impl Harness {
    /// The fake server, then the channel started by the runner; `tweak`
    /// changes the channel's settings (the transport is set after it).
    async fn start(ack: &str, fake: Fake, tweak: impl Fn(&mut ChannelSettings)) -> Harness {
        let env = env_full(&[NAME], &tweak, ack, None);
        let tls = test_tls();
        let fake = Arc::new(fake);
        let router = Router::new()
            .route("/api/v4/users/me", get(me))
            .route("/api/v4/posts", post(create_post))
            .route("/api/v4/websocket", get(websocket))
            .with_state(fake.clone());
        let base = serve_tls(router, &tls).await;
        let ca = env.dir.path().join("mattermost-ca.pem");
        std::fs::write(&ca, &tls.ca_pem).unwrap();
        let mut ch = ChannelSettings::default();
        tweak(&mut ch);
        ch.transport = TransportSettings {
            kind: TransportKind::Mattermost,
            api_base: Some(base),
            token_secret: Some("mattermost_token".into()),
            team_allowlist: vec![TEAM.into()],
            channel_allowlist: vec![LISTED.into()],
            ca_file: Some(ca),
            ..Default::default()
        };
        let mut settings = GatewaySettings::default();
        settings.channels.insert(NAME.into(), ch);
        let vault = Vault([("mattermost_token", TOKEN)].into_iter().collect());
        let running = start_runner(&env, &settings, &vault).await;
        assert!(running.failed.is_empty(), "{:?}", running.failed);
        Harness { env, fake, running }
    }

    async fn connected(&self, n: usize) {
        eventually("a connection", || self.fake.connections() == n).await;
    }

    /// Waits for the `n`th post, and says what it was.
    async fn nth_post(&self, n: usize) -> Value {
        eventually(&format!("post {n}"), || self.fake.posts().len() >= n).await;
        self.fake.posts()[n - 1].clone()
    }

    fn problem(&self) -> Option<String> {
        self.running.problems.get(NAME)
    }

    fn no_token_in_the_trail(&self) {
        assert!(!format!("{:?}", self.env.audit.entries()).contains(TOKEN));
    }

    async fn stop(self) {
        self.running.stop();
        // The loop ends with the stop signal; the fake's socket then closes.
        eventually("the socket closed", || {
            self.fake
                .conns
                .lock()
                .unwrap()
                .iter()
                .all(|c| c.is_closed())
        })
        .await;
    }
}

fn allowlisted(ch: &mut ChannelSettings) {
    ch.allowlist = vec![USER.into()];
}

#[tokio::test]
async fn a_dm_is_paired_then_answered_in_its_thread() {
    let h = Harness::start(ACK, Fake::default(), |_| {}).await;
    let code = h.env.pairing.issue(NAME).unwrap();
    h.connected(1).await;

    // The bot's own post, a system post and an edit: not prompts.
    h.fake
        .send(posted(&post_json(&pid(1), BOT, DM, "echo"), "D", ""));
    let mut system = post_json(&pid(2), USER, DM, "ada joined");
    system["type"] = "system_join_channel".into();
    h.fake.send(posted(&system, "D", ""));
    let mut edited = post_json(&pid(3), USER, DM, "hello again");
    edited["edit_at"] = (NOW * 1000).into();
    h.fake.send(posted(&edited, "D", ""));

    h.fake.send(dm(4, "hello"));
    let prompt = h.nth_post(1).await;
    assert_eq!(prompt["message"], PAIRING_PROMPT);
    assert_eq!(prompt["channel_id"], DM);
    assert_eq!(prompt["root_id"], pid(4), "answered in the post's thread");

    h.fake.send(dm(5, &format!("/pair {}", code.code.as_str())));
    assert_eq!(h.nth_post(2).await["message"], PAIRED_REPLY);

    // A reply inside a thread is answered in that thread.
    let mut threaded = post_json(&pid(6), USER, DM, "run the backups");
    threaded["root_id"] = pid(4).into();
    h.fake.send(posted(&threaded, "D", ""));
    let ack = h.nth_post(3).await;
    assert_eq!(
        (ack["message"].as_str(), ack["root_id"].as_str()),
        (Some(ACK), Some(pid(4).as_str()))
    );

    let task = h.env.try_task().unwrap();
    assert_eq!(task.inbound.text(), "run the backups");
    assert_eq!(task.inbound.sender(), USER);
    assert!(h.env.try_task().is_none());
    assert_eq!(
        h.env.audited("gateway.message"),
        vec!["pairing_prompt", "redeem_pairing", "authorized_paired"]
    );
    assert_eq!(
        h.fake.posts().len(),
        3,
        "nothing answered the ignored posts"
    );

    // The token: the REST bearer and the challenge's, never in the trail.
    assert!(
        h.fake
            .auth
            .lock()
            .unwrap()
            .iter()
            .all(|a| a == &format!("Bearer {TOKEN}"))
    );
    let challenge = h.fake.challenges.lock().unwrap()[0].clone();
    assert_eq!(challenge["seq"], 1);
    assert_eq!(challenge["data"]["token"], TOKEN);
    h.no_token_in_the_trail();
    assert_eq!(h.problem(), None);
    h.stop().await;
}

#[tokio::test]
async fn teams_and_channels_outside_the_allowlists_are_refused() {
    let h = Harness::start(ACK, Fake::default(), |ch| {
        allowlisted(ch);
        ch.require_mention = false;
    })
    .await;
    h.connected(1).await;
    let in_channel =
        |n, channel, kind, team| posted(&post_json(&pid(n), USER, channel, "status?"), kind, team);
    // Another team's channel, a public channel not listed, a private
    // channel not listed: refused.
    h.fake.send(in_channel(1, LISTED, "P", OTHER_TEAM));
    h.fake.send(in_channel(2, TOWN, "O", TEAM));
    h.fake.send(in_channel(3, TOWN, "P", TEAM));
    // The listed private channel of the allowed team: answered.
    h.fake.send(in_channel(4, LISTED, "P", TEAM));
    let answer = h.nth_post(1).await;
    assert_eq!(answer["channel_id"], LISTED);
    assert_eq!(answer["root_id"], pid(4));
    assert_eq!(
        h.env.audited("gateway.inbound_rejected"),
        vec![
            "team_not_allowed",
            "channel_not_allowed",
            "channel_not_allowed"
        ]
    );
    let refused: Vec<_> = h
        .env
        .audit
        .entries()
        .into_iter()
        .filter(|e| e.kind == "gateway.inbound_rejected")
        .collect();
    let shown = format!("{refused:?}");
    assert!(shown.contains(USER) && shown.contains(TOWN), "{shown}");
    let task = h.env.try_task().unwrap();
    assert_eq!(task.inbound.account(), Some(TEAM));
    assert!(h.env.try_task().is_none());
    assert_eq!(h.fake.posts().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn hostile_frames_are_audited_and_the_connection_goes_on() {
    let h = Harness::start(ACK, Fake::default(), allowlisted).await;
    h.connected(1).await;
    let text = |s: String| Message::Text(s.into());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut p = post_json(&pid(1), USER, DM, "hi");
        f(&mut p);
        posted(&p, "D", "")
    };
    let hostile = vec![
        text("{\"event\": \"posted\"".into()),
        text("[1, 2, 3]".into()),
        // Over the frame cap, under the socket's own.
        text(format!(
            "{{\"event\":\"posted\",\"data\":{{\"post\":\"{}\"}}}}",
            "x".repeat(300 * 1024)
        )),
        text(
            json!({"event": "posted", "data": {"post": "{not json", "channel_type": "D"}})
                .to_string(),
        ),
        text(json!({"event": "posted", "data": {"post": 5, "channel_type": "D"}}).to_string()),
        with(&|p| p["user_id"] = "ada@example.com".into()),
        with(&|p| p["channel_id"] = "../../users/me".into()),
        with(&|p| p["message"] = "a\u{0}b".into()),
        with(&|p| p["message"] = "y".repeat(70_000).into()),
        posted(&post_json(&pid(2), USER, DM, "hi"), "Z", ""),
    ];
    let n = hostile.len();
    for m in hostile {
        h.fake.send(m);
    }
    // Not prompts, not errors: a binary frame, an unknown event.
    h.fake.send(Message::Binary(vec![0xff; 16].into()));
    h.fake.send(text(
        json!({"event": "typing", "data": {}, "seq": 3}).to_string(),
    ));
    h.fake.send(dm(3, "still there?"));
    assert_eq!(h.nth_post(1).await["message"], ACK);
    assert_eq!(
        h.env.audited("gateway.inbound_rejected"),
        vec!["malformed"; n]
    );
    assert_eq!(h.fake.connections(), 1, "the connection went on");
    assert_eq!(h.fake.me_calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.problem(), None);
    h.stop().await;
}

/// The seed's "dedicated bot account": a person's token works, but the
/// settings page (and `coworkctl doctor`) says it should be a bot's.
#[tokio::test]
async fn a_personal_token_is_shown_as_the_problem_while_it_works() {
    let fake = Fake::default();
    fake.personal_token.store(true, Ordering::SeqCst);
    let h = Harness::start(ACK, fake, |_| {}).await;
    eventually("the personal account shown", || {
        h.problem().is_some_and(|p| p.contains("not a bot account"))
    })
    .await;
    assert_eq!(h.fake.connections(), 1, "it still connects");
    h.stop().await;
}

#[tokio::test]
async fn a_refused_token_is_shown_and_retried_with_a_growing_wait() {
    let fake = Fake::default();
    fake.refuse_token.store(true, Ordering::SeqCst);
    let h = Harness::start(ACK, fake, |_| {}).await;
    eventually("the first refusal shown", || {
        h.problem()
            .is_some_and(|p| p.contains("trying again in 1 s"))
    })
    .await;
    let problem = h.problem().unwrap();
    assert!(
        problem.contains("HTTP 401") && problem.contains("token was refused"),
        "{problem}"
    );
    assert!(!problem.contains(TOKEN));
    eventually("the second refusal shown", || {
        h.problem()
            .is_some_and(|p| p.contains("trying again in 2 s"))
    })
    .await;
    assert_eq!(h.fake.me_calls.load(Ordering::SeqCst), 2);
    assert!(
        h.fake.challenges.lock().unwrap().is_empty(),
        "no socket opened"
    );

    // The token accepted again (the owner fixed it): connected, shown so.
    h.fake.refuse_token.store(false, Ordering::SeqCst);
    h.connected(1).await;
    eventually("the problem cleared", || h.problem().is_none()).await;
    h.stop().await;
}

#[tokio::test]
async fn a_refused_challenge_is_shown_as_such() {
    let fake = Fake::default();
    fake.refuse_challenge.store(true, Ordering::SeqCst);
    let h = Harness::start(ACK, fake, |_| {}).await;
    eventually("the refusal shown", || h.problem().is_some()).await;
    let problem = h.problem().unwrap();
    assert!(
        problem.contains("authentication refused: Invalid or expired session"),
        "{problem}"
    );
    h.fake.refuse_challenge.store(false, Ordering::SeqCst);
    h.connected(1).await;
    eventually("the problem cleared", || h.problem().is_none()).await;
    h.stop().await;
}

#[tokio::test]
async fn a_socket_the_server_closes_is_opened_again() {
    let h = Harness::start(ACK, Fake::default(), allowlisted).await;
    h.connected(1).await;
    h.fake.close();
    h.connected(2).await;
    assert_eq!(h.fake.challenges.lock().unwrap().len(), 2);
    h.fake.send(dm(1, "after the reconnect"));
    assert_eq!(h.nth_post(1).await["message"], ACK);
    assert_eq!(h.problem(), None);
    h.stop().await;
}

#[tokio::test]
async fn a_long_answer_is_posted_in_pieces_in_one_thread() {
    let long: String = "word ".repeat(8_000); // 40,000 characters
    let h = Harness::start(&long, Fake::default(), allowlisted).await;
    h.connected(1).await;
    h.fake.send(dm(1, "write a lot"));
    eventually("three pieces", || h.fake.posts().len() == 3).await;
    let texts = h.fake.texts();
    assert!(
        texts
            .iter()
            .all(|t| t.chars().count() <= MATTERMOST_MAX_CHARS)
    );
    assert_eq!(texts.concat(), long);
    assert!(
        h.fake
            .posts()
            .iter()
            .all(|p| p["root_id"] == pid(1).as_str())
    );
    h.stop().await;
}
