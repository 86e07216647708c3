//! Every system path, socket name and account name of the appliance, in one place.
//! Code elsewhere receives a [`Paths`] value; nothing deeper down hard-codes `/run` or
//! `/var/lib`, so tests and side-by-side instances pass their own directories.

use std::path::{Path, PathBuf};

use crate::ipc::Component;

pub const DEFAULT_CONFIG: &str = "/etc/cowork/coworkd.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cowork";
pub const DEFAULT_RUNTIME_DIR: &str = "/run/cowork";

/// The supervisor's control socket, for `coworkctl`.
pub const CONTROL_SOCKET: &str = "control.sock";
/// The supervisor's socket for the admin page's `update status|apply`.
pub const UPDATES_SOCKET: &str = "updates.sock";
/// Members of this group may use `coworkctl` without being root.
pub const ADMIN_GROUP: &str = "cowork-admin";
/// Every component user is a member; component sockets are group-accessible to it.
pub const SHARED_GROUP: &str = "cowork";

/// The directory a file is in: `.` for a bare file name (whose
/// `Path::parent` is the empty path, which no system call accepts).
pub fn parent_dir(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The directories one appliance instance works in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    /// Where every component's socket is reached (`$RUNTIME/NAME/NAME.sock`).
    pub runtime_dir: PathBuf,
    /// Where this process serves its own socket, when not under `runtime_dir`:
    /// the sandbox run by its own unit serves in `/run/cowork-sandbox/sandbox`
    /// (its RuntimeDirectory) and still reaches its peers under `/run/cowork`.
    pub own_socket_dir: Option<PathBuf>,
}

impl Paths {
    pub fn new(config: PathBuf, state_dir: PathBuf, runtime_dir: PathBuf) -> Paths {
        Paths {
            config,
            state_dir,
            runtime_dir,
            own_socket_dir: None,
        }
    }

    /// The same paths, with this process's own socket served in `dir`.
    pub fn with_own_socket_dir(mut self, dir: Option<PathBuf>) -> Paths {
        self.own_socket_dir = dir;
        self
    }

    /// `$RUNTIME/control.sock`
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir.join(CONTROL_SOCKET)
    }

    /// `$RUNTIME/updates.sock`
    pub fn updates_socket(&self) -> PathBuf {
        self.runtime_dir.join(UPDATES_SOCKET)
    }

    /// `$STATE/upload/` — update bundles uploaded on the admin page, written by
    /// its user, readable by root (group root, setgid) for the update writer.
    pub fn upload_dir(&self) -> PathBuf {
        self.state_dir.join("upload")
    }

    /// `$RUNTIME/NAME/` — one directory per component, owned by its user, so no
    /// component can replace another's socket.
    pub fn component_runtime_dir(&self, c: Component) -> PathBuf {
        self.runtime_dir.join(c.name())
    }

    /// `$RUNTIME/NAME/NAME.sock`
    pub fn component_socket(&self, c: Component) -> PathBuf {
        self.component_runtime_dir(c)
            .join(format!("{}.sock", c.name()))
    }

    /// Where component `c`, run in this process, serves its socket: in
    /// `own_socket_dir` when one was given, else `$RUNTIME/NAME/NAME.sock`.
    pub fn serve_socket(&self, c: Component) -> PathBuf {
        match &self.own_socket_dir {
            Some(dir) => dir.join(format!("{}.sock", c.name())),
            None => self.component_socket(c),
        }
    }

    /// `$STATE/NAME/` — the data a component owns.
    pub fn component_state_dir(&self, c: Component) -> PathBuf {
        self.state_dir.join(c.name())
    }

    /// `$STATE/supervisor/` — data only the supervisor reads (keystore material).
    pub fn supervisor_state_dir(&self) -> PathBuf {
        self.state_dir.join("supervisor")
    }

    /// `$STATE/settings/owner.toml` — the owner's settings (admin page,
    /// `coworkctl settings`), read after the image's configuration files.
    pub fn owner_settings(&self) -> PathBuf {
        self.state_dir
            .join("settings")
            .join(crate::config::owner::OWNER_FILE)
    }

    /// The configuration as it runs: the image's files and the owner's settings.
    pub fn load_config(&self) -> Result<crate::config::Loaded, crate::config::ConfigError> {
        crate::config::load_layers(&self.config, &self.owner_settings())
    }

    /// Drop-in directory beside the main config file: `coworkd.toml.d/`.
    pub fn config_dropin_dir(config: &Path) -> PathBuf {
        let mut name = config.as_os_str().to_owned();
        name.push(".d");
        PathBuf::from(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_a_bare_name_is_the_current_directory() {
        assert_eq!(parent_dir(Path::new("b.cwu")), Path::new("."));
        assert_eq!(parent_dir(Path::new("out/b.cwu")), Path::new("out"));
        assert_eq!(parent_dir(Path::new("/b.cwu")), Path::new("/"));
    }

    #[test]
    fn sockets_live_in_per_component_dirs() {
        let p = Paths::new("/c.toml".into(), "/s".into(), "/r".into());
        assert_eq!(
            p.component_socket(Component::Audit),
            PathBuf::from("/r/audit/audit.sock")
        );
        assert_eq!(p.control_socket(), PathBuf::from("/r/control.sock"));
        assert_eq!(
            p.serve_socket(Component::Sandbox),
            p.component_socket(Component::Sandbox)
        );
        assert_eq!(
            Paths::config_dropin_dir(Path::new("/etc/cowork/coworkd.toml")),
            PathBuf::from("/etc/cowork/coworkd.toml.d")
        );
    }

    /// The sandbox's own unit serves in its RuntimeDirectory, but its peers (the
    /// audit trail) are reached under the appliance's runtime directory: an
    /// audit socket derived from the serving directory never exists (#17).
    #[test]
    fn own_socket_dir_moves_only_the_served_socket() {
        let p = Paths::new("/c.toml".into(), "/s".into(), "/run/cowork".into())
            .with_own_socket_dir(Some("/run/cowork-sandbox/sandbox".into()));
        assert_eq!(
            p.serve_socket(Component::Sandbox),
            PathBuf::from("/run/cowork-sandbox/sandbox/sandbox.sock")
        );
        assert_eq!(
            p.component_socket(Component::Audit),
            PathBuf::from("/run/cowork/audit/audit.sock")
        );
    }
}
