//! Where each tier keeps the master key: the current slot and the pending
//! slot used by a two-phase rotation. One small API over the three tiers.
//!
//! | tier     | current                      | pending                            |
//! |----------|------------------------------|------------------------------------|
//! | file     | `keystore/master.key` (0600) | `keystore/master.key.pending`      |
//! | tpm2     | `keystore/master.tpm2`       | `keystore/master.tpm2.pending`     |
//! | keychain | System keychain `master-key` | System keychain `master-key.pending` |

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::TierKind;
use super::error::KeystoreError;
use super::fsutil;
use super::key::{KEY_LEN, MasterKey};
use super::keychain;
use super::tpm_helper::TpmHelper;

/// Host key file name.
pub(super) const FILE_KEY: &str = "master.key";
/// Sealed blob file name.
pub(super) const TPM_BLOB: &str = "master.tpm2";
const PENDING_SUFFIX: &str = ".pending";
const OLD_SUFFIX: &str = ".old";
const KEYCHAIN_ACCOUNT: &str = "master-key";

/// Host key file format: magic, the key, first 8 bytes of SHA-256(magic||key).
const FILE_MAGIC: &[u8; 9] = b"COWORKMK\x01";
const FILE_LEN: usize = FILE_MAGIC.len() + KEY_LEN + 8;

/// Which of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Current,
    Pending,
}

/// The tier back-ends, bound to one keystore directory and TPM config.
#[derive(Debug, Clone)]
pub(super) struct Store {
    pub(super) dir: PathBuf,
    pub(super) tcti: String,
    pub(super) pcrs: Vec<u8>,
    pub(super) tpm: TpmHelper,
}

fn name(tier: TierKind, slot: Slot) -> String {
    let base = match tier {
        TierKind::File => FILE_KEY,
        TierKind::Tpm2 => TPM_BLOB,
        TierKind::Keychain => KEYCHAIN_ACCOUNT,
    };
    match slot {
        Slot::Current => base.to_string(),
        Slot::Pending => format!("{base}{PENDING_SUFFIX}"),
    }
}

fn encode_file(key: &MasterKey) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(FILE_LEN));
    out.extend_from_slice(FILE_MAGIC);
    out.extend_from_slice(key.bytes());
    let sum = Sha256::digest(&out[..]);
    out.extend_from_slice(&sum[..8]);
    out
}

fn decode_file(path: &Path, bytes: &[u8]) -> Result<MasterKey, KeystoreError> {
    let corrupt = |reason: &str| KeystoreError::KeyFileCorrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() != FILE_LEN {
        return Err(corrupt("wrong length"));
    }
    if &bytes[..FILE_MAGIC.len()] != FILE_MAGIC {
        return Err(corrupt("not a CoWork host key (bad magic or version)"));
    }
    let body = &bytes[..FILE_MAGIC.len() + KEY_LEN];
    if Sha256::digest(body)[..8] != bytes[FILE_MAGIC.len() + KEY_LEN..] {
        return Err(corrupt("checksum mismatch"));
    }
    MasterKey::from_slice(&bytes[FILE_MAGIC.len()..FILE_MAGIC.len() + KEY_LEN])
        .ok_or_else(|| corrupt("wrong key length"))
}

impl Store {
    pub(super) fn path(&self, tier: TierKind, slot: Slot) -> PathBuf {
        self.dir.join(name(tier, slot))
    }

    /// Whether the slot holds something (without reading or unsealing it).
    pub(super) fn exists(&self, tier: TierKind, slot: Slot) -> Result<bool, KeystoreError> {
        match tier {
            TierKind::File | TierKind::Tpm2 => fsutil::exists(&self.path(tier, slot)),
            TierKind::Keychain => {
                if keychain::availability().is_err() {
                    return Ok(false);
                }
                Ok(keychain::load(&name(tier, slot))?.is_some())
            }
        }
    }

    /// Reads (and for tpm2 unseals) a slot. `None` if it is empty.
    pub(super) fn load(
        &self,
        tier: TierKind,
        slot: Slot,
    ) -> Result<Option<MasterKey>, KeystoreError> {
        let path = self.path(tier, slot);
        match tier {
            TierKind::File => match fsutil::read_secret_file(&path)? {
                None => Ok(None),
                Some(bytes) => decode_file(&path, &bytes).map(Some),
            },
            TierKind::Tpm2 => match fsutil::read_blob_file(&path)? {
                None => Ok(None),
                Some(bytes) => self.tpm.unseal(&self.tcti, &path, &bytes).map(Some),
            },
            TierKind::Keychain => keychain::load(&name(tier, slot)),
        }
    }

    /// Writes a slot and verifies it by reading it back (for tpm2: a test
    /// unseal). `Current` never replaces an existing entry; `Pending`
    /// replaces only a pending entry (the caller made sure none is live).
    pub(super) fn write(
        &self,
        tier: TierKind,
        slot: Slot,
        key: &MasterKey,
    ) -> Result<(), KeystoreError> {
        let file_name = name(tier, slot);
        let path = self.path(tier, slot);
        match tier {
            TierKind::File => {
                let bytes = encode_file(key);
                match slot {
                    Slot::Current => fsutil::create_new_private(&self.dir, &file_name, &bytes)?,
                    Slot::Pending => fsutil::replace_private(&self.dir, &file_name, &bytes)?,
                };
            }
            TierKind::Tpm2 => {
                let blob = self.tpm.seal(&self.tcti, key, &self.pcrs)?;
                match slot {
                    Slot::Current => fsutil::create_new_private(&self.dir, &file_name, &blob)?,
                    Slot::Pending => fsutil::replace_private(&self.dir, &file_name, &blob)?,
                };
            }
            TierKind::Keychain => {
                if slot == Slot::Current && keychain::load(&file_name)?.is_some() {
                    return Err(KeystoreError::ConflictingMasters {
                        path: path.clone(),
                        reason: "a keychain master key already exists".into(),
                    });
                }
                keychain::store(&file_name, key)?;
            }
        }
        // Read back what is now stored and compare.
        let verify = match self.load(tier, slot) {
            Ok(Some(k)) if k.ct_eq(key) => Ok(()),
            Ok(Some(_)) => Err("stored key differs".to_string()),
            Ok(None) => Err("stored key vanished".to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = verify {
            // Only what this call just wrote is removed.
            let _ = self.remove(tier, slot);
            return Err(KeystoreError::VerifyNewMaster { path, reason });
        }
        Ok(())
    }

    /// Removes a slot (host key files are overwritten before unlinking).
    pub(super) fn remove(&self, tier: TierKind, slot: Slot) -> Result<(), KeystoreError> {
        match tier {
            TierKind::File | TierKind::Tpm2 => {
                fsutil::shred_remove(&self.dir, &self.path(tier, slot))
            }
            TierKind::Keychain => keychain::remove(&name(tier, slot)),
        }
    }

    /// Makes the pending slot the current one, atomically. For the host key
    /// file the old key is kept reachable under `.old` just long enough to
    /// overwrite it after the rename; a crash leaves `.old`, which
    /// [`Store::cleanup`] handles.
    pub(super) fn promote_pending(&self, tier: TierKind) -> Result<(), KeystoreError> {
        match tier {
            TierKind::File | TierKind::Tpm2 => {
                let cur = self.path(tier, Slot::Current);
                let pending = self.path(tier, Slot::Pending);
                let old = self
                    .dir
                    .join(format!("{}{OLD_SUFFIX}", name(tier, Slot::Current)));
                self.cleanup_old(tier)?;
                if fsutil::exists(&cur)? {
                    std::fs::hard_link(&cur, &old).map_err(|source| KeystoreError::Io {
                        operation: "link old master",
                        path: old.clone(),
                        source,
                    })?;
                }
                fsutil::rename_durable(&self.dir, &pending, &cur)?;
                // `old` is now the only name of the previous key: overwrite it.
                fsutil::shred_remove(&self.dir, &old)
            }
            TierKind::Keychain => {
                let key = self.load(tier, Slot::Pending)?.ok_or_else(|| {
                    KeystoreError::RotationMismatch {
                        path: self.path(tier, Slot::Pending),
                        reason: "pending keychain entry vanished".into(),
                    }
                })?;
                keychain::store(&name(tier, Slot::Current), &key)?;
                keychain::remove(&name(tier, Slot::Pending))
            }
        }
    }

    /// Removes a leftover `.old` from a crash inside [`Store::promote_pending`].
    /// If it is still a second name of the current file (crash before the
    /// rename), it is only unlinked, never overwritten.
    pub(super) fn cleanup_old(&self, tier: TierKind) -> Result<(), KeystoreError> {
        if tier == TierKind::Keychain {
            return Ok(());
        }
        let cur = self.path(tier, Slot::Current);
        let old = self
            .dir
            .join(format!("{}{OLD_SUFFIX}", name(tier, Slot::Current)));
        let Ok(old_meta) = std::fs::symlink_metadata(&old) else {
            return Ok(());
        };
        let same_inode = std::fs::symlink_metadata(&cur)
            .map(|m| m.ino() == old_meta.ino() && m.dev() == old_meta.dev())
            .unwrap_or(false);
        if same_inode {
            std::fs::remove_file(&old).map_err(|source| KeystoreError::Io {
                operation: "unlink",
                path: old.clone(),
                source,
            })?;
            fsutil::fsync_dir(&self.dir)
        } else {
            fsutil::shred_remove(&self.dir, &old)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format_roundtrip_and_corruption() {
        let k = MasterKey::from_slice(&[9u8; 32]).unwrap();
        let enc = encode_file(&k);
        assert!(decode_file(Path::new("k"), &enc).unwrap().ct_eq(&k));
        for i in 0..enc.len() {
            let mut bad = enc.to_vec();
            bad[i] ^= 1;
            assert!(matches!(
                decode_file(Path::new("k"), &bad),
                Err(KeystoreError::KeyFileCorrupt { .. })
            ));
        }
        assert!(decode_file(Path::new("k"), &enc[..10]).is_err());
    }
}
