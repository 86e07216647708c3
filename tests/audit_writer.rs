//! The writer from the caller's side: malformed appends are refused and
//! change nothing; secrets in payload/actor never reach the db file, the WAL
//! or the anchor; many concurrent async tasks get unique, durable seqs from
//! group commit; tail filters and JSON-lines export; the checkpoint key file;
//! `max_bytes` pruning the oldest entries with the chain still verifying; the
//! anchor file and its slots across an upgrade, a rollback and a power cut.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cowork::audit::{
    AuditError, AuditPaths, AuditReader, AuditSettings, AuditWriter, CheckpointKey, Filter,
    NewEntry, Redactor, VerifyReport, verify, verify_live,
};
use serde_json::json;

mod common;

fn key() -> CheckpointKey {
    CheckpointKey::from_bytes([7; 32])
}

fn ok_entry(i: u64) -> NewEntry {
    NewEntry {
        component: "sandbox".into(),
        kind: if i.is_multiple_of(3) {
            "pairing.code_issued".into()
        } else {
            "command.output".into()
        },
        actor: "admin:owner".into(),
        subject: format!("task-{i}"),
        payload: json!({"i": i}),
    }
}

fn open(paths: &AuditPaths) -> AuditWriter {
    AuditWriter::open(paths, key(), &AuditSettings::default(), Redactor::new()).unwrap()
}

#[test]
fn malformed_appends_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let w = open(&paths);
    w.append_blocking(ok_entry(1)).unwrap();
    let reader = AuditReader::open(&paths.db).unwrap();
    assert_eq!(reader.count().unwrap(), 1);

    let bad: Vec<(&str, NewEntry)> = vec![
        (
            "bad kind",
            NewEntry {
                kind: "Pairing.Code".into(),
                ..ok_entry(2)
            },
        ),
        (
            "kind without dot",
            NewEntry {
                kind: "pairing".into(),
                ..ok_entry(2)
            },
        ),
        (
            "kind too long",
            NewEntry {
                kind: format!("a.{}", "b".repeat(80)),
                ..ok_entry(2)
            },
        ),
        (
            "oversized payload",
            NewEntry {
                payload: json!({"blob": "x".repeat(70 * 1024)}),
                ..ok_entry(2)
            },
        ),
        (
            "payload is an array",
            NewEntry {
                payload: json!([1, 2, 3]),
                ..ok_entry(2)
            },
        ),
        (
            "payload is a string",
            NewEntry {
                payload: json!("{\"a\":1}"),
                ..ok_entry(2)
            },
        ),
        (
            "payload is null",
            NewEntry {
                payload: serde_json::Value::Null,
                ..ok_entry(2)
            },
        ),
        (
            "empty component",
            NewEntry {
                component: "".into(),
                ..ok_entry(2)
            },
        ),
        (
            "component with space",
            NewEntry {
                component: "gate way".into(),
                ..ok_entry(2)
            },
        ),
        (
            "NUL in actor",
            NewEntry {
                actor: "admin\0root".into(),
                ..ok_entry(2)
            },
        ),
        (
            "newline in subject",
            NewEntry {
                subject: "a\nb".into(),
                ..ok_entry(2)
            },
        ),
        (
            "empty actor",
            NewEntry {
                actor: "".into(),
                ..ok_entry(2)
            },
        ),
        (
            "actor too long",
            NewEntry {
                actor: "a".repeat(257),
                ..ok_entry(2)
            },
        ),
    ];
    for (what, e) in bad {
        let err = w.append_blocking(e).expect_err(what);
        assert!(
            matches!(
                err,
                AuditError::ValidateEntry { .. } | AuditError::ValidatePayloadSize { .. }
            ),
            "{what}: {err}"
        );
        assert_eq!(reader.count().unwrap(), 1, "{what} wrote something");
    }
    // The raw request type also refuses unknown JSON shapes at the edge.
    assert!(serde_json::from_str::<NewEntry>(r#"{"component":"x"}"#).is_err());

    // Still healthy afterwards, and the seq continues without a hole.
    assert_eq!(w.append_blocking(ok_entry(2)).unwrap().seq, 2);
    w.shutdown().unwrap();
    assert!(matches!(
        verify(&paths.db, Some(&paths.anchor), Some(&key())).unwrap(),
        VerifyReport::Intact { entries: 2, .. }
    ));
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn files_of(paths: &AuditPaths) -> Vec<(String, Vec<u8>)> {
    let dir = paths.db.parent().unwrap();
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.ends_with("checkpoint.key"))
        .map(|p| (p.display().to_string(), fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn secrets_never_reach_disk() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let anthropic = format!("sk-ant-api03-{}", "Zq9".repeat(14));
    let bearer = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvd25lciJ9.c2lnbmF0dXJlLXZhbHVl";
    let pem_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
    let github = format!("ghp_{}", "a1B2".repeat(9));
    let vault_value = "correct-horse-battery-staple";
    let redactor = Redactor::new().with_known_secrets([vault_value]);
    let w = AuditWriter::open(&paths, key(), &AuditSettings::default(), redactor).unwrap();
    w.append_blocking(NewEntry {
        component: "gateway".into(),
        kind: "command.output".into(),
        actor: format!("github:{github}"),
        subject: "curl".into(),
        payload: json!({
            "cmd": format!("curl -H 'x-api-key: {anthropic}' -H 'Authorization: Bearer {bearer}' https://api"),
            "output": format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body}\n-----END OPENSSH PRIVATE KEY-----\n"),
            "env": {"DB_PASSWORD": vault_value, "note": format!("uses {vault_value}")},
        }),
    })
    .unwrap();
    for i in 0..50 {
        w.append_blocking(ok_entry(i)).unwrap();
    }
    let secrets = [
        anthropic.as_str(),
        bearer,
        pem_body,
        github.as_str(),
        vault_value,
    ];

    // While running (db + WAL + anchor), after a checkpoint, and after close.
    let check = |stage: &str| {
        for (name, bytes) in files_of(&paths) {
            for s in secrets {
                assert!(
                    !contains(&bytes, s),
                    "{stage}: secret {s:.12}.. found in {name}"
                );
            }
        }
    };
    check("running");
    let reader = AuditReader::open(&paths.db).unwrap();
    let first = &reader
        .tail(&Filter {
            after_seq: Some(0),
            limit: 1,
            ..Filter::default()
        })
        .unwrap()[0];
    let text = serde_json::to_string(first).unwrap();
    assert!(text.contains("[REDACTED:anthropic_key]"), "{text}");
    assert!(text.contains("[REDACTED:private_key]"), "{text}");
    assert!(first.actor.contains("[REDACTED:github_token]"));
    for s in secrets {
        assert!(!text.contains(s));
    }
    drop(reader);
    w.checkpoint_blocking().unwrap();
    check("checkpointed");
    w.shutdown().unwrap();
    check("closed");
}

#[test]
fn concurrent_async_appends_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let w = Arc::new(open(&paths));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut seqs: Vec<u64> = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let w = Arc::clone(&w);
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..20 {
                    got.push(w.append(ok_entry(t * 100 + i)).await.unwrap().seq);
                }
                got
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=1280).collect::<Vec<_>>());

    // A live verify while the writer is still up.
    let live = verify_live(&paths, Some(&key())).unwrap();
    assert!(
        matches!(live, VerifyReport::Intact { last_seq: 1280, .. }),
        "{live}"
    );

    Arc::try_unwrap(w).unwrap().shutdown().unwrap();
    let r = verify(&paths.db, Some(&paths.anchor), Some(&key())).unwrap();
    assert!(
        matches!(r, VerifyReport::Intact { entries: 1280, .. }),
        "{r}"
    );
}

#[test]
fn tail_filters_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let w = open(&paths);
    for i in 1..=30 {
        w.append_blocking(ok_entry(i)).unwrap();
    }
    let r = AuditReader::open(&paths.db).unwrap();

    let newest = r
        .tail(&Filter {
            limit: 5,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        newest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![26, 27, 28, 29, 30]
    );

    let pairing = r
        .tail(&Filter {
            kind: Some("pairing.".into()),
            limit: 3,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        pairing.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![24, 27, 30]
    );
    assert!(pairing.iter().all(|e| e.kind == "pairing.code_issued"));
    // `_` is not a wildcard in the prefix.
    assert!(
        r.tail(&Filter {
            kind: Some("pairing_".into()),
            ..Filter::default()
        })
        .unwrap()
        .is_empty()
    );

    let page = r
        .tail(&Filter {
            after_seq: Some(10),
            limit: 4,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![11, 12, 13, 14]
    );

    let future = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(
        r.tail(&Filter {
            since: Some(future),
            ..Filter::default()
        })
        .unwrap()
        .is_empty()
    );
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    assert_eq!(
        r.tail(&Filter {
            since: Some(past),
            ..Filter::default()
        })
        .unwrap()
        .len(),
        30
    );

    // Readers work while the writer keeps writing.
    w.append_blocking(ok_entry(31)).unwrap();
    let mut out = Vec::new();
    assert_eq!(r.export_jsonl(&mut out).unwrap(), 31);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 31);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[30]["payload"]["i"], 31);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    w.shutdown().unwrap();
}

#[test]
fn key_file_and_dir_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let w = open(&paths);
    w.append_blocking(ok_entry(1)).unwrap();
    w.shutdown().unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(paths.db.parent().unwrap()), 0o700);
    assert_eq!(mode(&paths.db), 0o600);
    assert_eq!(mode(&paths.anchor), 0o600);

    let k = CheckpointKey::load_or_create(&paths.key).unwrap();
    assert_eq!(mode(&paths.key), 0o600);
    drop(k);
    fs::set_permissions(&paths.key, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        CheckpointKey::load_or_create(&paths.key),
        Err(AuditError::KeyPermissions { .. })
    ));

    // A writer with the wrong key refuses the existing anchor.
    let err = AuditWriter::open(
        &paths,
        CheckpointKey::generate(),
        &AuditSettings::default(),
        Redactor::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, AuditError::OpenAnchorMismatch { .. }),
        "{err}"
    );
}

/// Issue 16 item 4: `max_bytes` bounds the trail by pruning the oldest entries
/// with a MAC'd 'prune' checkpoint: the chain still verifies (with the key and
/// the anchor), starts past seq 1, and the db's entries stay under the bound.
#[test]
fn max_bytes_prunes_the_oldest_entries_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let max_bytes = 64 * 1024;
    let settings = AuditSettings {
        max_bytes,
        ..AuditSettings::default()
    };
    let w = AuditWriter::open(&paths, key(), &settings, Redactor::new()).unwrap();
    let big = |i: u64| NewEntry {
        payload: json!({"i": i, "pad": "p".repeat(200)}),
        ..ok_entry(i)
    };
    for i in 0..2_000 {
        w.append_blocking(big(i)).unwrap();
    }
    // The writer checked on its own every SIZE_CHECK_EVERY entries; once more now.
    w.prune_to_size_blocking().unwrap();
    let reader = AuditReader::open(&paths.db).unwrap();
    let kept = reader.count().unwrap();
    assert!(kept > 0 && kept < 2_000, "kept {kept}");
    // Each entry takes well over 200 bytes: the bound holds on the kept count.
    assert!(kept * 200 <= max_bytes, "kept {kept} entries");
    match verify(&paths.db, Some(&paths.anchor), Some(&key())).unwrap() {
        VerifyReport::Intact {
            first_seq,
            last_seq,
            entries,
            ..
        } => {
            assert!(first_seq > 1, "the oldest entries were pruned");
            assert_eq!(last_seq, 2_000, "the newest entries are kept");
            assert_eq!(entries, kept);
        }
        other => panic!("{other:?}"),
    }
    // Without a bound nothing is pruned.
    let dir2 = tempfile::tempdir().unwrap();
    let paths2 = AuditPaths::in_state_dir(dir2.path());
    let unbounded = AuditSettings {
        max_bytes: 0,
        ..AuditSettings::default()
    };
    let w2 = AuditWriter::open(&paths2, key(), &unbounded, Redactor::new()).unwrap();
    for i in 0..600 {
        w2.append_blocking(big(i)).unwrap();
    }
    assert_eq!(w2.prune_to_size_blocking().unwrap().deleted, 0);
    assert_eq!(AuditReader::open(&paths2.db).unwrap().count().unwrap(), 600);
}

/// The anchor in two files: the slots cover every acknowledged append, and
/// `audit.anchor` (what an older image reads after a rollback) follows within
/// a second and at shutdown; a trail from before the slots file opens and
/// gains one; a stale `audit.anchor` (its writeback lost in a power cut) is
/// covered by the slots, so a cut tail is still caught.
#[test]
fn anchor_file_and_slots_across_upgrade_rollback_and_power_cut() {
    use cowork::audit::anchor::{Anchor, read_slots, slots_path};
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::in_state_dir(dir.path());
    let slots = slots_path(&paths.anchor);
    let w = open(&paths);
    let file_seq = || Anchor::read(&paths.anchor).unwrap().unwrap().seq;
    let mut last = 0;
    for i in 1..=4 {
        let r = w.append_blocking(ok_entry(i)).unwrap();
        let newest = read_slots(&slots)
            .unwrap()
            .into_iter()
            .map(|(_, a)| a.seq)
            .max();
        assert_eq!(newest, Some(r.seq));
        // Never ahead of the trail.
        assert!(file_seq() <= r.seq);
        last = r.seq;
    }
    // An older image reads audit.anchor alone: it catches up with the idle
    // writer within a second.
    common::wait_until(Duration::from_secs(10), "audit.anchor at the head", || {
        (file_seq() == last).then_some(())
    });
    let r = w.append_blocking(ok_entry(5)).unwrap();
    w.shutdown().unwrap();
    assert_eq!(file_seq(), r.seq, "shutdown brings audit.anchor up");

    // The trail as an image without the slots file left it: opens, gains it.
    fs::remove_file(&slots).unwrap();
    let w = open(&paths);
    assert_eq!(w.append_blocking(ok_entry(6)).unwrap().seq, 6);
    assert!(slots.exists());
    let stale = fs::read(&paths.anchor).unwrap();
    let stale_seq = file_seq();
    assert!(stale_seq <= 6);
    for i in 7..=9 {
        w.append_blocking(ok_entry(i)).unwrap();
    }
    w.shutdown().unwrap();

    // A power cut lost audit.anchor's writeback (seq 6 or before); the slots say 9+.
    fs::write(&paths.anchor, &stale).unwrap();
    assert_eq!(file_seq(), stale_seq);
    match verify(&paths.db, Some(&paths.anchor), Some(&key())).unwrap() {
        VerifyReport::Intact { anchor_seq, .. } => assert!(anchor_seq >= Some(9)),
        other => panic!("expected intact, got {other}"),
    }
    // Cutting the tail back to what the stale file covers is still caught.
    let cut = dir.path().join("cut.db");
    let conn = rusqlite::Connection::open(&paths.db).unwrap();
    conn.execute("VACUUM INTO ?1", [cut.to_string_lossy()])
        .unwrap();
    drop(conn);
    let c = rusqlite::Connection::open(&cut).unwrap();
    c.execute("DELETE FROM entries WHERE seq > ?1", [stale_seq])
        .unwrap();
    c.execute("DELETE FROM checkpoints WHERE seq > ?1", [stale_seq])
        .unwrap();
    drop(c);
    match verify(&cut, Some(&paths.anchor), Some(&key())).unwrap() {
        VerifyReport::Tampered { .. } => {}
        other => panic!("a cut tail must be caught by the slots, got {other}"),
    }
    // The writer opens on the newest anchor and brings audit.anchor up to it.
    let w = open(&paths);
    assert!(file_seq() >= 9);
    let r = w.append_blocking(ok_entry(10)).unwrap();
    w.shutdown().unwrap();
    assert_eq!(file_seq(), r.seq);
}
