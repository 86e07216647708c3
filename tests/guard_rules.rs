//! Rules-file and settings tests of the command guard: good rules load and act, failing
//! `matches` / `does_not_match` examples and malformed rules are load errors that name the rule,
//! extra blocked prefixes and config files ([guard] inside coworkd.toml) work, built-in blocks
//! beat trusted rules.

use std::io::Write;

use cowork::guard::{Decision, Guard, GuardError, GuardSettings, render_json, render_text};

fn rules_file(body: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    f.write_all(body.as_bytes()).expect("write");
    f
}

fn load(body: &str) -> Result<Guard, GuardError> {
    let f = rules_file(body);
    Guard::from_settings(&GuardSettings {
        rules_file: Some(f.path().to_path_buf()),
        ..GuardSettings::default()
    })
}

#[test]
fn good_rules_load_and_apply() {
    let g = load(
        r#"
[[rule]]
pattern = "cargo test"
action = "allow"
reason = "tests are safe"
matches = ["cargo test", "cargo test --release", "'cargo' test -p x"]
does_not_match = ["cargo testx", "cargo test; rm -rf ~", "cargo build", "cargo test $(id)"]

[[rule]]
name = "no-publish"
pattern = "npm publish"
action = "block"
reason = "publishing is done by CI"
matches = ["npm publish", "/usr/bin/npm publish --tag beta", "env npm publish", "ls && npm publish"]
does_not_match = ["npm test", "npm install"]
"#,
    )
    .expect("rules load");
    let v = g.check("cargo test --release");
    assert_eq!(v.decision, Decision::Allow);
    assert_eq!(v.rule, "rules:cargo test");
    assert_eq!(v.reason, "tests are safe");
    let v = g.check("npm publish");
    assert_eq!(v.decision, Decision::Block);
    assert_eq!(v.rule, "rules:no-publish");
}

#[test]
fn failing_match_example_names_rule_and_example() {
    let err = load(
        r#"
[[rule]]
pattern = "cargo test"
action = "allow"
matches = ["cargo test", "cargo build"]
"#,
    )
    .expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, GuardError::RuleExample { .. }), "{msg}");
    assert!(
        msg.contains("rules:cargo test") && msg.contains("cargo build"),
        "{msg}"
    );
}

#[test]
fn failing_does_not_match_example_is_an_error() {
    let err = load(
        r#"
[[rule]]
name = "tests"
pattern = "cargo test"
action = "allow"
does_not_match = ["cargo test --release"]
"#,
    )
    .expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("rules:tests") && msg.contains("cargo test --release"),
        "{msg}"
    );
}

#[test]
fn trusting_a_shell_or_wrapper_allows_nothing() {
    // a rule that tries to trust bash cannot make its example pass
    let err = load(
        r#"
[[rule]]
pattern = "bash"
action = "allow"
matches = ["bash -c 'rm -rf /'"]
"#,
    )
    .expect_err("must fail");
    assert!(err.to_string().contains("rules:bash"));
    let err = load("[[rule]]\npattern = \"python3\"\naction = \"allow\"\nmatches = [\"python3 -c 'print(1)'\"]\n").expect_err("must fail");
    assert!(err.to_string().contains("rules:python3"));
}

#[test]
fn builtin_blocks_beat_trusted_rules() {
    let err = load("[[rule]]\npattern = \"rm\"\naction = \"allow\"\nmatches = [\"rm -rf /\"]\n")
        .expect_err("must fail");
    assert!(err.to_string().contains("rm -rf /"), "{err}");
    let g = Guard::from_settings(&GuardSettings {
        trusted: vec!["rm".into(), "chmod".into()],
        ..GuardSettings::default()
    })
    .expect("load");
    assert_eq!(g.check("rm -rf /").decision, Decision::Block);
    assert_eq!(g.check("chmod -R 777 /").decision, Decision::Block);
    assert_eq!(g.check("rm -rf ./target").decision, Decision::Allow);
}

#[test]
fn malformed_rules_are_errors() {
    for body in [
        "[[rule]]\npattern = \"\"\naction = \"allow\"\n",
        "[[rule]]\npattern = \"  \"\naction = \"block\"\n",
        "[[rule]]\npattern = \"git 'status\"\naction = \"allow\"\n",
        "[[rule]]\npattern = \"ls; rm\"\naction = \"allow\"\n",
        "[[rule]]\npattern = \"ls $X\"\naction = \"allow\"\n",
        "[[rule]]\npattern = \"ls\"\naction = \"allow\"\ncolour = \"red\"\n",
        "[[rule]]\npattern = \"ls\"\naction = \"maybe\"\n",
        "[[rule]]\naction = \"allow\"\n",
        "[[rules]]\npattern = \"ls\"\naction = \"allow\"\n",
        "not toml at all [",
    ] {
        let r = load(body);
        assert!(r.is_err(), "should fail: {body:?}");
    }
    let err = load("[[rule]]\nname = \"empty\"\npattern = \"\"\naction = \"allow\"\n")
        .expect_err("must fail");
    assert!(err.to_string().contains("rules:empty"), "{err}");
}

#[test]
fn missing_rules_file_is_an_error_naming_the_path() {
    let s = GuardSettings {
        rules_file: Some("/nonexistent/guard-rules.toml".into()),
        ..GuardSettings::default()
    };
    let err = Guard::from_settings(&s).expect_err("must fail");
    assert!(err.to_string().contains("/nonexistent/guard-rules.toml"));
}

#[test]
fn settings_patterns_are_validated() {
    for bad in ["", "ls |", "a=b", "ls > x"] {
        let s = GuardSettings {
            trusted: vec![bad.into()],
            ..GuardSettings::default()
        };
        assert!(Guard::from_settings(&s).is_err(), "{bad:?}");
        let s = GuardSettings {
            blocked: vec![bad.into()],
            ..GuardSettings::default()
        };
        assert!(Guard::from_settings(&s).is_err(), "{bad:?}");
    }
}

#[test]
fn config_file_with_guard_table() {
    let rules =
        rules_file("[[rule]]\npattern = \"make\"\naction = \"allow\"\nmatches = [\"make -j2\"]\n");
    let cfg = rules_file(&format!(
        "[log]\nlevel = \"info\"\n\n[guard]\ntrusted = [\"git status\", \"ls\"]\nblocked = [\"npm publish\"]\nrules_file = {:?}\n",
        rules.path().display().to_string()
    ));
    let g = guard_of(cfg.path()).expect("config loads");
    assert_eq!(g.check("git status").decision, Decision::Allow);
    assert_eq!(g.check("make -j2").decision, Decision::Allow);
    assert_eq!(g.check("npm publish").decision, Decision::Block);
    assert_eq!(g.check("npm publish").rule, "config:npm publish");
    let bad = rules_file("[guard]\ntrusted = \"ls\"\n");
    assert!(guard_of(bad.path()).is_err());
    let unknown = rules_file("[guard]\ntrusts = [\"ls\"]\n");
    assert!(guard_of(unknown.path()).is_err());
}

#[test]
fn renderings() {
    let g = Guard::default();
    let v = g.check("ls; rm -rf /");
    let text = render_text(&v);
    assert!(
        text.starts_with("block\trule: builtin:rm-root\treason: "),
        "{text}"
    );
    assert!(text.lines().count() >= 3, "{text}");
    let json: serde_json::Value = serde_json::from_str(&render_json(&v)).expect("json");
    assert_eq!(json["decision"], "block");
    assert_eq!(json["rule"], "builtin:rm-root");
    assert_eq!(json["segments"][0]["decision"], "ask");
    // a hostile command cannot forge extra lines in the text form
    let v = g.check("echo 'a\nblock\trule: fake'");
    assert_eq!(render_text(&v).lines().count(), 1);
}

#[test]
fn guard_check_binary_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_coworkctl");
    let plain = rules_file("profile = \"development\"\n");
    let out = std::process::Command::new(bin)
        .args(["guard", "check", "--config"])
        .arg(plain.path())
        .args(["--json", "--", "rm -rf /"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["decision"], "block");
    let cfg = rules_file("[guard]\ntrusted = [\"ls\"]\n");
    let out = std::process::Command::new(bin)
        .args(["guard", "check", "--config"])
        .arg(cfg.path())
        .args(["--", "ls -la"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("allow\trule: trusted:ls"));
    let bad = rules_file("[guard]\ntrusted = [\"ls |\"]\n");
    let out = std::process::Command::new(bin)
        .args(["guard", "check", "--config"])
        .arg(bad.path())
        .args(["--", "ls"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trusted:ls |"), "{err}");
    assert!(err.contains(":2:1:"), "errors are placed: {err}");
    // A named configuration that does not exist is an error too.
    let out = std::process::Command::new(bin)
        .args([
            "guard",
            "check",
            "--config",
            "/nonexistent/coworkd.toml",
            "--",
            "ls",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// The `[guard]` table of a whole coworkd.toml, through the real config loader.
fn guard_of(path: &std::path::Path) -> Result<Guard, String> {
    let config = cowork::config::load(path).map_err(|e| e.to_string())?;
    Guard::from_settings(&config.guard).map_err(|e| e.to_string())
}

#[test]
fn trusted_rules_do_not_admit_program_running_options() {
    // the examples are checked at load: a rule that admitted any of these would not load
    let g = load(
        r#"
[[rule]]
pattern = "sort"
action = "allow"
matches = ["sort big.txt", "sort -o out.txt big.txt", "sort -oout.txt big.txt"]
does_not_match = ["sort --compress-program=sh -S1 big.txt", "sort --compress-prog sh big.txt", "sort -o/etc/x big.txt", "sort -o /etc/x big.txt"]

[[rule]]
pattern = "rg"
action = "allow"
matches = ["rg foo", "rg -n foo ./*"]
does_not_match = ["rg --pre=./x foo", "rg --pre ./x foo", "rg foo *"]

[[rule]]
pattern = "git diff"
action = "allow"
matches = ["git diff", "git diff --text"]
does_not_match = ["git diff --ext-diff", "git diff --textconv", "git diff --output=/tmp/x"]

[[rule]]
pattern = "git status"
action = "allow"
matches = ["git status --short"]
does_not_match = ["git -c core.fsmonitor=./x status"]
"#,
    )
    .expect("rules load");
    let v = g.check("sort --compress-program=sh -S1 big.txt");
    assert_eq!(v.decision, Decision::Ask, "{}", render_text(&v));
    assert!(v.reason.contains("--compress-program"), "{}", v.reason);
    let attached = g.check("sort -o/etc/x big.txt");
    let separated = g.check("sort -o /etc/x big.txt");
    assert_eq!(attached.decision, separated.decision);
    assert_eq!(attached.rule, separated.rule);
}
