//! Packing and signing a bundle (build machine side).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::error::UpdateError;
use super::format::{
    self, BootFile, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, Header, KeyId, Manifest, PayloadInfo,
};
use super::state::sync_dir;
use super::trust::load_signing_key;

/// Everything `pack` needs besides the payload, version, key and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOptions {
    pub version_label: String,
    pub product: String,
    pub hardware: Vec<String>,
    /// `Some(n)`: chunk hashes every n bytes (power of two, 64 KiB..64 MiB);
    /// `None`: whole-image hash only.
    pub chunk_size: Option<u64>,
    /// The slot's kernel and initrd.
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    /// Key ids (hex) to revoke from this update on.
    pub revoked_keys: Vec<String>,
}

impl PackOptions {
    /// Defaults for the appliance's product and hardware id, 4 MiB chunks.
    pub fn new(vmlinuz: PathBuf, initrd: PathBuf) -> PackOptions {
        PackOptions {
            version_label: String::new(),
            product: "cowork-os-appliance".into(),
            hardware: vec!["x86_64-uefi".into()],
            chunk_size: Some(DEFAULT_CHUNK_SIZE),
            vmlinuz,
            initrd,
            revoked_keys: Vec::new(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBundle {
    pub manifest: Manifest,
    pub key_id: KeyId,
    pub bundle_len: u64,
}

/// Packs `payload_path` (a root file system image) as image `version`, signed
/// with the Ed25519 PKCS#8 PEM key at `key_pem_path`, into `out_path`
/// (written to a temp file beside it, fsynced, renamed).
pub fn pack(
    payload_path: &Path,
    version: u64,
    key_pem_path: &Path,
    out_path: &Path,
    options: &PackOptions,
) -> Result<PackedBundle, UpdateError> {
    let key = load_signing_key(key_pem_path)?;
    let image = hash_image(payload_path, options.chunk_size)?;
    let mut boot_files = Vec::new();
    for (name, path) in [
        ("vmlinuz", &options.vmlinuz),
        ("initrd.img", &options.initrd),
    ] {
        let (size, sha256, _) = hash_file(path, None)?;
        boot_files.push(BootFile {
            name: name.into(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        product: options.product.clone(),
        hardware: options.hardware.clone(),
        version,
        version_label: if options.version_label.is_empty() {
            version.to_string()
        } else {
            options.version_label.clone()
        },
        image,
        boot_files,
        revoked_keys: options.revoked_keys.clone(),
    };
    let manifest_bytes =
        format::encode_manifest(&manifest).map_err(|reason| UpdateError::Pack { reason })?;
    let payload_len = manifest.payload_len().ok_or_else(|| UpdateError::Pack {
        reason: "payload length overflows".into(),
    })?;
    let (header, sig) = sign_parts(&manifest_bytes, payload_len, &key)?;
    let header_struct = Header::decode(&header).ok_or_else(|| UpdateError::Pack {
        reason: "header encoding".into(),
    })?;
    manifest
        .check(&header_struct)
        .map_err(|reason| UpdateError::Pack { reason })?;

    let dir = crate::paths::parent_dir(out_path);
    let werr = |source| UpdateError::WriteBundle {
        path: out_path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
    {
        let f = tmp.as_file_mut();
        f.write_all(&header).map_err(werr)?;
        f.write_all(&manifest_bytes).map_err(werr)?;
        f.write_all(&sig).map_err(werr)?;
        for p in [payload_path, &options.vmlinuz, &options.initrd] {
            let mut src = File::open(p).map_err(|source| UpdateError::ReadPayload {
                path: p.to_path_buf(),
                source,
            })?;
            io::copy(&mut src, f).map_err(werr)?;
        }
        f.sync_all().map_err(werr)?;
    }
    let bundle_len = tmp.as_file().metadata().map_err(werr)?.len();
    tmp.persist(out_path).map_err(|e| werr(e.error))?;
    sync_dir(dir).map_err(werr)?;
    Ok(PackedBundle {
        manifest,
        key_id: KeyId::of(key.verifying_key().as_bytes()),
        bundle_len,
    })
}

/// The header and signature for `manifest_bytes` (any bytes: tests sign
/// garbage with it to reach the CBOR decoder).
pub fn sign_parts(
    manifest_bytes: &[u8],
    payload_len: u64,
    key: &SigningKey,
) -> Result<([u8; format::HEADER_LEN], [u8; format::SIGNATURE_LEN]), UpdateError> {
    let manifest_len = u32::try_from(manifest_bytes.len()).map_err(|_| UpdateError::Pack {
        reason: "manifest too large".into(),
    })?;
    let header = Header {
        format_version: FORMAT_VERSION,
        reserved: 0,
        manifest_len,
        key_id: KeyId::of(key.verifying_key().as_bytes()).0,
        payload_len,
    }
    .encode();
    let sig = key.sign(&format::signed_message(&header, manifest_bytes));
    Ok((header, sig.to_bytes()))
}

fn hash_image(path: &Path, chunk_size: Option<u64>) -> Result<PayloadInfo, UpdateError> {
    if let Some(c) = chunk_size
        && (!c.is_power_of_two() || !(format::MIN_CHUNK_SIZE..=format::MAX_CHUNK_SIZE).contains(&c))
    {
        return Err(UpdateError::Pack {
            reason: format!("chunk size {c} is not a power of two in 64 KiB..64 MiB"),
        });
    }
    let (size, sha256, chunks) = hash_file(path, chunk_size)?;
    Ok(PayloadInfo {
        size,
        sha256,
        chunk_size: chunk_size.unwrap_or(0),
        chunk_sha256: chunks
            .into_iter()
            .map(serde_bytes::ByteArray::new)
            .collect(),
    })
}

type Hashes = (u64, [u8; 32], Vec<[u8; 32]>);

fn hash_file(path: &Path, chunk_size: Option<u64>) -> Result<Hashes, UpdateError> {
    let rerr = |source| UpdateError::ReadPayload {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(rerr)?;
    let piece = chunk_size.unwrap_or(1024 * 1024) as usize;
    let mut buf = vec![0u8; piece];
    let mut whole = Sha256::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    loop {
        let n = read_full(&mut f, &mut buf).map_err(rerr)?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        if chunk_size.is_some() {
            chunks.push(Sha256::digest(&buf[..n]).into());
        }
        size += n as u64;
        if n < piece {
            break;
        }
    }
    Ok((size, whole.finalize().into(), chunks))
}

/// Reads until `buf` is full or EOF.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
