//! Small file helpers for key files: private directory check, strict reads
//! (owner + mode), no-clobber atomic creation, atomic replacement and
//! overwrite-then-unlink removal.
//!
//! Overwriting before unlinking is best effort: on copy-on-write file systems
//! and flash storage the old blocks may survive. The TPM tier exists for that.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use zeroize::Zeroizing;

use super::error::KeystoreError;

/// Largest key-store file we read (sealed blobs are well under 1 KiB).
const MAX_FILE: u64 = 64 * 1024;

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError {
    let path = path.to_path_buf();
    move |source| KeystoreError::Io {
        operation,
        path,
        source,
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Creates `dir` (mode 0700) if missing and checks that it is a directory
/// owned by the current user and not writable by group or others.
pub(super) fn ensure_private_dir(dir: &Path) -> Result<(), KeystoreError> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io("create directory", dir))?;
        }
        Err(e) => return Err(io("inspect directory", dir)(e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(io("inspect directory", dir))?;
    let insecure = |reason: String| KeystoreError::StateDirInsecure {
        path: dir.to_path_buf(),
        reason,
    };
    if !meta.file_type().is_dir() {
        return Err(insecure("not a directory (symlinks are refused)".into()));
    }
    if meta.uid() != euid() {
        return Err(insecure(format!(
            "owned by uid {}, expected uid {}",
            meta.uid(),
            euid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(insecure(format!(
            "mode {:04o} is writable by group or others",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Whether `path` exists (without following a final symlink).
pub(super) fn exists(path: &Path) -> Result<bool, KeystoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("inspect", path)(e)),
    }
}

/// Reads a secret file: refused unless it is a regular file owned by the
/// current user with no group/other permission bits (like systemd's
/// credential.secret). Returns `None` if it does not exist.
pub(super) fn read_secret_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeystoreError> {
    read_checked(path, true)
}

/// Reads a non-secret key-store file (a sealed blob) with the same
/// regular-file/owner check but no mode check. `None` if missing.
pub(super) fn read_blob_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeystoreError> {
    read_checked(path, false)
}

fn read_checked(
    path: &Path,
    strict_mode: bool,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeystoreError> {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", path)(e)),
    };
    let meta = file.metadata().map_err(io("inspect", path))?;
    let insecure = |reason: String| KeystoreError::KeyFileInsecure {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.file_type().is_file() {
        return Err(insecure("not a regular file".into()));
    }
    if meta.uid() != euid() {
        return Err(insecure(format!(
            "owned by uid {}, expected uid {} (the keystore's user)",
            meta.uid(),
            euid()
        )));
    }
    if strict_mode && meta.mode() & 0o077 != 0 {
        return Err(insecure(format!(
            "mode {:04o} gives group/others access; expected 0600 (fix: chmod 600, after checking nobody copied it)",
            meta.mode() & 0o7777
        )));
    }
    if meta.len() > MAX_FILE {
        return Err(insecure(format!(
            "{} bytes is larger than any key file",
            meta.len()
        )));
    }
    // Pre-size so the buffer never reallocates (which would leave copies).
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_FILE as usize + 1));
    (&mut file)
        .take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(io("read", path))?;
    Ok(Some(buf))
}

fn temp_name(dir: &Path, name: &str) -> PathBuf {
    let mut r = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut r);
    dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        hex::encode(r)
    ))
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, KeystoreError> {
    let tmp = temp_name(dir, name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true) // O_CREAT | O_EXCL
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    let res = (|| {
        // umask could only remove bits; make 0600 explicit anyway.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io("write", &tmp)(e));
    }
    Ok(tmp)
}

/// Fsyncs a directory so a rename/link/unlink in it is durable.
pub(super) fn fsync_dir(dir: &Path) -> Result<(), KeystoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", dir))
}

/// Creates `dir/name` with `bytes`, mode 0600, atomically and without ever
/// replacing an existing file: write a temp file (O_EXCL), fsync, hard-link it
/// to the final name (fails if that exists), unlink the temp, fsync the dir.
pub(super) fn create_new_private(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, KeystoreError> {
    let target = dir.join(name);
    let tmp = write_temp(dir, name, bytes)?;
    let linked = fs::hard_link(&tmp, &target);
    let _ = fs::remove_file(&tmp);
    linked.map_err(io("create (no clobber)", &target))?;
    fsync_dir(dir)?;
    Ok(target)
}

/// Writes `dir/name` atomically, replacing any existing file (temp + fsync +
/// rename + fsync dir). Used only for files whose old content is either
/// obsolete or a pending copy.
pub(super) fn replace_private(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, KeystoreError> {
    let target = dir.join(name);
    let tmp = write_temp(dir, name, bytes)?;
    if let Err(e) = fs::rename(&tmp, &target) {
        let _ = fs::remove_file(&tmp);
        return Err(io("rename into place", &target)(e));
    }
    fsync_dir(dir)?;
    Ok(target)
}

/// Atomically renames `from` over `to` and fsyncs the directory.
pub(super) fn rename_durable(dir: &Path, from: &Path, to: &Path) -> Result<(), KeystoreError> {
    fs::rename(from, to).map_err(io("rename", from))?;
    fsync_dir(dir)
}

/// Overwrites a file with zeros, fsyncs, unlinks it and fsyncs the directory.
/// Missing files are fine. Best effort against recovery from the disk.
pub(super) fn shred_remove(dir: &Path, path: &Path) -> Result<(), KeystoreError> {
    let file = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // A symlink or something odd: do not write through it, just unlink.
        Err(_) => None,
    };
    if let Some(mut f) = file {
        let len = f.metadata().map_err(io("inspect", path))?.len();
        if f.metadata()
            .map(|m| m.file_type().is_file())
            .unwrap_or(false)
        {
            let zeros = vec![0u8; len.min(MAX_FILE) as usize];
            f.write_all(&zeros)
                .and_then(|_| f.sync_all())
                .map_err(io("overwrite", path))?;
        }
    }
    fs::remove_file(path).map_err(io("unlink", path))?;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_new_never_clobbers_and_is_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = create_new_private(d.path(), "k", b"one").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(create_new_private(d.path(), "k", b"two").is_err());
        assert_eq!(&read_secret_file(&p).unwrap().unwrap()[..], b"one");
        // No temp file left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn symlinked_key_file_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = create_new_private(d.path(), "real", b"x").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(read_secret_file(&link).is_err());
    }

    #[test]
    fn shred_remove_unlinks() {
        let d = tempfile::tempdir().unwrap();
        let p = create_new_private(d.path(), "k", b"secret").unwrap();
        shred_remove(d.path(), &p).unwrap();
        assert!(!p.exists());
        shred_remove(d.path(), &p).unwrap();
    }

    #[test]
    fn world_writable_dir_refused() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("ks");
        ensure_private_dir(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            ensure_private_dir(&sub),
            Err(KeystoreError::StateDirInsecure { .. })
        ));
    }
}
