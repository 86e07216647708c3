//! Per-run cgroup (memory, pids, cpu), created by the parent under the cgroup the
//! appliance itself runs in (so the host's own accounting still covers it), joined by
//! the helper before it reads its spec, killed and removed after the run.
//! Works on cgroup v2 (unified) and v1 (one hierarchy per controller, as on this host).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::report::CgroupReport;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Limits to write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: u64,
    /// pids.max (the helper and the sandbox init count too).
    pub pids: u64,
    pub cpu_percent: u32,
}

/// A created per-run cgroup (one directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub struct RunCgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
    pub report: CgroupReport,
}

/// Where this process sits in each hierarchy, from /proc/self/cgroup.
fn own_paths() -> io::Result<Vec<(String, String)>> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some((controllers, path))
        })
        .collect())
}

fn join(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value)
}

fn unique_name() -> String {
    format!(
        "cowork-sandbox-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates the per-run cgroup. Never fails: what could not be set is off in the report.
/// `delegated`: a v2 directory the supervisor prepared for per-run cgroups (its
/// controllers enabled, owned by us); without it, runs go under our own cgroup.
pub fn create(root: &Path, delegated: Option<&Path>, limits: Limits) -> RunCgroup {
    let none = |note: String| RunCgroup {
        dirs: Vec::new(),
        v2: false,
        report: CgroupReport {
            note: Some(note),
            ..Default::default()
        },
    };
    let paths = match own_paths() {
        Ok(p) => p,
        Err(e) => return none(format!("cannot read /proc/self/cgroup: {e}")),
    };
    let name = unique_name();
    if let Some(parent) = delegated {
        return create_v2(parent, &name, limits).unwrap_or_else(|e| {
            none(format!(
                "delegated cgroup {} not usable: {e}",
                parent.display()
            ))
        });
    }
    if root.join("cgroup.controllers").exists() {
        let Some((_, rel)) = paths.iter().find(|(c, _)| c.is_empty()) else {
            return none("no cgroup v2 entry in /proc/self/cgroup".into());
        };
        create_v2(&join(root, rel), &name, limits)
            .unwrap_or_else(|e| none(format!("cgroup v2 not writable: {e}")))
    } else {
        create_v1(root, &paths, &name, limits)
    }
}

/// Takes over the cgroup v2 subtree systemd delegated to the sandbox's own unit
/// (`cowork-sandbox.service`, `Delegate=`): moves this process into a `service/`
/// leaf (no process may sit in a node whose children have controllers), enables
/// memory, pids and cpu for the children, and returns the node per-command
/// cgroups are created in.
///
/// ```text
/// cowork-sandbox.service/      returned: controllers enabled for its children
///   service/                   the sandbox component itself
///   cowork-sandbox-PID-N/      one per command
/// ```
pub fn adopt_delegated(root: &Path) -> Result<PathBuf, String> {
    if !root.join("cgroup.controllers").exists() {
        return Err(format!(
            "{} is not a cgroup v2 hierarchy (the unit's delegation needs the unified one)",
            root.display()
        ));
    }
    let paths = own_paths().map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let Some((_, rel)) = paths.iter().find(|(c, _)| c.is_empty()) else {
        return Err("no cgroup v2 entry in /proc/self/cgroup".into());
    };
    let base = join(root, rel.trim());
    let leaf = base.join("service");
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "creating {} ({e}): is Delegate= set in the unit?",
                leaf.display()
            ));
        }
    }
    write(&leaf, "cgroup.procs", &std::process::id().to_string())
        .map_err(|e| format!("moving into {}: {e}", leaf.display()))?;
    let available = fs::read_to_string(base.join("cgroup.controllers"))
        .map_err(|e| format!("reading {}: {e}", base.join("cgroup.controllers").display()))?;
    let wanted: Vec<String> = ["memory", "pids", "cpu"]
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if !wanted.is_empty() {
        write(&base, "cgroup.subtree_control", &wanted.join(" ")).map_err(|e| {
            format!(
                "enabling {} in {}: {e}",
                wanted.join(" "),
                base.join("cgroup.subtree_control").display()
            )
        })?;
    }
    Ok(base)
}

fn create_v2(base: &Path, name: &str, limits: Limits) -> io::Result<RunCgroup> {
    let enabled = fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
    if !["memory", "pids", "cpu"]
        .iter()
        .all(|c| enabled.split_whitespace().any(|e| e == *c))
    {
        // Fails when `base` holds processes (no-internal-processes rule): then no cgroup.
        write(base, "cgroup.subtree_control", "+memory +pids +cpu")?;
    }
    let dir = base.join(name);
    fs::create_dir(&dir)?;
    let mut cg = RunCgroup {
        dirs: vec![dir.clone()],
        v2: true,
        report: CgroupReport {
            version: Some("v2".into()),
            ..Default::default()
        },
    };
    cg.report.memory = write(&dir, "memory.max", &limits.memory_bytes.to_string()).is_ok();
    let _ = write(&dir, "memory.swap.max", "0");
    cg.report.pids = write(&dir, "pids.max", &limits.pids.to_string()).is_ok();
    let quota = u64::from(limits.cpu_percent) * 1000;
    cg.report.cpu = write(&dir, "cpu.max", &format!("{quota} 100000")).is_ok();
    Ok(cg)
}

fn create_v1(root: &Path, paths: &[(String, String)], name: &str, limits: Limits) -> RunCgroup {
    let mut cg = RunCgroup {
        dirs: Vec::new(),
        v2: false,
        report: CgroupReport {
            version: Some("v1".into()),
            ..Default::default()
        },
    };
    let mut notes = Vec::new();
    for controller in ["memory", "pids", "cpu"] {
        let Some((_, rel)) = paths
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == controller))
        else {
            notes.push(format!("{controller}: not mounted"));
            continue;
        };
        let dir = join(&root.join(controller), rel).join(name);
        let result = fs::create_dir(&dir).and_then(|()| {
            cg.dirs.push(dir.clone());
            match controller {
                "memory" => {
                    write(
                        &dir,
                        "memory.limit_in_bytes",
                        &limits.memory_bytes.to_string(),
                    )?;
                    // Without swap accounting this file is absent; the limit above still holds.
                    let _ = write(
                        &dir,
                        "memory.memsw.limit_in_bytes",
                        &limits.memory_bytes.to_string(),
                    );
                    Ok(())
                }
                "pids" => write(&dir, "pids.max", &limits.pids.to_string()),
                _ => {
                    write(&dir, "cpu.cfs_period_us", "100000")?;
                    write(
                        &dir,
                        "cpu.cfs_quota_us",
                        &(u64::from(limits.cpu_percent) * 1000).to_string(),
                    )
                }
            }
        });
        match (controller, result) {
            ("memory", Ok(())) => cg.report.memory = true,
            ("pids", Ok(())) => cg.report.pids = true,
            ("cpu", Ok(())) => cg.report.cpu = true,
            (_, Err(e)) => notes.push(format!("{controller}: {e}")),
            _ => {}
        }
    }
    if !(cg.report.memory || cg.report.pids || cg.report.cpu) {
        cg.report.version = None;
    }
    if !notes.is_empty() {
        cg.report.note = Some(notes.join("; "));
    }
    cg
}

impl RunCgroup {
    /// Moves `pid` (the helper, before it forks) into every created directory.
    pub fn attach(&mut self, pid: u32) {
        let mut failed = Vec::new();
        for dir in &self.dirs {
            if let Err(e) = write(dir, "cgroup.procs", &pid.to_string()) {
                // Where we are decides whether we may move it (the common
                // ancestor's cgroup.procs must be ours): say it.
                let ours = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                failed.push(format!(
                    "attach {}: {e} (sandbox in {})",
                    dir.display(),
                    ours.lines().last().unwrap_or("?")
                ));
                let ctrl = dir.to_string_lossy();
                if self.v2 {
                    self.report.memory = false;
                    self.report.pids = false;
                    self.report.cpu = false;
                } else if ctrl.contains("/memory/") {
                    self.report.memory = false;
                } else if ctrl.contains("/pids/") {
                    self.report.pids = false;
                } else if ctrl.contains("/cpu/") {
                    self.report.cpu = false;
                }
            }
        }
        if !failed.is_empty() {
            let mut note = self.report.note.take().unwrap_or_default();
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&failed.join("; "));
            self.report.note = Some(note);
        }
    }

    fn procs(&self) -> Vec<i32> {
        self.dirs
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }

    /// SIGKILLs every process still in the cgroup.
    pub fn kill_all(&self) {
        if self.v2
            && let Some(d) = self.dirs.first()
            && write(d, "cgroup.kill", "1").is_ok()
        {
            return;
        }
        for pid in self.procs() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Kills leftovers and removes the directories (waits up to `grace` for them to empty).
    pub fn remove(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        loop {
            let procs = self.procs();
            if procs.is_empty() || Instant::now() >= deadline {
                break;
            }
            self.kill_all();
            std::thread::sleep(Duration::from_millis(5));
        }
        for dir in &self.dirs {
            let mut tries = 0;
            while fs::remove_dir(dir).is_err() && tries < 50 {
                tries += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}
