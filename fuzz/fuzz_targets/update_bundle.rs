//! Update bundles: header, manifest CBOR and chunk list, through
//! `update::verify` with a trusted fuzz key. The first byte picks the mode:
//! - 0: the input is the whole bundle file;
//! - 1: the input is a manifest (2-byte length, then its bytes) and a payload,
//!   signed with the trusted key, so the CBOR decoder and every check after
//!   the signature are reached;
//! - 2: the input is a list of byte edits (3-byte offset, xor) and a length change
//!   applied to a bundle that verifies.
//!
//! Asserts: never a panic; a bundle that verifies has every payload byte
//! covered by a hash the signed manifest names (recomputed here, independently
//! of the verifier), and an edited bundle that differs from the original by
//! any byte never verifies.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use cowork::update::{
    BootFile, DeviceIdentity, FORMAT_VERSION, HEADER_LEN, Manifest, PayloadInfo, SIGNATURE_LEN,
    TrustStore, decode_manifest, encode_manifest, sign_parts, verify,
};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const CHUNK: u64 = 64 * 1024;

struct World {
    _dir: tempfile::TempDir,
    trust: TrustStore,
    device: DeviceIdentity,
    bundle_path: PathBuf,
    key: SigningKey,
    good: Vec<u8>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("keys");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&keys).expect("keys dir");
        std::fs::create_dir_all(&state).expect("state dir");
        std::fs::write(
            keys.join("fuzz.pub"),
            hex::encode(key.verifying_key().as_bytes()),
        )
        .expect("write key");
        let trust = TrustStore::load(&keys, &state).expect("trust store");
        let device = DeviceIdentity {
            product: "cowork-os-appliance".into(),
            hardware: "x86_64-uefi".into(),
        };
        let good = good_bundle(&key);
        let bundle_path = dir.path().join("bundle.cwupdate");
        let w = World {
            trust,
            device,
            bundle_path,
            key,
            good,
            _dir: dir,
        };
        std::fs::write(&w.bundle_path, &w.good).expect("write bundle");
        verify(&w.bundle_path, &w.trust, &w.device, 1, 0).expect("the good bundle verifies");
        w
    })
}

/// A small bundle that verifies: a 70 000-byte image in two 64 KiB chunks.
fn good_bundle(key: &SigningKey) -> Vec<u8> {
    let image: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (vmlinuz, initrd) = (b"kernel".to_vec(), b"initrd".to_vec());
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        product: "cowork-os-appliance".into(),
        hardware: vec!["x86_64-uefi".into()],
        version: 2,
        version_label: "2".into(),
        image: PayloadInfo {
            size: image.len() as u64,
            sha256: Sha256::digest(&image).into(),
            chunk_size: CHUNK,
            chunk_sha256: image
                .chunks(CHUNK as usize)
                .map(|c| serde_bytes::ByteArray::new(Sha256::digest(c).into()))
                .collect(),
        },
        boot_files: vec![
            BootFile {
                name: "vmlinuz".into(),
                size: vmlinuz.len() as u64,
                sha256: Sha256::digest(&vmlinuz).into(),
            },
            BootFile {
                name: "initrd.img".into(),
                size: initrd.len() as u64,
                sha256: Sha256::digest(&initrd).into(),
            },
        ],
        revoked_keys: vec![],
    };
    let m = encode_manifest(&manifest).expect("encode manifest");
    let payload = [image, vmlinuz, initrd].concat();
    assemble(key, &m, &payload)
}

fn assemble(key: &SigningKey, manifest: &[u8], payload: &[u8]) -> Vec<u8> {
    let (header, sig) = sign_parts(manifest, payload.len() as u64, key).expect("sign");
    [&header[..], manifest, &sig[..], payload].concat()
}

fn run(bundle: &[u8]) -> bool {
    let w = world();
    std::fs::write(&w.bundle_path, bundle).expect("write bundle");
    match verify(&w.bundle_path, &w.trust, &w.device, 1, 0) {
        Ok(_) => {
            covered(bundle);
            true
        }
        Err(_) => false,
    }
}

/// Recomputes, without the verifier, that the signed manifest hashes every
/// payload byte and that the hashes match.
fn covered(bundle: &[u8]) {
    let mlen = u32::from_be_bytes(bundle[12..16].try_into().expect("4 bytes")) as usize;
    let manifest = decode_manifest(&bundle[HEADER_LEN..HEADER_LEN + mlen]).expect("manifest");
    let payload = &bundle[HEADER_LEN + mlen + SIGNATURE_LEN..];
    let img = &manifest.image;
    let size = usize::try_from(img.size).expect("image size");
    assert!(size <= payload.len(), "image larger than the payload");
    let image = &payload[..size];
    if img.chunk_size == 0 {
        assert_eq!(Sha256::digest(image).as_slice(), img.sha256, "image hash");
    } else {
        let chunks: Vec<&[u8]> = image.chunks(img.chunk_size as usize).collect();
        assert_eq!(chunks.len(), img.chunk_sha256.len(), "chunk count");
        for (c, want) in chunks.iter().zip(&img.chunk_sha256) {
            assert_eq!(Sha256::digest(c).as_slice(), want.as_slice(), "chunk hash");
        }
    }
    let mut at = size;
    for f in &manifest.boot_files {
        let n = usize::try_from(f.size).expect("boot file size");
        let part = &payload[at..at + n];
        assert_eq!(Sha256::digest(part).as_slice(), f.sha256, "boot file hash");
        at += n;
    }
    assert_eq!(at, payload.len(), "payload bytes outside every hash");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    match mode % 3 {
        0 => {
            run(rest);
        }
        1 => {
            if rest.len() < 2 {
                return;
            }
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            let (manifest, payload) = rest[2..].split_at(n);
            run(&assemble(&w.key, manifest, payload));
        }
        _ => {
            let mut b = w.good.clone();
            let (edits, len_change) = match rest.split_last() {
                Some((&last, edits)) => (edits, last),
                None => (rest, 0),
            };
            for e in edits.chunks_exact(4) {
                let at = u32::from_be_bytes([0, e[0], e[1], e[2]]) as usize % b.len();
                b[at] ^= e[3];
            }
            match len_change {
                0..=3 => {}
                4..=127 => b.truncate(b.len() - usize::from(len_change)),
                _ => b.extend(std::iter::repeat_n(0u8, usize::from(len_change - 127))),
            }
            let verified = run(&b);
            assert!(!verified || b == w.good, "an edited bundle verifies");
        }
    }
});
