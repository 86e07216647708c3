//! The pages against the fake backend: pairing-code lifecycle (issue with QR
//! and countdown, TTL expiry via the injected clock, single use, re-issue
//! revokes the old code, cancel), users (revoke one / all), tasks (cancel,
//! force-stop), approvals (full command shown escaped; approve / deny), audit
//! (filter, verify verdict), security reset; and hostile forms: missing or
//! wrong CSRF, oversized bodies, malformed input → clear 4xx, nothing changed.

#![allow(clippy::unwrap_used)]

mod admin_common;
use admin_common as common;

use common::*;
use cowork::ipc::{TaskState, UserState};

fn code_of(body: &str) -> String {
    let i = body.find(r#"id="pairing-code">"#).expect("code shown") + r#"id="pairing-code">"#.len();
    body[i..i + 8].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_lifecycle() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;

    let r = c
        .submit(
            "/pairing",
            "/pairing/issue",
            &[("channel", "telegram"), ("ttl", "120")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let code = code_of(&r.body);
    assert!(r.body.contains("<svg"), "QR code rendered as SVG");
    assert!(
        r.body
            .contains(&format!("data-expires-at=\"{}\"", START + 120)),
        "countdown target"
    );
    assert!(
        r.body.contains("2 min 0 s left"),
        "server-rendered remaining time"
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    let listed = c.get("/pairing").await;
    assert!(listed.body.contains("Active codes") && listed.body.contains("telegram"));
    assert!(
        !listed.body.contains(&code),
        "the code itself is never listed again"
    );

    // Expiry.
    h.clock.advance(121);
    assert!(
        !h.backend.redeem("telegram", &code, "mallory"),
        "expired code refused"
    );
    assert!(c.get("/pairing").await.body.contains("No active codes"));

    // Single use.
    let r = c
        .submit(
            "/pairing",
            "/pairing/issue",
            &[("channel", "telegram"), ("ttl", "")],
        )
        .await;
    let code = code_of(&r.body);
    assert!(
        r.body
            .contains(&format!("data-expires-at=\"{}\"", h.clock_now() + 300)),
        "default TTL 300 s"
    );
    assert!(h.backend.redeem("telegram", &code, "carol"));
    assert!(!h.backend.redeem("telegram", &code, "dave"), "single use");
    let users = c.get("/users").await;
    assert!(users.body.contains("carol"));

    // Re-issuing revokes the previous code.
    let old = code_of(
        &c.submit("/pairing", "/pairing/issue", &[("channel", "telegram")])
            .await
            .body,
    );
    let new = code_of(
        &c.submit("/pairing", "/pairing/issue", &[("channel", "telegram")])
            .await
            .body,
    );
    assert!(
        !h.backend.redeem("telegram", &old, "erin"),
        "rotated-out code refused"
    );
    assert!(h.backend.redeem("telegram", &new, "erin"));

    // Cancel one.
    let r = c
        .submit(
            "/pairing",
            "/pairing/issue",
            &[("channel", "local"), ("ttl", "3600")],
        )
        .await;
    let code = code_of(&r.body);
    let page = c.get("/pairing").await;
    let id = extract(&page.body, r#"name="id" value=""#).unwrap();
    let r = c
        .submit("/pairing", "/pairing/cancel", &[("id", &id)])
        .await;
    assert_eq!((r.status, r.location()), (303, "/pairing"));
    assert!(
        c.get("/pairing").await.body.contains("was cancelled"),
        "flash message"
    );
    assert!(!h.backend.redeem("local", &code, "frank"));

    // A sender whose pairing is paused is listed, and the owner lets them
    // try again (issue 19).
    let page = c.get("/pairing").await;
    assert!(
        page.body.contains("id=\"lockouts\"") && page.body.contains("mallory"),
        "{}",
        page.body
    );
    let r = c
        .submit(
            "/pairing",
            "/pairing/lockouts/clear",
            &[("channel", "telegram"), ("sender", "mallory")],
        )
        .await;
    assert_eq!((r.status, r.location()), (303, "/pairing"));
    let page = c.get("/pairing").await;
    assert!(
        page.body.contains("may try pairing codes again"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Nobody is paused."), "{}", page.body);
    assert!(h.backend.state().lockouts.is_empty());
    h.stop().await;
}

trait Now {
    fn clock_now(&self) -> u64;
}
impl Now for Harness {
    fn clock_now(&self) -> u64 {
        use cowork::admin::Clock;
        self.clock.now()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_tasks_approvals_audit() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;

    let r = c
        .submit(
            "/users",
            "/users/revoke",
            &[("channel", "telegram"), ("sender", "alice")],
        )
        .await;
    assert_eq!((r.status, r.location()), (303, "/users"));
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
    let r = c
        .submit("/users", "/users/revoke-all", &[("channel", "telegram")])
        .await;
    assert_eq!(r.status, 303);
    assert!(
        h.backend
            .state()
            .users
            .iter()
            .all(|u| u.state == UserState::Revoked)
    );

    let page = c.get("/approvals").await;
    assert!(
        page.body
            .contains("rm -rf ./target/&lt;debug&gt; &amp;&amp; echo &quot;done&quot;"),
        "full command, escaped"
    );
    assert!(
        page.body.contains("/var/lib/cowork/workspace") && page.body.contains("telegram:alice")
    );
    let r = c
        .submit(
            "/approvals",
            "/approvals/decide",
            &[("id", "3"), ("decision", "deny")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        h.backend.state().decisions,
        vec![(3, false, "owner@127.0.0.1".to_string())]
    );
    let r = c
        .submit(
            "/approvals",
            "/approvals/decide",
            &[("id", "3"), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status, 404, "already decided: {}", r.body);
    assert!(r.body.contains("Approval not found."));

    let r = c
        .submit("/tasks", "/tasks/cancel", &[("id", "7"), ("force", "1")])
        .await;
    assert_eq!(r.status, 303);
    let task = h.backend.state().tasks[0].clone();
    assert_eq!(
        (task.state, task.detail.as_deref()),
        (TaskState::Cancelled, Some("force-stopped"))
    );
    let r = c.submit("/tasks", "/tasks/cancel", &[("id", "999")]).await;
    assert_eq!(r.status, 404);

    let page = c.get("/audit?kind=admin.login&since=86400").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("admin.login"));
    let r = c.get("/audit?kind=%3Cscript%3E").await;
    assert_eq!(r.status, 400);
    let r = c.submit("/audit", "/audit/verify", &[]).await;
    assert!(r.body.contains("Intact"), "{}", r.body);
    h.backend.state().audit_tampered_at = Some(2);
    let r = c.submit("/audit", "/audit/verify", &[]).await;
    assert!(r.body.contains("BROKEN") && r.body.contains("at entry 2"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_modes_and_warnings() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    h.backend.state().channels[1].dm_mode = "open".into();
    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("channel telegram is in open mode"),
        "{}",
        r.body
    );
    assert!(r.body.contains("file tier"));
    // The checklist runs the real checks on the fake's settings: the file
    // keystore is one to look at, with its fix; passing checks are folded.
    assert!(r.body.contains("Security checklist"), "{}", r.body);
    assert!(
        r.body.contains(r#"<tr data-check="keystore">"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("Fix: "), "{}", r.body);
    assert!(
        r.body.contains(r#"<li data-check="audit.verify">"#),
        "{}",
        r.body
    );
    h.backend.state().audit_tampered_at = Some(3);
    let r = c.get("/").await;
    assert!(
        r.body.contains(r#"<tr data-check="audit.verify">"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("check-fail"), "{}", r.body);
    for comp in ["supervisor", "audit", "gateway", "sandbox", "admin"] {
        assert!(r.body.contains(comp));
    }
    assert!(r.body.contains("0.1.0-test"));
    assert!(r.body.contains(&h.cert.fingerprint));
    // Each store's schema version (issue 25).
    assert!(r.body.contains("Stored data"), "{}", r.body);
    assert!(
        r.body
            .contains("<td>state.db</td><td class=\"schema\">1</td>"),
        "{}",
        r.body
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_reset() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let mut other = h.client();
    other.login(PASSWORD).await;
    assert_eq!(other.get("/").await.status, 200);
    c.submit("/pairing", "/pairing/issue", &[("channel", "telegram")])
        .await;

    // Not confirmed: nothing happens.
    let before = h.backend.state().mutations;
    let r = c
        .submit("/security-reset", "/security-reset", &[("confirm", "yes")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(h.backend.state().mutations, before);

    let r = c
        .submit(
            "/security-reset",
            "/security-reset",
            &[("confirm", "RESET")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("anthropic_api_key") && r.body.contains("telegram_bot_token"),
        "checklist of secrets"
    );
    assert!(
        h.backend
            .state()
            .users
            .iter()
            .all(|u| u.state == UserState::Revoked)
    );
    assert!(c.get("/pairing").await.status == 303, "this session ended");
    assert_eq!(
        other.get("/").await.location(),
        "/login",
        "every session ended"
    );
    let fp = extract(&r.body, r#"id="fingerprint">"#);
    assert!(fp.is_none() || !r.body.contains(&h.cert.fingerprint));
    assert!(!r.body.contains(&h.cert.fingerprint), "new certificate");
    assert_eq!(h.backend.audit_of_kind("admin.security_reset").len(), 1);
    assert_eq!(h.backend.audit_of_kind("admin.cert_rotated").len(), 1);
    // New connections get the new certificate: the old pin fails.
    assert!(
        reqwest_client(&h.cert.der)
            .get(format!("{}/login", h.base))
            .send()
            .await
            .is_err()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_forms_change_nothing() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let csrf = c.get("/pairing").await.csrf();
    let before = h.backend.state().mutations;

    // Missing and wrong CSRF tokens.
    let r = c.post("/pairing/issue", &[("channel", "telegram")]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("security token"));
    let r = c
        .post(
            "/users/revoke",
            &[("csrf", "00"), ("channel", "telegram"), ("sender", "alice")],
        )
        .await;
    assert_eq!(r.status, 403);
    let wrong = "f".repeat(64);
    let r = c
        .post("/security-reset", &[("csrf", &wrong), ("confirm", "RESET")])
        .await;
    assert_eq!(r.status, 403);
    // A token from another session does not work.
    let mut other = h.client();
    other.login(PASSWORD).await;
    let other_csrf = other.get("/").await.csrf();
    assert_ne!(other_csrf, csrf);
    let r = c.post("/users/revoke-all", &[("csrf", &other_csrf)]).await;
    assert_eq!(r.status, 403);
    // Duplicate csrf fields.
    let r = c
        .post("/users/revoke-all", &[("csrf", &csrf), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 400);

    // Oversized body.
    let big = format!(
        "csrf={csrf}&channel=telegram&junk={}",
        "a".repeat(70 * 1024)
    );
    let r = c.post_raw("/pairing/issue", big).await;
    assert_eq!(r.status, 413, "{}", r.body);

    // Malformed input.
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/pairing/issue", &[("channel", "Tele gram")]),
        (
            "/pairing/issue",
            &[("channel", "<script>alert(1)</script>")],
        ),
        ("/pairing/issue", &[("channel", "telegram"), ("ttl", "59")]),
        (
            "/pairing/issue",
            &[("channel", "telegram"), ("ttl", "3601")],
        ),
        (
            "/pairing/issue",
            &[("channel", "telegram"), ("ttl", "five")],
        ),
        (
            "/pairing/issue",
            &[("channel", "telegram"), ("ttl", "-300")],
        ),
        ("/pairing/issue", &[("channel", "тelegram")]),
        ("/pairing/issue", &[]),
        ("/pairing/cancel", &[("id", "abc")]),
        ("/pairing/cancel", &[("id", "1; DROP TABLE")]),
        ("/pairing/cancel", &[("id", "١٢")]),
        ("/tasks/cancel", &[("id", "7"), ("force", "yes")]),
        ("/tasks/cancel", &[("id", "99999999999999999999999")]),
        ("/approvals/decide", &[("id", "3"), ("decision", "maybe")]),
        (
            "/users/revoke",
            &[("channel", "telegram"), ("sender", "al\u{0}ice")],
        ),
        ("/users/revoke", &[("channel", "telegram"), ("sender", "")]),
        (
            "/users/revoke",
            &[("channel", "\u{202e}telegram"), ("sender", "alice")],
        ),
        (
            "/pairing/lockouts/clear",
            &[("channel", "telegram"), ("sender", "mal\u{0}lory")],
        ),
        (
            "/pairing/lockouts/clear",
            &[("channel", "Tele gram"), ("sender", "x")],
        ),
        ("/pairing/lockouts/clear", &[("channel", "telegram")]),
    ];
    for (path, fields) in cases {
        let mut f = vec![("csrf", csrf.as_str())];
        f.extend_from_slice(fields);
        let r = c.post(path, &f).await;
        assert_eq!(r.status, 400, "{path} {fields:?}: {}", r.body);
        assert!(
            r.body.contains("<p class=\"error\">"),
            "a plain sentence: {}",
            r.body
        );
        assert!(
            !r.body.contains("<script>alert"),
            "input is never echoed unescaped"
        );
    }
    // Not UTF-8 / not a form.
    let r = c
        .post_raw("/pairing/issue", format!("csrf={csrf}&channel=%FF%FE"))
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .post_raw("/pairing/issue", vec![0xffu8, 0xfe, 0x00, 0x01])
        .await;
    assert!(r.status == 400 || r.status == 403, "{}", r.status);
    // Unknown channel: the backend's plain sentence.
    let r = c
        .post("/pairing/issue", &[("csrf", &csrf), ("channel", "nosuch")])
        .await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("Channel not found."));

    assert_eq!(
        h.backend.state().mutations,
        before,
        "the fake backend is unchanged"
    );
    assert!(
        h.backend
            .state()
            .users
            .iter()
            .any(|u| u.state != UserState::Revoked)
    );
    h.stop().await;
}

#[tokio::test]
async fn update_upload() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    let clock = cowork::admin::TestClock::new(admin_common::START);
    let mut backend = cowork::admin::testing::FakeBackend::new(std::sync::Arc::new(clock.clone()));
    backend.upload = cowork::admin::UploadTarget {
        dir: uploads.clone(),
        max_bytes: 64 * 1024,
    };
    let h = Harness::start_full(
        admin_common::settings("127.0.0.1"),
        tempfile::tempdir().unwrap(),
        clock,
        backend,
    )
    .await;
    let mut c = h.owner_client().await;
    let page = c.get("/updates").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("update-progress") && page.body.contains("Running slot"));
    let csrf = admin_common::extract(&page.body, r#"data-csrf=""#).expect("data-csrf");
    let bundle = |n: usize| {
        let mut b = b"CWUPDATE".to_vec();
        b.resize(n, 7);
        b
    };
    let left = || std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);

    // Refusals that change nothing: no session, no or a foreign CSRF token,
    // over the cap (declared, or streamed without a length), empty, junk.
    let mut anon = h.client();
    assert_eq!(anon.upload(Some(&csrf), bundle(100)).await.status, 403);
    assert_eq!(c.upload(None, bundle(100)).await.status, 403);
    assert_eq!(
        c.upload(Some("0".repeat(64).as_str()), bundle(100))
            .await
            .status,
        403
    );
    let big = c.upload(Some(&csrf), bundle(64 * 1024 + 1)).await;
    assert_eq!(big.status, 413, "{}", big.body);
    assert!(big.body.contains("max_bundle_bytes"), "{}", big.body);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![7u8; 8192])).collect();
    let streamed = c
        .http
        .post(format!("{}/updates/upload", c.base))
        .header(
            "cookie",
            format!(
                "{}={}",
                cowork::admin::COOKIE_NAME,
                c.cookies[cowork::admin::COOKIE_NAME]
            ),
        )
        .header("x-csrf-token", &csrf)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status().as_u16(), 413);
    assert_eq!(c.upload(Some(&csrf), Vec::new()).await.status, 400);
    let junk = c.upload(Some(&csrf), vec![0x55; 1000]).await;
    assert_eq!(junk.status, 400);
    assert!(junk.body.contains("refused"), "{}", junk.body);
    assert!(h.backend.state().applied_updates.is_empty());
    assert_eq!(left(), 0, "nothing left in the upload directory");

    // A bundle: applied with exactly the uploaded bytes, then removed.
    let ok = c.upload(Some(&csrf), bundle(40_000)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let answer: serde_json::Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(answer["ok"], true);
    assert!(
        answer["message"].as_str().unwrap().contains("slot B"),
        "{answer}"
    );
    assert_eq!(h.backend.state().applied_updates, vec![bundle(40_000)]);
    assert_eq!(left(), 0);
    let audit = c.get("/audit").await;
    assert!(audit.body.contains("admin.update_uploaded"), "audited");
}

/// The update feed on the Updates page (issue 24): "Check now" shows what the
/// feed offers, "Install" applies exactly the bundle the check named (never
/// a URL from the form), and nothing is installed without a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_feed_check_and_install() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let page = c.get("/updates").await;
    assert!(page.body.contains("id=\"update-check\""), "{}", page.body);
    assert!(page.body.contains("Not checked yet."), "{}", page.body);
    assert!(!page.body.contains("id=\"update-install\""));

    // Install before any check: refused, nothing applied.
    let r = c.submit("/updates", "/updates/install", &[]).await;
    assert_eq!((r.status, r.location()), (303, "/updates"));
    assert!(
        c.get("/updates")
            .await
            .body
            .contains("No update is waiting")
    );
    assert!(h.backend.state().applied_updates.is_empty());

    // A URL in the form is ignored: the check's URL is the only one used.
    let r = c.submit("/updates", "/updates/check", &[]).await;
    assert_eq!((r.status, r.location()), (303, "/updates"));
    let page = c.get("/updates").await;
    assert!(
        page.body.contains("Version 2 is available"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"update-install\""), "{}", page.body);
    let r = c
        .submit(
            "/updates",
            "/updates/install",
            &[("url", "https://evil.example/x.cwu")],
        )
        .await;
    assert_eq!(r.status, 303);
    let page = c.get("/updates").await;
    assert!(page.body.contains("written to slot B"), "{}", page.body);
    assert_eq!(h.backend.state().applied_updates.len(), 1);

    // Checked again: nothing newer; no install button.
    c.submit("/updates", "/updates/check", &[]).await;
    let page = c.get("/updates").await;
    assert!(page.body.contains("Up to date"), "{}", page.body);
    assert!(!page.body.contains("id=\"update-install\""));

    // Without the session's CSRF token: refused, nothing checked or applied.
    let before = h.backend.state().mutations;
    let r = c.post("/updates/install", &[("csrf", "wrong")]).await;
    assert_ne!(r.status, 303, "{}", r.body);
    assert_eq!(h.backend.state().mutations, before);
}
