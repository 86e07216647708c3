//! Workspace file tools confined to one directory. Paths are relative, without
//! `..`; every component is opened relative to its parent's descriptor with
//! `O_NOFOLLOW` (a symlink anywhere is refused, not followed); the opened file's
//! real path is checked to lie under the workspace; hard-linked files and files
//! over the size cap are refused.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use serde_json::{Value, json};

use super::{ApprovalRequest, FileWrite, Tool, ToolOutcome, str_field};
use crate::agent::error::ToolError;
use crate::guard::{WriteClass, classify_write};

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

fn refuse(path: &str, why: &'static str) -> ToolError {
    ToolError::RefusePath {
        path: path.to_string(),
        why,
    }
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

impl Workspace {
    /// Open a workspace rooted at `root` (which must exist; it is canonicalized).
    pub fn new(root: &Path, max_file_bytes: u64) -> Result<Arc<Self>, ToolError> {
        let root = root
            .canonicalize()
            .map_err(|source| ToolError::OpenWorkspace {
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
    ) -> Result<Arc<Self>, ToolError> {
        let mut ws = Arc::try_unwrap(Self::new(root, max_file_bytes)?).map_err(|_| {
            ToolError::OpenWorkspace {
                path: root.to_path_buf(),
                source: std::io::Error::other("workspace shared while being set up"),
            }
        })?;
        ws.owner = Some((uid, gid));
        Ok(Arc::new(ws))
    }

    /// Hand a just-created file or directory (by descriptor) to the owner.
    fn give(&self, path: &str, fd: &OwnedFd) -> Result<(), ToolError> {
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        nix::unistd::fchown(
            fd.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| ToolError::Write {
            path: path.to_string(),
            source: io(e),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Split a model-supplied path into checked components.
    fn components<'a>(&self, path: &'a str) -> Result<Vec<&'a str>, ToolError> {
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

    fn open_root(&self, path: &str) -> Result<OwnedFd, ToolError> {
        let fd = nix::fcntl::open(
            &self.root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ToolError::Open {
            path: path.to_string(),
            source: io(e),
        })?;
        Ok(owned(fd))
    }

    /// Open directory `dirs` under the root, one component at a time, never
    /// following a symlink; with `create`, make missing directories (0700).
    fn open_dir(&self, path: &str, dirs: &[&str], create: bool) -> Result<OwnedFd, ToolError> {
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
                    .map_err(|e| ToolError::Write {
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
    fn open_error(&self, path: &str, e: Errno, dir: &OwnedFd, name: &str) -> ToolError {
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
            _ => ToolError::Open {
                path: path.to_string(),
                source: io(e),
            },
        }
    }

    /// Check the opened descriptor's real path lies under the root.
    fn check_real_path(&self, path: &str, fd: &OwnedFd) -> Result<(), ToolError> {
        let real =
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|source| {
                ToolError::Open {
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
    pub fn read(&self, path: &str) -> Result<String, ToolError> {
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
        let meta = file.metadata().map_err(|source| ToolError::Read {
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
            return Err(ToolError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
                limit: self.max_file_bytes,
            });
        }
        let mut buf = Vec::new();
        (&mut file)
            .take(self.max_file_bytes + 1)
            .read_to_end(&mut buf)
            .map_err(|source| ToolError::Read {
                path: path.to_string(),
                source,
            })?;
        if buf.len() as u64 > self.max_file_bytes {
            return Err(ToolError::TooLarge {
                path: path.to_string(),
                size: buf.len() as u64,
                limit: self.max_file_bytes,
            });
        }
        String::from_utf8(buf).map_err(|_| ToolError::NotText {
            path: path.to_string(),
        })
    }

    /// Create or replace a file (mode 0600), creating parent directories.
    pub fn write(&self, path: &str, content: &str) -> Result<(), ToolError> {
        let comps = self.components(path)?;
        let Some((last, dirs)) = comps.split_last() else {
            return Err(refuse(path, "it names the workspace itself"));
        };
        if content.len() as u64 > self.max_file_bytes {
            return Err(ToolError::TooLarge {
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
            .map_err(|source| ToolError::Write {
                path: path.to_string(),
                source,
            })
    }

    /// List a directory: one line per entry, `name/` for directories,
    /// `name (N bytes)` for files, `name@` for symlinks.
    pub fn list(&self, path: &str) -> Result<String, ToolError> {
        let comps = self.components(path)?;
        let dir = self.open_dir(path, &comps, false)?;
        self.check_real_path(path, &dir)?;
        let raw = dir.as_raw_fd();
        let mut d =
            nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(dir)).map_err(|e| {
                ToolError::List {
                    path: path.to_string(),
                    source: io(e),
                }
            })?;
        let mut lines = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(|e| ToolError::List {
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the file operation was aborted".to_string()),
    }
}

fn path_schema(extra: Option<(&str, &str)>) -> Value {
    let mut props =
        json!({"path": {"type": "string", "description": "Path relative to the workspace"}});
    let mut required = vec!["path"];
    if let Some((k, d)) = extra {
        props[k] = json!({"type": "string", "description": d});
        required.push(k);
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// `read_file`: read a UTF-8 file of the workspace.
#[derive(Debug, Clone)]
pub struct ReadFileTool(pub Arc<Workspace>);

#[async_trait]
impl Tool for ReadFileTool {
    fn name(&self) -> &str {
        "read_file"
    }
    fn description(&self) -> &str {
        "Read a text file of the task workspace."
    }
    fn input_schema(&self) -> Value {
        path_schema(None)
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let path = match str_field("read_file", &input, "path") {
            Ok(p) => p.to_string(),
            Err(e) => return ToolOutcome::Failed(e.to_string()),
        };
        let ws = self.0.clone();
        match blocking(move || ws.read(&path)).await {
            Ok(s) => ToolOutcome::Output(s),
            Err(e) => ToolOutcome::Failed(e),
        }
    }
}

/// `write_file`: create or replace a file of the workspace; a file that configures
/// execution is not written but asked for ([`ToolOutcome::NeedsApproval`]).
#[derive(Debug, Clone)]
pub struct WriteFileTool(pub Arc<Workspace>);

#[async_trait]
impl Tool for WriteFileTool {
    fn name(&self) -> &str {
        "write_file"
    }
    fn description(&self) -> &str {
        "Create or replace a text file of the task workspace."
    }
    fn input_schema(&self) -> Value {
        path_schema(Some(("content", "The full new content of the file")))
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let (path, content) = match (
            str_field("write_file", &input, "path"),
            str_field("write_file", &input, "content"),
        ) {
            (Ok(p), Ok(c)) => (p.to_string(), c.to_string()),
            (Err(e), _) | (_, Err(e)) => return ToolOutcome::Failed(e.to_string()),
        };
        // A file some program would read and act on implicitly is the owner's matter
        // (crate::guard::classify_write); the rest is refused or written below.
        if let WriteClass::ExecConfig(why) = classify_write(&path) {
            return ToolOutcome::NeedsApproval(ApprovalRequest::file_write(
                FileWrite { path, content },
                self.0.root().display().to_string(),
                format!("builtin:exec-config-file: writes a file that configures execution: {why}"),
            ));
        }
        let ws = self.0.clone();
        let n = content.len();
        let shown = path.clone();
        match blocking(move || ws.write(&path, &content)).await {
            Ok(()) => ToolOutcome::Output(format!("wrote {n} bytes to {shown}")),
            Err(e) => ToolOutcome::Failed(e),
        }
    }
}

/// `list_files`: list a directory of the workspace.
#[derive(Debug, Clone)]
pub struct ListFilesTool(pub Arc<Workspace>);

#[async_trait]
impl Tool for ListFilesTool {
    fn name(&self) -> &str {
        "list_files"
    }
    fn description(&self) -> &str {
        "List a directory of the task workspace (\".\" for its top)."
    }
    fn input_schema(&self) -> Value {
        path_schema(None)
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let path = input["path"].as_str().unwrap_or(".").to_string();
        let ws = self.0.clone();
        match blocking(move || ws.list(&path)).await {
            Ok(s) => ToolOutcome::Output(s),
            Err(e) => ToolOutcome::Failed(e),
        }
    }
}
