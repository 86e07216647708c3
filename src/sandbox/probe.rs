//! What this host can enforce, without running anything (for `coworkctl status`).

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::cgroup::{self, Limits};
use super::confine::sys;
use super::report::{Enforcement, IsolationReport, LandlockReport, SeccompReport};

fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether this process may create a user namespace (the built-in backend needs one).
/// Read once per process: these sysctls do not change under a running appliance.
pub fn user_namespaces_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(read_user_namespaces_allowed)
}

fn read_user_namespaces_allowed() -> bool {
    if read_number("/proc/sys/user/max_user_namespaces") == Some(0) {
        return false;
    }
    // Debian/Ubuntu knobs; absent on kernels without the patch.
    if read_number("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return false;
    }
    read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") != Some(1)
}

fn seccomp_available() -> bool {
    fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

/// Reports what a run on this host would get with `cgroup_root` (usually /sys/fs/cgroup).
/// Creates and removes a throw-away cgroup to learn what is writable.
pub fn probe_with(cgroup_root: &Path) -> IsolationReport {
    let abi = sys::landlock_abi();
    let userns = user_namespaces_allowed();
    let cg = cgroup::create(
        cgroup_root,
        None,
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            pids: 16,
            cpu_percent: 100,
        },
    );
    let cgroup = cg.report.clone();
    cg.remove(Duration::from_millis(100));
    let mut weaknesses = Vec::new();
    if !userns {
        weaknesses.push("user namespaces disabled: the built-in backend cannot run".to_string());
    }
    let enforcement = match abi {
        0 => {
            weaknesses.push("landlock unavailable".to_string());
            Enforcement::None
        }
        1..=5 => {
            weaknesses.push(format!("landlock ABI {abi} < 6: partial enforcement"));
            Enforcement::Partial
        }
        _ => Enforcement::Full,
    };
    if !seccomp_available() {
        weaknesses.push("seccomp unavailable".to_string());
    }
    for (on, name) in [
        (cgroup.memory, "memory"),
        (cgroup.pids, "pids"),
        (cgroup.cpu, "cpu"),
    ] {
        if !on {
            weaknesses.push(format!("no {name} cgroup"));
        }
    }
    IsolationReport {
        backend: "builtin".into(),
        namespaces: if userns {
            ["user", "mount", "pid", "ipc", "uts", "cgroup", "net"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        },
        host_uid: None,
        host_gid: None,
        identity: "probe only".into(),
        network: "none by default".into(),
        filesystem: "tmpfs root + pivot_root".into(),
        no_new_privs: true,
        capabilities_dropped: true,
        landlock: LandlockReport {
            abi,
            enforcement,
            tcp_restricted: abi >= 4,
            scoped: abi >= 6,
        },
        seccomp: SeccompReport {
            enabled: seccomp_available(),
            denied_syscalls: 0,
            inet_allowed: false,
        },
        cgroup,
        rlimits: Vec::new(),
        weaknesses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cgroup_hierarchy_is_reported_as_a_weakness() {
        let r = probe_with(Path::new("/nonexistent-cgroup-root"));
        assert_eq!(r.backend, "builtin");
        assert!(!r.cgroup.memory && !r.cgroup.pids);
        assert!(
            r.weaknesses.iter().any(|w| w.contains("no memory cgroup")),
            "{:?}",
            r.weaknesses
        );
        assert!(!r.is_full());
    }
}
