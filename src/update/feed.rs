//! The signed update feed (docs/update-format.md, "The update feed"): what a
//! release server offers, so the appliance can check for updates itself.
//!
//! `feed.json` is an envelope, `{"signed": TEXT, "signatures": [...]}`, where
//! TEXT is the feed's JSON exactly as signed (no canonical form to get wrong)
//! and each signature is Ed25519 over [`FEED_SIGNING_DOMAIN`] || TEXT by a key
//! in the appliance's update key directory. After TUF's lessons, each field
//! defeats an attack:
//! - the signature by a trusted, unrevoked key: arbitrary metadata from
//!   whoever serves or intercepts the feed;
//! - `expires_at`: a freeze (an old feed served forever so the appliance
//!   never learns of a fix);
//! - `feed_version`, never below the highest seen (kept in the state
//!   directory): a rollback to an older, validly signed feed;
//! - `product` and each bundle's `hardware`: an image for another device;
//! - each bundle's `size`: endless data (the download stops there) and
//!   `sha256`: a mix-and-match of another validly signed bundle; the bundle
//!   itself is then verified exactly as a bundle brought by hand;
//! - the feed's own size cap ([`MAX_FEED_BYTES`]): endless metadata.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::format::{self, HEADER_LEN, Header, KeyId, MAX_MANIFEST_LEN, Manifest};
use super::state::write_atomic;
use super::trust::{KeyStatus, TrustStore};
use super::verify::DeviceIdentity;

/// Domain separation: a feed signature can never pass for a bundle's.
pub const FEED_SIGNING_DOMAIN: &[u8] = b"CoWork-OS update feed v1\0";
/// The feed's file name next to the bundles.
pub const FEED_FILE: &str = "feed.json";
/// The feed format this appliance reads.
pub const FEED_FORMAT: u32 = 1;
/// The most bytes of `feed.json` read.
pub const MAX_FEED_BYTES: u64 = 1024 * 1024;
/// The most bundles one feed lists.
pub const MAX_FEED_BUNDLES: usize = 256;
/// Where the appliance keeps the highest feed version seen and the last check.
pub const FEED_STATE_FILE: &str = "feed-state.json";

/// `feed.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedFeed {
    /// The [`Feed`] as JSON text, exactly as signed.
    pub signed: String,
    pub signatures: Vec<FeedSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSignature {
    /// [`KeyId`] in hex.
    pub key_id: String,
    /// 64 bytes in hex.
    pub signature: String,
}

/// What a release server offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    pub format: u32,
    /// The product every bundle is for.
    pub product: String,
    /// Never lower than a feed the appliance has seen.
    pub feed_version: u64,
    /// Unix seconds.
    pub published_at: u64,
    /// Unix seconds: after it the feed is refused.
    pub expires_at: u64,
    pub bundles: Vec<FeedBundle>,
}

/// One bundle on offer, beside `feed.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedBundle {
    pub version: u64,
    /// Shown, never compared.
    pub version_label: String,
    /// Hardware ids the image runs on.
    pub hardware: Vec<String>,
    /// A plain file name beside `feed.json`.
    pub file: String,
    pub size: u64,
    /// SHA-256 of the whole bundle file, hex.
    pub sha256: String,
}

/// Why a feed is refused: one sentence each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the feed is larger than {MAX_FEED_BYTES} bytes")]
    TooLarge,
    #[error("the feed is not a signed feed: {0}")]
    Malformed(String),
    #[error("the feed is signed by no trusted key (keys: {0})")]
    Unsigned(String),
    #[error("the feed is signed by key {0}, which has been revoked")]
    RevokedKey(String),
    #[error("the feed has format {0}; this appliance reads format {FEED_FORMAT}")]
    UnsupportedFormat(u32),
    #[error("the feed is for product {found:?}, this appliance is {expected:?}")]
    WrongProduct { found: String, expected: String },
    #[error("the feed expired at {expired} (now {now}): the server offers a stale feed")]
    Expired { expired: String, now: String },
    #[error(
        "the feed has version {found}, older than the version {seen} already seen: a replayed feed"
    )]
    Replayed { found: u64, seen: u64 },
    #[error("the feed lists a bad bundle: {0}")]
    BadBundle(String),
}

/// Reads and checks `bytes` as a feed for `device`, at unix time `now`,
/// having seen feed versions up to `seen`. Nothing in it is trusted before
/// its signature is checked.
pub fn verify_feed(
    bytes: &[u8],
    trust: &TrustStore,
    device: &DeviceIdentity,
    now: u64,
    seen: u64,
) -> Result<Feed, FeedError> {
    if bytes.len() as u64 > MAX_FEED_BYTES {
        return Err(FeedError::TooLarge);
    }
    let envelope: SignedFeed =
        serde_json::from_slice(bytes).map_err(|e| FeedError::Malformed(e.to_string()))?;
    if envelope.signatures.len() > 16 {
        return Err(FeedError::Malformed("more than 16 signatures".into()));
    }
    let mut message = FEED_SIGNING_DOMAIN.to_vec();
    message.extend_from_slice(envelope.signed.as_bytes());
    let mut tried = Vec::new();
    let mut good = false;
    for s in &envelope.signatures {
        let Some(id) = KeyId::parse(&s.key_id) else {
            tried.push(format!("{:?} (not a key id)", shown(&s.key_id)));
            continue;
        };
        match trust.status(&id) {
            KeyStatus::Revoked => return Err(FeedError::RevokedKey(id.to_string())),
            KeyStatus::Unknown => tried.push(format!("{id} (unknown)")),
            KeyStatus::Trusted(key) => {
                let sig = hex::decode(&s.signature)
                    .ok()
                    .and_then(|b| <[u8; 64]>::try_from(b).ok())
                    .map(|b| Signature::from_bytes(&b));
                match sig {
                    Some(sig) if key.verify(&message, &sig).is_ok() => good = true,
                    _ => tried.push(format!("{id} (signature does not match)")),
                }
            }
        }
    }
    if !good {
        let keys = if tried.is_empty() {
            "none".to_string()
        } else {
            tried.join(", ")
        };
        return Err(FeedError::Unsigned(keys));
    }
    let feed: Feed = serde_json::from_str(&envelope.signed)
        .map_err(|e| FeedError::Malformed(format!("the signed part: {e}")))?;
    if feed.format != FEED_FORMAT {
        return Err(FeedError::UnsupportedFormat(feed.format));
    }
    if feed.product != device.product {
        return Err(FeedError::WrongProduct {
            found: shown(&feed.product),
            expected: device.product.clone(),
        });
    }
    if feed.expires_at <= now {
        return Err(FeedError::Expired {
            expired: rfc3339(feed.expires_at),
            now: rfc3339(now),
        });
    }
    if feed.feed_version < seen {
        return Err(FeedError::Replayed {
            found: feed.feed_version,
            seen,
        });
    }
    if feed.bundles.len() > MAX_FEED_BUNDLES {
        return Err(FeedError::BadBundle(format!(
            "{} bundles, more than {MAX_FEED_BUNDLES}",
            feed.bundles.len()
        )));
    }
    for b in &feed.bundles {
        check_bundle_entry(b).map_err(FeedError::BadBundle)?;
    }
    Ok(feed)
}

fn check_bundle_entry(b: &FeedBundle) -> Result<(), String> {
    if !is_plain_file_name(&b.file) {
        return Err(format!("{:?} is not a plain file name", shown(&b.file)));
    }
    if b.size < HEADER_LEN as u64 {
        return Err(format!(
            "{}: size {} is too small for a bundle",
            b.file, b.size
        ));
    }
    if b.sha256.len() != 64 || hex::decode(&b.sha256).is_err() {
        return Err(format!("{}: sha256 is not 64 hex digits", b.file));
    }
    if b.version == 0 {
        return Err(format!("{}: version 0", b.file));
    }
    Ok(())
}

/// A file name a URL can be made of safely: `[A-Za-z0-9._-]`, not starting
/// with a dot, at most 128 characters.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// At most 80 characters of text from outside, for an error message.
fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

pub fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("unix time {unix}"))
}

impl Feed {
    /// The newest bundle this device runs.
    pub fn newest_for(&self, device: &DeviceIdentity) -> Option<&FeedBundle> {
        self.bundles
            .iter()
            .filter(|b| b.hardware.contains(&device.hardware))
            .max_by_key(|b| b.version)
    }
}

/// What the appliance keeps of its checks (`<state_dir>/feed-state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedState {
    /// The highest `feed_version` accepted: an older feed is a replay.
    pub seen_feed_version: u64,
    pub last_check: Option<FeedCheck>,
}

/// One check's outcome, as `coworkctl update check --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCheck {
    /// Unix seconds.
    pub checked_at: u64,
    pub running_version: u64,
    /// The newest version the feed offers this device (`None`: none, or the
    /// check failed).
    pub newest_version: Option<u64>,
    pub newest_label: Option<String>,
    /// Newer than the running version and the floor: `update apply` takes it.
    pub installable: bool,
    /// Where the newest bundle is, and what it must be.
    pub bundle_url: Option<String>,
    pub bundle_size: Option<u64>,
    pub bundle_sha256: Option<String>,
    pub feed_version: Option<u64>,
    pub expires_at: Option<u64>,
    /// Why the check failed, in one sentence (`None`: it worked).
    pub error: Option<String>,
}

impl FeedState {
    /// The state in `state_dir`; a missing file is a fresh appliance, an
    /// unreadable one an error (a replay guard must not silently reset).
    pub fn load(state_dir: &Path) -> Result<FeedState, String> {
        let path = state_dir.join(FEED_STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: {e} (remove it to start over)", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FeedState::default()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), String> {
        let path = state_dir.join(FEED_STATE_FILE);
        std::fs::create_dir_all(state_dir)
            .map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        write_atomic(&path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

// ---------------------------------------------------------------------------
// Publishing (the release side: `coworkctl update publish`).

/// What `publish` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub feed_path: PathBuf,
    pub feed: Feed,
}

/// Writes `out/feed.json` offering `bundles` (copied into `out` when they are
/// elsewhere), signed by `key`, expiring `expires_days` after `now`. The feed
/// version is `now`, or one above the version already in `out` if that is
/// higher (a clock set back must not make a replay look new).
pub fn publish(
    out: &Path,
    key: &SigningKey,
    bundles: &[PathBuf],
    expires_days: u64,
    now: u64,
) -> Result<Published, String> {
    if bundles.is_empty() {
        return Err("no bundle given".into());
    }
    if !(1..=366).contains(&expires_days) {
        return Err(format!("--expires-days {expires_days}: must be 1..=366"));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut entries: Vec<FeedBundle> = Vec::new();
    let mut product: Option<String> = None;
    for path in bundles {
        let manifest = read_manifest(path)?;
        match &product {
            Some(p) if *p != manifest.product => {
                return Err(format!(
                    "{} is for product {:?}, the others for {p:?}: one feed per product",
                    path.display(),
                    manifest.product
                ));
            }
            _ => product = Some(manifest.product.clone()),
        }
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| is_plain_file_name(n) && *n != FEED_FILE)
            .ok_or_else(|| {
                format!(
                    "{}: name the bundle [A-Za-z0-9._-] (it becomes part of a URL)",
                    path.display()
                )
            })?
            .to_string();
        if entries.iter().any(|e| e.file == file) {
            return Err(format!("two bundles are named {file}"));
        }
        let target = out.join(&file);
        let same = std::fs::canonicalize(path).ok() == std::fs::canonicalize(&target).ok();
        if !same {
            std::fs::copy(path, &target)
                .map_err(|e| format!("copying {} into {}: {e}", path.display(), out.display()))?;
        }
        let (size, sha256) = hash(&target)?;
        entries.push(FeedBundle {
            version: manifest.version,
            version_label: manifest.version_label.clone(),
            hardware: manifest.hardware.clone(),
            file,
            size,
            sha256,
        });
    }
    let previous = std::fs::read(out.join(FEED_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<SignedFeed>(&b).ok())
        .and_then(|e| serde_json::from_str::<Feed>(&e.signed).ok())
        .map(|f| f.feed_version);
    let feed = Feed {
        format: FEED_FORMAT,
        product: product.unwrap_or_default(),
        feed_version: previous.map_or(now, |p| now.max(p.saturating_add(1))),
        published_at: now,
        expires_at: now.saturating_add(expires_days * 86_400),
        bundles: entries,
    };
    let signed = serde_json::to_string_pretty(&feed).map_err(|e| e.to_string())?;
    let envelope = sign(&signed, key);
    let bytes = serde_json::to_vec_pretty(&envelope).map_err(|e| e.to_string())?;
    let feed_path = out.join(FEED_FILE);
    write_atomic(&feed_path, &bytes)
        .map_err(|e| format!("writing {}: {e}", feed_path.display()))?;
    Ok(Published { feed_path, feed })
}

/// The envelope of `signed` with `key`'s signature.
pub fn sign(signed: &str, key: &SigningKey) -> SignedFeed {
    let mut message = FEED_SIGNING_DOMAIN.to_vec();
    message.extend_from_slice(signed.as_bytes());
    SignedFeed {
        signed: signed.to_string(),
        signatures: vec![FeedSignature {
            key_id: KeyId::of(key.verifying_key().as_bytes()).to_string(),
            signature: hex::encode(key.sign(&message).to_bytes()),
        }],
    }
}

/// The manifest of a bundle the publisher has at hand (its signature is
/// the appliance's to check; here only what the feed lists is read).
fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut raw = [0u8; HEADER_LEN];
    f.read_exact(&mut raw)
        .map_err(|e| format!("{}: reading the header: {e}", path.display()))?;
    let header = Header::decode(&raw)
        .ok_or_else(|| format!("{} is not a CoWork update bundle", path.display()))?;
    let len = u64::from(header.manifest_len);
    if len > MAX_MANIFEST_LEN {
        return Err(format!("{}: manifest too large", path.display()));
    }
    let mut manifest = vec![0u8; len as usize];
    f.read_exact(&mut manifest)
        .map_err(|e| format!("{}: reading the manifest: {e}", path.display()))?;
    format::decode_manifest(&manifest).map_err(|e| format!("{}: {e}", path.display()))
}

/// Size and SHA-256 (hex) of a file.
pub fn hash(path: &Path) -> Result<(u64, String), String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn trust(keys: &[&SigningKey]) -> (tempfile::TempDir, TrustStore) {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir(&keys_dir).unwrap();
        for (i, k) in keys.iter().enumerate() {
            std::fs::write(
                keys_dir.join(format!("k{i}.pub")),
                hex::encode(k.verifying_key().as_bytes()),
            )
            .unwrap();
        }
        let store = TrustStore::load(&keys_dir, dir.path()).unwrap();
        (dir, store)
    }

    fn device() -> DeviceIdentity {
        DeviceIdentity {
            product: "cowork-os-appliance".into(),
            hardware: "x86_64-uefi".into(),
        }
    }

    fn feed() -> Feed {
        Feed {
            format: FEED_FORMAT,
            product: "cowork-os-appliance".into(),
            feed_version: 10,
            published_at: NOW - 60,
            expires_at: NOW + 86_400,
            bundles: vec![
                FeedBundle {
                    version: 7,
                    version_label: "2026.12.1".into(),
                    hardware: vec!["x86_64-uefi".into()],
                    file: "cowork-7.cwu".into(),
                    size: 4096,
                    sha256: "ab".repeat(32),
                },
                FeedBundle {
                    version: 9,
                    version_label: "arm".into(),
                    hardware: vec!["aarch64".into()],
                    file: "cowork-9-arm.cwu".into(),
                    size: 4096,
                    sha256: "cd".repeat(32),
                },
            ],
        }
    }

    fn signed(f: &Feed, k: &SigningKey) -> Vec<u8> {
        serde_json::to_vec(&sign(&serde_json::to_string(f).unwrap(), k)).unwrap()
    }

    #[test]
    fn a_signed_current_feed_is_read_and_offers_this_hardwares_newest() {
        let k = key(1);
        let (_d, t) = trust(&[&k]);
        let f = verify_feed(&signed(&feed(), &k), &t, &device(), NOW, 10).unwrap();
        assert_eq!(f.newest_for(&device()).unwrap().version, 7);
    }

    #[test]
    fn every_attack_is_refused_with_its_reason() {
        let k = key(1);
        let stranger = key(2);
        let (_d, t) = trust(&[&k]);
        let check = |bytes: &[u8], seen| verify_feed(bytes, &t, &device(), NOW, seen);
        // Signed by a key the appliance does not trust.
        assert!(matches!(
            check(&signed(&feed(), &stranger), 0),
            Err(FeedError::Unsigned(_))
        ));
        // Expired: a freeze.
        let mut f = feed();
        f.expires_at = NOW;
        assert!(matches!(
            check(&signed(&f, &k), 0),
            Err(FeedError::Expired { .. })
        ));
        // Older than one already seen: a rollback.
        assert_eq!(
            check(&signed(&feed(), &k), 11),
            Err(FeedError::Replayed {
                found: 10,
                seen: 11
            })
        );
        // Another product.
        let mut f = feed();
        f.product = "toaster".into();
        assert!(matches!(
            check(&signed(&f, &k), 0),
            Err(FeedError::WrongProduct { .. })
        ));
        // The signed text changed after signing.
        let mut env: SignedFeed = serde_json::from_slice(&signed(&feed(), &k)).unwrap();
        env.signed = env
            .signed
            .replace("\"feed_version\":10", "\"feed_version\":99");
        let bytes = serde_json::to_vec(&env).unwrap();
        assert!(matches!(check(&bytes, 0), Err(FeedError::Unsigned(_))));
        // Too large.
        let big = vec![b' '; MAX_FEED_BYTES as usize + 1];
        assert_eq!(check(&big, 0), Err(FeedError::TooLarge));
        // A path in a file name.
        for name in ["../etc/passwd", "a/b.cwu", ".hidden", "", "x y"] {
            let mut f = feed();
            f.bundles[0].file = name.into();
            assert!(
                matches!(check(&signed(&f, &k), 0), Err(FeedError::BadBundle(_))),
                "{name:?}"
            );
        }
        let mut f = feed();
        f.bundles[0].sha256 = "xyz".into();
        assert!(matches!(
            check(&signed(&f, &k), 0),
            Err(FeedError::BadBundle(_))
        ));
    }

    #[test]
    fn a_revoked_key_is_refused_even_beside_a_good_signature() {
        let k = key(1);
        let old = key(3);
        let (d, _) = trust(&[&k, &old]);
        super::super::trust::persist_revocations(
            d.path(),
            &[KeyId::of(old.verifying_key().as_bytes())],
        )
        .unwrap();
        let t = TrustStore::load(&d.path().join("keys"), d.path()).unwrap();
        let text = serde_json::to_string(&feed()).unwrap();
        let mut env = sign(&text, &k);
        env.signatures.push(sign(&text, &old).signatures.remove(0));
        let bytes = serde_json::to_vec(&env).unwrap();
        assert!(matches!(
            verify_feed(&bytes, &t, &device(), NOW, 0),
            Err(FeedError::RevokedKey(_))
        ));
    }

    #[test]
    fn hostile_envelopes_are_clear_errors() {
        let k = key(1);
        let (_d, t) = trust(&[&k]);
        let cases: &[&[u8]] = &[
            b"",
            b"null",
            b"{}",
            b"[1,2]",
            b"{\"signed\": 5, \"signatures\": []}",
            b"{\"signed\": \"{}\", \"signatures\": [], \"extra\": 1}",
            b"{\"signed\": \"{}\", \"signatures\": [{\"key_id\": \"zz\", \"signature\": \"00\"}]}",
            b"\xff\xfe",
        ];
        for bytes in cases {
            let r = verify_feed(bytes, &t, &device(), NOW, 0);
            assert!(
                matches!(r, Err(FeedError::Malformed(_) | FeedError::Unsigned(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Signed, but the signed part is not a feed.
        let bytes = serde_json::to_vec(&sign("{\"format\": 1}", &k)).unwrap();
        assert!(matches!(
            verify_feed(&bytes, &t, &device(), NOW, 0),
            Err(FeedError::Malformed(_))
        ));
        let many = SignedFeed {
            signed: "{}".into(),
            signatures: vec![
                FeedSignature {
                    key_id: "00".repeat(8),
                    signature: "00".repeat(64)
                };
                17
            ],
        };
        assert!(matches!(
            verify_feed(&serde_json::to_vec(&many).unwrap(), &t, &device(), NOW, 0),
            Err(FeedError::Malformed(_))
        ));
    }

    #[test]
    fn the_state_file_round_trips_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(FeedState::load(dir.path()).unwrap(), FeedState::default());
        let s = FeedState {
            seen_feed_version: 42,
            last_check: None,
        };
        s.save(dir.path()).unwrap();
        assert_eq!(FeedState::load(dir.path()).unwrap(), s);
        std::fs::write(dir.path().join(FEED_STATE_FILE), b"{not json").unwrap();
        assert!(
            FeedState::load(dir.path())
                .unwrap_err()
                .contains("remove it")
        );
    }
}
