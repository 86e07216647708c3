//! Durability under kill -9: the test binary re-executes itself as a child
//! (env switch `COWORK_AUDIT_KILL_CHILD`) that appends from several threads
//! and reports every acknowledged seq on stdout; the parent SIGKILLs it at a
//! random moment, 50 rounds on the same state dir. After each round every
//! acknowledged entry is in the db, the anchor is not ahead of the db, and
//! verify (with anchor and key) is Intact — a db ahead of its anchor by the
//! unacknowledged batch is not misreported as tampering, and the next child's
//! writer re-anchors it.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cowork::audit::anchor::Anchor;
use cowork::audit::{
    AuditPaths, AuditReader, AuditSettings, AuditWriter, CheckpointKey, Filter, NewEntry, Redactor,
    VerifyReport, verify,
};
use rand::Rng;
use serde_json::json;

const CHILD_ENV: &str = "COWORK_AUDIT_KILL_CHILD";
const ROUNDS: usize = 50;
const THREADS: usize = 4;

fn key() -> CheckpointKey {
    CheckpointKey::from_bytes([9; 32])
}

/// Child mode (this test binary re-executed as the test below with
/// `CHILD_ENV` set): append forever from several threads, print `ACK <seq>`
/// after each acknowledged append.
fn child_appender(state: &str) {
    let paths = AuditPaths::in_state_dir(Path::new(&state));
    let settings = AuditSettings {
        checkpoint_every_entries: 37,
        checkpoint_every_secs: 1,
        ..AuditSettings::default()
    };
    let w = Arc::new(AuditWriter::open(&paths, key(), &settings, Redactor::new()).unwrap());
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (w, out) = (Arc::clone(&w), Arc::clone(&out));
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let r = w
                        .append_blocking(NewEntry {
                            component: "sandbox".into(),
                            kind: "command.output".into(),
                            actor: format!("thread:{t}"),
                            subject: format!("n-{i}"),
                            payload: json!({"t": t, "i": i, "pad": "x".repeat(64)}),
                        })
                        .unwrap();
                    // Bypasses libtest's capture: goes straight to the pipe.
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {}", r.seq).unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn run_round(state: &Path, rng: &mut impl Rng) -> Vec<u64> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "kill_9_loses_no_acknowledged_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // Only complete lines count: a torn last line is not an ack we saw.
            if line.last() != Some(&b'\n') {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(seq) = text.trim().strip_prefix("ACK ") {
                acked.push(seq.parse::<u64>().unwrap());
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(rng.gen_range(20..300)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn kill_9_loses_no_acknowledged_entry() {
    if let Ok(state) = std::env::var(CHILD_ENV) {
        return child_appender(&state);
    }
    // /var/tmp: a real disk (not tmpfs), so fsync means something.
    let base = PathBuf::from("/var/tmp");
    let dir = if base.is_dir() {
        tempfile::tempdir_in(base).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let paths = AuditPaths::in_state_dir(dir.path());
    let mut rng = rand::thread_rng();
    let mut total_acked = 0usize;
    let mut max_acked = 0u64;
    for round in 0..ROUNDS {
        let acked = run_round(dir.path(), &mut rng);
        total_acked += acked.len();
        // Killed before the first anchor (or before the db file): nothing
        // can have been acknowledged, since the anchor is written first.
        if !paths.db.exists() || !paths.anchor.exists() {
            assert!(acked.is_empty(), "round {round}: acked without an anchor");
            continue;
        }
        let report = verify(&paths.db, Some(&paths.anchor), Some(&key()))
            .unwrap_or_else(|e| panic!("round {round}: verify error {e}"));
        let VerifyReport::Intact {
            last_seq,
            first_seq,
            anchor_seq,
            ..
        } = report
        else {
            panic!("round {round}: {report}");
        };
        assert!(first_seq <= 1);
        max_acked = max_acked.max(acked.iter().copied().max().unwrap_or(0));
        assert!(
            max_acked <= last_seq,
            "round {round}: acked {max_acked} but db ends at {last_seq}"
        );
        // The anchor is written before the ack, so it covers every ack.
        assert!(
            anchor_seq.unwrap_or(0) >= max_acked,
            "round {round}: anchor behind an ack"
        );
        // Spot-check the acknowledged rows are really there.
        if let Some(&seq) = acked.last() {
            let r = AuditReader::open(&paths.db).unwrap();
            let got = r
                .tail(&Filter {
                    after_seq: Some(seq - 1),
                    limit: 1,
                    ..Filter::default()
                })
                .unwrap();
            assert_eq!(got.first().map(|e| e.seq), Some(seq), "round {round}");
        }
        let anchor = Anchor::read(&paths.anchor).unwrap().unwrap();
        assert!(anchor.seq <= last_seq);
    }
    assert!(total_acked > 0, "no child ever acknowledged an append");
    eprintln!("kill -9: {ROUNDS} rounds, {total_acked} acknowledged appends, all present");
}
