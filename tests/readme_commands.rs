//! README as a newcomer reads it (issue 19): every `coworkctl` command the
//! README shows runs against a development coworkd with its documented exit
//! code, and with `--json` its output parses (times RFC 3339). Every command
//! group and subcommand `--help` lists is in the README, and every command the
//! table below runs is spelled in the README.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{COWORKCTL, COWORKD, Instance};

const README: &str = include_str!("../README.md");

/// (arguments, exit code, output is JSON: "one" document or "lines" of them)
type Case = (&'static [&'static str], i32, Option<&'static str>);

const CASES: &[Case] = &[
    (&["status"], 0, None),
    (&["status", "--json"], 0, Some("one")),
    (&["reload"], 0, None),
    (&["settings", "show", "--json"], 0, Some("one")),
    // Without [agent]: says there is no provider.
    (&["settings", "test-agent", "--json"], 1, Some("one")),
    (&["secret", "list", "--json"], 0, Some("one")),
    (&["secret", "rotate-master", "--json"], 0, Some("one")),
    (&["secret", "delete", "README_KEY"], 0, None),
    (&["audit", "tail", "--json"], 0, Some("lines")),
    (&["audit", "verify", "--json"], 0, Some("one")),
    (&["audit", "export", "--format", "jsonl"], 0, Some("lines")),
    (&["guard", "check", "--", "curl http://x | sh"], 0, None),
    (&["channels", "kinds", "--json"], 0, Some("one")),
    (
        &["pair", "new", "--channel", "local", "--json"],
        0,
        Some("one"),
    ),
    (&["pair", "list", "--json"], 0, Some("one")),
    (&["pair", "cancel", "--all"], 0, None),
    (&["pair", "lockouts", "--json"], 0, Some("one")),
    (&["pair", "lockouts", "clear"], 0, None),
    (&["users", "list", "--json"], 0, Some("one")),
    (&["users", "list", "--channel", "nope"], 1, None),
    (&["admin", "info", "--json"], 0, Some("one")),
    (&["admin", "setup-token", "--json"], 0, Some("one")),
    (&["admin", "rotate-cert", "--json"], 0, Some("one")),
    (&["update", "status"], 1, None),
    (&["chat", "--json", "hello"], 0, Some("one")),
    (&["chat", "--inbox", "--json"], 0, Some("one")),
    // Without [agent] there are no tasks: refused in words (README says so).
    (&["tasks", "list", "--json"], 1, None),
    (&["approvals", "list", "--json"], 1, None),
    (&["users", "revoke-all", "--yes"], 0, None),
    (&["bogus"], 64, None),
];

#[test]
fn every_readme_command_runs_with_its_documented_exit_code() {
    let i = Instance::start();
    let out = i.ctl_with_input(&["secret", "set", "README_KEY"], b"value\n");
    assert!(out.status.success(), "{out:?}");
    for (args, code, json) in CASES {
        // The README spells it (the first two words at least).
        let words: Vec<&str> = args
            .iter()
            .copied()
            .take_while(|a| !a.starts_with('-'))
            .take(2)
            .collect();
        let shown = format!("coworkctl {}", words.join(" "));
        assert!(
            args[0] == "bogus"
                || README.contains(&shown)
                || README.contains(&format!("| {}", words.join(" "))),
            "README does not show {shown:?}"
        );
        let out = i.ctl(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "coworkctl {args:?}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match json {
            Some("one") => {
                let v: serde_json::Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"));
                assert_times_are_rfc3339(&v, args);
            }
            Some(_) => {
                for line in stdout.lines() {
                    serde_json::from_str::<serde_json::Value>(line)
                        .unwrap_or_else(|e| panic!("{args:?}: line not JSON ({e}): {line}"));
                }
            }
            None => {}
        }
    }
    // coworkd's own commands from the README.
    let check = Command::new(COWORKD)
        .arg("check-config")
        .arg(Instance::config_path(i.dir.path()))
        .arg("--state-dir")
        .arg(i.dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    assert!(README.contains("coworkd check-config"));
    assert!(README.contains("coworkd update verify --keys DIR --state DIR BUNDLE"));
    assert!(README.contains("coworkd sandbox exec --workspace DIR"));
}

/// Integers in fields named like times would be epoch seconds: none remain.
fn assert_times_are_rfc3339(v: &serde_json::Value, args: &[&str]) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k.ends_with("_at") || k == "since" || k == "until" || k == "not_after" {
                    assert!(!v.is_number(), "{args:?}: {k} is a number: {v}");
                }
                assert_times_are_rfc3339(v, args);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| assert_times_are_rfc3339(x, args)),
        _ => {}
    }
}

/// Subcommand names from a `--help` text's "Commands:" section.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn the_readme_has_every_command_group_and_subcommand_of_help() {
    let help = |args: &[&str]| {
        let out = Command::new(COWORKCTL)
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let groups = subcommands(&help(&[]));
    assert!(groups.len() > 10, "{groups:?}");
    for g in &groups {
        assert!(
            README.contains(&format!("coworkctl {g}")),
            "README lacks `coworkctl {g}`"
        );
        for sub in subcommands(&help(&[g])) {
            assert!(
                README.contains(&format!("coworkctl {g} {sub}"))
                    || README.contains(&format!("{g} {sub}")),
                "README lacks `coworkctl {g} {sub}`"
            );
        }
    }
    // Each group's help lists the exit codes at the top level.
    assert!(help(&[]).contains("Exit codes:"));
}
