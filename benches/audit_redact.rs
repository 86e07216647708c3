//! Redaction cost per audit entry, on the caller's thread before the append:
//! a `gateway.message` entry (ids, short strings: every webhook pays it) and
//! a `command.finished` entry with 4 KiB of ordinary output. Prints the mean
//! time per entry over AUDIT_REDACT_ROUNDS rounds (default 20,000).
//!
//! Run: `cargo bench --bench audit_redact`.

use std::hint::black_box;
use std::time::Instant;

use cowork::audit::Redactor;
use serde_json::json;

fn measure(name: &str, redactor: &Redactor, value: &serde_json::Value, rounds: u32) {
    let start = Instant::now();
    for _ in 0..rounds {
        let mut v = value.clone();
        redactor.redact_json(black_box(&mut v));
        black_box(redactor.redact_text(black_box("slack:U0123ABCD")));
        black_box(v);
    }
    let per = start.elapsed() / rounds;
    println!(
        "audit_redact: {name}: {:.1} µs per entry",
        per.as_secs_f64() * 1e6
    );
}

fn main() {
    let rounds: u32 = std::env::var("AUDIT_REDACT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let message = json!({
        "reason": "authorized",
        "channel": "slack",
        "sender": "U0123ABCD",
        "chat": "C0456EFGH",
        "text_len": 42,
        "event_id": "Ev0123456789ABCDEF",
    });
    let mut output = String::new();
    let mut i = 0;
    while output.len() < 4096 {
        output.push_str(&format!(
            "-rw-r--r-- 1 cowork cowork {:>6} Dec  3 12:{:02} file-{i}.txt\n",
            812 + i * 37,
            i % 60
        ));
        i += 1;
    }
    let command = json!({
        "command": "ls -la /workspace/project",
        "exit_code": 0,
        "stdout": output,
        "stderr": "",
        "duration_ms": 12,
    });
    let plain = Redactor::new();
    let known = Redactor::new().with_known_secrets([
        "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx",
        "bench-signing-secret-0123456789",
    ]);
    measure("gateway.message", &plain, &message, rounds);
    measure("gateway.message, 2 known secrets", &known, &message, rounds);
    measure(
        "command.finished, 4 KiB output",
        &plain,
        &command,
        rounds / 10,
    );
}
