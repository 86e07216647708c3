//! Keystore file tier and tier selection without a TPM: the host key is
//! created 0600 in a 0700 directory, reopens to the same derived keys,
//! a group/world-readable or foreign-owned key file is refused (and left
//! as is), a damaged key file is named, `auto` reports why tpm2 and keychain
//! were skipped, and an existing master in another tier is never replaced.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod skip;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cowork::keystore::{Keystore, KeystoreError, KeystoreSettings, Purpose, TierChoice, TierKind};

fn file_settings() -> KeystoreSettings {
    KeystoreSettings {
        tier: TierChoice::File,
        ..Default::default()
    }
}

fn no_tpm_auto() -> KeystoreSettings {
    KeystoreSettings {
        tier: TierChoice::Auto,
        // Nothing listens on port 1: the TCTI fails to open.
        tcti: "swtpm:host=127.0.0.1,port=1".into(),
        pcrs: vec![],
    }
}

fn key_path(state: &Path) -> std::path::PathBuf {
    state.join("keystore").join("master.key")
}

#[test]
fn created_0600_and_reopens_to_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, report) = Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap();
    assert_eq!(report.tier, TierKind::File);
    assert!(report.software_bound && report.created);
    let meta = fs::metadata(key_path(tmp.path())).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    let dir_meta = fs::metadata(tmp.path().join("keystore")).unwrap();
    assert_eq!(dir_meta.mode() & 0o777, 0o700);
    let k1 = ks.derive(Purpose::AuditCheckpoint);
    assert_eq!(format!("{k1:?}"), "DerivedKey(<redacted>)");
    drop(ks);

    let (ks, report) = Keystore::open(&no_tpm_auto(), tmp.path(), &tpm_helper()).unwrap();
    assert!(!report.created);
    assert_eq!(ks.derive(Purpose::AuditCheckpoint), k1);
    assert_ne!(ks.derive(Purpose::Vault).expose(), k1.expose());
    // Nothing but the key file in the keystore directory (no temp files).
    let names: Vec<_> = fs::read_dir(tmp.path().join("keystore"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("master.key")]);
}

#[test]
fn auto_without_tpm_reports_skipped_tiers() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, report) = Keystore::open(&no_tpm_auto(), tmp.path(), &tpm_helper()).unwrap();
    assert_eq!(report.tier, TierKind::File);
    assert!(report.software_bound);
    let tpm = report
        .skipped
        .iter()
        .find(|s| s.tier == TierKind::Tpm2)
        .unwrap();
    assert!(tpm.reason.contains("unusable"), "{}", tpm.reason);
    #[cfg(target_os = "linux")]
    {
        let kc = report
            .skipped
            .iter()
            .find(|s| s.tier == TierKind::Keychain)
            .unwrap();
        assert!(kc.reason.contains("kernel keyring"), "{}", kc.reason);
    }
    assert_eq!(report.migration_available, None);
}

#[test]
fn world_readable_key_file_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap());
    let p = key_path(tmp.path());
    let before = fs::read(&p).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        let err = Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap_err();
        assert!(
            matches!(err, KeystoreError::KeyFileInsecure { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0600"), "{err}");
        // Also through auto: refused, not replaced.
        let err = Keystore::open(&no_tpm_auto(), tmp.path(), &tpm_helper()).unwrap_err();
        assert!(
            matches!(err, KeystoreError::KeyFileInsecure { .. }),
            "{err}"
        );
        assert_eq!(fs::read(&p).unwrap(), before);
    }
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap();
}

#[test]
fn key_file_owned_by_another_user_refused() {
    if !skip::is_root() {
        return skip::skip(
            "key_file_owned_by_another_user_refused",
            "needs root to chown the key file to 65534",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    drop(Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap());
    let p = key_path(tmp.path());
    let before = fs::read(&p).unwrap();
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    let err = Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap_err();
    assert!(
        matches!(err, KeystoreError::KeyFileInsecure { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("uid 65534"), "{err}");
    assert_eq!(fs::read(&p).unwrap(), before);
    assert_eq!(fs::metadata(&p).unwrap().uid(), 65534);
}

#[test]
fn corrupted_key_file_is_named_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap());
    let p = key_path(tmp.path());
    let mut bytes = fs::read(&p).unwrap();
    bytes[20] ^= 0xff;
    fs::write(&p, &bytes).unwrap();
    let err = Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap_err();
    assert!(matches!(err, KeystoreError::KeyFileCorrupt { .. }), "{err}");
    assert_eq!(fs::read(&p).unwrap(), bytes);

    fs::write(&p, b"").unwrap();
    let err = Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap_err();
    assert!(matches!(err, KeystoreError::KeyFileCorrupt { .. }), "{err}");
}

#[test]
fn existing_master_in_other_tier_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let ks_dir = tmp.path().join("keystore");
    fs::create_dir_all(&ks_dir).unwrap();
    fs::set_permissions(&ks_dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(ks_dir.join("master.tpm2"), b"sealed blob from a TPM").unwrap();
    let err = Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap_err();
    assert!(
        matches!(
            err,
            KeystoreError::TierMismatch {
                found: TierKind::Tpm2,
                wanted: TierKind::File,
                ..
            }
        ),
        "{err}"
    );
    assert!(!key_path(tmp.path()).exists());

    // A host key exists and tier = tpm2 is forced: refused (migrate instead).
    let tmp = tempfile::tempdir().unwrap();
    drop(Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap());
    let s = KeystoreSettings {
        tier: TierChoice::Tpm2,
        ..no_tpm_auto()
    };
    let err = Keystore::open(&s, tmp.path(), &tpm_helper()).unwrap_err();
    assert!(matches!(err, KeystoreError::TierMismatch { .. }), "{err}");
}

#[test]
fn insecure_keystore_dir_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap());
    let d = tmp.path().join("keystore");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    let err = Keystore::open(&file_settings(), tmp.path(), &tpm_helper()).unwrap_err();
    assert!(
        matches!(err, KeystoreError::StateDirInsecure { .. }),
        "{err}"
    );
}

#[test]
fn forced_tpm2_without_tpm_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = KeystoreSettings {
        tier: TierChoice::Tpm2,
        ..no_tpm_auto()
    };
    let err = Keystore::open(&s, tmp.path(), &tpm_helper()).unwrap_err();
    assert!(matches!(err, KeystoreError::TpmUnusable { .. }), "{err}");
    assert!(!key_path(tmp.path()).exists());
    let s = KeystoreSettings {
        tier: TierChoice::Tpm2,
        tcti: "carrier-pigeon:x".into(),
        pcrs: vec![],
    };
    assert!(matches!(
        Keystore::open(&s, tmp.path(), &tpm_helper()),
        Err(KeystoreError::TctiInvalid { .. })
    ));
}

#[test]
fn harden_process_succeeds() {
    cowork::keystore::harden_process().unwrap();
}

/// The TPM helper this build made (the supervisor finds it beside coworkd).
fn tpm_helper() -> cowork::keystore::TpmHelper {
    cowork::keystore::TpmHelper::new(env!("CARGO_BIN_EXE_coworkd-tpm"))
}

/// `coworkd-tpm` answers anything on its stdin that is not one well-formed
/// request (nothing, garbage, a wrong shape, a key of the wrong length, more
/// than its 64 KiB limit) with a failure that says why, and never with key
/// material; it exits 0 because the failure was delivered.
#[test]
fn tpm_helper_answers_hostile_requests_with_a_reason() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let run = |input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coworkd-tpm"))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Written from a thread: the helper stops reading at its limit.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A CBOR map {"Seal": {"tcti": "x", "key": h'0102', "pcrs": []}}.
    let short_key = [
        0xa1, 0x64, b'S', b'e', b'a', b'l', 0xa3, 0x64, b't', b'c', b't', b'i', 0x61, b'x', 0x63,
        b'k', b'e', b'y', 0x42, 1, 2, 0x64, b'p', b'c', b'r', b's', 0x80,
    ];
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty", vec![], "does not decode"),
        ("garbage", b"\xff\x00not cbor".to_vec(), "does not decode"),
        ("wrong shape", vec![0x83, 1, 2, 3], "does not decode"),
        (
            "short key",
            short_key.to_vec(),
            "a master key has 32 bytes, not 2",
        ),
        ("oversized", vec![0u8; 65 * 1024], "exceeds 65536 bytes"),
    ];
    for (what, input, reason) in cases {
        let answer = run(&input);
        assert!(answer.contains("Failed"), "{what}: {answer:?}");
        assert!(answer.contains(reason), "{what}: {answer:?}");
    }
}
