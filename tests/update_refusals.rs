//! Every refusal case of `Updater::apply` on file-backed slots: tampered
//! payload (chunked and whole-image), tampered manifest, wrong key, forged
//! signature, truncated bundle, trailing bytes, older / same version, wrong
//! product / hardware, oversized manifest, garbage CBOR (signed and not),
//! self-revoking bundle. Each is refused with a clear error and its audit
//! reason, and slot B is never made bootable while slot A's entry is untouched.

#![allow(clippy::unwrap_used)] // test helpers unwrap: a failure is the test failing

mod update_common;

use cowork::update::{MemoryAudit, Slot, UpdateError, load_signing_key, sign_parts};
use update_common::*;

fn manifest_range(bundle: &std::path::Path) -> (usize, usize) {
    let b = std::fs::read(bundle).unwrap();
    let len = u32::from_be_bytes([b[12], b[13], b[14], b[15]]) as usize;
    (32, 32 + len)
}

fn refuse(fx: &Fixture, bundle: &std::path::Path, current: u64) -> (UpdateError, String) {
    let audit = MemoryAudit::default();
    let err = expect_err(fx.updater(Slot::A, current, &audit).apply(bundle));
    assert_b_not_bootable(fx);
    let names = audit.names();
    assert_eq!(names.first(), Some(&"update.verify_started"), "{names:?}");
    assert!(!names.contains(&"update.applied"), "{names:?}");
    let reason = refused_reason(&audit).expect("an update.refused event");
    assert_eq!(reason, err.reason());
    (err, reason)
}

#[test]
fn tampered_payload_byte_chunked() {
    let fx = Fixture::new();
    let b = fx.bundle("p", 5);
    let len = std::fs::metadata(&b).unwrap().len() as usize;
    flip(&b, len - 100 * 1024); // inside the image
    let (err, reason) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::PayloadHash { .. }), "{err}");
    assert_eq!(reason, "payload_hash_mismatch");
    assert!(err.to_string().contains("chunk"), "{err}");
}

#[test]
fn tampered_payload_byte_whole_image() {
    let fx = Fixture::new();
    let b = fx.bundle_with("p", &pattern(200_000, 3), 5, "test-signing-key", |o| {
        o.chunk_size = None
    });
    let (_, end) = manifest_range(&b);
    flip(&b, end + 64 + 199_999); // last byte of the image
    let (err, _) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::PayloadHash { .. }), "{err}");
}

#[test]
fn tampered_boot_file() {
    let fx = Fixture::new();
    let b = fx.bundle("p", 5);
    let len = std::fs::metadata(&b).unwrap().len() as usize;
    flip(&b, len - 1); // last byte of initrd.img
    let (err, _) = refuse(&fx, &b, 1);
    assert!(err.to_string().contains("initrd.img"), "{err}");
    assert!(!fx.root().join("esp/cowork-b/initrd.img").exists());
}

#[test]
fn tampered_manifest() {
    let fx = Fixture::new();
    let b = fx.bundle("m", 5);
    let (start, end) = manifest_range(&b);
    for off in [start, (start + end) / 2, end - 1] {
        let c = fx.root().join("work/m-copy.cwupdate");
        std::fs::copy(&b, &c).unwrap();
        flip(&c, off);
        let (err, reason) = refuse(&fx, &c, 1);
        assert!(matches!(err, UpdateError::BadSignature { .. }), "{err}");
        assert_eq!(reason, "bad_signature");
    }
}

#[test]
fn wrong_key() {
    let fx = Fixture::new();
    let b = fx.bundle_with("w", &pattern(1000, 2), 5, "other-signing-key", |_| {});
    let (err, _) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::UnknownKey { .. }), "{err}");
    // The key id is shown.
    let other = load_signing_key(&data("other-signing-key.pem")).unwrap();
    let id = cowork::update::KeyId::of(other.verifying_key().as_bytes()).to_string();
    assert!(err.to_string().contains(&id), "{err}");
}

#[test]
fn signature_by_another_key_under_a_trusted_key_id() {
    let fx = Fixture::new();
    let b = fx.bundle("f", 5);
    let (start, end) = manifest_range(&b);
    let mut bytes = std::fs::read(&b).unwrap();
    let other = load_signing_key(&data("other-signing-key.pem")).unwrap();
    let payload_len = (bytes.len() - end - 64) as u64;
    let (_, sig) = sign_parts(&bytes[start..end], payload_len, &other).unwrap();
    bytes[end..end + 64].copy_from_slice(&sig);
    std::fs::write(&b, bytes).unwrap();
    let (err, _) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::BadSignature { .. }), "{err}");
}

#[test]
fn truncated_bundle() {
    let fx = Fixture::new();
    let b = fx.bundle("t", 5);
    let bytes = std::fs::read(&b).unwrap();
    let (_, end) = manifest_range(&b);
    for cut in [0, 10, 31, end - 5, end + 10, bytes.len() - 1] {
        std::fs::write(&b, &bytes[..cut]).unwrap();
        let (err, reason) = refuse(&fx, &b, 1);
        assert!(matches!(err, UpdateError::Truncated { .. }), "{cut}: {err}");
        assert_eq!(reason, "truncated");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&b, longer).unwrap();
    let (err, _) = refuse(&fx, &b, 1);
    assert!(
        matches!(err, UpdateError::TrailingData { extra: 1, .. }),
        "{err}"
    );
}

#[test]
fn older_and_same_version() {
    let fx = Fixture::new();
    let b = fx.bundle("o", 4);
    let (err, reason) = refuse(&fx, &b, 5);
    assert!(
        matches!(
            err,
            UpdateError::OlderVersion {
                version: 4,
                current: 5
            }
        ),
        "{err}"
    );
    assert_eq!(reason, "older_version");
    let b = fx.bundle("s", 5);
    let (err, _) = refuse(&fx, &b, 5);
    assert!(
        matches!(err, UpdateError::SameVersion { version: 5 }),
        "{err}"
    );
}

#[test]
fn wrong_hardware_and_product() {
    let fx = Fixture::new();
    let b = fx.bundle_with("h", &pattern(1000, 2), 5, "test-signing-key", |o| {
        o.hardware = vec!["arm64-mac-mini".into()]
    });
    let (err, _) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::WrongHardware { .. }), "{err}");
    assert!(err.to_string().contains("arm64-mac-mini"), "{err}");
    let b = fx.bundle_with("p", &pattern(1000, 2), 5, "test-signing-key", |o| {
        o.product = "someone-else".into()
    });
    let (err, _) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::WrongProduct { .. }), "{err}");
}

#[test]
fn oversized_manifest_refused_before_parsing() {
    let fx = Fixture::new();
    // A correctly signed bundle whose manifest is 70 KiB.
    let b = fx.bundle_with("big", &pattern(1000, 2), 5, "test-signing-key", |o| {
        o.version_label = "x".repeat(70 * 1024)
    });
    let (err, reason) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::ManifestTooLarge { .. }), "{err}");
    assert_eq!(reason, "manifest_too_large");
    // A header claiming 4 GiB of manifest in a tiny file.
    let mut bytes = std::fs::read(&b).unwrap();
    bytes[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    bytes.truncate(200);
    std::fs::write(&b, bytes).unwrap();
    let (err, _) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::ManifestTooLarge { .. }), "{err}");
}

#[test]
fn garbage_cbor() {
    let fx = Fixture::new();
    let key = load_signing_key(&data("test-signing-key.pem")).unwrap();
    let b = fx.root().join("work/garbage.cwupdate");
    for garbage in [
        &b"\xff\xff\xff\xff not cbor"[..],
        &b"\xa1\x63abc\x01"[..],      // a map with an unknown field
        &b"\x9f\x9f\x9f\x9f\x9f"[..], // unterminated nested arrays
        &b"\xbf\x67version\x1b"[..],  // truncated integer
        &b""[..],
    ] {
        let (header, sig) = sign_parts(garbage, 0, &key).unwrap();
        std::fs::write(&b, [&header[..], garbage, &sig[..]].concat()).unwrap();
        let (err, reason) = refuse(&fx, &b, 1);
        assert!(matches!(err, UpdateError::DecodeManifest { .. }), "{err}");
        assert_eq!(reason, "bad_manifest");
    }
    // Unsigned garbage in place of a real manifest: the signature check comes first.
    let real = fx.bundle("r", 5);
    let (start, end) = manifest_range(&real);
    let mut bytes = std::fs::read(&real).unwrap();
    for x in &mut bytes[start..end] {
        *x = 0xff;
    }
    std::fs::write(&real, bytes).unwrap();
    let (err, _) = refuse(&fx, &real, 1);
    assert!(matches!(err, UpdateError::BadSignature { .. }), "{err}");
}

#[test]
fn bundle_revoking_its_own_key() {
    let fx = Fixture::new();
    let key = load_signing_key(&data("test-signing-key.pem")).unwrap();
    let id = cowork::update::KeyId::of(key.verifying_key().as_bytes()).to_string();
    let b = fx.bundle_with("self", &pattern(1000, 2), 5, "test-signing-key", |o| {
        o.revoked_keys = vec![id]
    });
    let (err, _) = refuse(&fx, &b, 1);
    assert!(matches!(err, UpdateError::SelfRevoking { .. }), "{err}");
}

#[test]
fn refusal_is_recorded_as_last_attempt() {
    let fx = Fixture::new();
    let b = fx.bundle("o", 4);
    refuse(&fx, &b, 5);
    let audit = MemoryAudit::default();
    let st = fx.updater(Slot::A, 5, &audit).status().unwrap();
    let last = st.last_attempt.unwrap();
    assert!(
        matches!(&last.result, cowork::update::AttemptResult::Refused { reason, .. } if reason == "older_version"),
        "{last:?}"
    );
}
