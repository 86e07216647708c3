//! Errors of the update module: one variant per failed operation, each with the
//! path, key id or version involved, so a refusal reads as its own explanation.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while packing, verifying, applying or reporting.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("opening bundle {path}: {source}")]
    OpenBundle { path: PathBuf, source: io::Error },
    #[error("reading bundle {path}: {source}")]
    ReadBundle { path: PathBuf, source: io::Error },
    #[error("bundle {path} is truncated: {what} needs {expected} bytes, the file has {actual}")]
    Truncated {
        path: PathBuf,
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("bundle {path} has {extra} unexpected bytes after the payload")]
    TrailingData { path: PathBuf, extra: u64 },
    #[error("bundle {path} is not a CoWork update bundle (bad magic)")]
    BadMagic { path: PathBuf },
    #[error("bundle {path} has format version {version}, this appliance reads version {supported}")]
    UnsupportedFormat {
        path: PathBuf,
        version: u16,
        supported: u16,
    },
    #[error("bundle {path} has a nonzero reserved header field")]
    ReservedHeader { path: PathBuf },
    #[error("bundle {path}: manifest of {len} bytes exceeds the cap of {max} bytes")]
    ManifestTooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("bundle {path} is signed by key {key_id}, which is not in the trusted key directory")]
    UnknownKey { path: PathBuf, key_id: String },
    #[error("bundle {path} is signed by key {key_id}, which has been revoked")]
    RevokedKey { path: PathBuf, key_id: String },
    #[error(
        "bundle {path}: signature by key {key_id} does not match the manifest (tampered or wrong key)"
    )]
    BadSignature { path: PathBuf, key_id: String },
    #[error("bundle {path}: manifest is not valid CBOR for this format: {reason}")]
    DecodeManifest { path: PathBuf, reason: String },
    #[error("bundle {path}: manifest is inconsistent: {reason}")]
    InvalidManifest { path: PathBuf, reason: String },
    #[error("bundle {path}: manifest revokes its own signing key {key_id}")]
    SelfRevoking { path: PathBuf, key_id: String },
    #[error("bundle is for product {found:?}, this appliance is {expected:?}")]
    WrongProduct { expected: String, found: String },
    #[error("bundle supports hardware {supported:?}, this appliance is {hardware:?}")]
    WrongHardware {
        hardware: String,
        supported: Vec<String>,
    },
    #[error("bundle version {version} is older than the running version {current}")]
    OlderVersion { version: u64, current: u64 },
    #[error("bundle version {version} is the running version")]
    SameVersion { version: u64 },
    #[error("bundle version {version} is below the version floor {floor} (highest ever installed)")]
    BelowFloor { version: u64, floor: u64 },
    #[error("bundle {path}: payload {what} does not match its signed SHA-256")]
    PayloadHash { path: PathBuf, what: String },
    #[error("slot {path} holds {capacity} bytes, the image needs {size}")]
    SlotTooSmall {
        path: PathBuf,
        size: u64,
        capacity: u64,
    },
    #[error("writing slot {path}: {source}")]
    WriteSlot { path: PathBuf, source: io::Error },
    #[error("writing boot file {path}: {source}")]
    WriteBootFile { path: PathBuf, source: io::Error },
    #[error("writing boot entry {path}: {source}")]
    WriteEntry { path: PathBuf, source: io::Error },
    #[error("removing boot entry {path}: {source}")]
    RemoveEntry { path: PathBuf, source: io::Error },
    #[error("reading boot entries in {path}: {source}")]
    ReadEntries { path: PathBuf, source: io::Error },
    #[error("reading trusted keys in {path}: {source}")]
    ReadKeysDir { path: PathBuf, source: io::Error },
    #[error("loading trusted key {path}: {reason}")]
    LoadKey { path: PathBuf, reason: String },
    #[error("no trusted update keys in {path}")]
    NoTrustedKeys { path: PathBuf },
    #[error("loading signing key {path}: {reason}")]
    LoadSigningKey { path: PathBuf, reason: String },
    #[error("reading payload {path}: {source}")]
    ReadPayload { path: PathBuf, source: io::Error },
    #[error("packing: {reason}")]
    Pack { reason: String },
    #[error("writing bundle {path}: {source}")]
    WriteBundle { path: PathBuf, source: io::Error },
    #[error("reading state {path}: {reason}")]
    ReadState { path: PathBuf, reason: String },
    #[error("writing state {path}: {source}")]
    WriteState { path: PathBuf, source: io::Error },
    #[error("reading kernel command line {path}: {source}")]
    ReadCmdline { path: PathBuf, source: io::Error },
    #[error("kernel command line {path} names no root slot (root=PARTLABEL=root-a|root-b)")]
    UnknownRunningSlot { path: PathBuf },
    #[error(
        "the running slot {slot} is still on probation (entry {entry}); an update would overwrite the fallback slot before this one is blessed"
    )]
    RunningNotBlessed { slot: String, entry: String },
    #[error("another update holds the lock {path}")]
    Busy { path: PathBuf },
    #[error("reading image version {path}: {reason}")]
    ReadImageVersion { path: PathBuf, reason: String },
}

impl UpdateError {
    /// Short stable reason code for the audit event `update.refused{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::OpenBundle { .. } | Self::ReadBundle { .. } => "unreadable_bundle",
            Self::Truncated { .. } => "truncated",
            Self::TrailingData { .. } => "trailing_data",
            Self::BadMagic { .. } => "bad_magic",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::ReservedHeader { .. } => "bad_header",
            Self::ManifestTooLarge { .. } => "manifest_too_large",
            Self::UnknownKey { .. } => "unknown_key",
            Self::RevokedKey { .. } => "revoked_key",
            Self::BadSignature { .. } => "bad_signature",
            Self::DecodeManifest { .. } => "bad_manifest",
            Self::InvalidManifest { .. } => "invalid_manifest",
            Self::SelfRevoking { .. } => "self_revoking",
            Self::WrongProduct { .. } => "wrong_product",
            Self::WrongHardware { .. } => "wrong_hardware",
            Self::OlderVersion { .. } => "older_version",
            Self::SameVersion { .. } => "same_version",
            Self::BelowFloor { .. } => "below_floor",
            Self::PayloadHash { .. } => "payload_hash_mismatch",
            Self::SlotTooSmall { .. } => "slot_too_small",
            Self::Busy { .. } => "busy",
            Self::RunningNotBlessed { .. } => "running_slot_unblessed",
            Self::WriteSlot { .. }
            | Self::WriteBootFile { .. }
            | Self::WriteEntry { .. }
            | Self::RemoveEntry { .. }
            | Self::WriteState { .. } => "write_failed",
            Self::ReadEntries { .. }
            | Self::ReadKeysDir { .. }
            | Self::LoadKey { .. }
            | Self::NoTrustedKeys { .. }
            | Self::ReadState { .. }
            | Self::ReadCmdline { .. }
            | Self::UnknownRunningSlot { .. }
            | Self::ReadImageVersion { .. } => "local_setup",
            Self::LoadSigningKey { .. }
            | Self::ReadPayload { .. }
            | Self::Pack { .. }
            | Self::WriteBundle { .. } => "pack_failed",
        }
    }
}
