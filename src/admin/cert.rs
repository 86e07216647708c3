//! The admin page's self-signed certificate.
//!
//! Generated with rcgen (ECDSA P-256) on first start and kept in one file,
//! `admin-tls.json` in the state directory (0600, atomic writes): the
//! certificate in DER (public) and the PKCS#8 private key encrypted with
//! AES-256-GCM under the caller's 32-byte `AdminTlsKey`, with the SHA-256 of
//! the certificate as associated data (so key and certificate cannot be
//! swapped apart). Kept across restarts (same fingerprint) until
//! [`rotate_certificate`] or expiry.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::AdminError;
use super::fsutil;

/// File name of the certificate + encrypted key in the state directory.
pub const CERT_FILE: &str = "admin-tls.json";
const AAD_DOMAIN: &[u8] = b"cowork-admin-tls-key-v1\0";
/// Validity of a generated certificate.
const VALIDITY_DAYS: i64 = 825;
/// A certificate closer than this to its end is replaced on start.
const RENEW_BEFORE_SECS: u64 = 7 * 86_400;

/// Keys handed to the admin component by the supervisor. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AdminKeys {
    /// Wraps the TLS private key on disk (keystore purpose `AdminTlsKey`).
    pub tls_wrap: [u8; 32],
}

impl AdminKeys {
    pub fn new(tls_wrap: [u8; 32]) -> Self {
        AdminKeys { tls_wrap }
    }
}

impl std::fmt::Debug for AdminKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKeys(..)")
    }
}

/// The public facts of the current certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 of the DER, uppercase hex pairs joined by `:` (as browsers show it).
    pub fingerprint: String,
    /// Unix seconds.
    pub not_after: u64,
    pub der: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct StoredCert {
    version: u32,
    cert_der_hex: String,
    not_after: u64,
    nonce_hex: String,
    key_ciphertext_hex: String,
}

/// Certificate plus its decrypted private key (PKCS#8 DER).
pub(crate) struct LoadedCert {
    pub info: CertInfo,
    pub key_der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedCert")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// `AA:BB:...` SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The SAN list for this host: `hostname`, `hostname.local` and each address.
pub fn certificate_names(hostname: &str, addrs: &[std::net::IpAddr]) -> Vec<String> {
    let mut names = Vec::new();
    let host = hostname.trim().trim_end_matches('.');
    let dns_ok = host.len() <= 253
        && host.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !host.is_empty() && dns_ok {
        names.push(host.to_string());
        if !host.ends_with(".local") && !host.contains('.') {
            names.push(format!("{host}.local"));
        }
    }
    for a in addrs {
        names.push(a.to_string());
    }
    names.dedup();
    names
}

fn cert_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CERT_FILE)
}

/// Load the certificate from `state_dir`, or generate and store one for
/// `names` if there is none (or it is about to expire).
pub fn ensure_certificate(
    state_dir: &Path,
    keys: &AdminKeys,
    names: &[String],
) -> Result<CertInfo, AdminError> {
    Ok(load_or_create(state_dir, keys, names, now_secs())?.info)
}

/// Replace the certificate with a fresh one for `names` (new key, new fingerprint).
pub fn rotate_certificate(
    state_dir: &Path,
    keys: &AdminKeys,
    names: &[String],
) -> Result<CertInfo, AdminError> {
    Ok(create(state_dir, keys, names)?.info)
}

pub(crate) fn load_or_create(
    state_dir: &Path,
    keys: &AdminKeys,
    names: &[String],
    now: u64,
) -> Result<LoadedCert, AdminError> {
    let path = cert_path(state_dir);
    match fsutil::read_optional(&path)? {
        Some(bytes) => {
            let loaded = decode(&path, &bytes, keys)?;
            if loaded.info.not_after <= now + RENEW_BEFORE_SECS {
                tracing::warn!(path = %path.display(), "admin certificate expires soon; generating a new one");
                create(state_dir, keys, names)
            } else {
                Ok(loaded)
            }
        }
        None => create(state_dir, keys, names),
    }
}

fn create(state_dir: &Path, keys: &AdminKeys, names: &[String]) -> Result<LoadedCert, AdminError> {
    let gen_err = |e: rcgen::Error| AdminError::GenerateCertificate(e.to_string());
    let mut names: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(gen_err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "CoWork OS admin");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let not_after = u64::try_from(params.not_after.unix_timestamp()).unwrap_or(0);
    let key_pair = rcgen::KeyPair::generate().map_err(gen_err)?;
    let cert = params.self_signed(&key_pair).map_err(gen_err)?;
    let der = cert.der().to_vec();
    let key_der = Zeroizing::new(key_pair.serialize_der());
    store(state_dir, keys, der, not_after, key_der)
}

/// Encrypts `key_der` under `keys` (bound to the certificate) and writes the file.
fn store(
    state_dir: &Path,
    keys: &AdminKeys,
    der: Vec<u8>,
    not_after: u64,
    key_der: Zeroizing<Vec<u8>>,
) -> Result<LoadedCert, AdminError> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new((&keys.tls_wrap).into());
    let aad = aad(&der);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &key_der,
                aad: &aad,
            },
        )
        .map_err(|_| AdminError::EncryptTlsKey("AES-GCM encryption failed".into()))?;
    let stored = StoredCert {
        version: 1,
        cert_der_hex: hex::encode(&der),
        not_after,
        nonce_hex: hex::encode(nonce),
        key_ciphertext_hex: hex::encode(ct),
    };
    let json =
        serde_json::to_vec_pretty(&stored).map_err(|e| AdminError::EncryptTlsKey(e.to_string()))?;
    fsutil::write_private(&cert_path(state_dir), &json)?;
    Ok(LoadedCert {
        info: CertInfo {
            fingerprint: fingerprint(&der),
            not_after,
            der,
        },
        key_der,
    })
}

/// Re-encrypts the stored private key from `old` to `new` (after a master key
/// rotation); the certificate and its fingerprint stay the same.
pub fn rewrap_certificate(
    state_dir: &Path,
    old: &AdminKeys,
    new: &AdminKeys,
) -> Result<CertInfo, AdminError> {
    let path = cert_path(state_dir);
    let bytes = fsutil::read_optional(&path)?.ok_or_else(|| AdminError::ReadFile {
        path: path.clone(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let loaded = decode(&path, &bytes, old)?;
    let info = loaded.info.clone();
    store(
        state_dir,
        new,
        info.der.clone(),
        info.not_after,
        loaded.key_der,
    )?;
    Ok(info)
}

fn aad(der: &[u8]) -> Vec<u8> {
    let mut aad = AAD_DOMAIN.to_vec();
    aad.extend_from_slice(&Sha256::digest(der));
    aad
}

fn decode(path: &Path, bytes: &[u8], keys: &AdminKeys) -> Result<LoadedCert, AdminError> {
    let bad = |detail: &str| AdminError::MalformedTlsKey {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let stored: StoredCert = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    if stored.version != 1 {
        return Err(bad("unknown version"));
    }
    let der = hex::decode(&stored.cert_der_hex).map_err(|_| bad("certificate is not hex"))?;
    let nonce = hex::decode(&stored.nonce_hex).map_err(|_| bad("nonce is not hex"))?;
    if nonce.len() != 12 {
        return Err(bad("nonce is not 12 bytes"));
    }
    let ct = hex::decode(&stored.key_ciphertext_hex).map_err(|_| bad("key is not hex"))?;
    let cipher = Aes256Gcm::new((&keys.tls_wrap).into());
    let key_der = cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: &aad(&der),
            },
        )
        .map_err(|_| AdminError::DecryptTlsKey {
            path: path.to_path_buf(),
        })?;
    Ok(LoadedCert {
        info: CertInfo {
            fingerprint: fingerprint(&der),
            not_after: stored.not_after,
            der,
        },
        key_der: Zeroizing::new(key_der),
    })
}

fn now_secs() -> u64 {
    use super::clock::Clock;
    super::clock::SystemClock.now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn stable_rotatable_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AdminKeys::new([7; 32]);
        let names = vec!["box".to_string(), "box.local".into(), "127.0.0.1".into()];
        let a = ensure_certificate(dir.path(), &keys, &names).unwrap();
        let b = ensure_certificate(dir.path(), &keys, &names).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        assert!(
            a.fingerprint
                .chars()
                .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        let path = dir.path().join(CERT_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("PRIVATE KEY"));
        let c = rotate_certificate(dir.path(), &keys, &names).unwrap();
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_eq!(ensure_certificate(dir.path(), &keys, &names).unwrap(), c);
        // Wrong wrapping key: refused, file untouched.
        let before = std::fs::read(&path).unwrap();
        let wrong = AdminKeys::new([8; 32]);
        assert!(matches!(
            ensure_certificate(dir.path(), &wrong, &names),
            Err(AdminError::DecryptTlsKey { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn names_for_host() {
        let n = certificate_names("cowork", &["192.168.1.5".parse().unwrap()]);
        assert_eq!(n, vec!["cowork", "cowork.local", "192.168.1.5"]);
        // A hostname that is not a DNS name is left out rather than failing the start.
        assert_eq!(certificate_names("bad host_ñ", &[]), Vec::<String>::new());
        assert_eq!(
            certificate_names("-x", &["::1".parse().unwrap()]),
            vec!["::1"]
        );
    }
}
