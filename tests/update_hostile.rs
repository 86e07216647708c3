//! Hostile input: every truncation and every single-byte flip (two bit
//! patterns) of a small signed bundle is refused by `verify` without a panic;
//! a sample of them is refused by `apply` with slot B left unbootable; random
//! garbage and absurd headers (length overflow) are refused too.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod update_common;

use cowork::update::{DeviceIdentity, MemoryAudit, Slot, TrustStore, UpdateError, verify};
use rand::{Rng, SeedableRng};
use update_common::*;

/// Rewrites `path` in place without truncating it to zero first (ext4 flushes
/// a file truncated to zero and rewritten; thousands of those stall on a busy disk).
fn overwrite(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    f.set_len(bytes.len() as u64).unwrap();
}

fn device() -> DeviceIdentity {
    let s = cowork::update::UpdateSettings::default();
    DeviceIdentity {
        product: s.product,
        hardware: s.hardware,
    }
}

#[test]
fn every_truncation_and_byte_flip_is_refused() {
    let fx = Fixture::new();
    let good = fx.bundle_with("small", &pattern(3000, 5), 2, "test-signing-key", |_| {});
    let trust = TrustStore::load(&fx.root().join("keys"), &fx.root().join("state")).unwrap();
    verify(&good, &trust, &device(), 1, 0).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let bad = fx.root().join("work/bad.cwupdate");

    for cut in 0..bytes.len() {
        overwrite(&bad, &bytes[..cut]);
        let err = expect_err(verify(&bad, &trust, &device(), 1, 0));
        assert!(
            matches!(err, UpdateError::Truncated { .. }),
            "cut {cut}: {err}"
        );
    }
    let mut reasons = std::collections::BTreeMap::new();
    for pos in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[pos] ^= mask;
            overwrite(&bad, &b);
            let err = expect_err(verify(&bad, &trust, &device(), 1, 0));
            *reasons.entry(err.reason()).or_insert(0) += 1;
            if pos % 311 == 0 && mask == 0x01 {
                let audit = MemoryAudit::default();
                expect_err(fx.updater(Slot::A, 1, &audit).apply(&bad));
                assert_b_not_bootable(&fx);
            }
        }
    }
    eprintln!(
        "{} bytes flipped twice each; refusals: {reasons:?}",
        bytes.len()
    );
}

#[test]
fn random_garbage_and_absurd_headers_are_refused() {
    let fx = Fixture::new();
    let trust = TrustStore::load(&fx.root().join("keys"), &fx.root().join("state")).unwrap();
    let bad = fx.root().join("work/garbage.cwupdate");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..500 {
        let len = rng.gen_range(0..2000);
        let mut b: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        if len >= 8 && rng.gen_bool(0.5) {
            b[..8].copy_from_slice(b"CWUPDATE");
        }
        overwrite(&bad, &b);
        expect_err(verify(&bad, &trust, &device(), 1, 0));
    }
    // Header with a payload length that overflows the total length.
    let good = fx.bundle_with("small", &pattern(100, 5), 2, "test-signing-key", |_| {});
    let mut b = std::fs::read(&good).unwrap();
    b[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
    std::fs::write(&bad, &b).unwrap();
    let err = expect_err(verify(&bad, &trust, &device(), 1, 0));
    assert!(matches!(err, UpdateError::Truncated { .. }), "{err}");
    // A directory, and a missing file.
    let err = expect_err(verify(fx.root(), &trust, &device(), 1, 0));
    assert!(
        err.to_string().contains(&fx.root().display().to_string()),
        "{err}"
    );
    expect_err(verify(&fx.root().join("nope"), &trust, &device(), 1, 0));
}
