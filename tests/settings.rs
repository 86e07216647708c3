//! The owner's settings (issue 15): `coworkctl settings show/set/unset` through
//! the supervisor, the file on the data partition, validation before anything
//! is written, reload that really applies (a channel added, an agent provider
//! configured, without restarting coworkd), versions that refuse a stale edit,
//! settings that survive a restart, settings that no longer validate left out
//! and shown, and a supervisor killed mid-save leaving the old or the new file.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::{DEV_CONFIG, Instance};

use common::succeeded as ok;

/// A refused change: exit 1, the reason on stderr.
fn refused(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn owner_file(i: &Instance) -> PathBuf {
    i.dir.path().join("state/settings/owner.toml")
}

fn show(i: &Instance) -> serde_json::Value {
    serde_json::from_str(&ok(&i.ctl(&["settings", "show", "--json"]))).unwrap()
}

/// (value, origin) of `key` in `settings show --json`.
fn value_of(i: &Instance, key: &str) -> (String, String) {
    let view = show(i);
    let v = view["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("{key} not in settings show"))
        .clone();
    (
        v["value"].as_str().unwrap().to_string(),
        v["origin"].as_str().unwrap().to_string(),
    )
}

fn audit(i: &Instance, kind: &str) -> Vec<serde_json::Value> {
    ok(&i.ctl(&["audit", "tail", "-n", "500", "--json"]))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// Exactly `n` entries of `kind`, once the supervisor's queue has delivered them.
fn audited(i: &Instance, kind: &str, n: usize) -> Vec<serde_json::Value> {
    common::wait_until(Duration::from_secs(10), kind, || {
        let entries = audit(i, kind);
        (entries.len() == n).then_some(entries)
    })
}

fn start(extra: &str) -> Instance {
    let mut i = Instance::start_with(&format!("{DEV_CONFIG}{extra}"), &[], &[]);
    i.wait_notification("READY=1", Duration::from_secs(20));
    i
}

#[test]
fn show_says_which_file_set_each_value() {
    let i = start("[channels.local]\npairing_ttl_secs = 120\n");
    let base = Instance::config_path(i.dir.path());
    assert_eq!(
        value_of(&i, "channels.local.pairing_ttl_secs"),
        ("120".into(), base.display().to_string())
    );
    assert_eq!(
        value_of(&i, "limits.max_iterations"),
        ("50".into(), "default".into())
    );
    let text = ok(&i.ctl(&["settings", "show", "channels.local"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with("channels.local.pairing_ttl_secs = 120")
                && l.ends_with(&format!("# {}", base.display()))),
        "{text}"
    );
    assert!(!text.contains("limits."), "{text}");

    // check-config says the same, from the files alone.
    let out = std::process::Command::new(common::COWORKD)
        .arg("--config")
        .arg(&base)
        .arg("--state-dir")
        .arg(i.dir.path().join("state"))
        .args(["check-config", "--origins"])
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.contains(&format!(
            "channels.local.pairing_ttl_secs = 120  # {}",
            base.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("limits.max_iterations = 50  # default"),
        "{text}"
    );
}

#[test]
fn a_change_is_validated_written_applied_and_audited() {
    let i = start("");
    let supervisor = i.child.id();
    let gateway = i.pid_of("gateway");
    // No such channel yet.
    let out = i.ctl(&["pair", "new", "--channel", "extra"]);
    assert!(!out.status.success());

    let text = ok(&i.ctl(&["settings", "set", "channels.extra.enabled", "true"]));
    assert!(text.contains("restarted: gateway"), "{text}");
    // Applied without restarting coworkd: the gateway started again with it.
    assert_eq!(i.child.id(), supervisor);
    assert_ne!(i.pid_of("gateway"), gateway);
    let code = ok(&i.ctl(&["pair", "new", "--channel", "extra"]));
    assert!(code.contains("pairing code for extra"), "{code}");
    let (_, origin) = value_of(&i, "channels.extra.enabled");
    assert_eq!(origin, owner_file(&i).display().to_string());

    // A second change keeps the first as the previous version.
    ok(&i.ctl(&["settings", "set", "channels.extra.pairing_ttl_secs", "600"]));
    let prev = std::fs::read_to_string(owner_file(&i).with_file_name("owner.toml.prev")).unwrap();
    assert!(
        prev.contains("enabled = true") && !prev.contains("600"),
        "{prev}"
    );

    // Audited: the key, old and new values, the actor, what restarted.
    let entries = audited(&i, "settings.changed", 2);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let last = &entries[1];
    let text = last.to_string();
    assert!(text.contains("channels.extra.pairing_ttl_secs"), "{text}");
    assert!(text.contains("\"new\":\"600\""), "{text}");
    assert!(
        last["actor"]
            .as_str()
            .unwrap()
            .starts_with("coworkctl:uid="),
        "{text}"
    );
    assert!(text.contains("gateway"), "{text}");

    // Unset: the key leaves the owner's file; the default shows again.
    ok(&i.ctl(&["settings", "unset", "channels.extra.pairing_ttl_secs"]));
    let (value, origin) = value_of(&i, "channels.extra.pairing_ttl_secs");
    assert_eq!(origin, "default");
    assert_ne!(value, "600");
    // Nothing to change is said so, without a restart.
    let gateway = i.pid_of("gateway");
    let text = ok(&i.ctl(&["settings", "unset", "limits.max_iterations"]));
    assert!(text.contains("nothing changed"), "{text}");
    assert_eq!(i.pid_of("gateway"), gateway);
}

#[test]
fn every_invalid_change_is_refused_and_nothing_is_written() {
    let i = start("");
    ok(&i.ctl(&["settings", "set", "channels.local.pairing_ttl_secs", "600"]));
    let before = std::fs::read_to_string(owner_file(&i)).unwrap();
    let version = show(&i)["version"].as_str().unwrap().to_string();
    // Each under the kernel's cap on one argument (128 KiB), together over
    // the owner file's cap (256 KiB).
    let big = format!("\"{}\"", "x".repeat(100 * 1024));
    let cases: &[(&[&str], &str)] = &[
        (
            &["limits.max_iterations", "abc"],
            "limits.max_iterations: invalid type",
        ),
        (&["limits.max_iterations", "-1"], "limits.max_iterations"),
        (
            &["channels.local.pairing_ttl_secs", "5"],
            "channels.local.pairing_ttl_secs: 5 is not between 60 and 3600 seconds",
        ),
        (&["limits.nope", "1"], "limits.nope: unknown field `nope`"),
        (
            &["channels.x.transport.kind", "carrier-pigeon"],
            "channels.x.transport.kind: unknown variant",
        ),
        (&["channels.Bad.enabled", "true"], "channel name"),
        (&["admin.listen", "[\"8.8.8.8\"]"], "8.8.8.8"),
        (&["a b", "1"], "letters, digits"),
        (&["channels.local.dm", "[1,"], "not a valid TOML value"),
        (&["profile", "1\nprofile = \"production\""], "one line"),
        (
            &[
                "channels.a.allowlist",
                big.as_str(),
                "channels.b.allowlist",
                big.as_str(),
                "channels.c.allowlist",
                big.as_str(),
            ],
            "would exceed",
        ),
        // All or none: one bad pair refuses the good one with it.
        (
            &["limits.max_iterations", "10", "limits.max_cost_usd", "lots"],
            "limits.max_cost_usd",
        ),
    ];
    for (pairs, want) in cases {
        let mut args = vec!["settings", "set"];
        args.extend_from_slice(pairs);
        let err = refused(&i.ctl(&args));
        assert!(err.contains(want), "{pairs:?}: {err}");
        assert!(err.contains("nothing was changed"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(owner_file(&i)).unwrap(), before);
    assert_eq!(show(&i)["version"], version.as_str());
    assert_eq!(value_of(&i, "limits.max_iterations").0, "50");
    audited(&i, "settings.changed", 1);

    // A stale version is refused: another editor changed the file since.
    ok(&i.ctl(&[
        "settings",
        "set",
        "limits.max_iterations",
        "20",
        "--if-version",
        &version,
    ]));
    let err = refused(&i.ctl(&[
        "settings",
        "set",
        "limits.max_iterations",
        "30",
        "--if-version",
        &version,
    ]));
    assert!(err.contains("changed since you opened them"), "{err}");
    assert_eq!(value_of(&i, "limits.max_iterations").0, "20");
    // An odd number of words is a usage error, not a change.
    assert!(
        !i.ctl(&["settings", "set", "limits.max_iterations"])
            .status
            .success()
    );
}

#[test]
fn reload_applies_the_edited_files_without_a_restart() {
    let i = start("[channels.local]\ndm = \"open\"\n");
    let supervisor = i.child.id();
    let reply = ok(&i.ctl(&["chat", "hello"]));
    assert!(reply.contains("no LLM provider is configured"), "{reply}");

    // The base file edited by hand, then `coworkctl reload`.
    let config = Instance::config_path(i.dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[channels.extra]\n");
    std::fs::write(&config, &text).unwrap();
    let out = ok(&i.ctl(&["reload"]));
    assert!(out.contains("restarted: gateway"), "{out}");
    ok(&i.ctl(&["pair", "new", "--channel", "extra"]));

    // An agent provider, set in one change (the fields need each other); the
    // provider's address is a closed loopback port: the answer is its error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    ok(&i.ctl(&[
        "settings",
        "set",
        "agent.provider",
        "openai",
        "agent.model",
        "m",
        "agent.base_url",
        &url,
        "agent.prices.m.input_usd_per_mtok",
        "0.0",
        "agent.prices.m.output_usd_per_mtok",
        "0.0",
    ]));
    let reply = ok(&i.ctl(&["chat", "hello again"]));
    assert!(!reply.contains("no LLM provider is configured"), "{reply}");
    assert_eq!(i.child.id(), supervisor);

    // A base file that no longer validates: refused, the running one stays.
    std::fs::write(
        &config,
        format!("{text}[limits]\nmax_iterations = \"many\"\n"),
    )
    .unwrap();
    let out = i.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    ok(&i.ctl(&["pair", "new", "--channel", "extra"]));
    assert_eq!(value_of(&i, "agent.model").0, "\"m\"");
}

#[test]
fn owner_settings_survive_a_restart_and_bad_ones_are_left_out() {
    let i = start("");
    ok(&i.ctl(&["settings", "set", "channels.extra.enabled", "true"]));
    let mut i = i.restart();
    ok(&i.ctl(&["pair", "new", "--channel", "extra"]));

    // A file that does not fit (an update renamed a key, a hand edit): coworkd
    // starts with the image's settings and says why.
    let (status, _) = i.stop();
    assert!(status.success());
    std::fs::write(
        owner_file(&i),
        "[channels.extra]\nenabled = true\n[limits]\nmax_iteratons = 3\n",
    )
    .unwrap();
    let dir = std::mem::replace(&mut i.dir, tempfile::tempdir().unwrap());
    drop(i);
    let mut i = Instance::start_in(dir, &[], &[]);
    i.wait_notification("READY=1", Duration::from_secs(20));
    let view = show(&i);
    let problems = view["owner_problems"].to_string();
    assert!(problems.contains("max_iteratons"), "{view}");
    assert!(
        !i.ctl(&["pair", "new", "--channel", "extra"])
            .status
            .success()
    );
    let text = ok(&i.ctl(&["settings", "show"]));
    assert!(text.contains("# NOT APPLIED"), "{text}");
    // A reload does not drop them silently either.
    assert_eq!(i.ctl(&["reload"]).status.code(), Some(1));
    // Removing the bad key makes the rest apply.
    ok(&i.ctl(&["settings", "unset", "limits.max_iteratons"]));
    ok(&i.ctl(&["pair", "new", "--channel", "extra"]));
    assert_eq!(show(&i)["owner_problems"], serde_json::json!([]));
}

/// `kill -9` of the supervisor while it saves: the file is the old or the new
/// version, never a mix, and coworkd starts with it.
#[test]
fn a_supervisor_killed_while_saving_leaves_the_old_or_the_new_file() {
    let mut i = start("");
    ok(&i.ctl(&["settings", "set", "limits.max_iterations", "10"]));
    for (round, delay_us) in [0u64, 300, 1000, 3000].into_iter().enumerate() {
        let value = (11 + round).to_string();
        let mut ctl = std::process::Command::new(common::COWORKCTL)
            .arg("--runtime-dir")
            .arg(i.runtime_dir())
            .args(["settings", "set", "limits.max_iterations", &value])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The kill lands somewhere in the save; where is the point of the loop.
        std::thread::sleep(Duration::from_micros(delay_us));
        i.child.kill().unwrap();
        i.child.wait().unwrap();
        // It would keep trying to reach a coworkd for its whole timeout.
        let _ = ctl.kill();
        let _ = ctl.wait();
        let text = std::fs::read_to_string(owner_file(&i)).unwrap();
        let parsed: toml::Table = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let n = parsed["limits"]["max_iterations"].as_integer().unwrap();
        assert!(
            n == 10 + round as i64 || n == 11 + round as i64,
            "round {round}: {text}"
        );
        // Components go with their supervisor (the lifeline); start again.
        let dir = std::mem::replace(&mut i.dir, tempfile::tempdir().unwrap());
        drop(i);
        i = Instance::start_in(dir, &[], &[]);
        i.wait_notification("READY=1", Duration::from_secs(20));
        assert_eq!(value_of(&i, "limits.max_iterations").0, n.to_string());
        if n == 10 + round as i64 {
            // The change never happened: make it, so the next round starts from it.
            ok(&i.ctl(&["settings", "set", "limits.max_iterations", &value]));
        }
    }
}

#[test]
fn a_ca_file_is_stored_with_coworkctl() {
    // A transport that reads ca_file (its token is never stored: nothing
    // connects out); the local channel's transport reads nothing.
    let i = start(
        "[channels.telegram.transport]\nkind = \"telegram-polling\"\ntoken_secret = \"tg\"\n",
    );
    let pem = rcgen::generate_simple_self_signed(vec!["llm.lan".into()])
        .unwrap()
        .cert
        .pem();
    let file = i.dir.path().join("ca.pem");
    std::fs::write(&file, &pem).unwrap();
    let out = ok(&i.ctl(&[
        "settings",
        "set-ca",
        "channels.telegram.transport.ca_file",
        file.to_str().unwrap(),
    ]));
    assert!(out.contains("restarted: gateway"), "{out}");
    let (value, origin) = value_of(&i, "channels.telegram.transport.ca_file");
    assert_eq!(origin, owner_file(&i).display().to_string());
    let stored: String = value.trim_matches('"').to_string();
    assert!(
        stored.starts_with(&i.dir.path().join("state/settings/ca").display().to_string()),
        "{stored}"
    );
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), pem);
    // Not PEM: refused, nothing stored or changed.
    std::fs::write(&file, "not a certificate").unwrap();
    let err = refused(&i.ctl(&[
        "settings",
        "set-ca",
        "agent.ca_file",
        file.to_str().unwrap(),
    ]));
    assert!(err.contains("no certificate"), "{err}");
    let err = refused(&i.ctl(&["settings", "set-ca", "agent.model", file.to_str().unwrap()]));
    assert!(err.contains("not a ca_file"), "{err}");
    let files = std::fs::read_dir(i.dir.path().join("state/settings/ca"))
        .unwrap()
        .count();
    assert_eq!(files, 1);
}
