//! The bundle format (docs/update-format.md): a fixed 32-byte header, a CBOR
//! manifest, an Ed25519 signature over header + manifest with a domain prefix,
//! then the payload (root file system image, then the boot files).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"CWUPDATE";
/// The bundle (header + manifest) format this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Length of the Ed25519 signature that follows the manifest.
pub const SIGNATURE_LEN: usize = 64;
/// Manifests larger than this are refused before a byte of them is parsed.
pub const MAX_MANIFEST_LEN: u64 = 64 * 1024;
/// Domain separation: the signature covers `SIGNING_DOMAIN || header || manifest`.
pub const SIGNING_DOMAIN: &[u8] = b"CoWork-OS update manifest v1\0";
/// Default streaming-verification chunk.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// Smallest and largest chunk sizes accepted.
pub const MIN_CHUNK_SIZE: u64 = 64 * 1024;
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;
/// Names a boot file may have (written to `<esp>/cowork-<slot>/<name>`).
pub const BOOT_FILE_NAMES: [&str; 2] = ["vmlinuz", "initrd.img"];
/// Largest boot file accepted.
pub const MAX_BOOT_FILE_LEN: u64 = 256 * 1024 * 1024;
/// Length of a key id in bytes (SHA-256 of the raw public key, truncated).
pub const KEY_ID_LEN: usize = 8;

/// The fixed header, big-endian on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format_version: u16,
    pub reserved: u16,
    pub manifest_len: u32,
    pub key_id: [u8; KEY_ID_LEN],
    pub payload_len: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.format_version.to_be_bytes());
        out[10..12].copy_from_slice(&self.reserved.to_be_bytes());
        out[12..16].copy_from_slice(&self.manifest_len.to_be_bytes());
        out[16..24].copy_from_slice(&self.key_id);
        out[24..32].copy_from_slice(&self.payload_len.to_be_bytes());
        out
    }

    /// Splits the raw header; `None` when the magic is wrong. Field checks are
    /// the verifier's job.
    pub fn decode(raw: &[u8; HEADER_LEN]) -> Option<Header> {
        if raw[0..8] != MAGIC {
            return None;
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&raw[16..24]);
        Some(Header {
            format_version: u16::from_be_bytes([raw[8], raw[9]]),
            reserved: u16::from_be_bytes([raw[10], raw[11]]),
            manifest_len: u32::from_be_bytes([raw[12], raw[13], raw[14], raw[15]]),
            key_id,
            payload_len: u64::from_be_bytes([
                raw[24], raw[25], raw[26], raw[27], raw[28], raw[29], raw[30], raw[31],
            ]),
        })
    }
}

/// The signed manifest (CBOR map, field names as below).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Equal to the header's format version.
    pub format_version: u16,
    /// Product id; must equal the appliance's.
    pub product: String,
    /// Hardware ids this image runs on; the appliance's must be listed.
    pub hardware: Vec<String>,
    /// Monotonic image version (the only thing compared).
    pub version: u64,
    /// Human-readable label ("2026.11.2"), shown, never compared.
    pub version_label: String,
    /// The root file system image.
    pub image: PayloadInfo,
    /// Files for the ESP (`vmlinuz`, `initrd.img`), stored after the image.
    pub boot_files: Vec<BootFile>,
    /// Key ids (hex) revoked from this update on.
    pub revoked_keys: Vec<String>,
}

/// Size and hashes of the root image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadInfo {
    pub size: u64,
    #[serde(with = "serde_bytes")]
    pub sha256: [u8; 32],
    /// 0 when there are no chunk hashes.
    pub chunk_size: u64,
    /// SHA-256 of each `chunk_size` piece (the last may be shorter).
    pub chunk_sha256: Vec<serde_bytes::ByteArray<32>>,
}

/// A file for the slot's ESP directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootFile {
    pub name: String,
    pub size: u64,
    #[serde(with = "serde_bytes")]
    pub sha256: [u8; 32],
}

impl Manifest {
    /// Total payload bytes after the signature: image then boot files.
    pub fn payload_len(&self) -> Option<u64> {
        self.boot_files
            .iter()
            .try_fold(self.image.size, |acc, f| acc.checked_add(f.size))
    }

    /// Structural checks beyond CBOR decoding; returns the reason on failure.
    pub fn check(&self, header: &Header) -> Result<(), String> {
        if self.format_version != header.format_version {
            return Err(format!(
                "format version {} in the manifest, {} in the header",
                self.format_version, header.format_version
            ));
        }
        if self.payload_len() != Some(header.payload_len) {
            return Err(format!(
                "payload length {} in the header does not match the manifest",
                header.payload_len
            ));
        }
        if self.product.is_empty() || self.hardware.is_empty() {
            return Err("empty product or hardware list".into());
        }
        let img = &self.image;
        if img.chunk_size == 0 {
            if !img.chunk_sha256.is_empty() {
                return Err("chunk hashes without a chunk size".into());
            }
        } else {
            if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&img.chunk_size)
                || !img.chunk_size.is_power_of_two()
            {
                return Err(format!("chunk size {} not allowed", img.chunk_size));
            }
            let want = img.size.div_ceil(img.chunk_size);
            if img.chunk_sha256.len() as u64 != want {
                return Err(format!(
                    "{} chunk hashes for {} chunks",
                    img.chunk_sha256.len(),
                    want
                ));
            }
        }
        let mut seen = Vec::new();
        for f in &self.boot_files {
            if !BOOT_FILE_NAMES.contains(&f.name.as_str()) || seen.contains(&f.name) {
                return Err(format!("boot file name {:?} not allowed", f.name));
            }
            if f.size > MAX_BOOT_FILE_LEN {
                return Err(format!("boot file {} too large", f.name));
            }
            seen.push(f.name.clone());
        }
        if seen.len() != BOOT_FILE_NAMES.len() {
            return Err("the bundle must carry vmlinuz and initrd.img".into());
        }
        for k in &self.revoked_keys {
            if KeyId::parse(k).is_none() {
                return Err(format!(
                    "revoked key id {k:?} is not {} hex digits",
                    KEY_ID_LEN * 2
                ));
            }
        }
        Ok(())
    }
}

/// Encodes a manifest as CBOR.
pub fn encode_manifest(m: &Manifest) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::into_writer(m, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes CBOR manifest bytes (already size-capped and signature-checked);
/// trailing bytes are refused.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let mut cursor = std::io::Cursor::new(bytes);
    let m: Manifest = ciborium::from_reader(&mut cursor).map_err(|e| e.to_string())?;
    if cursor.position() != bytes.len() as u64 {
        return Err("trailing bytes after the CBOR manifest".into());
    }
    Ok(m)
}

/// The exact bytes the signature covers.
pub fn signed_message(header: &[u8; HEADER_LEN], manifest: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_DOMAIN.len() + HEADER_LEN + manifest.len());
    msg.extend_from_slice(SIGNING_DOMAIN);
    msg.extend_from_slice(header);
    msg.extend_from_slice(manifest);
    msg
}

/// A key id: the first 8 bytes of SHA-256 of the raw 32-byte public key,
/// shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    pub fn of(public_key: &[u8; 32]) -> KeyId {
        let digest = Sha256::digest(public_key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }

    pub fn parse(s: &str) -> Option<KeyId> {
        let mut id = [0u8; KEY_ID_LEN];
        hex::decode_to_slice(s.trim(), &mut id).ok()?;
        Some(KeyId(id))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            format_version: FORMAT_VERSION,
            reserved: 0,
            manifest_len: 1234,
            key_id: [1, 2, 3, 4, 5, 6, 7, 8],
            payload_len: 1 << 40,
        };
        assert_eq!(Header::decode(&h.encode()), Some(h));
        let mut raw = h.encode();
        raw[0] = b'X';
        assert_eq!(Header::decode(&raw), None);
    }

    #[test]
    fn manifest_rejects_trailing_bytes_and_unknown_fields() {
        let m = Manifest {
            format_version: 1,
            product: "p".into(),
            hardware: vec!["h".into()],
            version: 7,
            version_label: "7".into(),
            image: PayloadInfo {
                size: 0,
                sha256: [0; 32],
                chunk_size: 0,
                chunk_sha256: vec![],
            },
            boot_files: vec![],
            revoked_keys: vec![],
        };
        let mut bytes = encode_manifest(&m).unwrap();
        assert_eq!(decode_manifest(&bytes).unwrap(), m);
        bytes.push(0);
        assert!(decode_manifest(&bytes).is_err());
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("version", 7u64);
        extra.insert("surprise", 1u64);
        let mut bytes = Vec::new();
        ciborium::into_writer(&extra, &mut bytes).unwrap();
        assert!(decode_manifest(&bytes).is_err());
    }

    #[test]
    fn key_id_is_truncated_sha256() {
        let id = KeyId::of(&[0u8; 32]);
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(KeyId::parse(&id.to_string()), Some(id));
        assert_eq!(KeyId::parse("xyz"), None);
    }
}
