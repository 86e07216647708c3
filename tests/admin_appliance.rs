//! The admin page inside the running appliance (real supervisor, real gateway
//! and audit components over IPC): `coworkctl admin info` names the URL and the
//! certificate fingerprint, which match what a TLS client is served; the setup
//! token from `coworkctl admin setup-token` sets the owner up; a pairing code
//! issued on the page is redeemed on the local channel (`coworkctl chat`) and the
//! user then shows on the Users page; revoking there stops the user; the audit
//! page shows the trail; the certificate survives a restart and a master key
//! rotation; `coworkctl admin rotate-cert` changes it and logs sessions out.
//! On file-backed update slots, a signed bundle uploaded on the Updates page is
//! written to slot B through the supervisor (its updates socket), and a
//! tampered one is refused with the verifier's reason.

#![allow(clippy::unwrap_used)]

mod admin_common;
mod common;
mod update_common;

use std::process::Command;

use common::Instance;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "correct horse battery staple";

fn ctl_ok(i: &Instance, args: &[&str]) -> String {
    let out = i.ctl(args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn info(i: &Instance) -> serde_json::Value {
    // The page starts once the admin component has its keys.
    common::wait_until(std::time::Duration::from_secs(10), "admin info", || {
        let out = i.ctl(&["admin", "info", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    })
}

/// The certificate the server presents, as DER, fetched with `openssl s_client`.
fn served_der(url: &str) -> Vec<u8> {
    let host = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {host} </dev/null 2>/dev/null | openssl x509 -outform DER"
        ))
        .output()
        .unwrap();
    assert!(!out.stdout.is_empty(), "no certificate from {host}");
    out.stdout
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn code_of(body: &str) -> String {
    let marker = r#"id="pairing-code">"#;
    let i = body.find(marker).expect("code shown") + marker.len();
    body[i..i + 8].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_in_the_appliance() {
    let i = Instance::start();
    let me = nix::unistd::getuid().as_raw();
    let info1 = info(&i);
    let url = info1["urls"][0]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{info1}");
    let der = served_der(&url);
    assert_eq!(
        fingerprint(&der),
        info1["fingerprint"],
        "served certificate"
    );
    assert_eq!(info1["owner_set"], false);
    // The journal (stderr here) names the page and its fingerprint.
    let fp = info1["fingerprint"].as_str().unwrap().to_string();
    common::wait_until(
        std::time::Duration::from_secs(5),
        "fingerprint in the log",
        || i.log().contains(&fp).then_some(()),
    );

    // Owner setup with the token from coworkctl, then log in.
    let token = ctl_ok(&i, &["admin", "setup-token"]).trim().to_string();
    let mut c = admin_common::Client::new(&url, &der);
    let r = c.setup(&token, PASSWORD).await;
    assert!(r.status == 303 || r.status == 200, "setup: {}", r.body);
    let r = c.login(PASSWORD).await;
    assert_eq!(r.status, 303, "login: {}", r.body);
    assert!(
        !i.ctl(&["admin", "setup-token"]).status.success(),
        "token gone"
    );

    // The dashboard shows the real components (after a health round).
    common::wait_until(std::time::Duration::from_secs(10), "dashboard", || {
        let body = futures_block(c.get("/"));
        (body.contains("gateway") && body.contains("sandbox")).then_some(())
    });
    // The security checklist is the supervisor's (`coworkctl doctor`), reached
    // through updates.sock: the development profile is among what to look at.
    let body = c.get("/").await.body;
    assert!(body.contains("Security checklist"), "{body}");
    assert!(!body.contains("could not be gathered"), "{body}");
    assert!(body.contains(r#"data-check="profile""#), "{body}");
    assert!(body.contains(r#"data-check="audit.verify""#), "{body}");

    // Wrong codes pause this sender's pairing: the page lists the pause and
    // lifts it (through the gateway, as the owner would).
    let r = c
        .submit("/pairing", "/pairing/issue", &[("channel", "local")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..5 {
        let _ = i.ctl(&["chat", "/pair 00000000"]);
    }
    let page = c.get("/pairing").await;
    assert!(
        page.body.contains(&format!("<code>uid:{me}</code>")),
        "{}",
        page.body
    );
    let r = c
        .submit(
            "/pairing",
            "/pairing/lockouts/clear",
            &[("channel", "local"), ("sender", &format!("uid:{me}"))],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(c.get("/pairing").await.body.contains("Nobody is paused."));

    // A pairing code from the page, redeemed on the local channel.
    let r = c
        .submit("/pairing", "/pairing/issue", &[("channel", "local")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let code = code_of(&r.body);
    let reply = ctl_ok(&i, &["chat", &format!("/pair {code}")]);
    assert!(reply.contains("Paired"), "{reply}");
    let users = c.get("/users").await;
    assert!(users.body.contains(&format!("uid:{me}")), "{}", users.body);

    // Revoke from the page: the local user is refused afterwards.
    let r = c
        .submit(
            "/users",
            "/users/revoke",
            &[("channel", "local"), ("sender", &format!("uid:{me}"))],
        )
        .await;
    assert!(r.status == 303 || r.status == 200, "{}", r.body);
    assert_eq!(ctl_ok(&i, &["chat", "hello"]).trim(), "");

    // The audit page reads the real trail; verify says intact.
    let audit = c.get("/audit").await;
    assert!(audit.body.contains("pairing.issued"), "audit page");
    assert!(audit.body.contains("admin.login"), "audit page");
    let kinds = ctl_ok(&i, &["audit", "tail", "-n", "100", "--json"]);
    for kind in [
        "admin.setup",
        "admin.login",
        "gateway.pairing",
        "user.revoked",
    ] {
        assert!(kinds.contains(kind), "{kind} not in the trail");
    }

    // Same certificate after a restart and after a master key rotation.
    let i = i.restart();
    assert_eq!(info(&i)["fingerprint"], info1["fingerprint"]);
    ctl_ok(&i, &["secret", "rotate-master"]);
    let i = i.restart();
    let info2 = info(&i);
    assert_eq!(
        info2["fingerprint"], info1["fingerprint"],
        "after rotate-master"
    );
    assert_eq!(info2["owner_set"], true);

    // rotate-cert: a new certificate is served.
    let rotated = ctl_ok(&i, &["admin", "rotate-cert"]);
    assert!(rotated.contains("rotated"), "{rotated}");
    let info3 = info(&i);
    assert_ne!(info3["fingerprint"], info1["fingerprint"]);
    let url3 = info3["urls"][0]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert_eq!(fingerprint(&served_der(&url3)), info3["fingerprint"]);
}

/// Runs a future to completion from a synchronous closure inside the runtime.
fn futures_block(f: impl std::future::Future<Output = admin_common::Resp>) -> String {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_uploaded_on_the_admin_page() {
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    let slots = dir.path().join("slots");
    std::fs::create_dir_all(slots.join("work")).unwrap();
    let config = format!(
        "{}[update]\n{}",
        common::DEV_CONFIG,
        update_common::daemon_slots(&slots, &update_common::pattern(128 * 1024, 1), 5)
    );
    let s = |p: &str| slots.join(p).display().to_string();
    let payload = update_common::pattern(200 * 1024, 6);
    std::fs::write(slots.join("work/root.img"), &payload).unwrap();
    std::fs::write(slots.join("work/vmlinuz"), b"kernel 6").unwrap();
    std::fs::write(slots.join("work/initrd"), b"initrd 6").unwrap();
    let out = Command::new(common::COWORKCTL)
        .args([
            "update",
            "pack",
            "--payload",
            &s("work/root.img"),
            "--kernel",
            &s("work/vmlinuz"),
        ])
        .args([
            "--initrd",
            &s("work/initrd"),
            "--version",
            "6",
            "--label",
            "upload-test",
        ])
        .args([
            "--key",
            &update_common::data("test-signing-key.pem")
                .display()
                .to_string(),
        ])
        .args(["--out", &s("work/v6.bundle")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bundle = std::fs::read(slots.join("work/v6.bundle")).unwrap();

    std::fs::write(Instance::config_path(dir.path()), config).unwrap();
    let mut i = Instance::start_in(dir, &[], &[]);
    i.wait_notification("READY=1", std::time::Duration::from_secs(15));
    let url = info(&i)["urls"][0]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let der = served_der(&url);
    let token = ctl_ok(&i, &["admin", "setup-token"]).trim().to_string();
    let mut c = admin_common::Client::new(&url, &der);
    c.setup(&token, PASSWORD).await;
    assert_eq!(c.login(PASSWORD).await.status, 303);

    let page = c.get("/updates").await;
    assert!(page.body.contains("image version 5"), "{}", page.body);
    let csrf = admin_common::extract(&page.body, r#"data-csrf=""#).expect("data-csrf");

    // A changed byte: refused with the verifier's reason, slot B not bootable.
    let mut tampered = bundle.clone();
    let last = tampered.len() - 5;
    tampered[last] ^= 1;
    let r = c.upload(Some(&csrf), tampered).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("refused"), "{}", r.body);
    assert!(!slots.join("esp/loader/entries/cowork-b+3.conf").exists());

    let r = c.upload(Some(&csrf), bundle).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("slot B"), "{}", r.body);
    let written = std::fs::read(slots.join("slot-b.img")).unwrap();
    assert!(written.starts_with(&payload), "slot B holds the payload");
    assert!(slots.join("esp/loader/entries/cowork-b+3.conf").exists());
    let page = c.get("/updates").await;
    assert!(page.body.contains("version 6"), "{}", page.body);
    let uploads = i.dir.path().join("state/upload");
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "uploads removed after the apply");
    let trail = ctl_ok(&i, &["audit", "tail", "-n", "50", "--json"]);
    assert!(trail.contains("admin.update_uploaded") && trail.contains("update.applied"));
    assert!(
        trail.contains("admin-page"),
        "the supervisor names the admin page as the actor"
    );
    i.stop();
}

/// Issue 15: the page alone sets the running appliance up. A key stored on
/// the credentials form reaches the vault through the supervisor (never shown
/// again, never in the trail); a channel added and an agent configured on the
/// settings forms are validated, written to the owner's file and applied (the
/// gateway restarts with them); a refused form writes nothing; the trail names
/// the admin page as the actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_the_page_apply_to_the_running_appliance() {
    let mut i = Instance::start();
    let url = info(&i)["urls"][0]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let der = served_der(&url);
    let token = ctl_ok(&i, &["admin", "setup-token"]).trim().to_string();
    let mut c = admin_common::Client::new(&url, &der);
    c.setup(&token, PASSWORD).await;
    assert_eq!(c.login(PASSWORD).await.status, 303);

    // A provider key, write-only.
    let key = "sk-test-0123456789abcdefghij-page";
    let r = c
        .submit(
            "/settings/credentials",
            "/settings/credentials/set",
            &[("name", "llm_key"), ("value", key)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let listed = ctl_ok(&i, &["secret", "list"]);
    assert!(listed.contains("llm_key"), "{listed}");
    assert!(!c.get("/settings/credentials").await.body.contains(key));

    // A channel, added on the page, usable at once.
    let page = c.get("/settings/channels").await;
    let version = admin_common::extract(&page.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/channels/add",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("name", "extra"),
                ("kind", "none"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let code = ctl_ok(&i, &["pair", "new", "--channel", "extra"]);
    assert!(code.contains("pairing code for extra"), "{code}");

    // The agent: a refused form first (no price for the model), nothing written.
    let owner = i.dir.path().join("state/settings/owner.toml");
    let before = std::fs::read_to_string(&owner).unwrap();
    let page = c.get("/settings/agent").await;
    let version = admin_common::extract(&page.body, "name=\"version\" value=\"").unwrap();
    let r = c
        .post(
            "/settings/agent",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:agent.provider", "openai"),
                ("v:agent.model", "m"),
                ("v:agent.base_url", "http://127.0.0.1:9/v1"),
                ("v:agent.secret_name", "llm_key"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("no price"), "{}", r.body);
    assert_eq!(std::fs::read_to_string(&owner).unwrap(), before);
    let r = c
        .post(
            "/settings/agent",
            &[
                ("csrf", &page.csrf()),
                ("version", &version),
                ("v:agent.provider", "openai"),
                ("v:agent.model", "m"),
                ("v:agent.base_url", "http://127.0.0.1:9/v1"),
                ("v:agent.secret_name", "llm_key"),
                ("other_key", "agent.prices.m"),
                (
                    "other_value",
                    "{ input_usd_per_mtok = 0.0, output_usd_per_mtok = 0.0 }",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = c.get("/settings/agent").await;
    assert!(page.body.contains("restarted: gateway"), "{}", page.body);
    let shown = ctl_ok(&i, &["settings", "show", "agent"]);
    assert!(shown.contains("agent.model = \"m\""), "{shown}");
    // The tasks page now asks the configured runtime (no "no LLM provider").
    let tasks = c.get("/tasks").await;
    assert!(!tasks.body.contains("no LLM provider"), "{}", tasks.body);

    // The supervisor's entries reach the trail through its queue: wait for both.
    let changed = common::wait_until(
        std::time::Duration::from_secs(10),
        "two settings.changed entries",
        || {
            let trail = ctl_ok(&i, &["audit", "tail", "-n", "500", "--json"]);
            assert!(!trail.contains(key), "a secret value reached the trail");
            let changed: Vec<serde_json::Value> = trail
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|e| e["kind"] == "settings.changed")
                .collect();
            (changed.len() == 2).then_some(changed)
        },
    );
    assert!(
        changed.iter().all(|e| e["actor"] == "admin-page"),
        "{changed:?}"
    );
    i.stop();
}
