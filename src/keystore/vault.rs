//! Secrets vault: LLM API keys, channel tokens, signing secrets, encrypted
//! with AES-256-GCM under the derived [`Purpose::Vault`] key and kept in the
//! gateway's `state.db`. The gateway owns the database file; the vault owns
//! its tables and works on the `&rusqlite::Connection` it is given.
//!
//! Tables:
//! - `vault_secrets(name TEXT PRIMARY KEY, version INTEGER, nonce BLOB,
//!   ciphertext BLOB, key_id TEXT, updated_at TEXT)`: one row per secret.
//!   Associated data = `"cowork-vault/v1\0" || name || "\0" || version (u32 BE)`,
//!   so a row copied to another name or version does not decrypt.
//! - `vault_check(id = 1, key_id, nonce, ciphertext)`: a known value
//!   encrypted under the current key. It tells a wrong key from a damaged
//!   entry, and is what decides an interrupted master rotation (it is
//!   re-written in the same transaction as the rows by [`Vault::rewrap`]).
//!
//! Values are returned in zeroizing buffers; `list` never returns values.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::VaultError;
use super::key::{DerivedKey, Purpose};

/// Largest secret value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Longest secret name.
pub const MAX_NAME: usize = 64;

const AD_PREFIX: &[u8] = b"cowork-vault/v1\0";
const CHECK_AD: &[u8] = b"cowork-vault/v1\0\0check";
const CHECK_PLAINTEXT: &[u8] = b"cowork-vault/v1 key check";
const NONCE_LEN: usize = 12;
/// AES-256-GCM's tag, appended to every ciphertext.
const TAG_LEN: usize = 16;

/// The vault's tables as of `state.db` schema 1. On `state.db` the gateway's
/// migration runner creates them (`gateway::state_db`); [`ensure_schema`]
/// runs the same statements (a no-op there) so the vault also works on a
/// bare connection (the keystore's tests and tools).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vault_secrets (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    key_id TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vault_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL
);
";

/// A listed secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// Incremented on each `set`.
    pub version: u32,
    /// RFC 3339 UTC time of the last `set`.
    pub updated_at: String,
    /// The value's length in bytes (its ciphertext's, less the AEAD tag):
    /// enough to tell a too-short webhook secret, never the value.
    pub bytes: u32,
}

/// What the vault's check row says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The vault is encrypted under this key.
    Matches,
    /// The vault is encrypted under another key.
    Mismatch {
        /// Key id recorded in the check row.
        stored_key_id: String,
    },
    /// No check row yet (nothing stored so far).
    Empty,
}

/// The vault, bound to one derived key.
pub struct Vault {
    cipher: Aes256Gcm,
    key_id: String,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn db(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> VaultError {
    move |source| VaultError::Db { operation, source }
}

/// Checks a secret name: `[A-Za-z0-9_.-]{1,64}`.
pub fn validate_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidName {
            name: name.chars().take(80).collect(),
        })
    }
}

fn associated_data(name: &str, version: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_PREFIX.len() + name.len() + 5);
    ad.extend_from_slice(AD_PREFIX);
    ad.extend_from_slice(name.as_bytes());
    ad.push(0);
    ad.extend_from_slice(&version.to_be_bytes());
    ad
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn immediate(conn: &Connection) -> Result<Transaction<'_>, VaultError> {
    Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(db("begin transaction"))
}

/// Creates the vault's tables if missing.
pub fn ensure_schema(conn: &Connection) -> Result<(), VaultError> {
    conn.execute_batch(SCHEMA).map_err(db("create tables"))
}

impl Vault {
    /// A vault bound to `key` (normally `keystore.derive(Purpose::Vault)`).
    pub fn new(key: DerivedKey) -> Self {
        let cipher = Aes256Gcm::new(key.expose().into());
        // Public, non-secret identifier of the key: HMAC(key, label), 8 bytes.
        let key_id = match <Hmac<Sha256> as Mac>::new_from_slice(key.expose()) {
            Ok(mut mac) => {
                mac.update(b"cowork-vault/v1/key-id");
                mac.update(Purpose::Vault.label().as_bytes());
                hex::encode(&mac.finalize().into_bytes()[..8])
            }
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        Vault { cipher, key_id }
    }

    /// The key's public identifier, stored in each row's `key_id`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn seal(
        &self,
        name: &str,
        ad: &[u8],
        value: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), VaultError> {
        let nonce = random_nonce();
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: ad,
                },
            )
            .map_err(|_| VaultError::Encrypt {
                name: name.to_string(),
            })?;
        Ok((nonce, ct))
    }

    fn open(
        &self,
        name: &str,
        ad: &[u8],
        nonce: &[u8],
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if nonce.len() != NONCE_LEN {
            return Err(VaultError::Corrupt {
                name: name.to_string(),
                reason: format!("nonce is {} bytes, expected {NONCE_LEN}", nonce.len()),
            });
        }
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: ad })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Decrypt {
                name: name.to_string(),
            })
    }

    /// Compares this key with the vault's check row.
    pub fn key_check(&self, conn: &Connection) -> Result<KeyCheck, VaultError> {
        ensure_schema(conn)?;
        let row: Option<(String, Vec<u8>, Vec<u8>)> = conn
            .query_row(
                "SELECT key_id, nonce, ciphertext FROM vault_check WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db("read check row"))?;
        let Some((stored_key_id, nonce, ct)) = row else {
            return Ok(KeyCheck::Empty);
        };
        match self.open("(check)", CHECK_AD, &nonce, &ct) {
            Ok(pt) if &pt[..] == CHECK_PLAINTEXT => Ok(KeyCheck::Matches),
            _ => Ok(KeyCheck::Mismatch { stored_key_id }),
        }
    }

    /// Whether this key can read the vault (check row matches, or the vault is
    /// empty). Used to resolve an interrupted master rotation.
    pub fn opens(&self, conn: &Connection) -> Result<bool, VaultError> {
        Ok(!matches!(self.key_check(conn)?, KeyCheck::Mismatch { .. }))
    }

    /// Refuses a wrong key before anything is written; writes the check row
    /// if the vault has none yet.
    fn require_key(&self, tx: &Transaction<'_>) -> Result<(), VaultError> {
        match self.key_check(tx)? {
            KeyCheck::Matches => Ok(()),
            KeyCheck::Mismatch { stored_key_id } => Err(VaultError::WrongKey {
                key_id: self.key_id.clone(),
                stored_key_id,
            }),
            KeyCheck::Empty => {
                let other: Option<String> = tx
                    .query_row(
                        "SELECT key_id FROM vault_secrets WHERE key_id != ?1 LIMIT 1",
                        params![self.key_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db("scan key ids"))?;
                if let Some(stored_key_id) = other {
                    return Err(VaultError::WrongKey {
                        key_id: self.key_id.clone(),
                        stored_key_id,
                    });
                }
                self.write_check(tx)
            }
        }
    }

    fn write_check(&self, tx: &Transaction<'_>) -> Result<(), VaultError> {
        let (nonce, ct) = self.seal("(check)", CHECK_AD, CHECK_PLAINTEXT)?;
        tx.execute(
            "INSERT INTO vault_check (id, key_id, nonce, ciphertext) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
             ciphertext = excluded.ciphertext",
            params![self.key_id, &nonce[..], ct],
        )
        .map_err(db("write check row"))?;
        Ok(())
    }

    /// Stores `value` under `name` (version + 1). Returns the new version.
    pub fn set(&self, conn: &Connection, name: &str, value: &[u8]) -> Result<u32, VaultError> {
        validate_name(name)?;
        if value.len() > MAX_VALUE {
            return Err(VaultError::ValueTooLarge {
                name: name.to_string(),
                len: value.len(),
                max: MAX_VALUE,
            });
        }
        ensure_schema(conn)?;
        let tx = immediate(conn)?;
        self.require_key(&tx)?;
        let old: Option<i64> = tx
            .query_row(
                "SELECT version FROM vault_secrets WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("read version"))?;
        let version = match old {
            None => 1,
            Some(v) => u32::try_from(v)
                .ok()
                .and_then(|v| v.checked_add(1))
                .ok_or_else(|| VaultError::VersionOverflow {
                    name: name.to_string(),
                })?,
        };
        let (nonce, ct) = self.seal(name, &associated_data(name, version), value)?;
        tx.execute(
            "INSERT INTO vault_secrets (name, version, nonce, ciphertext, key_id, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(name) DO UPDATE SET version = excluded.version, nonce = excluded.nonce,
             ciphertext = excluded.ciphertext, key_id = excluded.key_id, updated_at = excluded.updated_at",
            params![name, i64::from(version), &nonce[..], ct, self.key_id, now_rfc3339()],
        )
        .map_err(db("write secret"))?;
        tx.commit().map_err(db("commit"))?;
        Ok(version)
    }

    /// The value of `name`, in a zeroizing buffer.
    pub fn get(&self, conn: &Connection, name: &str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        validate_name(name)?;
        ensure_schema(conn)?;
        let row: Option<(i64, Vec<u8>, Vec<u8>, String)> = conn
            .query_row(
                "SELECT version, nonce, ciphertext, key_id FROM vault_secrets WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db("read secret"))?;
        let Some((version, nonce, ct, key_id)) = row else {
            return Err(VaultError::NotFound {
                name: name.to_string(),
            });
        };
        if key_id != self.key_id {
            // Tell a wrong key from a tampered key_id column via the check row.
            if let KeyCheck::Mismatch { stored_key_id } = self.key_check(conn)? {
                return Err(VaultError::WrongKey {
                    key_id: self.key_id.clone(),
                    stored_key_id,
                });
            }
        }
        let version = u32::try_from(version).map_err(|_| VaultError::Corrupt {
            name: name.to_string(),
            reason: format!("version {version} out of range"),
        })?;
        self.open(name, &associated_data(name, version), &nonce, &ct)
    }

    /// Names, versions and times of every secret, sorted by name. Never values.
    pub fn list(&self, conn: &Connection) -> Result<Vec<SecretInfo>, VaultError> {
        ensure_schema(conn)?;
        let mut stmt = conn
            .prepare(
                "SELECT name, version, updated_at, length(ciphertext) FROM vault_secrets ORDER BY name",
            )
            .map_err(db("list secrets"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(db("list secrets"))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, version, updated_at, sealed) = row.map_err(db("list secrets"))?;
            let version = u32::try_from(version).map_err(|_| VaultError::Corrupt {
                name: name.clone(),
                reason: format!("version {version} out of range"),
            })?;
            let bytes = u32::try_from(sealed.saturating_sub(TAG_LEN as i64)).unwrap_or(0);
            out.push(SecretInfo {
                name,
                version,
                updated_at,
                bytes,
            });
        }
        Ok(out)
    }

    /// Deletes `name`; `NotFound` if there is no such secret.
    pub fn delete(&self, conn: &Connection, name: &str) -> Result<(), VaultError> {
        validate_name(name)?;
        ensure_schema(conn)?;
        let n = conn
            .execute("DELETE FROM vault_secrets WHERE name = ?1", params![name])
            .map_err(db("delete secret"))?;
        if n == 0 {
            return Err(VaultError::NotFound {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Re-encrypts every secret from `old` to `new` and moves the check row to
    /// `new`, all in one transaction (the commit point of a master rotation).
    /// Any failure rolls everything back. Returns the number of secrets.
    pub fn rewrap(conn: &Connection, old: &Vault, new: &Vault) -> Result<usize, VaultError> {
        ensure_schema(conn)?;
        let tx = immediate(conn)?;
        old.require_key(&tx)?;
        let rows: Vec<(String, i64, Vec<u8>, Vec<u8>)> = {
            let mut stmt = tx
                .prepare("SELECT name, version, nonce, ciphertext FROM vault_secrets ORDER BY name")
                .map_err(db("read secrets for rewrap"))?;
            let it = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(db("read secrets for rewrap"))?;
            it.collect::<Result<_, _>>()
                .map_err(db("read secrets for rewrap"))?
        };
        for (name, version, nonce, ct) in &rows {
            let version = u32::try_from(*version).map_err(|_| VaultError::Corrupt {
                name: name.clone(),
                reason: format!("version {version} out of range"),
            })?;
            let ad = associated_data(name, version);
            let value = old.open(name, &ad, nonce, ct)?;
            let (nonce, ct) = new.seal(name, &ad, &value)?;
            tx.execute(
                "UPDATE vault_secrets SET nonce = ?2, ciphertext = ?3, key_id = ?4 WHERE name = ?1",
                params![name, &nonce[..], ct, new.key_id],
            )
            .map_err(db("rewrap secret"))?;
        }
        new.write_check(&tx)?;
        tx.commit().map_err(db("commit rewrap"))?;
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(b: u8) -> Vault {
        Vault::new(DerivedKey::from_bytes_for_tests(Purpose::Vault, [b; 32]))
    }

    #[test]
    fn names_validated() {
        for ok in [
            "a",
            "ANTHROPIC_API_KEY",
            "slack.signing-secret",
            &"x".repeat(64),
        ] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "a b", "a/b", "é", "a\0b", &"x".repeat(65), "../x"] {
            assert!(
                matches!(validate_name(bad), Err(VaultError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn associated_data_layout() {
        assert_eq!(
            associated_data("k", 2),
            b"cowork-vault/v1\0k\0\0\0\0\x02".to_vec()
        );
    }

    #[test]
    fn value_size_cap() {
        let c = Connection::open_in_memory().unwrap();
        let v = vault(1);
        v.set(&c, "big", &vec![0u8; MAX_VALUE]).unwrap();
        assert!(matches!(
            v.set(&c, "big", &vec![0u8; MAX_VALUE + 1]),
            Err(VaultError::ValueTooLarge { .. })
        ));
    }

    #[test]
    fn wrong_key_is_named() {
        let c = Connection::open_in_memory().unwrap();
        vault(1).set(&c, "a", b"x").unwrap();
        assert!(matches!(
            vault(2).get(&c, "a"),
            Err(VaultError::WrongKey { .. })
        ));
        assert!(matches!(
            vault(2).set(&c, "b", b"y"),
            Err(VaultError::WrongKey { .. })
        ));
        assert!(!vault(2).opens(&c).unwrap());
        assert!(vault(1).opens(&c).unwrap());
    }

    #[test]
    fn debug_shows_only_key_id() {
        let v = vault(3);
        let d = format!("{v:?}");
        assert!(d.contains(v.key_id()) && !d.contains("cipher"), "{d}");
    }
}
