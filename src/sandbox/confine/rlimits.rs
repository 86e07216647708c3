//! Resource limits (setrlimit). RLIMIT_NPROC counts per uid, so it is used only when
//! no pids cgroup is in force; RLIMIT_AS only when no memory cgroup is.
//! RLIMIT_FSIZE comes later, once the sandbox's root is built: the files the
//! root copies from the host (ld.so.cache, ...) are not the command's writes,
//! and a small `max_file_bytes` must not stop the sandbox from starting.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::sandbox::error::ConfineError;
use crate::sandbox::report::RlimitEntry;
use crate::sandbox::wire::InitSpec;

/// Applies the limits; they are inherited by the sandbox init and the payload.
pub fn apply(spec: &InitSpec) -> Result<Vec<RlimitEntry>, ConfineError> {
    let mut wanted: Vec<(&'static str, Resource, u64)> = vec![
        ("RLIMIT_CORE", Resource::RLIMIT_CORE, 0),
        ("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE, spec.rlimit_nofile),
    ];
    if let Some(v) = spec.rlimit_as {
        wanted.push(("RLIMIT_AS", Resource::RLIMIT_AS, v));
    }
    if let Some(v) = spec.rlimit_nproc {
        wanted.push(("RLIMIT_NPROC", Resource::RLIMIT_NPROC, v));
    }
    wanted
        .into_iter()
        .map(|(name, resource, value)| set(name, resource, value))
        .collect()
}

/// RLIMIT_FSIZE: the largest file the command may write.
pub fn apply_fsize(spec: &InitSpec) -> Result<RlimitEntry, ConfineError> {
    set("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE, spec.rlimit_fsize)
}

fn set(name: &'static str, resource: Resource, value: u64) -> Result<RlimitEntry, ConfineError> {
    let value =
        lower_only(resource, value).map_err(|source| ConfineError::SetRlimit { name, source })?;
    setrlimit(resource, value, value).map_err(|source| ConfineError::SetRlimit { name, source })?;
    Ok(RlimitEntry {
        name: name.to_string(),
        value,
    })
}

/// Never raise a hard limit the caller already lowered.
fn lower_only(resource: Resource, value: u64) -> Result<u64, nix::Error> {
    let (_, hard) = getrlimit(resource)?;
    Ok(value.min(hard))
}
