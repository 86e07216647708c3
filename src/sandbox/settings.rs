//! `[sandbox]` settings, embedded by the lead in the TOML config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which executor runs approved commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Namespaces + landlock + seccomp + rlimits/cgroup (this module).
    #[default]
    Builtin,
    /// `docker run` with a locked-down argv; used only when a daemon is reachable.
    Docker,
}

/// Settings of the sandbox executor. `Default` gives the safe defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Refuse to run when a mechanism (landlock, cgroup, user namespaces) is missing,
    /// rather than silently run weaker. On by default; a configuration must say
    /// `require_full_isolation = false` to accept weaker isolation (config/dev.toml
    /// does, for development boxes without cgroup delegation).
    pub require_full_isolation: bool,
    /// Timeout used when the caller does not give one (the agent gives
    /// `[limits] command_timeout_secs`).
    pub default_timeout_secs: u64,
    /// Largest timeout a caller may ask for: the ceiling of `[limits]
    /// command_timeout_max_secs`.
    pub max_timeout_secs: u64,
    /// Memory limit (cgroup memory, else RLIMIT_AS).
    pub memory_bytes: u64,
    /// Process limit for the payload (cgroup pids, else RLIMIT_NPROC).
    pub max_pids: u64,
    /// Cap on captured stdout and on captured stderr, each: the ceiling of
    /// what a caller asks (`[limits] output_cap_bytes`).
    pub output_cap_bytes: usize,
    /// Largest file a command may write (RLIMIT_FSIZE) or a file call take:
    /// the ceiling of what a caller asks (`[limits] max_file_bytes`).
    pub max_file_bytes: u64,
    /// Size of the private /tmp tmpfs.
    pub tmp_size_bytes: u64,
    /// Space one workspace may take (file-tool writes and commands).
    pub workspace_quota_bytes: u64,
    /// Free space kept on the workspaces' file system (the appliance's /var,
    /// shared with the audit trail and the stores): below it no workspace grows.
    pub disk_reserve_bytes: u64,
    /// CPU bandwidth in percent of one core (cgroup cpu).
    pub cpu_percent: u32,
    /// Executor backend.
    pub backend: Backend,
    /// Image for the docker backend (required when `backend = "docker"`).
    pub docker_image: Option<String>,
    /// User the command runs as when the appliance runs as root. `None`: the
    /// `cowork-sandbox` user if it exists, else uid/gid 65534 (nobody).
    pub unprivileged_user: Option<String>,
    /// Where the cgroup hierarchies are mounted (a parameter for tests).
    pub cgroup_root: PathBuf,
    /// Directory holding the task workspaces; its subdirectories are valid
    /// workspaces even though it lies under /var/lib. Unset: `$STATE/sandbox/workspaces`.
    pub workspace_root: Option<PathBuf>,
    /// Directories no workspace may be, contain or lie in (the appliance's state,
    /// runtime and configuration directories). Filled in at start, not configured.
    #[serde(skip)]
    pub protected_paths: Vec<PathBuf>,
    /// The cgroup v2 directory per-command cgroups are made in: the subtree
    /// systemd delegated to the sandbox's unit (`coworkd component sandbox
    /// --delegated-cgroup`, see `adopt_delegated`). Not configured.
    #[serde(skip)]
    pub cgroup_parent: Option<PathBuf>,
}

impl SandboxSettings {
    /// The workspaces' disk bounds.
    pub fn disk_policy(&self) -> super::disk::DiskPolicy {
        super::disk::DiskPolicy {
            quota_bytes: self.workspace_quota_bytes,
            reserve_bytes: self.disk_reserve_bytes,
        }
    }
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            require_full_isolation: true,
            default_timeout_secs: 60,
            max_timeout_secs: 600,
            memory_bytes: 512 * 1024 * 1024,
            max_pids: 256,
            output_cap_bytes: 1024 * 1024,
            max_file_bytes: 1024 * 1024 * 1024,
            tmp_size_bytes: 256 * 1024 * 1024,
            workspace_quota_bytes: 256 * 1024 * 1024,
            disk_reserve_bytes: 128 * 1024 * 1024,
            cpu_percent: 100,
            backend: Backend::Builtin,
            docker_image: None,
            unprivileged_user: None,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            workspace_root: None,
            protected_paths: Vec::new(),
            cgroup_parent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_gives_defaults() {
        let s: SandboxSettings = toml::from_str("").expect("parse");
        assert_eq!(s, SandboxSettings::default());
    }

    #[test]
    fn unknown_field_is_refused() {
        let r: Result<SandboxSettings, _> = toml::from_str("memory = 3");
        assert!(r.is_err());
    }

    #[test]
    fn backend_parses() {
        let s: SandboxSettings =
            toml::from_str("backend = \"docker\"\ndocker_image = \"debian:12\"").expect("parse");
        assert_eq!(s.backend, Backend::Docker);
    }
}
