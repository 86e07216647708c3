//! The command's whole environment (step 14): nothing comes from the caller; every
//! variable here is fixed. Besides PATH/HOME/LANG it switches off the ways programs
//! load user code or run helpers from files the command did not name:
//!
//! - `HOME` is an empty tmpfs of this run ([`super::mounts::HOME`]), not the workspace,
//!   so startup files the agent's file tools write into the workspace (`.bashrc`,
//!   `.sqliterc`, `.gitconfig`, `.local/lib/python3*/site-packages/*.pth`, ...) are
//!   never read as the user's own. `XDG_*_HOME` stay unset: they default inside HOME.
//! - `PYTHONNOUSERSITE=1`: no user site-packages (and so no `.pth` from it).
//! - git: no system config (`GIT_CONFIG_NOSYSTEM`), and command-line-level overrides
//!   (`GIT_CONFIG_COUNT`, stronger than a repository's `.git/config`) that turn off the
//!   repository's fsmonitor hook, hooks directory and pager. They cannot stop every
//!   exec key a `.git/config` may set; the guard's judgment of file writes
//!   ([`crate::guard::classify_write`]) is the barrier for those.
//!
//! Not set, so never inherited: `PYTHONSTARTUP`, `PYTHONPATH`, `PERL5LIB`, `PERL5OPT`,
//! `RUBYOPT`, `NODE_OPTIONS`, `BASH_ENV`, `ENV`, `LD_PRELOAD`, `GIT_CONFIG_*` others.

use super::mounts::HOME;

/// The payload's search path.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Git config overrides, as (key, value): applied above every config file.
const GIT_OVERRIDES: &[(&str, &str)] = &[
    // `git status` would run the repository's fsmonitor hook program.
    ("core.fsmonitor", "false"),
    // No hooks from the repository's `.git/hooks` (a directory that does not exist).
    ("core.hooksPath", "/dev/null"),
    // No pager program from the repository's config.
    ("core.pager", "cat"),
];

/// Every variable of the command's environment, in a fixed order.
pub fn payload_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", SANDBOX_PATH),
        ("HOME", HOME),
        ("LANG", "C.UTF-8"),
        ("PYTHONNOUSERSITE", "1"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push((
        "GIT_CONFIG_COUNT".to_string(),
        GIT_OVERRIDES.len().to_string(),
    ));
    for (i, (key, value)) in GIT_OVERRIDES.iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), key.to_string()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), value.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_variable_that_loads_user_code_is_set() {
        let env = payload_env();
        for bad in [
            "PYTHONSTARTUP",
            "PYTHONPATH",
            "PYTHONUSERBASE",
            "PERL5LIB",
            "PERL5OPT",
            "RUBYOPT",
            "NODE_OPTIONS",
            "BASH_ENV",
            "ENV",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "GIT_CONFIG_GLOBAL",
            "GIT_DIR",
            "XDG_CONFIG_HOME",
        ] {
            assert!(!env.iter().any(|(k, _)| k == bad), "{bad} is set");
        }
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PYTHONNOUSERSITE"), Some("1"));
        assert_eq!(get("HOME"), Some(HOME));
        assert_ne!(get("HOME"), Some(super::super::mounts::WORKSPACE));
    }

    #[test]
    fn git_overrides_are_numbered_from_zero() {
        let env = payload_env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let count: usize = get("GIT_CONFIG_COUNT")
            .and_then(|c| c.parse().ok())
            .expect("count");
        assert_eq!(count, GIT_OVERRIDES.len());
        for i in 0..count {
            assert!(get(&format!("GIT_CONFIG_KEY_{i}")).is_some());
            assert!(get(&format!("GIT_CONFIG_VALUE_{i}")).is_some());
        }
        assert_eq!(get("GIT_CONFIG_KEY_0").as_deref(), Some("core.fsmonitor"));
    }
}
