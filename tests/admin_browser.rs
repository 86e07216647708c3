//! A real browser against the admin page: Debian's chromium driven through
//! chromedriver (started here on a loopback port) with fantoccini. Drives
//! owner setup with the token → login → issue a pairing code (QR + JS
//! countdown, which must run under the page's CSP) → revoke a user → upload
//! an update with the progress bar (same script, same CSP); and the settings
//! pages: credentials → agent (a refused save shown at its field, then the
//! price) → a channel → a guardrail rule with the tester → tool permissions
//! and a workspace setting → two tabs saving the same form, each checked in
//! the page and in the owner's file / vault. Saves PNG screenshots under
//! target/admin-screenshots/. Fails with a clear
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
use cowork::admin::{Clock, SystemClock, TestClock};
use cowork::ipc::UserState;
use fantoccini::{Client, ClientBuilder, Locator};

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

/// One browser at a time: two chromiums starting at once on a small machine
/// can miss chromedriver's session start-up deadline.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn shots_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/admin-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A headless chromium session through the driver on `port`.
async fn browser(port: u16, profile: &std::path::Path) -> Client {
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
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to chromedriver")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_flow_in_chromium() {
    // fantoccini's hyper-rustls enables aws-lc-rs beside our ring: pick ring for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _one = ONE_BROWSER.lock().await;
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

    let client = browser(port, profile.path()).await;
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
    // The script ticks every second: wait for the tick, not for a time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let later = loop {
        let now = countdown.text().await.unwrap();
        if now != first || std::time::Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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

// ---------------------------------------------------------------------------
// The settings pages (issue 15): credentials → agent → a channel → guardrail
// rule with the tester → tool permissions, and two tabs.

/// How long an event (a page, an element, a text) may take to show.
const WAIT: Duration = Duration::from_secs(20);

async fn save_shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(shots_dir().join(name), png).unwrap();
}

/// The page's visible text, for failure messages.
async fn page_text(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(b) => b.text().await.unwrap_or_default(),
        Err(e) => format!("(no body: {e})"),
    }
}

/// Waits for an element matching `xpath` (at most [`WAIT`]).
async fn wait_for(c: &Client, xpath: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!(
            "waiting for {xpath}: {e}\nat {}\n{}",
            c.current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default(),
            page_text(c).await
        ),
    }
}

/// Clicks `css` and waits until the browser has left the current document
/// (its root element goes stale), so what is read next is the answer.
async fn click_and_load(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while old.tag_name().await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "{css}: no new page after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(c, "//body").await;
}

async fn open(c: &Client, h: &Harness, path: &str) {
    c.goto(&format!("{}{path}", h.base)).await.unwrap();
    wait_for(c, "//main").await;
}

/// Replaces the text of the input with id `id` by `value` (typed).
async fn type_into(c: &Client, id: &str, value: &str) {
    let f = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("field {id}: {e}"));
    f.clear().await.unwrap();
    f.send_keys(value).await.unwrap();
}

/// The current value of the settings field for `key`.
async fn field_value(c: &Client, key: &str) -> String {
    c.find(Locator::Id(&format!("f-{key}")))
        .await
        .unwrap_or_else(|e| panic!("field {key}: {e}"))
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The texts of the cells of the settings row for `key`.
async fn row_cells(c: &Client, key: &str) -> Vec<String> {
    let row = c
        .find(Locator::Id(&format!("row-{key}")))
        .await
        .unwrap_or_else(|e| panic!("row {key}: {e}"));
    let mut out = Vec::new();
    for td in row.find_all(Locator::Css("td")).await.unwrap() {
        out.push(td.text().await.unwrap());
    }
    out
}

/// Waits for the flash message that contains `text`.
async fn flash(c: &Client, text: &str) -> String {
    wait_for(
        c,
        &format!("//div[contains(@class,'flash')][contains(., '{text}')]"),
    )
    .await
    .text()
    .await
    .unwrap()
}

/// Scrolls the element with id `id` to the middle of the window (for a
/// screenshot that shows it).
async fn scroll_to(c: &Client, id: &str) {
    let el = c.find(Locator::Id(id)).await.unwrap();
    c.execute(
        "arguments[0].scrollIntoView({block: 'center'});",
        vec![serde_json::to_value(&el).unwrap()],
    )
    .await
    .unwrap();
}

/// The settings table fits in its card (nothing pushed out of view).
async fn table_fits(c: &Client) {
    let card = c
        .find(Locator::XPath("//section[.//form[@id='settings-form']]"))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap();
    let table = c
        .find(Locator::Css("#settings-form table"))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap();
    assert!(
        table.0 + table.2 <= card.0 + card.2,
        "the settings table ({table:?}) overflows its card ({card:?}) at {}",
        c.current_url().await.unwrap()
    );
}

/// The owner's settings file as the supervisor would read it.
fn owner_toml(h: &Harness) -> toml::Table {
    let text = std::fs::read_to_string(h.backend.settings_files().1).unwrap_or_default();
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("owner file does not parse: {e}\n{text}"))
}

/// The value at a dotted `key` of the owner's file.
fn owner_value(h: &Harness, key: &str) -> Option<toml::Value> {
    let mut v = toml::Value::Table(owner_toml(h));
    for part in key.split('.') {
        v = v.as_table()?.get(part)?.clone();
    }
    Some(v)
}

fn strings(items: &[&str]) -> toml::Value {
    toml::Value::Array(items.iter().map(|s| toml::Value::from(*s)).collect())
}

/// Owner setup with the token and login, in the browser.
async fn setup_and_login(c: &Client, h: &Harness) {
    open(c, h, "/").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/setup"));
    type_into(c, "token", &h.token()).await;
    type_into(c, "password", PASSWORD).await;
    type_into(c, "password2", PASSWORD).await;
    click_and_load(c, "#setup-submit").await;
    wait_for(c, "//*[@id='login-submit']").await;
    type_into(c, "password", PASSWORD).await;
    click_and_load(c, "#login-submit").await;
    wait_for(c, "//*[@id='fingerprint']").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flow_in_chromium() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _one = ONE_BROWSER.lock().await;
    let (_driver, port) = start_driver().await;
    let profile = tempfile::tempdir().unwrap();
    let clock = TestClock::new(SystemClock.now());
    let backend = FakeBackend::new(Arc::new(clock.clone()));
    let h = Harness::start_full(
        settings("127.0.0.1"),
        tempfile::tempdir().unwrap(),
        clock,
        backend,
    )
    .await;
    let c = browser(port, profile.path()).await;
    setup_and_login(&c, &h).await;

    // Credentials: two secrets typed into the password field (no box ticked),
    // listed at version 1, never shown.
    let api_key = "sk-test-NEVER-SHOWN-0c4f1e";
    let bot_token = "xoxb-1234-NEVER-SHOWN-9a8b";
    open(&c, &h, "/settings").await;
    click_and_load(&c, "a[href='/settings/credentials']").await;
    for (name, value) in [("llm_api_key", api_key), ("slack_bot_token", bot_token)] {
        type_into(&c, "secret-name", name).await;
        let field = c.find(Locator::Id("secret-value")).await.unwrap();
        assert_eq!(
            field.attr("type").await.unwrap().as_deref(),
            Some("password")
        );
        field.send_keys(value).await.unwrap();
        click_and_load(&c, "#secret-store").await;
        flash(&c, &format!("Stored {name} (version 1)")).await;
        let version = wait_for(
            &c,
            &format!("//table[@id='secrets']//tr[td/code[text()='{name}']]/td[3]"),
        )
        .await
        .text()
        .await
        .unwrap();
        assert_eq!(version, "1", "{name}");
    }
    let source = c.source().await.unwrap();
    assert!(
        !source.contains(api_key) && !source.contains(bot_token),
        "a secret's value is in the page"
    );
    assert_eq!(
        c.find(Locator::Id("secret-value"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(""),
        "the value field is empty again"
    );
    {
        let st = h.backend.state();
        assert_eq!(
            st.secret_values["llm_api_key"],
            (1, api_key.as_bytes().to_vec())
        );
        assert_eq!(
            st.secret_values["slack_bot_token"],
            (1, bot_token.as_bytes().to_vec())
        );
    }
    save_shot(&c, "11-settings-credentials.png").await;

    // Agent: a provider without a price is refused at the model's field,
    // with nothing written; the price through the "Another key" row saves.
    open(&c, &h, "/settings").await;
    click_and_load(&c, "a[href='/settings/agent']").await;
    assert_eq!(field_value(&c, "agent.provider").await, "");
    type_into(&c, "f-agent.provider", "openai").await;
    type_into(&c, "f-agent.model", "llama3").await;
    type_into(&c, "f-agent.base_url", "http://127.0.0.1:9/v1").await;
    type_into(&c, "f-agent.secret_name", "llm_api_key").await;
    click_and_load(&c, "#save").await;
    let problems = wait_for(&c, "//*[@id='form-problems']").await;
    assert!(
        problems.text().await.unwrap().contains("Nothing was saved"),
        "{}",
        page_text(&c).await
    );
    let err = wait_for(
        &c,
        "//tr[@id='row-agent.model']//div[contains(@class,'field-error')]",
    )
    .await;
    assert!(err.is_displayed().await.unwrap());
    let msg = err.text().await.unwrap();
    assert!(msg.contains("no price"), "{msg}");
    // What was typed is still there to correct.
    assert_eq!(field_value(&c, "agent.model").await, "llama3");
    assert_eq!(field_value(&c, "agent.secret_name").await, "llm_api_key");
    assert!(owner_value(&h, "agent").is_none(), "{:?}", owner_toml(&h));
    scroll_to(&c, "row-agent.model").await;
    save_shot(&c, "12-settings-agent-no-price.png").await;
    type_into(&c, "f-other-key", "agent.prices.llama3").await;
    type_into(
        &c,
        "f-other-value",
        "{ input_usd_per_mtok = 0.0, output_usd_per_mtok = 0.0 }",
    )
    .await;
    click_and_load(&c, "#save").await;
    let saved = flash(&c, "Saved").await;
    assert!(saved.contains("changed"), "{saved}");
    for (key, want) in [
        ("agent.provider", "openai"),
        ("agent.model", "llama3"),
        ("agent.base_url", "http://127.0.0.1:9/v1"),
        ("agent.secret_name", "llm_api_key"),
    ] {
        assert_eq!(owner_value(&h, key), Some(toml::Value::from(want)), "{key}");
        let cells = row_cells(&c, key).await;
        assert_eq!(cells[2], "you (this page)", "{key}: {cells:?}");
    }
    assert_eq!(
        owner_value(&h, "agent.prices.llama3.output_usd_per_mtok"),
        Some(toml::Value::Float(0.0))
    );
    table_fits(&c).await;
    save_shot(&c, "13-settings-agent-saved.png").await;
    // Saving the page again as shown changes nothing (values round-trip).
    let before = std::fs::read_to_string(h.backend.settings_files().1).unwrap();
    click_and_load(&c, "#save").await;
    flash(&c, "Nothing changed").await;
    assert_eq!(
        std::fs::read_to_string(h.backend.settings_files().1).unwrap(),
        before
    );

    // A channel: added with its transport, then its token and approvers.
    open(&c, &h, "/settings/channels").await;
    type_into(&c, "channel-name", "ops").await;
    c.find(Locator::Id("channel-kind"))
        .await
        .unwrap()
        .select_by_value("slack-socket")
        .await
        .unwrap();
    click_and_load(&c, "#add-channel button").await;
    flash(&c, "Channel ops added").await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/settings/channels/ops"
    );
    assert_eq!(
        owner_value(&h, "channels.ops.transport.kind"),
        Some(toml::Value::from("slack-socket"))
    );
    type_into(
        &c,
        "f-channels.ops.transport.token_secret",
        "slack_bot_token",
    )
    .await;
    type_into(&c, "f-channels.ops.approvers", "[\"U1\"]").await;
    click_and_load(&c, "#save").await;
    flash(&c, "Saved").await;
    assert_eq!(
        owner_value(&h, "channels.ops.transport.token_secret"),
        Some(toml::Value::from("slack_bot_token"))
    );
    assert_eq!(
        owner_value(&h, "channels.ops.approvers"),
        Some(strings(&["U1"]))
    );
    assert_eq!(
        row_cells(&c, "channels.ops.approvers").await[2],
        "you (this page)"
    );
    assert!(
        !page_text(&c).await.contains("not in the vault"),
        "the named secret is in the vault"
    );
    scroll_to(&c, "row-channels.ops.transport.token_secret").await;
    table_fits(&c).await;
    save_shot(&c, "14-settings-channel.png").await;

    // Guardrails: the tester asks for an ordinary command; a trusted rule
    // saved; the tester then allows it (and still asks for others).
    open(&c, &h, "/settings/guard").await;
    type_into(&c, "guard-command", "git status --short").await;
    click_and_load(&c, "#guard-check").await;
    let verdict = wait_for(&c, "//*[@id='guard-verdict']")
        .await
        .text()
        .await
        .unwrap();
    assert!(verdict.starts_with("ask"), "{verdict}");
    assert_eq!(field_value(&c, "guard.trusted").await, "[]");
    type_into(&c, "f-guard.trusted", "[\"git status\"]").await;
    click_and_load(&c, "#save").await;
    flash(&c, "Saved").await;
    assert_eq!(
        owner_value(&h, "guard.trusted"),
        Some(strings(&["git status"]))
    );
    for (command, want) in [("git status --short", "allow"), ("git push", "ask")] {
        type_into(&c, "guard-command", command).await;
        click_and_load(&c, "#guard-check").await;
        let verdict = wait_for(&c, "//*[@id='guard-verdict']")
            .await
            .text()
            .await
            .unwrap();
        assert!(verdict.starts_with(want), "{command}: {verdict}");
    }
    type_into(&c, "guard-command", "git status --short").await;
    click_and_load(&c, "#guard-check").await;
    scroll_to(&c, "guard-verdict").await;
    save_shot(&c, "15-settings-guard-tester.png").await;

    // Tool permissions on the channel, and a workspace setting.
    open(&c, &h, "/settings/channels/ops").await;
    let group = field_value(&c, "channels.ops.group_tools.deny").await;
    assert_eq!(group, "[\"clipboard\", \"memory\"]");
    type_into(
        &c,
        "f-channels.ops.group_tools.deny",
        "[\"clipboard\", \"memory\", \"run_command\"]",
    )
    .await;
    type_into(&c, "f-channels.ops.dm_tools.deny", "[\"clipboard\"]").await;
    click_and_load(&c, "#save").await;
    flash(&c, "Saved").await;
    assert_eq!(
        owner_value(&h, "channels.ops.group_tools.deny"),
        Some(strings(&["clipboard", "memory", "run_command"]))
    );
    assert_eq!(
        owner_value(&h, "channels.ops.dm_tools.deny"),
        Some(strings(&["clipboard"]))
    );
    for key in [
        "channels.ops.group_tools.deny",
        "channels.ops.dm_tools.deny",
    ] {
        let cells = row_cells(&c, key).await;
        assert_eq!(cells[0], key.trim_start_matches("channels.ops."));
        assert_eq!(cells[2], "you (this page)", "{key}: {cells:?}");
    }
    assert_eq!(
        field_value(&c, "channels.ops.group_tools.deny").await,
        "[\"clipboard\", \"memory\", \"run_command\"]"
    );
    assert_eq!(
        field_value(&c, "channels.ops.dm_tools.deny").await,
        "[\"clipboard\"]"
    );
    scroll_to(&c, "row-channels.ops.group_tools.deny").await;
    save_shot(&c, "16-settings-tools.png").await;
    open(&c, &h, "/settings/sandbox").await;
    assert_eq!(
        field_value(&c, "sandbox.workspace_quota_bytes").await,
        "268435456"
    );
    type_into(&c, "f-sandbox.workspace_quota_bytes", "536870912").await;
    click_and_load(&c, "#save").await;
    flash(&c, "Saved").await;
    assert_eq!(
        owner_value(&h, "sandbox.workspace_quota_bytes"),
        Some(toml::Value::Integer(536_870_912))
    );
    assert_eq!(
        row_cells(&c, "sandbox.workspace_quota_bytes").await[2],
        "you (this page)"
    );
    scroll_to(&c, "row-sandbox.workspace_quota_bytes").await;
    save_shot(&c, "17-settings-sandbox.png").await;

    // Two tabs on the limits: the second save is refused, nothing of the
    // first is overwritten, not even by saving the refused form again.
    let first_tab = c.window().await.unwrap();
    open(&c, &h, "/settings/limits").await;
    let second_tab = c.new_window(true).await.unwrap().handle;
    c.switch_to_window(second_tab.clone()).await.unwrap();
    open(&c, &h, "/settings/limits").await;
    type_into(&c, "f-limits.max_iterations", "30").await;
    type_into(&c, "f-limits.max_cost_usd", "2.5").await;
    click_and_load(&c, "#save").await;
    flash(&c, "Saved").await;
    c.switch_to_window(first_tab).await.unwrap();
    type_into(&c, "f-limits.max_iterations", "40").await;
    click_and_load(&c, "#save").await;
    let problems = wait_for(&c, "//*[@id='form-problems']").await;
    let text = problems.text().await.unwrap();
    assert!(
        text.contains("Nothing was saved") && text.contains("changed since you opened them"),
        "{text}"
    );
    let keep = |h: &Harness| {
        assert_eq!(
            owner_value(h, "limits.max_iterations"),
            Some(toml::Value::Integer(30))
        );
        assert_eq!(
            owner_value(h, "limits.max_cost_usd"),
            Some(toml::Value::Float(2.5))
        );
    };
    keep(&h);
    // The refused form shows the settings as they are now (the other tab's)
    // and what this tab sent, so saving it again undoes nothing.
    assert_eq!(field_value(&c, "limits.max_cost_usd").await, "2.5");
    assert_eq!(field_value(&c, "limits.max_iterations").await, "30");
    let not_saved = wait_for(&c, "//ul[@id='not-saved']")
        .await
        .text()
        .await
        .unwrap();
    assert!(not_saved.contains("max_iterations = 40"), "{not_saved}");
    save_shot(&c, "18-settings-two-tabs.png").await;
    click_and_load(&c, "#save").await;
    flash(&c, "Nothing changed").await;
    keep(&h);
    // The change made again on the form as it is now saves, and keeps the
    // other tab's.
    type_into(&c, "f-limits.max_iterations", "40").await;
    click_and_load(&c, "#save").await;
    flash(&c, "Saved").await;
    assert_eq!(
        owner_value(&h, "limits.max_iterations"),
        Some(toml::Value::Integer(40))
    );
    assert_eq!(
        owner_value(&h, "limits.max_cost_usd"),
        Some(toml::Value::Float(2.5))
    );
    c.close_window().await.unwrap();
    c.switch_to_window(second_tab).await.unwrap();

    // The credentials page names what uses each secret.
    open(&c, &h, "/settings/credentials").await;
    let used = wait_for(
        &c,
        "//table[@id='secrets']//tr[td/code[text()='llm_api_key']]/td[2]",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(used.contains("agent.secret_name"), "{used}");
    c.close().await.unwrap();
    h.stop().await;
}
