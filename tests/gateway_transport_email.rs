//! E-mail transport end to end against real servers on loopback, started by
//! each test in a temp dir: Debian's dovecot (IMAP over TLS only, passwd-file
//! login, IDLE) serving the appliance's maildir, and postfix (submission with
//! TLS from the start on one port and required STARTTLS on another, SASL
//! through dovecot) delivering answers into the sender's maildir; both with
//! a certificate of a test CA that only the channel's `ca_file` trusts. The
//! test delivers mail into the maildir as a receiving server would, with the
//! server's `Authentication-Results` on top. The channel is started as the
//! runner starts it (settings, the vault, the registry), and it:
//! - answers an authenticated, allowlisted sender by SMTP in the thread
//!   (`Re:`, In-Reply-To, References) and marks the message read; a second
//!   message comes in through IDLE (the fallback poll is a minute away);
//! - refuses forged and unauthenticated senders (audited, never
//!   dispatched, marked read);
//! - routes by the subject filter without admitting by it (a pairing prompt
//!   goes out over STARTTLS, unfiltered mail stays unread);
//! - reconnects after the IMAP server went away, showing the problem until
//!   it is back;
//! - audits oversized and malformed mail as malformed and marks it read;
//! - leaves a message unread when its dispatch failed, and handles it later.
//!
//! Needs root (postfix's master) and the packages `make deps` installs;
//! without them each test says `SKIPPED` and why.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod gateway_transport_common;
mod skip;

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use cowork::gateway::channels::{Redacted, SecretLookup, email};
use cowork::gateway::{AccessMode, GatewayError, PAIRING_PROMPT, TransportKind, TransportSettings};
use gateway_transport_common::*;
use tempfile::TempDir;

const BOT: &str = "bot@owner.example";
const ALICE: &str = "alice@example.com";
const PASSWORD: &str = "app-pass-5f2c9a";
const AUTHSERV: &str = "mx.owner.example";
/// Owner of the maildirs (dovecot and postfix's virtual delivery run as it).
const MAIL_UID: u32 = 65534;

/// dovecot and postfix of one test.
struct MailServers {
    dir: TempDir,
    imap_port: u16,
    smtps_port: u16,
    submission_port: u16,
    dovecot: Option<Child>,
    postfix: Option<Child>,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

impl MailServers {
    /// Starts both servers, or says why the test is skipped.
    async fn start(test: &str) -> Option<MailServers> {
        for bin in ["/usr/sbin/dovecot", "/usr/sbin/postfix", "/usr/bin/doveadm"] {
            if !Path::new(bin).exists() {
                skip::skip(
                    test,
                    &format!("{bin} is missing (dovecot-imapd, postfix)"),
                    skip::Missing::ProvidedByMakeTest,
                );
                return None;
            }
        }
        if !skip::is_root() {
            skip::skip(
                test,
                "postfix's master must start as root",
                skip::Missing::ProvidedByMakeTest,
            );
            return None;
        }
        let (dir, _) = server_dir();
        let d = dir.path();
        for user in ["owner.example/bot", "example.com/alice"] {
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(d.join("mail").join(user).join(sub)).unwrap();
            }
        }
        chown_tree(&d.join("mail"));
        write(&d.join("passwd"), &format!("{BOT}:{{PLAIN}}{PASSWORD}\n"));
        write(
            &d.join("vmailbox"),
            &format!("{ALICE} example.com/alice/\n{BOT} owner.example/bot/\n"),
        );
        let [imap_port, smtps_port, submission_port, auth_port] = unused_ports();
        let mut s = MailServers {
            imap_port,
            smtps_port,
            submission_port,
            dir,
            dovecot: None,
            postfix: None,
        };
        s.write_dovecot_conf(auth_port);
        s.write_postfix_conf(auth_port);
        s.start_dovecot().await;
        s.start_postfix().await;
        Some(s)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write_dovecot_conf(&self, auth_port: u16) {
        let d = self.dir.path().display();
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\nssl = required\n\
             ssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n\
             auth_mechanisms = plain login\ndisable_plaintext_auth = yes\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={MAIL_UID} gid={MAIL_UID} home={d}/mail/%d/%n\n}}\n\
             mail_location = maildir:{d}/mail/%d/%n\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  \
             inet_listener imaps {{\n    port = {imap}\n    ssl = yes\n  }}\n}}\n\
             service auth {{\n  inet_listener {{\n    address = 127.0.0.1\n    port = {auth_port}\n  }}\n}}\n",
            imap = self.imap_port,
        );
        write(&self.path("dovecot.conf"), &conf);
    }

    /// postfix asks dovecot (at `auth_port`) whether a login holds.
    fn write_postfix_conf(&self, auth_port: u16) {
        let d = self.dir.path().display();
        for sub in ["pf", "pfq", "pfdata"] {
            std::fs::create_dir_all(self.path(sub)).unwrap();
        }
        let postfix = nix::unistd::User::from_name("postfix").unwrap().unwrap();
        chown(self.path("pfdata"), Some(postfix.uid.as_raw()), None).unwrap();
        let main = format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/pfq\ndata_directory = {d}/pfdata\n\
             mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\nmyhostname = {AUTHSERV}\nmydestination =\n\
             mynetworks = 127.0.0.1/32\nalias_maps =\nalias_database =\n\
             virtual_mailbox_domains = example.com owner.example\n\
             virtual_mailbox_base = {d}/mail\nvirtual_mailbox_maps = texthash:{d}/vmailbox\n\
             virtual_uid_maps = static:{MAIL_UID}\nvirtual_gid_maps = static:{MAIL_UID}\n\
             smtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\n\
             smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:{auth_port}\n\
             smtpd_sasl_auth_enable = yes\nsmtpd_tls_auth_only = yes\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
             smtpd_recipient_restrictions = permit_sasl_authenticated, reject\n\
             maillog_file_prefixes = {d}\nmaillog_file = {d}/postfix.log\n"
        );
        write(&self.path("pf/main.cf"), &main);
        let unix = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "virtual unix - n n - - virtual",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        let master = format!(
            "127.0.0.1:{} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\n\
             127.0.0.1:{} inet n - n - - smtpd -o smtpd_tls_security_level=encrypt\n{}\n",
            self.smtps_port,
            self.submission_port,
            unix.join("\n")
        );
        write(&self.path("pf/master.cf"), &master);
    }

    async fn start_dovecot(&mut self) {
        let conf = self.path("dovecot.conf");
        self.dovecot = Some(
            quiet(
                "/usr/sbin/dovecot",
                &["-F".as_ref(), "-c".as_ref(), conf.as_os_str()],
            )
            .spawn()
            .unwrap(),
        );
        wait_listening(self.imap_port, "dovecot").await;
    }

    /// Stops dovecot (its connections drop).
    fn stop_dovecot(&mut self) {
        if let Some(mut child) = self.dovecot.take() {
            terminate(&mut child);
        }
    }

    async fn start_postfix(&mut self) {
        let conf = self.path("pf");
        self.postfix = Some(
            quiet(
                "/usr/sbin/postfix",
                &["-c".as_ref(), conf.as_os_str(), "start-fg".as_ref()],
            )
            .spawn()
            .unwrap(),
        );
        wait_listening(self.smtps_port, "postfix").await;
        wait_listening(self.submission_port, "postfix").await;
    }

    /// The channel's settings, as the owner writes them.
    fn transport(&self, smtp_scheme: &str) -> TransportSettings {
        let smtp_port = if smtp_scheme == "smtps" {
            self.smtps_port
        } else {
            self.submission_port
        };
        TransportSettings {
            kind: TransportKind::Email,
            imap_url: Some(format!("imaps://127.0.0.1:{}", self.imap_port)),
            smtp_url: Some(format!("{smtp_scheme}://127.0.0.1:{smtp_port}")),
            username: Some(BOT.into()),
            password_secret: Some("email-app-password".into()),
            authserv_id: Some(AUTHSERV.into()),
            ca_file: Some(self.path("ca.pem")),
            ..TransportSettings::default()
        }
    }

    fn maildir(&self, user: &str) -> PathBuf {
        let (local, domain) = user.split_once('@').unwrap();
        self.path(&format!("mail/{domain}/{local}"))
    }

    /// Delivers `raw` into the appliance's mailbox as a delivery agent does
    /// (written in tmp/, renamed into new/).
    fn deliver(&self, name: &str, raw: &[u8]) {
        let dir = self.maildir(BOT);
        let tmp = dir.join("tmp").join(name);
        std::fs::write(&tmp, raw).unwrap();
        chown(&tmp, Some(MAIL_UID), Some(MAIL_UID)).unwrap();
        std::fs::rename(&tmp, dir.join("new").join(name)).unwrap();
    }

    /// The maildir flags of the appliance's message named `name` ("" while
    /// it is new).
    fn flags(&self, name: &str) -> String {
        let dir = self.maildir(BOT);
        if dir.join("new").join(name).exists() {
            return String::new();
        }
        for e in std::fs::read_dir(dir.join("cur")).unwrap() {
            let file = e.unwrap().file_name().to_string_lossy().to_string();
            if let Some(flags) = file.strip_prefix(&format!("{name}:2,")) {
                return flags.to_string();
            }
            if file == name {
                return String::new();
            }
        }
        panic!("message {name} is gone")
    }

    fn seen(&self, name: &str) -> bool {
        self.flags(name).contains('S')
    }

    /// The mail delivered to `user` so far.
    fn received(&self, user: &str) -> Vec<String> {
        let dir = self.maildir(user);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap() {
                out.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
            }
        }
        out
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        let conf = self.path("pf");
        let _ = quiet(
            "/usr/sbin/postfix",
            &["-c".as_ref(), conf.as_os_str(), "abort".as_ref()],
        )
        .status();
        if let Some(mut child) = self.postfix.take() {
            terminate(&mut child);
        }
        self.stop_dovecot();
    }
}

/// `program` with `args`, its output discarded (the servers log to files).
fn quiet(program: &str, args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new(program);
    c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn terminate(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    let _ = kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    let _ = child.wait();
}

fn chown_tree(path: &Path) {
    chown(path, Some(MAIL_UID), Some(MAIL_UID)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}

struct Vault;

impl SecretLookup for Vault {
    fn secret(&self, name: &str) -> Result<Redacted, GatewayError> {
        assert_eq!(name, "email-app-password");
        Ok(Redacted::from(PASSWORD.to_string()))
    }
}

fn run(env: &Env, transport: &TransportSettings) -> Running {
    run_loop(env, &email::Platform, "email", transport, Arc::new(Vault))
}

/// A message from `from` with `headers` on top (the receiving server's).
fn message(top: &str, from: &str, subject: &str, id: &str, body: &str) -> Vec<u8> {
    let mut m = String::new();
    for line in top.lines().filter(|l| !l.is_empty()) {
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str(&format!(
        "From: {from}\r\nTo: {BOT}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 1 Jan 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ));
    m.into_bytes()
}

fn pass(domain: &str) -> String {
    format!(
        "Authentication-Results: {AUTHSERV}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
    )
}

/// Admits Alice by the allowlist.
fn allow_alice(c: &mut cowork::gateway::ChannelSettings) {
    c.dm = AccessMode::Allowlist;
    c.allowlist = vec![ALICE.into()];
}

/// The servers and a gateway admitting Alice, or `None` (skipped).
async fn setup(test: &str) -> Option<(MailServers, Env)> {
    let servers = MailServers::start(test).await?;
    Some((servers, env_with(&["email"], allow_alice)))
}

/// The text of a delivered mail, transfer encoding undone.
fn body_of(mail: &str) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .unwrap();
    parsed.body_text(0).unwrap().trim_end().to_string()
}

async fn next_task(env: &Env) -> cowork::gateway::Task {
    let mut got = None;
    eventually("a task", || {
        got = env.try_task();
        got.is_some()
    })
    .await;
    got.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_sender_is_answered_in_the_thread_and_idle_brings_the_next() {
    let Some((servers, env)) = setup("email_answered_in_thread").await else {
        return;
    };
    servers.deliver(
        "m1",
        &message(
            &pass("example.com"),
            "Alice <Alice@Example.com>",
            "status report",
            "m1@example.com",
            "How is the build?\r\n\r\nOn Monday, Bob wrote:\r\n> older text",
        ),
    );
    let running = run(&env, &servers.transport("smtps"));
    let task = next_task(&env).await;
    assert_eq!(task.inbound.sender(), ALICE);
    assert_eq!(task.inbound.chat(), ALICE);
    assert_eq!(task.inbound.text(), "How is the build?");
    eventually("the answer delivered", || {
        servers.received(ALICE).len() == 1
    })
    .await;
    let answer = &servers.received(ALICE)[0];
    for want in [
        "Subject: Re: status report",
        "In-Reply-To: <m1@example.com>",
        "References: <m1@example.com>",
        "Auto-Submitted: auto-replied",
        &format!("From: {BOT}"),
    ] {
        assert!(answer.contains(want), "{want}: {answer}");
    }
    assert_eq!(body_of(answer), ACK);
    eventually("m1 marked read", || servers.seen("m1")).await;

    // The loop now waits in IDLE; the fallback poll is a minute away, so
    // only IDLE can bring this one within the wait.
    servers.deliver(
        "m2",
        &message(
            &pass("example.com"),
            ALICE,
            "Re: status report",
            "m2@example.com",
            "And the tests?",
        ),
    );
    let started = std::time::Instant::now();
    let task = next_task(&env).await;
    assert_eq!(task.inbound.text(), "And the tests?");
    assert!(started.elapsed() < email::imap::POLL_EVERY);
    eventually("the second answer", || servers.received(ALICE).len() == 2).await;
    assert!(
        servers
            .received(ALICE)
            .iter()
            .any(|m| m.contains("In-Reply-To: <m2@example.com>"))
    );
    assert_eq!(running.problem(), None);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_unauthenticated_senders_are_refused_audited_and_marked_read() {
    let Some((servers, env)) = setup("email_forged_refused").await else {
        return;
    };
    let forged = [
        // No header from the owner's server at all.
        ("f1", String::new()),
        // Another server's (or the sender's own) header.
        (
            "f2",
            "Authentication-Results: mx.evil.example; dmarc=pass header.from=example.com".into(),
        ),
        // A pass for the attacker's own domain.
        (
            "f3",
            format!("Authentication-Results: {AUTHSERV}; dkim=pass header.d=evil.example"),
        ),
        // The server's own fail on top, a forged pass below it.
        (
            "f4",
            format!(
                "Authentication-Results: {AUTHSERV}; dmarc=fail header.from=example.com\n{}",
                pass("example.com")
            ),
        ),
    ];
    for (name, top) in &forged {
        servers.deliver(
            name,
            &message(
                top,
                ALICE,
                "wire the money",
                &format!("{name}@example.com"),
                "now",
            ),
        );
    }
    let running = run(&env, &servers.transport("smtps"));
    eventually("four refusals audited", || {
        env.audited("gateway.inbound_rejected").len() == 4
    })
    .await;
    assert!(
        env.audited("gateway.inbound_rejected")
            .iter()
            .all(|r| r == "sender_not_authenticated")
    );
    for (name, _) in &forged {
        eventually("a refused message marked read", || servers.seen(name)).await;
    }
    let details: Vec<String> = env
        .audit
        .entries()
        .iter()
        .filter(|e| e.kind == "gateway.inbound_rejected")
        .map(|e| e.payload.to_string())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("dkim=pass for evil.example")),
        "{details:?}"
    );
    assert!(env.try_task().is_none(), "a forged message was dispatched");
    assert!(
        servers.received(ALICE).is_empty(),
        "a forged sender was answered"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subject_filter_routes_but_does_not_admit() {
    let Some(servers) = MailServers::start("email_subject_filter").await else {
        return;
    };
    // Pairing mode: an authenticated but unpaired sender gets the prompt.
    let env = env(&["email"]);
    let mut transport = servers.transport("smtp+starttls");
    transport.subject_filter = Some("[CoWork]".into());
    // Not for the appliance: stays unread for the owner.
    servers.deliver(
        "other",
        &message(
            &pass("example.com"),
            ALICE,
            "lunch?",
            "o1@example.com",
            "12:30",
        ),
    );
    // The filter's word does not make a forged sender welcome.
    servers.deliver(
        "forged",
        &message("", ALICE, "[cowork] run rm -rf", "x1@example.com", "please"),
    );
    // An authenticated sender with the word: checked like any other (unpaired:
    // the pairing prompt, sent over STARTTLS).
    servers.deliver(
        "routed",
        &message(
            &pass("example.com"),
            ALICE,
            "[CoWork] hello",
            "r1@example.com",
            "hi",
        ),
    );
    let running = run(&env, &transport);
    eventually("the prompt delivered", || {
        servers.received(ALICE).len() == 1
    })
    .await;
    let prompt = &servers.received(ALICE)[0];
    assert_eq!(body_of(prompt), PAIRING_PROMPT);
    assert!(prompt.contains("Subject: Re: [CoWork] hello"), "{prompt}");
    eventually("the forged one refused", || {
        env.audited("gateway.inbound_rejected") == ["sender_not_authenticated"]
    })
    .await;
    eventually("routed and refused ones marked read", || {
        servers.seen("routed") && servers.seen("forged")
    })
    .await;
    assert!(!servers.seen("other"), "unfiltered mail is the owner's");
    assert!(env.try_task().is_none());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_shown_then_cleared_on_reconnect() {
    let Some((mut servers, env)) = setup("email_reconnect").await else {
        return;
    };
    let running = run(&env, &servers.transport("smtps"));
    servers.deliver(
        "a",
        &message(&pass("example.com"), ALICE, "one", "a@example.com", "first"),
    );
    next_task(&env).await;
    servers.stop_dovecot();
    eventually("the problem shown", || running.problem().is_some()).await;
    let shown = running.problem().unwrap();
    assert!(
        shown.contains("imap") && shown.contains("trying again in"),
        "{shown}"
    );
    assert!(!shown.contains(PASSWORD), "{shown}");
    servers.start_dovecot().await;
    servers.deliver(
        "b",
        &message(
            &pass("example.com"),
            ALICE,
            "two",
            "b@example.com",
            "second",
        ),
    );
    let task = next_task(&env).await;
    assert_eq!(task.inbound.text(), "second");
    eventually("the problem cleared", || running.problem().is_none()).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mail_is_audited_as_malformed_and_marked_read() {
    let Some((servers, env)) = setup("email_hostile").await else {
        return;
    };
    let top = pass("example.com");
    let huge = message(
        &top,
        ALICE,
        "big",
        "h1@example.com",
        &"A".repeat(email::MAX_MESSAGE_BYTES),
    );
    let two_froms =
        format!("{top}\r\nFrom: {ALICE}\r\nFrom: ceo@example.com\r\nSubject: x\r\n\r\nbody\r\n");
    let no_address = format!("{top}\r\nFrom: undisclosed-recipients:;\r\nSubject: x\r\n\r\nb\r\n");
    let long_text = message(
        &top,
        ALICE,
        "long",
        "h4@example.com",
        &"word ".repeat(20_000),
    );
    let hostile: [(&str, Vec<u8>); 4] = [
        ("huge", huge),
        ("twofroms", two_froms.into_bytes()),
        ("noaddress", no_address.into_bytes()),
        ("longtext", long_text),
    ];
    for (name, raw) in &hostile {
        servers.deliver(name, raw);
    }
    let running = run(&env, &servers.transport("smtps"));
    eventually("four malformed audited", || {
        env.audited("gateway.inbound_rejected") == ["malformed"; 4]
    })
    .await;
    for (name, _) in &hostile {
        eventually("a malformed message marked read", || servers.seen(name)).await;
    }
    // The loop goes on with the next message.
    servers.deliver(
        "fine",
        &message(&top, ALICE, "ok", "fine@example.com", "still there?"),
    );
    assert_eq!(next_task(&env).await.inbound.text(), "still there?");
    assert_eq!(running.problem(), None);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dispatch_leaves_the_message_unread_until_it_is_handled() {
    let Some(servers) = MailServers::start("email_dispatch_failure").await else {
        return;
    };
    let flaky = Arc::new(FlakyAudit::default());
    flaky.fail_next(usize::MAX);
    let env = env_full(&["email"], allow_alice, ACK, Some(flaky.clone()));
    servers.deliver(
        "kept",
        &message(
            &pass("example.com"),
            ALICE,
            "keep me",
            "k@example.com",
            "important",
        ),
    );
    let running = run(&env, &servers.transport("smtps"));
    // The audit trail is down: the dispatch fails, the problem shows, the
    // message stays unread and nobody is answered.
    eventually("the failure shown", || running.problem().is_some()).await;
    assert!(!servers.seen("kept"));
    assert!(env.try_task().is_none());
    assert!(servers.received(ALICE).is_empty());
    // Back up: the next session handles it, once.
    flaky.fail_next(0);
    let task = next_task(&env).await;
    assert_eq!(task.inbound.text(), "important");
    eventually("marked read", || servers.seen("kept")).await;
    eventually("answered", || servers.received(ALICE).len() == 1).await;
    eventually("the problem cleared", || running.problem().is_none()).await;
    running.stop().await;
}
