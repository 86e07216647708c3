//! A real browser against the admin page: Debian's chromium driven through
//! chromedriver (started here on a loopback port) with fantoccini. Drives
//! owner setup with the token → login → issue a pairing code (QR + JS
//! countdown, which must run under the page's CSP) → revoke a user → upload
//! an update with the progress bar (same script, same CSP), saving
//! PNG screenshots under target/admin-screenshots/. Fails with a clear
//! message if chromedriver is missing (`make test` installs it from
//! APT-PACKAGES: chromium, chromium-driver).

#![allow(clippy::unwrap_used)]

mod admin_common;
use admin_common as common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use cowork::admin::testing::FakeBackend;
use cowork::admin::{Clock, SystemClock, TestClock, UserState};
use fantoccini::{ClientBuilder, Locator};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> (Driver, u16) {
    assert!(
        exists(CHROMEDRIVER) && exists(CHROMIUM),
        "chromedriver/chromium not found at {CHROMEDRIVER} / {CHROMIUM}: install them with \
         `apt-get install chromium chromium-driver` (listed in APT-PACKAGES; `make test` installs them)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (driver, port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start listening on 127.0.0.1:{port}");
}

fn shots_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/admin-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_flow_in_chromium() {
    // fantoccini's hyper-rustls enables aws-lc-rs beside our ring: pick ring for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_driver, port) = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    // The browser's countdown uses real time, so the server's clock does too here.
    let clock = TestClock::new(SystemClock.now());
    let backend = FakeBackend::new(Arc::new(clock.clone()));
    let h = Harness::start_full(
        settings("127.0.0.1"),
        tempfile::tempdir().unwrap(),
        clock,
        backend,
    )
    .await;
    let token = h.token();

    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--ignore-certificate-errors", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to chromedriver");
    let shots = shots_dir();
    let shot = |name: &'static str| {
        let client = client.clone();
        let path = shots.join(name);
        async move {
            let png = client.screenshot().await.expect("screenshot");
            assert!(png.starts_with(b"\x89PNG"));
            std::fs::write(&path, png).unwrap();
        }
    };

    // Setup with the token.
    client.goto(&format!("{}/", h.base)).await.unwrap();
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/setup")
    );
    shot("01-setup.png").await;
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(&token)
        .await
        .unwrap();
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    client
        .find(Locator::Css("#password2"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    client
        .find(Locator::Css("#setup-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#login-submit"))
        .await
        .unwrap();
    shot("02-login.png").await;

    // Login.
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#fingerprint"))
        .await
        .unwrap();
    let fp = client
        .find(Locator::Css("#fingerprint"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(fp, h.cert.fingerprint);
    shot("03-dashboard.png").await;

    // Issue a pairing code.
    client.goto(&format!("{}/pairing", h.base)).await.unwrap();
    let ttl = client.find(Locator::Css("#ttl")).await.unwrap();
    ttl.clear().await.unwrap();
    ttl.send_keys("600").await.unwrap();
    client
        .find(Locator::Css("#issue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#pairing-code"))
        .await
        .unwrap();
    let code = client
        .find(Locator::Css("#pairing-code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(code.len(), 8);
    client
        .find(Locator::Css(".qr svg"))
        .await
        .expect("QR code shown");
    let countdown = client
        .find(Locator::Css("#issued .countdown"))
        .await
        .unwrap();
    let first = countdown.text().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let later = countdown.text().await.unwrap();
    assert!(later.ends_with("s left"), "{later}");
    assert_ne!(first, later, "the countdown script runs under the CSP");
    shot("04-pairing-code.png").await;
    assert!(
        h.backend.redeem("local", &code, "zoe"),
        "the shown code works (first channel: local)"
    );

    // Revoke a user.
    client.goto(&format!("{}/users", h.base)).await.unwrap();
    shot("05-users.png").await;
    client
        .find(Locator::XPath(
            "//form[@action='/users/revoke'][input[@name='sender' and @value='alice']]//button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css(".flash"))
        .await
        .unwrap();
    let flash = client
        .find(Locator::Css(".flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("Revoked alice"), "{flash}");
    shot("06-user-revoked.png").await;
    assert_eq!(
        h.backend
            .state()
            .users
            .iter()
            .find(|u| u.sender == "alice")
            .unwrap()
            .state,
        UserState::Revoked
    );

    // Install an update: choose a file, upload with the progress bar, read
    // the appliance's answer (the fake accepts bundles starting "CWUPDATE").
    let bundle = profile.path().join("v2.bundle");
    let mut bytes = b"CWUPDATE".to_vec();
    bytes.resize(200 * 1024, 9);
    std::fs::write(&bundle, &bytes).unwrap();
    client.goto(&format!("{}/updates", h.base)).await.unwrap();
    client
        .find(Locator::Css("#update-file"))
        .await
        .unwrap()
        .send_keys(&bundle.display().to_string())
        .await
        .unwrap();
    client
        .find(Locator::Css("#update-start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = client.find(Locator::Css("#update-result")).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let t = result.text().await.unwrap();
        if t.contains("slot B") || std::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(text.contains("Version 2 was written to slot B"), "{text}");
    let progress = client
        .execute(
            "return document.getElementById('update-progress').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(progress, serde_json::json!(100), "progress bar at 100%");
    assert_eq!(h.backend.state().applied_updates, vec![bytes]);
    shot("07-update-installed.png").await;

    // Log out.
    client
        .find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("#login-submit"))
        .await
        .unwrap();
    client.close().await.unwrap();
    h.stop().await;
}
