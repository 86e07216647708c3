//! Errors of the keystore and of the vault. Variants are named after the
//! operation that failed and carry the path or secret name involved. No
//! variant ever carries key material or a secret value.

use std::path::PathBuf;

use super::TierKind;

/// Errors from [`super::Keystore`] and the tier back-ends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The settings name a tier that does not exist.
    #[error("keystore settings: unknown tier {tier:?} (expected auto, tpm2, keychain or file)")]
    UnknownTier { tier: String },

    /// The settings name a PCR index out of range (0..=23).
    #[error("keystore settings: PCR index {index} is not between 0 and 23")]
    InvalidPcr { index: u8 },

    /// The TCTI string could not be parsed.
    #[error("TPM: TCTI {tcti:?} is not valid: {reason}")]
    TctiInvalid { tcti: String, reason: String },

    /// A TPM tier was asked for (or a sealed blob exists) but the TPM cannot be
    /// used: the TCTI does not open, startup fails or a command is refused.
    #[error("TPM present but unusable via {tcti:?} during {operation}: {reason}")]
    TpmUnusable {
        tcti: String,
        operation: String,
        reason: String,
    },

    /// The sealed blob does not belong to this TPM (different storage root key:
    /// another machine, or the owner hierarchy was cleared). The file is left as is.
    #[error(
        "sealed master key {path} was sealed by another TPM (or the TPM owner hierarchy was cleared); \
         it cannot be unsealed here. The file was left untouched: {reason}"
    )]
    SealedBlobForeign { path: PathBuf, reason: String },

    /// The sealed blob file is damaged (bad magic, lengths or checksum).
    #[error("sealed master key {path} is corrupted: {reason}")]
    SealedBlobCorrupt { path: PathBuf, reason: String },

    /// The TPM refused to unseal because the PCR policy is not satisfied (the
    /// measured boot state changed since sealing).
    #[error(
        "TPM refused to unseal {path}: PCR policy on sha256 PCRs {pcrs:?} not satisfied \
         (boot measurements changed since the master key was sealed)"
    )]
    TpmPolicyMismatch { path: PathBuf, pcrs: Vec<u8> },

    /// The OS keychain tier is not available on this platform.
    #[error("keychain tier unavailable: {reason}")]
    KeychainUnavailable { reason: String },

    /// The OS keychain returned an error.
    #[error("keychain {operation} failed: {reason}")]
    Keychain {
        operation: &'static str,
        reason: String,
    },

    /// The host key file has unsafe permissions or ownership.
    #[error("refusing host key file {path}: {reason}")]
    KeyFileInsecure { path: PathBuf, reason: String },

    /// The keystore directory has unsafe permissions or ownership.
    #[error("refusing keystore directory {path}: {reason}")]
    StateDirInsecure { path: PathBuf, reason: String },

    /// The host key file is damaged.
    #[error("host key file {path} is corrupted: {reason}")]
    KeyFileCorrupt { path: PathBuf, reason: String },

    /// A file operation failed.
    #[error("keystore {operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The on-disk state holds a master key in another tier than the one asked for.
    #[error(
        "keystore state in {path} holds a {found} master key but tier {wanted} was requested; \
         refusing to create a second master key (use migrate_to to move it)"
    )]
    TierMismatch {
        path: PathBuf,
        found: TierKind,
        wanted: TierKind,
    },

    /// Two different master keys were found (e.g. master.key and master.tpm2).
    #[error("conflicting master keys in {path}: {reason}; nothing was changed")]
    ConflictingMasters { path: PathBuf, reason: String },

    /// A migration that is not offered.
    #[error("migration from {from} to {to} is not offered")]
    MigrationUnsupported { from: TierKind, to: TierKind },

    /// The test unseal after a migration or rotation did not give the key back.
    #[error(
        "verification of the newly written master key {path} failed: {reason}; the previous key was kept"
    )]
    VerifyNewMaster { path: PathBuf, reason: String },

    /// A rotation could not be resolved: neither master opens the vault.
    #[error(
        "interrupted master rotation in {path}: neither the current nor the pending master \
         opens the vault; both files were kept"
    )]
    RotationUnresolved { path: PathBuf },

    /// Another rotation is pending (prepared, or interrupted by a crash).
    #[error(
        "a master rotation is already pending ({path}); finish it (commit_rotation) or resolve it \
         (resolve_interrupted_rotation) first"
    )]
    RotationInProgress { path: PathBuf },

    /// `commit_rotation` was given a pending master that is not the one on disk.
    #[error("rotation commit: pending master {path} does not match ({reason})")]
    RotationMismatch { path: PathBuf, reason: String },

    /// Hardening the process (no dumps, no core files) failed.
    #[error("process hardening ({operation}) failed: {reason}")]
    Harden {
        operation: &'static str,
        reason: String,
    },

    /// The OS random generator failed.
    #[error("random generator failed: {reason}")]
    Random { reason: String },
}

/// Errors from [`super::vault::Vault`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The secret name is not `[A-Za-z0-9_.-]{1,64}`.
    #[error("invalid secret name {name:?}: expected 1-64 characters from [A-Za-z0-9_.-]")]
    InvalidName { name: String },

    /// The value exceeds the size cap.
    #[error("secret {name}: value of {len} bytes exceeds the {max} byte limit")]
    ValueTooLarge {
        name: String,
        len: usize,
        max: usize,
    },

    /// No secret of that name.
    #[error("secret {name} not found")]
    NotFound { name: String },

    /// Authenticated decryption failed: tampered ciphertext, swapped row or version.
    #[error("secret {name}: decryption failed (tampered, moved or corrupted entry)")]
    Decrypt { name: String },

    /// The stored entry is malformed (bad nonce length, negative version, ...).
    #[error("secret {name}: corrupted entry: {reason}")]
    Corrupt { name: String, reason: String },

    /// The vault key does not match the key the table is encrypted under.
    #[error(
        "vault key {key_id} does not match the key the vault is encrypted under ({stored_key_id}); \
         wrong master key or interrupted rotation"
    )]
    WrongKey {
        key_id: String,
        stored_key_id: String,
    },

    /// Encryption failed (should not happen with valid inputs).
    #[error("secret {name}: encryption failed")]
    Encrypt { name: String },

    /// The version counter would overflow.
    #[error("secret {name}: version counter exhausted")]
    VersionOverflow { name: String },

    /// A database operation failed.
    #[error("vault {operation}: {source}")]
    Db {
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}
