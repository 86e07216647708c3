//! The write side of `audit.db`: schema, the single write connection, batch
//! commits, checkpoints, pruning and the anchor update. Only the writer
//! thread (see `writer.rs`) owns a [`WriteStore`].

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::anchor::{self, Anchor, AnchorSlots};
use super::chain::{EntryFields, GENESIS_PREV, entry_hash, now_rfc3339};
use super::error::{AuditError, Result};
use super::key::CheckpointKey;
use crate::schema::{Change, Migration, Record, Schema, Step};

/// `audit.db`'s schema steps (see [`crate::schema`]). The version is
/// `meta.schema_version`, as it was before the runner existed (and as
/// `coworkctl audit verify` reads it); step 1 is the baseline [`SCHEMA`].
pub const AUDIT_DB: Schema = Schema {
    name: "audit.db",
    steps: &[Step {
        sql: &[SCHEMA],
        change: Change::Additive,
    }],
    record: Record::MetaRow {
        table: "meta",
        key: "schema_version",
        readers_key: "schema_readers",
    },
};

/// id, seq, head_hash, time, mac, reason of one `checkpoints` row.
type CheckpointRow = (i64, u64, Vec<u8>, String, Vec<u8>, String);

/// How often, at most, `audit.anchor` is replaced while appends go on. The
/// slots file makes every commit's anchor durable; `audit.anchor` is what an
/// older image reads after a rollback, and a replace (a new inode, a rename,
/// the old one freed) cost more than the rest of a commit together. It is
/// brought up to the head within this time of an append, and at once at
/// every checkpoint, re-key and shutdown (flushed there).
pub const ANCHOR_FILE_EVERY: Duration = Duration::from_secs(1);

/// One entry's size in bytes, as SQL over an `entries` row.
const ROW_BYTES: &str = "8 + length(time) + length(component) + length(kind) + length(actor) \
     + length(subject) + length(payload) + length(prev_hash) + length(hash)";

/// [`ROW_BYTES`] of one entry as it is inserted: SQLite's `length` counts the
/// characters of a TEXT and the bytes of a BLOB (payload and both hashes).
fn row_bytes(time: &str, p: &Prepared) -> u64 {
    let chars = |s: &str| s.chars().count() as u64;
    8 + chars(time)
        + chars(&p.component)
        + chars(&p.kind)
        + chars(&p.actor)
        + chars(&p.subject)
        + p.payload.len() as u64
        + 32
        + 32
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries(
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    component TEXT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    payload   BLOB NOT NULL,
    prev_hash BLOB NOT NULL CHECK(length(prev_hash) = 32),
    hash      BLOB NOT NULL CHECK(length(hash) = 32)
);
CREATE INDEX IF NOT EXISTS entries_kind ON entries(kind);
CREATE INDEX IF NOT EXISTS entries_time ON entries(time);
CREATE TABLE IF NOT EXISTS checkpoints(
    id        INTEGER PRIMARY KEY,
    seq       INTEGER NOT NULL,
    head_hash BLOB NOT NULL CHECK(length(head_hash) = 32),
    time      TEXT NOT NULL,
    mac       BLOB NOT NULL,
    reason    TEXT NOT NULL CHECK(reason IN ('interval','shutdown','prune','commit'))
);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Where the audit component keeps its files. System paths are parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPaths {
    /// `$STATE/audit/audit.db`
    pub db: PathBuf,
    /// `$STATE/audit/audit.anchor`
    pub anchor: PathBuf,
    /// `$STATE/audit/checkpoint.key` (until the keystore hands the key out)
    pub key: PathBuf,
}

impl AuditPaths {
    /// The standard layout under a state directory.
    pub fn in_state_dir(state: &Path) -> Self {
        let dir = state.join("audit");
        AuditPaths {
            db: dir.join("audit.db"),
            anchor: dir.join("audit.anchor"),
            key: dir.join("checkpoint.key"),
        }
    }
}

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointReason {
    /// Every N entries / T seconds.
    Interval,
    /// On `AuditWriter::shutdown`.
    Shutdown,
    /// After pruning: records (first_kept_seq - 1, prev_hash of first kept).
    Prune,
    /// On explicit request (`AuditWriter::checkpoint`), e.g. before an export or update.
    Commit,
}

impl CheckpointReason {
    /// The text stored in `checkpoints.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointReason::Interval => "interval",
            CheckpointReason::Shutdown => "shutdown",
            CheckpointReason::Prune => "prune",
            CheckpointReason::Commit => "commit",
        }
    }
}

/// A checkpoint that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub seq: u64,
    pub head: [u8; 32],
    pub reason: CheckpointReason,
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Rows deleted.
    pub deleted: u64,
    /// First seq still in the db (None if nothing is stored).
    pub first_kept_seq: Option<u64>,
}

/// An entry ready for the chain: validated, redacted, canonical payload.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub component: String,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub payload: Vec<u8>,
}

/// A row as committed, for the journald mirror.
#[derive(Debug)]
pub(crate) struct Committed {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// The single write connection plus the chain state in memory.
#[derive(Debug)]
pub(crate) struct WriteStore {
    conn: Connection,
    db_path: PathBuf,
    anchor_path: PathBuf,
    /// `audit.anchor-slots`: the per-commit durable anchor.
    slots: AnchorSlots,
    key: CheckpointKey,
    db_id: [u8; 16],
    last_seq: u64,
    head: [u8; 32],
    ckpt_every_entries: u64,
    ckpt_every: Duration,
    since_ckpt: u64,
    last_ckpt_at: Instant,
    /// When `audit.anchor` was last replaced, and whether the head has moved
    /// since (see [`ANCHOR_FILE_EVERY`]).
    anchor_file_at: Instant,
    anchor_file_stale: bool,
    /// What the entries take ([`ROW_BYTES`]), kept up to date by each commit
    /// once measured: the measure scans every entry, and the size bound is
    /// checked every few hundred appends of a trail that holds millions.
    /// `None` until measured, and again after a prune.
    entries_bytes: Option<u64>,
    /// What opening did to the schema (audited by the writer once open).
    migration: Migration,
}

fn sql_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn blob32(v: Vec<u8>) -> Option<[u8; 32]> {
    v.try_into().ok()
}

impl WriteStore {
    /// Opens (creating if needed) the db, checks it against the anchor and
    /// brings the anchor up to date.
    pub fn open(
        paths: &AuditPaths,
        key: CheckpointKey,
        ckpt_every_entries: u64,
        ckpt_every: Duration,
    ) -> Result<Self> {
        let db_path = paths.db.clone();
        if let Some(dir) = db_path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| AuditError::CreateFile {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        // Create the file 0600 ourselves; SQLite gives -wal/-shm the same mode.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&db_path)
            .map_err(|source| AuditError::CreateFile {
                path: db_path.clone(),
                source,
            })?;
        let open_err = |source| AuditError::OpenDb {
            path: db_path.clone(),
            source,
        };
        let mut conn = Connection::open(&db_path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(AuditError::NotAuditDb {
                path: db_path.clone(),
                reason: format!("cannot switch to WAL (journal_mode={mode})"),
            });
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;")
            .map_err(open_err)?;
        let migration = AUDIT_DB.migrate(&mut conn, &db_path)?;
        // Only now that this image could open it: older copies go once the
        // boot is not on trial (a refused file keeps them).
        migration.prune_copies(crate::schema::boot_on_trial(Path::new(
            crate::schema::EFIVARS_DIR,
        )));
        let db_id = Self::init_meta(&conn).map_err(open_err)?;
        let db_id =
            super::anchor::hex_array::<16>(&db_id).ok_or_else(|| AuditError::NotAuditDb {
                path: db_path.clone(),
                reason: "meta.db_id is not 16 bytes of hex".into(),
            })?;
        let last: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(open_err)?;
        let (last_seq, head) = match last {
            Some((s, h)) => (sql_u64(s), blob32(h).unwrap_or(GENESIS_PREV)),
            None => (0, GENESIS_PREV),
        };
        let slots = AnchorSlots::open(&anchor::slots_path(&paths.anchor), &key)?;
        let mut store = WriteStore {
            conn,
            db_path,
            anchor_path: paths.anchor.clone(),
            slots,
            key,
            db_id,
            last_seq,
            head,
            ckpt_every_entries: ckpt_every_entries.max(1),
            ckpt_every,
            since_ckpt: 0,
            last_ckpt_at: Instant::now(),
            anchor_file_at: Instant::now(),
            anchor_file_stale: false,
            entries_bytes: None,
            migration,
        };
        store.check_anchor_on_open()?;
        Ok(store)
    }

    /// The database's id and creation time, written once (the schema
    /// version beside them belongs to the migration runner).
    fn init_meta(conn: &Connection) -> rusqlite::Result<String> {
        let id: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='db_id'", [], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            return Ok(id);
        }
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let created = now_rfc3339().unwrap_or_default();
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('db_id', ?1), ('created', ?2)",
            params![hex::encode(id), created],
        )?;
        Ok(hex::encode(id))
    }

    /// Compares the db with the newest anchor. db behind the anchor → refuse;
    /// db ahead (the last batch committed but not yet anchored when the
    /// process died, or an older image kept it after a rollback) → check the
    /// unanchored links. Then re-anchors both files durably.
    fn check_anchor_on_open(&mut self) -> Result<()> {
        let mismatch = |reason: String| AuditError::OpenAnchorMismatch {
            path: self.anchor_path.clone(),
            reason,
        };
        let anchor = match anchor::read_newest(&self.anchor_path, Some(&self.key))? {
            Some(a) => a,
            None if self.last_seq == 0 => return self.anchor_flushed(),
            None => {
                return Err(mismatch(
                    "anchor file missing but the db has entries".into(),
                ));
            }
        };
        if !anchor.mac_valid(&self.key) {
            return Err(mismatch("anchor MAC invalid (wrong key or edited)".into()));
        }
        if anchor.db_id != self.db_id {
            return Err(mismatch("anchor belongs to another database".into()));
        }
        if anchor.seq > self.last_seq {
            return Err(AuditError::OpenRolledBack {
                path: self.db_path.clone(),
                db_seq: self.last_seq,
                anchor_seq: anchor.seq,
            });
        }
        let query_err = |source| AuditError::Query {
            path: self.db_path.clone(),
            source,
        };
        if anchor.seq > 0 {
            let at: Option<Vec<u8>> = self
                .conn
                .query_row(
                    "SELECT hash FROM entries WHERE seq = ?1",
                    [sql_i64(anchor.seq)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(query_err)?;
            // A missing row below the first kept one was pruned: nothing to compare.
            if let Some(h) = at
                && h.as_slice() != anchor.head.as_slice()
            {
                return Err(mismatch(format!(
                    "entry {} differs from the anchored head",
                    anchor.seq
                )));
            }
        }
        if anchor.seq < self.last_seq {
            self.check_links_after(anchor.seq, anchor.head)
                .map_err(mismatch)?;
        }
        self.anchor_flushed()
    }

    /// Recomputes the chain for the unanchored rows after `seq`.
    fn check_links_after(&self, seq: u64, head: [u8; 32]) -> std::result::Result<(), String> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, time, component, kind, actor, subject, payload, prev_hash, hash
                 FROM entries WHERE seq > ?1 ORDER BY seq",
            )
            .map_err(|e| e.to_string())?;
        let mut rows = stmt.query([sql_i64(seq)]).map_err(|e| e.to_string())?;
        let (mut expect, mut prev) = (seq + 1, head);
        while let Some(r) = rows.next().map_err(|e| e.to_string())? {
            let s = sql_u64(r.get(0).map_err(|e| e.to_string())?);
            let get = |i| r.get::<_, String>(i).map_err(|e| e.to_string());
            let payload: Vec<u8> = r.get(6).map_err(|e| e.to_string())?;
            let prev_hash: Vec<u8> = r.get(7).map_err(|e| e.to_string())?;
            let hash: Vec<u8> = r.get(8).map_err(|e| e.to_string())?;
            let (time, component, kind, actor, subject) =
                (get(1)?, get(2)?, get(3)?, get(4)?, get(5)?);
            let computed = entry_hash(&EntryFields {
                seq: s,
                time: &time,
                component: &component,
                kind: &kind,
                actor: &actor,
                subject: &subject,
                payload: &payload,
                prev_hash: &prev,
            });
            if s != expect
                || prev_hash.as_slice() != prev.as_slice()
                || hash.as_slice() != computed.as_slice()
            {
                return Err(format!(
                    "unanchored entry {s} does not chain from the anchor"
                ));
            }
            prev = computed;
            expect += 1;
        }
        Ok(())
    }

    /// Re-MACs every checkpoint and the anchor under `new` (after a master key
    /// rotation), in one transaction, after checking each under the current key:
    /// a checkpoint that does not verify now is not blessed under the new key.
    pub fn rekey(&mut self, new: CheckpointKey) -> Result<usize> {
        let write_err = |source| AuditError::Write {
            op: "rekey",
            path: self.db_path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(write_err)?;
        let rows: Vec<CheckpointRow> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, seq, head_hash, time, mac, reason FROM checkpoints ORDER BY id",
                )
                .map_err(write_err)?;
            let mapped = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .map_err(write_err)?;
            mapped
                .collect::<std::result::Result<_, _>>()
                .map_err(write_err)?
        };
        for (id, seq, head, time, mac, reason) in &rows {
            let head: [u8; 32] =
                head.as_slice()
                    .try_into()
                    .map_err(|_| AuditError::OpenAnchorMismatch {
                        path: self.db_path.clone(),
                        reason: format!("checkpoint {id} has a malformed head hash"),
                    })?;
            if !self
                .key
                .verify_checkpoint_mac(&self.db_id, *seq, &head, time, reason, mac)
            {
                return Err(AuditError::OpenAnchorMismatch {
                    path: self.db_path.clone(),
                    reason: format!(
                        "checkpoint {id} does not verify under the current key; refusing to re-key"
                    ),
                });
            }
            let new_mac = new.checkpoint_mac(&self.db_id, *seq, &head, time, reason);
            tx.execute(
                "UPDATE checkpoints SET mac = ?1 WHERE id = ?2",
                rusqlite::params![new_mac.to_vec(), id],
            )
            .map_err(write_err)?;
        }
        tx.commit().map_err(write_err)?;
        self.key = new;
        self.anchor_flushed()?;
        Ok(rows.len())
    }

    /// Anchors the head after a commit: the slot durably (one data flush),
    /// the anchor file by rename, flushed later by the kernel.
    fn anchor_commit(&mut self) -> Result<()> {
        let a = Anchor::new(&self.key, self.db_id, self.last_seq, self.head);
        self.slots.write(&a)?;
        self.anchor_file_stale = true;
        if self.anchor_file_at.elapsed() >= ANCHOR_FILE_EVERY {
            self.refresh_anchor_file()?;
        }
        Ok(())
    }

    /// Time until `audit.anchor` is due to be brought up to the head (`None`:
    /// it is current), for the writer's idle wait.
    pub fn until_anchor_file(&self) -> Option<Duration> {
        self.anchor_file_stale
            .then(|| ANCHOR_FILE_EVERY.saturating_sub(self.anchor_file_at.elapsed()))
    }

    /// Replaces `audit.anchor` with the head's anchor (unflushed).
    pub fn refresh_anchor_file(&mut self) -> Result<()> {
        let a = Anchor::new(&self.key, self.db_id, self.last_seq, self.head);
        a.replace_unflushed(&self.anchor_path)?;
        self.anchor_file_at = Instant::now();
        self.anchor_file_stale = false;
        Ok(())
    }

    /// Anchors the head in both files, both flushed (open, checkpoints, re-key):
    /// what an older image reads after a rollback is then on the device too.
    fn anchor_flushed(&mut self) -> Result<()> {
        let a = Anchor::new(&self.key, self.db_id, self.last_seq, self.head);
        self.slots.write(&a)?;
        a.write_atomic(&self.anchor_path)?;
        self.anchor_file_at = Instant::now();
        self.anchor_file_stale = false;
        Ok(())
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// What opening did to the schema.
    pub fn migration(&self) -> &Migration {
        &self.migration
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    fn write_err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
        move |source| AuditError::Write {
            op,
            path: self.db_path.clone(),
            source,
        }
    }

    fn insert_checkpoint(
        &self,
        conn: &Connection,
        seq: u64,
        head: &[u8; 32],
        reason: CheckpointReason,
    ) -> Result<()> {
        let time = now_rfc3339()?;
        let mac = self
            .key
            .checkpoint_mac(&self.db_id, seq, head, &time, reason.as_str());
        conn.prepare_cached(
            "INSERT INTO checkpoints(seq, head_hash, time, mac, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![sql_i64(seq), &head[..], time, &mac[..], reason.as_str()])
        })
        .map_err(self.write_err("checkpoint"))?;
        Ok(())
    }

    /// Whether an interval checkpoint is due.
    pub fn checkpoint_due(&self) -> bool {
        self.since_ckpt > 0
            && (self.since_ckpt >= self.ckpt_every_entries
                || self.last_ckpt_at.elapsed() >= self.ckpt_every)
    }

    /// Time left until a time-based checkpoint is due (for the idle wait).
    pub fn until_checkpoint(&self) -> Duration {
        self.ckpt_every.saturating_sub(self.last_ckpt_at.elapsed())
    }

    /// Appends a batch in ONE transaction (plus an interval checkpoint when
    /// due), commits durably, then re-anchors. Returns the receipts.
    pub fn commit_batch(&mut self, batch: &[Prepared]) -> Result<Vec<Committed>> {
        let mut seq = self.last_seq;
        let mut head = self.head;
        let mut out = Vec::with_capacity(batch.len());
        let mut added_bytes: u64 = 0;
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(
            |source| AuditError::Write {
                op: "append",
                path: self.db_path.clone(),
                source,
            },
        )?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO entries(seq, time, component, kind, actor, subject, payload, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|source| AuditError::Write {
                    op: "append",
                    path: self.db_path.clone(),
                    source,
                })?;
            for p in batch {
                seq += 1;
                let time = now_rfc3339()?;
                let hash = entry_hash(&EntryFields {
                    seq,
                    time: &time,
                    component: &p.component,
                    kind: &p.kind,
                    actor: &p.actor,
                    subject: &p.subject,
                    payload: &p.payload,
                    prev_hash: &head,
                });
                stmt.execute(params![
                    sql_i64(seq),
                    time,
                    p.component,
                    p.kind,
                    p.actor,
                    p.subject,
                    p.payload,
                    &head[..],
                    &hash[..]
                ])
                .map_err(|source| AuditError::Write {
                    op: "append",
                    path: self.db_path.clone(),
                    source,
                })?;
                added_bytes += row_bytes(&time, p);
                head = hash;
                out.push(Committed { seq, hash });
            }
        }
        let since = self.since_ckpt + batch.len() as u64;
        let interval =
            since >= self.ckpt_every_entries || self.last_ckpt_at.elapsed() >= self.ckpt_every;
        if interval {
            self.insert_checkpoint(&tx, seq, &head, CheckpointReason::Interval)?;
        }
        tx.commit().map_err(|source| AuditError::Write {
            op: "commit",
            path: self.db_path.clone(),
            source,
        })?;
        self.last_seq = seq;
        self.head = head;
        if let Some(bytes) = self.entries_bytes.as_mut() {
            *bytes += added_bytes;
        }
        if interval {
            self.since_ckpt = 0;
            self.last_ckpt_at = Instant::now();
            self.anchor_flushed()?;
        } else {
            self.since_ckpt = since;
            self.anchor_commit()?;
        }
        Ok(out)
    }

    /// Writes a checkpoint of the current head in its own transaction.
    pub fn checkpoint(&mut self, reason: CheckpointReason) -> Result<CheckpointInfo> {
        let (seq, head) = (self.last_seq, self.head);
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(
            |source| AuditError::Write {
                op: "checkpoint",
                path: self.db_path.clone(),
                source,
            },
        )?;
        self.insert_checkpoint(&tx, seq, &head, reason)?;
        tx.commit().map_err(|source| AuditError::Write {
            op: "checkpoint",
            path: self.db_path.clone(),
            source,
        })?;
        self.since_ckpt = 0;
        self.last_ckpt_at = Instant::now();
        self.anchor_flushed()?;
        Ok(CheckpointInfo { seq, head, reason })
    }

    /// Deletes entries with `time < cutoff` (never the newest entry), old
    /// checkpoints, and writes a MAC'd 'prune' checkpoint of
    /// (first_kept_seq - 1, prev_hash of first kept) in the same transaction.
    pub fn prune_before(&mut self, cutoff: &str) -> Result<PruneReport> {
        let db_path = self.db_path.clone();
        let werr = |source| AuditError::Write {
            op: "prune",
            path: db_path.clone(),
            source,
        };
        let tx =
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(werr)?;
        let first_kept: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, prev_hash FROM entries
                 WHERE seq >= coalesce((SELECT min(seq) FROM entries WHERE time >= ?1),
                                       (SELECT max(seq) FROM entries))
                 ORDER BY seq LIMIT 1",
                [cutoff],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(werr)?;
        self.entries_bytes = None;
        Self::prune_below(self, tx, first_kept, werr)
    }

    /// The bytes the entries take (their columns' lengths plus 8 for the
    /// seq): measured once, then kept by each commit.
    pub fn entries_bytes(&mut self) -> Result<u64> {
        if let Some(bytes) = self.entries_bytes {
            return Ok(bytes);
        }
        let bytes = self.measure_entries_bytes()?;
        self.entries_bytes = Some(bytes);
        Ok(bytes)
    }

    /// [`WriteStore::entries_bytes`] measured by a scan of every entry.
    pub fn measure_entries_bytes(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                &format!("SELECT coalesce(sum({ROW_BYTES}), 0) FROM entries"),
                [],
                |r| r.get(0),
            )
            .map_err(self.write_err("measure entries"))?;
        Ok(sql_u64(n))
    }

    /// Deletes the oldest entries (never the newest) until the rest take at
    /// most `target` bytes, with the same MAC'd 'prune' checkpoint as
    /// [`WriteStore::prune_before`]: the chain records what was pruned.
    pub fn prune_to_bytes(&mut self, target: u64) -> Result<PruneReport> {
        let db_path = self.db_path.clone();
        let werr = |source| AuditError::Write {
            op: "prune by size",
            path: db_path.clone(),
            source,
        };
        let tx =
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(werr)?;
        let first_kept: Option<(i64, Vec<u8>)> = tx
            .query_row(
                &format!(
                    "SELECT seq, prev_hash FROM entries WHERE seq = coalesce(
                        (SELECT min(seq) FROM (SELECT seq, sum({ROW_BYTES}) OVER
                            (ORDER BY seq DESC) AS suffix FROM entries) WHERE suffix <= ?1),
                        (SELECT max(seq) FROM entries))"
                ),
                [sql_i64(target)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(werr)?;
        self.entries_bytes = None;
        Self::prune_below(self, tx, first_kept, werr)
    }

    /// Deletes the entries below `first_kept` and records the prune.
    fn prune_below(
        &self,
        tx: Transaction<'_>,
        first_kept: Option<(i64, Vec<u8>)>,
        werr: impl Fn(rusqlite::Error) -> AuditError,
    ) -> Result<PruneReport> {
        let Some((first, prev)) = first_kept else {
            return Ok(PruneReport {
                deleted: 0,
                first_kept_seq: None,
            });
        };
        let first = sql_u64(first);
        let deleted = tx
            .execute("DELETE FROM entries WHERE seq < ?1", [sql_i64(first)])
            .map_err(&werr)? as u64;
        if deleted > 0 {
            let boundary = first - 1;
            let prev = blob32(prev).unwrap_or(GENESIS_PREV);
            tx.execute(
                "DELETE FROM checkpoints WHERE seq < ?1",
                [sql_i64(boundary)],
            )
            .map_err(&werr)?;
            tx.execute(
                "DELETE FROM checkpoints WHERE reason = 'prune' AND seq <= ?1",
                [sql_i64(boundary)],
            )
            .map_err(&werr)?;
            self.insert_checkpoint(&tx, boundary, &prev, CheckpointReason::Prune)?;
            tx.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('pruned_through', ?1)",
                [boundary.to_string()],
            )
            .map_err(&werr)?;
        }
        tx.commit().map_err(&werr)?;
        Ok(PruneReport {
            deleted,
            first_kept_seq: Some(first),
        })
    }

    /// Checkpoints the WAL into the main file (on shutdown).
    pub fn wal_checkpoint(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(self.write_err("wal_checkpoint"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(i: usize) -> Prepared {
        Prepared {
            component: "gateway".into(),
            kind: "gateway.message".into(),
            // Characters, not bytes, are what SQLite's `length` counts in TEXT.
            actor: format!("gateway-é{i}"),
            subject: "slack:Ü42 → 日本".into(),
            payload: format!("{{\"i\":{i},\"text\":\"naïve\"}}").into_bytes(),
        }
    }

    /// The size the writer keeps is the size a scan measures: after commits,
    /// after a prune (measured again), and after commits that follow it.
    #[test]
    fn kept_entries_bytes_match_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let paths = AuditPaths::in_state_dir(dir.path());
        let mut store = WriteStore::open(
            &paths,
            CheckpointKey::generate(),
            100,
            Duration::from_secs(3600),
        )
        .unwrap();
        assert_eq!(store.entries_bytes().unwrap(), 0);
        for round in 0..5 {
            let batch: Vec<Prepared> = (0..37).map(|i| prepared(round * 37 + i)).collect();
            store.commit_batch(&batch).unwrap();
            assert_eq!(
                store.entries_bytes().unwrap(),
                store.measure_entries_bytes().unwrap()
            );
        }
        let before = store.entries_bytes().unwrap();
        assert!(store.prune_to_bytes(before / 2).unwrap().deleted > 0);
        let after = store.entries_bytes().unwrap();
        assert!(after <= before / 2, "{after} of {before}");
        store.commit_batch(&[prepared(999)]).unwrap();
        assert_eq!(
            store.entries_bytes().unwrap(),
            store.measure_entries_bytes().unwrap()
        );
    }
}
