//! The signed update feed (issue 24) on a dev daemon with file-backed slots:
//! `coworkctl update publish` writes a feed beside the bundles, a loopback
//! HTTPS server serves the directory, `coworkctl update check` finds the new
//! version (exit 1) and `update apply URL` installs exactly the bundle the
//! feed describes. An expired feed, a replayed older feed, a feed signed by
//! an unknown key, a bundle whose hash is not the feed's and a server that
//! streams forever are each refused (exit 2, the reason in one sentence)
//! with nothing written: no slot, no feed version remembered.

#![allow(clippy::unwrap_used)]

mod common;
mod https_fixture;
mod update_common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, Uri};
use common::{COWORKCTL, DEV_CONFIG, Instance};
use cowork::update::feed::{FEED_STATE_FILE, Feed, FeedState, SignedFeed, sign};
use update_common::{daemon_slots, data, pattern};

/// What the server answers for a path.
#[derive(Clone)]
enum Served {
    Bytes(Vec<u8>),
    /// Zeros, forever.
    Endless,
}

type Files = Arc<Mutex<HashMap<String, Served>>>;

fn serve(rt: &tokio::runtime::Runtime, files: Files) -> (String, Vec<u8>) {
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let files = files.clone();
        async move {
            let served = files.lock().unwrap().get(uri.path()).cloned();
            match served {
                Some(Served::Bytes(b)) => (StatusCode::OK, Body::from(b)),
                Some(Served::Endless) => {
                    let chunks = futures_util::stream::repeat_with(|| {
                        Ok::<_, std::io::Error>(Bytes::from_static(&[0u8; 64 * 1024]))
                    });
                    (StatusCode::OK, Body::from_stream(chunks))
                }
                None => (StatusCode::NOT_FOUND, Body::empty()),
            }
        }
    });
    rt.block_on(https_fixture::serve(app))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(COWORKCTL).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pack(work: &Path, version: u64, out: &str) -> PathBuf {
    std::fs::write(work.join("root.img"), pattern(200 * 1024, version)).unwrap();
    std::fs::write(work.join("vmlinuz"), format!("kernel {version}")).unwrap();
    std::fs::write(work.join("initrd"), format!("initrd {version}")).unwrap();
    let s = |p: &str| work.join(p).display().to_string();
    let (rc, o, e) = run(&[
        "update",
        "pack",
        "--payload",
        &s("root.img"),
        "--kernel",
        &s("vmlinuz"),
        "--initrd",
        &s("initrd"),
        "--version",
        &version.to_string(),
        "--label",
        &format!("2026.12.{version}"),
        "--key",
        &data("test-signing-key.pem").display().to_string(),
        "--out",
        &s(out),
    ]);
    assert_eq!(rc, 0, "{o}{e}");
    work.join(out)
}

fn publish(out: &Path, key: &str, bundles: &[&Path]) -> (i32, String, String) {
    let mut args = vec![
        "update".to_string(),
        "publish".into(),
        "--out".into(),
        out.display().to_string(),
        "--key".into(),
        data(key).display().to_string(),
    ];
    args.extend(bundles.iter().map(|b| b.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

/// `update check --json`: exit status and the JSON.
fn check(i: &Instance) -> (i32, serde_json::Value) {
    let out = i.ctl(&["update", "check", "--json"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn seen_version(slots: &Path) -> u64 {
    FeedState::load(&slots.join("state"))
        .unwrap()
        .seen_feed_version
}

/// The feed as published, signed part decoded (to craft hostile variants).
fn feed_of(dir: &Path) -> Feed {
    let env: SignedFeed =
        serde_json::from_slice(&std::fs::read(dir.join("feed.json")).unwrap()).unwrap();
    serde_json::from_str(&env.signed).unwrap()
}

fn signed_with(feed: &Feed, key_pem: &str) -> Vec<u8> {
    let key = cowork::update::load_signing_key(&data(key_pem)).unwrap();
    serde_json::to_vec(&sign(&serde_json::to_string(feed).unwrap(), &key)).unwrap()
}

#[test]
fn a_feed_is_published_checked_and_its_bundle_installed_and_every_attack_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    let slots = d.join("slots");
    let slot_lines = daemon_slots(&slots, &pattern(256 * 1024, 1), 5);
    let work = d.join("work");
    let site = d.join("site");
    std::fs::create_dir_all(&work).unwrap();
    let v4 = pack(&work, 4, "cowork-4.cwu");
    let v6 = pack(&work, 6, "cowork-6.cwu");

    // Publish: the feed and the bundles in one directory; publishing again
    // raises the feed version.
    let (rc, out, err) = publish(&site, "test-signing-key.pem", &[&v4, &v6]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("2 bundle(s) (newest version 6)"), "{out}");
    assert!(site.join("cowork-6.cwu").is_file() && site.join("cowork-4.cwu").is_file());
    let first_feed = std::fs::read(site.join("feed.json")).unwrap();
    let first_version = feed_of(&site).feed_version;
    let (rc, _, _) = publish(&site, "test-signing-key.pem", &[&v4, &v6]);
    assert_eq!(rc, 0);
    let current = feed_of(&site);
    assert!(current.feed_version > first_version);

    // Publishing refuses what it cannot vouch for, writing nothing.
    let elsewhere = d.join("elsewhere");
    for (key, bundles, why) in [
        ("test-signing-key.pub", vec![v6.as_path()], "key"),
        (
            "test-signing-key.pem",
            vec![work.join("root.img").as_path()],
            "not a CoWork update bundle",
        ),
    ] {
        let (rc, _, err) = publish(&elsewhere, key, &bundles);
        assert_eq!(rc, 1, "{err}");
        assert!(err.contains(why), "{err}");
        assert!(!elsewhere.join("feed.json").exists());
    }
    let (rc, _, err) = run(&["update", "publish", "--out", "x", "--key", "k"]);
    assert_eq!(rc, 64, "{err}");

    let files: Files = Arc::new(Mutex::new(HashMap::new()));
    let put = |path: &str, s: Served| files.lock().unwrap().insert(path.to_string(), s);
    for name in ["feed.json", "cowork-4.cwu", "cowork-6.cwu"] {
        put(
            &format!("/{name}"),
            Served::Bytes(std::fs::read(site.join(name)).unwrap()),
        );
    }
    let (base, ca_pem) = serve(&rt, files.clone());
    let at = |path: &str| format!("{base}{path}");
    let ca = d.join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let config = format!(
        "{DEV_CONFIG}[update]\nmax_bundle_bytes = 10000000\nfeed_url = \"{}\"\nca_file = \"{}\"\n{slot_lines}",
        at("/feed.json"),
        ca.display()
    );
    let mut i = Instance::start_with(&config, &[], &[]);
    i.wait_notification("READY=1", std::time::Duration::from_secs(20));
    let slot_b = || std::fs::read(slots.join("slot-b.img")).unwrap();

    // Each attack: exit 2, the reason, nothing remembered, nothing written.
    let refused = |i: &Instance, why: &str| {
        let before = seen_version(&slots);
        let (rc, v) = check(i);
        assert_eq!(rc, 2, "{v:#}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "wanted {why:?}: {v:#}");
        assert_eq!(
            seen_version(&slots),
            before,
            "{why}: a refused feed raised the version"
        );
        assert_eq!(slot_b(), b"old", "{why}: a slot was written");
        let out = i.ctl(&["update", "check"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(why));
    };
    let mut stale = current.clone();
    stale.expires_at = 1_000_000;
    put(
        "/feed.json",
        Served::Bytes(signed_with(&stale, "test-signing-key.pem")),
    );
    refused(&i, "expired");
    put(
        "/feed.json",
        Served::Bytes(signed_with(&current, "other-signing-key.pem")),
    );
    refused(&i, "signed by no trusted key");
    put("/feed.json", Served::Endless);
    refused(&i, "cut off");
    put("/feed.json", Served::Bytes(b"{\"signed\": ".to_vec()));
    refused(&i, "not a signed feed");

    // The current feed: version 6 is offered (exit 1), and remembered.
    put(
        "/feed.json",
        Served::Bytes(std::fs::read(site.join("feed.json")).unwrap()),
    );
    let (rc, v) = check(&i);
    assert_eq!(rc, 1, "{v:#}");
    assert_eq!(v["newest_version"], 6);
    assert_eq!(v["running_version"], 5);
    assert_eq!(v["installable"], true);
    let url = v["bundle_url"].as_str().unwrap().to_string();
    assert_eq!(url, at("/cowork-6.cwu"));
    assert_eq!(seen_version(&slots), current.feed_version);
    let text = String::from_utf8_lossy(&i.ctl(&["update", "check"]).stdout).into_owned();
    assert!(
        text.contains(&format!("coworkctl update apply {url}")),
        "{text}"
    );
    // The doctor says so too.
    let doctor: serde_json::Value =
        serde_json::from_slice(&i.ctl(&["doctor", "--json"]).stdout).unwrap();
    let feed_check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "updates.feed")
        .unwrap()
        .clone();
    assert_eq!(feed_check["status"], "warn", "{feed_check}");
    assert!(
        feed_check["message"]
            .as_str()
            .unwrap()
            .contains("version 6 is available")
    );

    // Replayed: the older feed, validly signed, is refused now.
    put("/feed.json", Served::Bytes(first_feed));
    refused(&i, "replayed");
    put(
        "/feed.json",
        Served::Bytes(std::fs::read(site.join("feed.json")).unwrap()),
    );
    assert_eq!(check(&i).0, 1);

    // A bundle that is not the one the feed describes: another validly signed
    // bundle (mix-and-match), then one that never ends. Nothing is written.
    put("/cowork-6.cwu", Served::Bytes(std::fs::read(&v4).unwrap()));
    let out = i.ctl(&["update", "apply", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not match the update feed"),
        "{err}"
    );
    assert_eq!(slot_b(), b"old");
    put("/cowork-6.cwu", Served::Endless);
    let out = i.ctl(&["update", "apply", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cut off"), "{err}");
    assert_eq!(slot_b(), b"old");
    let incoming = slots.join("state/incoming");
    assert!(
        std::fs::read_dir(&incoming).map_or(true, |mut d| d.next().is_none()),
        "a refused download was left in {}",
        incoming.display()
    );

    // The real bundle installs into slot B.
    put(
        "/cowork-6.cwu",
        Served::Bytes(std::fs::read(site.join("cowork-6.cwu")).unwrap()),
    );
    let out = i.ctl(&["update", "apply", &url]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(slot_b(), b"old");
    let entries: Vec<String> = std::fs::read_dir(slots.join("esp/loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.iter().any(|e| e.starts_with("cowork-b+")),
        "{entries:?}"
    );
    // Installed: nothing newer than the floor is offered any more.
    let (rc, v) = check(&i);
    assert_eq!(
        (rc, &v["installable"]),
        (0, &serde_json::json!(false)),
        "{v:#}"
    );

    // Every check is in the trail.
    let kinds: Vec<String> = i
        .audit_tail(&[])
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "update.checked"), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k == "update.check_failed"),
        "{kinds:?}"
    );
    assert!(slots.join("state").join(FEED_STATE_FILE).is_file());
}

#[test]
fn without_a_feed_the_check_says_so() {
    let mut i = Instance::start_with(DEV_CONFIG, &[], &[]);
    i.wait_notification("READY=1", std::time::Duration::from_secs(20));
    let out = i.ctl(&["update", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no update feed is configured"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
