//! Offline verification of an `audit.db` (a copy, opened read-only) against
//! its checkpoints and, when given, the anchor file and the checkpoint key.
//!
//! Checks, in this order of evidence:
//! 1. the chain: seq is contiguous from the first row, each row's hash is the
//!    hash of its own fields, each `prev_hash` is the previous row's hash, and
//!    the first row is seq 1 with a zero `prev_hash` or follows a 'prune'
//!    checkpoint (seq = first - 1, head = its `prev_hash`);
//! 2. checkpoints: MAC (with the key), and that the entry at their seq exists
//!    and has their head hash;
//! 3. the anchor: MAC (with the key), db id, and that the db reaches its seq
//!    with its head. A db *ahead* of the anchor is fine (the process died after
//!    a commit and before re-anchoring); a db *behind* it is a cut tail or an
//!    older copy.
//!
//! The report names the lowest seq known to be bad.

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::anchor::{Anchor, hex_array, read_newest};
use super::chain::{EntryFields, GENESIS_PREV, entry_hash};
use super::error::{AuditError, Result};
use super::key::CheckpointKey;
use super::store::{AUDIT_DB, AuditPaths};

/// Who vouched for the state the db no longer matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witness {
    /// The anchor file beside the db.
    Anchor,
    /// A checkpoint row (its id and reason).
    Checkpoint { id: i64, reason: String },
}

impl fmt::Display for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Witness::Anchor => f.write_str("the anchor"),
            Witness::Checkpoint { id, reason } => write!(f, "checkpoint #{id} ({reason})"),
        }
    }
}

/// Why the trail is not intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TamperReason {
    /// The entry's stored hash is not the hash of its fields: it was edited.
    HashMismatch,
    /// Rows are missing: seq jumps from `first_bad_seq - 1` to `next_present`.
    SequenceGap { next_present: u64 },
    /// The entry's `prev_hash` is not the previous entry's hash.
    ChainBreak,
    /// The entry is intact but belongs at another position: rows were reordered.
    Reordered { belongs_at: u64 },
    /// The first rows are gone and no (valid) prune checkpoint explains it.
    PrefixMissing { first_present: u64 },
    /// A checkpoint's MAC does not verify under the key.
    CheckpointMacInvalid { checkpoint_id: i64 },
    /// The anchor's MAC does not verify under the key.
    AnchorMacInvalid,
    /// The anchor belongs to another database.
    AnchorForeignDb,
    /// A witness says seq `claimed_seq` was committed but the db ends at
    /// `db_last_seq`: tail cut, or the db was replaced by an older copy.
    TailCut {
        witness: Witness,
        claimed_seq: u64,
        db_last_seq: u64,
    },
    /// A witness recorded another head hash at `at_seq`: the entries between
    /// the last matching witness and `at_seq` were rewritten (chain recomputed)
    /// or the db was swapped for a different one.
    HeadMismatch { witness: Witness, at_seq: u64 },
}

impl fmt::Display for TamperReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TamperReason::HashMismatch => f.write_str("entry hash mismatch (entry edited)"),
            TamperReason::SequenceGap { next_present } => {
                write!(
                    f,
                    "gap in sequence (rows deleted; next present is {next_present})"
                )
            }
            TamperReason::ChainBreak => f.write_str("chain break (prev_hash does not link)"),
            TamperReason::Reordered { belongs_at } => {
                write!(
                    f,
                    "entries reordered (this entry belongs at seq {belongs_at})"
                )
            }
            TamperReason::PrefixMissing { first_present } => write!(
                f,
                "first entries missing (db starts at {first_present}, no valid prune checkpoint)"
            ),
            TamperReason::CheckpointMacInvalid { checkpoint_id } => {
                write!(f, "checkpoint #{checkpoint_id} MAC invalid")
            }
            TamperReason::AnchorMacInvalid => f.write_str("anchor MAC invalid"),
            TamperReason::AnchorForeignDb => f.write_str("anchor belongs to another database"),
            TamperReason::TailCut {
                witness,
                claimed_seq,
                db_last_seq,
            } => write!(
                f,
                "tail cut or rolled back: {witness} says seq {claimed_seq} was committed, db ends at {db_last_seq}"
            ),
            TamperReason::HeadMismatch { witness, at_seq } => {
                write!(
                    f,
                    "db differs from {witness} at seq {at_seq} (rewritten or replaced)"
                )
            }
        }
    }
}

/// Outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every check passed.
    Intact {
        entries: u64,
        first_seq: u64,
        last_seq: u64,
        head: [u8; 32],
        /// Checkpoints compared against the chain.
        checkpoints: u64,
        /// Whether checkpoint and anchor MACs were checked (a key was given).
        macs_checked: bool,
        /// The anchor's seq, if an anchor was given (may trail `last_seq`).
        anchor_seq: Option<u64>,
        /// The newest valid checkpoint: its seq and time (RFC 3339).
        newest_checkpoint: Option<(u64, String)>,
    },
    /// Something was changed; `first_bad_seq` is the lowest seq known bad.
    Tampered {
        first_bad_seq: u64,
        reason: TamperReason,
    },
}

impl VerifyReport {
    /// CLI exit code: 0 intact, 1 tampered (2 is for `Err`: unreadable).
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyReport::Intact { .. } => 0,
            VerifyReport::Tampered { .. } => 1,
        }
    }
}

/// Maps a verify result to the CLI exit code: 0 intact, 1 tampered, 2 unreadable.
pub fn exit_code(result: &Result<VerifyReport>) -> i32 {
    match result {
        Ok(r) => r.exit_code(),
        Err(_) => 2,
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyReport::Intact {
                entries,
                first_seq,
                last_seq,
                head,
                checkpoints,
                macs_checked,
                anchor_seq,
                newest_checkpoint: _,
            } => {
                write!(
                    f,
                    "intact: {} (seq {first_seq} to {last_seq}), head {}, {}",
                    crate::plural(*entries, "entry", "entries"),
                    hex::encode(head),
                    crate::plural(*checkpoints, "checkpoint", "checkpoints")
                )?;
                match anchor_seq {
                    Some(a) => write!(f, ", anchor at seq {a}")?,
                    None => f.write_str(", no anchor given (a cut tail may go unnoticed)")?,
                }
                if !macs_checked {
                    f.write_str("; MACs NOT checked (no key)")?;
                }
                Ok(())
            }
            VerifyReport::Tampered {
                first_bad_seq,
                reason,
            } => write!(f, "TAMPERED at seq {first_bad_seq}: {reason}"),
        }
    }
}

/// Verifies `db_path` (opened read-only; a copy is best) against its
/// checkpoints, the newest anchor kept at `anchor_path` and its slots file
/// (see [`super::anchor::read_newest`]; no anchor at all is an error) and,
/// with `key`, all MACs. `Err` means unreadable / not an audit db.
pub fn verify(
    db_path: &Path,
    anchor_path: Option<&Path>,
    key: Option<&CheckpointKey>,
) -> Result<VerifyReport> {
    let anchor = match anchor_path {
        Some(p) => Some(read_newest(p, key)?.ok_or_else(|| AuditError::ReadAnchor {
            path: p.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?),
        None => None,
    };
    let (conn, _tmp) = open_snapshot(db_path)?;
    verify_conn(&conn, db_path, anchor.as_ref(), key)
}

/// Verifies a live db while the writer runs: reads the anchor FIRST, then
/// takes a consistent snapshot (`VACUUM INTO` a private temp dir), so the
/// snapshot is never behind the anchor it is compared with.
pub fn verify_live(paths: &AuditPaths, key: Option<&CheckpointKey>) -> Result<VerifyReport> {
    let anchor = read_newest(&paths.anchor, key)?.ok_or_else(|| AuditError::ReadAnchor {
        path: paths.anchor.clone(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let tmp = tempfile::tempdir().map_err(|source| AuditError::VerifySnapshot {
        path: paths.db.clone(),
        source,
    })?;
    let snap = tmp.path().join("snapshot.db");
    let src = Connection::open_with_flags(&paths.db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
        |source| AuditError::VerifyRead {
            path: paths.db.clone(),
            source,
        },
    )?;
    src.execute("VACUUM INTO ?1", [snap.to_string_lossy()])
        .map_err(|source| AuditError::VerifyRead {
            path: paths.db.clone(),
            source,
        })?;
    drop(src);
    let conn = open_immutable(&snap)?;
    verify_conn(&conn, &paths.db, Some(&anchor), key)
}

fn uri_escape(path: &Path) -> String {
    let mut out = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn open_immutable(path: &Path) -> Result<Connection> {
    let uri = format!("{}?immutable=1", uri_escape(path));
    Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| AuditError::VerifyRead {
        path: path.to_owned(),
        source,
    })
}

/// Opens the db without ever writing to it. A non-empty `-wal` beside it
/// holds committed entries that `immutable=1` would ignore, so then db and
/// WAL are copied into a private temp dir and the copy is opened instead.
fn open_snapshot(db_path: &Path) -> Result<(Connection, Option<tempfile::TempDir>)> {
    let meta = std::fs::metadata(db_path).map_err(|source| AuditError::VerifySnapshot {
        path: db_path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(AuditError::NotAuditDb {
            path: db_path.to_owned(),
            reason: "not a regular file".into(),
        });
    }
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if wal_len == 0 {
        return Ok((open_immutable(db_path)?, None));
    }
    let snap_err = |source| AuditError::VerifySnapshot {
        path: db_path.to_owned(),
        source,
    };
    let tmp = tempfile::tempdir().map_err(snap_err)?;
    let copy = tmp.path().join("audit.db");
    std::fs::copy(db_path, &copy).map_err(snap_err)?;
    std::fs::copy(&wal, tmp.path().join("audit.db-wal")).map_err(snap_err)?;
    let conn = Connection::open(&copy).map_err(|source| AuditError::VerifyRead {
        path: db_path.to_owned(),
        source,
    })?;
    Ok((conn, Some(tmp)))
}

#[derive(Debug)]
struct Ckpt {
    id: i64,
    seq: u64,
    head: [u8; 32],
    time: String,
    reason: String,
}

fn bytes_at(r: &Row<'_>, i: usize) -> Option<Vec<u8>> {
    match r.get_ref(i).ok()? {
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
        _ => None,
    }
}

fn text_at(r: &Row<'_>, i: usize) -> Option<String> {
    match r.get_ref(i).ok()? {
        ValueRef::Text(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}

fn seq_at(r: &Row<'_>, i: usize) -> Option<u64> {
    match r.get_ref(i).ok()? {
        ValueRef::Integer(v) => u64::try_from(v).ok(),
        _ => None,
    }
}

struct Issues(Vec<(u64, TamperReason)>);

impl Issues {
    fn add(&mut self, seq: u64, reason: TamperReason) {
        self.0.push((seq.max(1), reason));
    }
}

fn check_schema(conn: &Connection, path: &Path) -> Result<[u8; 16]> {
    let not_audit = |reason: String| AuditError::NotAuditDb {
        path: path.to_owned(),
        reason,
    };
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| not_audit(e.to_string()))?;
    for t in ["entries", "checkpoints", "meta"] {
        if !tables.iter().any(|n| n == t) {
            return Err(not_audit(format!("table `{t}` missing")));
        }
    }
    let meta = |k: &str| -> Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .optional()
            .map_err(|e| not_audit(e.to_string()))
    };
    // Any version this image can read (see `crate::schema`); one from an
    // incompatible newer image is refused with the runner's sentence.
    let found = AUDIT_DB.found(conn, path)?;
    if found.version == 0 {
        return Err(not_audit("meta.schema_version missing".into()));
    }
    AUDIT_DB.check_known(found)?;
    let id = meta("db_id")?.ok_or_else(|| not_audit("meta.db_id missing".into()))?;
    hex_array::<16>(&id).ok_or_else(|| not_audit("meta.db_id malformed".into()))
}

fn stored_hash_at(conn: &Connection, path: &Path, seq: u64) -> Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT hash FROM entries WHERE seq = ?1",
        [i64::try_from(seq).unwrap_or(i64::MAX)],
        |r| Ok(bytes_at(r, 0).unwrap_or_default()),
    )
    .optional()
    .map_err(|source| AuditError::VerifyRead {
        path: path.to_owned(),
        source,
    })
}

fn verify_conn(
    conn: &Connection,
    path: &Path,
    anchor: Option<&Anchor>,
    key: Option<&CheckpointKey>,
) -> Result<VerifyReport> {
    let db_id = check_schema(conn, path)?;
    let read_err = |source| AuditError::VerifyRead {
        path: path.to_owned(),
        source,
    };
    let mut issues = Issues(Vec::new());

    // Checkpoints: MACs first; only valid ones are used as witnesses.
    let mut ckpts: Vec<Ckpt> = Vec::new();
    {
        let mut stmt = conn
            .prepare(
                "SELECT id, seq, head_hash, time, mac, reason FROM checkpoints ORDER BY seq, id",
            )
            .map_err(read_err)?;
        let mut rows = stmt.query([]).map_err(read_err)?;
        while let Some(r) = rows.next().map_err(read_err)? {
            let id = r.get::<_, i64>(0).unwrap_or(-1);
            let seq = seq_at(r, 1);
            let head = bytes_at(r, 2).and_then(|h| h.try_into().ok());
            let time = text_at(r, 3);
            let mac = bytes_at(r, 4);
            let reason = text_at(r, 5);
            let (Some(seq), Some(head), Some(time), Some(mac), Some(reason)) =
                (seq, head, time, mac, reason)
            else {
                issues.add(1, TamperReason::CheckpointMacInvalid { checkpoint_id: id });
                continue;
            };
            if let Some(k) = key
                && !k.verify_checkpoint_mac(&db_id, seq, &head, &time, &reason, &mac)
            {
                issues.add(
                    seq,
                    TamperReason::CheckpointMacInvalid { checkpoint_id: id },
                );
                continue;
            }
            ckpts.push(Ckpt {
                id,
                seq,
                head,
                time,
                reason,
            });
        }
    }
    let prune = ckpts
        .iter()
        .filter(|c| c.reason == "prune")
        .max_by_key(|c| c.seq);

    // The chain walk stops at its first break; later checks use stored hashes.
    let issues_before_walk = issues.0.len();
    let mut entries = 0u64;
    let mut first_seq = 0u64;
    let mut last_seq = 0u64;
    let mut head = GENESIS_PREV;
    {
        let mut stmt = conn
            .prepare(
                "SELECT seq, time, component, kind, actor, subject, payload, prev_hash, hash
                 FROM entries ORDER BY seq",
            )
            .map_err(read_err)?;
        let mut rows = stmt.query([]).map_err(read_err)?;
        let mut expected_prev = GENESIS_PREV;
        while let Some(r) = rows.next().map_err(read_err)? {
            let Some(seq) = seq_at(r, 0) else {
                issues.add(last_seq + 1, TamperReason::HashMismatch);
                break;
            };
            if entries == 0 {
                first_seq = seq;
                if seq > 1 {
                    match prune {
                        Some(p) if p.seq + 1 == seq => expected_prev = p.head,
                        Some(p) if p.seq + 1 < seq => {
                            issues.add(p.seq + 1, TamperReason::SequenceGap { next_present: seq });
                            break;
                        }
                        _ => {
                            issues.add(1, TamperReason::PrefixMissing { first_present: seq });
                            break;
                        }
                    }
                }
            } else if seq != last_seq + 1 {
                issues.add(
                    last_seq + 1,
                    TamperReason::SequenceGap { next_present: seq },
                );
                break;
            }
            let fields = (
                text_at(r, 1),
                text_at(r, 2),
                text_at(r, 3),
                text_at(r, 4),
                text_at(r, 5),
                bytes_at(r, 6),
                bytes_at(r, 7).and_then(|h| <[u8; 32]>::try_from(h).ok()),
                bytes_at(r, 8).and_then(|h| <[u8; 32]>::try_from(h).ok()),
            );
            let (
                Some(time),
                Some(component),
                Some(kind),
                Some(actor),
                Some(subject),
                Some(payload),
                Some(prev),
                Some(stored),
            ) = fields
            else {
                issues.add(seq, TamperReason::HashMismatch);
                break;
            };
            let mut f = EntryFields {
                seq,
                time: &time,
                component: &component,
                kind: &kind,
                actor: &actor,
                subject: &subject,
                payload: &payload,
                prev_hash: &prev,
            };
            if entry_hash(&f) != stored {
                // Intact row at the wrong place? Its prev_hash (the row holding
                // that hash + 1) or its successor's prev_hash (that row - 1) says
                // where it belongs; both are tried since a swap moves one of them.
                let pred = if prev == GENESIS_PREV {
                    Some(1)
                } else {
                    lookup_seq(conn, "SELECT seq FROM entries WHERE hash = ?1", &prev)
                        .map_err(read_err)?
                        .map(|k| k + 1)
                };
                let succ = lookup_seq(
                    conn,
                    "SELECT seq FROM entries WHERE prev_hash = ?1",
                    &stored,
                )
                .map_err(read_err)?
                .and_then(|k| k.checked_sub(1));
                let reordered = [pred, succ].into_iter().flatten().find(|&b| {
                    b != seq && b > 0 && {
                        f.seq = b;
                        entry_hash(&f) == stored
                    }
                });
                match reordered {
                    Some(b) => issues.add(seq, TamperReason::Reordered { belongs_at: b }),
                    None => issues.add(seq, TamperReason::HashMismatch),
                }
                break;
            }
            if prev != expected_prev {
                if entries == 0 && seq > 1 {
                    issues.add(1, TamperReason::PrefixMissing { first_present: seq });
                } else {
                    issues.add(seq, TamperReason::ChainBreak);
                }
                break;
            }
            expected_prev = stored;
            head = stored;
            last_seq = seq;
            entries += 1;
        }
    }
    let chain_broken = issues.0.len() > issues_before_walk;
    // Rows after a chain break still count for "where does the db end".
    let db_last: u64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM entries", [], |r| {
            Ok(seq_at(r, 0))
        })
        .map_err(read_err)?
        .unwrap_or(0);

    // Checkpoints as witnesses. `verified` holds seqs whose head matched.
    let mut verified: Vec<u64> = Vec::new();
    let mut checked = 0u64;
    for c in &ckpts {
        let witness = Witness::Checkpoint {
            id: c.id,
            reason: c.reason.clone(),
        };
        if c.seq > db_last {
            issues.add(
                db_last + 1,
                TamperReason::TailCut {
                    witness,
                    claimed_seq: c.seq,
                    db_last_seq: db_last,
                },
            );
            continue;
        }
        if c.reason == "prune" && c.seq + 1 == first_seq {
            checked += 1;
            continue; // checked as the chain's starting point
        }
        if c.seq == 0 || c.seq < first_seq {
            continue; // refers to pruned history
        }
        if chain_broken && c.seq > last_seq {
            continue; // the chain issue already names a lower seq
        }
        checked += 1;
        match stored_hash_at(conn, path, c.seq)? {
            Some(h) if h.as_slice() == c.head.as_slice() => verified.push(c.seq),
            _ => {
                let from = last_verified_below(&verified, c.seq, first_seq);
                issues.add(
                    from,
                    TamperReason::HeadMismatch {
                        witness,
                        at_seq: c.seq,
                    },
                );
            }
        }
    }

    // The anchor.
    if let Some(a) = anchor {
        let mac_ok = key.is_none_or(|k| a.mac_valid(k));
        if !mac_ok {
            issues.add(a.seq.min(db_last + 1), TamperReason::AnchorMacInvalid);
        } else if a.db_id != db_id {
            issues.add(1, TamperReason::AnchorForeignDb);
        } else if a.seq > db_last {
            issues.add(
                db_last + 1,
                TamperReason::TailCut {
                    witness: Witness::Anchor,
                    claimed_seq: a.seq,
                    db_last_seq: db_last,
                },
            );
        } else if a.seq >= first_seq && a.seq > 0 && !(chain_broken && a.seq > last_seq) {
            match stored_hash_at(conn, path, a.seq)? {
                Some(h) if h.as_slice() == a.head.as_slice() => {}
                _ => {
                    let from = last_verified_below(&verified, a.seq, first_seq);
                    issues.add(
                        from,
                        TamperReason::HeadMismatch {
                            witness: Witness::Anchor,
                            at_seq: a.seq,
                        },
                    );
                }
            }
        }
    }

    if let Some((first_bad_seq, reason)) = issues.0.into_iter().min_by_key(|(s, _)| *s) {
        return Ok(VerifyReport::Tampered {
            first_bad_seq,
            reason,
        });
    }
    Ok(VerifyReport::Intact {
        entries,
        first_seq,
        last_seq,
        head,
        checkpoints: checked,
        macs_checked: key.is_some(),
        anchor_seq: anchor.map(|a| a.seq),
        newest_checkpoint: ckpts
            .iter()
            .max_by_key(|c| c.seq)
            .map(|c| (c.seq, c.time.clone())),
    })
}

fn lookup_seq(conn: &Connection, sql: &str, hash: &[u8; 32]) -> rusqlite::Result<Option<u64>> {
    conn.query_row(sql, [&hash[..]], |r| Ok(seq_at(r, 0)))
        .optional()
        .map(Option::flatten)
}

/// The first seq not covered by a matching witness below `at`.
fn last_verified_below(verified: &[u64], at: u64, first_seq: u64) -> u64 {
    verified
        .iter()
        .copied()
        .filter(|&v| v < at)
        .max()
        .map_or(first_seq.max(1), |v| v + 1)
}
