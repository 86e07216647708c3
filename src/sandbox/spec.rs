//! What to run (`RunSpec`, raw from the caller) and its validated form (`ValidSpec`).
//! Validation happens once, here, before anything is spawned.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::SandboxError;
use super::settings::SandboxSettings;

/// Longest program name plus arguments, in bytes.
pub const MAX_COMMAND_BYTES: usize = 1024 * 1024;
/// Smallest memory limit accepted (the helper and a shell need some room).
pub const MIN_MEMORY_BYTES: u64 = 16 * 1024 * 1024;
/// Largest output cap accepted per stream.
pub const MAX_OUTPUT_CAP: usize = 64 * 1024 * 1024;

/// Host locations that can never be a workspace (the location itself or anything under it).
const FORBIDDEN_TREES: &[&str] = &[
    "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
    "/libx32", "/boot", "/run", "/var/lib", "/var/run",
];
/// Host directories that can never be a workspace themselves (their subdirectories may).
const FORBIDDEN_EXACT: &[&str] = &[
    "/", "/root", "/home", "/var", "/tmp", "/var/tmp", "/srv", "/opt", "/mnt", "/media",
];

/// One approved command to run, as the caller gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Program name (searched in the sandbox PATH) or absolute path inside the sandbox.
    pub program: String,
    pub args: Vec<String>,
    /// Host directory mounted read-write at `/workspace` inside the sandbox.
    pub workspace: PathBuf,
    /// Keep the host network (no network namespace, inet sockets allowed).
    pub allow_network: bool,
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub max_pids: u64,
    /// Cap on captured stdout and on captured stderr, each.
    pub output_cap: usize,
    /// Largest file the command may write (RLIMIT_FSIZE, lowered to the
    /// workspace quota).
    pub max_file_bytes: u64,
}

impl RunSpec {
    /// A spec with the limits taken from `settings`.
    pub fn new(
        program: impl Into<String>,
        args: Vec<String>,
        workspace: impl Into<PathBuf>,
        settings: &SandboxSettings,
    ) -> Self {
        Self {
            program: program.into(),
            args,
            workspace: workspace.into(),
            allow_network: false,
            timeout: Duration::from_secs(settings.default_timeout_secs),
            memory_bytes: settings.memory_bytes,
            max_pids: settings.max_pids,
            output_cap: settings.output_cap_bytes,
            max_file_bytes: settings.max_file_bytes,
        }
    }

    /// Checks every field; returns the validated spec with the canonical workspace.
    pub fn validate(&self, settings: &SandboxSettings) -> Result<ValidSpec, SandboxError> {
        validate_command(&self.program, &self.args)?;
        let workspace = validate_workspace(&self.workspace, settings)?;
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(settings.max_timeout_secs) {
            return Err(SandboxError::InvalidTimeout {
                requested_ms: self.timeout.as_millis(),
                max_secs: settings.max_timeout_secs,
            });
        }
        if self.memory_bytes < MIN_MEMORY_BYTES {
            return Err(SandboxError::InvalidLimit {
                name: "memory_bytes",
                value: self.memory_bytes,
                reason: "below the 16 MiB minimum",
            });
        }
        if self.max_pids == 0 || self.max_pids > 1_000_000 {
            return Err(SandboxError::InvalidLimit {
                name: "max_pids",
                value: self.max_pids,
                reason: "must be from 1 to 1000000",
            });
        }
        if self.output_cap == 0 || self.output_cap > MAX_OUTPUT_CAP {
            return Err(SandboxError::InvalidLimit {
                name: "output_cap",
                value: self.output_cap as u64,
                reason: "must be from 1 byte to 64 MiB",
            });
        }
        if self.max_file_bytes == 0 {
            return Err(SandboxError::InvalidLimit {
                name: "max_file_bytes",
                value: 0,
                reason: "must be at least 1 byte",
            });
        }
        Ok(ValidSpec {
            program: self.program.clone(),
            args: self.args.clone(),
            workspace,
            allow_network: self.allow_network,
            timeout: self.timeout,
            memory_bytes: self.memory_bytes,
            max_pids: self.max_pids,
            output_cap: self.output_cap,
            max_file_bytes: self.max_file_bytes,
        })
    }
}

/// A spec that passed validation: the workspace is canonical, exists and is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSpec {
    pub program: String,
    pub args: Vec<String>,
    pub workspace: PathBuf,
    pub allow_network: bool,
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub max_pids: u64,
    pub output_cap: usize,
    pub max_file_bytes: u64,
}

fn validate_command(program: &str, args: &[String]) -> Result<(), SandboxError> {
    if program.is_empty() {
        return Err(SandboxError::EmptyProgram);
    }
    if program.contains('\0') {
        return Err(SandboxError::NulInProgram);
    }
    if let Some(index) = args.iter().position(|a| a.contains('\0')) {
        return Err(SandboxError::NulInArgument { index });
    }
    let len = program.len() + args.iter().map(|a| a.len() + 1).sum::<usize>();
    if len > MAX_COMMAND_BYTES {
        return Err(SandboxError::CommandTooLong {
            len,
            max: MAX_COMMAND_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn validate_workspace(
    path: &Path,
    settings: &SandboxSettings,
) -> Result<PathBuf, SandboxError> {
    if !path.is_absolute() {
        return Err(SandboxError::WorkspaceNotAbsolute {
            path: path.to_path_buf(),
        });
    }
    let canonical = path
        .canonicalize()
        .map_err(|source| SandboxError::ResolveWorkspace {
            path: path.to_path_buf(),
            source,
        })?;
    if !canonical.is_dir() {
        return Err(SandboxError::WorkspaceNotDirectory { path: canonical });
    }
    // The appliance's workspace area is the one place under /var/lib that may be
    // mounted; only directories strictly inside it, never the area itself.
    let in_workspace_root = settings
        .workspace_root
        .as_deref()
        .and_then(|root| root.canonicalize().ok())
        .is_some_and(|root| canonical != root && canonical.starts_with(&root));
    if !in_workspace_root {
        if FORBIDDEN_EXACT.iter().any(|f| canonical == Path::new(f)) {
            return Err(SandboxError::WorkspaceForbidden {
                path: canonical,
                reason: "a system or shared top-level directory",
            });
        }
        if FORBIDDEN_TREES.iter().any(|f| canonical.starts_with(f)) {
            return Err(SandboxError::WorkspaceForbidden {
                path: canonical,
                reason: "inside a system directory",
            });
        }
    }
    // The appliance's own state, runtime and configuration directories, whatever
    // their location, are never visible to a command (except the workspace area).
    for protected in &settings.protected_paths {
        let Ok(protected) = protected.canonicalize() else {
            continue;
        };
        let holds_it = canonical.starts_with(&protected) || protected.starts_with(&canonical);
        if holds_it && !in_workspace_root {
            return Err(SandboxError::WorkspaceForbidden {
                path: canonical,
                reason: "overlaps the appliance's own state, runtime or configuration",
            });
        }
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ws: &Path) -> RunSpec {
        RunSpec::new("true", vec![], ws, &SandboxSettings::default())
    }

    #[test]
    fn good_spec_validates_and_canonicalizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("ws");
        std::fs::create_dir(&link).expect("mkdir");
        let raw = dir.path().join("ws/../ws");
        let v = spec(&raw)
            .validate(&SandboxSettings::default())
            .expect("valid");
        assert_eq!(v.workspace, link.canonicalize().expect("canon"));
    }

    #[test]
    fn workspace_root_is_the_only_way_into_protected_dirs() {
        let state = tempfile::tempdir().expect("tempdir");
        let root = state.path().join("sandbox/workspaces");
        let task = root.join("task-1");
        std::fs::create_dir_all(&task).expect("mkdir");
        let settings = SandboxSettings {
            workspace_root: Some(root.clone()),
            protected_paths: vec![state.path().to_path_buf()],
            ..SandboxSettings::default()
        };
        assert!(spec(&task).validate(&settings).is_ok());
        for bad in [
            state.path().to_path_buf(),
            state.path().join("sandbox"),
            root,
        ] {
            let e = spec(&bad).validate(&settings);
            assert!(
                matches!(e, Err(SandboxError::WorkspaceForbidden { .. })),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn relative_workspace_is_refused() {
        let e = spec(Path::new("ws")).validate(&SandboxSettings::default());
        assert!(
            matches!(e, Err(SandboxError::WorkspaceNotAbsolute { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn missing_workspace_is_refused() {
        let e = spec(Path::new("/nonexistent/cowork-ws")).validate(&SandboxSettings::default());
        assert!(
            matches!(e, Err(SandboxError::ResolveWorkspace { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn file_workspace_is_refused() {
        let f = tempfile::NamedTempFile::new().expect("file");
        let e = spec(f.path()).validate(&SandboxSettings::default());
        assert!(
            matches!(e, Err(SandboxError::WorkspaceNotDirectory { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn system_workspaces_are_refused() {
        for p in [
            "/",
            "/etc",
            "/usr/lib",
            "/root",
            "/proc/self",
            "/tmp",
            "/var/lib",
        ] {
            let e = spec(Path::new(p)).validate(&SandboxSettings::default());
            assert!(
                matches!(e, Err(SandboxError::WorkspaceForbidden { .. })),
                "{p}: {e:?}"
            );
        }
        // a symlink to / resolves to / and is refused too
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("root");
        std::os::unix::fs::symlink("/", &link).expect("symlink");
        let e = spec(&link).validate(&SandboxSettings::default());
        assert!(
            matches!(e, Err(SandboxError::WorkspaceForbidden { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn nul_bytes_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(dir.path());
        s.program = "tr\0ue".into();
        assert!(matches!(
            s.validate(&SandboxSettings::default()),
            Err(SandboxError::NulInProgram)
        ));
        let mut s = spec(dir.path());
        s.args = vec!["ok".into(), "b\0ad".into()];
        assert!(matches!(
            s.validate(&SandboxSettings::default()),
            Err(SandboxError::NulInArgument { index: 1 })
        ));
        let mut s = spec(dir.path());
        s.program = String::new();
        assert!(matches!(
            s.validate(&SandboxSettings::default()),
            Err(SandboxError::EmptyProgram)
        ));
    }

    #[test]
    fn timeouts_outside_range_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = SandboxSettings::default();
        let mut s = spec(dir.path());
        s.timeout = Duration::from_secs(settings.max_timeout_secs + 1);
        assert!(matches!(
            s.validate(&settings),
            Err(SandboxError::InvalidTimeout { .. })
        ));
        s.timeout = Duration::ZERO;
        assert!(matches!(
            s.validate(&settings),
            Err(SandboxError::InvalidTimeout { .. })
        ));
        s.timeout = Duration::from_secs(settings.max_timeout_secs);
        assert!(s.validate(&settings).is_ok());
    }

    #[test]
    fn bad_limits_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = SandboxSettings::default();
        let mut s = spec(dir.path());
        s.memory_bytes = 1024;
        assert!(matches!(
            s.validate(&settings),
            Err(SandboxError::InvalidLimit {
                name: "memory_bytes",
                ..
            })
        ));
        let mut s = spec(dir.path());
        s.max_pids = 0;
        assert!(matches!(
            s.validate(&settings),
            Err(SandboxError::InvalidLimit {
                name: "max_pids",
                ..
            })
        ));
        let mut s = spec(dir.path());
        s.output_cap = 0;
        assert!(matches!(
            s.validate(&settings),
            Err(SandboxError::InvalidLimit {
                name: "output_cap",
                ..
            })
        ));
        let mut s = spec(dir.path());
        s.max_file_bytes = 0;
        assert!(matches!(
            s.validate(&settings),
            Err(SandboxError::InvalidLimit {
                name: "max_file_bytes",
                ..
            })
        ));
        let mut s = spec(dir.path());
        s.args = vec!["x".repeat(MAX_COMMAND_BYTES)];
        assert!(matches!(
            s.validate(&settings),
            Err(SandboxError::CommandTooLong { .. })
        ));
    }
}
