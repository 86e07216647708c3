//! Errors of the audit module. Variants are named after the operation that
//! failed and carry the path or field involved.

use std::path::PathBuf;

/// Everything that can go wrong in the audit module.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A `NewEntry` field failed validation (nothing was written).
    #[error("invalid audit entry: field `{field}`: {reason}")]
    ValidateEntry { field: &'static str, reason: String },

    /// The payload is larger than the cap after redaction (nothing was written).
    #[error("audit payload too large: {size} bytes after redaction (max {max})")]
    ValidatePayloadSize { size: usize, max: usize },

    /// Creating the audit directory or the database file failed.
    #[error("cannot create {path}: {source}")]
    CreateFile {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Opening or initialising the database failed.
    #[error("cannot open audit database {path}: {source}")]
    OpenDb {
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// `audit.db`'s schema: from a newer image, or a step that failed.
    #[error("opening audit.db")]
    Schema(#[from] crate::schema::SchemaError),

    /// The database on disk is older than the anchor says (rollback or cut
    /// tail): the writer refuses to append on top of it.
    #[error(
        "audit database {path} ends at seq {db_seq} but the anchor says seq {anchor_seq} was committed: \
         tail cut or rolled back; refusing to append (run verify, move the db aside)"
    )]
    OpenRolledBack {
        path: PathBuf,
        db_seq: u64,
        anchor_seq: u64,
    },

    /// The database has entries but its anchor file is missing or belongs to another db.
    #[error("audit anchor {path} does not match the database: {reason}; refusing to append")]
    OpenAnchorMismatch { path: PathBuf, reason: String },

    /// A write transaction (append batch, checkpoint, prune) failed and was rolled back.
    #[error("audit {op} failed on {path}: {source}")]
    Write {
        op: &'static str,
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// The batch this append was part of failed to commit (nothing of it is
    /// acknowledged; the reason is the store error).
    #[error("audit batch commit failed: {reason}")]
    CommitBatch { reason: String },

    /// A read query failed.
    #[error("audit query on {path} failed: {source}")]
    Query {
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// Writing the anchor file failed (the batch is committed but not anchored).
    #[error("cannot write audit anchor {path}: {source}")]
    WriteAnchor {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Reading the anchor file failed.
    #[error("cannot read audit anchor {path}: {source}")]
    ReadAnchor {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The anchor file is not in the expected format.
    #[error("malformed audit anchor {path}: {reason}")]
    ParseAnchor { path: PathBuf, reason: String },

    /// Loading or creating the checkpoint key failed.
    #[error("cannot load checkpoint key {path}: {source}")]
    LoadKey {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The checkpoint key file is readable by group or others, or not ours.
    #[error(
        "checkpoint key {path} has unsafe permissions ({reason}); expected 0600 owned by the audit user"
    )]
    KeyPermissions { path: PathBuf, reason: String },

    /// The checkpoint key file has the wrong length.
    #[error("checkpoint key {path} is {len} bytes, expected 32")]
    KeyLength { path: PathBuf, len: u64 },

    /// The file given to verify is not an audit database (or not SQLite).
    #[error("{path} is not an audit database: {reason}")]
    NotAuditDb { path: PathBuf, reason: String },

    /// Verification could not read the database.
    #[error("cannot read audit database {path} for verification: {source}")]
    VerifyRead {
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// Making the private snapshot copy for verification failed.
    #[error("cannot snapshot {path} for verification: {source}")]
    VerifySnapshot {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Writing the JSON-lines export failed.
    #[error("audit export failed: {source}")]
    Export { source: std::io::Error },

    /// Formatting or reading the clock failed.
    #[error("audit clock error: {reason}")]
    Clock { reason: String },

    /// The writer thread is gone (shut down or crashed).
    #[error("audit writer is not running")]
    WriterStopped,

    /// Starting the writer thread failed.
    #[error("cannot start audit writer thread: {source}")]
    SpawnWriter { source: std::io::Error },
}

/// Result alias of the audit module.
pub type Result<T> = std::result::Result<T, AuditError>;
