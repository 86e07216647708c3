//! Owner setup, login and sessions: setup needs the one-time token (wrong
//! token and short password refused, token gone afterwards); no default
//! password; login lockout per address, held under 100 concurrent attempts
//! (issue 16 item 2, also on the password page); attackers on other addresses
//! cannot keep the owner out, the global brake only slows (item 3); cookie attributes; security headers;
//! idle timeout and absolute lifetime with the injected clock; logout; CSRF on
//! the pre-login forms; changing the owner password; an owner file from an
//! incompatible newer image refuses the login with its sentence (issue 25).

#![allow(clippy::unwrap_used)]

mod admin_common;
use admin_common as common;

use common::*;
use cowork::admin::{AdminWebSettings, COOKIE_NAME, CSP, owner_exists, setup_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_requires_the_token_once() {
    let h = Harness::start().await;
    let token = h.token();
    assert_eq!(token.replace('-', "").len(), 32, "128-bit token");
    let mut c = h.client();

    // Every page sends to setup while no owner exists; nothing else is reachable.
    let r = c.get("/").await;
    assert_eq!((r.status, r.location()), (303, "/setup"));
    let r = c.get("/login").await;
    assert_eq!((r.status, r.location()), (303, "/setup"));

    // Wrong token.
    let r = c
        .setup("0123-4567-89ab-cdef-0123-4567-89ab-cdef", PASSWORD)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("setup token is wrong"));
    assert!(!owner_exists(h.dir.path()));
    assert_eq!(h.backend.audit_of_kind("admin.setup_failed").len(), 1);

    // Short password.
    let r = c.setup(&token, "short pass").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("at least 12 characters"));
    assert!(!owner_exists(h.dir.path()));

    // Mismatched repeat.
    let page = c.get("/setup").await;
    let csrf = page.csrf();
    let r = c
        .post(
            "/setup",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", PASSWORD),
                ("password2", "something else entirely"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(!owner_exists(h.dir.path()));

    // Setup without the pre-login cookie (CSRF) is refused.
    let mut other = h.client();
    let r = other
        .post(
            "/setup",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(!owner_exists(h.dir.path()));

    // Right token.
    let r = c.setup(&token, PASSWORD).await;
    assert_eq!((r.status, r.location()), (303, "/login?setup=done"));
    assert!(owner_exists(h.dir.path()));
    assert_eq!(
        setup_token(h.dir.path()).unwrap(),
        None,
        "token gone after setup"
    );
    assert_eq!(h.backend.audit_of_kind("admin.setup").len(), 1);
    let phc = std::fs::read_to_string(h.dir.path().join(cowork::admin::OWNER_FILE)).unwrap();
    assert!(phc.starts_with("$argon2id$"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(h.dir.path().join(cowork::admin::OWNER_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The token no longer works, even for someone else.
    let r = c.get("/setup").await;
    assert_eq!((r.status, r.location()), (303, "/login"));
    let mut attacker = h.client();
    let page = attacker.get("/login").await;
    let csrf = page.csrf();
    attacker
        .cookies
        .insert("__Host-cowork_pre".into(), csrf.clone());
    let r = attacker
        .post(
            "/setup",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "another password!"),
                ("password2", "another password!"),
            ],
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c.login(PASSWORD).await;
    assert_eq!((r.status, r.location()), (303, "/"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_headers_and_logout() {
    let h = Harness::start().await;
    let mut c = h.client();
    c.setup(&h.token(), PASSWORD).await;
    let page = c.get("/login").await;
    assert!(
        page.headers.contains_key("set-cookie"),
        "pre-login CSRF cookie"
    );
    let csrf = page.csrf();
    let r = c
        .post("/login", &[("csrf", &csrf), ("password", PASSWORD)])
        .await;
    assert_eq!((r.status, r.location()), (303, "/"));
    let sc = r
        .set_cookies()
        .into_iter()
        .find(|s| s.starts_with(COOKIE_NAME))
        .expect("session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(sc.contains(attr), "{attr} missing in {sc}");
    }
    assert!(!sc.contains("Domain"), "__Host- cookies carry no Domain");
    let id = sc.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(id.len(), 64, "256-bit session id");
    assert_eq!(h.backend.audit_of_kind("admin.login").len(), 1);

    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Dashboard"));
    assert!(r.body.contains(&h.cert.fingerprint));
    assert!(r.body.contains("file tier"), "file-tier keystore warning");
    let hd = &r.headers;
    assert_eq!(hd["content-security-policy"], CSP);
    assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe-inline"));
    assert!(
        hd["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    assert_eq!(hd["x-content-type-options"], "nosniff");
    assert_eq!(hd["referrer-policy"], "no-referrer");
    assert_eq!(hd["cache-control"], "no-store");
    assert!(!r.body.contains("<script>"), "no inline script");
    assert!(!r.body.contains(" style="), "no inline style");

    // Headers on error and asset responses too.
    let r = c.get("/no-such-page").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["content-security-policy"], CSP);
    let r = c.get("/assets/admin.js").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    // Logout needs the CSRF token, then the session is gone.
    let r = c.post("/logout", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(c.get("/").await.status, 200);
    let r = c.submit("/", "/logout", &[]).await;
    assert_eq!((r.status, r.location()), (303, "/login"));
    let mut stale = h.client();
    stale.cookies.insert(COOKIE_NAME.into(), id.to_string());
    let r = stale.get("/").await;
    assert_eq!((r.status, r.location()), (303, "/login"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_lockout() {
    let h = Harness::start().await;
    let mut c = h.client();
    c.setup(&h.token(), PASSWORD).await;
    for _ in 0..5 {
        let r = c.login(WRONG).await;
        assert_eq!(r.status, 401);
        assert!(!c.cookies.contains_key(COOKIE_NAME));
    }
    assert_eq!(h.backend.audit_of_kind("admin.login_failed").len(), 5);
    // Locked: even the right password is refused.
    let r = c.login(PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(!c.cookies.contains_key(COOKIE_NAME));
    // After the lockout window it works again.
    h.clock.advance(15 * 60);
    let r = c.login(PASSWORD).await;
    assert_eq!((r.status, r.location()), (303, "/"));
    h.stop().await;
}

const WRONG: &str = "wrong password 123";

/// Posts the prepared `forms` to `path` all at once, one task per client,
/// released together by a barrier; returns the statuses.
async fn all_at_once(path: &'static str, jobs: Vec<(Client, Vec<(String, String)>)>) -> Vec<u16> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(jobs.len()));
    let mut set = tokio::task::JoinSet::new();
    for (mut c, form) in jobs {
        let barrier = barrier.clone();
        set.spawn(async move {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            barrier.wait().await;
            c.post(path, &form).await.status
        });
    }
    let mut out = Vec::new();
    while let Some(s) = set.join_next().await {
        out.push(s.unwrap());
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Issue 16 item 2: 100 wrong passwords at once from one address. The old
/// code checked `locked()` before hashing and counted after, so all 100 were
/// hashed; now a check is reserved first: 5 are evaluated, 95 get 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_are_capped_per_address() {
    let h = Harness::start().await;
    h.client().setup(&h.token(), PASSWORD).await;
    let mut jobs = Vec::new();
    for _ in 0..100 {
        let mut c = h.client_from("127.0.0.2");
        let csrf = c.get("/login").await.csrf();
        let form = vec![
            ("csrf".to_string(), csrf),
            ("password".to_string(), WRONG.to_string()),
        ];
        jobs.push((c, form));
    }
    let statuses = all_at_once("/login", jobs).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 95, "{statuses:?}");
    assert_eq!(h.backend.audit_of_kind("admin.login_failed").len(), 5);
    // One lockout, reported once, naming the address.
    let lockouts = h.backend.audit_of_kind("admin.login_lockout");
    assert_eq!(lockouts.len(), 1, "{lockouts:?}");
    assert_eq!(lockouts[0].payload["peer"], "127.0.0.2");
    // Locked: even the right password from that address.
    let r = h.client_from("127.0.0.2").login(PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("from this address"), "{}", r.body);
    // The owner elsewhere is not affected.
    let r = h.client_from("127.0.0.3").login(PASSWORD).await;
    assert_eq!((r.status, r.location()), (303, "/"));
    h.stop().await;
}

/// Item 2 on the password page: the current-password check is reserved
/// under the same per-address rule, so 20 concurrent wrong guesses within
/// one session evaluate at most 5 (the old code let each pass `locked()`
/// before any failure was counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_current_passwords_are_capped() {
    const NEW: &str = "a brand new passphrase 42";
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let csrf = c.get("/password").await.csrf();
    let form = vec![
        ("csrf".to_string(), csrf),
        ("current".to_string(), WRONG.to_string()),
        ("password".to_string(), NEW.to_string()),
        ("password2".to_string(), NEW.to_string()),
    ];
    let jobs = (0..20).map(|_| (c.clone(), form.clone())).collect();
    let statuses = all_at_once("/password", jobs).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
    assert_eq!(
        h.backend
            .audit_of_kind("admin.password_change_failed")
            .len(),
        5
    );
    // The right current password is refused too while locked, and nothing changed.
    let r = c
        .submit(
            "/password",
            "/password",
            &[("current", PASSWORD), ("password", NEW), ("password2", NEW)],
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(h.client_from("127.0.0.3").login(PASSWORD).await.status, 303);
    h.stop().await;
}

/// Issue 16 item 3: hosts 127.0.0.2..=127.0.0.9 send 5 wrong passwords each
/// (40). The old code locked every address for 15 minutes after 20
/// failures; now each attacker is locked alone and the global bucket (20
/// checks, one more every 3 s) only makes the owner on 127.0.0.1 wait 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attackers_elsewhere_cannot_lock_the_owner_out() {
    let h = Harness::start().await;
    h.client().setup(&h.token(), PASSWORD).await; // one check
    let mut statuses = Vec::new();
    for host in 2..=9 {
        let mut c = h.client_from(&format!("127.0.0.{host}"));
        for _ in 0..5 {
            statuses.push(c.login(WRONG).await.status);
        }
    }

    let mut owner = h.client_from("127.0.0.1");
    let r = owner.login(PASSWORD).await;
    assert_eq!(r.status, 429, "bucket empty right after the attack");
    assert!(r.body.contains("few seconds"), "{}", r.body);
    h.clock.advance(3);
    let r = owner.login(PASSWORD).await;
    assert_eq!((r.status, r.location()), (303, "/"), "{}", r.body);
    // What the attack got: 19 checks (the bucket's 20 minus setup's), three
    // addresses locked, each reported once.
    assert_eq!(count(&statuses, 401), 19, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 21);
    let locked: Vec<_> = h
        .backend
        .audit_of_kind("admin.login_lockout")
        .iter()
        .map(|e| e.payload["peer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(locked, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    // The attackers stay locked out.
    h.clock.advance(60);
    let r = h.client_from("127.0.0.2").login(PASSWORD).await;
    assert_eq!(r.status, 429);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_password_change() {
    const NEW: &str = "a brand new passphrase 42";
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    let mut other = h.client();
    other.login(PASSWORD).await;
    assert_eq!(other.get("/").await.status, 200);
    let page = c.get("/password").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"autocomplete="current-password""#));
    let change = |current: &'static str, p1: &'static str, p2: &'static str| {
        [("current", current), ("password", p1), ("password2", p2)]
    };

    // A wrong current password: 401, counted and audited, nothing changed.
    let r = c
        .submit("/password", "/password", &change("not it at all", NEW, NEW))
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("current password is wrong"), "{}", r.body);
    // New passwords the setup rules refuse: 400 with the reason.
    for (p1, p2, why) in [
        ("short", "short", "at least 12"),
        (NEW, "a different passphrase", "differ"),
        (PASSWORD, PASSWORD, "same as the current"),
        (
            "control\u{7}characters!",
            "control\u{7}characters!",
            "control",
        ),
    ] {
        let r = c
            .submit("/password", "/password", &change(PASSWORD, p1, p2))
            .await;
        assert_eq!(r.status, 400, "{why}");
        assert!(r.body.contains(why), "{why}: {}", r.body);
    }
    // Hostile posts: no CSRF token, a foreign one, a missing field, no session.
    let r = c.post("/password", &change(PASSWORD, NEW, NEW)).await;
    assert_eq!(r.status, 403);
    let foreign = "0".repeat(64);
    let mut f = vec![("csrf", foreign.as_str())];
    f.extend(change(PASSWORD, NEW, NEW));
    assert_eq!(c.post("/password", &f).await.status, 403);
    let r = c
        .submit(
            "/password",
            "/password",
            &[("current", PASSWORD), ("password", NEW)],
        )
        .await;
    assert_eq!(r.status, 400);
    let mut anon = h.client();
    assert_eq!(
        anon.post("/password", &change(PASSWORD, NEW, NEW))
            .await
            .status,
        403
    );
    assert_eq!(
        h.client().login(PASSWORD).await.status,
        303,
        "unchanged so far"
    );

    // The change: this browser stays in with a new session, the others are out.
    let r = c
        .submit("/password", "/password", &change(PASSWORD, NEW, NEW))
        .await;
    assert_eq!((r.status, r.location()), (303, "/"));
    let home = c.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Password changed"), "{}", home.body);
    assert_eq!(other.get("/").await.location(), "/login");
    assert_eq!(h.client().login(PASSWORD).await.status, 401);
    assert_eq!(h.client().login(NEW).await.status, 303);
    assert_eq!(h.backend.audit_of_kind("admin.password_changed").len(), 1);
    assert_eq!(
        h.backend
            .audit_of_kind("admin.password_change_failed")
            .len(),
        1
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_and_absolute_lifetime() {
    let s = AdminWebSettings {
        session_idle_secs: 600,
        session_max_secs: 1500,
        ..settings("127.0.0.1")
    };
    let h = Harness::start_with(s, tempfile::tempdir().unwrap()).await;
    let mut c = h.owner_client().await;
    h.clock.advance(599);
    assert_eq!(c.get("/").await.status, 200, "used within the idle time");
    h.clock.advance(599);
    assert_eq!(c.get("/").await.status, 200);
    h.clock.advance(400);
    let r = c.get("/").await;
    assert_eq!(
        (r.status, r.location()),
        (303, "/login"),
        "absolute lifetime over"
    );

    let r = c.login(PASSWORD).await;
    assert_eq!(r.status, 303);
    assert_eq!(c.get("/").await.status, 200);
    h.clock.advance(600);
    let r = c.get("/").await;
    assert_eq!((r.status, r.location()), (303, "/login"), "idle timeout");
    // A POST with a dead session changes nothing.
    let before = h.backend.state().mutations;
    let r = c.post("/pairing/cancel-all", &[("csrf", "whatever")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(h.backend.state().mutations, before);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_logs_everyone_out() {
    let h = Harness::start().await;
    let mut c = h.owner_client().await;
    assert_eq!(c.get("/").await.status, 200);
    let (dir, clock, backend) = h.stop().await;
    let h = Harness::start_full(settings("127.0.0.1"), dir, clock, backend).await;
    c.base = h.base.clone();
    let r = c.get("/").await;
    assert_eq!((r.status, r.location()), (303, "/login"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_file_from_a_newer_image_refuses_the_login_in_words() {
    let h = Harness::start().await;
    let _ = h.owner_client().await;
    let file = h.dir.path().join("admin-owner.phc");
    let phc = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("schema 3\n{phc}")).unwrap();
    let mut c = h.client();
    let r = c.login(PASSWORD).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("admin-owner.phc has schema 3; this image knows up to 1: the appliance was rolled back across an incompatible update"),
        "{}",
        r.body
    );
    std::fs::write(&file, phc).unwrap();
    assert_eq!(
        c.login(PASSWORD).await.status,
        303,
        "the file of this image logs in"
    );
    h.stop().await;
}
