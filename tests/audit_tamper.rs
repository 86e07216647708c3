//! Tamper detection: builds a 200-entry audit db through the writer (in two
//! runs, keeping a copy of the db after the first 150 entries), then on copies
//! edits a payload, deletes a middle row, reorders rows, cuts the tail (with and
//! without the checkpoints), swaps in the older copy, forges checkpoints,
//! rewrites the chain, prunes — and checks that `verify` names the right
//! first bad seq each time, that the untouched copy is Intact, that a
//! non-audit file is an error, and that the writer refuses a rolled-back db.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use std::fs;
use std::path::{Path, PathBuf};

use cowork::audit::chain::{EntryFields, entry_hash};
use cowork::audit::verify::exit_code;
use cowork::audit::{
    AuditError, AuditPaths, AuditSettings, AuditWriter, CheckpointKey, NewEntry, Redactor,
    TamperReason, VerifyReport, Witness, verify,
};
use rusqlite::Connection;
use serde_json::json;

const KEY: [u8; 32] = [0x42; 32];

fn key() -> CheckpointKey {
    CheckpointKey::from_bytes(KEY)
}

fn settings() -> AuditSettings {
    AuditSettings {
        checkpoint_every_entries: 50,
        ..AuditSettings::default()
    }
}

fn entry(i: u64) -> NewEntry {
    NewEntry {
        component: "gateway".into(),
        kind: if i.is_multiple_of(2) {
            "command.output".into()
        } else {
            "pairing.code_issued".into()
        },
        actor: format!("telegram:{}", 1000 + i % 7),
        subject: format!("task-{i}"),
        payload: json!({"i": i, "text": format!("line {i}"), "nested": {"b": [1, 2], "a": null}}),
    }
}

fn append_range(paths: &AuditPaths, from: u64, to: u64) {
    let w = AuditWriter::open(paths, key(), &settings(), Redactor::new()).unwrap();
    for i in from..=to {
        let r = w.append_blocking(entry(i)).unwrap();
        assert_eq!(r.seq, i);
    }
    w.shutdown().unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    paths: AuditPaths,
    old_db: PathBuf,
}

/// 150 entries, copy of the db, 50 more.
fn build() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    append_range(&paths, 1, 150);
    let old_db = dir.path().join("old-audit.db");
    fs::copy(&paths.db, &old_db).unwrap();
    append_range(&paths, 151, 200);
    Fixture {
        _dir: dir,
        paths,
        old_db,
    }
}

/// A private copy of db + anchor to tamper with.
struct Copy {
    _dir: tempfile::TempDir,
    db: PathBuf,
    anchor: PathBuf,
}

fn copy(f: &Fixture) -> Copy {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let anchor = dir.path().join("audit.anchor");
    fs::copy(&f.paths.db, &db).unwrap();
    fs::copy(&f.paths.anchor, &anchor).unwrap();
    Copy {
        _dir: dir,
        db,
        anchor,
    }
}

fn sql(db: &Path, stmts: &str) {
    let c = Connection::open(db).unwrap();
    c.execute_batch(stmts).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
}

fn check(c: &Copy) -> VerifyReport {
    verify(&c.db, Some(&c.anchor), Some(&key())).unwrap()
}

fn assert_tampered(r: &VerifyReport, seq: u64, want: impl Fn(&TamperReason) -> bool) {
    match r {
        VerifyReport::Tampered {
            first_bad_seq,
            reason,
        } => {
            assert_eq!(*first_bad_seq, seq, "{r}");
            assert!(want(reason), "unexpected reason: {r}");
        }
        other => panic!("expected tampered at {seq}, got {other}"),
    }
}

#[test]
fn tamper_cases() {
    let f = build();

    // Untouched: intact with and without key / anchor.
    let c = copy(&f);
    match check(&c) {
        VerifyReport::Intact {
            entries,
            last_seq,
            macs_checked,
            anchor_seq,
            checkpoints,
            ..
        } => {
            assert_eq!((entries, last_seq, anchor_seq), (200, 200, Some(200)));
            assert!(macs_checked);
            assert!(checkpoints >= 5, "{checkpoints}");
        }
        other => panic!("untouched copy: {other}"),
    }
    let r = verify(&c.db, None, None).unwrap();
    assert!(
        matches!(
            r,
            VerifyReport::Intact {
                macs_checked: false,
                anchor_seq: None,
                ..
            }
        ),
        "{r}"
    );
    assert!(r.to_string().contains("MACs NOT checked"));
    assert_eq!(exit_code(&Ok(r)), 0);

    // Edited payload.
    let c = copy(&f);
    sql(
        &c.db,
        r#"UPDATE entries SET payload = '{"i":77,"text":"nothing to see"}' WHERE seq = 77"#,
    );
    let r = check(&c);
    assert_tampered(&r, 77, |r| *r == TamperReason::HashMismatch);
    assert_eq!(r.exit_code(), 1);
    // Also without key or anchor: the chain alone sees it.
    assert_tampered(&verify(&c.db, None, None).unwrap(), 77, |r| {
        *r == TamperReason::HashMismatch
    });

    // Edited actor only.
    let c = copy(&f);
    sql(
        &c.db,
        "UPDATE entries SET actor = 'admin:owner' WHERE seq = 3",
    );
    assert_tampered(&check(&c), 3, |r| *r == TamperReason::HashMismatch);

    // Deleted middle row.
    let c = copy(&f);
    sql(&c.db, "DELETE FROM entries WHERE seq = 100");
    assert_tampered(&check(&c), 100, |r| {
        *r == TamperReason::SequenceGap { next_present: 101 }
    });

    // Reordered: swap the contents of 60 and 61 (seq column stays).
    let c = copy(&f);
    sql(
        &c.db,
        "CREATE TEMP TABLE t AS SELECT * FROM entries WHERE seq IN (60, 61);
         UPDATE entries SET (time, component, kind, actor, subject, payload, prev_hash, hash) =
           (SELECT time, component, kind, actor, subject, payload, prev_hash, hash FROM t WHERE t.seq = 121 - entries.seq)
         WHERE seq IN (60, 61);",
    );
    assert_tampered(&check(&c), 60, |r| {
        *r == TamperReason::Reordered { belongs_at: 61 }
    });

    // Reordered: swap the seq of two rows.
    let c = copy(&f);
    sql(
        &c.db,
        "UPDATE entries SET seq = -30 WHERE seq = 30;
         UPDATE entries SET seq = 30 WHERE seq = 90;
         UPDATE entries SET seq = 90 WHERE seq = -30;",
    );
    assert_tampered(&check(&c), 30, |r| {
        *r == TamperReason::Reordered { belongs_at: 90 }
    });

    // Cut tail: last 1 and last 10, with and without the checkpoints.
    for n in [1u64, 10] {
        let last_kept = 200 - n;
        for drop_ckpts in [false, true] {
            let c = copy(&f);
            let mut stmts = format!("DELETE FROM entries WHERE seq > {last_kept};");
            if drop_ckpts {
                stmts.push_str(&format!("DELETE FROM checkpoints WHERE seq > {last_kept};"));
            }
            sql(&c.db, &stmts);
            let r = check(&c);
            assert_tampered(
                &r,
                last_kept + 1,
                |r| matches!(r, TamperReason::TailCut { claimed_seq: 200, db_last_seq, .. } if *db_last_seq == last_kept),
            );
            if drop_ckpts {
                // Only the anchor still knows.
                assert_tampered(&r, last_kept + 1, |r| {
                    matches!(
                        r,
                        TamperReason::TailCut {
                            witness: Witness::Anchor,
                            ..
                        }
                    )
                });
                // Documented limit: no anchor + no checkpoints = undetectable cut.
                let blind = verify(&c.db, None, Some(&key())).unwrap();
                assert!(
                    matches!(blind, VerifyReport::Intact { last_seq, .. } if last_seq == last_kept)
                );
            } else {
                // The shutdown checkpoint sees it even without the anchor.
                assert_tampered(
                    &verify(&c.db, None, Some(&key())).unwrap(),
                    last_kept + 1,
                    |r| {
                        matches!(
                            r,
                            TamperReason::TailCut {
                                witness: Witness::Checkpoint { .. },
                                ..
                            }
                        )
                    },
                );
            }
        }
    }

    // Whole db replaced by the older copy (150 entries), current anchor kept.
    let c = copy(&f);
    fs::copy(&f.old_db, &c.db).unwrap();
    assert!(matches!(
        verify(&c.db, None, Some(&key())).unwrap(),
        VerifyReport::Intact { last_seq: 150, .. }
    ));
    assert_tampered(&check(&c), 151, |r| {
        matches!(
            r,
            TamperReason::TailCut {
                witness: Witness::Anchor,
                claimed_seq: 200,
                db_last_seq: 150
            }
        )
    });

    // Forged checkpoint: MAC no longer matches.
    let c = copy(&f);
    sql(
        &c.db,
        "UPDATE checkpoints SET seq = 120 WHERE id = (SELECT min(id) FROM checkpoints WHERE seq = 150)",
    );
    assert_tampered(&check(&c), 120, |r| {
        matches!(r, TamperReason::CheckpointMacInvalid { .. })
    });
    // Without the key the forged checkpoint is taken at face value and its head mismatches.
    let r = verify(&c.db, Some(&c.anchor), None).unwrap();
    assert_tampered(&r, 101, |r| {
        matches!(r, TamperReason::HeadMismatch { at_seq: 120, .. })
    });

    // Anchor edited: MAC invalid.
    let c = copy(&f);
    let text = fs::read_to_string(&c.anchor)
        .unwrap()
        .replace("seq=200", "seq=199");
    fs::write(&c.anchor, text).unwrap();
    assert_tampered(&check(&c), 199, |r| *r == TamperReason::AnchorMacInvalid);

    // Chain rewritten from 120 on (payload edited, every hash recomputed):
    // the chain is self-consistent, the MAC'd checkpoints at 150/200 and the
    // anchor are not; the last matching checkpoint is at 100.
    let c = copy(&f);
    rewrite_chain_from(&c.db, 120);
    assert_tampered(&check(&c), 101, |r| {
        matches!(r, TamperReason::HeadMismatch { at_seq: 150, .. })
    });
    // With the checkpoints also deleted, only the anchor still tells.
    sql(&c.db, "DELETE FROM checkpoints");
    assert!(matches!(
        verify(&c.db, None, None).unwrap(),
        VerifyReport::Intact { .. }
    ));
    assert_tampered(&check(&c), 1, |r| {
        matches!(
            r,
            TamperReason::HeadMismatch {
                witness: Witness::Anchor,
                at_seq: 200
            }
        )
    });

    // Deleted first rows without a prune record.
    let c = copy(&f);
    sql(&c.db, "DELETE FROM entries WHERE seq <= 5");
    assert_tampered(&check(&c), 1, |r| {
        *r == TamperReason::PrefixMissing { first_present: 6 }
    });

    // The writer refuses to append on top of a cut db (it checks the
    // anchor on open; a full verify is the verifier's job).
    let c = copy(&f);
    sql(
        &c.db,
        "DELETE FROM entries WHERE seq > 190; DELETE FROM checkpoints WHERE seq > 190;",
    );
    let w = AuditWriter::open(
        &AuditPaths {
            db: c.db.clone(),
            anchor: c.anchor.clone(),
            key: PathBuf::new(),
        },
        key(),
        &settings(),
        Redactor::new(),
    );
    assert!(
        matches!(
            w,
            Err(AuditError::OpenRolledBack {
                db_seq: 190,
                anchor_seq: 200,
                ..
            })
        ),
        "{w:?}"
    );
}

/// (seq, time, component, kind, actor, subject, payload)
type Row = (i64, String, String, String, String, String, Vec<u8>);

/// Edits the payload of `from` and recomputes every hash after it.
fn rewrite_chain_from(db: &Path, from: u64) {
    let c = Connection::open(db).unwrap();
    c.execute(
        r#"UPDATE entries SET payload = CAST('{"i":0,"text":"rewritten"}' AS BLOB) WHERE seq = ?1"#,
        [from as i64],
    )
    .unwrap();
    let mut prev: Vec<u8> = c
        .query_row(
            "SELECT prev_hash FROM entries WHERE seq = ?1",
            [from as i64],
            |r| r.get(0),
        )
        .unwrap();
    let rows: Vec<Row> = c
        .prepare("SELECT seq, time, component, kind, actor, subject, payload FROM entries WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([from as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (seq, time, component, kind, actor, subject, payload) in rows {
        let p: [u8; 32] = prev.clone().try_into().unwrap();
        let h = entry_hash(&EntryFields {
            seq: seq as u64,
            time: &time,
            component: &component,
            kind: &kind,
            actor: &actor,
            subject: &subject,
            payload: &payload,
            prev_hash: &p,
        });
        c.execute(
            "UPDATE entries SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![&p[..], &h[..], seq],
        )
        .unwrap();
        prev = h.to_vec();
    }
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
}

#[test]
fn not_an_audit_db_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    fs::write(
        &junk,
        b"this is not sqlite at all, just some bytes to look at",
    )
    .unwrap();
    let r = verify(&junk, None, None);
    assert!(r.is_err());
    assert_eq!(exit_code(&r), 2);

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE entries(x); INSERT INTO entries VALUES (1);")
        .unwrap();
    assert!(matches!(
        verify(&other, None, None),
        Err(AuditError::NotAuditDb { .. })
    ));
    assert!(verify(&dir.path().join("missing.db"), None, None).is_err());
}

#[test]
fn prune_keeps_chain_verifiable_and_tamper_still_detected() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let w = AuditWriter::open(&paths, key(), &settings(), Redactor::new()).unwrap();
    for i in 1..=80 {
        w.append_blocking(entry(i)).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let cutoff = time::OffsetDateTime::now_utc();
    std::thread::sleep(std::time::Duration::from_millis(20));
    for i in 81..=120 {
        w.append_blocking(entry(i)).unwrap();
    }
    let report = w.prune_before_blocking(cutoff).unwrap();
    assert_eq!(report.deleted, 80);
    assert_eq!(report.first_kept_seq, Some(81));
    // The writer keeps appending after a prune.
    assert_eq!(w.append_blocking(entry(121)).unwrap().seq, 121);
    w.shutdown().unwrap();

    let f = Fixture {
        _dir: dir,
        paths,
        old_db: PathBuf::new(),
    };
    let c = copy(&f);
    match check(&c) {
        VerifyReport::Intact {
            entries,
            first_seq,
            last_seq,
            ..
        } => assert_eq!((entries, first_seq, last_seq), (41, 81, 121)),
        other => panic!("pruned db: {other}"),
    }

    // Reopening a pruned db works.
    let w = AuditWriter::open(&f.paths, key(), &settings(), Redactor::new()).unwrap();
    assert_eq!(w.append_blocking(entry(122)).unwrap().seq, 122);
    w.shutdown().unwrap();

    // Tamper after pruning: edit.
    let c = copy(&f);
    sql(&c.db, "UPDATE entries SET subject = 'x' WHERE seq = 90");
    assert_tampered(&check(&c), 90, |r| *r == TamperReason::HashMismatch);
    // Prune record deleted: the missing prefix is no longer explained.
    let c = copy(&f);
    sql(&c.db, "DELETE FROM checkpoints WHERE reason = 'prune'");
    assert_tampered(&check(&c), 1, |r| {
        *r == TamperReason::PrefixMissing { first_present: 81 }
    });
    // More rows deleted than the prune record covers.
    let c = copy(&f);
    sql(&c.db, "DELETE FROM entries WHERE seq <= 85");
    assert_tampered(&check(&c), 81, |r| {
        *r == TamperReason::SequenceGap { next_present: 86 }
    });
    // Prune record moved forward to cover the extra deletion: its MAC fails,
    // so nothing explains the missing prefix any more.
    sql(
        &c.db,
        "UPDATE checkpoints SET seq = 85, head_hash = (SELECT prev_hash FROM entries WHERE seq = 86) WHERE reason = 'prune'",
    );
    assert_tampered(&check(&c), 1, |r| {
        *r == TamperReason::PrefixMissing { first_present: 86 }
    });
    // Without the key the forgery passes: a documented limit of keyless verify.
    assert!(matches!(
        verify(&c.db, Some(&c.anchor), None).unwrap(),
        VerifyReport::Intact { .. }
    ));
}
