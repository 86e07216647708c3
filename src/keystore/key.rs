//! Key material: the private [`MasterKey`] (never leaves the module) and the
//! per-purpose [`DerivedKey`] handed to callers (HKDF-SHA256).

use std::fmt;

use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::KeystoreError;

/// Length of the master key and of every derived key, in bytes.
pub const KEY_LEN: usize = 32;

/// What a derived key is for. Each purpose yields an independent key
/// (HKDF info = `cowork/v1/<label>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// The gateway's secrets vault (AES-256-GCM).
    Vault,
    /// HMAC key of the audit trail checkpoints.
    AuditCheckpoint,
    /// Wraps the admin page's TLS private key.
    AdminTlsKey,
    /// Keyed hash of pairing codes.
    PairingCodeHash,
    /// Signs admin session cookies.
    AdminSession,
}

impl Purpose {
    /// Every purpose, for tests and key listings.
    pub const ALL: [Purpose; 5] = [
        Purpose::Vault,
        Purpose::AuditCheckpoint,
        Purpose::AdminTlsKey,
        Purpose::PairingCodeHash,
        Purpose::AdminSession,
    ];

    /// The stable label used in the HKDF info string. Never change one: it
    /// would change the derived key.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::Vault => "vault",
            Purpose::AuditCheckpoint => "audit-checkpoint",
            Purpose::AdminTlsKey => "admin-tls-key",
            Purpose::PairingCodeHash => "pairing-code-hash",
            Purpose::AdminSession => "admin-session",
        }
    }

    fn info(self) -> String {
        format!("cowork/v1/{}", self.label())
    }
}

/// A key derived from the master key for one [`Purpose`]. The bytes live in a
/// zeroizing buffer and are never printed.
#[derive(Clone)]
pub struct DerivedKey {
    purpose: Purpose,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl DerivedKey {
    /// The key bytes, for the crypto call site only. Do not copy them into a
    /// buffer that is not zeroized.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// What this key was derived for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// A key received from the supervisor over IPC (components never see the
    /// master key; the supervisor derives and hands out only what each needs).
    pub fn from_supervisor(purpose: Purpose, bytes: [u8; KEY_LEN]) -> Self {
        DerivedKey {
            purpose,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Build a derived key from raw bytes, for unit tests only; production
    /// keys come from the keystore.
    #[cfg(test)]
    pub(crate) fn from_bytes_for_tests(purpose: Purpose, bytes: [u8; KEY_LEN]) -> Self {
        DerivedKey {
            purpose,
            bytes: Zeroizing::new(bytes),
        }
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

impl PartialEq for DerivedKey {
    /// Constant-time comparison of the key bytes (and the purpose).
    fn eq(&self, other: &Self) -> bool {
        self.purpose == other.purpose && bool::from(self.bytes.ct_eq(&*other.bytes))
    }
}
impl Eq for DerivedKey {}

/// The installation's 256-bit master key. Private to the keystore module:
/// callers only ever see [`DerivedKey`]s.
pub(super) struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// A fresh random key from the OS generator.
    pub(super) fn generate() -> Result<Self, KeystoreError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(bytes.as_mut())
            .map_err(|e| KeystoreError::Random {
                reason: e.to_string(),
            })?;
        Ok(MasterKey(bytes))
    }

    /// Takes ownership of bytes read from a tier. Returns `None` on a wrong length.
    pub(super) fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(bytes);
        Some(MasterKey(key))
    }

    /// The raw bytes, for sealing/storing by a tier back-end only.
    pub(super) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Constant-time equality.
    pub(super) fn ct_eq(&self, other: &MasterKey) -> bool {
        bool::from(self.0.ct_eq(&*other.0))
    }

    /// HKDF-SHA256 (no salt: the input key is uniformly random) with
    /// info = `cowork/v1/<purpose>`.
    pub(super) fn derive(&self, purpose: Purpose) -> DerivedKey {
        let hk = Hkdf::<Sha256>::new(None, self.0.as_ref());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's 255*32 limit: expand cannot fail.
        if hk.expand(purpose.info().as_bytes(), out.as_mut()).is_err() {
            unreachable!("HKDF-SHA256 expand of 32 bytes cannot fail");
        }
        DerivedKey {
            purpose,
            bytes: out,
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_give_distinct_keys_and_are_deterministic() {
        let m = MasterKey::from_slice(&[7u8; 32]).unwrap();
        let mut seen = Vec::new();
        for p in Purpose::ALL {
            let k = m.derive(p);
            assert_eq!(k, m.derive(p));
            assert!(!seen.iter().any(|s: &DerivedKey| s.expose() == k.expose()));
            seen.push(k);
        }
    }

    #[test]
    fn rfc5869_style_vector_is_stable() {
        // Pin the derivation so a refactor cannot silently change every key.
        let m = MasterKey::from_slice(&[0u8; 32]).unwrap();
        let k = m.derive(Purpose::Vault);
        let hk = Hkdf::<Sha256>::new(None, &[0u8; 32]);
        let mut expect = [0u8; 32];
        hk.expand(b"cowork/v1/vault", &mut expect).unwrap();
        assert_eq!(k.expose(), &expect);
    }

    #[test]
    fn debug_is_redacted() {
        let m = MasterKey::from_slice(&[0xAB; 32]).unwrap();
        let k = m.derive(Purpose::AdminSession);
        assert_eq!(format!("{k:?}"), "DerivedKey(<redacted>)");
        assert_eq!(format!("{m:?}"), "MasterKey(<redacted>)");
        assert!(!format!("{k:?}").contains("ab"));
    }

    #[test]
    fn wrong_length_rejected() {
        assert!(MasterKey::from_slice(&[0u8; 31]).is_none());
        assert!(MasterKey::from_slice(&[0u8; 33]).is_none());
    }
}
