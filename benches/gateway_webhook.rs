//! Signed Slack webhook messages per second from a paired sender through the
//! whole path — body read, v0 signature check, parse, replay dedupe (state.db),
//! policy (store lookup + rate limit), audit append (a SQLite table in WAL with
//! synchronous=FULL; the lead swaps the real audit writer in) and the task
//! queue (a tokio channel) — beside a bare axum handler that only returns 200,
//! measured in the same run by one load generator (32 concurrent reqwest
//! clients on loopback). Prints requests/s and p50/p99 latency for both.
//! Goal (issue 18): ≥ 50% of the bare handler's rate, p99 < 10 ms.

#![allow(clippy::unwrap_used)] // bench helpers unwrap: a failure is the bench failing

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use cowork::gateway::channels::slack::{self, Slack};
use cowork::gateway::outbound::Replies;
use cowork::gateway::transport::webhook::{self, Hooks};
use cowork::gateway::{
    AccessControl, BoxFuture, ChannelSettings, ChannelTaskSink, Clock, Dispatcher, GatewaySettings,
    Pairing, PairingKey, Profile, RateLimitSettings, RedeemOutcome, ReplayGuard, Store,
    SystemClock, Trail, TrailWriter,
};
use cowork::ipc::AuditAppend;
use hmac::{Hmac, Mac};

const SECRET: &str = "bench-signing-secret-0123456789";
const CONCURRENCY: usize = 32;
const WARMUP: usize = 500;
const REQUESTS: usize = 10_000;

/// The appliance's own audit writer (hash chain, group commit, durable before
/// the append returns), in process: the IPC hop to the audit component is not
/// measured here (see benches/audit_append.rs and the IPC figures).
#[derive(Debug)]
struct WriterAudit {
    writer: Arc<cowork::audit::AuditWriter>,
}

impl WriterAudit {
    fn open(dir: &std::path::Path) -> WriterAudit {
        use cowork::audit::{AuditPaths, AuditSettings, AuditWriter, CheckpointKey, Redactor};
        let paths = AuditPaths::in_state_dir(dir);
        let writer = AuditWriter::open(
            &paths,
            CheckpointKey::generate(),
            &AuditSettings::default(),
            Redactor::new(),
        )
        .expect("open the audit writer");
        WriterAudit {
            writer: Arc::new(writer),
        }
    }
}

impl WriterAudit {
    async fn write(&self, entry: AuditAppend) -> Result<(), String> {
        let entry = cowork::audit::NewEntry {
            component: "gateway".into(),
            kind: entry.kind,
            actor: entry.actor,
            subject: entry.subject,
            payload: entry.payload,
        };
        self.writer
            .append(entry)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl TrailWriter for WriterAudit {
    fn append<'a>(&'a self, entry: AuditAppend) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.write(entry))
    }

    fn queue<'a>(&'a self, entry: AuditAppend) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.write(entry).await;
        })
    }
}

fn sign(ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

/// Sends `reqs` (url, headers, body) with CONCURRENCY workers; returns figures.
async fn load(
    client: &reqwest::Client,
    url: &str,
    reqs: Vec<(String, String, Vec<u8>)>,
) -> Figures {
    let total = reqs.len();
    let queue = Arc::new(Mutex::new(reqs));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let queue = queue.clone();
        let client = client.clone();
        let url = url.to_string();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let Some((ts, sig, body)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header(slack::TIMESTAMP_HEADER, ts)
                    .header(slack::SIGNATURE_HEADER, sig)
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                    }
                    _ => errors += 1,
                }
                lat.push(t.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Figures {
        rate: total as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

fn requests(n: usize, first_id: usize) -> Vec<(String, String, Vec<u8>)> {
    let ts = SystemClock.now().to_string();
    (first_id..first_id + n)
        .map(|i| {
            let body = serde_json::json!({
                "type": "event_callback", "team_id": "T1", "event_id": format!("Ev{i}"),
                "event": {"type": "message", "channel_type": "im", "channel": "D42",
                          "user": "U42", "text": "how full is the disk?", "ts": "1.0"}
            })
            .to_string()
            .into_bytes();
            let sig = sign(&ts, &body);
            (ts.clone(), sig, body)
        })
        .collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

/// The gateway's webhook path with `audit` as its trail; returns its URL.
async fn gateway_server(
    dir: &std::path::Path,
    audit: Arc<dyn TrailWriter>,
    drained: Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    let store = Arc::new(Store::open(dir).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut settings = GatewaySettings::default();
    settings.channels.insert(
        "slack".into(),
        ChannelSettings {
            rate_limit: RateLimitSettings {
                messages_per_minute: 60_000_000,
                burst: 10_000,
            },
            ..ChannelSettings::default()
        },
    );
    let settings = Arc::new(settings);
    let access = Arc::new(
        AccessControl::new(
            settings.clone(),
            Profile::Production,
            store.clone(),
            clock.clone(),
        )
        .unwrap(),
    );
    let pairing = Arc::new(Pairing::new(
        store.clone(),
        PairingKey::from_bytes([3; 32]),
        clock.clone(),
        settings,
    ));
    // Pair the sender the way a user would.
    let code = pairing.issue("slack").unwrap();
    let attempt = cowork::gateway::CodeAttempt::new(code.code.as_str());
    assert!(matches!(
        pairing.redeem("slack", "U42", None, &attempt).unwrap(),
        RedeemOutcome::Paired(_)
    ));
    let replay = Arc::new(ReplayGuard::new(store.clone(), 3600, 1_000_000).unwrap());
    let (task_tx, mut task_rx) = tokio::sync::mpsc::channel(4096);
    let d2 = drained.clone();
    tokio::spawn(async move {
        while task_rx.recv().await.is_some() {
            d2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Empty acknowledgement: no reply, so no Slack API is needed.
    let dispatcher = Arc::new(Dispatcher::new(
        access,
        pairing,
        replay,
        Trail::new(audit),
        Arc::new(ChannelTaskSink::new(task_tx, "")),
        Arc::new(Replies::default()),
        clock,
    ));
    let route = slack::webhook_route(
        Hooks::new(dispatcher),
        Slack::new(SECRET.as_bytes(), "UBOT").unwrap(),
    );
    let listener = webhook::bind(&webhook::WebhookSettings {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw_url = format!("http://{}/slack/events", listener.local_addr().unwrap());
    tokio::spawn(webhook::serve(
        listener,
        webhook::router([("/slack/events", route)]),
        std::future::pending(),
    ));
    gw_url
}

async fn run() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let durable_dir = dir.path().join("durable");
    let memory_dir = dir.path().join("memory");
    std::fs::create_dir_all(&durable_dir).unwrap();
    std::fs::create_dir_all(&memory_dir).unwrap();
    let drained = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gw_url = gateway_server(
        &durable_dir,
        Arc::new(WriterAudit::open(&durable_dir)),
        drained.clone(),
    )
    .await;
    // The same path with the trail in memory: what the durable append costs.
    let mem_url = gateway_server(
        &memory_dir,
        Arc::new(cowork::gateway::MemoryAudit::default()),
        drained.clone(),
    )
    .await;

    let bare = Router::new().route("/slack/events", post(|| async { "" }));
    let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!(
        "http://{}/slack/events",
        bare_listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(bare_listener, bare).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    // Warm up both (connections, page cache, WAL).
    load(&client, &bare_url, requests(WARMUP, 0)).await;
    load(&client, &gw_url, requests(WARMUP, 0)).await;
    load(&client, &mem_url, requests(WARMUP, 0)).await;

    let bare_fig = load(&client, &bare_url, requests(REQUESTS, WARMUP)).await;
    let gw_fig = load(&client, &gw_url, requests(REQUESTS, WARMUP)).await;
    let mem_fig = load(&client, &mem_url, requests(REQUESTS, WARMUP)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tasks = drained.load(std::sync::atomic::Ordering::Relaxed);

    println!(
        "gateway_webhook: {REQUESTS} signed Slack messages, concurrency {CONCURRENCY}, loopback"
    );
    for (name, f) in [
        ("bare axum 200", &bare_fig),
        ("gateway full path", &gw_fig),
        ("  (trail in memory)", &mem_fig),
    ] {
        println!(
            "  {name:<18} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
            f.rate,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.errors
        );
    }
    println!(
        "  ratio {:.1}% of bare (goal >= 50%), p99 {:.2} ms (goal < 10 ms), tasks queued {tasks}",
        100.0 * gw_fig.rate / bare_fig.rate,
        gw_fig.p99.as_secs_f64() * 1e3
    );
}
