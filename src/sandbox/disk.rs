//! Disk use of the workspaces. They live on the same file system as the audit
//! trail and the stores (`/var` on the appliance), so a paired user filling it
//! would stop the trail (and with it every command) and the gateway. Two
//! bounds, both enforced here by the sandbox, which owns the workspaces:
//!
//! - a **quota per workspace** (`[sandbox] workspace_quota_bytes`): a file-tool
//!   write that would pass it, or a command started in a workspace already at
//!   it, is refused; a command that passes it while it runs is killed;
//! - a **reserve** on the file system (`[sandbox] disk_reserve_bytes`): below
//!   it no workspace grows (refused up front, killed while running), so the
//!   trail and the stores always keep that much room.
//!
//! The workspace's size is the space its files take (allocated blocks), found
//! by a walk that follows no symlink and stops at [`MAX_ENTRIES`] entries (a
//! workspace with more counts as over its quota).

use std::path::Path;

/// Entries a size walk visits at most; a workspace with more is refused.
pub const MAX_ENTRIES: usize = 100_000;

/// Why a workspace may not grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRefusal {
    /// The file system is down to its reserve.
    ReserveReached { free: u64, reserve: u64 },
    /// The workspace uses its whole quota.
    QuotaExceeded { used: u64, quota: u64 },
    /// More entries than a size walk counts.
    TooManyEntries,
}

impl std::fmt::Display for DiskRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskRefusal::ReserveReached { free, reserve } => write!(
                f,
                "the appliance's disk is nearly full ({} free; {} are kept for the audit trail \
                 and the stores): delete files in the workspace, or ask the owner to free space",
                mib(*free),
                mib(*reserve)
            ),
            DiskRefusal::QuotaExceeded { used, quota } => write!(
                f,
                "the workspace uses {} of its {} quota: delete files in it first",
                mib(*used),
                mib(*quota)
            ),
            DiskRefusal::TooManyEntries => write!(
                f,
                "the workspace holds more than {MAX_ENTRIES} files and directories: delete some first"
            ),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The two bounds, from `[sandbox]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskPolicy {
    pub quota_bytes: u64,
    pub reserve_bytes: u64,
}

impl DiskPolicy {
    /// May `adding` more bytes be written into the workspace `dir`?
    pub fn check(&self, dir: &Path, adding: u64) -> Result<(), DiskRefusal> {
        let free = free_bytes(dir).unwrap_or(0);
        if free < self.reserve_bytes.saturating_add(adding) {
            return Err(DiskRefusal::ReserveReached {
                free,
                reserve: self.reserve_bytes,
            });
        }
        let used = workspace_bytes(dir).ok_or(DiskRefusal::TooManyEntries)?;
        if used.saturating_add(adding) > self.quota_bytes {
            return Err(DiskRefusal::QuotaExceeded {
                used,
                quota: self.quota_bytes,
            });
        }
        Ok(())
    }

    /// Checked while a command runs: the reserve on every call (cheap), the
    /// quota when `walk` (a directory walk; done less often).
    pub fn check_running(&self, dir: &Path, walk: bool) -> Result<(), DiskRefusal> {
        let free = free_bytes(dir).unwrap_or(0);
        if free < self.reserve_bytes {
            return Err(DiskRefusal::ReserveReached {
                free,
                reserve: self.reserve_bytes,
            });
        }
        if walk {
            let used = workspace_bytes(dir).ok_or(DiskRefusal::TooManyEntries)?;
            if used > self.quota_bytes {
                return Err(DiskRefusal::QuotaExceeded {
                    used,
                    quota: self.quota_bytes,
                });
            }
        }
        Ok(())
    }
}

/// Bytes available to unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(path)?;
    Ok(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// Space the files under `dir` take (allocated blocks), symlinks not followed;
/// `None` past [`MAX_ENTRIES`] entries.
pub fn workspace_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return None;
            }
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_past_the_quota_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), vec![7u8; 64 * 1024]).expect("write");
        let p = DiskPolicy {
            quota_bytes: 100 * 1024,
            reserve_bytes: 0,
        };
        assert!(p.check(dir.path(), 1024).is_ok());
        match p.check(dir.path(), 64 * 1024) {
            Err(DiskRefusal::QuotaExceeded { used, quota }) => {
                assert!(used >= 64 * 1024, "{used}");
                assert_eq!(quota, 100 * 1024);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_grows_below_the_reserve() {
        let dir = tempfile::tempdir().expect("tempdir");
        let free = free_bytes(dir.path()).expect("statvfs");
        let p = DiskPolicy {
            quota_bytes: u64::MAX,
            reserve_bytes: free.saturating_add(1 << 30),
        };
        let e = p.check(dir.path(), 1).expect_err("refused");
        assert!(matches!(e, DiskRefusal::ReserveReached { .. }));
        assert!(e.to_string().contains("nearly full"), "{e}");
        assert!(p.check_running(dir.path(), false).is_err());
    }

    #[test]
    fn symlinks_are_not_followed_when_sizing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("big"), vec![1u8; 256 * 1024]).expect("write");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).expect("symlink");
        let used = workspace_bytes(dir.path()).expect("sized");
        assert!(used < 64 * 1024, "{used}");
    }

    #[test]
    fn sentences_are_plain() {
        let e = DiskRefusal::QuotaExceeded {
            used: 300 * 1024 * 1024,
            quota: 256 * 1024 * 1024,
        };
        assert_eq!(
            e.to_string(),
            "the workspace uses 300.0 MiB of its 256.0 MiB quota: delete files in it first"
        );
    }
}
