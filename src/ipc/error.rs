//! IPC errors, named after the operation that failed.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("malformed frame: {0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("encoding a message failed: {0}")]
    Encode(String),
    #[error("socket i/o failed")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("connecting to {path} failed")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} refused the connection: {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error("no answer from {path} within {after:?}")]
    Timeout { path: PathBuf, after: Duration },
    #[error("connection to {path} closed before the answer arrived")]
    Closed { path: PathBuf },
    #[error("frame error talking to {path}")]
    Frame {
        path: PathBuf,
        #[source]
        source: FrameError,
    },
}
