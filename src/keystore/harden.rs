//! Process hardening every component runs first: no core dumps, no ptrace
//! attach by same-uid processes (Linux: not dumpable), so key material in
//! memory does not end up in a core file or another process.

use nix::sys::resource::{Resource, setrlimit};

use super::error::KeystoreError;

/// Sets RLIMIT_CORE to 0 (soft and hard) and, on Linux, PR_SET_DUMPABLE to 0.
/// Call it first thing in the supervisor and in every component.
pub fn harden_process() -> Result<(), KeystoreError> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| KeystoreError::Harden {
        operation: "setrlimit(RLIMIT_CORE, 0)",
        reason: e.to_string(),
    })?;
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_dumpable(false).map_err(|e| KeystoreError::Harden {
        operation: "prctl(PR_SET_DUMPABLE, 0)",
        reason: e.to_string(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardening_applies() {
        // Applying it to the test process is harmless: tests need no core dumps.
        harden_process().unwrap();
        let (soft, hard) = nix::sys::resource::getrlimit(Resource::RLIMIT_CORE).unwrap();
        assert_eq!((soft, hard), (0, 0));
        #[cfg(target_os = "linux")]
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
    }
}
