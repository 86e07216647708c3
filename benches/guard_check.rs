//! Checks per second of `Guard::check` over the corpora in tests/data/guard/ (plus a few
//! worst-case inputs). Run with `cargo bench --bench guard_check`; prints figures, asserts nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cowork::guard::{Guard, GuardSettings};

fn corpus(name: &str) -> Vec<String> {
    let path = format!("{}/tests/data/guard/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('!').replace("<NL>", "\n"))
        .collect()
}

fn measure(g: &Guard, name: &str, lines: &[String], budget: Duration) {
    if lines.is_empty() {
        println!("{name:<24} (no lines)");
        return;
    }
    for l in lines {
        black_box(g.check(l));
    }
    let mut worst = Duration::ZERO;
    let mut worst_cmd = String::new();
    for l in lines {
        let t = Instant::now();
        black_box(g.check(l));
        let e = t.elapsed();
        if e > worst {
            worst = e;
            worst_cmd = l.chars().take(40).collect();
        }
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for l in lines {
            black_box(g.check(black_box(l)));
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<24} {:>5} lines  {:>9.0} checks/s  {:>7.1} µs/check  worst {:>7.1} µs ({worst_cmd:?})",
        lines.len(),
        n as f64 / secs,
        secs * 1e6 / n as f64,
        worst.as_secs_f64() * 1e6
    );
}

fn main() {
    let trusted = [
        "ls",
        "cat",
        "echo",
        "git status",
        "find",
        "xargs",
        "env",
        "bash",
        "python3",
        "cargo test",
        "grep",
    ];
    let g = Guard::from_settings(&GuardSettings {
        trusted: trusted.iter().map(|s| s.to_string()).collect(),
        ..GuardSettings::default()
    })
    .unwrap_or_default();
    let budget = Duration::from_millis(1500);
    let d = corpus("destructive.txt");
    let e = corpus("evasions.txt");
    let b = corpus("benign.txt");
    let all: Vec<String> = d.iter().chain(&e).chain(&b).cloned().collect();
    println!(
        "guard::check throughput (debug/release as built), trusted list of {} patterns",
        trusted.len()
    );
    measure(&g, "destructive.txt", &d, budget);
    measure(&g, "evasions.txt", &e, budget);
    measure(&g, "benign.txt", &b, budget);
    measure(&g, "all corpora", &all, budget);
    let worst_cases = vec![
        "ls; ".repeat(16_000),
        format!("echo {}", "a".repeat(60_000)),
        "echo $(".repeat(30) + "ls" + &")".repeat(30),
        (0..200)
            .map(|i| format!("a{}=x; a{}=y; ", i % 20, i % 20))
            .collect::<String>()
            + "$a1 $a2 $a3",
        format!("echo {} | base64 -d | sh", "cm0gLXJmIC8K".repeat(4_000)),
    ];
    measure(&g, "worst cases (~64 KiB)", &worst_cases, budget);
}
