//! iMessage transport end to end: `imsg rpc` over SSH, the channel started
//! as the runner starts it (settings, the vault, the registry), against a
//! real OpenSSH server (Debian's `sshd`) the test starts on loopback with a
//! configuration of its own: its own host key, `AuthorizedKeysFile` holding
//! the appliance's generated public key with the `command="… rpc",restrict`
//! line the docs suggest, which runs a stub `imsg` (`tests/data/imsg_stub.py`,
//! imsg's JSON-RPC over stdio; it prints what the test writes into a FIFO
//! and records the requests it answered).
//! - A message in → the gateway → the answer out as a `send` to its chat;
//!   the owner's own message (`is_from_me`) skipped; an unpaired sender gets
//!   no task.
//! - The contact allowlist refuses (audited) a sender outside it.
//! - A host key other than the pinned one is refused, and so is the
//!   appliance's key where the Mac does not know it; imsg refusing the
//!   subscription (no Full Disk Access) is shown.
//! - imsg exiting: shown, then a new connection resuming after the last
//!   message seen (`since_rowid`).
//! - Hostile lines (oversized, not JSON, wrong types, a sender that is a
//!   contact name) audited as malformed, the session going on.
//!
//! sshd needs root (it switches to the user) and `/run/sshd` (created here
//! when missing): without root or without sshd the tests say `SKIPPED`.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;
mod skip;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use cowork::gateway::channels::{Redacted, SecretLookup, imessage};
use cowork::gateway::{ChannelSettings, GatewayError, TransportKind, TransportSettings};
use gateway_transport_common::*;
use serde_json::{Value, json};

const NAME: &str = "imessage";
const SECRET: &str = "imessage_ssh_key";
const PHONE: &str = "+15551234567";
const FRIEND: &str = "ada@example.com";
const STRANGER: &str = "+15550000000";
const SSHD: &str = "/usr/sbin/sshd";

struct KeyVault(String);

impl SecretLookup for KeyVault {
    fn secret(&self, name: &str) -> Result<Redacted, GatewayError> {
        assert_eq!(name, SECRET);
        Ok(Redacted::from(self.0.clone()))
    }
}

/// A real sshd on loopback whose only key runs the stub imsg.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// The sshd's host key, as the channel pins it.
    host_key: String,
    user: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stub() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/imsg_stub.py")
}

/// The `authorized_keys` line the docs suggest for `public`.
fn authorized(public: &str) -> String {
    format!(
        "command=\"/usr/bin/python3 {} rpc\",restrict {public}\n",
        stub().display()
    )
}

impl Sshd {
    /// Starts sshd admitting the keys of `authorized_keys`; `None` (the
    /// test skipped) without root or sshd.
    async fn start(test: &str, authorized_keys: &str) -> Option<Sshd> {
        if !skip::is_root() {
            skip::skip(test, "sshd needs root", skip::Missing::ProvidedByMakeTest);
            return None;
        }
        if !Path::new(SSHD).exists() {
            skip::skip(
                test,
                "sshd is not installed (Debian's openssh-server)",
                skip::Missing::ProvidedByMakeTest,
            );
            return None;
        }
        // sshd's privilege separation directory (systemd creates it at boot).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (host_private, host_key) = imessage::generate_key().unwrap();
        std::fs::write(d.join("host_key"), host_private.as_bytes()).unwrap();
        std::fs::set_permissions(d.join("host_key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::write(d.join("authorized_keys"), authorized_keys).unwrap();
        nix::unistd::mkfifo(
            &d.join("feed"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let [port] = unused_ports::<1>();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey {dir}/host_key\n\
             PidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             SetEnv IMSG_STUB_DIR={dir}\n\
             LogLevel VERBOSE\n",
            dir = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name;
        let sshd = Sshd {
            child,
            dir,
            port,
            host_key,
            user,
        };
        wait_listening(port, "sshd").await;
        Some(sshd)
    }

    fn transport(&self, contacts: &[&str]) -> TransportSettings {
        TransportSettings {
            kind: TransportKind::Imessage,
            host: Some("127.0.0.1".into()),
            port: Some(self.port),
            user: Some(self.user.clone()),
            host_key: Some(self.host_key.clone()),
            key_secret: Some(SECRET.into()),
            contacts: contacts.iter().map(|c| c.to_string()).collect(),
            ..TransportSettings::default()
        }
    }

    /// Writes `line` for the stub to print (or `EXIT`).
    async fn feed(&self, line: String) {
        let path = self.dir.path().join("feed");
        tokio::task::spawn_blocking(move || {
            // Read-write: opening never waits for the stub, and what it has
            // not read yet waits in the pipe.
            let mut fifo = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            fifo.write_all(format!("{line}\n").as_bytes()).unwrap();
        })
        .await
        .unwrap();
    }

    /// The requests the stubs answered, in order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn of(&self, method: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["method"] == method)
            .map(|r| r["params"].clone())
            .collect()
    }

    async fn subscribed(&self, n: usize) {
        eventually(&format!("subscription {n}"), || {
            self.of("watch.subscribe").len() >= n
        })
        .await;
    }

    /// Waits for the `n`th `send` and returns it.
    async fn sent(&self, n: usize) -> Value {
        eventually(&format!("send {n}"), || self.of("send").len() >= n).await;
        self.of("send")[n - 1].clone()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

/// A `message` notification as imsg writes it, created now.
fn message(id: i64, sender: &str, chat_id: i64, text: &str, from_me: bool) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "jsonrpc": "2.0",
        "method": "message",
        "params": {"subscription": 1, "message": {
            "id": id, "chat_id": chat_id, "guid": format!("GUID-{id}"),
            "chat_identifier": sender, "chat_guid": format!("iMessage;-;{sender}"),
            "chat_name": "", "participants": [sender], "is_group": false,
            "sender": sender, "is_from_me": from_me, "text": text,
            "created_at": now, "attachments": [],
        }},
    })
    .to_string()
}

struct Started {
    env: Env,
    running: Running,
}

/// The channel started on `transport` with the appliance's `private` key.
fn run(
    transport: &TransportSettings,
    private: &str,
    tweak: impl Fn(&mut ChannelSettings),
) -> Started {
    let env = env_with(&[NAME], tweak);
    let running = run_loop(
        &env,
        &imessage::Platform,
        NAME,
        transport,
        Arc::new(KeyVault(private.to_string())),
    );
    Started { env, running }
}

fn allowlisted(ch: &mut ChannelSettings) {
    ch.allowlist = vec![PHONE.into(), FRIEND.into()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_answered_through_send_the_owners_own_and_strangers_not() {
    let (private, public) = imessage::generate_key().unwrap();
    let Some(s) = Sshd::start("imessage_answer", &authorized(&public)).await else {
        return;
    };
    let r = run(&s.transport(&[]), &private, allowlisted);
    s.subscribed(1).await;
    assert_eq!(s.of("watch.subscribe")[0], json!({}), "no cursor yet");

    s.feed(message(10, PHONE, 7, "hello from me", true)).await;
    s.feed(message(11, "+1 (555) 123-4567", 7, "hello there", false))
        .await;
    assert_eq!(s.sent(1).await, json!({"chat_id": 7, "text": ACK}));
    let task = r.env.try_task().expect("a task for the message");
    assert_eq!(task.inbound.text(), "hello there");
    assert_eq!(task.inbound.sender(), PHONE);
    assert_eq!(task.inbound.chat(), "7");

    // An unpaired sender, then the allowlisted friend: once the friend's
    // answer is out, the stranger's message was handled before it.
    s.feed(message(12, STRANGER, 8, "let me in", false)).await;
    s.feed(message(13, "Ada@Example.com", 9, "and me", false))
        .await;
    let mut n = 2;
    while s.sent(n).await["chat_id"] != 9 {
        n += 1;
    }
    assert_eq!(s.of("send")[n - 1]["text"], ACK);
    let task = r.env.try_task().expect("a task for the friend");
    assert_eq!(task.inbound.sender(), FRIEND);
    assert!(
        r.env.try_task().is_none(),
        "the stranger or the owner got a task"
    );
    assert!(
        s.of("send")
            .iter()
            .all(|p| p["chat_id"] != 8 || p["text"] != ACK),
        "{:?}",
        s.of("send")
    );
    assert!(r.running.problem().is_none(), "{:?}", r.running.problem());
    r.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_allowlist_refuses_the_others() {
    let (private, public) = imessage::generate_key().unwrap();
    let Some(s) = Sshd::start("imessage_contacts", &authorized(&public)).await else {
        return;
    };
    let r = run(&s.transport(&[PHONE]), &private, allowlisted);
    s.subscribed(1).await;
    // The friend is allowlisted for the gateway but not a contact.
    s.feed(message(20, FRIEND, 9, "hi", false)).await;
    s.feed(message(21, PHONE, 7, "hi", false)).await;
    assert_eq!(s.sent(1).await, json!({"chat_id": 7, "text": ACK}));
    assert_eq!(r.env.try_task().unwrap().inbound.sender(), PHONE);
    assert!(r.env.try_task().is_none());
    assert!(
        r.env
            .audited("gateway.inbound_rejected")
            .contains(&"not_a_contact".to_string()),
        "{:?}",
        r.env.audited("gateway.inbound_rejected")
    );
    assert_eq!(s.of("send").len(), 1);
    r.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_host_key_is_refused_and_so_is_an_unknown_appliance_key() {
    let (private, public) = imessage::generate_key().unwrap();
    let Some(s) = Sshd::start("imessage_host_key", &authorized(&public)).await else {
        return;
    };
    let mut t = s.transport(&[]);
    t.host_key = Some(imessage::generate_key().unwrap().1);
    let r = run(&t, &private, allowlisted);
    eventually("the host key problem", || {
        r.running.problem().is_some_and(|p| p.contains("host key"))
    })
    .await;
    let problem = r.running.problem().unwrap();
    assert!(
        problem.contains("not the pinned host_key: refused"),
        "{problem}"
    );
    assert!(problem.contains("SHA256:"), "{problem}");
    r.running.stop().await;

    // The Mac does not know this appliance's key.
    let (other_private, _) = imessage::generate_key().unwrap();
    let r = run(&s.transport(&[]), &other_private, allowlisted);
    eventually("the login problem", || {
        r.running
            .problem()
            .is_some_and(|p| p.contains("refused the appliance's key"))
    })
    .await;
    r.running.stop().await;
    assert!(
        s.requests().is_empty(),
        "imsg ran: {:?}\n{}",
        s.requests(),
        s.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imsg_refusing_to_watch_is_shown() {
    let (private, public) = imessage::generate_key().unwrap();
    let Some(s) = Sshd::start("imessage_refused", &authorized(&public)).await else {
        return;
    };
    std::fs::write(s.dir.path().join("refuse"), "").unwrap();
    let r = run(&s.transport(&[]), &private, allowlisted);
    eventually("the subscription problem", || {
        r.running
            .problem()
            .is_some_and(|p| p.contains("Full Disk Access is required"))
    })
    .await;
    // Once the Mac is fixed, the next try subscribes and the problem clears.
    std::fs::remove_file(s.dir.path().join("refuse")).unwrap();
    eventually("the problem cleared", || r.running.problem().is_none()).await;
    r.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imsg_exiting_is_shown_and_the_next_session_resumes_after_the_last_message() {
    let (private, public) = imessage::generate_key().unwrap();
    let Some(s) = Sshd::start("imessage_reconnect", &authorized(&public)).await else {
        return;
    };
    let r = run(&s.transport(&[]), &private, allowlisted);
    s.subscribed(1).await;
    s.feed(message(30, PHONE, 7, "first", false)).await;
    s.sent(1).await;
    s.feed("EXIT".into()).await;
    eventually("the exit shown", || {
        r.running
            .problem()
            .is_some_and(|p| p.contains("imsg rpc ended") && p.contains("trying again in"))
    })
    .await;
    s.subscribed(2).await;
    assert_eq!(s.of("watch.subscribe")[1], json!({"since_rowid": 30}));
    s.feed(message(31, PHONE, 7, "second", false)).await;
    assert_eq!(s.sent(2).await, json!({"chat_id": 7, "text": ACK}));
    eventually("the problem cleared", || r.running.problem().is_none()).await;
    r.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_lines_are_audited_and_the_session_goes_on() {
    let (private, public) = imessage::generate_key().unwrap();
    let Some(s) = Sshd::start("imessage_hostile", &authorized(&public)).await else {
        return;
    };
    let r = run(&s.transport(&[]), &private, allowlisted);
    s.subscribed(1).await;
    let before = r.env.audited("gateway.inbound_rejected").len();
    let hostile = [
        "not json at all".to_string(),
        format!(
            r#"{{"jsonrpc":"2.0","method":"message","params":{{"message":{{"text":"{}"}}}}}}"#,
            "x".repeat(imessage::MAX_LINE_BYTES)
        ),
        r#"{"jsonrpc":"2.0","method":"message","params":{"message":{"id":1,"chat_id":"7","guid":"g","sender":"+15551234567","is_from_me":false}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"message","params":{"message":{"id":2,"chat_id":7,"guid":"g2","sender":"Ada Lovelace","is_from_me":false}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"message","params":{"message":{"id":3,"chat_id":1e30,"guid":"g3","sender":"+15551234567","is_from_me":false}}}"#.to_string(),
        r#"{"jsonrpc":"2.0","method":"message","params":"\u0000\u0007"}"#.to_string(),
    ];
    for line in hostile {
        s.feed(line).await;
    }
    s.feed(message(40, PHONE, 7, "still there?", false)).await;
    assert_eq!(s.sent(1).await, json!({"chat_id": 7, "text": ACK}));
    let rejected = r.env.audited("gateway.inbound_rejected");
    assert_eq!(
        rejected[before..]
            .iter()
            .filter(|r| *r == "malformed")
            .count(),
        6,
        "{rejected:?}"
    );
    assert_eq!(r.env.try_task().unwrap().inbound.text(), "still there?");
    assert!(r.env.try_task().is_none());
    assert!(r.running.problem().is_none(), "{:?}", r.running.problem());
    r.running.stop().await;
}
