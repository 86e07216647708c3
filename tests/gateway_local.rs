//! The gateway wired into the running appliance: the `local` channel
//! (`coworkctl chat`) under the same pairing rules as every channel, and
//! `coworkctl pair|users` through the supervisor to the gateway. Covers: unknown
//! sender → one pairing prompt; code issued → redeemed once → messages accepted;
//! a reused or wrong code refused; revoke → silence; forget → may pair again; bad
//! channel names, TTLs out of range and oversized messages refused with a clear
//! error and nothing changed; codes never in the state directory or the audit
//! trail; every step in the audit trail; pairings survive a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{DEV_CONFIG, Instance};

use common::succeeded as ok;

fn chat(i: &Instance, text: &str) -> String {
    ok(&i.ctl(&["chat", text]))
}

fn new_code(i: &Instance, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["pair", "new", "--channel", "local", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&i.ctl(&args))).unwrap()
}

fn users(i: &Instance) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&ok(&i.ctl(&["users", "list", "--json"])))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn audit_kinds(i: &Instance) -> Vec<serde_json::Value> {
    let out = ok(&i.ctl(&["audit", "tail", "-n", "200", "--json"]));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn grep_dir(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn local_channel_pairing_end_to_end() {
    let i = Instance::start();
    let me = nix::unistd::getuid().as_raw();

    // Unknown sender: one prompt per window, then silence.
    assert!(chat(&i, "hello").contains("requires pairing"));
    assert_eq!(chat(&i, "hello again").trim(), "");
    // A wrong code counts as a failure and says nothing useful.
    assert!(chat(&i, "/pair ABCDEFGH").contains("invalid or has expired"));

    let code = new_code(&i, &[]);
    let code_text = code["code"].as_str().unwrap().to_string();
    assert_eq!(code["channel"], "local");
    assert!(code_text.len() >= 8, "{code}");
    let listed = ok(&i.ctl(&["pair", "list", "--json"]));
    assert!(listed.contains("\"local\""), "{listed}");
    assert!(!listed.contains(&code_text), "codes are never listed");

    assert!(chat(&i, &format!("/pair {code_text}")).contains("Paired"));
    assert!(chat(&i, "what's the weather").contains("no LLM provider is configured"));
    // Single use: nobody can use it again (a second sender is simulated by
    // revoking and forgetting ourselves).
    let u = users(&i);
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(u[0]["sender"], format!("uid:{me}"));
    assert_eq!(u[0]["state"], "paired");
    assert!(ok(&i.ctl(&["pair", "list", "--json"])).trim() == "[]");

    // The code is nowhere on disk, nor in the trail.
    assert!(
        grep_dir(&i.dir.path().join("state"), code_text.as_bytes()).is_empty(),
        "pairing code stored in plaintext"
    );
    let entries = audit_kinds(&i);
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(&code_text));
    assert!(entries.iter().any(|e| e["kind"] == "pairing.issued"));
    assert!(entries.iter().any(|e| e["kind"] == "gateway.message"));
    for reason in ["invalid_code", "paired"] {
        assert!(
            entries
                .iter()
                .any(|e| e["kind"] == "gateway.pairing" && e["payload"]["reason"] == reason),
            "no gateway.pairing {reason} in the trail"
        );
    }
    assert!(
        !text.contains("what's the weather"),
        "message text in the trail"
    );

    // Pairings survive a restart.
    let i = i.restart();
    assert!(chat(&i, "still there?").contains("no LLM provider is configured"));

    // Revoke: silence, and a new code does not help; forget lets them pair again.
    ok(&i.ctl(&[
        "users",
        "revoke",
        "--channel",
        "local",
        &format!("uid:{me}"),
    ]));
    assert_eq!(chat(&i, "hello?").trim(), "");
    let again = new_code(&i, &[]);
    let reply = chat(&i, &format!("/pair {}", again["code"].as_str().unwrap()));
    assert_eq!(
        reply.trim(),
        "",
        "a revoked sender is denied before redemption"
    );
    ok(&i.ctl(&[
        "users",
        "forget",
        "--channel",
        "local",
        &format!("uid:{me}"),
    ]));
    let third = new_code(&i, &["--ttl", "60"]);
    assert!(chat(&i, &format!("/pair {}", third["code"].as_str().unwrap())).contains("Paired"));

    // Issuing a new code revokes the previous one ("rotate pairing codes").
    let a = new_code(&i, &[]);
    let b = new_code(&i, &[]);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&i.ctl(&["pair", "list", "--json"]))).unwrap();
    let ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, vec![b["id"].clone()], "old code {a} still active");
    ok(&i.ctl(&["pair", "cancel", "--all"]));
    assert_eq!(ok(&i.ctl(&["pair", "list", "--json"])).trim(), "[]");

    // revoke-all needs --yes; then everyone is out.
    assert!(!i.ctl(&["users", "revoke-all"]).status.success());
    ok(&i.ctl(&["users", "revoke-all", "--yes"]));
    assert!(users(&i).iter().all(|u| u["state"] == "revoked"));
    // The gateway queues its entries (the command does not wait for them to
    // be durable): wait for the last one instead of reading once.
    let kinds = common::wait_until(
        Duration::from_secs(10),
        "user.revoked_all in the trail",
        || {
            let kinds = audit_kinds(&i);
            kinds
                .iter()
                .any(|e| e["kind"] == "user.revoked_all")
                .then_some(kinds)
        },
    );
    for kind in [
        "user.revoked",
        "user.forgotten",
        "user.revoked_all",
        "pairing.cancelled_all",
    ] {
        assert!(
            kinds.iter().any(|e| e["kind"] == kind),
            "no {kind} in the trail"
        );
    }
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let i = Instance::start();
    for args in [
        &["pair", "new", "--channel", "nope"][..],
        &["pair", "new", "--channel", "local", "--ttl", "5"],
        &["pair", "new", "--channel", "local", "--ttl", "3601"],
        &["pair", "new", "--channel", "../../etc"],
        &["pair", "cancel", "99999"],
        &["users", "forget", "--channel", "local", "uid:424242"],
        &["users", "revoke", "--channel", "nope", "x"],
    ] {
        let out = i.ctl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: no reason given");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Oversized and NUL-carrying messages: refused with a reason.
    let big = "x".repeat(70 * 1024);
    let out = i.ctl(&["chat", &big]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = i.ctl_with_input(&["chat"], b"bad\0line\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(ok(&i.ctl(&["pair", "list", "--json"])).trim(), "[]");
    assert!(users(&i).is_empty());
    // The gateway is still up and answering.
    assert!(chat(&i, "hi").contains("requires pairing"));
    // Revoking a sender the channel never saw is refused and records nothing
    // (issue 19: a typo must not look like a revocation that worked).
    let out = i.ctl(&["users", "revoke", "--channel", "local", "uid:424242"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(users(&i).is_empty());
}

#[test]
fn production_refuses_an_open_local_channel() {
    let config = format!("{DEV_CONFIG}[channels.local]\ndm = \"open\"\n")
        .replace("profile = \"development\"", "profile = \"production\"");
    let out = std::process::Command::new(common::COWORKD)
        .arg("check-config")
        .arg("--config")
        .arg({
            let d = tempfile::tempdir().unwrap().keep();
            let p = d.join("c.toml");
            std::fs::write(&p, config).unwrap();
            p
        })
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("open mode"));
}
