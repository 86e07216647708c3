//! Crash safety of apply: a child process (this test binary re-executed with
//! COWORK_UPDATE_KILL_CHILD set, running `Updater::apply` on file-backed
//! slots) is SIGKILLed after a random delay, 20 times on the same slots. After
//! each kill slot A's image and its boot entry are byte-for-byte untouched,
//! and slot B has no bootable entry unless the apply completed (then slot B
//! and its kernel/initrd match the bundle exactly).

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod update_common;

use std::process::Command;
use std::time::{Duration, Instant};

use cowork::update::{MemoryAudit, Slot};
use rand::Rng;
use update_common::*;

const CHILD_ENV: &str = "COWORK_UPDATE_KILL_CHILD";
const PAYLOAD_LEN: usize = 16 * 1024 * 1024;

/// The child side (this test binary re-executed as the test below with
/// `CHILD_ENV` set): applies the bundle named there.
fn kill_child(spec: &str) {
    let (root, bundle) = spec.split_once('\n').unwrap();
    let root = std::path::Path::new(root);
    let settings = cowork::update::UpdateSettings {
        keys_dir: root.join("keys"),
        ..Default::default()
    };
    let audit = MemoryAudit::default();
    let slots = cowork::update::Slots::file_backed(root, Slot::A).unwrap();
    cowork::update::Updater::new(slots, &settings, 1, &audit)
        .apply(std::path::Path::new(bundle))
        .unwrap();
}

fn spawn_child(fx: &Fixture, bundle: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "kill_9_during_apply_never_breaks_the_running_slot",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}", fx.root().display(), bundle.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_during_apply_never_breaks_the_running_slot() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return kill_child(&spec);
    }
    let fx = Fixture::new();
    let payload = pattern(PAYLOAD_LEN, 42);
    let bundle = fx.bundle_with("v2", &payload, 2, "test-signing-key", |o| {
        o.chunk_size = Some(1024 * 1024)
    });
    let slot_a = std::fs::read(fx.root().join("slot-a.img")).unwrap();

    // Calibrate: uninterrupted runs (the second one with warm caches).
    let mut full = Duration::ZERO;
    for _ in 0..2 {
        let t = Instant::now();
        let status = spawn_child(&fx, &bundle).wait().unwrap();
        assert!(status.success(), "the uninterrupted apply failed");
        full = t.elapsed();
    }
    assert_eq!(fx.entry_files(), ["cowork-a.conf", "cowork-b+3.conf"]);

    let mut rng = rand::thread_rng();
    let (mut interrupted, mut completed, mut mid_apply) = (0, 0, 0);
    for round in 0..20 {
        let delay = Duration::from_micros(rng.gen_range(0..full.as_micros() as u64 + 1));
        let mut child = spawn_child(&fx, &bundle);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        } else {
            interrupted += 1;
            let last = cowork::update::read_last_attempt(&fx.root().join("state")).unwrap();
            if last.is_some_and(|l| l.result == cowork::update::AttemptResult::InProgress) {
                mid_apply += 1;
            }
        }

        assert_eq!(
            std::fs::read(fx.root().join("slot-a.img")).unwrap(),
            slot_a,
            "round {round}: slot A changed"
        );
        assert_eq!(
            std::fs::read_to_string(fx.entries().join("cowork-a.conf")).unwrap(),
            SLOT_A_ENTRY,
            "round {round}: slot A's entry changed"
        );
        let confs: Vec<String> = fx
            .entry_files()
            .into_iter()
            .filter(|f| f.ends_with(".conf"))
            .collect();
        match confs.as_slice() {
            [a] if a == "cowork-a.conf" => {}
            [a, b] if a == "cowork-a.conf" && b == "cowork-b+3.conf" => {
                // Bootable B only if it is complete and exact.
                assert!(
                    std::fs::read(fx.root().join("slot-b.img")).unwrap() == payload,
                    "round {round} (delay {delay:?}): B has an entry but its image is incomplete"
                );
                assert_eq!(
                    std::fs::read_to_string(fx.root().join("esp/cowork-b/initrd.img")).unwrap(),
                    "initrd of v2"
                );
            }
            other => panic!("round {round}: unexpected entries {other:?}"),
        }
    }
    eprintln!(
        "kill -9: full apply {full:?}; {interrupted} interrupted ({mid_apply} while writing), {completed} completed before the kill"
    );
    // Afterwards a normal apply still succeeds.
    let audit = MemoryAudit::default();
    fx.updater(Slot::A, 1, &audit).apply(&bundle).unwrap();
    assert_eq!(
        std::fs::read(fx.root().join("slot-b.img")).unwrap(),
        payload
    );
}
