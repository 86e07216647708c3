//! The isolation report: what confinement a run actually got (or what the host can
//! enforce, from [`crate::sandbox::probe`]). Returned with every run and printable.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How far landlock was enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Every requested right is enforced.
    Full,
    /// The kernel enforces an older ABI: some rights (e.g. truncate, TCP, scopes) are not.
    Partial,
    /// Not enforced at all (no landlock in this kernel).
    #[default]
    None,
}

/// Landlock part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LandlockReport {
    /// Kernel landlock ABI version (0 = unavailable).
    pub abi: u32,
    pub enforcement: Enforcement,
    /// TCP bind/connect also restricted by landlock (network off, ABI >= 4).
    pub tcp_restricted: bool,
    /// Abstract unix sockets and signals scoped to the sandbox (ABI >= 6).
    pub scoped: bool,
}

/// Seccomp part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SeccompReport {
    pub enabled: bool,
    /// Syscalls with a deny rule (some only for certain arguments).
    pub denied_syscalls: usize,
    /// socket(AF_INET/AF_INET6) allowed (network switch on).
    pub inet_allowed: bool,
}

/// Cgroup part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CgroupReport {
    /// "v1", "v2", or None when no writable hierarchy was found.
    pub version: Option<String>,
    pub memory: bool,
    pub pids: bool,
    pub cpu: bool,
    /// Why a controller is off, if one is.
    pub note: Option<String>,
}

/// One resource limit applied with setrlimit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitEntry {
    pub name: String,
    pub value: u64,
}

/// What isolation a run got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IsolationReport {
    /// "builtin" or "docker".
    pub backend: String,
    /// Namespaces the command runs in: user, mount, pid, ipc, uts, cgroup, net.
    pub namespaces: Vec<String>,
    /// Host uid/gid the command runs as (never 0).
    pub host_uid: Option<u32>,
    pub host_gid: Option<u32>,
    /// How the identity was obtained.
    pub identity: String,
    /// "none" (empty network namespace, inet sockets denied) or "host".
    pub network: String,
    /// Filesystem view.
    pub filesystem: String,
    pub no_new_privs: bool,
    pub capabilities_dropped: bool,
    pub landlock: LandlockReport,
    pub seccomp: SeccompReport,
    pub cgroup: CgroupReport,
    pub rlimits: Vec<RlimitEntry>,
    /// Every mechanism that is missing or weaker than designed, in words.
    pub weaknesses: Vec<String>,
}

impl IsolationReport {
    /// One line for `coworkctl status` and the dashboard.
    pub fn summary(&self) -> String {
        let landlock = match self.landlock.enforcement {
            Enforcement::Full => format!("landlock ABI {} full", self.landlock.abi),
            Enforcement::Partial => format!("landlock ABI {} partial", self.landlock.abi),
            Enforcement::None => "no landlock".to_string(),
        };
        let cgroup = match &self.cgroup.version {
            Some(v) => {
                let on: Vec<&str> = [
                    ("memory", self.cgroup.memory),
                    ("pids", self.cgroup.pids),
                    ("cpu", self.cgroup.cpu),
                ]
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| *n)
                .collect();
                format!("cgroup {v} {}", on.join("+"))
            }
            None => "no cgroup (rlimits only)".to_string(),
        };
        format!(
            "{}: namespaces {}; {landlock}; seccomp {}; {cgroup}",
            if self.is_full() {
                "full isolation"
            } else {
                "WEAKER isolation"
            },
            self.namespaces.join(","),
            if self.seccomp.enabled { "on" } else { "off" },
        )
    }

    /// True when nothing is missing or weaker than designed.
    pub fn is_full(&self) -> bool {
        self.weaknesses.is_empty()
    }

    /// JSON rendering (for `coworkctl status`, logs and the audit trail).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for IsolationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "on" } else { "off" };
        writeln!(
            f,
            "isolation report ({} backend): {}",
            self.backend,
            if self.is_full() {
                "full"
            } else {
                "WEAKER THAN DESIGNED"
            }
        )?;
        writeln!(
            f,
            "  namespaces:   {}",
            if self.namespaces.is_empty() {
                "none".to_string()
            } else {
                self.namespaces.join(", ")
            }
        )?;
        let ids = match (self.host_uid, self.host_gid) {
            (Some(u), Some(g)) => format!("uid {u} gid {g}"),
            _ => "unknown".to_string(),
        };
        writeln!(f, "  identity:     {ids} ({})", self.identity)?;
        writeln!(f, "  network:      {}", self.network)?;
        writeln!(f, "  filesystem:   {}", self.filesystem)?;
        writeln!(
            f,
            "  no_new_privs: {}, capabilities dropped: {}",
            yn(self.no_new_privs),
            yn(self.capabilities_dropped)
        )?;
        writeln!(
            f,
            "  landlock:     ABI {}, {:?} enforcement, tcp restricted: {}, scoped: {}",
            self.landlock.abi,
            self.landlock.enforcement,
            yn(self.landlock.tcp_restricted),
            yn(self.landlock.scoped)
        )?;
        writeln!(
            f,
            "  seccomp:      {} ({} denied syscalls, inet sockets {})",
            yn(self.seccomp.enabled),
            self.seccomp.denied_syscalls,
            if self.seccomp.inet_allowed {
                "allowed"
            } else {
                "denied"
            }
        )?;
        writeln!(
            f,
            "  cgroup:       {} (memory {}, pids {}, cpu {}){}",
            self.cgroup.version.as_deref().unwrap_or("none"),
            yn(self.cgroup.memory),
            yn(self.cgroup.pids),
            yn(self.cgroup.cpu),
            self.cgroup
                .note
                .as_deref()
                .map(|n| format!(" - {n}"))
                .unwrap_or_default()
        )?;
        let rl: Vec<String> = self
            .rlimits
            .iter()
            .map(|r| format!("{}={}", r.name, r.value))
            .collect();
        writeln!(
            f,
            "  rlimits:      {}",
            if rl.is_empty() {
                "none".to_string()
            } else {
                rl.join(", ")
            }
        )?;
        for w in &self.weaknesses {
            writeln!(f, "  WEAKER:       {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_roundtrips_and_prints() {
        let r = IsolationReport {
            backend: "builtin".into(),
            namespaces: vec!["user".into(), "pid".into()],
            weaknesses: vec!["cgroup: none".into()],
            ..Default::default()
        };
        let back: IsolationReport = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(back, r);
        let text = r.to_string();
        assert!(text.contains("user, pid"), "{text}");
        assert!(text.contains("WEAKER"), "{text}");
        assert!(!r.is_full());
    }
}
