//! Twitch transport end to end: IRC over TLS, the channel started as the
//! runner starts it (settings, the vault, the registry).
//! - Against a real IRC server, Debian's ngircd, started by the test on
//!   loopback with TLS only (a certificate of a test CA that only the
//!   channel's `ca_file` trusts) and a server password standing in for the
//!   token: the login (`CAP REQ` refused with `NAK`, `CAP END`, `PASS`,
//!   `NICK`), the channel joined, a message from another client (a raw TLS
//!   client of the test) refused as malformed (no Twitch tags: no user-id),
//!   a wrong token shown as the problem, and the reconnect after the server
//!   was stopped and started again, the problem shown meanwhile.
//! - Against a local fake of Twitch's IRC (a TLS listener here) speaking its
//!   tags: an allowlisted viewer (by user-id) answered in reply to the
//!   message; an unknown viewer, the bot's own message, a channel outside
//!   the allowlist and untagged, oversized and badly tagged lines handled
//!   without an answer (audited where they should be); an answer with CR LF
//!   stays one command; 600 characters go as two messages; "Login
//!   authentication failed" is shown and backed off; `RECONNECT` opens a
//!   new connection; `PING` answered.
//! - The send window, on a session over an in-memory stream with tokio's
//!   paused clock: of 25 answers, the 21st waits until 30 s after the first.
//!
//! Without ngircd the ngircd test says `SKIPPED` and why.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;
mod skip;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cowork::gateway::channels::twitch::{
    IrcServer, Outgoing, SessionEnd, Twitch, TwitchConnection, TwitchSender,
};
use cowork::gateway::channels::{Redacted, SecretLookup, twitch};
use cowork::gateway::transport::pacer::Pacer;
use cowork::gateway::{ChannelSettings, GatewayError, TransportKind, TransportSettings};
use gateway_transport_common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const TOKEN: &str = "tok3nf0rtw1tch";
const BOT: &str = "cowbot";
const BOT_ID: &str = "999";
const VIEWER: &str = "42";
const ROOM: &str = "1000";
const NAME: &str = "twitch";

struct Vault(&'static str);

impl SecretLookup for Vault {
    fn secret(&self, name: &str) -> Result<Redacted, GatewayError> {
        assert_eq!(name, "twitch-token");
        Ok(Redacted::from(self.0.to_string()))
    }
}

fn transport(port: u16, ca: &Path) -> TransportSettings {
    TransportSettings {
        kind: TransportKind::Twitch,
        server: Some(format!("ircs://127.0.0.1:{port}")),
        token_secret: Some("twitch-token".into()),
        bot_user: Some(BOT.into()),
        channels: vec!["#owner".into()],
        ca_file: Some(ca.to_path_buf()),
        ..TransportSettings::default()
    }
}

fn run(env: &Env, transport: &TransportSettings, token: &'static str) -> Running {
    run_loop(
        env,
        &twitch::Platform,
        NAME,
        transport,
        Arc::new(Vault(token)),
    )
}

fn allowlisted(ch: &mut ChannelSettings) {
    ch.allowlist = vec![VIEWER.into()];
}

// ---------------------------------------------------------------------------
// The fake Twitch IRC server.

/// One connection to the fake: the lines the appliance sent, and a way to
/// send it lines.
struct Conn {
    from_bot: mpsc::UnboundedReceiver<String>,
    to_bot: mpsc::UnboundedSender<String>,
}

impl Conn {
    fn send(&self, line: &str) {
        let _ = self.to_bot.send(format!("{line}\r\n"));
    }

    /// The next line the appliance sent.
    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.from_bot.recv())
            .await
            .expect("a line from the bot in time")
            .expect("the connection is open")
    }

    /// Reads the login, welcomes the bot and reads its JOIN.
    async fn welcome(&mut self) {
        let login: Vec<String> = [self.next().await, self.next().await, self.next().await]
            .into_iter()
            .collect();
        assert_eq!(login[0], "CAP REQ :twitch.tv/tags twitch.tv/commands");
        assert_eq!(login[1], format!("PASS oauth:{TOKEN}"));
        assert_eq!(login[2], format!("NICK {BOT}"));
        assert!(self.next().await.starts_with("USER "));
        self.send(":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands");
        assert_eq!(self.next().await, "CAP END");
        self.send(&format!(":tmi.twitch.tv 001 {BOT} :Welcome, GLHF!"));
        self.send(&format!(
            "@display-name=CowBot;user-id={BOT_ID};user-type= :tmi.twitch.tv GLOBALUSERSTATE"
        ));
        assert_eq!(self.next().await, "JOIN #owner");
    }

    /// Pings and reads up to the pong: every line before it.
    async fn until_pong(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("PING :{token}"));
        let mut lines = Vec::new();
        loop {
            let line = self.next().await;
            if line == format!("PONG {token}") {
                return lines;
            }
            lines.push(line);
        }
    }
}

/// A viewer's message in `#channel`.
fn privmsg(id: &str, user: &str, channel: &str, text: &str) -> String {
    format!(
        "@badge-info=;badges=;color=#1E90FF;display-name=Viewer{user};emotes=;id={id};mod=0;\
         room-id={ROOM};subscriber=0;tmi-sent-ts=1800000000000;turbo=0;user-id={user};user-type= \
         :viewer{user}!viewer{user}@viewer{user}.tmi.twitch.tv PRIVMSG #{channel} :{text}"
    )
}

/// The fake's listener: each connection the appliance opens.
async fn fake_twitch(tls: &TestTls) -> (u16, mpsc::UnboundedReceiver<Conn>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    let (conns_tx, conns) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(stream) = acceptor.accept(tcp).await else {
                continue;
            };
            let (read, mut write) = tokio::io::split(stream);
            let (from_tx, from_bot) = mpsc::unbounded_channel();
            let (to_bot, mut to_rx) = mpsc::unbounded_channel::<String>();
            tokio::spawn(async move {
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if from_tx.send(line).is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(line) = to_rx.recv().await {
                    if line == "CLOSE\r\n" || write.write_all(line.as_bytes()).await.is_err() {
                        let _ = write.shutdown().await;
                        return;
                    }
                }
            });
            if conns_tx.send(Conn { from_bot, to_bot }).is_err() {
                return;
            }
        }
    });
    (port, conns)
}

async fn next_conn(conns: &mut mpsc::UnboundedReceiver<Conn>) -> Conn {
    tokio::time::timeout(Duration::from_secs(10), conns.recv())
        .await
        .expect("a connection in time")
        .unwrap()
}

struct Fake {
    env: Env,
    running: Running,
    conns: mpsc::UnboundedReceiver<Conn>,
    _ca: tempfile::NamedTempFile,
}

impl Fake {
    async fn start(ack: &str, tweak: impl Fn(&mut ChannelSettings)) -> Fake {
        let tls = test_tls();
        let ca = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca.path(), &tls.ca_pem).unwrap();
        let (port, conns) = fake_twitch(&tls).await;
        let env = env_full(&[NAME], tweak, ack, None);
        let running = run(&env, &transport(port, ca.path()), TOKEN);
        Fake {
            env,
            running,
            conns,
            _ca: ca,
        }
    }

    async fn connected(&mut self) -> Conn {
        let mut conn = next_conn(&mut self.conns).await;
        conn.welcome().await;
        conn
    }
}

#[tokio::test]
async fn an_allowlisted_viewer_is_answered_in_reply_and_others_are_not() {
    let mut f = Fake::start(ACK, allowlisted).await;
    let mut c = f.connected().await;

    c.send(&privmsg("m-1", VIEWER, "owner", "@cowbot hello there"));
    assert_eq!(
        c.next().await,
        format!("@reply-parent-msg-id=m-1 PRIVMSG #owner :{ACK}")
    );
    let task = f.env.try_task().expect("a task for the viewer's message");
    assert_eq!(task.inbound.text(), "@cowbot hello there");

    // Not mentioned in a group chat, an unknown viewer, the bot's own
    // message, a channel not served, the same message again: no answer.
    c.send(&privmsg("m-2", VIEWER, "owner", "hello without a mention"));
    c.send(&privmsg("m-3", "77", "owner", "@cowbot let me in"));
    c.send(&privmsg("m-4", BOT_ID, "owner", "@cowbot echo"));
    c.send(&privmsg("m-5", VIEWER, "stranger", "@cowbot over here"));
    c.send(&privmsg("m-1", VIEWER, "owner", "@cowbot hello there"));
    // Whispers are not handled.
    c.send(&format!(
        "@user-id={VIEWER};message-id=1;thread-id=1_2 :v!v@v.tmi.twitch.tv WHISPER {BOT} :@cowbot psst"
    ));
    assert_eq!(c.until_pong("after-others").await, Vec::<String>::new());
    assert!(f.env.try_task().is_none());
    assert_eq!(f.env.audited("gateway.replay").len(), 1);
    // The unknown viewer is ignored (group policy: no pairing prompt in a
    // public chat), and audited with why.
    assert!(
        f.env
            .audited("gateway.message")
            .contains(&"unknown_sender_in_group".to_string()),
        "{:?}",
        f.env.audited("gateway.message")
    );
    assert!(
        f.env
            .audited("gateway.inbound_rejected")
            .contains(&"channel_not_allowed".to_string()),
        "{:?}",
        f.env.audited("gateway.inbound_rejected")
    );
    f.running.stop().await;
}

#[tokio::test]
async fn hostile_lines_are_audited_and_the_connection_goes_on() {
    let mut f = Fake::start(ACK, allowlisted).await;
    let mut c = f.connected().await;
    let before = f.env.audited("gateway.inbound_rejected").len();

    c.send(&format!(
        "PRIVMSG #owner :{}",
        "x".repeat(twitch::MAX_LINE_BYTES + 100)
    ));
    c.send(&format!(":viewer!v@v PRIVMSG #owner :@{BOT} no tags"));
    c.send(&format!(
        "@id=m-9;room-id={ROOM};user-id=viewer :v!v@v PRIVMSG #owner :@{BOT} a login as id"
    ));
    c.send("@k\u{e9}y=1 PRIVMSG #owner :bad tag key");
    c.send(":only-a-prefix");
    let _ = c.to_bot.send("\u{0}\u{ff}garbage\r\n".into());
    assert_eq!(c.until_pong("after-hostile").await, Vec::<String>::new());
    let rejected = f.env.audited("gateway.inbound_rejected");
    assert_eq!(
        rejected[before..]
            .iter()
            .filter(|r| *r == "malformed")
            .count(),
        6,
        "{rejected:?}"
    );
    assert!(f.env.try_task().is_none());

    // Still served.
    c.send(&privmsg("m-10", VIEWER, "owner", "@cowbot still there?"));
    assert!(c.next().await.ends_with(&format!("PRIVMSG #owner :{ACK}")));
    f.running.stop().await;
}

#[tokio::test]
async fn an_answer_is_one_command_per_500_characters() {
    let injected = "first\r\nJOIN #evil\r\nPRIVMSG #evil :spam";
    let mut f = Fake::start(injected, allowlisted).await;
    let mut c = f.connected().await;
    c.send(&privmsg("m-1", VIEWER, "owner", "@cowbot hi"));
    // The answer goes out in the background: its line first, then nothing
    // before the pong.
    let mut lines = vec![c.next().await];
    lines.extend(c.until_pong("after-injection").await);
    assert_eq!(
        lines,
        ["@reply-parent-msg-id=m-1 PRIVMSG #owner :first  JOIN #evil  PRIVMSG #evil :spam"]
    );
    f.running.stop().await;

    let long = "y".repeat(600);
    let mut f = Fake::start(&long, allowlisted).await;
    let mut c = f.connected().await;
    c.send(&privmsg("m-2", VIEWER, "owner", "@cowbot long one"));
    let mut lines = vec![c.next().await, c.next().await];
    lines.extend(c.until_pong("after-long").await);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let prefix = "@reply-parent-msg-id=m-2 PRIVMSG #owner ";
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.strip_prefix(prefix).unwrap())
        .collect();
    assert_eq!(texts[0].chars().count(), 500);
    assert_eq!(texts.concat(), long);
    f.running.stop().await;
}

#[tokio::test]
async fn a_refused_login_is_shown_and_backed_off_and_reconnect_is_followed() {
    let mut f = Fake::start(ACK, allowlisted).await;
    let mut c = next_conn(&mut f.conns).await;
    for _ in 0..4 {
        c.next().await;
    }
    c.send(":tmi.twitch.tv NOTICE * :Login authentication failed");
    c.send("CLOSE");
    eventually("the refused login shown", || {
        f.running
            .problem()
            .is_some_and(|p| p.contains("Login authentication failed"))
    })
    .await;
    let problem = f.running.problem().unwrap();
    assert!(problem.contains("trying again in 1 s"), "{problem}");
    assert!(
        !problem.contains(TOKEN) && !problem.contains("PASS"),
        "{problem}"
    );

    // The next try (a second later) logs in: the problem is gone.
    let c = f.connected().await;
    eventually("the problem cleared", || f.running.problem().is_none()).await;

    // Twitch going to restart the server: a new connection at once.
    c.send(":tmi.twitch.tv RECONNECT");
    let mut c2 = f.connected().await;
    c2.send(&privmsg("m-1", VIEWER, "owner", "@cowbot after the move"));
    assert!(c2.next().await.ends_with(&format!("PRIVMSG #owner :{ACK}")));
    drop(c);
    f.running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_21st_answer_waits_until_30_seconds_after_the_first() {
    let env = env_with(&[NAME], allowlisted);
    let (sender, rx) = TwitchSender::new();
    let sender = Arc::new(sender);
    let conn = TwitchConnection {
        server: IrcServer {
            scheme: "ircs",
            host: "127.0.0.1".into(),
            port: 6697,
        },
        tls: Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        ),
        token: Redacted::from(TOKEN.to_string()),
        rules: Twitch::new(BOT, &["owner".into()]).unwrap().named(NAME),
        sender: Arc::clone(&sender),
    };
    sender.note(ROOM, "owner", "m-1");
    for i in 0..25 {
        sender.queue(ROOM, &format!("answer {i}")).unwrap();
    }
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let dispatcher = env.dispatcher.clone();
    let session = tokio::spawn(async move {
        let mut out = Outgoing::new(rx);
        let mut pacer = Pacer::unobserved(NAME);
        conn.session(ours, &dispatcher, &mut out, &mut pacer, &mut stop)
            .await
    });
    let (read, mut write) = tokio::io::split(theirs);
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(format!(":tmi.twitch.tv 001 {BOT} :Welcome\r\n").as_bytes())
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let mut sent_at = Vec::new();
    while sent_at.len() < 25 {
        let line = lines.next_line().await.unwrap().unwrap();
        if line.contains("PRIVMSG") {
            assert!(
                line.ends_with(&format!("answer {}", sent_at.len())),
                "{line}"
            );
            sent_at.push(start.elapsed());
        }
    }
    assert!(
        sent_at[..20].iter().all(|t| *t < Duration::from_secs(1)),
        "{sent_at:?}"
    );
    assert!(sent_at[20] >= Duration::from_secs(30), "{sent_at:?}");
    assert!(sent_at[24] < Duration::from_secs(31), "{sent_at:?}");
    let _ = stop_tx.send(true);
    assert_eq!(session.await.unwrap().unwrap(), SessionEnd::Shutdown);
}

// ---------------------------------------------------------------------------
// A real IRC server: ngircd.

struct Ngircd {
    dir: tempfile::TempDir,
    tls_port: u16,
    child: Option<Child>,
}

impl Ngircd {
    fn start(test: &str) -> Option<Ngircd> {
        if !Path::new("/usr/sbin/ngircd").exists() {
            skip::skip(
                test,
                "/usr/sbin/ngircd is missing (package ngircd)",
                skip::Missing::ProvidedByMakeTest,
            );
            return None;
        }
        let (dir, _) = server_dir();
        let d = dir.path();
        let ports: [u16; 2] = unused_ports();
        // The plain port is bound on loopback and never used.
        let conf = format!(
            "[Global]\nName = irc.test.local\nInfo = test\nListen = 127.0.0.1\nPorts = {plain}\n\
             Password = oauth:{TOKEN}\nPidFile = {d}/ngircd.pid\nMotdPhrase = test\n\
             [Options]\nPAM = no\nIdent = no\nDNS = no\n\
             [SSL]\nCertFile = {d}/cert.pem\nKeyFile = {d}/key.pem\nPorts = {tls}\n",
            plain = ports[0],
            tls = ports[1],
            d = d.display(),
        );
        std::fs::write(d.join("ngircd.conf"), conf).unwrap();
        let mut s = Ngircd {
            dir,
            tls_port: ports[1],
            child: None,
        };
        s.run();
        Some(s)
    }

    fn run(&mut self) {
        let conf = self.dir.path().join("ngircd.conf");
        self.child = Some(
            Command::new("/usr/sbin/ngircd")
                .arg("-n")
                .arg("-f")
                .arg(conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            use nix::sys::signal::{Signal, kill};
            let _ = kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    async fn listening(&self) {
        wait_listening(self.tls_port, "ngircd").await;
    }

    /// A person's IRC client: TLS, logged in as `nick`, in `#owner`.
    async fn client(&self, nick: &str) -> IrcClient {
        let pem = std::fs::read(self.dir.path().join("ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.tls_port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        let (read, write) = tokio::io::split(stream);
        let mut c = IrcClient {
            lines: BufReader::new(read).lines(),
            write,
            bot_there: false,
        };
        c.send(&format!(
            "PASS oauth:{TOKEN}\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #owner"
        ))
        .await;
        // Our JOIN's NAMES (353 lines, then 366) say whether the bot is there.
        loop {
            let line = c
                .until(|l| l.contains(" 353 ") || l.contains(" 366 "))
                .await;
            if line.contains(" 366 ") {
                break;
            }
            c.bot_there |= line
                .split(' ')
                .any(|n| n.trim_start_matches(['@', ':']) == BOT);
        }
        c
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        self.stop();
    }
}

struct IrcClient {
    lines: tokio::io::Lines<
        BufReader<tokio::io::ReadHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>,
    >,
    write: tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    /// The bot was in `#owner` when we joined.
    bot_there: bool,
}

impl IrcClient {
    async fn send(&mut self, lines: &str) {
        self.write
            .write_all(format!("{lines}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads until a line for which `f` holds.
    async fn until(&mut self, f: impl Fn(&str) -> bool) -> String {
        self.until_within(Duration::from_secs(10), f).await
    }

    async fn until_within(&mut self, within: Duration, f: impl Fn(&str) -> bool) -> String {
        tokio::time::timeout(within, async {
            loop {
                let line = self.lines.next_line().await.unwrap().unwrap();
                if f(&line) {
                    return line;
                }
            }
        })
        .await
        .expect("the line in time")
    }

    /// Waits until the bot is in `#owner`: it was when we joined, or its
    /// JOIN reaches us (the server's own event, nothing polled).
    async fn bot_joined(&mut self) {
        if self.bot_there {
            return;
        }
        let prefix = format!(":{BOT}!");
        // A reconnecting bot may first wait out its backoff (8 s at most here).
        self.until_within(Duration::from_secs(30), |l| {
            l.starts_with(&prefix) && l.contains(" JOIN ")
        })
        .await;
        self.bot_there = true;
    }
}

#[tokio::test]
async fn against_ngircd_login_join_refusal_and_reconnect() {
    let Some(mut server) = Ngircd::start("against_ngircd_login_join_refusal_and_reconnect") else {
        return;
    };
    server.listening().await;
    let env = env_with(&[NAME], allowlisted);
    let ca = server.dir.path().join("ca.pem");
    let running = run(&env, &transport(server.tls_port, &ca), TOKEN);

    // Logged in (CAP NAK answered with CAP END, PASS, NICK) and joined.
    let mut alice = server.client("alice").await;
    alice.bot_joined().await;
    assert_eq!(running.problem(), None);

    // A message without Twitch's tags: no user-id, refused as malformed.
    alice.send(&format!("PRIVMSG #owner :@{BOT} hello")).await;
    eventually("the untagged message audited as malformed", || {
        env.audited("gateway.inbound_rejected")
            .contains(&"malformed".to_string())
    })
    .await;
    assert!(env.try_task().is_none());

    // Stopped: the problem shows; started again: the bot is back.
    server.stop();
    eventually("the lost server shown", || {
        running
            .problem()
            .is_some_and(|p| p.contains("trying again"))
    })
    .await;
    server.run();
    server.listening().await;
    let mut bob = server.client("bob").await;
    bob.bot_joined().await;
    eventually("the problem cleared", || running.problem().is_none()).await;
    running.stop().await;

    // A wrong token: the server's refusal is the problem.
    let wrong = run(&env, &transport(server.tls_port, &ca), "wrongtoken");
    eventually("the refused password shown", || {
        wrong
            .problem()
            .is_some_and(|p| p.contains("Bad password") || p.contains("464"))
    })
    .await;
    let problem = wrong.problem().unwrap();
    assert!(!problem.contains("wrongtoken"), "{problem}");
    wrong.stop().await;
}
