//! OS keychain tier. Only offered where the keychain persists across
//! reboots without a user login: the macOS System keychain (via the keyring
//! crate, root only). On Linux the kernel keyring is per-boot, and the
//! Secret Service needs a logged-in desktop session, so the tier reports
//! itself unavailable instead of pretending.

#[cfg(not(target_os = "macos"))]
use super::error::KeystoreError;
#[cfg(not(target_os = "macos"))]
use super::key::MasterKey;

/// Keychain entry names (service, account) for the current and pending master.
#[cfg(target_os = "macos")]
const SERVICE: &str = "cowork-os";

/// Why the keychain tier cannot be used here, or `Ok` if it can.
#[cfg(not(target_os = "macos"))]
pub(super) fn availability() -> Result<(), String> {
    Err(
        "no persistent OS keychain on this platform: the Linux kernel keyring does not survive \
         a reboot and the Secret Service needs a logged-in desktop session"
            .to_string(),
    )
}

#[cfg(not(target_os = "macos"))]
pub(super) fn load(_account: &str) -> Result<Option<MasterKey>, KeystoreError> {
    Ok(None)
}

#[cfg(not(target_os = "macos"))]
pub(super) fn store(_account: &str, _key: &MasterKey) -> Result<(), KeystoreError> {
    Err(KeystoreError::KeychainUnavailable {
        reason: availability().err().unwrap_or_default(),
    })
}

#[cfg(not(target_os = "macos"))]
pub(super) fn remove(_account: &str) -> Result<(), KeystoreError> {
    Ok(())
}

#[cfg(target_os = "macos")]
pub(super) use macos::{availability, load, remove, store};

#[cfg(target_os = "macos")]
mod macos {
    use super::SERVICE;
    use crate::keystore::error::KeystoreError;
    use crate::keystore::key::MasterKey;
    use zeroize::Zeroizing;

    /// The System keychain persists across reboots and is readable by root
    /// daemons without a login session.
    const TARGET: &str = "System";

    fn entry(account: &str) -> Result<keyring::Entry, KeystoreError> {
        keyring::Entry::new_with_target(TARGET, SERVICE, account).map_err(|e| {
            KeystoreError::Keychain {
                operation: "open entry",
                reason: e.to_string(),
            }
        })
    }

    pub(in crate::keystore) fn availability() -> Result<(), String> {
        if nix::unistd::geteuid().is_root() {
            Ok(())
        } else {
            Err("the macOS System keychain is writable by root only; running unprivileged".into())
        }
    }

    pub(in crate::keystore) fn load(account: &str) -> Result<Option<MasterKey>, KeystoreError> {
        match entry(account)?.get_secret() {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                MasterKey::from_slice(&bytes)
                    .map(Some)
                    .ok_or_else(|| KeystoreError::Keychain {
                        operation: "read master key",
                        reason: format!("entry holds {} bytes, expected 32", bytes.len()),
                    })
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(KeystoreError::Keychain {
                operation: "read master key",
                reason: e.to_string(),
            }),
        }
    }

    pub(in crate::keystore) fn store(account: &str, key: &MasterKey) -> Result<(), KeystoreError> {
        entry(account)?
            .set_secret(key.bytes())
            .map_err(|e| KeystoreError::Keychain {
                operation: "store master key",
                reason: e.to_string(),
            })
    }

    pub(in crate::keystore) fn remove(account: &str) -> Result<(), KeystoreError> {
        match entry(account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(KeystoreError::Keychain {
                operation: "delete entry",
                reason: e.to_string(),
            }),
        }
    }
}
