//! A task workspace as the file tools see it, confined to one directory. It
//! runs in the sandbox component, which owns the workspaces
//! (`SandboxService::file`). Paths are relative, without `..`; every component
//! is opened relative to its parent's descriptor with `O_NOFOLLOW` (a symlink
//! anywhere is refused, not followed); the opened file's real path is checked
//! to lie under the workspace; hard-linked files and files over the size cap
//! are refused.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::error::WorkspaceError;

const MAX_PATH_LEN: usize = 1024;
const MAX_DEPTH: usize = 32;
const MAX_LIST_ENTRIES: usize = 1000;

/// A workspace directory and its size cap.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    max_file_bytes: u64,
    /// Owner given to created files and directories (uid, gid): when a root
    /// process writes for commands that run as another user.
    owner: Option<(u32, u32)>,
}

#[allow(unsafe_code)]
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful openat and is owned by no one else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn refuse(path: &str, why: &'static str) -> WorkspaceError {
    WorkspaceError::RefusePath {
        path: path.to_string(),
        why,
    }
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

impl Workspace {
    /// Open a workspace rooted at `root` (which must exist; it is canonicalized).
    pub fn new(root: &Path, max_file_bytes: u64) -> Result<Arc<Self>, WorkspaceError> {
        let root = root
            .canonicalize()
            .map_err(|source| WorkspaceError::OpenWorkspace {
                path: root.to_path_buf(),
                source,
            })?;
        Ok(Arc::new(Workspace {
            root,
            max_file_bytes,
            owner: None,
        }))
    }

    /// Like [`Workspace::new`], handing what it creates to `uid:gid`.
    pub fn with_owner(
        root: &Path,
        max_file_bytes: u64,
        uid: u32,
        gid: u32,
    ) -> Result<Arc<Self>, WorkspaceError> {
        let mut ws = Arc::try_unwrap(Self::new(root, max_file_bytes)?).map_err(|_| {
            WorkspaceError::OpenWorkspace {
                path: root.to_path_buf(),
                source: std::io::Error::other("workspace shared while being set up"),
            }
        })?;
        ws.owner = Some((uid, gid));
        Ok(Arc::new(ws))
    }

    /// Hand a just-created file or directory (by descriptor) to the owner.
    fn give(&self, path: &str, fd: &OwnedFd) -> Result<(), WorkspaceError> {
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        nix::unistd::fchown(
            fd.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| WorkspaceError::Write {
            path: path.to_string(),
            source: io(e),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Split a model-supplied path into checked components.
    fn components<'a>(&self, path: &'a str) -> Result<Vec<&'a str>, WorkspaceError> {
        if path.len() > MAX_PATH_LEN {
            return Err(refuse(path, "it is too long"));
        }
        if path.contains('\0') {
            return Err(refuse(path, "it contains a NUL byte"));
        }
        let mut out = Vec::new();
        for c in Path::new(path).components() {
            match c {
                Component::Normal(s) => {
                    out.push(s.to_str().ok_or_else(|| refuse(path, "it is not UTF-8"))?)
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(refuse(path, "`..` is not allowed")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse(path, "absolute paths are not allowed"));
                }
            }
        }
        if out.len() > MAX_DEPTH {
            return Err(refuse(path, "it is nested too deeply"));
        }
        Ok(out)
    }

    fn open_root(&self, path: &str) -> Result<OwnedFd, WorkspaceError> {
        let fd = nix::fcntl::open(
            &self.root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| WorkspaceError::Open {
            path: path.to_string(),
            source: io(e),
        })?;
        Ok(owned(fd))
    }

    /// Open directory `dirs` under the root, one component at a time, never
    /// following a symlink; with `create`, make missing directories (0700).
    fn open_dir(&self, path: &str, dirs: &[&str], create: bool) -> Result<OwnedFd, WorkspaceError> {
        let mut cur = self.open_root(path)?;
        for d in dirs {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = match openat(Some(cur.as_raw_fd()), *d, flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    nix::sys::stat::mkdirat(
                        Some(cur.as_raw_fd()),
                        *d,
                        Mode::from_bits_truncate(0o700),
                    )
                    .map_err(|e| WorkspaceError::Write {
                        path: path.to_string(),
                        source: io(e),
                    })?;
                    let made = openat(Some(cur.as_raw_fd()), *d, flags, Mode::empty())
                        .map_err(|e| self.open_error(path, e, &cur, d))
                        .map(owned)?;
                    self.give(path, &made)?;
                    Ok(std::os::fd::IntoRawFd::into_raw_fd(made))
                }
                r => r,
            };
            cur = owned(fd.map_err(|e| self.open_error(path, e, &cur, d))?);
        }
        Ok(cur)
    }

    /// Name the reason an `openat(dir, name)` failed; a symlink is a refusal.
    fn open_error(&self, path: &str, e: Errno, dir: &OwnedFd, name: &str) -> WorkspaceError {
        let is_link = || {
            nix::sys::stat::fstatat(
                Some(dir.as_raw_fd()),
                name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
        };
        match e {
            Errno::ELOOP => refuse(path, "symbolic links are not followed"),
            Errno::ENOTDIR if is_link() => refuse(path, "symbolic links are not followed"),
            Errno::ENOTDIR => refuse(path, "a component is not a directory"),
            _ => WorkspaceError::Open {
                path: path.to_string(),
                source: io(e),
            },
        }
    }

    /// Check the opened descriptor's real path lies under the root.
    fn check_real_path(&self, path: &str, fd: &OwnedFd) -> Result<(), WorkspaceError> {
        let real =
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|source| {
                WorkspaceError::Open {
                    path: path.to_string(),
                    source,
                }
            })?;
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(refuse(path, "it resolves outside the workspace"))
        }
    }

    /// Read a UTF-8 text file.
    pub fn read(&self, path: &str) -> Result<String, WorkspaceError> {
        let comps = self.components(path)?;
        let Some((last, dirs)) = comps.split_last() else {
            return Err(refuse(path, "it names the workspace itself"));
        };
        let dir = self.open_dir(path, dirs, false)?;
        let fd = openat(
            Some(dir.as_raw_fd()),
            *last,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.open_error(path, e, &dir, last))?;
        let fd = owned(fd);
        self.check_real_path(path, &fd)?;
        let mut file = File::from(fd);
        let meta = file.metadata().map_err(|source| WorkspaceError::Read {
            path: path.to_string(),
            source,
        })?;
        if !meta.is_file() {
            return Err(refuse(path, "it is not a regular file"));
        }
        if meta.nlink() > 1 {
            return Err(refuse(path, "it has more than one hard link"));
        }
        if meta.len() > self.max_file_bytes {
            return Err(WorkspaceError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
                limit: self.max_file_bytes,
            });
        }
        let mut buf = Vec::new();
        (&mut file)
            .take(self.max_file_bytes + 1)
            .read_to_end(&mut buf)
            .map_err(|source| WorkspaceError::Read {
                path: path.to_string(),
                source,
            })?;
        if buf.len() as u64 > self.max_file_bytes {
            return Err(WorkspaceError::TooLarge {
                path: path.to_string(),
                size: buf.len() as u64,
                limit: self.max_file_bytes,
            });
        }
        String::from_utf8(buf).map_err(|_| WorkspaceError::NotText {
            path: path.to_string(),
        })
    }

    /// Create or replace a file (mode 0600), creating parent directories.
    pub fn write(&self, path: &str, content: &str) -> Result<(), WorkspaceError> {
        let comps = self.components(path)?;
        let Some((last, dirs)) = comps.split_last() else {
            return Err(refuse(path, "it names the workspace itself"));
        };
        if content.len() as u64 > self.max_file_bytes {
            return Err(WorkspaceError::TooLarge {
                path: path.to_string(),
                size: content.len() as u64,
                limit: self.max_file_bytes,
            });
        }
        let dir = self.open_dir(path, dirs, true)?;
        // Refuse an existing hard-linked file before truncating it.
        if let Ok(st) = nix::sys::stat::fstatat(
            Some(dir.as_raw_fd()),
            *last,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                return Err(refuse(path, "symbolic links are not followed"));
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(refuse(path, "it is not a regular file"));
            }
            if st.st_nlink > 1 {
                return Err(refuse(path, "it has more than one hard link"));
            }
        }
        let fd = openat(
            Some(dir.as_raw_fd()),
            *last,
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.open_error(path, e, &dir, last))?;
        let fd = owned(fd);
        self.check_real_path(path, &fd)?;
        self.give(path, &fd)?;
        let mut file = File::from(fd);
        file.write_all(content.as_bytes())
            .map_err(|source| WorkspaceError::Write {
                path: path.to_string(),
                source,
            })
    }

    /// List a directory: one line per entry, `name/` for directories,
    /// `name (N bytes)` for files, `name@` for symlinks.
    pub fn list(&self, path: &str) -> Result<String, WorkspaceError> {
        let comps = self.components(path)?;
        let dir = self.open_dir(path, &comps, false)?;
        self.check_real_path(path, &dir)?;
        let raw = dir.as_raw_fd();
        let mut d =
            nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(dir)).map_err(|e| {
                WorkspaceError::List {
                    path: path.to_string(),
                    source: io(e),
                }
            })?;
        let mut lines = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(|e| WorkspaceError::List {
                path: path.to_string(),
                source: io(e),
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            if lines.len() >= MAX_LIST_ENTRIES {
                lines.push(format!("... (more than {MAX_LIST_ENTRIES} entries)"));
                break;
            }
            let line = match nix::sys::stat::fstatat(
                Some(raw),
                entry.file_name(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => match st.st_mode & libc::S_IFMT {
                    libc::S_IFDIR => format!("{name}/"),
                    libc::S_IFLNK => format!("{name}@"),
                    libc::S_IFREG => format!("{name} ({} bytes)", st.st_size),
                    _ => format!("{name} (special)"),
                },
                Err(_) => name,
            };
            lines.push(line);
        }
        lines.sort();
        Ok(lines.join("\n"))
    }
}
