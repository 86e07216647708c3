//! Matrix transport end to end against a real homeserver: Synapse (PyPI,
//! installed by `make deps` into a venv under the target dir) with SQLite,
//! started once for this test binary on a free loopback port (plain HTTP
//! on loopback, no federation), shared by the tests, each of which
//! registers its own users through the shared-secret admin registration
//! and drives the rooms with plain Client-Server API calls. The channel is
//! started as the runner starts it (settings, the vault, the registry):
//! - a paired human's DM: the invitation joined, the message reaching the
//!   gateway, the answer arriving in the room as the bot; a stranger's DM
//!   joined and answered with the pairing prompt only, their group
//!   invitation left pending and audited, their message in a shared group
//!   refused (not a task);
//! - an encrypted room refused with the clear message, once;
//! - membership changes of others (invite, join, kick) audited;
//! - a restart going on from the saved `since`: what was said while the
//!   appliance was down is answered after it;
//! - a token revoked by logout shown as "token revoked or rotated: set a
//!   new one", and a token of another account refused by the homeserver
//!   check.
//!
//! Beside it, the outbound against a local fake of the send endpoint: a
//! piece answered 429 `M_LIMIT_EXCEEDED` sent again after its
//! `retry_after_ms` under the same transaction id, the token only in the
//! `Authorization` header.
//!
//! Without the venv the tests say `SKIPPED` and why.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;
mod skip;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cowork::gateway::channels::matrix;
use cowork::gateway::{ChannelSettings, TransportKind, TransportSettings};
use gateway_transport_common::*;
use serde_json::{Value, json};
use skip::{Missing, skip};

const NAME: &str = "matrix";
const SECRET: &str = "shared-secret-of-the-test";

// ---------------------------------------------------------------------------
// The homeserver.

/// The Synapse of this test binary.
struct Synapse {
    port: u16,
    /// Holds the config, database and log while the binary runs.
    _dir: tempfile::TempDir,
    /// The wrapper shell: it stops Synapse when this process ends (its
    /// stdin, our pipe, then closes).
    _child: Mutex<Child>,
}

fn venv() -> PathBuf {
    // Beside the build, as `make deps` puts it.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("synapse-venv")
}

fn homeserver_yaml(dir: &Path, port: u16) -> String {
    let d = dir.display();
    // Rate limits raised for the test's users; no federation listener, no
    // key servers, no TLS (loopback only).
    let fast = "{per_second: 1000, burst_count: 1000}";
    format!(
        "server_name: \"localhost\"
pid_file: {d}/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {d}/homeserver.db
media_store_path: {d}/media
signing_key_path: {d}/signing.key
registration_shared_secret: \"{SECRET}\"
macaroon_secret_key: \"macaroon-secret-of-the-test\"
form_secret: \"form-secret-of-the-test\"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
enable_metrics: false
rc_message: {fast}
rc_registration: {fast}
rc_login:
  address: {fast}
  account: {fast}
  failed_attempts: {fast}
rc_joins:
  local: {fast}
  remote: {fast}
rc_invites:
  per_room: {fast}
  per_user: {fast}
  per_issuer: {fast}
rc_room_creation: {fast}
rc_admin_redaction: {fast}
"
    )
}

/// Asks `GET /_matrix/client/versions` once over a plain socket: true on 200.
fn versions_answer(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /_matrix/client/versions HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

fn start_synapse() -> Option<Synapse> {
    let python = venv().join("bin/python");
    if !venv().join("bin/synapse_homeserver").exists() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let [port] = unused_ports::<1>();
    let config = dir.path().join("homeserver.yaml");
    std::fs::write(&config, homeserver_yaml(dir.path(), port)).unwrap();
    // An ed25519 signing key in Synapse's format, made here (no extra
    // `--generate-keys` start).
    let seed: [u8; 32] = rand::random();
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed);
    std::fs::write(
        dir.path().join("signing.key"),
        format!("ed25519 a_test {key}\n"),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("synapse.log")).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" -m synapse.app.homeserver -c \"$1\" & pid=$!; read _; kill $pid; wait")
        .arg(&python)
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Synapse takes seconds to start (more on a busy machine): wait for
    // its answer, bounded by a clock deadline.
    let deadline = Instant::now() + Duration::from_secs(180);
    while !versions_answer(port) {
        assert!(
            Instant::now() < deadline,
            "synapse did not answer on {port}; its log: {}",
            std::fs::read_to_string(dir.path().join("synapse.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Synapse {
        port,
        _dir: dir,
        _child: Mutex::new(child),
    })
}

/// The shared homeserver, started by the first test that needs it; `None`
/// (after a skip) when the venv is missing.
fn synapse(test: &str) -> Option<&'static Synapse> {
    static SERVER: OnceLock<Option<Synapse>> = OnceLock::new();
    let s = SERVER.get_or_init(start_synapse).as_ref();
    if s.is_none() {
        skip(
            test,
            &format!(
                "no Synapse in {} (`make deps` installs it: needs python3-venv)",
                venv().display()
            ),
            Missing::ProvidedByMakeTest,
        );
    }
    s
}

// ---------------------------------------------------------------------------
// A Matrix client for the test's people.

struct Hs {
    base: String,
    http: reqwest::Client,
}

/// A user of the homeserver.
#[derive(Clone)]
struct User {
    id: String,
    token: String,
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha1::{Digest, Sha1};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// The JSON answer of `req`.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::SeqCst))
}

impl Hs {
    fn new(s: &Synapse) -> Hs {
        Hs {
            base: format!("http://127.0.0.1:{}", s.port),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Registers a user by the shared-secret admin API.
    async fn register(&self, name: &str) -> User {
        let url = format!("{}/_synapse/admin/v1/register", self.base);
        let nonce = json_of(self.http.get(&url)).await;
        let nonce = nonce["nonce"].as_str().unwrap();
        let password = "correct horse battery staple";
        let msg = format!("{nonce}\0{name}\0{password}\0notadmin");
        let mac = hex::encode(hmac_sha1(SECRET.as_bytes(), msg.as_bytes()));
        let v = json_of(self.http.post(&url).json(
            &json!({"nonce": nonce, "username": name, "password": password,
                    "admin": false, "mac": mac}),
        ))
        .await;
        User {
            id: v["user_id"].as_str().unwrap().to_string(),
            token: v["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn create_room(&self, by: &User, body: Value) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                &by.token,
                body,
            )
            .await;
        v["room_id"].as_str().unwrap().to_string()
    }

    async fn room_op(&self, by: &User, room: &str, op: &str, body: Value) {
        let path = format!("/_matrix/client/v3/rooms/{}/{op}", enc(room));
        self.call(reqwest::Method::POST, &path, &by.token, body)
            .await;
    }

    async fn send_event(&self, by: &User, room: &str, kind: &str, content: Value) {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{kind}/{}",
            enc(room),
            unique("t")
        );
        self.call(reqwest::Method::PUT, &path, &by.token, content)
            .await;
    }

    async fn say(&self, by: &User, room: &str, text: &str) {
        self.send_event(
            by,
            room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": text}),
        )
        .await;
    }

    /// The room's messages, oldest first: (sender, body).
    async fn messages(&self, by: &User, room: &str) -> Vec<(String, String)> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
            enc(room)
        );
        let v = self
            .call(reqwest::Method::GET, &path, &by.token, Value::Null)
            .await;
        let mut out: Vec<(String, String)> = v["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| {
                (
                    e["sender"].as_str().unwrap().to_string(),
                    e["content"]["body"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        out.reverse();
        out
    }

    /// Waits (bounded) until `user` sees `from` say `text` in `room`.
    async fn wait_for(&self, user: &User, room: &str, from: &User, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let msgs = self.messages(user, room).await;
            if msgs.iter().any(|(s, b)| s == &from.id && b == text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} from {} in {msgs:?}",
                from.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn joined(&self, user: &User, room: &str) -> Vec<String> {
        let path = format!("/_matrix/client/v3/rooms/{}/joined_members", enc(room));
        let v = self
            .call(reqwest::Method::GET, &path, &user.token, Value::Null)
            .await;
        v["joined"].as_object().unwrap().keys().cloned().collect()
    }
}

fn enc(s: &str) -> String {
    s.replace('!', "%21").replace(':', "%3A")
}

fn transport(s: &Synapse, bot: &str) -> TransportSettings {
    TransportSettings {
        kind: TransportKind::Matrix,
        api_base: Some(format!("http://127.0.0.1:{}", s.port)),
        token_secret: Some("matrix-token".into()),
        bot_user: Some(bot.into()),
        ..TransportSettings::default()
    }
}

fn run(env: &Env, s: &Synapse, bot: &User) -> Running {
    run_as(env, s, bot, &bot.id)
}

fn run_as(env: &Env, s: &Synapse, bot: &User, bot_user: &str) -> Running {
    let token: &'static str = Box::leak(bot.token.clone().into_boxed_str());
    run_loop(
        env,
        &matrix::Platform,
        NAME,
        &transport(s, bot_user),
        Arc::new(Vault([("matrix-token", token)].into_iter().collect())),
    )
}

/// Waits (bounded, through the shared `eventually`) until `what` holds of
/// the entries of `kind` in the environment's audit trail.
async fn audited_eventually(env: &Env, kind: &str, what: impl Fn(&[String]) -> bool) {
    eventually(kind, || what(&env.audited(kind))).await;
}

/// A DM room `human` opens with `bot`, the bot joined.
async fn dm(hs: &Hs, human: &User, bot: &User) -> String {
    let room = hs
        .create_room(
            human,
            json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [bot.id]}),
        )
        .await;
    wait_joined(hs, human, &room, bot).await;
    room
}

fn allowlist(users: &[&User]) -> impl Fn(&mut ChannelSettings) {
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    move |ch: &mut ChannelSettings| {
        ch.allowlist = ids.clone();
        ch.require_mention = false;
    }
}

// ---------------------------------------------------------------------------

/// A test's cast on the shared homeserver: a bot account, a human on the
/// channel's allowlist, and the channel running as the bot.
struct Scene {
    s: &'static Synapse,
    hs: Hs,
    bot: User,
    human: User,
    env: Env,
    running: Running,
}

impl Scene {
    /// `None` (after a skip) without the homeserver.
    async fn start(test: &str) -> Option<Scene> {
        let s = synapse(test)?;
        let hs = Hs::new(s);
        let bot = hs.register(&unique("bot")).await;
        let human = hs.register(&unique("human")).await;
        let env = env_with(&[NAME], allowlist(&[&human]));
        let running = run(&env, s, &bot);
        Some(Scene {
            s,
            hs,
            bot,
            human,
            env,
            running,
        })
    }

    fn parts(self) -> (Hs, User, User, Env, Running) {
        (self.hs, self.bot, self.human, self.env, self.running)
    }
}

/// The scene of the test `$test`, or (after a skip) out of the test.
macro_rules! scene_or_skip {
    ($test:literal) => {
        match Scene::start($test).await {
            Some(scene) => scene,
            None => return,
        }
    };
}

/// Waits (bounded) until `viewer` sees `member` joined to `room`.
async fn wait_joined(hs: &Hs, viewer: &User, room: &str, member: &User) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hs.joined(viewer, room).await.contains(&member.id) {
        assert!(
            Instant::now() < deadline,
            "{} did not join {room}",
            member.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_human_is_answered_and_a_stranger_is_refused() {
    let scene = scene_or_skip!("a_paired_human_is_answered_and_a_stranger_is_refused");
    let (hs, bot, human, env, running) = scene.parts();
    let stranger = hs.register(&unique("stranger")).await;

    let room = dm(&hs, &human, &bot).await;
    hs.say(&human, &room, "hello bot").await;
    hs.wait_for(&human, &room, &bot, ACK).await;
    let task = env.try_task().unwrap();
    assert_eq!(
        (
            task.inbound.text(),
            task.inbound.sender(),
            task.inbound.chat()
        ),
        ("hello bot", human.id.as_str(), room.as_str())
    );
    assert_eq!(task.inbound.context(), cowork::gateway::Context::Dm);

    // A stranger's DM: joined (pairing needs a way in), asked to pair,
    // never a task.
    let theirs_dm = dm(&hs, &stranger, &bot).await;
    hs.say(&stranger, &theirs_dm, "let me in").await;
    hs.wait_for(&stranger, &theirs_dm, &bot, cowork::gateway::PAIRING_PROMPT)
        .await;
    assert!(env.try_task().is_none());

    // A stranger's group invitation: not joined, audited.
    let theirs = hs
        .create_room(
            &stranger,
            json!({"preset": "private_chat", "invite": [bot.id]}),
        )
        .await;
    audited_eventually(&env, "gateway.membership", |r| {
        r.contains(&"invite_pending".to_string())
    })
    .await;
    assert!(!hs.joined(&stranger, &theirs).await.contains(&bot.id));

    // The stranger in a group the human made: refused, never a task.
    let group = hs
        .create_room(
            &human,
            json!({"preset": "public_chat", "invite": [bot.id, stranger.id]}),
        )
        .await;
    hs.room_op(&stranger, &group, "join", json!({})).await;
    wait_joined(&hs, &human, &group, &bot).await;
    hs.say(&stranger, &group, &format!("{} run rm -rf", bot.id))
        .await;
    audited_eventually(&env, "gateway.message", |r| {
        r.contains(&"unknown_sender_in_group".to_string())
    })
    .await;
    assert!(env.try_task().is_none());
    assert_eq!(running.problem(), None);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_room_is_refused_once_with_the_clear_message() {
    let scene = scene_or_skip!("an_encrypted_room_is_refused_once_with_the_clear_message");
    let (hs, bot, human, env, running) = scene.parts();
    let room = hs
        .create_room(
            &human,
            json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [bot.id],
                   "initial_state": [{"type": "m.room.encryption", "state_key": "",
                                      "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]}),
        )
        .await;
    wait_joined(&hs, &human, &room, &bot).await;
    // A client that sends plain text into an encrypted room, then a real
    // (opaque) encrypted event: neither is read.
    hs.say(&human, &room, "plain text in an encrypted room")
        .await;
    hs.send_event(
        &human,
        &room,
        "m.room.encrypted",
        json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "sender_key": "k",
               "session_id": "s", "device_id": "D"}),
    )
    .await;
    audited_eventually(&env, "gateway.inbound_rejected", |r| {
        r.contains(&"encrypted_room".to_string())
    })
    .await;
    // A plain room after it proves both encrypted events were read.
    let plain = dm(&hs, &human, &bot).await;
    hs.say(&human, &plain, "ping").await;
    hs.wait_for(&human, &plain, &bot, ACK).await;
    let refusals: Vec<_> = env
        .audit
        .entries()
        .into_iter()
        .filter(|e| e.kind == "gateway.inbound_rejected")
        .collect();
    assert_eq!(refusals.len(), 1, "refused once per room");
    let detail = refusals[0].payload.to_string();
    assert!(detail.contains("end-to-end encrypted"), "{detail}");
    assert!(detail.contains("no persistent crypto store"), "{detail}");
    assert_eq!(env.try_task().unwrap().inbound.text(), "ping");
    assert!(env.try_task().is_none(), "nothing of the encrypted room");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_of_others_are_audited() {
    let Some(scene) = Scene::start("membership_changes_of_others_are_audited").await else {
        return;
    };
    let Scene {
        hs,
        bot,
        human,
        env,
        running,
        ..
    } = scene;
    let guest = hs.register(&unique("guest")).await;
    let room = dm(&hs, &human, &bot).await;
    hs.room_op(&human, &room, "invite", json!({"user_id": guest.id}))
        .await;
    hs.room_op(&guest, &room, "join", json!({})).await;
    hs.room_op(
        &human,
        &room,
        "kick",
        json!({"user_id": guest.id, "reason": "test"}),
    )
    .await;
    audited_eventually(&env, "gateway.membership", |r| {
        r.ends_with(&[
            "invite".to_string(),
            "join".to_string(),
            "leave".to_string(),
        ])
    })
    .await;
    let kick = env
        .audit
        .entries()
        .into_iter()
        .rfind(|e| e.kind == "gateway.membership")
        .unwrap();
    let detail = kick.payload.to_string();
    assert!(
        detail.contains(&format!("leave of {} by {}", guest.id, human.id)),
        "{detail}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_goes_on_from_since_and_a_revoked_token_is_shown() {
    let scene = scene_or_skip!("a_restart_goes_on_from_since_and_a_revoked_token_is_shown");
    let s = scene.s;
    let (hs, bot, human, env, running) = scene.parts();
    let room = dm(&hs, &human, &bot).await;
    hs.say(&human, &room, "first").await;
    hs.wait_for(&human, &room, &bot, ACK).await;
    assert_eq!(env.try_task().unwrap().inbound.text(), "first");
    running.stop().await;

    // Said while the appliance is down: read after the restart.
    hs.say(&human, &room, "while you were away").await;
    let running = run(&env, s, &bot);
    eventually("the message said while down", || {
        env.try_task()
            .is_some_and(|t| t.inbound.text() == "while you were away")
    })
    .await;

    // The token logged out (revoked): the next sync is refused, shown.
    hs.call(
        reqwest::Method::POST,
        "/_matrix/client/v3/logout",
        &bot.token,
        json!({}),
    )
    .await;
    hs.say(&human, &room, "wake the long poll").await;
    eventually("the revoked token shown", || {
        running
            .problem()
            .is_some_and(|p| p.contains("token revoked or rotated: set a new one"))
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_account_fails_the_homeserver_check() {
    let Some(s) = synapse("a_token_of_another_account_fails_the_homeserver_check") else {
        return;
    };
    let hs = Hs::new(s);
    let bot = hs.register(&unique("bot")).await;
    let env = env(&[NAME]);
    let running = run_as(&env, s, &bot, "@someone-else:localhost");
    eventually("the homeserver check's problem", || {
        running.problem().is_some_and(|p| {
            p.contains(&format!("the token belongs to {}", bot.id))
                && p.contains("not to bot_user @someone-else:localhost")
        })
    })
    .await;
    assert!(!running.problem().unwrap().contains(&bot.token));
    running.stop().await;
}

/// The outbound against a local fake of the send endpoint (Synapse's rate
/// limits are relaxed for the tests above): a piece answered 429
/// `M_LIMIT_EXCEEDED` is sent again after `retry_after_ms` under the same
/// transaction id, the next piece under a new one, the token only in the
/// header.
#[tokio::test]
async fn a_rate_limited_piece_is_retried_under_its_own_transaction_id() {
    use axum::http::{HeaderMap, StatusCode, Uri};
    const TOKEN: &str = "syt_secret_token_of_the_fake";
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let log = log.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let mut log = log.lock().unwrap();
            log.push((uri.to_string(), auth));
            if log.len() == 1 {
                let body = r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":300}"#;
                (StatusCode::TOO_MANY_REQUESTS, body)
            } else {
                (StatusCode::OK, r#"{"event_id":"$sent"}"#)
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = matrix::MatrixClient::new(
        &cowork::gateway::channels::HttpConfig::new(format!("http://127.0.0.1:{port}")),
        &cowork::gateway::channels::Redacted::from(TOKEN.to_string()),
        "@cowbot:localhost",
    )
    .unwrap();
    let began = Instant::now();
    let text = "a".repeat(matrix::MATRIX_MAX_CHARS + 10);
    client.send_text("!room:localhost", &text).await.unwrap();
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "waited as asked"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let prefix = "/_matrix/client/v3/rooms/%21room%3Alocalhost/send/m.room.message/";
    assert!(
        seen.iter().all(|(uri, _)| uri.starts_with(prefix)),
        "{seen:?}"
    );
    assert_eq!(seen[0].0, seen[1].0, "the retry reuses its transaction id");
    assert_ne!(seen[1].0, seen[2].0, "each piece has its own");
    for (uri, auth) in &seen {
        assert_eq!(auth, &format!("Bearer {TOKEN}"));
        assert!(!uri.contains(TOKEN), "the token in a URL: {uri}");
    }
    // A refusal says what to do, without the server's text or the token.
    let e = client
        .send_text("not a room", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Matrix room id"), "{e}");
}
