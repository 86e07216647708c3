//! The checkpoint key (HMAC-SHA256, 32 bytes, held only by the audit
//! component) and the two MACs made with it: checkpoint records and the anchor.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::{AuditError, Result};

type HmacSha256 = Hmac<Sha256>;

/// Domain tag of a checkpoint MAC.
pub const CHECKPOINT_DOMAIN: &[u8] = b"cowork-audit-checkpoint-v1\0";
/// Domain tag of the anchor MAC.
pub const ANCHOR_DOMAIN: &[u8] = b"cowork-audit-anchor-v1\0";

/// 32-byte HMAC key for checkpoints and the anchor. Zeroized on drop, never printed.
pub struct CheckpointKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(<redacted>)")
    }
}

impl CheckpointKey {
    /// Wraps key bytes handed out by the keystore.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CheckpointKey(Zeroizing::new(bytes))
    }

    /// A fresh random key (tests, first boot).
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        CheckpointKey(k)
    }

    /// Loads the key from a 0600 file, creating it (0600, random) if absent.
    /// Refuses a file that group or others can read/write, one owned by
    /// another user, a symlink, or one of the wrong length.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let load_err = |source| AuditError::LoadKey {
            path: path.to_owned(),
            source,
        };
        match fs::symlink_metadata(path) {
            Ok(meta) => {
                if !meta.file_type().is_file() {
                    return Err(AuditError::KeyPermissions {
                        path: path.to_owned(),
                        reason: "not a regular file".into(),
                    });
                }
                let mode = meta.mode() & 0o7777;
                if mode & 0o077 != 0 {
                    return Err(AuditError::KeyPermissions {
                        path: path.to_owned(),
                        reason: format!("mode {mode:04o}"),
                    });
                }
                let euid = nix::unistd::geteuid().as_raw();
                if meta.uid() != euid {
                    return Err(AuditError::KeyPermissions {
                        path: path.to_owned(),
                        reason: format!("owned by uid {}, we are {euid}", meta.uid()),
                    });
                }
                if meta.len() != 32 {
                    return Err(AuditError::KeyLength {
                        path: path.to_owned(),
                        len: meta.len(),
                    });
                }
                let mut f = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc_o_nofollow())
                    .open(path)
                    .map_err(load_err)?;
                let mut k = Zeroizing::new([0u8; 32]);
                f.read_exact(k.as_mut()).map_err(load_err)?;
                Ok(CheckpointKey(k))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(load_err)?;
                f.write_all(key.0.as_ref()).map_err(load_err)?;
                f.sync_all().map_err(load_err)?;
                if let Some(dir) = path.parent() {
                    super::anchor::fsync_dir(dir).map_err(load_err)?;
                }
                Ok(key)
            }
            Err(e) => Err(load_err(e)),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        match HmacSha256::new_from_slice(self.0.as_ref()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes any key length"),
        }
    }

    /// MAC of a checkpoint record. See the `audit` module doc for the encoding.
    pub fn checkpoint_mac(
        &self,
        db_id: &[u8; 16],
        seq: u64,
        head: &[u8; 32],
        time: &str,
        reason: &str,
    ) -> [u8; 32] {
        let mut m = self.mac();
        feed_checkpoint(&mut m, db_id, seq, head, time, reason);
        m.finalize().into_bytes().into()
    }

    /// Constant-time check of a checkpoint MAC.
    pub fn verify_checkpoint_mac(
        &self,
        db_id: &[u8; 16],
        seq: u64,
        head: &[u8; 32],
        time: &str,
        reason: &str,
        mac: &[u8],
    ) -> bool {
        let mut m = self.mac();
        feed_checkpoint(&mut m, db_id, seq, head, time, reason);
        m.verify_slice(mac).is_ok()
    }

    /// MAC of the anchor (db id, last seq, head hash).
    pub fn anchor_mac(&self, db_id: &[u8; 16], seq: u64, head: &[u8; 32]) -> [u8; 32] {
        let mut m = self.mac();
        feed_anchor(&mut m, db_id, seq, head);
        m.finalize().into_bytes().into()
    }

    /// Constant-time check of an anchor MAC.
    pub fn verify_anchor_mac(
        &self,
        db_id: &[u8; 16],
        seq: u64,
        head: &[u8; 32],
        mac: &[u8],
    ) -> bool {
        let mut m = self.mac();
        feed_anchor(&mut m, db_id, seq, head);
        m.verify_slice(mac).is_ok()
    }
}

fn feed_checkpoint(
    m: &mut HmacSha256,
    db_id: &[u8; 16],
    seq: u64,
    head: &[u8; 32],
    time: &str,
    reason: &str,
) {
    m.update(CHECKPOINT_DOMAIN);
    m.update(db_id);
    m.update(&seq.to_be_bytes());
    m.update(head);
    for field in [time.as_bytes(), reason.as_bytes()] {
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        m.update(&len.to_be_bytes());
        m.update(field);
    }
}

fn feed_anchor(m: &mut HmacSha256, db_id: &[u8; 16], seq: u64, head: &[u8; 32]) {
    m.update(ANCHOR_DOMAIN);
    m.update(db_id);
    m.update(&seq.to_be_bytes());
    m.update(head);
}

/// O_NOFOLLOW without unsafe: the value is a plain constant.
fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_then_load_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.key");
        let k1 = CheckpointKey::load_or_create(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = CheckpointKey::load_or_create(&p).unwrap();
        assert_eq!(
            k1.anchor_mac(&[0; 16], 1, &[1; 32]),
            k2.anchor_mac(&[0; 16], 1, &[1; 32])
        );
        assert!(!format!("{k1:?}").contains(&hex::encode(k1.0.as_ref())));
    }

    #[test]
    fn refuses_group_readable_and_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.key");
        fs::write(&p, [0u8; 32]).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            CheckpointKey::load_or_create(&p),
            Err(AuditError::KeyPermissions { .. })
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CheckpointKey::load_or_create(&p).is_ok());
        fs::write(&p, [0u8; 31]).unwrap();
        assert!(matches!(
            CheckpointKey::load_or_create(&p),
            Err(AuditError::KeyLength { .. })
        ));
    }

    #[test]
    fn macs_bind_every_field() {
        let k = CheckpointKey::generate();
        let m = k.checkpoint_mac(&[1; 16], 5, &[2; 32], "t", "interval");
        assert!(k.verify_checkpoint_mac(&[1; 16], 5, &[2; 32], "t", "interval", &m));
        assert!(!k.verify_checkpoint_mac(&[1; 16], 6, &[2; 32], "t", "interval", &m));
        assert!(!k.verify_checkpoint_mac(&[1; 16], 5, &[2; 32], "t", "shutdown", &m));
        let other = CheckpointKey::generate();
        assert!(!other.verify_checkpoint_mac(&[1; 16], 5, &[2; 32], "t", "interval", &m));
    }
}
