//! The cgroup subtree systemd delegates to coworkd.service (`Delegate=yes`),
//! laid out so the sandbox can give every command its own memory/pids/cpu
//! cgroup while running as its own unprivileged user.
//!
//! cgroup v2 (the image):
//! ```text
//! coworkd.service/            controllers enabled for the children below
//!   supervisor/               the supervisor (moved here: no process may sit in
//!                             an inner node that has controllers enabled)
//!   audit/ gateway/ admin/    one leaf per component (per-component accounting)
//!   sandbox/                  owned by cowork-sandbox; controllers enabled
//!     service/                the sandbox component itself
//!     cowork-sandbox-PID-N/   one per command, created by the sandbox component
//! ```
//! cgroup v1 (hosts still on the legacy hierarchy): per controller (memory,
//! pids, cpu) a `sandbox/` directory owned by cowork-sandbox; the sandbox
//! component sits in it and creates per-command children under itself.
//!
//! Only done when systemd started us (`INVOCATION_ID`) and the subtree is
//! writable; anywhere else (development, tests, containers without delegation)
//! nothing moves and the sandbox reports that it has no cgroup.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::ipc::Component;
use crate::privs::RunAs;

const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Where each component is placed, and what the sandbox is told.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// `cgroup.procs` files a component's process joins (as root, before it
    /// drops privileges).
    join: BTreeMap<Component, Vec<CString>>,
    /// v2: the directory the sandbox creates per-command cgroups in.
    pub sandbox_parent: Option<PathBuf>,
    /// One line for the log.
    pub summary: String,
}

impl Layout {
    pub fn join_files(&self, c: Component) -> Vec<CString> {
        self.join.get(&c).cloned().unwrap_or_default()
    }
}

/// Sets up the delegated subtree under `root` (normally /sys/fs/cgroup).
/// `Ok(None)`: not under systemd or nothing delegated; `Err`: delegated but the
/// layout could not be made (logged; the sandbox then has no cgroup).
pub fn prepare(
    root: &Path,
    plans: &BTreeMap<Component, Option<RunAs>>,
) -> Result<Option<Layout>, String> {
    if std::env::var_os("INVOCATION_ID").is_none() || !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let sandbox_owner = plans
        .get(&Component::Sandbox)
        .and_then(|p| p.as_ref())
        .map(|r| (r.uid, r.gid));
    if root.join("cgroup.controllers").exists() {
        let Some(rel) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
            return Ok(None);
        };
        let base = root.join(rel.trim().trim_start_matches('/'));
        if let Err(e) =
            nix::unistd::access(&base.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK)
        {
            return Err(format!(
                "{} is not writable ({e}): no Delegate= in the unit, or /sys read-only without ReadWritePaths= for it",
                base.display()
            ));
        }
        prepare_v2(&base, sandbox_owner).map(Some)
    } else {
        prepare_v1(root, &own, sandbox_owner).map(Some)
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

fn mkdir(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("creating {}: {e}", path.display())),
    }
    // The unit's UMask=0077 made it 0700; once `sandbox/` belongs to
    // cowork-sandbox, root (without CAP_DAC_OVERRIDE) must still be able to
    // walk through it to place the sandbox in `sandbox/service`.
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("setting the mode of {}: {e}", path.display()))
}

/// Hands a cgroup directory to `owner` the way cgroup delegation expects: the
/// directory and the files that move processes and enable controllers.
fn hand_over(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    for name in [
        "",
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
        "tasks",
    ] {
        let p = if name.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(name)
        };
        if name.is_empty() || p.exists() {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                .map_err(|e| format!("giving {} to uid {uid}: {e}", p.display()))?;
        }
    }
    Ok(())
}

fn procs_file(dir: &Path) -> Result<CString, String> {
    CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", dir.display()))
}

fn enable_controllers(dir: &Path, available: &str) -> Result<String, String> {
    let wanted: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if !wanted.is_empty() {
        write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))?;
    }
    Ok(wanted.join(" "))
}

fn prepare_v2(base: &Path, sandbox_owner: Option<(u32, u32)>) -> Result<Layout, String> {
    // Leave the inner node first, then enable controllers for its children.
    let supervisor = base.join("supervisor");
    mkdir(&supervisor)?;
    write(
        &supervisor.join("cgroup.procs"),
        &std::process::id().to_string(),
    )?;
    let available = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
    let enabled = enable_controllers(base, &available)?;
    let mut layout = Layout::default();
    for c in Component::START_ORDER {
        let dir = if c == Component::Sandbox {
            let parent = base.join("sandbox");
            mkdir(&parent)?;
            let leaf = parent.join("service");
            mkdir(&leaf)?;
            let inner = fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
            enable_controllers(&parent, &inner)?;
            // Only the inner node changes hands: the sandbox creates each
            // command's cgroup there and moves processes within it (the common
            // ancestor's cgroup.procs must be writable to it); its own leaf
            // stays root's.
            hand_over(&parent, sandbox_owner)?;
            layout.sandbox_parent = Some(parent);
            leaf
        } else {
            let dir = base.join(c.name());
            mkdir(&dir)?;
            dir
        };
        layout.join.insert(c, vec![procs_file(&dir)?]);
    }
    layout.summary = format!(
        "cgroup v2 subtree {} delegated; controllers {}",
        base.display(),
        if enabled.is_empty() { "none" } else { &enabled }
    );
    Ok(layout)
}

fn prepare_v1(root: &Path, own: &str, sandbox_owner: Option<(u32, u32)>) -> Result<Layout, String> {
    let mut files = Vec::new();
    let mut placed = Vec::new();
    for controller in CONTROLLERS {
        let Some(rel) = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _ = parts.next()?;
            let ctrls = parts.next()?;
            let path = parts.next()?;
            ctrls.split(',').any(|c| c == controller).then_some(path)
        }) else {
            continue;
        };
        let base = root.join(controller).join(rel.trim_start_matches('/'));
        if nix::unistd::access(&base.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK).is_err()
        {
            continue;
        }
        let dir = base.join("sandbox");
        mkdir(&dir)?;
        hand_over(&dir, sandbox_owner)?;
        files.push(procs_file(&dir)?);
        placed.push(controller);
    }
    let mut layout = Layout::default();
    if placed.is_empty() {
        return Ok(layout);
    }
    layout.join.insert(Component::Sandbox, files);
    layout.summary = format!("cgroup v1: sandbox/ delegated in {}", placed.join(", "));
    Ok(layout)
}
