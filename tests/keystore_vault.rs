//! Secrets vault on a real SQLite file: set/get/list/delete and versions,
//! `list` never carries values, hostile names and sizes, tampered
//! ciphertext, a row's nonce+ciphertext copied into another name, a changed
//! version, a damaged nonce, a wrong key (named errors, never a panic), and
//! a grep of every file under the state dir for a stored plaintext.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use cowork::keystore::vault::{MAX_VALUE, Vault};
use cowork::keystore::{Keystore, KeystoreSettings, Purpose, TierChoice, VaultError};
use rusqlite::{Connection, params};

fn open_keystore(state: &Path) -> Keystore {
    let s = KeystoreSettings {
        tier: TierChoice::File,
        ..Default::default()
    };
    Keystore::open(
        &s,
        state,
        &cowork::keystore::TpmHelper::new(env!("CARGO_BIN_EXE_coworkd-tpm")),
    )
    .unwrap()
    .0
}

fn open_db(state: &Path) -> Connection {
    let c = Connection::open(state.join("state.db")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c
}

#[test]
fn set_get_list_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let ks = open_keystore(tmp.path());
    let conn = open_db(tmp.path());
    let v = Vault::new(ks.derive(Purpose::Vault));

    assert_eq!(v.set(&conn, "ANTHROPIC_API_KEY", b"sk-ant-1").unwrap(), 1);
    assert_eq!(v.set(&conn, "slack.signing-secret", b"s3cr3t").unwrap(), 1);
    assert_eq!(v.set(&conn, "ANTHROPIC_API_KEY", b"sk-ant-2").unwrap(), 2);
    assert_eq!(&v.get(&conn, "ANTHROPIC_API_KEY").unwrap()[..], b"sk-ant-2");
    assert_eq!(
        &v.get(&conn, "slack.signing-secret").unwrap()[..],
        b"s3cr3t"
    );
    v.set(&conn, "empty", b"").unwrap();
    assert!(v.get(&conn, "empty").unwrap().is_empty());

    let list = v.list(&conn).unwrap();
    let names: Vec<_> = list.iter().map(|s| (s.name.as_str(), s.version)).collect();
    assert_eq!(
        names,
        vec![
            ("ANTHROPIC_API_KEY", 2),
            ("empty", 1),
            ("slack.signing-secret", 1)
        ]
    );
    // Each value's length is listed (never the value): a too-short webhook
    // secret shows in `coworkctl doctor`.
    let bytes: Vec<u32> = list.iter().map(|s| s.bytes).collect();
    assert_eq!(bytes, vec![8, 0, 6]);
    let dump = format!("{list:?}");
    assert!(
        !dump.contains("sk-ant") && !dump.contains("s3cr3t"),
        "{dump}"
    );
    assert!(
        list.iter()
            .all(|s| s.updated_at.ends_with('Z') && s.updated_at.len() >= 20)
    );

    v.delete(&conn, "slack.signing-secret").unwrap();
    assert!(matches!(
        v.get(&conn, "slack.signing-secret"),
        Err(VaultError::NotFound { .. })
    ));
    assert!(matches!(
        v.delete(&conn, "slack.signing-secret"),
        Err(VaultError::NotFound { .. })
    ));
    assert_eq!(v.list(&conn).unwrap().len(), 2);
}

#[test]
fn hostile_names_and_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let ks = open_keystore(tmp.path());
    let conn = open_db(tmp.path());
    let v = Vault::new(ks.derive(Purpose::Vault));
    for bad in [
        "",
        "x y",
        "../../etc/passwd",
        "a;DROP TABLE vault_secrets",
        "名前",
        &"a".repeat(65),
    ] {
        assert!(
            matches!(v.set(&conn, bad, b"v"), Err(VaultError::InvalidName { .. })),
            "{bad}"
        );
        assert!(
            matches!(v.get(&conn, bad), Err(VaultError::InvalidName { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        v.set(&conn, "big", &vec![1u8; MAX_VALUE + 1]),
        Err(VaultError::ValueTooLarge { .. })
    ));
    assert!(v.list(&conn).unwrap().is_empty());
}

#[test]
fn tampering_gives_decrypt_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let ks = open_keystore(tmp.path());
    let conn = open_db(tmp.path());
    let v = Vault::new(ks.derive(Purpose::Vault));
    v.set(&conn, "A", b"alpha-secret").unwrap();
    v.set(&conn, "B", b"bravo-secret").unwrap();

    // 1. A flipped ciphertext bit.
    let ct: Vec<u8> = conn
        .query_row(
            "SELECT ciphertext FROM vault_secrets WHERE name='A'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for i in [0, ct.len() / 2, ct.len() - 1] {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        conn.execute(
            "UPDATE vault_secrets SET ciphertext=?1 WHERE name='A'",
            params![bad],
        )
        .unwrap();
        assert!(matches!(v.get(&conn, "A"), Err(VaultError::Decrypt { ref name }) if name == "A"));
    }
    conn.execute(
        "UPDATE vault_secrets SET ciphertext=?1 WHERE name='A'",
        params![ct],
    )
    .unwrap();
    assert_eq!(&v.get(&conn, "A").unwrap()[..], b"alpha-secret");

    // 2. B's nonce+ciphertext copied into A (same version): name is in the AD.
    conn.execute(
        "UPDATE vault_secrets SET nonce=(SELECT nonce FROM vault_secrets WHERE name='B'),
         ciphertext=(SELECT ciphertext FROM vault_secrets WHERE name='B') WHERE name='A'",
        [],
    )
    .unwrap();
    assert!(matches!(v.get(&conn, "A"), Err(VaultError::Decrypt { ref name }) if name == "A"));

    // 3. Version changed (rollback to an older version number).
    v.set(&conn, "C", b"v1").unwrap();
    v.set(&conn, "C", b"v2").unwrap();
    conn.execute("UPDATE vault_secrets SET version=1 WHERE name='C'", [])
        .unwrap();
    assert!(matches!(v.get(&conn, "C"), Err(VaultError::Decrypt { .. })));
    conn.execute("UPDATE vault_secrets SET version=-5 WHERE name='C'", [])
        .unwrap();
    assert!(matches!(v.get(&conn, "C"), Err(VaultError::Corrupt { .. })));

    // 4. Truncated nonce and truncated/empty ciphertext.
    conn.execute("UPDATE vault_secrets SET nonce=X'0102' WHERE name='B'", [])
        .unwrap();
    assert!(matches!(v.get(&conn, "B"), Err(VaultError::Corrupt { .. })));
    v.set(&conn, "D", b"delta").unwrap();
    conn.execute("UPDATE vault_secrets SET ciphertext=X'' WHERE name='D'", [])
        .unwrap();
    assert!(matches!(v.get(&conn, "D"), Err(VaultError::Decrypt { .. })));

    // 5. A tampered key_id alone does not hide a good entry from the right key.
    v.set(&conn, "E", b"echo").unwrap();
    conn.execute("UPDATE vault_secrets SET key_id='0000' WHERE name='E'", [])
        .unwrap();
    assert_eq!(&v.get(&conn, "E").unwrap()[..], b"echo");
}

#[test]
fn wrong_key_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ks = open_keystore(tmp.path());
    let conn = open_db(tmp.path());
    Vault::new(ks.derive(Purpose::Vault))
        .set(&conn, "A", b"x")
        .unwrap();
    // A key for another purpose, or from another installation.
    let other = Vault::new(ks.derive(Purpose::AdminSession));
    let err = other.get(&conn, "A").unwrap_err();
    assert!(matches!(err, VaultError::WrongKey { .. }), "{err}");
    assert!(matches!(
        other.set(&conn, "B", b"y"),
        Err(VaultError::WrongKey { .. })
    ));
    assert_eq!(
        Vault::new(ks.derive(Purpose::Vault))
            .list(&conn)
            .unwrap()
            .len(),
        1
    );
}

fn grep_tree(dir: &Path, needle: &[u8], hits: &mut Vec<String>, seen: &mut usize) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            grep_tree(&path, needle, hits, seen);
        } else {
            *seen += 1;
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
}

#[test]
fn plaintext_never_reaches_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let needle = format!("plaintext-canary-{}", std::process::id()).into_bytes();
    let ks = open_keystore(tmp.path());
    let conn = open_db(tmp.path());
    let v = Vault::new(ks.derive(Purpose::Vault));
    v.set(&conn, "CANARY", &needle).unwrap();
    v.set(&conn, "CANARY", &needle).unwrap(); // a second version too
    assert_eq!(&v.get(&conn, "CANARY").unwrap()[..], &needle[..]);

    // While open: db, -wal and -shm exist.
    let (mut hits, mut seen) = (Vec::new(), 0);
    grep_tree(tmp.path(), &needle, &mut hits, &mut seen);
    assert!(tmp.path().join("state.db-wal").exists());
    assert!(hits.is_empty(), "plaintext found in {hits:?}");
    assert!(seen >= 4, "only {seen} files checked");

    drop(v);
    drop(conn);
    drop(ks);
    let (mut hits, mut seen) = (Vec::new(), 0);
    grep_tree(tmp.path(), &needle, &mut hits, &mut seen);
    assert!(hits.is_empty(), "plaintext found in {hits:?}");
    assert!(seen >= 2);
}
