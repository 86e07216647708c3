//! Trusted update keys (`<keys_dir>/*.pub`: PEM SubjectPublicKeyInfo as
//! `openssl pkey -pubout` writes it, or 64 hex digits of the raw key) and the
//! persisted list of revoked key ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::error::UpdateError;
use super::format::KeyId;
use super::state::{REVOKED_KEYS_FILE, write_atomic};

/// The keys an update may be signed with, minus the revoked ones.
#[derive(Debug, Clone)]
pub struct TrustStore {
    keys: BTreeMap<KeyId, VerifyingKey>,
    revoked: BTreeSet<KeyId>,
}

/// What the store says about a key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus<'a> {
    Trusted(&'a VerifyingKey),
    Revoked,
    Unknown,
}

impl TrustStore {
    /// Loads every `*.pub` in `keys_dir` and the revocations persisted in
    /// `state_dir`. A key file that does not parse is an error (fail closed,
    /// with its path), and so is a directory without keys.
    pub fn load(keys_dir: &Path, state_dir: &Path) -> Result<TrustStore, UpdateError> {
        let rd = std::fs::read_dir(keys_dir).map_err(|source| UpdateError::ReadKeysDir {
            path: keys_dir.to_path_buf(),
            source,
        })?;
        let mut keys = BTreeMap::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|source| UpdateError::ReadKeysDir {
                path: keys_dir.to_path_buf(),
                source,
            })?;
            let path = ent.path();
            if path.extension().is_some_and(|e| e == "pub") {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let key = load_public_key(&path)?;
            keys.insert(KeyId::of(key.as_bytes()), key);
        }
        if keys.is_empty() {
            return Err(UpdateError::NoTrustedKeys {
                path: keys_dir.to_path_buf(),
            });
        }
        let revoked = load_revoked(state_dir)?;
        Ok(TrustStore { keys, revoked })
    }

    pub fn status(&self, id: &KeyId) -> KeyStatus<'_> {
        if self.revoked.contains(id) {
            return KeyStatus::Revoked;
        }
        match self.keys.get(id) {
            Some(k) => KeyStatus::Trusted(k),
            None => KeyStatus::Unknown,
        }
    }

    /// Ids of the trusted (not revoked) keys.
    pub fn trusted_ids(&self) -> Vec<KeyId> {
        self.keys
            .keys()
            .filter(|id| !self.revoked.contains(id))
            .copied()
            .collect()
    }

    pub fn revoked_ids(&self) -> &BTreeSet<KeyId> {
        &self.revoked
    }
}

/// Reads one public key file.
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, UpdateError> {
    let bad = |reason: String| UpdateError::LoadKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN PUBLIC KEY-----") {
        return VerifyingKey::from_public_key_pem(trimmed).map_err(|e| bad(e.to_string()));
    }
    let mut raw = [0u8; 32];
    hex::decode_to_slice(trimmed, &mut raw)
        .map_err(|_| bad("neither a PEM public key nor 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| bad(e.to_string()))
}

/// Reads an Ed25519 PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519`).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, UpdateError> {
    let bad = |reason: String| UpdateError::LoadSigningKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| bad(e.to_string()))
}

fn load_revoked(state_dir: &Path) -> Result<BTreeSet<KeyId>, UpdateError> {
    let path = state_dir.join(REVOKED_KEYS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => {
            return Err(UpdateError::ReadState {
                path,
                reason: e.to_string(),
            });
        }
    };
    let mut out = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let id = KeyId::parse(line).ok_or_else(|| UpdateError::ReadState {
            path: path.clone(),
            reason: format!("line {}: not a key id", n + 1),
        })?;
        out.insert(id);
    }
    Ok(out)
}

/// Adds `ids` to the persisted revocation list (atomically); revocations are
/// never removed.
pub fn persist_revocations(state_dir: &Path, ids: &[KeyId]) -> Result<(), UpdateError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut all = load_revoked(state_dir)?;
    let before = all.len();
    all.extend(ids.iter().copied());
    if all.len() == before {
        return Ok(());
    }
    let text: String = all.iter().map(|id| format!("{id}\n")).collect();
    write_atomic(&state_dir.join(REVOKED_KEYS_FILE), text.as_bytes()).map_err(|source| {
        UpdateError::WriteState {
            path: state_dir.join(REVOKED_KEYS_FILE),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/update")
            .join(name)
    }

    #[test]
    fn pem_and_hex_keys_load() {
        let sk = load_signing_key(&data("test-signing-key.pem")).unwrap();
        let pk = load_public_key(&data("test-signing-key.pub")).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        let sk2 = load_signing_key(&data("second-signing-key.pem")).unwrap();
        let pk2 = load_public_key(&data("second-signing-key.hex.pub")).unwrap();
        assert_eq!(sk2.verifying_key(), pk2);
    }

    #[test]
    fn garbage_key_file_is_an_error_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.pub"), "hello").unwrap();
        let err = TrustStore::load(dir.path(), state.path()).unwrap_err();
        assert!(err.to_string().contains("bad.pub"), "{err}");
        std::fs::remove_file(dir.path().join("bad.pub")).unwrap();
        let err = TrustStore::load(dir.path(), state.path()).unwrap_err();
        assert!(matches!(err, UpdateError::NoTrustedKeys { .. }));
    }

    #[test]
    fn revocations_persist_and_apply() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::copy(data("test-signing-key.pub"), dir.path().join("k.pub")).unwrap();
        let store = TrustStore::load(dir.path(), state.path()).unwrap();
        let id = store.trusted_ids()[0];
        assert!(matches!(store.status(&id), KeyStatus::Trusted(_)));
        persist_revocations(state.path(), &[id]).unwrap();
        let store = TrustStore::load(dir.path(), state.path()).unwrap();
        assert_eq!(store.status(&id), KeyStatus::Revoked);
        assert!(store.trusted_ids().is_empty());
    }
}
