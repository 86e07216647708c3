//! Signal transport end to end: the channel started as the runner starts it
//! (settings, the registry), talking JSON-RPC 2.0 over a Unix socket to a
//! local fake of `signal-cli daemon --socket` (a listener in this test
//! speaking signal-cli's documented lines: `receive` notifications, and
//! answers to `listIdentities`, `send` and `trust`).
//! - An allowlisted sender's DM is answered by `recipient` (its ACI) and a
//!   group message (mentioning the bot) by `groupId`; a long answer goes in
//!   pieces of at most 2,000 bytes; an unknown sender starts no task.
//! - Hostile lines: not JSON, wrong types, no sender ACI (a phone number
//!   only), a huge group id are audited as malformed and the connection goes
//!   on; an oversized line ends the connection (shown as the problem) and
//!   the channel reconnects; signal-cli closing the socket is reconnected.
//! - The socket refused (never connected to, the problem says why) when it
//!   or its directory is writable by group or others.
//! - Trust on first use: a sender whose key signal-cli holds UNTRUSTED, or
//!   whose safety number changed since it was first seen, is paused: no
//!   task, no answer, `gateway.safety_number_changed` audited with the new
//!   number, the problem shown; a wrong number is refused by the
//!   confirmation; the owner's confirmation (the gateway's path for
//!   `coworkctl channels trust`) calls `trust` with `verifiedSafetyNumber`,
//!   clears the problem and resumes the sender, and the confirmed number is
//!   kept in the store.
//! - Through the running appliance (coworkd and its gateway component, the
//!   channel in its configuration): a DM answered, the key changed, the
//!   sender paused and `gateway.safety_number_changed` in the trail,
//!   `coworkctl channels trust` with a wrong number refused and with the
//!   right one resuming the sender (audited `identity.confirmed`), and
//!   after a restart of coworkd the confirmed sender not paused again.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod common;
mod gateway_transport_common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cowork::gateway::channels::signal;
use cowork::gateway::identities::Standing;
use cowork::gateway::{ChannelSettings, TransportKind, TransportSettings};
use gateway_transport_common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

const NAME: &str = "sig";
const BOT: &str = "+15550001111";
const ALICE: &str = "7ccae375-cd51-4c82-8b1e-7be3280aa485";
const ALICE_NUMBER: &str = "+15550002222";
const MALLORY: &str = "0b7f4c1e-2d3a-4e5f-8a9b-1c2d3e4f5a6b";
const GROUP: &str = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=";

fn number(d: char) -> String {
    std::iter::repeat_n(d, 60).collect()
}

// ---------------------------------------------------------------------------
// The fake signal-cli daemon.

/// What the fake knows and saw.
#[derive(Default)]
struct State {
    /// Identities by ACI: (number, safety number, trust level).
    identities: HashMap<String, (String, String, String)>,
    /// The line pusher of the current connection.
    current: Option<mpsc::UnboundedSender<Option<String>>>,
    connections: usize,
    trusted: Vec<Value>,
}

struct Fake {
    dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    /// The params of every `send` call, in order.
    sent: mpsc::UnboundedReceiver<Value>,
}

impl Fake {
    /// Listens on `dir/signal-cli/socket` (directory 0700, socket 0600).
    async fn start() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let sock_dir = dir.path().join("signal-cli");
        std::fs::create_dir(&sock_dir).unwrap();
        std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = sock_dir.join("socket");
        let listener = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        state.lock().unwrap().identities.insert(
            ALICE.into(),
            (
                ALICE_NUMBER.into(),
                number('1'),
                "TRUSTED_UNVERIFIED".into(),
            ),
        );
        let (sent_tx, sent) = mpsc::unbounded_channel();
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, rx) = mpsc::unbounded_channel();
                {
                    let mut s = st.lock().unwrap();
                    s.current = Some(tx);
                    s.connections += 1;
                }
                tokio::spawn(serve(stream, st.clone(), rx, sent_tx.clone()));
            }
        });
        Fake { dir, state, sent }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("signal-cli/socket")
    }

    fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Writes `line` to the connected appliance.
    fn push(&self, line: &str) {
        let s = self.state.lock().unwrap();
        let _ = s
            .current
            .as_ref()
            .expect("connected")
            .send(Some(line.into()));
    }

    /// Closes the current connection.
    fn close(&self) {
        let s = self.state.lock().unwrap();
        let _ = s.current.as_ref().expect("connected").send(None);
    }

    fn receive(&self, envelope: Value) {
        self.push(
            &json!({"jsonrpc": "2.0", "method": "receive",
                "params": {"envelope": envelope, "account": BOT}})
            .to_string(),
        );
    }

    fn dm(&self, uuid: &str, number: &str, timestamp: u64, text: &str) {
        self.receive(
            json!({"source": number, "sourceNumber": number, "sourceUuid": uuid,
            "sourceName": "Alice", "sourceDevice": 1, "timestamp": timestamp,
            "dataMessage": {"timestamp": timestamp, "message": text, "expiresInSeconds": 0}}),
        );
    }

    fn set_identity(&self, uuid: &str, safety: &str, level: &str) {
        let mut s = self.state.lock().unwrap();
        let entry = s
            .identities
            .entry(uuid.into())
            .or_insert_with(|| (ALICE_NUMBER.into(), String::new(), String::new()));
        entry.1 = safety.into();
        entry.2 = level.into();
    }

    async fn next_sent(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.sent.recv())
            .await
            .expect("a send in time")
            .unwrap()
    }

    /// Waits for the connection (a first one, or `n`).
    async fn connected(&self, n: usize) {
        eventually("signal-cli's socket connected", || self.connections() >= n).await;
    }
}

/// One connection: answers the calls, writes what the test pushes.
async fn serve(
    stream: tokio::net::UnixStream,
    state: Arc<Mutex<State>>,
    mut pushes: mpsc::UnboundedReceiver<Option<String>>,
    sent: mpsc::UnboundedSender<Value>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { return };
                let call: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(call["jsonrpc"], "2.0");
                assert_eq!(call["params"]["account"], BOT);
                let answer = answer(&state, &call, &sent);
                let mut out = json!({"jsonrpc": "2.0", "id": call["id"]});
                match answer {
                    Ok(result) => out["result"] = result,
                    Err(message) => out["error"] = json!({"code": -1, "message": message}),
                }
                if write.write_all(format!("{out}\n").as_bytes()).await.is_err() {
                    return;
                }
            }
            push = pushes.recv() => match push {
                Some(Some(line)) => {
                    if write.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
        }
    }
}

fn answer(
    state: &Mutex<State>,
    call: &Value,
    sent: &mpsc::UnboundedSender<Value>,
) -> Result<Value, String> {
    let params = &call["params"];
    let mut s = state.lock().unwrap();
    match call["method"].as_str().unwrap() {
        "listIdentities" => {
            let who = params["number"].as_str().unwrap();
            Ok(Value::Array(
                s.identities
                    .iter()
                    .filter(|(uuid, (number, _, _))| *uuid == who || number == who)
                    .map(|(uuid, (number, safety, level))| {
                        json!({"number": number, "uuid": uuid, "fingerprint": "05 aa",
                            "safetyNumber": safety, "scannableSafetyNumber": "CiQ=",
                            "trustLevel": level, "addedTimestamp": 1})
                    })
                    .collect(),
            ))
        }
        "send" => {
            sent.send(params.clone()).unwrap();
            Ok(json!({"timestamp": 5, "results": [{"type": "SUCCESS"}]}))
        }
        "trust" => {
            let who = params["recipient"].as_str().unwrap().to_string();
            let given = params["verifiedSafetyNumber"].as_str().unwrap();
            s.trusted.push(params.clone());
            match s.identities.get_mut(&who) {
                Some(id) if id.1 == given => {
                    id.2 = "TRUSTED_VERIFIED".into();
                    Ok(Value::Null)
                }
                _ => Err("Failed to set the trust for this number, make sure the number and the fingerprint are correct.".into()),
            }
        }
        other => Err(format!("unknown method {other}")),
    }
}

// ---------------------------------------------------------------------------
// The channel.

fn transport(socket: &Path) -> TransportSettings {
    TransportSettings {
        kind: TransportKind::Signal,
        socket_path: Some(socket.to_path_buf()),
        account: Some(BOT.into()),
        ..TransportSettings::default()
    }
}

fn allowlisted(ch: &mut ChannelSettings) {
    ch.allowlist = vec![ALICE.into()];
    ch.group_allowlist = vec![GROUP.into()];
}

struct Vault;

impl cowork::gateway::channels::SecretLookup for Vault {
    fn secret(
        &self,
        _: &str,
    ) -> Result<cowork::gateway::channels::Redacted, cowork::gateway::GatewayError> {
        unreachable!("signal reads no secret")
    }
}

fn run(env: &Env, socket: &Path) -> Running {
    run_loop(
        env,
        &signal::Platform,
        NAME,
        &transport(socket),
        Arc::new(Vault),
    )
}

async fn started() -> (Fake, Env, Running) {
    let fake = Fake::start().await;
    let env = env_with(&[NAME], allowlisted);
    let running = run(&env, &fake.socket());
    fake.connected(1).await;
    (fake, env, running)
}

#[tokio::test]
async fn dms_and_groups_are_answered_by_recipient_and_group_id() {
    let (mut fake, env, running) = started().await;
    fake.dm(ALICE, ALICE_NUMBER, 1000, "hello");
    let sent = fake.next_sent().await;
    assert_eq!(sent["recipient"], json!([ALICE]));
    assert_eq!(sent["message"], ACK);
    let task = env.try_task().expect("a task for the DM");
    assert_eq!(task.inbound.sender(), ALICE);

    fake.receive(
        json!({"sourceUuid": ALICE, "sourceNumber": ALICE_NUMBER, "timestamp": 1001,
        "dataMessage": {"message": "hi bot", "groupInfo": {"groupId": GROUP, "type": "DELIVER"},
        "mentions": [{"number": BOT, "uuid": MALLORY, "start": 3, "length": 1}]}}),
    );
    let sent = fake.next_sent().await;
    assert_eq!(sent["groupId"], GROUP);
    assert!(sent.get("recipient").is_none());

    // The same message again (same sender and timestamp) is a replay.
    fake.dm(ALICE, ALICE_NUMBER, 1000, "hello");
    eventually("the replay audited", || {
        !env.audited("gateway.replay").is_empty()
    })
    .await;

    // The first-use safety number was kept.
    let kept = env.store.identity(NAME, ALICE).unwrap().unwrap();
    assert_eq!(
        (kept.safety_number, kept.standing),
        (number('1'), Standing::FirstUse)
    );
    assert_eq!(running.problem(), None);
    running.stop().await;
}

#[tokio::test]
async fn long_answers_go_in_pieces_of_2000_bytes() {
    let long = "é".repeat(1800);
    let fake = Fake::start().await;
    let env = env_full(&[NAME], allowlisted, &long, None);
    let running = run(&env, &fake.socket());
    let mut fake = fake;
    fake.connected(1).await;
    fake.dm(ALICE, ALICE_NUMBER, 2000, "hello");
    let mut got = String::new();
    for _ in 0..2 {
        let piece = fake.next_sent().await;
        let text = piece["message"].as_str().unwrap();
        assert!(text.len() <= signal::SIGNAL_MAX_BYTES, "{}", text.len());
        got.push_str(text);
    }
    assert_eq!(got, long);
    running.stop().await;
}

#[tokio::test]
async fn hostile_lines_are_audited_and_the_connection_goes_on() {
    let (mut fake, env, running) = started().await;
    let huge_group = "A".repeat(100_000);
    for line in [
        "not json at all".to_string(),
        json!({"jsonrpc": "2.0", "method": "receive", "params": {"envelope": {"sourceUuid": 42}}})
            .to_string(),
        json!({"jsonrpc": "2.0", "method": "receive", "params": {"envelope":
            {"sourceNumber": ALICE_NUMBER, "timestamp": 1, "dataMessage": {"message": "no uuid"}}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "method": "receive", "params": {"envelope":
            {"sourceUuid": ALICE, "timestamp": 2, "dataMessage": {"message": "x",
             "groupInfo": {"groupId": huge_group}}}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "method": "receive", "params": {"envelope":
            {"sourceUuid": ALICE, "timestamp": "soon", "dataMessage": {"message": "x"}}}})
        .to_string(),
        "{\"jsonrpc\":\"2.0\",\"method\":\"receive\",\"params\":{\"envelope\":{\"sourceUuid\":\"\u{1}\"}}}".to_string(),
    ] {
        fake.push(&line);
    }
    eventually("six malformed lines audited", || {
        env.audited("gateway.inbound_rejected")
            .iter()
            .filter(|r| r.contains("malformed"))
            .count()
            >= 6
    })
    .await;
    assert!(env.try_task().is_none());
    // The same connection still serves.
    fake.dm(ALICE, ALICE_NUMBER, 3000, "still there?");
    assert_eq!(fake.next_sent().await["message"], ACK);
    assert_eq!(fake.connections(), 1);
    running.stop().await;
}

#[tokio::test]
async fn an_oversized_line_ends_the_connection_and_the_channel_reconnects() {
    let (mut fake, env, running) = started().await;
    fake.push(&"x".repeat(signal::MAX_LINE_BYTES + 10));
    eventually("the oversized line shown", || {
        running
            .problem()
            .is_some_and(|p| p.contains("signal-cli sent a line") && p.contains("trying again"))
    })
    .await;
    fake.connected(2).await;
    eventually("the problem cleared", || running.problem().is_none()).await;
    fake.dm(ALICE, ALICE_NUMBER, 4000, "after");
    assert_eq!(fake.next_sent().await["message"], ACK);
    assert!(!env.audited("gateway.inbound_rejected").is_empty());

    // signal-cli closing the socket: reconnected.
    fake.close();
    fake.connected(3).await;
    fake.dm(ALICE, ALICE_NUMBER, 4001, "after close");
    assert_eq!(fake.next_sent().await["message"], ACK);
    running.stop().await;
}

#[tokio::test]
async fn unknown_senders_are_not_answered() {
    let (fake, env, running) = started().await;
    fake.set_identity(MALLORY, &number('9'), "TRUSTED_UNVERIFIED");
    fake.dm(MALLORY, "+15550003333", 5000, "let me in");
    eventually("the refusal audited", || {
        env.audit
            .entries()
            .iter()
            .any(|e| e.subject == format!("{NAME}:{MALLORY}"))
    })
    .await;
    assert!(env.try_task().is_none());
    running.stop().await;
}

#[tokio::test]
async fn a_socket_others_could_reach_is_refused() {
    for (dir_mode, sock_mode, says) in [
        (0o777, 0o600, "directory"),
        (0o770, 0o600, "directory"),
        (0o700, 0o666, "socket"),
        (0o700, 0o620, "socket"),
    ] {
        let fake = Fake::start().await;
        let sock = fake.socket();
        std::fs::set_permissions(
            sock.parent().unwrap(),
            std::fs::Permissions::from_mode(dir_mode),
        )
        .unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(sock_mode)).unwrap();
        let env = env_with(&[NAME], allowlisted);
        let running = run(&env, &sock);
        eventually("the refusal shown", || {
            running
                .problem()
                .is_some_and(|p| p.contains(says) && p.contains("writable by group or others"))
        })
        .await;
        assert_eq!(fake.connections(), 0, "{dir_mode:o} {sock_mode:o}");
        running.stop().await;
    }
    // Not a socket at all (a regular file in its place).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("socket");
    std::fs::write(&file, b"").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let problem = signal::check_socket(&file, nix::unistd::geteuid().as_raw()).unwrap_err();
    assert!(problem.contains("is not a socket"), "{problem}");
    // Another user's socket.
    // Another user's socket (root's is accepted: only a test run as a
    // user can tell another user's apart).
    let fake = Fake::start().await;
    if !nix::unistd::geteuid().is_root() {
        let problem = signal::check_socket(&fake.socket(), 4242).unwrap_err();
        assert!(problem.contains("belongs to uid"), "{problem}");
    }
}

async fn paused_until_confirmed(fake: &mut Fake, env: &Env, running: &Running, new: &str) {
    fake.dm(ALICE, ALICE_NUMBER, 6001, "run this");
    eventually("the change audited", || {
        !env.audited("gateway.safety_number_changed").is_empty()
    })
    .await;
    let entry = env
        .audit
        .entries()
        .into_iter()
        .find(|e| e.kind == "gateway.safety_number_changed")
        .unwrap();
    assert_eq!(entry.subject, format!("{NAME}:{ALICE}"));
    assert!(entry.payload.to_string().contains(new), "{}", entry.payload);
    eventually("the pause shown", || {
        running.problem().is_some_and(|p| {
            p.contains(ALICE) && p.contains(new) && p.contains("coworkctl channels trust sig")
        })
    })
    .await;
    assert!(env.try_task().is_none(), "a paused sender's message ran");
    // Another message while paused: refused, audited, not answered.
    fake.dm(ALICE, ALICE_NUMBER, 6002, "and this");
    eventually("the paused sender refused", || {
        env.audited("gateway.inbound_rejected")
            .iter()
            .any(|r| r.contains("sender_paused"))
    })
    .await;
    assert!(env.try_task().is_none());
    assert!(
        fake.sent.try_recv().is_err(),
        "a paused sender was answered"
    );

    // A wrong number is refused by signal-cli; the sender stays paused.
    let wrong = number('7');
    let e = env
        .replies
        .confirm_identity(NAME, ALICE, &wrong)
        .await
        .unwrap_err();
    assert!(e.contains("Failed to set the trust"), "{e}");
    assert!(running.problem().is_some());
    // Hostile confirmations never reach signal-cli.
    let before = fake.state.lock().unwrap().trusted.len();
    for (sender, n) in [
        (ALICE_NUMBER, new.to_string()),
        (ALICE, "12345".to_string()),
        (ALICE, format!("{new}\n")),
    ] {
        assert!(
            env.replies
                .confirm_identity(NAME, sender, &n)
                .await
                .is_err()
        );
    }
    assert!(
        env.replies
            .confirm_identity("nope", ALICE, new)
            .await
            .is_err()
    );
    assert_eq!(fake.state.lock().unwrap().trusted.len(), before);

    // The owner's confirmation, spaced as the app shows it.
    let spaced: String = new
        .as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    env.replies
        .confirm_identity(NAME, ALICE, &spaced)
        .await
        .unwrap();
    let trusted = fake.state.lock().unwrap().trusted.last().cloned().unwrap();
    assert_eq!(trusted["verifiedSafetyNumber"], new);
    assert_eq!(trusted["recipient"], ALICE);
    eventually("the pause cleared", || running.problem().is_none()).await;
    let kept = env.store.identity(NAME, ALICE).unwrap().unwrap();
    assert_eq!(
        (kept.safety_number.as_str(), kept.standing),
        (new, Standing::Confirmed)
    );
    fake.dm(ALICE, ALICE_NUMBER, 6003, "resumed?");
    assert_eq!(fake.next_sent().await["message"], ACK);
    assert!(env.try_task().is_some());
}

#[tokio::test]
async fn a_changed_safety_number_pauses_the_sender_until_the_owner_confirms() {
    let (mut fake, env, running) = started().await;
    fake.dm(ALICE, ALICE_NUMBER, 6000, "first");
    assert_eq!(fake.next_sent().await["message"], ACK);
    assert!(env.try_task().is_some());
    // The key changes; signal-cli set to trust new keys says so only by
    // the number.
    let new = number('2');
    fake.set_identity(ALICE, &new, "TRUSTED_UNVERIFIED");
    paused_until_confirmed(&mut fake, &env, &running, &new).await;
    running.stop().await;

    // A restart keeps the confirmation: not paused again.
    let running = run(&env, &fake.socket());
    fake.connected(2).await;
    fake.dm(ALICE, ALICE_NUMBER, 6100, "after restart");
    assert_eq!(fake.next_sent().await["message"], ACK);
    assert_eq!(env.audited("gateway.safety_number_changed").len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn an_untrusted_key_pauses_the_sender_until_the_owner_confirms() {
    let (mut fake, env, running) = started().await;
    let new = number('3');
    fake.set_identity(ALICE, &new, "UNTRUSTED");
    paused_until_confirmed(&mut fake, &env, &running, &new).await;
    running.stop().await;
}

// ---------------------------------------------------------------------------
// Through the running appliance.

fn ctl_ok(i: &common::Instance, args: &[&str]) -> String {
    let out = i.ctl(args);
    assert!(
        out.status.success(),
        "coworkctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn audited_kinds(i: &common::Instance) -> Vec<String> {
    i.audit_tail(&[])
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coworkctl_channels_trust_resumes_a_paused_sender_through_the_appliance() {
    let mut fake = Fake::start().await;
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    let config = format!(
        "{}\n[channels.sig]\nallowlist = [\"{ALICE}\"]\n\
         [channels.sig.transport]\nkind = \"signal\"\naccount = \"{BOT}\"\nsocket_path = \"{}\"\n",
        common::DEV_CONFIG,
        fake.socket().display()
    );
    std::fs::write(common::Instance::config_path(dir.path()), config).unwrap();
    let i = tokio::task::block_in_place(|| {
        let mut i = common::Instance::start_in(dir, &[], &[]);
        i.wait_notification("READY=1", Duration::from_secs(15));
        i
    });
    fake.connected(1).await;

    fake.dm(ALICE, ALICE_NUMBER, 7000, "hello");
    let answer = fake.next_sent().await;
    assert_eq!(answer["recipient"], json!([ALICE]));

    let new = number('4');
    fake.set_identity(ALICE, &new, "TRUSTED_UNVERIFIED");
    fake.dm(ALICE, ALICE_NUMBER, 7001, "run this");
    let seen = tokio::task::block_in_place(|| {
        common::wait_until(Duration::from_secs(20), "the change in the trail", || {
            let out = i.ctl(&["audit", "tail", "--json", "-n", "200"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("gateway.safety_number_changed")
                .then_some(text)
        })
    });
    assert!(seen.contains(&new), "{seen}");
    assert!(
        fake.sent.try_recv().is_err(),
        "a paused sender was answered"
    );

    // A wrong number: refused in words, still paused.
    let wrong = number('8');
    let out = tokio::task::block_in_place(|| i.ctl(&["channels", "trust", "sig", ALICE, &wrong]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Failed to set the trust"),
        "{out:?}"
    );
    // The right one, spaced in groups as the app shows it.
    let spaced = format!("{} {}", &new[..30], &new[30..]);
    let said =
        tokio::task::block_in_place(|| ctl_ok(&i, &["channels", "trust", "sig", ALICE, &spaced]));
    assert!(said.contains("confirmed"), "{said}");
    let kinds = tokio::task::block_in_place(|| audited_kinds(&i));
    assert!(kinds.iter().any(|k| k == "identity.confirmed"), "{kinds:?}");
    fake.dm(ALICE, ALICE_NUMBER, 7002, "resumed?");
    assert_eq!(fake.next_sent().await["recipient"], json!([ALICE]));

    // A restart keeps the confirmation.
    let i = tokio::task::block_in_place(move || i.restart());
    fake.connected(2).await;
    fake.dm(ALICE, ALICE_NUMBER, 7003, "after restart");
    assert_eq!(fake.next_sent().await["recipient"], json!([ALICE]));
    let changes = tokio::task::block_in_place(|| audited_kinds(&i))
        .iter()
        .filter(|k| *k == "gateway.safety_number_changed")
        .count();
    assert_eq!(changes, 1);
}
