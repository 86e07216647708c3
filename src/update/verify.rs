//! Offline verification: header, size caps, key, signature, manifest, product,
//! hardware, version, then the payload hashes (streamed, never held in memory).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};

use super::error::UpdateError;
use super::format::{
    self, BootFile, FORMAT_VERSION, HEADER_LEN, Header, KeyId, MAX_MANIFEST_LEN, Manifest,
    SIGNATURE_LEN,
};
use super::trust::{KeyStatus, TrustStore};

/// Read size when there are no chunk hashes.
const STREAM_BUF: usize = 1024 * 1024;

/// What this appliance is, for the compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub product: String,
    pub hardware: String,
}

/// A manifest whose signature, compatibility and version were checked (and,
/// when returned by [`verify`], whose payload matched its hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest {
    pub manifest: Manifest,
    pub key_id: KeyId,
    pub header: Header,
    /// Offset of the payload in the bundle.
    pub payload_offset: u64,
}

impl VerifiedManifest {
    pub fn version(&self) -> u64 {
        self.manifest.version
    }

    /// Key ids this update revokes.
    pub fn revoked_keys(&self) -> Vec<KeyId> {
        self.manifest
            .revoked_keys
            .iter()
            .filter_map(|k| KeyId::parse(k))
            .collect()
    }
}

/// Verifies a bundle completely, payload included, without writing anything.
pub fn verify(
    bundle_path: &Path,
    trust: &TrustStore,
    device: &DeviceIdentity,
    current_version: u64,
    floor: u64,
) -> Result<VerifiedManifest, UpdateError> {
    let (mut file, vm) = open_verified(bundle_path, trust, device, current_version, floor)?;
    stream_image(&mut file, bundle_path, &vm, |_| Ok(()))?;
    for bf in &vm.manifest.boot_files {
        stream_boot_file(&mut file, bundle_path, bf, |_| Ok(()))?;
    }
    Ok(vm)
}

/// Checks everything but the payload; the returned file is positioned at the
/// start of the payload. Nothing of the manifest is parsed before its size is
/// capped and its signature checked.
pub(crate) fn open_verified(
    path: &Path,
    trust: &TrustStore,
    device: &DeviceIdentity,
    current_version: u64,
    floor: u64,
) -> Result<(File, VerifiedManifest), UpdateError> {
    let p = || path.to_path_buf();
    let mut file =
        File::open(path).map_err(|source| UpdateError::OpenBundle { path: p(), source })?;
    let actual = file
        .metadata()
        .map_err(|source| UpdateError::ReadBundle { path: p(), source })?
        .len();
    let truncated = |what, expected| UpdateError::Truncated {
        path: p(),
        what,
        expected,
        actual,
    };
    if actual < HEADER_LEN as u64 {
        return Err(truncated("the header", HEADER_LEN as u64));
    }
    let mut raw = [0u8; HEADER_LEN];
    read_exact(&mut file, path, &mut raw)?;
    let header = Header::decode(&raw).ok_or_else(|| UpdateError::BadMagic { path: p() })?;
    if header.format_version != FORMAT_VERSION {
        return Err(UpdateError::UnsupportedFormat {
            path: p(),
            version: header.format_version,
            supported: FORMAT_VERSION,
        });
    }
    if header.reserved != 0 {
        return Err(UpdateError::ReservedHeader { path: p() });
    }
    let mlen = u64::from(header.manifest_len);
    if mlen > MAX_MANIFEST_LEN {
        return Err(UpdateError::ManifestTooLarge {
            path: p(),
            len: mlen,
            max: MAX_MANIFEST_LEN,
        });
    }
    let payload_offset = HEADER_LEN as u64 + mlen + SIGNATURE_LEN as u64;
    if actual < payload_offset {
        return Err(truncated("the manifest and signature", payload_offset));
    }
    let total = payload_offset
        .checked_add(header.payload_len)
        .ok_or_else(|| truncated("the payload", u64::MAX))?;
    if actual < total {
        return Err(truncated("the payload", total));
    }
    if actual > total {
        return Err(UpdateError::TrailingData {
            path: p(),
            extra: actual - total,
        });
    }
    let mut manifest_bytes = vec![0u8; mlen as usize];
    read_exact(&mut file, path, &mut manifest_bytes)?;
    let mut sig = [0u8; SIGNATURE_LEN];
    read_exact(&mut file, path, &mut sig)?;

    let key_id = KeyId(header.key_id);
    let key = match trust.status(&key_id) {
        KeyStatus::Trusted(k) => k,
        KeyStatus::Revoked => {
            return Err(UpdateError::RevokedKey {
                path: p(),
                key_id: key_id.to_string(),
            });
        }
        KeyStatus::Unknown => {
            return Err(UpdateError::UnknownKey {
                path: p(),
                key_id: key_id.to_string(),
            });
        }
    };
    let msg = format::signed_message(&raw, &manifest_bytes);
    key.verify_strict(&msg, &Signature::from_bytes(&sig))
        .map_err(|_| UpdateError::BadSignature {
            path: p(),
            key_id: key_id.to_string(),
        })?;

    let manifest = format::decode_manifest(&manifest_bytes)
        .map_err(|reason| UpdateError::DecodeManifest { path: p(), reason })?;
    manifest
        .check(&header)
        .map_err(|reason| UpdateError::InvalidManifest { path: p(), reason })?;
    if manifest
        .revoked_keys
        .iter()
        .any(|k| KeyId::parse(k) == Some(key_id))
    {
        return Err(UpdateError::SelfRevoking {
            path: p(),
            key_id: key_id.to_string(),
        });
    }
    if manifest.product != device.product {
        return Err(UpdateError::WrongProduct {
            expected: device.product.clone(),
            found: manifest.product.clone(),
        });
    }
    if !manifest.hardware.contains(&device.hardware) {
        return Err(UpdateError::WrongHardware {
            hardware: device.hardware.clone(),
            supported: manifest.hardware.clone(),
        });
    }
    let version = manifest.version;
    if version < current_version {
        return Err(UpdateError::OlderVersion {
            version,
            current: current_version,
        });
    }
    if version == current_version {
        return Err(UpdateError::SameVersion { version });
    }
    if version < floor {
        return Err(UpdateError::BelowFloor { version, floor });
    }
    Ok((
        file,
        VerifiedManifest {
            manifest,
            key_id,
            header,
            payload_offset,
        },
    ))
}

fn read_exact(file: &mut File, path: &Path, buf: &mut [u8]) -> Result<(), UpdateError> {
    file.read_exact(buf)
        .map_err(|source| UpdateError::ReadBundle {
            path: path.to_path_buf(),
            source,
        })
}

/// Streams the root image from `file` (at the payload start) to `write`. With
/// chunk hashes each chunk is checked before `write` sees it; without, the
/// whole-image hash is checked at the end and the caller must not trust what
/// it wrote until this returns `Ok`.
pub(crate) fn stream_image(
    file: &mut File,
    path: &Path,
    vm: &VerifiedManifest,
    mut write: impl FnMut(&[u8]) -> Result<(), UpdateError>,
) -> Result<(), UpdateError> {
    let img = &vm.manifest.image;
    file.seek(SeekFrom::Start(vm.payload_offset))
        .map_err(|source| UpdateError::ReadBundle {
            path: path.to_path_buf(),
            source,
        })?;
    if img.chunk_size > 0 {
        let mut buf = vec![0u8; img.chunk_size as usize];
        let mut left = img.size;
        for (i, want) in img.chunk_sha256.iter().enumerate() {
            let n = left.min(img.chunk_size) as usize;
            read_exact(file, path, &mut buf[..n])?;
            let got = Sha256::digest(&buf[..n]);
            if got.as_slice() != want.as_slice() {
                return Err(UpdateError::PayloadHash {
                    path: path.to_path_buf(),
                    what: format!("image chunk {i}"),
                });
            }
            write(&buf[..n])?;
            left -= n as u64;
        }
        return Ok(());
    }
    stream_hashed(file, path, img.size, &img.sha256, "image", write)
}

/// Streams the next boot file (the file is positioned at it); `Ok` only when
/// its hash matched.
pub(crate) fn stream_boot_file(
    file: &mut File,
    path: &Path,
    bf: &BootFile,
    write: impl FnMut(&[u8]) -> Result<(), UpdateError>,
) -> Result<(), UpdateError> {
    let what = format!("boot file {}", bf.name);
    stream_hashed(file, path, bf.size, &bf.sha256, &what, write)
}

/// Streams `size` bytes to `write` while hashing them; `Ok` only when the
/// SHA-256 equals `want`.
fn stream_hashed(
    file: &mut File,
    path: &Path,
    size: u64,
    want: &[u8; 32],
    what: &str,
    mut write: impl FnMut(&[u8]) -> Result<(), UpdateError>,
) -> Result<(), UpdateError> {
    let mut buf = vec![0u8; STREAM_BUF];
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(STREAM_BUF as u64) as usize;
        read_exact(file, path, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        write(&buf[..n])?;
        left -= n as u64;
    }
    if hasher.finalize().as_slice() != want {
        return Err(UpdateError::PayloadHash {
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
    Ok(())
}
