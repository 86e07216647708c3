//! One supervisor per runtime and state directory: `coworkd.lock` in each,
//! held with flock(2) for the supervisor's whole life and holding its pid, so a
//! second `coworkd` on the same directories is refused with a sentence naming
//! the first (instead of taking over its sockets and, on exit, stopping its
//! components). The kernel drops the lock when the process ends, however it ends.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the runtime and in the state directory.
pub const LOCK_FILE: &str = "coworkd.lock";

/// Held locks; dropping it (the process ending) releases them.
#[derive(Debug)]
pub struct InstanceLock {
    _held: Vec<Flock<File>>,
}

/// Locks `dirs` (created when missing) in order, or says which coworkd holds one.
pub fn take(dirs: &[&Path]) -> anyhow::Result<InstanceLock> {
    let mut held = Vec::new();
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        held.push(lock_one(&dir.join(LOCK_FILE), dir)?);
    }
    Ok(InstanceLock { _held: held })
}

fn lock_one(path: &PathBuf, dir: &Path) -> anyhow::Result<Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            let pid = std::process::id();
            locked
                .set_len(0)
                .and_then(|()| locked.rewind())
                .and_then(|()| writeln!(&mut *locked, "{pid}"))
                .with_context(|| format!("writing our pid to {}", path.display()))?;
            Ok(locked)
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let who = match text.trim().parse::<u32>() {
                Ok(pid) => format!("another coworkd (pid {pid})"),
                Err(_) => "another coworkd".to_string(),
            };
            anyhow::bail!(
                "{who} is already running on {}; stop it first, or give this one its own --runtime-dir and --state-dir",
                dir.display()
            )
        }
        Err((_, errno)) => {
            Err(std::io::Error::from(errno)).with_context(|| format!("locking {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = take(&[dir.path()]).expect("first lock");
        let err = take(&[dir.path()]).expect_err("second lock must fail");
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        take(&[dir.path()]).expect("free again once the first is dropped");
    }
}
