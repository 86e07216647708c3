//! The guard both guard targets judge with, and the invariant they share.

use std::sync::OnceLock;

use cowork::guard::{Decision, Guard, GuardSettings, render_text};

/// The generous trusted list of tests/guard_corpus.rs: every evasion must be
/// caught even when the owner trusts wrappers, shells and `rm` itself.
const TRUSTED: &[&str] = &[
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
    "true",
    "cd",
    "sort",
];

/// A blocked pattern from the configuration, besides the built-in rules.
pub const CONFIG_BLOCKED: &str = "npm publish";

pub fn guard() -> &'static Guard {
    static G: OnceLock<Guard> = OnceLock::new();
    G.get_or_init(|| {
        let s = GuardSettings {
            trusted: TRUSTED.iter().map(|s| s.to_string()).collect(),
            blocked: vec![CONFIG_BLOCKED.to_string()],
            rules_file: None,
        };
        Guard::from_settings(&s).expect("fuzz guard settings")
    })
}

/// Commands that are blocked on their own: tests/data/guard/destructive.txt
/// (one-line entries) and the configuration's blocked pattern.
pub fn blocked_commands() -> &'static [String] {
    static B: OnceLock<Vec<String>> = OnceLock::new();
    B.get_or_init(|| {
        let text = include_str!("../../../tests/data/guard/destructive.txt");
        let mut v: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("<NL>"))
            .map(str::to_string)
            .collect();
        v.push(format!("{CONFIG_BLOCKED} --force"));
        for c in &v {
            let verdict = guard().check(c);
            assert_eq!(
                verdict.decision,
                Decision::Block,
                "{c:?} is not blocked alone"
            );
        }
        v
    })
}

/// How a blocked command may follow a prefix as a segment of its own.
pub const SEPARATORS: &[&str] = &["\n", "; ", " && ", " || ", " | ", " & ", ";", "&&", "|"];

/// Whether `prefix` is a complete command line after which any separator
/// starts a new segment: it parses on its own, and nothing in it can swallow
/// what follows (a comment, a here-document, a trailing backslash).
pub fn complete(prefix: &str) -> bool {
    if prefix.contains('#') || prefix.contains("<<") || prefix.ends_with('\\') {
        return false;
    }
    if prefix.trim().is_empty() {
        return false;
    }
    guard().check(prefix).rule != "builtin:parse-error"
}

/// The invariant: a blocked command as a whole segment is never allowed.
pub fn never_allowed(command: &str) {
    let v = guard().check(command);
    assert_ne!(
        v.decision,
        Decision::Allow,
        "allowed: {command:?}\n{}",
        render_text(&v)
    );
}

/// Structural checks of any verdict: it is at least as strict as each segment.
pub fn consistent(command: &str) {
    let v = guard().check(command);
    for s in &v.segments {
        assert!(
            v.decision >= s.decision,
            "verdict {} weaker than a segment {}: {command:?}\n{}",
            v.decision,
            s.decision,
            render_text(&v)
        );
    }
}
