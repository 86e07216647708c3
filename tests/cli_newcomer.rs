//! The command line as a newcomer meets it (issue 19), against real coworkd
//! instances in development mode: `coworkctl` gives up in seconds when the
//! daemon is down, whatever the command (update included); `update pack --out`
//! with a bare file name; a second coworkd on the same directories is refused
//! and leaves the first running; `secret rotate-master` cancels outstanding
//! pairing codes visibly; a paired user's `/pair CODE` never reaches the
//! model and cancels the code; usage errors exit 64 and `--help` lists the exit
//! codes; `status` names what is degraded; unknown channels and senders are
//! refused by `users`; pairing lockouts are told and can be cleared.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{COWORKCTL, COWORKD, Instance};

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn audit(i: &Instance) -> Vec<serde_json::Value> {
    ok(&i.ctl(&["audit", "tail", "-n", "500", "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pair_me(i: &Instance) -> String {
    let code = json(&i.ctl(&["pair", "new", "--channel", "local", "--json"]));
    let reply = ok(&i.ctl(&["chat", &format!("/pair {}", code["code"].as_str().unwrap())]));
    assert!(reply.contains("Paired"), "{reply}");
    format!("uid:{}", nix::unistd::getuid().as_raw())
}

/// Bug 1: `update status` and `update apply` used to retry a refused
/// connection for an hour; every command now gives up within seconds.
#[test]
fn every_command_gives_up_quickly_when_the_daemon_is_down() {
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    // A socket file nobody listens on: connection refused, not "no such file".
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("control.sock")).unwrap());
    let bundle = dir.path().join("b.cwu");
    std::fs::write(&bundle, b"x").unwrap();
    let bundle = bundle.display().to_string();
    for args in [
        vec!["status"],
        vec!["update", "status"],
        vec!["update", "apply", &bundle],
        vec!["audit", "verify"],
        vec!["pair", "list"],
    ] {
        let t = Instant::now();
        let out = Command::new(COWORKCTL)
            .arg("--runtime-dir")
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let took = t.elapsed();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unreachable"), "{args:?}: {err}");
        assert!(!err.contains("os error"), "errno shown to people: {err}");
    }
}

/// Bug 2: a bare `--out` file name (its parent is the empty path) used to
/// write the bundle and then fail.
#[test]
fn update_pack_accepts_a_bare_file_name() {
    let work = tempfile::tempdir().unwrap();
    for (f, body) in [
        ("root.img", "root"),
        ("vmlinuz", "kernel"),
        ("initrd", "initrd"),
    ] {
        std::fs::write(work.path().join(f), body).unwrap();
    }
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/update/test-signing-key.pem");
    let out = Command::new(COWORKCTL)
        .current_dir(work.path())
        .args([
            "update",
            "pack",
            "--payload",
            "root.img",
            "--kernel",
            "vmlinuz",
            "--initrd",
            "initrd",
            "--version",
            "7",
            "--key",
        ])
        .arg(&key)
        .args(["--out", "b.cwu"])
        .output()
        .unwrap();
    ok(&out);
    assert!(work.path().join("b.cwu").is_file());
    let pubkey = key.with_extension("pub");
    let keys = tempfile::tempdir().unwrap();
    std::fs::copy(&pubkey, keys.path().join("test.pub")).unwrap();
    let verify = Command::new(COWORKD)
        .current_dir(work.path())
        .args(["update", "verify", "--keys"])
        .arg(keys.path())
        .args(["--state", "none", "--current-version", "1", "b.cwu"])
        .output()
        .unwrap();
    ok(&verify);
}

/// Bug 3: a second coworkd on the same runtime directory used to take over
/// the sockets and, on exit, stop the first one's audit component.
#[test]
fn a_second_instance_on_the_same_directories_is_refused() {
    let i = Instance::start();
    let audit_pid = i.pid_of("audit").unwrap();
    let t = Instant::now();
    let out = Command::new(COWORKD)
        .arg("--config")
        .arg(Instance::config_path(i.dir.path()))
        .arg("--state-dir")
        .arg(i.dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(i.runtime_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(t.elapsed() < Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("another coworkd (pid {})", i.child.id())),
        "{err}"
    );
    assert!(err.contains("already running"), "{err}");
    // The first instance is untouched.
    assert_eq!(i.pid_of("audit"), Some(audit_pid));
    assert_eq!(i.ctl(&["status"]).status.code(), Some(0));
    assert!(common::alive(audit_pid));
}

/// Bug 4: rotating the master key used to leave outstanding codes listed but
/// unredeemable; they are now cancelled, and the answer says so.
#[test]
fn rotate_master_cancels_pairing_codes_visibly() {
    let i = Instance::start();
    json(&i.ctl(&["pair", "new", "--channel", "local", "--json"]));
    let out = ok(&i.ctl(&["secret", "rotate-master"]));
    assert!(
        out.contains("1 pairing code cancelled") && out.contains("coworkctl pair new"),
        "{out}"
    );
    assert_eq!(
        json(&i.ctl(&["pair", "list", "--json"])),
        serde_json::json!([])
    );
    assert!(
        audit(&i)
            .iter()
            .any(|e| e["kind"] == "pairing.cancelled_all" && e["payload"]["codes"] == 1)
    );
    // A code issued after the rotation pairs at once.
    pair_me(&i);
    // --json: the same facts.
    json(&i.ctl(&["pair", "new", "--channel", "local", "--json"]));
    let v = json(&i.ctl(&["secret", "rotate-master", "--json"]));
    assert_eq!(v["pairing_codes_cancelled"], 1, "{v}");
    assert_eq!(v["secrets"], 0, "{v}");
}

/// Bug 5: a paired user's `/pair CODE` used to go to the model as a message,
/// with the code left active.
#[test]
fn a_paired_users_code_is_answered_and_cancelled() {
    let i = Instance::start();
    pair_me(&i);
    let code = json(&i.ctl(&["pair", "new", "--channel", "local", "--json"]));
    let code = code["code"].as_str().unwrap().to_string();
    for message in [format!("/pair {code}"), code.clone()] {
        let reply = ok(&i.ctl(&["chat", &message]));
        assert!(reply.contains("already paired"), "{reply}");
        assert!(!reply.contains("LLM"), "went to the agent: {reply}");
    }
    assert_eq!(
        json(&i.ctl(&["pair", "list", "--json"])),
        serde_json::json!([])
    );
    let entries = audit(&i);
    assert!(entries.iter().any(|e| e["kind"] == "gateway.pairing"
        && e["payload"]["reason"] == "already_authorized_code_cancelled"));
    assert!(
        entries
            .iter()
            .all(|e| !e["kind"].as_str().unwrap().starts_with("task."))
    );
    assert!(!serde_json::to_string(&entries).unwrap().contains(&code));
}

/// Bug 8: usage errors exit 64 in both binaries (2 means "unreachable"), and
/// `--help` documents every exit code.
#[test]
fn usage_errors_exit_64_and_help_lists_exit_codes() {
    for (bin, args) in [
        (COWORKCTL, vec!["bogus"]),
        (COWORKCTL, vec!["status", "--bogus"]),
        (COWORKCTL, vec!["pair", "new"]),
        (COWORKD, vec!["--bogus"]),
        (COWORKD, vec!["check-config", "a", "b"]),
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "{bin} {args:?}: {}",
            text(&out)
        );
    }
    for bin in [COWORKCTL, COWORKD] {
        let help = ok(&Command::new(bin).arg("--help").output().unwrap());
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("64"), "{help}");
    }
    let help = ok(&Command::new(COWORKCTL).arg("--help").output().unwrap());
    assert!(help.contains("2   coworkd unreachable"), "{help}");
    let help = ok(&Command::new(COWORKD).arg("--help").output().unwrap());
    for code in ["125", "126", "127"] {
        assert!(help.contains(code), "{help}");
    }
}

/// Item 13: an unknown channel or sender is refused by every `users` command,
/// and a refused revocation records nothing.
#[test]
fn users_refuse_unknown_channels_and_senders() {
    let i = Instance::start();
    let out = i.ctl(&["users", "list", "--channel", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no channel named \"nope\""));
    let out = i.ctl(&["users", "revoke", "--channel", "local", "uid:4242"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no user \"uid:4242\" on local; nothing was changed"),
        "{err}"
    );
    assert_eq!(
        json(&i.ctl(&["users", "list", "--json"])),
        serde_json::json!([])
    );
    // A known one: revoked, in words without "(s)".
    let me = pair_me(&i);
    let out = ok(&i.ctl(&["users", "revoke", "--channel", "local", &me]));
    assert!(
        out.starts_with("1 user revoked; 0 tasks cancelled"),
        "{out}"
    );
}

fn is_rfc3339_utc(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.ends_with('Z')
            && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_ok()
    })
}

/// Item 9: every command that prints data takes --json, with times in one
/// form (RFC 3339, UTC); `update status` without --json is text.
#[test]
fn json_everywhere_with_rfc3339_times() {
    let i = Instance::start();
    let token = json(&i.ctl(&["admin", "setup-token", "--json"]));
    assert!(
        token["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{token}"
    );
    let code = json(&i.ctl(&["pair", "new", "--channel", "local", "--json"]));
    assert!(is_rfc3339_utc(&code["expires_at"]), "{code}");
    let list = json(&i.ctl(&["pair", "list", "--json"]));
    assert!(is_rfc3339_utc(&list[0]["issued_at"]), "{list}");
    assert!(is_rfc3339_utc(&list[0]["expires_at"]), "{list}");
    let reply = json(&i.ctl(&[
        "chat",
        "--json",
        &format!("/pair {}", code["code"].as_str().unwrap()),
    ]));
    assert!(
        reply["replies"][0].as_str().unwrap().contains("Paired"),
        "{reply}"
    );
    let inbox = json(&i.ctl(&["chat", "--inbox", "--json"]));
    assert!(inbox["replies"].is_array(), "{inbox}");
    let users = json(&i.ctl(&["users", "list", "--json"]));
    assert!(is_rfc3339_utc(&users[0]["since"]), "{users}");
    let rotated = json(&i.ctl(&["secret", "rotate-master", "--json"]));
    assert_eq!(rotated["secrets"], 0);
    let info = json(&i.ctl(&["admin", "info", "--json"]));
    assert!(is_rfc3339_utc(&info["not_after"]), "{info}");
    // Not on the appliance image: refused in words, not JSON, exit 1.
    let out = i.ctl(&["update", "status"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout)
            .trim_start()
            .starts_with('{'),
        "{}",
        text(&out)
    );
}

/// Item 11: messages for people carry no Rust syntax or errno numbers.
#[test]
fn messages_are_plain_sentences() {
    let i = Instance::start();
    let out = i.ctl(&["pair", "new", "--channel", "local", "--ttl", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("from 60 to 3600 seconds"), "{err}");
    assert!(!err.contains("..="), "{err}");
    let out = Command::new(COWORKD)
        .args(["check-config", "/nonexistent/coworkd.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("/nonexistent/coworkd.toml: cannot read: No such file or directory"),
        "{err}"
    );
    assert!(!err.contains(":0:0") && !err.contains("os error"), "{err}");
    let verified = ok(&i.ctl(&["audit", "verify"]));
    assert!(!verified.contains("..="), "{verified}");
    let log = i.log();
    assert!(!log.contains("Some("), "Option shown in the log: {log}");
}

/// Item 6: the guess that locks a sender out is told pairing is paused and
/// until when (later ones get nothing); the owner lists and lifts lockouts.
#[test]
fn pairing_lockouts_are_told_listed_and_cleared() {
    let i = Instance::start();
    let me = format!("uid:{}", nix::unistd::getuid().as_raw());
    let code = json(&i.ctl(&["pair", "new", "--channel", "local", "--json"]));
    let code = code["code"].as_str().unwrap().to_string();
    let wrong = if code == "ABCDEFGH" {
        "ABCDEFGJ"
    } else {
        "ABCDEFGH"
    };
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(ok(&i.ctl(&["chat", &format!("/pair {wrong}")])));
    }
    for r in &replies[..4] {
        assert!(
            r.contains("invalid or has expired") && !r.contains("paused"),
            "{r}"
        );
    }
    assert!(
        replies[4].contains("Pairing is paused for you until 20"),
        "{}",
        replies[4]
    );
    assert!(replies[4].contains(" UTC."), "{}", replies[4]);
    assert_eq!(replies[5].trim(), "", "told once");
    let list = json(&i.ctl(&["pair", "lockouts", "--json"]));
    assert_eq!(list[0]["channel"], "local", "{list}");
    assert_eq!(list[0]["sender"], me.as_str(), "{list}");
    assert!(list[0]["until"].as_str().unwrap().ends_with('Z'), "{list}");
    let text_list = ok(&i.ctl(&["pair", "lockouts"]));
    assert!(text_list.contains(&me), "{text_list}");
    let out = ok(&i.ctl(&[
        "pair",
        "lockouts",
        "clear",
        "--channel",
        "local",
        "--sender",
        &me,
    ]));
    assert_eq!(out.trim(), "1 lockout lifted");
    assert_eq!(
        json(&i.ctl(&["pair", "lockouts", "--json"])),
        serde_json::json!([])
    );
    assert!(ok(&i.ctl(&["chat", &format!("/pair {code}")])).contains("Paired"));
    assert!(
        audit(&i)
            .iter()
            .any(|e| e["kind"] == "pairing.lockouts_cleared" && e["payload"]["lockouts"] == 1)
    );
    // --sender alone is a usage error.
    assert_eq!(
        i.ctl(&["pair", "lockouts", "clear", "--sender", &me])
            .status
            .code(),
        Some(64)
    );
}

/// Item 7: a workspace the sandbox user cannot enter is refused up front, in
/// words that say how to fix it (exit 125), not `/bin/echo: Permission denied`.
#[test]
fn sandbox_exec_checks_the_workspace_first() {
    use std::os::unix::fs::PermissionsExt;
    let ws = tempfile::tempdir().unwrap();
    // As root the command runs as the sandbox user: a root-owned 0700
    // directory is closed to it. Otherwise the caller's own 0000 directory is.
    let mode = if nix::unistd::geteuid().is_root() {
        0o700
    } else {
        0o000
    };
    std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    let out = Command::new(COWORKD)
        .args(["sandbox", "exec", "--workspace"])
        .arg(ws.path())
        .args(["--", "/bin/echo", "hi"])
        .output()
        .unwrap();
    std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be entered, read and written by uid"),
        "{err}"
    );
    assert!(err.contains("chown"), "{err}");
    assert!(!err.contains("Permission denied"), "{err}");
    let missing = Command::new(COWORKD)
        .args([
            "sandbox",
            "exec",
            "--workspace",
            "/nonexistent/ws",
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("cannot resolve workspace \"/nonexistent/ws\": No such file or directory")
    );
}

/// Item 14: `make run` prints the admin page's configured address, not 8443
/// whatever the configuration says.
#[test]
fn make_run_prints_the_configured_admin_address() {
    if Command::new("make").arg("--version").output().is_err() {
        println!("SKIPPED: make is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dev.toml");
    std::fs::write(
        &config,
        "profile = \"development\"\n[admin]\nlisten = [\"127.0.0.1\"]\nport = 9555\n",
    )
    .unwrap();
    let out = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-s", "--no-print-directory", "admin-url"])
        .arg(format!("COWORKD_BIN={COWORKD}"))
        .arg(format!("DEV_CONFIG={}", config.display()))
        .arg(format!("COWORK_DIR={}", dir.path().display()))
        .output()
        .unwrap();
    let said = ok(&out);
    assert!(said.contains("https://127.0.0.1:9555/"), "{said}");
}
