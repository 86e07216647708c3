//! Audit verification of a corrupted database copy. Once: a real audit db of
//! 40 entries written by `AuditWriter` (checkpoints every 10) and its anchor.
//! Per input: byte edits (3-byte offset, xor) to a copy of the db, or of the
//! anchor when the first byte is odd, and a length change; then `verify` with
//! the key. Asserts: `verify` returns (a report or an error), never panics or
//! hangs; an untouched copy is intact.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use cowork::audit::{
    AuditPaths, AuditSettings, AuditWriter, CheckpointKey, NewEntry, Redactor, VerifyReport, verify,
};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x42; 32];

struct World {
    _dir: tempfile::TempDir,
    db: Vec<u8>,
    anchor: Vec<u8>,
    copy_db: PathBuf,
    copy_anchor: PathBuf,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = AuditPaths::in_state_dir(&dir.path().join("state"));
        let settings = AuditSettings {
            checkpoint_every_entries: 10,
            ..AuditSettings::default()
        };
        let w = AuditWriter::open(
            &paths,
            CheckpointKey::from_bytes(KEY),
            &settings,
            Redactor::new(),
        )
        .expect("open writer");
        for i in 0..40u64 {
            w.append_blocking(NewEntry {
                component: "gateway".into(),
                kind: "command.output".into(),
                actor: format!("telegram:{}", 1000 + i % 7),
                subject: format!("task-{i}"),
                payload: serde_json::json!({"i": i, "text": format!("line {i}")}),
            })
            .expect("append");
        }
        w.shutdown().expect("shutdown");
        let db = std::fs::read(&paths.db).expect("read db");
        let anchor = std::fs::read(&paths.anchor).expect("read anchor");
        let copies = dir.path().join("copy");
        std::fs::create_dir_all(&copies).expect("copy dir");
        World {
            db,
            anchor,
            copy_db: copies.join("audit.db"),
            copy_anchor: copies.join("audit.anchor"),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let (mut db, mut anchor) = (w.db.clone(), w.anchor.clone());
    let target = if mode & 1 == 0 { &mut db } else { &mut anchor };
    let (edits, len_change) = match rest.split_last() {
        Some((&last, edits)) => (edits, last),
        None => (rest, 0),
    };
    for e in edits.chunks_exact(4) {
        let at = u32::from_be_bytes([0, e[0], e[1], e[2]]) as usize % target.len();
        target[at] ^= e[3];
    }
    match len_change {
        0..=3 => {}
        4..=127 => target.truncate(target.len().saturating_sub(usize::from(len_change) * 16)),
        _ => target.extend(std::iter::repeat_n(0u8, usize::from(len_change - 127) * 16)),
    }
    std::fs::write(&w.copy_db, &db).expect("write db copy");
    std::fs::write(&w.copy_anchor, &anchor).expect("write anchor copy");
    let result = verify(
        &w.copy_db,
        Some(&w.copy_anchor),
        Some(&CheckpointKey::from_bytes(KEY)),
    );
    if db == w.db && anchor == w.anchor {
        assert!(
            matches!(result, Ok(VerifyReport::Intact { .. })),
            "an untouched copy does not verify: {result:?}"
        );
    }
});
