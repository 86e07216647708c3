//! Signed webhook messages per second from a paired sender through the
//! whole path, for every webhook platform (Slack, LINE, WhatsApp, Teams,
//! Google Chat) — body read, authenticity check (HMAC, or the platform's
//! RS256 bearer JWT: one token for all requests, as the platforms send it),
//! parse, replay dedupe (state.db), policy (store lookup + rate limit), audit
//! append (the appliance's own writer: SQLite in WAL with synchronous=FULL,
//! group commit) and the task queue (a tokio channel) — beside a bare axum
//! handler that only returns 200, measured in the same run by one load
//! generator (32 concurrent reqwest clients on loopback). Prints requests/s
//! and p50/p99 latency for each. Goal (issue 18): ≥ 50% of the bare
//! handler's rate, p99 < 10 ms.

#![allow(clippy::unwrap_used)] // bench helpers unwrap: a failure is the bench failing

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use base64::Engine;
use cowork::gateway::channels::google_chat::{self, GoogleChat, GoogleChatClient};
use cowork::gateway::channels::line::{self, Line, LineClient};
use cowork::gateway::channels::slack::{self, Slack};
use cowork::gateway::channels::teams::{self, Teams, TeamsClient};
use cowork::gateway::channels::whatsapp::{self, WhatsApp, WhatsAppClient};
use cowork::gateway::channels::{HttpConfig, Redacted};
use cowork::gateway::outbound::Replies;
use cowork::gateway::transport::jwt::{KeySet, KeySource};
use cowork::gateway::transport::oauth::TokenSource;
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

const TEAMS_APP: &str = "2f0a6a5e-8d1c-4f7e-9b3a-1c2d3e4f5a6b";
const TEAMS_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SERVICE_URL: &str = "https://smba.trafficmanager.net/amer/";
const PROJECT: &str = "1234567890";
const DOMAIN: &str = "C03abc123";

fn hmac(parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// One request: its headers and body.
type Request = (Vec<(&'static str, String)>, Vec<u8>);

/// The webhook platforms, each with its route, its paired sender and its
/// signed requests.
#[derive(Debug, Clone, Copy)]
enum Platform {
    Slack,
    Line,
    WhatsApp,
    Teams,
    GoogleChat,
}

impl Platform {
    const ALL: [Platform; 5] = [
        Platform::Slack,
        Platform::Line,
        Platform::WhatsApp,
        Platform::Teams,
        Platform::GoogleChat,
    ];

    fn channel(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Line => "line",
            Platform::WhatsApp => "whatsapp",
            Platform::Teams => "teams",
            Platform::GoogleChat => "google-chat",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Platform::Slack => "/slack/events",
            Platform::Line => "/line/webhook",
            Platform::WhatsApp => "/whatsapp/webhook",
            Platform::Teams => "/teams/messages",
            Platform::GoogleChat => "/google-chat/events",
        }
    }

    fn sender(self) -> &'static str {
        match self {
            Platform::Slack => "U42",
            Platform::Line => "U0123456789abcdef0123456789abcdef",
            Platform::WhatsApp => "16505551234",
            Platform::Teams => "7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e90",
            Platform::GoogleChat => "users/112233445566778899000",
        }
    }

    /// The platform's route; `keys`: where the test key set is served.
    fn route(self, hooks: Arc<Hooks>, keys: &str) -> MethodRouter {
        // Clients are never used: the acknowledgement is empty, so nothing
        // is answered.
        let cfg = HttpConfig::new("https://127.0.0.1:9");
        let token = Redacted::from("unused-token".to_string());
        let tokens = || {
            TokenSource::new(
                "bench",
                "http://127.0.0.1:9/token",
                None,
                Box::new(|| Ok(vec![])),
            )
            .unwrap()
        };
        match self {
            Platform::Slack => {
                slack::webhook_route(hooks, Slack::new(SECRET.as_bytes(), "UBOT").unwrap())
            }
            Platform::Line => line::webhook_route(
                hooks,
                Line::new(SECRET.as_bytes(), "").unwrap(),
                Arc::new(LineClient::new(&cfg, &token).unwrap()),
            ),
            Platform::WhatsApp => whatsapp::webhook_route(
                hooks,
                WhatsApp::new(
                    SECRET.as_bytes(),
                    "verify-token-0123456789",
                    "106540352242922",
                )
                .unwrap(),
                Arc::new(WhatsAppClient::new(&cfg, &token, "106540352242922").unwrap()),
            ),
            Platform::Teams => teams::webhook_route(
                hooks,
                teams::WebhookRoute {
                    verifier: Teams::new(TEAMS_APP, TEAMS_TENANT).unwrap(),
                    keys: KeySet::new(
                        "teams",
                        KeySource::OpenIdMetadata(format!("{keys}/openid")),
                        None,
                    )
                    .unwrap(),
                    client: Arc::new(TeamsClient::new(&cfg, tokens()).unwrap()),
                },
            ),
            Platform::GoogleChat => google_chat::webhook_route(
                hooks,
                GoogleChat::endpoint(PROJECT, DOMAIN).unwrap(),
                KeySet::new("google-chat", KeySource::Jwks(format!("{keys}/keys")), None).unwrap(),
                Arc::new(GoogleChatClient::new(&cfg, tokens()).unwrap()),
            ),
        }
    }

    /// `n` signed requests, message ids from `first`, at `now`; `tokens`:
    /// the Teams and Google Chat bearer tokens.
    fn requests(self, n: usize, first: usize, now: i64, tokens: &(String, String)) -> Vec<Request> {
        let text = "how full is the disk?";
        (first..first + n)
            .map(|i| match self {
                Platform::Slack => {
                    let ts = now.to_string();
                    let body = serde_json::json!({
                        "type": "event_callback", "team_id": "T1", "event_id": format!("Ev{i}"),
                        "event": {"type": "message", "channel_type": "im", "channel": "D42",
                                  "user": self.sender(), "text": text, "ts": "1.0"}})
                    .to_string()
                    .into_bytes();
                    let sig = format!("v0={}", hex::encode(hmac(&[format!("v0:{ts}:").as_bytes(), &body])));
                    (vec![(slack::TIMESTAMP_HEADER, ts), (slack::SIGNATURE_HEADER, sig)], body)
                }
                Platform::Line => {
                    let body = serde_json::json!({"destination": "Ufedcba9876543210fedcba9876543210",
                        "events": [{"type": "message", "mode": "active", "timestamp": now * 1000,
                            "webhookEventId": format!("01FZ74A0TDDPYRVKNK{i:08}"),
                            "deliveryContext": {"isRedelivery": false}, "replyToken": format!("r{i}"),
                            "source": {"type": "user", "userId": self.sender()},
                            "message": {"id": i.to_string(), "type": "text", "text": text}}]})
                    .to_string()
                    .into_bytes();
                    let sig = base64::engine::general_purpose::STANDARD.encode(hmac(&[&body]));
                    (vec![(line::SIGNATURE_HEADER, sig)], body)
                }
                Platform::WhatsApp => {
                    let body = serde_json::json!({"object": "whatsapp_business_account",
                        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
                            "contacts": [{"profile": {"name": "Ann"}, "wa_id": self.sender()}],
                            "messages": [{"from": self.sender(), "id": format!("wamid.{i}"),
                                "timestamp": now.to_string(), "type": "text", "text": {"body": text}}]}}]}]})
                    .to_string()
                    .into_bytes();
                    let sig = format!("sha256={}", hex::encode(hmac(&[&body])));
                    (vec![(whatsapp::SIGNATURE_HEADER, sig)], body)
                }
                Platform::Teams => {
                    let body = serde_json::json!({"type": "message", "id": i.to_string(),
                        "serviceUrl": SERVICE_URL, "channelId": "msteams",
                        "from": {"id": "29:1abc", "name": "Ann", "aadObjectId": self.sender()},
                        "conversation": {"conversationType": "personal", "tenantId": TEAMS_TENANT, "id": "a:1XJKJMvc5GBtc2"},
                        "recipient": {"id": format!("28:{TEAMS_APP}"), "name": "CoWork"},
                        "text": text, "channelData": {"tenant": {"id": TEAMS_TENANT}}})
                    .to_string()
                    .into_bytes();
                    (vec![("authorization", format!("Bearer {}", tokens.0))], body)
                }
                Platform::GoogleChat => {
                    let at = time::OffsetDateTime::from_unix_timestamp(now)
                        .unwrap()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap();
                    let user = serde_json::json!({"name": self.sender(), "type": "HUMAN", "domainId": DOMAIN});
                    let body = serde_json::json!({"type": "MESSAGE", "eventTime": at,
                        "space": {"name": "spaces/AAAAdm1", "spaceType": "DIRECT_MESSAGE"},
                        "message": {"name": format!("spaces/AAAAdm1/messages/m{i}"), "sender": user,
                            "text": text, "argumentText": text},
                        "user": user})
                    .to_string()
                    .into_bytes();
                    (vec![("authorization", format!("Bearer {}", tokens.1))], body)
                }
            })
            .collect()
    }
}

/// Serves the test key set (as the Bot Framework's OpenID metadata and as
/// Google's JWKS) on loopback; returns its base URL.
async fn key_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let meta = serde_json::json!({ "jwks_uri": format!("{base}/keys") }).to_string();
    let app = Router::new()
        .route("/openid", get(move || std::future::ready(meta.clone())))
        .route(
            "/keys",
            get(|| async { &include_bytes!("../tests/data/jwt/jwks-a.json")[..] }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The Teams and the Google Chat bearer tokens, signed with the test key.
fn bearer_tokens(now: i64) -> (String, String) {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../tests/data/jwt/key-a.pem"))
            .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-a".into());
    let sign = |claims: serde_json::Value| jsonwebtoken::encode(&header, &claims, &key).unwrap();
    (
        sign(
            serde_json::json!({"iss": teams::TOKEN_ISSUER, "aud": TEAMS_APP,
            "exp": now + 3600, "serviceurl": SERVICE_URL}),
        ),
        sign(
            serde_json::json!({"iss": google_chat::ISSUER, "aud": PROJECT, "iat": now, "exp": now + 3600}),
        ),
    )
}

struct Figures {
    rate: f64,
    /// The process's CPU time (every thread: load generator, server, writers)
    /// per request: unlike the rate, it does not depend on what else the
    /// machine runs.
    cpu: Duration,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

/// Sends `reqs` with CONCURRENCY workers; returns figures.
async fn load(client: &reqwest::Client, url: &str, reqs: Vec<Request>) -> Figures {
    let total = reqs.len();
    let queue = Arc::new(Mutex::new(reqs));
    let cpu_start = process_cpu();
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
                let Some((headers, body)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let t = Instant::now();
                let mut req = client.post(&url).body(body);
                for (name, value) in headers {
                    req = req.header(name, value);
                }
                let r = req.send().await;
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
    let cpu = process_cpu().saturating_sub(cpu_start) / u32::try_from(total).unwrap();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Figures {
        rate: total as f64 / elapsed.as_secs_f64(),
        cpu,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

/// User and system CPU time of the whole process so far.
fn process_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

/// The gateway's webhook listener serving every platform's route, with
/// `audit` as its trail and each platform's sender paired; returns its base URL.
async fn gateway_server(
    dir: &std::path::Path,
    audit: Arc<dyn TrailWriter>,
    drained: Arc<std::sync::atomic::AtomicUsize>,
    keys: &str,
) -> String {
    let store = Arc::new(Store::open(dir).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut settings = GatewaySettings::default();
    for p in Platform::ALL {
        settings.channels.insert(
            p.channel().into(),
            ChannelSettings {
                rate_limit: RateLimitSettings {
                    messages_per_minute: 60_000_000,
                    burst: 10_000,
                },
                ..ChannelSettings::default()
            },
        );
    }
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
    // Pair each sender the way a user would.
    for p in Platform::ALL {
        let code = pairing.issue(p.channel()).unwrap();
        let attempt = cowork::gateway::CodeAttempt::new(code.code.as_str());
        assert!(matches!(
            pairing
                .redeem(p.channel(), p.sender(), None, &attempt)
                .unwrap(),
            RedeemOutcome::Paired(_)
        ));
    }
    let replay = Arc::new(ReplayGuard::new(store.clone(), 3600, 1_000_000).unwrap());
    let (task_tx, mut task_rx) = tokio::sync::mpsc::channel(4096);
    let d2 = drained.clone();
    tokio::spawn(async move {
        while task_rx.recv().await.is_some() {
            d2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Empty acknowledgement: no reply, so no platform API is needed.
    let dispatcher = Arc::new(Dispatcher::new(
        access,
        pairing,
        replay,
        Trail::new(audit),
        Arc::new(ChannelTaskSink::new(task_tx, "")),
        Arc::new(Replies::default()),
        clock,
    ));
    let hooks = Hooks::new(dispatcher);
    let routes: Vec<_> = Platform::ALL
        .iter()
        .map(|p| (p.path(), p.route(Arc::clone(&hooks), keys)))
        .collect();
    let listener = webhook::bind(&webhook::WebhookSettings {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(webhook::serve(
        listener,
        webhook::router(routes),
        std::future::pending(),
    ));
    base
}

async fn run() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let durable_dir = dir.path().join("durable");
    let memory_dir = dir.path().join("memory");
    std::fs::create_dir_all(&durable_dir).unwrap();
    std::fs::create_dir_all(&memory_dir).unwrap();
    let keys = key_server().await;
    let now = SystemClock.now();
    let tokens = bearer_tokens(now);
    let drained = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gw = gateway_server(
        &durable_dir,
        Arc::new(WriterAudit::open(&durable_dir)),
        drained.clone(),
        &keys,
    )
    .await;
    // The same path with the trail in memory: what the durable append costs.
    let mem = gateway_server(
        &memory_dir,
        Arc::new(cowork::gateway::MemoryAudit::default()),
        drained.clone(),
        &keys,
    )
    .await;

    let bare = Router::new().route("/bare", post(|| async { "" }));
    let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}/bare", bare_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(bare_listener, bare).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let slack = Platform::Slack;
    let reqs = |p: Platform, n: usize, first: usize| p.requests(n, first, now, &tokens);
    // Warm up (connections, page cache, WAL, the platforms' keys).
    load(&client, &bare_url, reqs(slack, WARMUP, 0)).await;
    for p in Platform::ALL {
        load(&client, &format!("{gw}{}", p.path()), reqs(p, WARMUP, 0)).await;
    }
    let mem_url = format!("{mem}{}", slack.path());
    load(&client, &mem_url, reqs(slack, WARMUP, 0)).await;

    let bare_fig = load(&client, &bare_url, reqs(slack, REQUESTS, WARMUP)).await;
    let mut figures = Vec::new();
    for p in Platform::ALL {
        let url = format!("{gw}{}", p.path());
        figures.push((
            p.channel(),
            load(&client, &url, reqs(p, REQUESTS, WARMUP)).await,
        ));
    }
    let mem_fig = load(&client, &mem_url, reqs(slack, REQUESTS, WARMUP)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tasks = drained.load(std::sync::atomic::Ordering::Relaxed);

    println!(
        "gateway_webhook: {REQUESTS} signed messages per platform, concurrency {CONCURRENCY}, loopback"
    );
    let line = |name: &str, f: &Figures| {
        println!(
            "  {name:<22} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}   {:>5.1}% of bare   CPU {:>4.0} µs/req",
            f.rate,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.errors,
            100.0 * f.rate / bare_fig.rate,
            f.cpu.as_secs_f64() * 1e6,
        );
    };
    line("bare axum 200", &bare_fig);
    for (name, f) in &figures {
        line(&format!("{name} full path"), f);
    }
    line("slack, trail in memory", &mem_fig);
    println!("  goal: every full path >= 50% of bare and p99 < 10 ms; tasks queued {tasks}");
}
