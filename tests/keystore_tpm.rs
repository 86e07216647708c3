//! Keystore tpm2 tier against a real software TPM (swtpm): seal on first
//! start, unseal after a keystore restart and after a TPM restart, a blob
//! from another TPM (`SealedBlobForeign`, file untouched), a corrupted blob,
//! a PCR policy broken by `tpm2_pcrextend`, file → tpm2 migration with the
//! vault still readable, and a master rotation on the tpm2 tier.
//! swtpm must be installed (APT-PACKAGES: swtpm swtpm-tools tpm2-tools):
//! without it these tests fail with a message, they do not skip.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};

use common::swtpm::Swtpm;

use cowork::keystore::vault::Vault;
use cowork::keystore::{
    Keystore, KeystoreError, KeystoreSettings, Purpose, RotationResolution, TierChoice, TierKind,
};

fn settings(tpm: &Swtpm, tier: TierChoice, pcrs: &[u8]) -> KeystoreSettings {
    KeystoreSettings {
        tier,
        tcti: tpm.tcti(),
        pcrs: pcrs.to_vec(),
    }
}

fn all_keys(ks: &Keystore) -> Vec<[u8; 32]> {
    Purpose::ALL
        .iter()
        .map(|&p| *ks.derive(p).expose())
        .collect()
}

fn blob(state: &Path) -> PathBuf {
    state.join("keystore").join("master.tpm2")
}

#[test]
fn seal_restart_and_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let tpm_dir = tmp.path().join("tpm");
    let mut tpm = Swtpm::start(&tpm_dir);

    let (ks, report) = Keystore::open(
        &settings(&tpm, TierChoice::Auto, &[]),
        &state,
        &tpm_helper(),
    )
    .unwrap();
    assert_eq!(report.tier, TierKind::Tpm2);
    assert!(report.created && !report.software_bound);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let keys = all_keys(&ks);
    drop(ks);
    assert!(blob(&state).is_file());
    assert!(!state.join("keystore/master.key").exists());
    let on_disk = std::fs::read(blob(&state)).unwrap();
    for k in &keys {
        assert!(
            !on_disk.windows(32).any(|w| w == k),
            "a derived key is on disk"
        );
    }

    // Keystore restart.
    let (ks, report) = Keystore::open(
        &settings(&tpm, TierChoice::Tpm2, &[]),
        &state,
        &tpm_helper(),
    )
    .unwrap();
    assert!(!report.created);
    assert_eq!(all_keys(&ks), keys);
    drop(ks);

    // TPM restart (same state dir: same owner seed, same SRK).
    drop(tpm);
    tpm = Swtpm::start(&tpm_dir);
    let (ks, _) = Keystore::open(
        &settings(&tpm, TierChoice::Auto, &[]),
        &state,
        &tpm_helper(),
    )
    .unwrap();
    assert_eq!(all_keys(&ks), keys);
}

#[test]
fn blob_from_another_tpm_is_foreign_and_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let tpm1 = Swtpm::start(&tmp.path().join("tpm1"));
    let tpm2 = Swtpm::start(&tmp.path().join("tpm2"));
    drop(
        Keystore::open(
            &settings(&tpm1, TierChoice::Tpm2, &[]),
            &state,
            &tpm_helper(),
        )
        .unwrap(),
    );
    let before = std::fs::read(blob(&state)).unwrap();
    let mtime = std::fs::metadata(blob(&state)).unwrap().modified().unwrap();

    for tier in [TierChoice::Tpm2, TierChoice::Auto] {
        let err = Keystore::open(&settings(&tpm2, tier, &[]), &state, &tpm_helper()).unwrap_err();
        assert!(
            matches!(err, KeystoreError::SealedBlobForeign { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("another TPM"), "{err}");
    }
    // Nothing written: not the blob, and no host key as a fallback.
    assert_eq!(std::fs::read(blob(&state)).unwrap(), before);
    assert_eq!(
        std::fs::metadata(blob(&state)).unwrap().modified().unwrap(),
        mtime
    );
    assert!(!state.join("keystore/master.key").exists());
    // The right TPM still opens it.
    Keystore::open(
        &settings(&tpm1, TierChoice::Tpm2, &[]),
        &state,
        &tpm_helper(),
    )
    .unwrap();
}

#[test]
fn corrupted_blob_and_unusable_tpm_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let tpm = Swtpm::start(&tmp.path().join("tpm"));
    drop(
        Keystore::open(
            &settings(&tpm, TierChoice::Tpm2, &[]),
            &state,
            &tpm_helper(),
        )
        .unwrap(),
    );

    let good = std::fs::read(blob(&state)).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(blob(&state), &bad).unwrap();
    let err = Keystore::open(
        &settings(&tpm, TierChoice::Auto, &[]),
        &state,
        &tpm_helper(),
    )
    .unwrap_err();
    assert!(
        matches!(err, KeystoreError::SealedBlobCorrupt { .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(blob(&state)).unwrap(), bad);
    std::fs::write(blob(&state), &good).unwrap();

    // The blob exists but the TPM is gone: an error, not a silent new key.
    let gone = KeystoreSettings {
        tier: TierChoice::Auto,
        tcti: "swtpm:host=127.0.0.1,port=1".into(),
        pcrs: vec![],
    };
    let err = Keystore::open(&gone, &state, &tpm_helper()).unwrap_err();
    assert!(matches!(err, KeystoreError::TpmUnusable { .. }), "{err}");
    assert!(err.to_string().contains("unusable"), "{err}");
    assert_eq!(std::fs::read(blob(&state)).unwrap(), good);
}

#[test]
fn pcr_policy_refuses_after_extend() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let tpm = Swtpm::start(&tmp.path().join("tpm"));
    let s = settings(&tpm, TierChoice::Tpm2, &[16]);
    let (ks, report) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    assert!(report.created);
    let keys = all_keys(&ks);
    drop(ks);
    // Unchanged PCR: unseals.
    let (ks, _) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    assert_eq!(all_keys(&ks), keys);
    drop(ks);

    tpm.pcr_extend(16);
    let before = std::fs::read(blob(&state)).unwrap();
    let err = Keystore::open(&s, &state, &tpm_helper()).unwrap_err();
    assert!(
        matches!(&err, KeystoreError::TpmPolicyMismatch { pcrs, .. } if pcrs == &vec![16]),
        "{err}"
    );
    assert!(err.to_string().contains("PCR policy"), "{err}");
    assert_eq!(std::fs::read(blob(&state)).unwrap(), before);
}

#[test]
fn migrate_file_to_tpm2_keeps_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let db_path = state.join("state.db");

    // Before the TPM exists: file tier.
    let no_tpm = KeystoreSettings {
        tier: TierChoice::Auto,
        tcti: "swtpm:host=127.0.0.1,port=1".into(),
        pcrs: vec![],
    };
    let (ks, report) = Keystore::open(&no_tpm, &state, &tpm_helper()).unwrap();
    assert_eq!(report.tier, TierKind::File);
    assert!(report.software_bound);
    assert!(report.skipped.iter().any(|s| s.tier == TierKind::Tpm2));
    let keys = all_keys(&ks);
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let vault = Vault::new(ks.derive(Purpose::Vault));
    for i in 0..5 {
        vault
            .set(
                &conn,
                &format!("SECRET_{i}"),
                format!("value-{i}").as_bytes(),
            )
            .unwrap();
    }
    drop(ks);

    // TPM added later: auto keeps the file key and offers the migration.
    let tpm = Swtpm::start(&tmp.path().join("tpm"));
    let s = settings(&tpm, TierChoice::Auto, &[]);
    let (mut ks, report) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    assert_eq!(report.tier, TierKind::File);
    assert_eq!(report.migration_available, Some(TierKind::Tpm2));
    ks.migrate_to(TierKind::Tpm2).unwrap();
    assert_eq!(ks.tier(), TierKind::Tpm2);
    assert!(!state.join("keystore/master.key").exists());
    assert!(blob(&state).is_file());
    assert_eq!(all_keys(&ks), keys);
    drop(ks);

    let (ks, report) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    assert_eq!(report.tier, TierKind::Tpm2);
    assert!(!report.software_bound);
    let vault = Vault::new(ks.derive(Purpose::Vault));
    for i in 0..5 {
        assert_eq!(
            &vault.get(&conn, &format!("SECRET_{i}")).unwrap()[..],
            format!("value-{i}").as_bytes()
        );
    }
    // The reverse is not offered.
    let mut ks = ks;
    assert!(matches!(
        ks.migrate_to(TierKind::File),
        Err(KeystoreError::MigrationUnsupported { .. })
    ));
}

#[test]
fn rotation_on_tpm2_with_crash_after_rewrap() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let tpm = Swtpm::start(&tmp.path().join("tpm"));
    let s = settings(&tpm, TierChoice::Tpm2, &[]);
    let (ks, _) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    let conn = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let old = Vault::new(ks.derive(Purpose::Vault));
    old.set(&conn, "TOKEN", b"tpm-secret").unwrap();

    let pending = ks.prepare_rotation().unwrap();
    let new = Vault::new(pending.derive(Purpose::Vault));
    Vault::rewrap(&conn, &old, &new).unwrap();
    drop(pending);
    drop(ks); // crash before commit

    let (mut ks, report) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    assert!(report.interrupted_rotation);
    let r = ks
        .resolve_interrupted_rotation(|k| Vault::new(k).opens(&conn).unwrap())
        .unwrap();
    assert_eq!(r, RotationResolution::PromotedPending);
    let v = Vault::new(ks.derive(Purpose::Vault));
    assert_eq!(&v.get(&conn, "TOKEN").unwrap()[..], b"tpm-secret");
    assert!(!state.join("keystore/master.tpm2.pending").exists());
    drop(ks);
    let (ks, report) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    assert!(!report.interrupted_rotation);
    assert_eq!(
        &Vault::new(ks.derive(Purpose::Vault))
            .get(&conn, "TOKEN")
            .unwrap()[..],
        b"tpm-secret"
    );
}

#[test]
fn tpm_without_startup_is_started_by_the_keystore() {
    // swtpm without `startup-clear`: the keystore sends TPM2_Startup itself.
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let tpm = Swtpm::start_with_flags(&tmp.path().join("tpm"), "not-need-init");
    let (ks, report) = Keystore::open(
        &settings(&tpm, TierChoice::Auto, &[]),
        &state,
        &tpm_helper(),
    )
    .unwrap();
    assert_eq!(report.tier, TierKind::Tpm2);
    let keys = all_keys(&ks);
    drop(ks);
    let (ks, _) = Keystore::open(
        &settings(&tpm, TierChoice::Auto, &[]),
        &state,
        &tpm_helper(),
    )
    .unwrap();
    assert_eq!(all_keys(&ks), keys);
}

#[test]
fn interrupted_migration_is_finished_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let key_file = state.join("keystore/master.key");
    let file_only = KeystoreSettings {
        tier: TierChoice::File,
        ..Default::default()
    };
    let (ks, _) = Keystore::open(&file_only, &state, &tpm_helper()).unwrap();
    let keys = all_keys(&ks);
    drop(ks);
    let saved = std::fs::read(&key_file).unwrap();

    let tpm = Swtpm::start(&tmp.path().join("tpm"));
    let s = settings(&tpm, TierChoice::Auto, &[]);
    let (mut ks, _) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    ks.migrate_to(TierKind::Tpm2).unwrap();
    drop(ks);

    // Crash between "blob written" and "host key removed": same key in both.
    std::fs::write(&key_file, &saved).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let (ks, report) = Keystore::open(&s, &state, &tpm_helper()).unwrap();
    assert_eq!(report.tier, TierKind::Tpm2);
    assert!(
        report.notes.iter().any(|n| n.contains("migration")),
        "{:?}",
        report.notes
    );
    assert!(!key_file.exists());
    assert_eq!(all_keys(&ks), keys);
    drop(ks);

    // A different host key next to the blob: refused, both kept.
    let other = tempfile::tempdir().unwrap();
    drop(Keystore::open(&file_only, other.path(), &tpm_helper()).unwrap());
    std::fs::copy(other.path().join("keystore/master.key"), &key_file).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let err = Keystore::open(&s, &state, &tpm_helper()).unwrap_err();
    assert!(
        matches!(err, KeystoreError::ConflictingMasters { .. }),
        "{err}"
    );
    assert!(key_file.exists() && blob(&state).exists());
}

/// Splits a sealed blob (layout documented in src/keystore/tpm2.rs) into
/// (header up to the SRK name, SRK name, rest without checksum).
fn split_blob(b: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let n_pcrs = b[9] as usize;
    let name_at = 10 + n_pcrs;
    let name_len = u16::from_be_bytes([b[name_at], b[name_at + 1]]) as usize;
    let name = b[name_at + 2..name_at + 2 + name_len].to_vec();
    (
        b[..name_at].to_vec(),
        name,
        b[name_at + 2 + name_len..b.len() - 32].to_vec(),
    )
}

#[test]
fn blob_with_forged_srk_name_fails_to_load_and_is_foreign() {
    use sha2::{Digest, Sha256};
    let tmp = tempfile::tempdir().unwrap();
    let state1 = tmp.path().join("state1");
    let state2 = tmp.path().join("state2");
    let tpm1 = Swtpm::start(&tmp.path().join("tpm1"));
    let tpm2 = Swtpm::start(&tmp.path().join("tpm2"));
    drop(
        Keystore::open(
            &settings(&tpm1, TierChoice::Tpm2, &[]),
            &state1,
            &tpm_helper(),
        )
        .unwrap(),
    );
    drop(
        Keystore::open(
            &settings(&tpm2, TierChoice::Tpm2, &[]),
            &state2,
            &tpm_helper(),
        )
        .unwrap(),
    );
    // Take TPM 1's blob but claim TPM 2's SRK name, with a valid checksum:
    // the name check passes and TPM2_Load itself must refuse it.
    let (head, _, rest) = split_blob(&std::fs::read(blob(&state1)).unwrap());
    let (_, name2, _) = split_blob(&std::fs::read(blob(&state2)).unwrap());
    let mut forged = head;
    forged.extend_from_slice(&(name2.len() as u16).to_be_bytes());
    forged.extend_from_slice(&name2);
    forged.extend_from_slice(&rest);
    let sum = Sha256::digest(&forged);
    forged.extend_from_slice(&sum);
    std::fs::write(blob(&state2), &forged).unwrap();
    let err = Keystore::open(
        &settings(&tpm2, TierChoice::Tpm2, &[]),
        &state2,
        &tpm_helper(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, KeystoreError::SealedBlobForeign { reason, .. } if reason.contains("TPM2_Load")),
        "{err}"
    );
    assert_eq!(std::fs::read(blob(&state2)).unwrap(), forged);
}

/// The TPM helper this build made (the supervisor finds it beside coworkd).
fn tpm_helper() -> cowork::keystore::TpmHelper {
    cowork::keystore::TpmHelper::new(env!("CARGO_BIN_EXE_coworkd-tpm"))
}
