//! Errors of the schema runner: named after the failed operation, carrying
//! the file and versions involved.

use std::path::PathBuf;

/// Why a file's schema could not be read or brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file was written by a newer image: refused, left untouched.
    #[error(
        "{name} has schema {found}; this image knows up to {known}: the appliance was rolled back across an incompatible update"
    )]
    TooNew {
        name: String,
        found: u32,
        known: u32,
    },
    #[error("{name}: reading the schema version of {path}: {source}")]
    ReadVersion {
        name: &'static str,
        path: PathBuf,
        source: Box<rusqlite::Error>,
    },
    #[error("{name}: the schema version recorded in {path} is {value:?}, not a number")]
    BadVersion {
        name: &'static str,
        path: PathBuf,
        value: String,
    },
    #[error("{name}: copying {path} before migrating it to {copy}: {source}")]
    Copy {
        name: &'static str,
        path: PathBuf,
        copy: PathBuf,
        source: Box<rusqlite::Error>,
    },
    #[error("{name}: creating the copy {path}: {source}")]
    CreateCopy {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name}: removing the old copy {path}: {source}")]
    RemoveCopy {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name}: migrating {path} from schema {from} to {to}: {source}")]
    Step {
        name: &'static str,
        path: PathBuf,
        from: u32,
        to: u32,
        source: Box<rusqlite::Error>,
    },
}

impl SchemaError {
    /// The refusal when this error (anywhere in `e`'s chain) is a file from
    /// an incompatible newer image: its sentence (`to_string`) is what the
    /// owner reports instead of starting.
    pub fn too_new_in(e: &anyhow::Error) -> Option<&SchemaError> {
        e.chain()
            .find_map(|c| c.downcast_ref::<SchemaError>())
            .filter(|s| matches!(s, SchemaError::TooNew { .. }))
    }

    /// The version the refused file has (for `coworkctl status`).
    pub fn found_version(&self) -> Option<u32> {
        match self {
            SchemaError::TooNew { found, .. } => Some(*found),
            _ => None,
        }
    }
}
