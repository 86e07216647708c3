//! Shared harness for the admin integration tests: starts the admin page
//! in-process on 127.0.0.1 port 0 with the fake backend and a test clock,
//! and a small cookie-keeping HTTPS client (reqwest + rustls, trusting only
//! the generated certificate).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use cowork::admin::testing::FakeBackend;
use cowork::admin::{AdminKeys, AdminServer, AdminWebSettings, CertInfo, TestClock};
use tokio::sync::watch;

pub const KEY: [u8; 32] = [0x42; 32];
pub const PASSWORD: &str = "correct horse battery staple";
pub const START: u64 = 1_800_000_000;

pub struct Harness {
    pub addr: SocketAddr,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub backend: FakeBackend,
    pub clock: TestClock,
    pub cert: CertInfo,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

pub fn settings(listen: &str) -> AdminWebSettings {
    AdminWebSettings {
        listen: vec![listen.to_string()],
        port: 0,
        ..AdminWebSettings::default()
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(settings("127.0.0.1"), tempfile::tempdir().unwrap()).await
    }

    pub async fn start_with(settings: AdminWebSettings, dir: tempfile::TempDir) -> Harness {
        let clock = TestClock::new(START);
        let backend = FakeBackend::new(Arc::new(clock.clone()));
        Self::start_full(settings, dir, clock, backend).await
    }

    pub async fn start_full(
        settings: AdminWebSettings,
        dir: tempfile::TempDir,
        clock: TestClock,
        backend: FakeBackend,
    ) -> Harness {
        let server = AdminServer::bind_with_clock(
            &settings,
            dir.path(),
            AdminKeys::new(KEY),
            Arc::new(backend.clone()),
            Arc::new(clock.clone()),
        )
        .await
        .expect("bind admin server");
        let addr = server.local_addrs()[0];
        let cert = server.certificate();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            server.run(rx).await.expect("admin server run");
        });
        Harness {
            addr,
            base: format!("https://{addr}"),
            dir,
            backend,
            clock,
            cert,
            stop,
            task,
        }
    }

    /// Stop the server and hand back its state directory, clock and backend.
    pub async fn stop(self) -> (tempfile::TempDir, TestClock, FakeBackend) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .unwrap();
        (self.dir, self.clock, self.backend)
    }

    pub fn token(&self) -> String {
        cowork::admin::setup_token(self.dir.path())
            .unwrap()
            .expect("setup token while no owner")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, &self.cert.der)
    }

    /// A client whose connections come from `local` (any 127.0.0.x works on
    /// Linux loopback), so tests can play several LAN hosts.
    pub fn client_from(&self, local: &str) -> Client {
        let mut c = self.client();
        c.http = reqwest_builder(&self.cert.der)
            .local_address(Some(local.parse().unwrap()))
            .build()
            .unwrap();
        c
    }

    /// Owner setup with the token, then a logged-in client.
    pub async fn owner_client(&self) -> Client {
        let mut c = self.client();
        c.setup(&self.token(), PASSWORD).await;
        let r = c.login(PASSWORD).await;
        assert_eq!(r.status, 303, "login: {}", r.body);
        c
    }
}

pub fn reqwest_client(der: &[u8]) -> reqwest::Client {
    reqwest_builder(der).build().unwrap()
}

fn reqwest_builder(der: &[u8]) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(der).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
    /// The CSRF token embedded in the page's forms.
    pub fn csrf(&self) -> String {
        extract(&self.body, r#"name="csrf" value=""#).expect("page has a csrf field")
    }
}

pub fn extract(body: &str, prefix: &str) -> Option<String> {
    let i = body.find(prefix)? + prefix.len();
    let j = body[i..].find('"')?;
    Some(body[i..i + j].to_string())
}

/// A cookie-keeping client; a clone shares the connection pool and copies
/// the cookies.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: HashMap<String, String>,
}

impl Client {
    pub fn new(base: &str, der: &[u8]) -> Client {
        Client {
            http: reqwest_client(der),
            base: base.to_string(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for sc in headers.get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let first = sc.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            if v.is_empty() || sc.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Resp {
            status,
            headers,
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    pub async fn post_raw(&mut self, path: &str, body: impl Into<reqwest::Body>) -> Resp {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    /// What the Updates page's script does: the bundle as the body, the CSRF
    /// token (if any) in X-CSRF-Token.
    pub async fn upload(&mut self, csrf: Option<&str>, bundle: Vec<u8>) -> Resp {
        let mut req = self
            .http
            .post(format!("{}/updates/upload", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/octet-stream")
            .body(bundle);
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        let r = req.send().await.unwrap();
        self.finish(r).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded_encode(form);
        self.post_raw(path, body).await
    }

    /// POST a form with the CSRF token taken from `page`.
    pub async fn submit(&mut self, page: &str, path: &str, form: &[(&str, &str)]) -> Resp {
        let csrf = self.get(page).await.csrf();
        let mut f: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        f.extend_from_slice(form);
        self.post(path, &f).await
    }

    pub async fn setup(&mut self, token: &str, password: &str) -> Resp {
        let page = self.get("/setup").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        self.post(
            "/setup",
            &[
                ("csrf", &csrf),
                ("token", token),
                ("password", password),
                ("password2", password),
            ],
        )
        .await
    }

    pub async fn login(&mut self, password: &str) -> Resp {
        let page = self.get("/login").await;
        let csrf = page.csrf();
        self.post("/login", &[("csrf", &csrf), ("password", password)])
            .await
    }
}

pub fn serde_urlencoded_encode(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn is_root() -> bool {
    nix_euid() == 0
}

fn nix_euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

pub fn exists(p: &str) -> bool {
    Path::new(p).exists()
}
