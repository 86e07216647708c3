//! `secret rotate-master` on the file tier: prepare → vault re-wrap (one
//! transaction) → commit; secrets readable afterwards and the old master's
//! vault key refused; crash simulations (drop after prepare, drop after the
//! re-wrap, a `.old` link left inside commit) resolve on the next open with
//! everything readable; a second prepare while one is pending is refused.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use cowork::keystore::vault::Vault;
use cowork::keystore::{
    Keystore, KeystoreError, KeystoreSettings, Purpose, RotationResolution, TierChoice, VaultError,
};
use rusqlite::Connection;

fn settings() -> KeystoreSettings {
    KeystoreSettings {
        tier: TierChoice::File,
        ..Default::default()
    }
}

fn setup(state: &Path) -> (Keystore, Connection) {
    let (ks, _) = Keystore::open(&settings(), state, &tpm_helper()).unwrap();
    let conn = Connection::open(state.join("state.db")).unwrap();
    let v = Vault::new(ks.derive(Purpose::Vault));
    for i in 0..10 {
        v.set(
            &conn,
            &format!("S{i}"),
            format!("secret number {i}").as_bytes(),
        )
        .unwrap();
    }
    (ks, conn)
}

fn assert_all_readable(ks: &Keystore, conn: &Connection) {
    let v = Vault::new(ks.derive(Purpose::Vault));
    for i in 0..10 {
        assert_eq!(
            &v.get(conn, &format!("S{i}")).unwrap()[..],
            format!("secret number {i}").as_bytes()
        );
    }
}

fn pending_path(state: &Path) -> std::path::PathBuf {
    state.join("keystore/master.key.pending")
}

#[test]
fn rotation_happy_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut ks, conn) = setup(tmp.path());
    let old_keys: Vec<_> = Purpose::ALL.iter().map(|&p| ks.derive(p)).collect();
    let old_vault = Vault::new(ks.derive(Purpose::Vault));

    let pending = ks.prepare_rotation().unwrap();
    assert!(pending_path(tmp.path()).exists());
    assert!(matches!(
        ks.prepare_rotation(),
        Err(KeystoreError::RotationInProgress { .. })
    ));
    let new_vault = Vault::new(pending.derive(Purpose::Vault));
    assert_eq!(Vault::rewrap(&conn, &old_vault, &new_vault).unwrap(), 10);
    ks.commit_rotation(pending).unwrap();
    assert!(!pending_path(tmp.path()).exists());
    assert!(!tmp.path().join("keystore/master.key.old").exists());

    for (p, old) in Purpose::ALL.iter().zip(&old_keys) {
        assert_ne!(&ks.derive(*p), old, "{p:?} key did not change");
    }
    assert_all_readable(&ks, &conn);
    // The old master's vault key no longer works.
    assert!(matches!(
        old_vault.get(&conn, "S1"),
        Err(VaultError::WrongKey { .. })
    ));
    assert!(matches!(
        old_vault.set(&conn, "S1", b"x"),
        Err(VaultError::WrongKey { .. })
    ));
    drop(ks);

    let (ks, report) = Keystore::open(&settings(), tmp.path(), &tpm_helper()).unwrap();
    assert!(!report.interrupted_rotation && !report.created);
    assert_all_readable(&ks, &conn);
}

#[test]
fn crash_after_prepare_keeps_old_master() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, conn) = setup(tmp.path());
    let before = ks.derive(Purpose::Vault);
    let pending = ks.prepare_rotation().unwrap();
    drop(pending);
    drop(ks); // crash

    let (mut ks, report) = Keystore::open(&settings(), tmp.path(), &tpm_helper()).unwrap();
    assert!(report.interrupted_rotation);
    assert!(matches!(
        ks.prepare_rotation(),
        Err(KeystoreError::RotationInProgress { .. })
    ));
    let r = ks
        .resolve_interrupted_rotation(|k| Vault::new(k).opens(&conn).unwrap())
        .unwrap();
    assert_eq!(r, RotationResolution::KeptCurrent);
    assert!(!pending_path(tmp.path()).exists());
    assert_eq!(ks.derive(Purpose::Vault), before);
    assert_all_readable(&ks, &conn);
    assert_eq!(
        ks.resolve_interrupted_rotation(|_| panic!("not asked"))
            .unwrap(),
        RotationResolution::NothingPending
    );
}

#[test]
fn crash_after_rewrap_promotes_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, conn) = setup(tmp.path());
    let old_vault = Vault::new(ks.derive(Purpose::Vault));
    let pending = ks.prepare_rotation().unwrap();
    let new_key = pending.derive(Purpose::Vault);
    Vault::rewrap(&conn, &old_vault, &Vault::new(new_key.clone())).unwrap();
    drop(pending);
    drop(ks); // crash before commit

    let (mut ks, report) = Keystore::open(&settings(), tmp.path(), &tpm_helper()).unwrap();
    assert!(report.interrupted_rotation);
    let mut asked = 0;
    let r = ks
        .resolve_interrupted_rotation(|k| {
            asked += 1;
            Vault::new(k).opens(&conn).unwrap()
        })
        .unwrap();
    assert_eq!(r, RotationResolution::PromotedPending);
    assert_eq!(asked, 2);
    assert_eq!(ks.derive(Purpose::Vault), new_key);
    assert_all_readable(&ks, &conn);
    drop(ks);
    let (ks, report) = Keystore::open(&settings(), tmp.path(), &tpm_helper()).unwrap();
    assert!(!report.interrupted_rotation);
    assert_all_readable(&ks, &conn);
}

#[test]
fn failed_rewrap_rolls_back_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, conn) = setup(tmp.path());
    let old_vault = Vault::new(ks.derive(Purpose::Vault));
    // One damaged entry: the re-wrap must not commit half the rows.
    conn.execute("UPDATE vault_secrets SET ciphertext = X'00112233445566778899aabbccddeeff00' WHERE name = 'S7'", [])
        .unwrap();
    let pending = ks.prepare_rotation().unwrap();
    let new_vault = Vault::new(pending.derive(Purpose::Vault));
    let err = Vault::rewrap(&conn, &old_vault, &new_vault).unwrap_err();
    assert!(
        matches!(err, VaultError::Decrypt { ref name } if name == "S7"),
        "{err}"
    );
    // Still entirely under the old key.
    assert_eq!(&old_vault.get(&conn, "S1").unwrap()[..], b"secret number 1");
    assert!(!new_vault.opens(&conn).unwrap());
    let mut ks = ks;
    ks.abort_rotation(pending).unwrap();
    assert!(!pending_path(tmp.path()).exists());
}

#[test]
fn leftover_old_link_from_commit_is_removed_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, conn) = setup(tmp.path());
    let key = tmp.path().join("keystore/master.key");
    let old = tmp.path().join("keystore/master.key.old");
    // Crash inside commit before the rename: `.old` is a second name of the
    // current key. It must be unlinked, not overwritten.
    std::fs::hard_link(&key, &old).unwrap();
    drop(ks);
    let (ks, _) = Keystore::open(&settings(), tmp.path(), &tpm_helper()).unwrap();
    assert!(!old.exists());
    assert_all_readable(&ks, &conn);
    drop(ks);
    let (ks, _) = Keystore::open(&settings(), tmp.path(), &tpm_helper()).unwrap();
    assert_all_readable(&ks, &conn);
}

#[test]
fn commit_with_foreign_pending_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut ks, conn) = setup(tmp.path());
    let a = ks.prepare_rotation().unwrap();
    // Someone replaced the pending slot: commit must notice.
    let other = tempfile::tempdir().unwrap();
    let (ks2, _) = Keystore::open(&settings(), other.path(), &tpm_helper()).unwrap();
    let b = ks2.prepare_rotation().unwrap();
    std::fs::copy(
        other.path().join("keystore/master.key.pending"),
        pending_path(tmp.path()),
    )
    .unwrap();
    drop(b);
    let err = ks.commit_rotation(a).unwrap_err();
    assert!(
        matches!(err, KeystoreError::RotationMismatch { .. }),
        "{err}"
    );
    assert_all_readable(&ks, &conn);
}

/// The TPM helper this build made (the supervisor finds it beside coworkd).
fn tpm_helper() -> cowork::keystore::TpmHelper {
    cowork::keystore::TpmHelper::new(env!("CARGO_BIN_EXE_coworkd-tpm"))
}
