//! Private files in the state directory: 0600, written atomically
//! (temporary file + fsync + rename + fsync of the directory).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::AdminError;

/// Create `dir` (0700) if it does not exist.
pub fn ensure_dir(dir: &Path) -> Result<(), AdminError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| AdminError::CreateStateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Write `bytes` to `path` with mode 0600, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AdminError> {
    let err = |source| AdminError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    let dir = crate::paths::parent_dir(path);
    ensure_dir(dir)?;
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp: PathBuf = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Read `path`; `Ok(None)` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, AdminError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AdminError::ReadFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Remove `path` if present.
pub fn remove_if_present(path: &Path) -> Result<(), AdminError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AdminError::WriteFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}
