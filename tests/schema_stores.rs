//! Schema versions of the appliance's databases (issue #25), per store:
//! - fixtures made by each older schema (`tests/data/schema/`, rebuilt by
//!   `make_fixtures` below) open, migrate, and read back every row, through
//!   the stores' own APIs and as raw rows of every table;
//! - a file from a newer image is refused with the one sentence and left as
//!   it was (byte for byte for `state.db`);
//! - kill -9 during a migration (the test binary re-executed as a child with
//!   `COWORK_SCHEMA_KILL_CHILD`, killed once its write-ahead log shows the
//!   step in progress) leaves the old or the new schema, never a mix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cowork::audit::{
    AuditPaths, AuditReader, AuditSettings, AuditWriter, CheckpointKey, Filter, Redactor,
    VerifyReport,
};
use cowork::gateway::identities::Standing;
use cowork::gateway::state_db::{self, STATE_DB};
use cowork::gateway::store::Store;
use cowork::gateway::tasks::store::{ApprovalStore, TaskStore};
use cowork::keystore::vault::Vault;
use cowork::keystore::{DerivedKey, Purpose};
use cowork::schema::{Change, Record, Schema, SchemaError, Step};
use rand::Rng;
use rusqlite::Connection;

mod common;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schema");
/// `state.db` as images before schema versions wrote it: the baseline
/// tables, `user_version` 0, one row in every table.
const STATE_V0: &str = "state-v0.db";
/// `state.db` as an image of schema 1 wrote it: version and oldest reader 1,
/// a secret, a user, and three tasks and approvals (the tables step 2 indexes).
const STATE_V1: &str = "state-v1.db";
/// `state.db` as an image of schema 2 wrote it: version 2, oldest reader 1,
/// a user and a task (the tables step 3 does not touch).
const STATE_V2: &str = "state-v2.db";
/// `audit.db` (with its anchor) as written at schema 1.
const AUDIT_V1: &str = "audit-v1";
const VAULT_KEY: [u8; 32] = [5; 32];
const AUDIT_KEY: [u8; 32] = [9; 32];
const SENTENCE_TAIL: &str = "the appliance was rolled back across an incompatible update";

fn vault() -> Vault {
    Vault::new(DerivedKey::from_supervisor(Purpose::Vault, VAULT_KEY))
}

/// A copy of a fixture file in a fresh directory.
fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(state_db::FILE);
    std::fs::copy(Path::new(FIXTURES).join(name), &to).unwrap();
    (dir, to)
}

/// The fixture itself, read-only (what it held before any migration).
fn fixture_read_only(name: &str) -> Connection {
    Connection::open_with_flags(
        Path::new(FIXTURES).join(name),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// Every table's rows as text, over the columns `columns_from` has (the
/// fixture's own, so columns a later step adds do not count).
fn all_rows(conn: &Connection, columns_from: &Connection) -> Vec<(String, Vec<String>)> {
    let tables: Vec<String> = columns_from
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let columns: Vec<String> = columns_from
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .unwrap()
                .query_map([&t], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut st = conn
                .prepare(&format!(
                    "SELECT {} FROM {t} ORDER BY 1",
                    columns.join(", ")
                ))
                .unwrap();
            let rows = st
                .query_map([], |r| {
                    Ok((0..columns.len())
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (t, rows)
        })
        .collect()
}

#[test]
fn state_db_of_before_versions_migrates_and_every_row_reads() {
    let (dir, path) = fixture_copy(STATE_V0);
    let original = fixture_read_only(STATE_V0);
    let before = all_rows(&original, &original);
    assert_eq!(before.len(), 12, "the fixture has every baseline table");
    for (table, rows) in &before {
        assert_eq!(rows.len(), 1, "fixture table {table} has its row");
    }

    let (conn, m) = state_db::open(&path).unwrap();
    assert_eq!((m.from, m.to), (0, STATE_DB.latest()));
    let copy = m.copy.clone().expect("a copy before the first step");
    assert_eq!(copy, dir.path().join("state.db.pre-v0"));
    assert_eq!(
        all_rows(&Connection::open(&copy).unwrap(), &original),
        before
    );
    assert_eq!(
        all_rows(&conn, &original),
        before,
        "every row survives the migration"
    );
    let payload = m.audit_payload();
    assert_eq!(
        (payload["from"].as_u64(), payload["to"].as_u64()),
        (Some(0), Some(u64::from(STATE_DB.latest())))
    );

    // Through the stores' own APIs.
    assert_eq!(
        vault().get(&conn, "telegram_token").unwrap().as_slice(),
        b"fixture-token"
    );
    let users = Store::open_path(&path).unwrap().list_users(None).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].channel.as_str(), users[0].sender.as_str()),
        ("telegram", "42")
    );
    let (tasks, _) = TaskStore::open(&conn, 1_000).unwrap();
    assert_eq!(
        tasks.get("task-1").unwrap().unwrap().prompt,
        "list the files"
    );
    let approvals = ApprovalStore::open(&conn).unwrap();
    assert_eq!(approvals.get("appr-1").unwrap().unwrap().command, "ls -la");

    // A second open is a no-op and takes no new copy.
    std::fs::remove_file(&copy).unwrap();
    let (_, again) = state_db::open(&path).unwrap();
    assert!(!again.changed() && again.copy.is_none());
}

/// The query plan of `sql` on `conn`, one line per step.
fn plan(conn: &Connection, sql: &str) -> String {
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .join("; ")
}

/// The listings of tasks and approvals, as the stores run them.
const LISTINGS: [&str; 3] = [
    "SELECT id FROM agent_tasks ORDER BY created_at DESC, rowid DESC LIMIT 20",
    "SELECT id FROM agent_approvals ORDER BY created_at DESC, rowid DESC LIMIT 20",
    "SELECT id FROM agent_approvals WHERE status = 'pending' ORDER BY created_at, rowid",
];

/// Step 2 (the listing indexes) on a file an image of schema 1 wrote: a copy
/// first, every row kept, the stores read it, and the listings use the
/// indexes instead of scanning and sorting every task and approval.
#[test]
fn state_db_of_schema_1_migrates_to_2_and_every_row_reads() {
    let (dir, path) = fixture_copy(STATE_V1);
    let original = fixture_read_only(STATE_V1);
    assert_eq!(STATE_DB.version(&original, &path).unwrap(), 1);
    let before = all_rows(&original, &original);
    for listing in LISTINGS {
        let p = plan(&original, listing);
        assert!(
            p.contains("SCAN") && p.contains("TEMP B-TREE"),
            "schema 1 scans and sorts: {p}"
        );
    }

    let (conn, m) = state_db::open(&path).unwrap();
    // Through step 3 too (the kept safety numbers: a new, empty table).
    assert_eq!((m.from, m.to), (1, 3));
    assert_eq!(
        m.copy.as_deref(),
        Some(dir.path().join("state.db.pre-v1").as_path())
    );
    assert_eq!(
        all_rows(&conn, &original),
        before,
        "every row survives step 2"
    );
    assert_eq!(
        STATE_DB.found(&conn, &path).unwrap().oldest_reader,
        1,
        "an image of schema 1 still reads the file"
    );
    for listing in LISTINGS {
        let p = plan(&conn, listing);
        assert!(
            p.contains("USING INDEX") && !p.contains("TEMP B-TREE"),
            "{listing}: {p}"
        );
    }

    // Through the stores' own APIs: newest first, pending oldest first.
    let (tasks, _) = TaskStore::open(&conn, 10_000).unwrap();
    let recent: Vec<String> = tasks.recent(2).unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(recent, ["task-3", "task-2"]);
    let approvals = ApprovalStore::open(&conn).unwrap();
    let recent: Vec<String> = approvals
        .recent(5)
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(recent, ["appr-3", "appr-2", "appr-1"]);
    let pending: Vec<String> = approvals
        .pending(1_000)
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(pending, ["appr-2", "appr-3"]);
    assert_eq!(
        vault().get(&conn, "telegram_token").unwrap().as_slice(),
        b"fixture-token"
    );
    let store = Store::open_path(&path).unwrap();
    assert_eq!(store.list_users(None).unwrap().len(), 1);
    assert_eq!(store.identity("signal", "someone").unwrap(), None);
}

/// Step 3 (the kept safety numbers) on a file an image of schema 2 wrote:
/// every row kept, the new table empty and usable, and the file still
/// readable by an image of schema 1 (the step is additive).
#[test]
fn state_db_of_schema_2_migrates_to_3_and_every_row_reads() {
    let (_dir, path) = fixture_copy(STATE_V2);
    let original = fixture_read_only(STATE_V2);
    assert_eq!(STATE_DB.version(&original, &path).unwrap(), 2);
    let before = all_rows(&original, &original);
    let (conn, m) = state_db::open(&path).unwrap();
    assert_eq!((m.from, m.to), (2, 3));
    assert_eq!(
        all_rows(&conn, &original),
        before,
        "every row survives step 3"
    );
    assert_eq!(STATE_DB.found(&conn, &path).unwrap().oldest_reader, 1);
    drop(conn);
    let store = Store::open_path(&path).unwrap();
    let aci = "7ccae375-cd51-4c82-8b1e-7be3280aa485";
    assert_eq!(store.list_users(None).unwrap().len(), 1);
    assert_eq!(store.identity("signal", aci).unwrap(), None);
    store
        .keep_identity("signal", aci, &"1".repeat(60), Standing::Confirmed, 2000)
        .unwrap();
    assert_eq!(
        store.identity("signal", aci).unwrap().unwrap().standing,
        Standing::Confirmed
    );
}

#[test]
fn state_db_from_a_newer_image_is_refused_and_left_alone() {
    let (_dir, path) = fixture_copy(STATE_V0);
    let newer = STATE_DB.latest() + 1;
    {
        let (conn, _) = state_db::open(&path).unwrap();
        // A schema only images of `newer` and later can read.
        conn.pragma_update(None, "user_version", newer).unwrap();
        conn.execute("UPDATE schema_readers SET oldest = ?1", [newer])
            .unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let e = state_db::open(&path).unwrap_err();
    let chain = cowork::error_chain(&e);
    assert!(
        chain.ends_with(&format!(
            "state.db has schema {newer}; this image knows up to {}: {SENTENCE_TAIL}",
            STATE_DB.latest()
        )),
        "{chain}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "not one byte changed");
    assert!(Store::open_path(&path).is_err(), "every way in refuses it");
    // The component finds the sentence in its error to report it.
    let any = anyhow::Error::new(e).context("opening the gateway");
    assert_eq!(
        SchemaError::too_new_in(&any)
            .map(ToString::to_string)
            .as_deref(),
        Some(
            format!(
                "state.db has schema {newer}; this image knows up to {}: {SENTENCE_TAIL}",
                STATE_DB.latest()
            )
            .as_str()
        )
    );
}

fn audit_copy() -> (tempfile::TempDir, AuditPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    std::fs::create_dir_all(paths.db.parent().unwrap()).unwrap();
    let from = Path::new(FIXTURES).join(AUDIT_V1);
    std::fs::copy(from.join("audit.db"), &paths.db).unwrap();
    std::fs::copy(from.join("audit.anchor"), &paths.anchor).unwrap();
    (dir, paths)
}

#[test]
fn audit_db_fixture_opens_verifies_and_reads_every_entry() {
    let (_dir, paths) = audit_copy();
    let key = CheckpointKey::from_bytes(AUDIT_KEY);
    let report = cowork::audit::verify(&paths.db, Some(&paths.anchor), Some(&key)).unwrap();
    assert!(
        matches!(report, VerifyReport::Intact { entries: 3, .. }),
        "{report:?}"
    );
    let w = AuditWriter::open(&paths, key, &AuditSettings::default(), Redactor::new()).unwrap();
    assert!(!w.migration().changed());
    assert_eq!(w.migration().to, 1);
    drop(w);
    let entries = AuditReader::open(&paths.db)
        .unwrap()
        .tail(&Filter::default())
        .unwrap();
    let subjects: Vec<&str> = entries.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["fixture-1", "fixture-2", "fixture-3"]);
}

#[test]
fn audit_db_from_a_newer_image_is_refused_by_the_writer_and_by_verify() {
    let (_dir, paths) = audit_copy();
    {
        let c = Connection::open(&paths.db).unwrap();
        c.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '2'), ('schema_readers', '2')",
            [],
        )
        .unwrap();
    }
    let key = CheckpointKey::from_bytes(AUDIT_KEY);
    let want = format!("audit.db has schema 2; this image knows up to 1: {SENTENCE_TAIL}");
    let e = AuditWriter::open(&paths, key, &AuditSettings::default(), Redactor::new()).unwrap_err();
    assert!(cowork::error_chain(&e).ends_with(&want), "{e}");
    let key = CheckpointKey::from_bytes(AUDIT_KEY);
    let e = cowork::audit::verify(&paths.db, Some(&paths.anchor), Some(&key)).unwrap_err();
    assert!(cowork::error_chain(&e).ends_with(&want), "{e}");
    let c = Connection::open(&paths.db).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3, "nothing was written to it");
}

// ---- kill -9 during a migration ----

const KILL_CHILD_ENV: &str = "COWORK_SCHEMA_KILL_CHILD";
const BIG_ROWS: i64 = 200_000;
const KILL_V1: &str =
    "CREATE TABLE IF NOT EXISTS big (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);";
/// A step long enough to be killed in: copies ~40 MB, adds a column, indexes.
const KILL_V2: &str = "
CREATE TABLE IF NOT EXISTS big_copy (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
INSERT INTO big_copy SELECT id, payload FROM big;
ALTER TABLE big ADD COLUMN note TEXT NOT NULL DEFAULT 'v2';
CREATE INDEX IF NOT EXISTS big_payload ON big (payload);
";
const KILL_STEPS: &[Step] = &[
    Step {
        sql: &[KILL_V1],
        change: Change::Additive,
    },
    Step {
        sql: &[KILL_V2],
        change: Change::Incompatible {
            restore: "test only: fills a table from another",
        },
    },
];
const KILL_SCHEMA: Schema = Schema {
    name: "kill.db",
    steps: KILL_STEPS,
    record: Record::UserVersion,
};

fn kill_open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c
}

/// What a database killed during step 2 may look like: all of version 1
/// or all of version 2.
fn assert_old_or_new(path: &Path) -> u32 {
    let c = kill_open(path);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let v = KILL_SCHEMA.version(&c, path).unwrap();
    let has = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    let copy_table = has("SELECT count(*) FROM sqlite_master WHERE name = 'big_copy'");
    let index = has("SELECT count(*) FROM sqlite_master WHERE name = 'big_payload'");
    let note = has("SELECT count(*) FROM pragma_table_info('big') WHERE name = 'note'");
    assert_eq!(has("SELECT count(*) FROM big"), BIG_ROWS);
    match v {
        1 => assert_eq!(
            (copy_table, index, note),
            (0, 0, 0),
            "version 1 with parts of 2"
        ),
        2 => {
            assert_eq!(
                (copy_table, index, note),
                (1, 1, 1),
                "version 2 missing parts"
            );
            assert_eq!(has("SELECT count(*) FROM big_copy"), BIG_ROWS);
        }
        other => panic!("version {other} after a kill during 1 → 2"),
    }
    v
}

fn wal_len(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

#[test]
fn kill_9_during_a_migration_leaves_the_old_or_the_new_schema() {
    if let Ok(path) = std::env::var(KILL_CHILD_ENV) {
        // Child: migrate, and let the parent kill us somewhere inside.
        let path = PathBuf::from(path);
        let mut c = kill_open(&path);
        KILL_SCHEMA.migrate(&mut c, &path).unwrap();
        return;
    }
    // /var/tmp: a real disk where there is one, so the kill meets real I/O.
    let base = Path::new("/var/tmp");
    let dir = if base.is_dir() {
        tempfile::tempdir_in(base).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let path = dir.path().join("kill.db");
    let v1 = Schema {
        steps: KILL_STEPS.split_at(1).0,
        ..KILL_SCHEMA
    };
    let mut rng = rand::thread_rng();
    let mut seen = [0u32; 3];
    for round in 0..4 {
        for f in [
            &path,
            &dir.path().join("kill.db-wal"),
            &dir.path().join("kill.db-shm"),
        ] {
            let _ = std::fs::remove_file(f);
        }
        {
            let mut c = kill_open(&path);
            v1.migrate(&mut c, &path).unwrap();
            c.execute_batch(&format!(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {BIG_ROWS})
                 INSERT INTO big SELECT x, randomblob(200) FROM n;
                 PRAGMA wal_checkpoint(TRUNCATE);"
            ))
            .unwrap();
        }
        // Kill once the step has written this much of its transaction to
        // the log (it writes ~50 MB in all); the last round lets it finish.
        let threshold = if round == 3 {
            u64::MAX
        } else {
            rng.gen_range(1..30) * 1024 * 1024
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill_9_during_a_migration_leaves_the_old_or_the_new_schema",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL_CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let finished = common::wait_until(Duration::from_secs(120), "the step in progress", || {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the child's migration failed: {status}");
                return Some(true);
            }
            (wal_len(&path) >= threshold).then_some(false)
        });
        if !finished {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        let v = assert_old_or_new(&path);
        seen[v as usize] += 1;
        // The copy taken before the step is the whole of version 1.
        let copy = cowork::schema::copy_path(&path, 1);
        let old = Connection::open(&copy).unwrap();
        assert_eq!(KILL_SCHEMA.version(&old, &copy).unwrap(), 1);
        let n: i64 = old
            .query_row("SELECT count(*) FROM big", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, BIG_ROWS);
        // And the next open finishes what was interrupted.
        let mut c = kill_open(&path);
        assert_eq!(KILL_SCHEMA.migrate(&mut c, &path).unwrap().to, 2);
        drop(c);
        assert_eq!(assert_old_or_new(&path), 2);
        if finished {
            eprintln!("round {round}: not killed → schema {v}");
        } else {
            eprintln!("round {round}: killed at {threshold} bytes of log → schema {v}");
        }
    }
    assert!(seen[1] >= 1, "no kill landed inside the step: {seen:?}");
}

// ---- fixtures ----

/// Rebuilds `tests/data/schema/`: `cargo test --test schema_stores -- --ignored make_fixtures`.
/// `state-v0.db` is made the way images before schema versions made it (the
/// baseline statements, no version recorded); `audit-v1/` by the audit writer.
#[test]
#[ignore = "rebuilds the fixtures in tests/data/schema"]
fn make_fixtures() {
    let out = Path::new(FIXTURES);
    std::fs::create_dir_all(out.join(AUDIT_V1)).unwrap();

    let state = out.join(STATE_V0);
    let _ = std::fs::remove_file(&state);
    let conn = Connection::open(&state).unwrap();
    for batch in STATE_DB.steps[0].sql {
        conn.execute_batch(batch).unwrap();
    }
    vault()
        .set(&conn, "telegram_token", b"fixture-token")
        .unwrap();
    conn.execute_batch(
        "INSERT INTO gateway_users VALUES ('telegram', '42', 'paired', 1000, 1100, 'Alice');
         INSERT INTO gateway_pairing_codes (channel, code_hash, created_at, expires_at, state, used_by)
             VALUES ('telegram', zeroblob(32), 1000, 1600, 'used', '42');
         INSERT INTO gateway_code_guesses VALUES (1, 2, NULL);
         INSERT INTO gateway_redeem_limits VALUES ('sender', 'telegram', '43', 1000, 3, 0);
         INSERT INTO gateway_pairing_prompts VALUES ('telegram', '43', 1001);
         INSERT INTO gateway_seen_events VALUES ('telegram', '9001', 1002);
         INSERT INTO agent_tasks VALUES ('task-1', 'telegram:42', 'list the files', 'completed', 'done', 1003, 1004);
         INSERT INTO agent_approvals VALUES ('appr-1', 'task-1', 'ls -la', '/work', 'approved', 'telegram:42', 1003, 1303);
         INSERT INTO gateway_task_origins VALUES ('task-1', 'telegram', 'chat-1', '42', 0, 'run_command,read_file');
         INSERT INTO gateway_usage_daily VALUES ('telegram:42', 20000, 1234, 0.05);",
    )
    .unwrap();
    conn.execute_batch("VACUUM").unwrap();
    drop(conn);

    // Schema 1, as the runner of an image that knew one step wrote it.
    let state = out.join(STATE_V1);
    let _ = std::fs::remove_file(&state);
    let schema_1 = Schema {
        steps: &STATE_DB.steps[..1],
        ..STATE_DB
    };
    let mut conn = Connection::open(&state).unwrap();
    schema_1.migrate(&mut conn, &state).unwrap();
    vault()
        .set(&conn, "telegram_token", b"fixture-token")
        .unwrap();
    conn.execute_batch(
        "INSERT INTO gateway_users VALUES ('telegram', '42', 'paired', 1000, 1100, 'Alice');
         INSERT INTO gateway_seen_events VALUES ('telegram', '9001', 1002);
         INSERT INTO agent_tasks VALUES ('task-1', 'telegram:42', 'list the files', 'completed', 'done', 1003, 1004);
         INSERT INTO agent_tasks VALUES ('task-2', 'telegram:42', 'show the disk', 'awaiting_approval', NULL, 1005, 1005);
         INSERT INTO agent_tasks VALUES ('task-3', 'telegram:42', 'count lines', 'awaiting_approval', NULL, 1006, 1006);
         INSERT INTO agent_approvals VALUES ('appr-1', 'task-1', 'ls -la', '/work', 'approved', 'telegram:42', 1003, 1303);
         INSERT INTO agent_approvals VALUES ('appr-2', 'task-2', 'df -h', '/work', 'pending', NULL, 1005, 100000);
         INSERT INTO agent_approvals VALUES ('appr-3', 'task-3', 'wc -l x', '/work', 'pending', NULL, 1006, 100000);
         INSERT INTO gateway_task_origins VALUES ('task-1', 'telegram', 'chat-1', '42', 0, 'run_command');
         INSERT INTO gateway_usage_daily VALUES ('telegram:42', 20000, 1234, 0.05);",
    )
    .unwrap();
    conn.execute_batch("VACUUM").unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);

    // Schema 2, as the runner of an image that knew two steps wrote it.
    let state = out.join(STATE_V2);
    let _ = std::fs::remove_file(&state);
    let schema_2 = Schema {
        steps: &STATE_DB.steps[..2],
        ..STATE_DB
    };
    let mut conn = Connection::open(&state).unwrap();
    schema_2.migrate(&mut conn, &state).unwrap();
    conn.execute_batch(
        "INSERT INTO gateway_users VALUES ('signal', '7ccae375-cd51-4c82-8b1e-7be3280aa485', 'allowlisted', 1000, 1100, NULL);
         INSERT INTO agent_tasks VALUES ('task-1', 'signal:7ccae375-cd51-4c82-8b1e-7be3280aa485', 'hi', 'completed', 'done', 1003, 1004);",
    )
    .unwrap();
    conn.execute_batch("VACUUM").unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);

    let tmp = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(tmp.path());
    let w = AuditWriter::open(
        &paths,
        CheckpointKey::from_bytes(AUDIT_KEY),
        &AuditSettings::default(),
        Redactor::new(),
    )
    .unwrap();
    for i in 1..=3 {
        w.append_blocking(cowork::audit::NewEntry {
            component: "gateway".into(),
            kind: "fixture.entry".into(),
            actor: "test".into(),
            subject: format!("fixture-{i}"),
            payload: serde_json::json!({"i": i}),
        })
        .unwrap();
    }
    drop(w);
    let c = Connection::open(&paths.db).unwrap();
    c.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
    drop(c);
    std::fs::copy(&paths.db, out.join(AUDIT_V1).join("audit.db")).unwrap();
    std::fs::copy(&paths.anchor, out.join(AUDIT_V1).join("audit.anchor")).unwrap();
}
