//! Corpus tests of the command guard: tests/data/guard/destructive.txt must all be blocked,
//! evasions.txt must never be allowed (lines starting with `!` must be blocked) even with a
//! generous trusted list, benign.txt must never be blocked. One command per line, `#` comments,
//! `<NL>` stands for a newline.

use cowork::guard::{Decision, Guard, GuardSettings, render_text};

const GENEROUS: &[&str] = &[
    "ls",
    "cat",
    "echo",
    "git status",
    "find",
    "xargs",
    "env",
    "bash",
    "python3",
    "sh",
    "eval",
    "printf",
    "base64",
    "grep",
    "rm",
    "chmod",
    "nice",
    "timeout",
    "cp",
    "mv",
    "tee",
    "sudo",
    "curl",
    "perl",
    "node",
    "awk",
];

fn guard(trusted: &[&str]) -> Guard {
    let s = GuardSettings {
        trusted: trusted.iter().map(|s| s.to_string()).collect(),
        ..GuardSettings::default()
    };
    Guard::from_settings(&s).expect("settings load")
}

fn corpus(name: &str) -> Vec<String> {
    let path = format!("{}/tests/data/guard/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("corpus readable");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.replace("<NL>", "\n"))
        .collect()
}

#[test]
fn destructive_commands_are_blocked() {
    let lines = corpus("destructive.txt");
    assert!(lines.len() >= 100, "corpus too small");
    let mut failures = Vec::new();
    for g in [guard(&[]), guard(GENEROUS)] {
        for cmd in &lines {
            let v = g.check(cmd);
            if v.decision != Decision::Block {
                failures.push(format!("{cmd:?}: {}", render_text(&v)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} not blocked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn evasions_are_never_allowed() {
    let lines = corpus("evasions.txt");
    let mut failures = Vec::new();
    for g in [guard(&[]), guard(GENEROUS)] {
        for line in &lines {
            let (must_block, cmd) = match line.strip_prefix('!') {
                Some(c) => (true, c),
                None => (false, line.as_str()),
            };
            let v = g.check(cmd);
            if v.decision == Decision::Allow || (must_block && v.decision != Decision::Block) {
                failures.push(format!("{cmd:?}: {}", render_text(&v)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} evasions got through:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn benign_commands_are_never_blocked() {
    let lines = corpus("benign.txt");
    let mut failures = Vec::new();
    for g in [guard(&[]), guard(GENEROUS)] {
        for cmd in &lines {
            let v = g.check(cmd);
            if v.decision == Decision::Block {
                failures.push(format!("{cmd:?}: {}", render_text(&v)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} benign commands blocked:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn benign_commands_with_trusted_rules_are_allowed() {
    let g = guard(&[
        "ls",
        "git status",
        "git log",
        "cargo build",
        "cargo test",
        "grep",
        "cat",
        "echo",
        "find",
        "make",
        "python3 -m pytest",
        "rm",
    ]);
    for cmd in [
        "ls -la",
        "git status --short",
        "git log --oneline",
        "cargo build",
        "grep -r foo src",
        "cat README.md",
        "find . -name '*.rs'",
        "echo hi > out.txt",
        "make",
        "python3 -m pytest -q",
        "rm -rf ./target",
        "rm build/x.o",
        "cd src && ls",
        "RUST_BACKTRACE=1 cargo test",
        "timeout 60 cargo test",
        "ls | grep foo",
        "ls /",
        "cat /etc/hosts",
        "cat <<EOF > notes.txt\nhello\nEOF",
    ] {
        let v = g.check(cmd);
        assert_eq!(v.decision, Decision::Allow, "{cmd:?}: {}", render_text(&v));
    }
    for cmd in [
        "python3 script.py",
        "python3 -c 'print(1)'",
        "rm -rf ~/x",
        "find . -name '*.o' -delete",
        "cd .. && ls",
        "echo $(id)",
        "ls > ../x",
    ] {
        let v = g.check(cmd);
        assert_eq!(v.decision, Decision::Ask, "{cmd:?}: {}", render_text(&v));
    }
}
