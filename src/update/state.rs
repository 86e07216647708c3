//! Persistent update state in the state directory (on the data partition):
//! the version floor, the revoked key ids and the last attempt. Every file is
//! replaced atomically (temp file + fsync + rename + fsync of the directory).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::UpdateError;
use super::slots::Slot;

/// Highest image version ever installed (decimal, one line).
pub const FLOOR_FILE: &str = "version-floor";
/// Revoked key ids, one per line.
pub const REVOKED_KEYS_FILE: &str = "revoked-keys";
/// The last attempt (JSON).
pub const LAST_ATTEMPT_FILE: &str = "last-attempt.json";

/// Writes `bytes` to `path` so that a reader (or a power cut) sees either the
/// old content or the new one, never a mix. The temp file is `.<name>.tmp`:
/// it does not end in `.conf`, so the boot loader never reads it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path without a directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path without a file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// fsync of a directory, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The stored version floor; 0 when nothing was ever installed.
pub fn read_floor(state_dir: &Path) -> Result<u64, UpdateError> {
    let path = state_dir.join(FLOOR_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().parse().map_err(|_| UpdateError::ReadState {
            path,
            reason: format!("not a version number: {:?}", t.trim()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(UpdateError::ReadState {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Raises the floor to `version` (never lowers it).
pub fn raise_floor(state_dir: &Path, version: u64) -> Result<(), UpdateError> {
    let current = read_floor(state_dir)?;
    if version <= current {
        return Ok(());
    }
    let path = state_dir.join(FLOOR_FILE);
    write_atomic(&path, format!("{version}\n").as_bytes())
        .map_err(|source| UpdateError::WriteState { path, source })
}

/// How the last attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttemptResult {
    /// Started and not finished: interrupted (power cut, kill) if seen later.
    InProgress,
    /// The slot was written, matched its hashes and got its `+N` entry.
    Applied,
    /// Verification refused the bundle.
    Refused { reason: String, detail: String },
    /// Writing failed after verification (I/O, hash mismatch while streaming).
    Failed { reason: String, detail: String },
}

/// The last update attempt, for `update status` and the boot check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastAttempt {
    pub bundle: String,
    /// 0 when the bundle was refused before its manifest could be read.
    pub version: u64,
    pub version_label: String,
    pub target: Slot,
    pub started_unix: u64,
    pub finished_unix: Option<u64>,
    pub result: AttemptResult,
    /// Set once update.boot_marked or update.rolled_back has been emitted.
    #[serde(default)]
    pub outcome_reported: bool,
    /// The file's schema version ([`LAST_ATTEMPT_SCHEMA`]); missing = 1, the
    /// files written before it existed. Images before it ignore the field.
    #[serde(default = "schema_v1")]
    pub schema: u32,
}

/// The newest `last-attempt.json` schema this image writes and reads.
pub const LAST_ATTEMPT_SCHEMA: u32 = 1;

fn schema_v1() -> u32 {
    1
}

/// The update state's versioned files and their schema versions, for
/// `coworkctl status` (only those that exist and can be read).
pub fn stores(state_dir: &Path) -> Vec<crate::ipc::StoreStatus> {
    match read_last_attempt(state_dir) {
        Ok(Some(a)) => vec![crate::ipc::StoreStatus {
            name: LAST_ATTEMPT_FILE.to_string(),
            file: state_dir.join(LAST_ATTEMPT_FILE).display().to_string(),
            schema: a.schema,
        }],
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "update state not listed");
            Vec::new()
        }
    }
}

pub fn read_last_attempt(state_dir: &Path) -> Result<Option<LastAttempt>, UpdateError> {
    let path = state_dir.join(LAST_ATTEMPT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            // The version first: a newer file may not parse as this image's type.
            let found = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("schema").and_then(serde_json::Value::as_u64))
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX));
            crate::schema::check_file_version(LAST_ATTEMPT_FILE, found, LAST_ATTEMPT_SCHEMA)
                .map_err(|e| UpdateError::ReadState {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| UpdateError::ReadState {
                    path,
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(UpdateError::ReadState {
            path,
            reason: e.to_string(),
        }),
    }
}

pub fn write_last_attempt(state_dir: &Path, attempt: &LastAttempt) -> Result<(), UpdateError> {
    let path = state_dir.join(LAST_ATTEMPT_FILE);
    let bytes = serde_json::to_vec_pretty(attempt).map_err(|e| UpdateError::WriteState {
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    write_atomic(&path, &bytes).map_err(|source| UpdateError::WriteState { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_attempt_from_a_newer_image_is_refused_older_ones_read() {
        let d = tempfile::tempdir().unwrap();
        // Written before the field existed: schema 1.
        std::fs::write(
            d.path().join(LAST_ATTEMPT_FILE),
            br#"{"bundle":"/b","version":5,"version_label":"5","target":"b","started_unix":1,"finished_unix":2,"result":{"kind":"applied"},"outcome_reported":true}"#,
        )
        .unwrap();
        let a = read_last_attempt(d.path()).unwrap().unwrap();
        assert_eq!(a.schema, 1);
        assert_eq!(stores(d.path())[0].schema, 1);
        write_last_attempt(d.path(), &a).unwrap();
        // A newer image's file, whatever its shape.
        std::fs::write(
            d.path().join(LAST_ATTEMPT_FILE),
            br#"{"schema":3,"attempts":[]}"#,
        )
        .unwrap();
        let e = read_last_attempt(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("last-attempt.json has schema 3; this image knows up to 1: the appliance was rolled back across an incompatible update"),
            "{e}"
        );
        assert!(stores(d.path()).is_empty());
    }

    #[test]
    fn floor_only_rises() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_floor(d.path()).unwrap(), 0);
        raise_floor(d.path(), 5).unwrap();
        raise_floor(d.path(), 3).unwrap();
        assert_eq!(read_floor(d.path()).unwrap(), 5);
        std::fs::write(d.path().join(FLOOR_FILE), "junk").unwrap();
        assert!(read_floor(d.path()).is_err());
    }

    #[test]
    fn atomic_write_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.conf");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
