//! Durable audit appends per second and p50/p99 latency at 1, 8 and 64
//! concurrent clients (tokio tasks on a 2-worker runtime calling
//! `AuditWriter::append`), beside a raw SQLite baseline measured in the same
//! run: same rows, same durability (WAL + synchronous=FULL), no chain, no
//! anchor, no IPC — each client is a thread with its own connection doing
//! BEGIN IMMEDIATE / INSERT / COMMIT per row, busy_timeout 10 s.
//!
//! Run: `cargo bench --bench audit_append` (AUDIT_BENCH_SECS=N per cell,
//! default 3; AUDIT_BENCH_DIR to override /var/tmp). Goal: at 64 clients at
//! least 50% of the baseline's throughput and p99 under 10 ms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cowork::audit::chain::canonical_json;
use cowork::audit::{AuditPaths, AuditSettings, AuditWriter, CheckpointKey, NewEntry, Redactor};
use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::json;

fn payload(i: u64) -> serde_json::Value {
    json!({
        "cmd": "ls -la /workspace/project",
        "exit": 0,
        "i": i,
        "output": "total 48\ndrwxr-xr-x 5 cowork cowork 4096 src\n-rw-r--r-- 1 cowork cowork 812 Cargo.toml\n",
    })
}

fn entry(client: usize, i: u64) -> NewEntry {
    NewEntry {
        component: "sandbox".into(),
        kind: "command.output".into(),
        actor: format!("telegram:{}", 100_000 + client),
        subject: format!("task-{client}-{i}"),
        payload: payload(i),
    }
}

#[derive(Debug)]
struct Cell {
    ops: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn summarize(mut lat: Vec<Duration>, secs: f64) -> Cell {
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx].as_secs_f64() * 1e3
    };
    Cell {
        ops: lat.len(),
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

fn bench_audit(dir: &Path, clients: usize, dur: Duration) -> Cell {
    let paths = AuditPaths::in_state_dir(dir);
    let w = Arc::new(
        AuditWriter::open(
            &paths,
            CheckpointKey::generate(),
            &AuditSettings::default(),
            Redactor::new(),
        )
        .expect("open writer"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let deadline = start + dur;
    let lat = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let w = Arc::clone(&w);
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        w.append(entry(c, i)).await.expect("append");
                        lat.push(t0.elapsed());
                        i += 1;
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let secs = start.elapsed().as_secs_f64();
    drop(rt);
    if let Ok(w) = Arc::try_unwrap(w) {
        w.shutdown().expect("shutdown");
    }
    summarize(lat, secs)
}

fn bench_baseline(dir: &Path, clients: usize, dur: Duration) -> Cell {
    let db = dir.join("baseline.db");
    {
        let c = Connection::open(&db).expect("open baseline");
        c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .expect("wal");
        c.execute_batch(
            "CREATE TABLE entries(
                seq INTEGER PRIMARY KEY, time TEXT NOT NULL, component TEXT NOT NULL,
                kind TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT NOT NULL,
                payload BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
             CREATE INDEX entries_kind ON entries(kind);
             CREATE INDEX entries_time ON entries(time);",
        )
        .expect("schema");
    }
    let start = Instant::now();
    let deadline = start + dur;
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut conn = Connection::open(&db).expect("open");
                conn.busy_timeout(Duration::from_secs(10)).expect("busy");
                conn.execute_batch("PRAGMA synchronous=FULL").expect("sync");
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let e = entry(c, i);
                    let t0 = Instant::now();
                    let mut p = Vec::new();
                    canonical_json(&e.payload, &mut p);
                    let time = cowork::audit::chain::now_rfc3339().expect("time");
                    let tx = conn
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .expect("begin");
                    tx.execute(
                        "INSERT INTO entries(time, component, kind, actor, subject, payload, prev_hash, hash)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![time, e.component, e.kind, e.actor, e.subject, p, &[0u8; 32][..], &[1u8; 32][..]],
                    )
                    .expect("insert");
                    tx.commit().expect("commit");
                    lat.push(t0.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("thread"));
    }
    summarize(all, start.elapsed().as_secs_f64())
}

fn fs_type(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        if canon.starts_with(f[1]) && best.as_ref().is_none_or(|(l, _)| f[1].len() > *l) {
            best = Some((f[1].len(), format!("{} on {} ({})", f[2], f[1], f[0])));
        }
    }
    best.map_or_else(|| "unknown".into(), |(_, s)| s)
}

fn main() {
    let secs: u64 = std::env::var("AUDIT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let base = std::env::var("AUDIT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/tmp"));
    let dur = Duration::from_secs(secs);
    println!(
        "audit_append: {secs} s per cell, dir {} — filesystem {}",
        base.display(),
        fs_type(&base)
    );
    println!(
        "{:>7} | {:>12} {:>8} {:>8} | {:>12} {:>8} {:>8} | {:>7}",
        "clients", "audit ops/s", "p50 ms", "p99 ms", "sqlite ops/s", "p50 ms", "p99 ms", "ratio"
    );
    for clients in [1usize, 8, 64] {
        let d1 = tempfile::tempdir_in(&base).expect("tempdir");
        let a = bench_audit(d1.path(), clients, dur);
        let d2 = tempfile::tempdir_in(&base).expect("tempdir");
        let b = bench_baseline(d2.path(), clients, dur);
        let (ta, tb) = (a.ops as f64 / a.secs, b.ops as f64 / b.secs);
        println!(
            "{:>7} | {:>12.0} {:>8.2} {:>8.2} | {:>12.0} {:>8.2} {:>8.2} | {:>6.0}%",
            clients,
            ta,
            a.p50_ms,
            a.p99_ms,
            tb,
            b.p50_ms,
            b.p99_ms,
            100.0 * ta / tb
        );
    }
}
