//! Shared harness of the gateway_transport_* tests: a TLS test CA (rcgen) and a
//! TLS server for local fakes of the platforms' APIs, the dispatcher wired to a
//! temp state.db with an in-memory audit trail and a task channel, and the
//! webhook listener on loopback.

#![allow(dead_code)]

pub mod telegram;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::MethodRouter;
use cowork::gateway::outbound::Replies;
use cowork::gateway::transport::webhook::{self, Hooks};
use cowork::gateway::{
    AccessControl, ChannelSettings, ChannelTaskSink, Dispatcher, GatewaySettings, HttpConfig,
    MemoryAudit, Pairing, PairingKey, Profile, ReplayGuard, Store, Task, TestClock, Trail,
    TrailWriter,
};
use cowork::ipc::AuditAppend;
use tempfile::TempDir;

pub const NOW: i64 = 1_800_000_000;
pub const ACK: &str = "Got it, working on it.";

#[path = "../https_fixture/mod.rs"]
mod https_fixture;
#[allow(unused_imports)]
pub use https_fixture::{TestTls, serve_tls, test_tls};

/// An [`HttpConfig`] for a fake at `base` trusting the test CA.
pub fn http_config(base: &str, tls: &TestTls) -> HttpConfig {
    let mut c = HttpConfig::new(base);
    c.extra_root_pem = Some(tls.ca_pem.clone());
    c.timeout = Duration::from_secs(10);
    c
}

/// The gateway side: store, access control, pairing, dispatcher and sinks.
pub struct Env {
    pub dir: TempDir,
    pub store: Arc<Store>,
    pub clock: TestClock,
    pub pairing: Arc<Pairing>,
    pub replay: Arc<ReplayGuard>,
    pub audit: Arc<MemoryAudit>,
    pub tasks: Mutex<tokio::sync::mpsc::Receiver<Task>>,
    pub dispatcher: Arc<Dispatcher>,
    /// The chats' outbound path: register a platform client here for the
    /// dispatcher's answers to reach its fake.
    pub replies: Arc<Replies>,
}

pub fn env(channels: &[&str]) -> Env {
    env_with(channels, |_| {})
}

pub fn env_with(channels: &[&str], tweak: impl Fn(&mut ChannelSettings)) -> Env {
    env_full(channels, tweak, ACK, None)
}

/// `ack`: what the TaskSink answers; `audit`: a replacement trail writer.
pub fn env_full(
    channels: &[&str],
    tweak: impl Fn(&mut ChannelSettings),
    ack: &str,
    audit_override: Option<Arc<dyn TrailWriter>>,
) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let clock = TestClock::new(NOW);
    let mut settings = GatewaySettings::default();
    for ch in channels {
        let mut c = ChannelSettings::default();
        tweak(&mut c);
        settings.channels.insert(ch.to_string(), c);
    }
    let settings = Arc::new(settings);
    let access = Arc::new(
        AccessControl::new(
            settings.clone(),
            Profile::Production,
            store.clone(),
            Arc::new(clock.clone()),
        )
        .unwrap(),
    );
    let pairing = Arc::new(Pairing::new(
        store.clone(),
        PairingKey::from_bytes([7; 32]),
        Arc::new(clock.clone()),
        settings,
    ));
    let replay = Arc::new(ReplayGuard::new(store.clone(), 3600, 10_000).unwrap());
    let audit = Arc::new(MemoryAudit::default());
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let writer: Arc<dyn TrailWriter> = match audit_override {
        Some(a) => a,
        None => audit.clone(),
    };
    let replies = Arc::new(Replies::default());
    let dispatcher = Arc::new(Dispatcher::new(
        access,
        pairing.clone(),
        replay.clone(),
        Trail::new(writer),
        Arc::new(ChannelTaskSink::new(tx, ack)),
        replies.clone(),
        Arc::new(clock.clone()),
    ));
    Env {
        dir,
        store,
        clock,
        pairing,
        replay,
        audit,
        tasks: Mutex::new(rx),
        dispatcher,
        replies,
    }
}

impl Env {
    /// Audit reasons of events of `kind`, in order.
    pub fn audited(&self, kind: &str) -> Vec<String> {
        self.audit
            .entries()
            .iter()
            .filter(|e| e.kind == kind)
            .map(reason)
            .collect()
    }

    pub fn try_task(&self) -> Option<Task> {
        self.tasks.lock().unwrap().try_recv().ok()
    }

    /// Users and remembered event ids: what must not change on a rejected request.
    pub fn snapshot(&self) -> (usize, i64) {
        (
            self.store.list_users(None).unwrap().len(),
            self.replay.len() as i64,
        )
    }
}

/// Starts the webhook listener (plain HTTP on loopback, as in production)
/// with one platform's route at `path`, built on `env`'s dispatcher.
pub async fn start_webhook(
    env: &Env,
    path: &'static str,
    route: impl FnOnce(Arc<Hooks>) -> MethodRouter,
) -> SocketAddr {
    let listener = webhook::bind(&webhook::WebhookSettings {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let router = webhook::router([(path, route(Hooks::new(env.dispatcher.clone())))]);
    tokio::spawn(webhook::serve(listener, router, std::future::pending()));
    addr
}

/// Waits (bounded: 10 s) until a real server the test started accepts
/// connections on `port` on loopback: it gives no other sign of being ready.
pub async fn wait_listening(port: u16, what: &str) {
    for _ in 0..1000 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} does not listen on {port}");
}

/// Waits (bounded: 30 s, as a transport's reconnect may back off for 8 s
/// and a busy CI machine is slow to restart a real server) until `f` holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A server-side WebSocket of the fakes.
pub type FakeWs =
    tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// Serves WebSockets over TLS on 127.0.0.1; each connection goes to `handler`
/// with its sequence number (0, 1, ...). Returns the `wss://` URL.
pub async fn serve_ws_tls<F, Fut>(tls: &TestTls, handler: F) -> String
where
    F: Fn(usize, FakeWs) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            let i = n;
            n += 1;
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                handler(i, ws).await;
            });
        }
    });
    format!("wss://127.0.0.1:{}/", addr.port())
}

/// A reply given up under a platform's rate limit: the error says so and
/// why (`why`: "3 tries", the wait asked for), and never shows `secret`.
pub fn assert_rate_limited(e: &cowork::gateway::GatewayError, why: &str, secret: &str) {
    let e = e.to_string();
    assert!(e.contains("rate limited") && e.contains(why), "{e}");
    assert!(!e.contains(secret), "{e}");
}

/// The reason code of a channel event's entry.
pub fn reason(e: &AuditAppend) -> String {
    e.payload["reason"].as_str().unwrap_or_default().to_string()
}

/// A trail writer that fails its next `n` appends (the audit component down or
/// restarting), then keeps entries in memory.
#[derive(Debug, Default)]
pub struct FlakyAudit {
    failing: std::sync::atomic::AtomicUsize,
    pub inner: MemoryAudit,
}

impl FlakyAudit {
    pub fn fail_next(&self, n: usize) {
        self.failing.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many entries of `kind` were recorded.
    pub fn count(&self, kind: &str) -> usize {
        self.inner
            .entries()
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }
}

impl TrailWriter for FlakyAudit {
    fn append<'a>(
        &'a self,
        entry: AuditAppend,
    ) -> cowork::gateway::BoxFuture<'a, Result<(), String>> {
        use std::sync::atomic::Ordering;
        let failed = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Box::pin(async { Err("down".to_string()) });
        }
        self.inner.append(entry)
    }

    fn queue<'a>(&'a self, entry: AuditAppend) -> cowork::gateway::BoxFuture<'a, ()> {
        self.inner.queue(entry)
    }
}

/// Tells a transport loop to stop and waits (bounded) for it to end.
pub async fn stop_runner(
    stop: tokio::sync::watch::Sender<bool>,
    runner: tokio::task::JoinHandle<()>,
) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .unwrap()
        .unwrap();
}

/// The vault as the runner sees it: names to values.
#[derive(Clone)]
pub struct Vault(pub std::collections::HashMap<&'static str, &'static str>);

impl cowork::gateway::channels::SecretLookup for Vault {
    fn secret(
        &self,
        name: &str,
    ) -> Result<cowork::gateway::channels::Redacted, cowork::gateway::GatewayError> {
        self.0
            .get(name)
            .map(|v| cowork::gateway::channels::Redacted::from(v.to_string()))
            .ok_or_else(|| cowork::gateway::GatewayError::Settings {
                channel: name.to_string(),
                field: "secret",
                reason: "not stored".into(),
            })
    }
}

/// The runner on `env`'s dispatcher and outbound, its webhook listener on a
/// free loopback port.
pub async fn start_runner(
    env: &Env,
    settings: &GatewaySettings,
    vault: &Vault,
) -> cowork::gateway::runner::Running {
    start_runner_with(env, settings, std::sync::Arc::new(vault.clone())).await
}

/// The same, reading secrets through `secrets`.
pub async fn start_runner_with(
    env: &Env,
    settings: &GatewaySettings,
    secrets: std::sync::Arc<dyn cowork::gateway::channels::SecretLookup>,
) -> cowork::gateway::runner::Running {
    let listen = webhook::WebhookSettings {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    cowork::gateway::runner::start(
        settings,
        &listen,
        env.dispatcher.clone(),
        secrets,
        &env.replies,
    )
    .await
    .unwrap()
}

/// A channel with an inbound loop, started as the runner starts it and
/// running until [`Running::stop`].
pub struct Running {
    name: &'static str,
    stop: tokio::sync::watch::Sender<bool>,
    pub problems: cowork::gateway::transport::pacer::TransportProblems,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The channel's transport problem now, as the settings page shows it.
    pub fn problem(&self) -> Option<String> {
        self.problems.get(self.name)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the loop ends on the stop signal")
            .unwrap();
    }
}

/// Starts the channel `name` of `platform` on `transport` (its registry
/// entry by `transport.kind`), its outbound registered on `env`, its loop
/// running with a pacer of its own.
pub fn run_loop(
    env: &Env,
    platform: &dyn cowork::gateway::channels::Channel,
    name: &'static str,
    transport: &cowork::gateway::TransportSettings,
    secrets: Arc<dyn cowork::gateway::channels::SecretLookup>,
) -> Running {
    use cowork::gateway::channels::{InboundPath, Start, registry};
    use cowork::gateway::transport::pacer::{Pacer, TransportProblems};
    let spec = registry::spec(transport.kind).unwrap();
    let hooks = Hooks::new(env.dispatcher.clone());
    let started = platform
        .start(&Start {
            name,
            spec,
            transport,
            secrets: &secrets,
            dispatcher: &env.dispatcher,
            hooks: &hooks,
        })
        .unwrap();
    env.replies.register(name, started.outbound);
    let InboundPath::Loop(run) = started.inbound else {
        panic!("{name} is not a loop")
    };
    let problems = TransportProblems::default();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run(Pacer::new(name, &problems), rx));
    Running {
        name,
        stop,
        problems,
        task,
    }
}

/// A temp dir (0755, for servers that drop privileges) holding `cert.pem`,
/// `key.pem` and `ca.pem` of a fresh test CA, for a real server's TLS.
pub fn server_dir() -> (TempDir, TestTls) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tls = test_tls();
    std::fs::write(d.join("cert.pem"), &tls.cert_pem).unwrap();
    std::fs::write(d.join("key.pem"), &tls.key_pem).unwrap();
    std::fs::write(d.join("ca.pem"), &tls.ca_pem).unwrap();
    (dir, tls)
}

/// `N` distinct loopback ports nobody listens on (all held while chosen).
pub fn unused_ports<const N: usize>() -> [u16; N] {
    let held: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}
