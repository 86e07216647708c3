//! The happy path and the slot lifecycle on file-backed slots: apply writes
//! slot B, its kernel/initrd and a `cowork-b+3.conf` entry that sorts first;
//! slot A and its entry are untouched; offline verify; blessing emits
//! update.boot_marked; exhausted tries (`+0-3`) emit update.rolled_back and show
//! in status; the version floor refuses a downgrade after that rollback;
//! a revoking update makes the revoked key's bundles refused from then on;
//! the next update from B writes slot A and leaves B's blessed entry alone.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod update_common;

use cowork::update::{
    EntryState, MemoryAudit, Slot, UpdateError, UpdateEvent, load_signing_key, read_floor,
};
use update_common::*;

#[test]
fn happy_path_writes_slot_b_and_its_counted_entry() {
    let fx = Fixture::new();
    let payload = pattern(300 * 1024, 7);
    let b = fx.bundle_with("v7", &payload, 7, "test-signing-key", |o| {
        o.version_label = "2026.11.7".into()
    });
    let slot_a_before = std::fs::read(fx.root().join("slot-a.img")).unwrap();
    let audit = MemoryAudit::default();
    let up = fx.updater(Slot::A, 3, &audit);

    let vm = up.verify(&b).unwrap();
    assert_eq!(vm.version(), 7);
    assert_eq!(audit.names(), ["update.verify_started"]);
    assert_b_not_bootable(&fx); // verify writes nothing

    let applied = up.apply(&b).unwrap();
    assert_eq!(applied.slot, Slot::B);
    assert_eq!(applied.entry, "cowork-b+3.conf");
    assert_eq!(
        audit.names(),
        [
            "update.verify_started",
            "update.verify_started",
            "update.applying",
            "update.applied"
        ]
    );
    assert_eq!(
        std::fs::read(fx.root().join("slot-b.img")).unwrap(),
        payload
    );
    assert_eq!(
        std::fs::read_to_string(fx.root().join("esp/cowork-b/vmlinuz")).unwrap(),
        "kernel of v7"
    );
    assert_eq!(
        std::fs::read_to_string(fx.root().join("esp/cowork-b/initrd.img")).unwrap(),
        "initrd of v7"
    );
    assert_eq!(fx.entry_files(), ["cowork-a.conf", "cowork-b+3.conf"]);
    let entry = std::fs::read_to_string(fx.entries().join("cowork-b+3.conf")).unwrap();
    assert!(entry.contains("sort-key   cowork\n"), "{entry}");
    assert!(entry.contains("version    7\n"), "{entry}");
    assert!(entry.contains("linux      /cowork-b/vmlinuz\n"), "{entry}");
    assert!(
        entry.contains("options    root=PARTLABEL=root-b ro "),
        "{entry}"
    );
    assert!(entry.contains("(slot B, 2026.11.7)"), "{entry}");
    // The running slot and its entry are untouched.
    assert_eq!(
        std::fs::read(fx.root().join("slot-a.img")).unwrap(),
        slot_a_before
    );
    assert_eq!(
        std::fs::read_to_string(fx.entries().join("cowork-a.conf")).unwrap(),
        SLOT_A_ENTRY
    );
    assert_eq!(read_floor(&fx.root().join("state")).unwrap(), 7);

    let st = up.status().unwrap();
    assert_eq!(st.running, Slot::A);
    assert_eq!(st.running_version, 3);
    assert_eq!(st.running_entry, EntryState::Good);
    assert_eq!(st.other_entry, EntryState::Pending { left: 3, done: 0 });
    assert_eq!(st.other_version.as_deref(), Some("7"));
    assert_eq!(st.fallback, None);
    // Not booted yet: no outcome to report.
    assert_eq!(up.check_boot().unwrap(), None);
}

#[test]
fn whole_image_hash_bundle_applies() {
    let fx = Fixture::new();
    let payload = pattern(123_457, 9);
    let b = fx.bundle_with("nochunks", &payload, 2, "test-signing-key", |o| {
        o.chunk_size = None
    });
    let audit = MemoryAudit::default();
    fx.updater(Slot::A, 1, &audit).apply(&b).unwrap();
    assert_eq!(
        std::fs::read(fx.root().join("slot-b.img")).unwrap(),
        payload
    );
}

#[test]
fn blessing_is_reported_once() {
    let fx = Fixture::new();
    let b = fx.bundle("v5", 5);
    let audit = MemoryAudit::default();
    fx.updater(Slot::A, 1, &audit).apply(&b).unwrap();
    // systemd-boot tried it once, systemd-bless-boot marked it good.
    std::fs::rename(
        fx.entries().join("cowork-b+3.conf"),
        fx.entries().join("cowork-b.conf"),
    )
    .unwrap();
    let audit = MemoryAudit::default();
    let up = fx.updater(Slot::B, 5, &audit);
    assert_eq!(
        up.check_boot().unwrap(),
        Some(UpdateEvent::BootMarked {
            version: 5,
            slot: Slot::B
        })
    );
    assert_eq!(up.check_boot().unwrap(), None);
    assert_eq!(audit.names(), ["update.boot_marked"]);
    let st = up.status().unwrap();
    assert_eq!(st.running_entry, EntryState::Good);
    assert_eq!(st.fallback, None);
}

#[test]
fn rollback_is_reported_and_the_floor_refuses_a_downgrade() {
    let fx = Fixture::new();
    let audit = MemoryAudit::default();
    fx.updater(Slot::A, 1, &audit)
        .apply(&fx.bundle("v5", 5))
        .unwrap();
    // Three failed boots of B: systemd-boot renamed the entry to +0-3 and booted A.
    std::fs::rename(
        fx.entries().join("cowork-b+3.conf"),
        fx.entries().join("cowork-b+0-3.conf"),
    )
    .unwrap();
    let audit = MemoryAudit::default();
    let up = fx.updater(Slot::A, 1, &audit);
    let ev = up.check_boot().unwrap().expect("a rollback event");
    assert!(
        matches!(
            ev,
            UpdateEvent::RolledBack {
                version: 5,
                from: Slot::B,
                to: Slot::A,
                ..
            }
        ),
        "{ev:?}"
    );
    let st = up.status().unwrap();
    assert_eq!(st.other_entry, EntryState::Bad { done: 3 });
    let why = st.fallback.expect("a fallback reason");
    assert!(why.contains("cowork-b+0-3.conf"), "{why}");

    // Version 3 is newer than the running 1 but below the floor 5.
    let err = expect_err(up.apply(&fx.bundle("v3", 3)));
    assert!(
        matches!(
            err,
            UpdateError::BelowFloor {
                version: 3,
                floor: 5
            }
        ),
        "{err}"
    );
    // The bad entry of B is still there (nothing was written), A untouched.
    assert_eq!(fx.entry_files(), ["cowork-a.conf", "cowork-b+0-3.conf"]);
    // The same version may be retried (not a downgrade), and a newer one applies.
    up.apply(&fx.bundle("v5again", 5)).unwrap();
    up.apply(&fx.bundle("v6", 6)).unwrap();
    assert_eq!(fx.entry_files(), ["cowork-a.conf", "cowork-b+3.conf"]);
}

#[test]
fn revoked_key_refused_after_a_revoking_update() {
    let fx = Fixture::new();
    let test_key = load_signing_key(&data("test-signing-key.pem")).unwrap();
    let test_id = cowork::update::KeyId::of(test_key.verifying_key().as_bytes()).to_string();
    let audit = MemoryAudit::default();
    let up = fx.updater(Slot::A, 1, &audit);
    // Before: the test key is good.
    up.verify(&fx.bundle("v2", 2)).unwrap();
    // Version 3, signed by the second key, revokes the test key.
    let rev = fx.bundle_with("v3", &pattern(5000, 3), 3, "second-signing-key", |o| {
        o.revoked_keys = vec![test_id.clone()]
    });
    up.apply(&rev).unwrap();
    // From then on, bundles by the test key are refused, whatever their version.
    let err = expect_err(up.apply(&fx.bundle("v9", 9)));
    assert!(
        matches!(&err, UpdateError::RevokedKey { key_id, .. } if *key_id == test_id),
        "{err}"
    );
    assert!(err.to_string().contains(&test_id), "{err}");
    // And after a rollback to the older image as well (state is on /var).
    let audit = MemoryAudit::default();
    let err = expect_err(fx.updater(Slot::A, 1, &audit).verify(&fx.bundle("v10", 10)));
    assert!(matches!(err, UpdateError::RevokedKey { .. }), "{err}");
    // The revoked key's bundle did not touch slot B's entry from the revoking update.
    assert_eq!(fx.entry_files(), ["cowork-a.conf", "cowork-b+3.conf"]);
}

#[test]
fn next_update_from_b_writes_a_and_keeps_bs_entry() {
    let fx = Fixture::new();
    let audit = MemoryAudit::default();
    fx.updater(Slot::A, 1, &audit)
        .apply(&fx.bundle("v2", 2))
        .unwrap();
    std::fs::rename(
        fx.entries().join("cowork-b+3.conf"),
        fx.entries().join("cowork-b.conf"),
    )
    .unwrap();
    let b_entry = std::fs::read(fx.entries().join("cowork-b.conf")).unwrap();
    let b_img = std::fs::read(fx.root().join("slot-b.img")).unwrap();
    let payload = pattern(70_000, 3);
    let bundle = fx.bundle_with("v3", &payload, 3, "test-signing-key", |_| {});
    let applied = fx.updater(Slot::B, 2, &audit).apply(&bundle).unwrap();
    assert_eq!(applied.entry, "cowork-a+3.conf");
    // A's old blessed entry was replaced by the counted one; B's is unchanged.
    assert_eq!(fx.entry_files(), ["cowork-a+3.conf", "cowork-b.conf"]);
    assert_eq!(
        std::fs::read(fx.entries().join("cowork-b.conf")).unwrap(),
        b_entry
    );
    assert_eq!(std::fs::read(fx.root().join("slot-b.img")).unwrap(), b_img);
    assert_eq!(
        std::fs::read(fx.root().join("slot-a.img")).unwrap(),
        payload
    );
}

#[test]
fn no_update_while_the_running_slot_is_on_probation() {
    let fx = Fixture::new();
    let audit = MemoryAudit::default();
    fx.updater(Slot::A, 1, &audit)
        .apply(&fx.bundle("v5", 5))
        .unwrap();
    // Booted B once, not blessed yet: A is the fallback and must stay intact.
    std::fs::rename(
        fx.entries().join("cowork-b+3.conf"),
        fx.entries().join("cowork-b+2-1.conf"),
    )
    .unwrap();
    let audit = MemoryAudit::default();
    let err = expect_err(fx.updater(Slot::B, 5, &audit).apply(&fx.bundle("v6", 6)));
    assert!(
        matches!(err, UpdateError::RunningNotBlessed { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("cowork-b+2-1.conf"), "{err}");
    assert_eq!(fx.entry_files(), ["cowork-a.conf", "cowork-b+2-1.conf"]);
    assert_eq!(audit.names(), ["update.verify_started", "update.refused"]);
}

#[test]
fn status_flags_an_interrupted_attempt() {
    let fx = Fixture::new();
    std::fs::write(
        fx.root().join("state/last-attempt.json"),
        r#"{"bundle":"/x","version":9,"version_label":"9","target":"b",
            "started_unix":1,"finished_unix":null,"result":{"kind":"in_progress"}}"#,
    )
    .unwrap();
    let audit = MemoryAudit::default();
    let st = fx.updater(Slot::A, 1, &audit).status().unwrap();
    assert!(st.last_attempt_interrupted);
    assert_eq!(st.other_entry, EntryState::Missing);
    assert_eq!(st.other_version, None);
}
