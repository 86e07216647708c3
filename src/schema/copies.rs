//! Pre-migration copies (`FILE.pre-vN`) and when they may go: kept while the
//! running boot is on trial, removed at an open on a boot that is not.

use std::path::{Path, PathBuf};

/// The pre-migration copy of `path` made before migrating from version `from`.
pub fn copy_path(path: &Path, from: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".pre-v{from}"));
    path.with_file_name(name)
}

/// The pre-migration copies of `path` that exist.
pub fn copies(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.pre-v", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Removes `path`'s pre-migration copies, except `keep` (the one this open
/// just took), unless the running boot is on trial (an update not yet
/// blessed, whose rollback may need them). Only for a file this image has
/// just opened: the copies of a refused file are what a rollback restores.
/// Returns what was removed.
pub(super) fn prune_copies(
    path: &Path,
    keep: Option<&Path>,
    on_trial: bool,
) -> Result<Vec<PathBuf>, std::io::Error> {
    if on_trial {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for copy in copies(path)
        .into_iter()
        .filter(|c| Some(c.as_path()) != keep)
    {
        match std::fs::remove_file(&copy) {
            Ok(()) => removed.push(copy),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Where systemd-boot says the running entry is counted (on trial).
pub const EFIVARS_DIR: &str = "/sys/firmware/efi/efivars";
const BOOT_COUNT_VAR: &str = "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/// Whether the running boot is on trial: systemd-boot booted a counted entry
/// (`+N-M`, not blessed yet) and set `LoaderBootCountPath`. `efivars` is a
/// parameter so tests can pass a directory of their own.
pub fn boot_on_trial(efivars: &Path) -> bool {
    efivars.join(BOOT_COUNT_VAR).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_is_the_boot_count_variable() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(!boot_on_trial(dir.path()));
        std::fs::write(dir.path().join(BOOT_COUNT_VAR), b"x").expect("var");
        assert!(boot_on_trial(dir.path()));
    }
}
