//! Unit tests of the judge as a whole (the corpora are in tests/guard_corpus.rs).

use super::*;

fn guard(trusted: &[&str]) -> Guard {
    let s = GuardSettings {
        trusted: trusted.iter().map(|s| s.to_string()).collect(),
        ..GuardSettings::default()
    };
    Guard::from_settings(&s).expect("settings")
}

#[track_caller]
fn expect(g: &Guard, cmd: &str, d: Decision) {
    let v = g.check(cmd);
    assert_eq!(v.decision, d, "{cmd:?} -> {}", render_text(&v));
}

#[test]
fn trusted_prefix() {
    let g = guard(&["git status", "ls", "cargo test"]);
    expect(&g, "git status", Decision::Allow);
    expect(&g, "git status --short", Decision::Allow);
    expect(&g, "'git' \"status\"", Decision::Allow);
    expect(&g, "git statusx", Decision::Ask);
    expect(&g, "git -c core.pager=sh status", Decision::Ask);
    expect(&g, "ls -la && git status", Decision::Allow);
    expect(&g, "ls; rm -rf ~", Decision::Block);
    expect(&g, "ls > out.txt", Decision::Allow);
    expect(&g, "ls > /tmp/out.txt", Decision::Ask);
    expect(&g, "ls $HOME", Decision::Ask);
    expect(&g, "ls $(pwd)", Decision::Ask);
    expect(&g, "nice cargo test", Decision::Allow);
    expect(&g, "ls | sh", Decision::Ask);
}

#[test]
fn writes_of_exec_config_files_are_asked() {
    let g = guard(&["ls", "echo", "tee", "cp"]);
    expect(&g, "ls > notes.txt", Decision::Allow);
    expect(&g, "echo x > .git/config", Decision::Ask);
    expect(&g, "echo x >> sub/.git/hooks/pre-commit", Decision::Ask);
    expect(&g, "echo 'import os' > zz.pth", Decision::Ask);
    expect(&g, "ls | tee .sqliterc", Decision::Ask);
    expect(&g, "cp a .bashrc", Decision::Ask);
    // The file tools' writes, judged the same way.
    assert_eq!(g.check_write("notes.txt").decision, Decision::Allow);
    let v = g.check_write(".git/config");
    assert_eq!(v.decision, Decision::Ask);
    assert_eq!(v.rule, "builtin:exec-config-file");
    assert_eq!(v.segments[0].command, "write_file .git/config");
    assert_eq!(g.check_write("../x").decision, Decision::Ask);
}

#[test]
fn empty_and_bad_input() {
    let g = guard(&["ls"]);
    expect(&g, "", Decision::Ask);
    expect(&g, "# just a comment", Decision::Ask);
    expect(&g, "ls 'unterminated", Decision::Ask);
    expect(&g, "ls\0", Decision::Ask);
    expect(&g, &"ls ".repeat(30_000), Decision::Ask);
    expect(
        &g,
        &("(".repeat(500) + "ls" + &")".repeat(500)),
        Decision::Ask,
    );
    expect(
        &g,
        &("bash -c '".to_string() + &"eval ".repeat(100) + "ls'"),
        Decision::Ask,
    );
    expect(&g, "bash -c 'eval eval ls'", Decision::Allow);
}

/// Deterministic pseudo-random shell-ish input: never a panic, and a verdict every time.
#[test]
fn random_input_never_panics() {
    let g = guard(&["ls", "echo", "cat", "bash"]);
    let alphabet: Vec<char> = "ab rm-f/~.$(){}[]'\"`\\|&;<>*?!#=\n\t:x0123$'IFS@%^,"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 60) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let v = g.check(&s);
        if v.decision == Decision::Allow {
            // an allowed random string must consist only of trusted, fully known commands
            assert!(
                v.segments.iter().all(|seg| seg.decision == Decision::Allow),
                "{s:?}"
            );
        }
    }
}

#[test]
fn pathological_inputs_are_bounded() {
    let g = guard(&["ls"]);
    // many candidate values for many variables
    let mut s = String::new();
    for i in 0..50 {
        s.push_str(&format!("a{i}=x; a{i}=y; a{i}=z; a{i}=w; "));
    }
    s.push_str(
        &(0..50)
            .map(|i| format!("$a{i}"))
            .collect::<Vec<_>>()
            .join(""),
    );
    expect(&g, &s, Decision::Ask);
    // nested substitutions to the depth bound
    let nested = "echo $(".repeat(30) + "ls" + &")".repeat(30);
    expect(&g, &nested, Decision::Ask);
    // eval chains and decoded payloads inside decoded payloads
    expect(&g, &"eval ".repeat(20).to_string(), Decision::Ask);
    let wide = "ls; ".repeat(10_000);
    let v = g.check(&wide);
    assert_eq!(v.decision, Decision::Allow);
    let wide_bad = "ls; ".repeat(10_000) + "rm -rf /";
    expect(&g, &wide_bad, Decision::Block);
}

#[test]
fn limits_defaults_in_toml() {
    let l: LimitSettings = toml::from_str("").expect("empty");
    assert_eq!(l, LimitSettings::default());
    assert!(l.validate().is_ok());
}
