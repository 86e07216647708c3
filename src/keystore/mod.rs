//! Keystore: the installation's master key and the secrets vault.
//!
//! **Role.** Holds the 256-bit master key, sealed by the best store present
//! (TPM 2.0 → OS keychain → 0600 host key file), and hands out per-purpose
//! keys derived with HKDF-SHA256 ([`Keystore::derive`]). The master key
//! itself never leaves this module (STYLE habit 6). The [`vault`] submodule
//! encrypts secrets (LLM API keys, channel tokens, signing secrets) with the
//! derived vault key, in a table of the gateway's `state.db`.
//!
//! **Peers.** The supervisor opens the keystore at start (after
//! [`harden_process`]) and passes derived keys to components over IPC; the
//! gateway owns `state.db` and calls [`vault::Vault`] on its connection;
//! `coworkctl secret rotate-master` drives the two-phase rotation below.
//!
//! **Privileges.** Read/write of `$STATE/supervisor/keystore/` (mode 0700,
//! owned by the supervisor's user) and access to the TPM (`/dev/tpmrm0`, root
//! only: `udev/60-cowork-tpm.rules` sets it 0600 root:root, and only the
//! supervisor runs as root) or the macOS System keychain (root). The TPM
//! commands themselves run in `coworkd-tpm`, a helper the supervisor starts per
//! probe, seal or unseal ([`TpmHelper`]), so no long-lived process maps the TSS
//! libraries.
//!
//! **Data owned.** `$STATE/supervisor/keystore/master.tpm2` (sealed blob: public +
//! private parts, never the key), or `master.key` (host key, 0600), the
//! `*.pending` slot of an unfinished rotation, and the `vault_secrets` /
//! `vault_check` tables inside `state.db`.
//!
//! ## Tier selection (`tier = "auto"`)
//! Existing state decides first: a sealed blob means tpm2 (and a TPM that
//! then fails is an error, never a silent fallback that would mint a new
//! key); a keychain entry means keychain; a host key file means file (with
//! `TierReport::migration_available` when a TPM now works). With no state,
//! tpm2 is used if the TCTI opens and a storage key can be created, else the
//! keychain if persistent, else the host key file (software-bound: the
//! caller logs a warning).
//!
//! ## Master rotation (crash-safe order)
//! 1. [`Keystore::prepare_rotation`] generates the new master and stores it in
//!    the tier's *pending* slot (`master.*.pending`), verified by read-back.
//!    The current master is untouched.
//! 2. The gateway runs [`vault::Vault::rewrap`] with the old and new vault
//!    keys: one SQLite transaction re-encrypts every row **and** the
//!    `vault_check` row. This transaction is the commit point.
//! 3. [`Keystore::commit_rotation`] renames the pending slot over the current
//!    one (atomic rename + directory fsync; the old host key is overwritten).
//!
//! A crash after 1 or 2 leaves both masters on disk; the next
//! [`Keystore::open`] reports `interrupted_rotation`, and
//! [`Keystore::resolve_interrupted_rotation`] asks which key opens the
//! vault's check row: the current one → the pending slot is discarded; the
//! pending one → it is promoted (finishing step 3). A crash inside 3 leaves
//! at most a `.old` name that the next open removes.

pub mod error;
mod fsutil;
mod harden;
mod key;
mod keychain;
mod store;
#[cfg(target_os = "linux")]
mod tpm2;
#[cfg(not(target_os = "linux"))]
#[path = "tpm2_stub.rs"]
mod tpm2;
mod tpm_helper;
pub mod vault;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::{KeystoreError, VaultError};
pub use harden::harden_process;
pub use key::{DerivedKey, KEY_LEN, Purpose};
pub use tpm_helper::{TpmHelper, helper_main as tpm_helper_main};

use key::MasterKey;
use store::{Slot, Store};

/// Name of the keystore's directory under the state directory.
pub const KEYSTORE_DIR: &str = "keystore";

/// Which tier the settings ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierChoice {
    /// Use existing state, else the best tier that works.
    #[default]
    Auto,
    /// TPM 2.0 only.
    Tpm2,
    /// OS keychain only (macOS System keychain).
    Keychain,
    /// Host key file only.
    File,
}

impl std::str::FromStr for TierChoice {
    type Err = KeystoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(TierChoice::Auto),
            "tpm2" => Ok(TierChoice::Tpm2),
            "keychain" => Ok(TierChoice::Keychain),
            "file" => Ok(TierChoice::File),
            other => Err(KeystoreError::UnknownTier {
                tier: other.to_string(),
            }),
        }
    }
}

/// A tier that actually holds a master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierKind {
    /// Sealed by a TPM 2.0.
    Tpm2,
    /// In the OS keychain.
    Keychain,
    /// In a 0600 host key file (software-bound).
    File,
}

impl TierKind {
    /// Whether a copy of the disk is enough to obtain the key.
    pub fn software_bound(self) -> bool {
        matches!(self, TierKind::File)
    }
}

impl fmt::Display for TierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TierKind::Tpm2 => "tpm2",
            TierKind::Keychain => "keychain",
            TierKind::File => "file",
        })
    }
}

/// `[keystore]` section of the appliance configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeystoreSettings {
    /// "auto" | "tpm2" | "keychain" | "file".
    pub tier: TierChoice,
    /// TSS2 TCTI: `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
    pub tcti: String,
    /// sha256 PCR indexes the sealed master key is bound to (empty: none).
    pub pcrs: Vec<u8>,
}

impl Default for KeystoreSettings {
    fn default() -> Self {
        KeystoreSettings {
            tier: TierChoice::Auto,
            tcti: "device:/dev/tpmrm0".to_string(),
            pcrs: Vec::new(),
        }
    }
}

impl KeystoreSettings {
    fn validate(&self) -> Result<Vec<u8>, KeystoreError> {
        let mut pcrs = self.pcrs.clone();
        if let Some(&index) = pcrs.iter().find(|&&p| p > 23) {
            return Err(KeystoreError::InvalidPcr { index });
        }
        pcrs.sort_unstable();
        pcrs.dedup();
        Ok(pcrs)
    }
}

/// A tier that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTier {
    /// The tier.
    pub tier: TierKind,
    /// Why it was not used.
    pub reason: String,
}

/// What [`Keystore::open`] chose and found; the supervisor logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierReport {
    /// The tier holding the master key.
    pub tier: TierKind,
    /// True for the host key file: log a warning in production.
    pub software_bound: bool,
    /// A new master key was generated at this start.
    pub created: bool,
    /// Tiers not used, with the reason.
    pub skipped: Vec<SkippedTier>,
    /// A better tier works now; `migrate_to` can move the key there.
    pub migration_available: Option<TierKind>,
    /// A rotation was interrupted: call
    /// [`Keystore::resolve_interrupted_rotation`] before handing out keys.
    pub interrupted_rotation: bool,
    /// Repairs done at open (finished migration, removed leftovers).
    pub notes: Vec<String>,
}

/// Outcome of [`Keystore::resolve_interrupted_rotation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationResolution {
    /// Nothing was pending.
    NothingPending,
    /// The vault is still under the current master: the pending one was discarded.
    KeptCurrent,
    /// The vault was already re-wrapped: the pending master was promoted.
    PromotedPending,
}

/// A new master key stored in the pending slot but not yet current
/// (phase 1 of a rotation). It derives the new keys for the re-wrap.
pub struct PendingMaster {
    key: MasterKey,
    tier: TierKind,
}

impl PendingMaster {
    /// A key derived from the new master.
    pub fn derive(&self, purpose: Purpose) -> DerivedKey {
        self.key.derive(purpose)
    }
}

impl fmt::Debug for PendingMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingMaster")
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

/// The open keystore. Holds the master key in a zeroizing buffer.
pub struct Keystore {
    store: Store,
    tier: TierKind,
    master: MasterKey,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("dir", &self.store.dir)
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

/// Why the TPM cannot be used, or `Ok` if a storage key can be created.
fn probe_tpm(store: &Store) -> Result<(), String> {
    store.tpm.probe(&store.tcti).map_err(|e| e.to_string())
}

impl Keystore {
    /// Opens (or on first start creates) the master key under
    /// `state_dir/keystore/`. Returns the keystore and what was chosen; when
    /// `report.software_bound` the caller logs a warning.
    /// The TPM is reached through `tpm` (see [`TpmHelper`]).
    pub fn open(
        settings: &KeystoreSettings,
        state_dir: &Path,
        tpm: &TpmHelper,
    ) -> Result<(Keystore, TierReport), KeystoreError> {
        let pcrs = settings.validate()?;
        let dir = state_dir.join(KEYSTORE_DIR);
        fsutil::ensure_private_dir(&dir)?;
        let store = Store {
            dir: dir.clone(),
            tcti: settings.tcti.clone(),
            pcrs,
            tpm: tpm.clone(),
        };
        let mut report = TierReport {
            tier: TierKind::File,
            software_bound: true,
            created: false,
            skipped: Vec::new(),
            migration_available: None,
            interrupted_rotation: false,
            notes: Vec::new(),
        };

        let has_blob = store.exists(TierKind::Tpm2, Slot::Current)?;
        let has_file = store.exists(TierKind::File, Slot::Current)?;
        let has_keychain = store.exists(TierKind::Keychain, Slot::Current)?;
        let existing = if has_blob {
            Some(TierKind::Tpm2)
        } else if has_keychain {
            Some(TierKind::Keychain)
        } else if has_file {
            Some(TierKind::File)
        } else {
            None
        };

        let tier = match (settings.tier, existing) {
            (TierChoice::Auto, Some(t)) => {
                if t == TierKind::File {
                    match probe_tpm(&store) {
                        Ok(()) => report.migration_available = Some(TierKind::Tpm2),
                        Err(reason) => report.skipped.push(SkippedTier {
                            tier: TierKind::Tpm2,
                            reason,
                        }),
                    }
                }
                t
            }
            (TierChoice::Auto, None) => {
                let chosen = match probe_tpm(&store) {
                    Ok(()) => Some(TierKind::Tpm2),
                    Err(reason) => {
                        report.skipped.push(SkippedTier {
                            tier: TierKind::Tpm2,
                            reason,
                        });
                        None
                    }
                };
                match chosen {
                    Some(t) => t,
                    None => match keychain::availability() {
                        Ok(()) => TierKind::Keychain,
                        Err(reason) => {
                            report.skipped.push(SkippedTier {
                                tier: TierKind::Keychain,
                                reason,
                            });
                            TierKind::File
                        }
                    },
                }
            }
            (choice, existing) => {
                let wanted = match choice {
                    TierChoice::Tpm2 => TierKind::Tpm2,
                    TierChoice::Keychain => TierKind::Keychain,
                    _ => TierKind::File,
                };
                if wanted == TierKind::Keychain
                    && let Err(reason) = keychain::availability()
                {
                    return Err(KeystoreError::KeychainUnavailable { reason });
                }
                if let Some(found) = existing
                    && found != wanted
                    // A tpm2 blob next to a host key is an interrupted migration.
                    && !(wanted == TierKind::Tpm2 && has_blob)
                {
                    return Err(KeystoreError::TierMismatch {
                        path: dir.clone(),
                        found,
                        wanted,
                    });
                }
                wanted
            }
        };
        report.tier = tier;
        report.software_bound = tier.software_bound();

        store.cleanup_old(tier)?;
        let master = match store.load(tier, Slot::Current)? {
            Some(k) => k,
            None => {
                let k = MasterKey::generate()?;
                store.write(tier, Slot::Current, &k)?;
                report.created = true;
                k
            }
        };

        // A host key next to a sealed blob: a migration stopped before it
        // removed the host key. Finish it if both hold the same key.
        if tier == TierKind::Tpm2 && has_file {
            match store.load(TierKind::File, Slot::Current)? {
                Some(fk) if fk.ct_eq(&master) => {
                    store.remove(TierKind::File, Slot::Current)?;
                    report.notes.push(
                        "finished an interrupted file→tpm2 migration: removed master.key".into(),
                    );
                }
                Some(_) => {
                    return Err(KeystoreError::ConflictingMasters {
                        path: dir,
                        reason: "master.key and master.tpm2 hold different keys".into(),
                    });
                }
                None => {}
            }
        }

        if store.exists(tier, Slot::Pending)? {
            // Unseal it now so a damaged pending slot is reported at start.
            if store.load(tier, Slot::Pending)?.is_some() {
                report.interrupted_rotation = true;
            }
        }

        Ok((
            Keystore {
                store,
                tier,
                master,
            },
            report,
        ))
    }

    /// The tier holding the master key.
    pub fn tier(&self) -> TierKind {
        self.tier
    }

    /// The keystore directory (`$STATE/keystore`).
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// The key for `purpose`: HKDF-SHA256(master, info = "cowork/v1/<purpose>").
    pub fn derive(&self, purpose: Purpose) -> DerivedKey {
        self.master.derive(purpose)
    }

    /// Whether a pending master from an interrupted rotation is on disk.
    pub fn interrupted_rotation(&self) -> Result<bool, KeystoreError> {
        self.store.exists(self.tier, Slot::Pending)
    }

    /// Moves the master key to another tier. Offered: file → tpm2 (a TPM was
    /// added) and file → keychain. The same key is sealed, written
    /// atomically and test-unsealed from disk; only then is the host key file
    /// overwritten and unlinked. Secrets stay readable.
    pub fn migrate_to(&mut self, target: TierKind) -> Result<(), KeystoreError> {
        if target == self.tier {
            return Ok(());
        }
        if self.tier != TierKind::File || target == TierKind::File {
            return Err(KeystoreError::MigrationUnsupported {
                from: self.tier,
                to: target,
            });
        }
        if self.interrupted_rotation()? {
            return Err(KeystoreError::RotationInProgress {
                path: self.store.path(self.tier, Slot::Pending),
            });
        }
        if target == TierKind::Keychain
            && let Err(reason) = keychain::availability()
        {
            return Err(KeystoreError::KeychainUnavailable { reason });
        }
        // write() refuses to replace an existing target and verifies by a
        // test unseal of what is on disk.
        self.store.write(target, Slot::Current, &self.master)?;
        self.store.remove(TierKind::File, Slot::Current)?;
        self.tier = target;
        Ok(())
    }

    /// Phase 1 of `secret rotate-master`: a new master key, stored in the
    /// pending slot (verified), not yet current. Refused while another
    /// rotation is pending.
    pub fn prepare_rotation(&self) -> Result<PendingMaster, KeystoreError> {
        if self.interrupted_rotation()? {
            return Err(KeystoreError::RotationInProgress {
                path: self.store.path(self.tier, Slot::Pending),
            });
        }
        let key = MasterKey::generate()?;
        self.store.write(self.tier, Slot::Pending, &key)?;
        Ok(PendingMaster {
            key,
            tier: self.tier,
        })
    }

    /// Phase 3: after the vault re-wrap transaction committed, make the
    /// pending master current (atomic rename; the old host key is
    /// overwritten). The keystore derives from the new master afterwards.
    pub fn commit_rotation(&mut self, pending: PendingMaster) -> Result<(), KeystoreError> {
        let path = self.store.path(self.tier, Slot::Pending);
        if pending.tier != self.tier {
            return Err(KeystoreError::RotationMismatch {
                path,
                reason: format!(
                    "prepared for tier {}, keystore is {}",
                    pending.tier, self.tier
                ),
            });
        }
        match self.store.load(self.tier, Slot::Pending)? {
            Some(k) if k.ct_eq(&pending.key) => {}
            Some(_) => {
                return Err(KeystoreError::RotationMismatch {
                    path,
                    reason: "the pending slot holds a different key".into(),
                });
            }
            None => {
                return Err(KeystoreError::RotationMismatch {
                    path,
                    reason: "the pending slot is empty".into(),
                });
            }
        }
        self.store.promote_pending(self.tier)?;
        self.master = pending.key;
        Ok(())
    }

    /// Abandons a prepared rotation whose re-wrap did not happen (or was
    /// rolled back): discards the pending slot.
    pub fn abort_rotation(&mut self, pending: PendingMaster) -> Result<(), KeystoreError> {
        drop(pending);
        self.store.remove(self.tier, Slot::Pending)
    }

    /// After a crash between the rotation phases: `opens_vault` is asked
    /// whether a candidate vault key opens the vault's check row (the
    /// gateway answers with `Vault::opens`). The current master is asked
    /// first; if it opens the vault the pending master is discarded, else if
    /// the pending one does it is promoted; if neither, both are kept and
    /// an error is returned.
    pub fn resolve_interrupted_rotation(
        &mut self,
        mut opens_vault: impl FnMut(DerivedKey) -> bool,
    ) -> Result<RotationResolution, KeystoreError> {
        let Some(pending) = self.store.load(self.tier, Slot::Pending)? else {
            return Ok(RotationResolution::NothingPending);
        };
        if opens_vault(self.master.derive(Purpose::Vault)) {
            self.store.remove(self.tier, Slot::Pending)?;
            return Ok(RotationResolution::KeptCurrent);
        }
        if opens_vault(pending.derive(Purpose::Vault)) {
            self.store.promote_pending(self.tier)?;
            self.master = pending;
            return Ok(RotationResolution::PromotedPending);
        }
        Err(KeystoreError::RotationUnresolved {
            path: self.store.dir.clone(),
        })
    }

    /// The vault key of an interrupted rotation's pending master, if one is on
    /// disk: the supervisor asks the gateway which of the two opens the vault
    /// before calling [`Keystore::resolve_interrupted_rotation`].
    pub fn pending_vault_key(&self) -> Result<Option<DerivedKey>, KeystoreError> {
        Ok(self
            .store
            .load(self.tier, Slot::Pending)?
            .map(|pending| pending.derive(Purpose::Vault)))
    }

    /// Path of the file holding the current master (tests, diagnostics).
    pub fn master_path(&self) -> PathBuf {
        self.store.path(self.tier, Slot::Current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit tests never reach a TPM: the integration tests run the helper.
    fn no_helper() -> TpmHelper {
        TpmHelper::new("/nonexistent/coworkd-tpm")
    }

    #[test]
    fn settings_defaults_and_toml() {
        let s: KeystoreSettings = toml::from_str("").unwrap();
        assert_eq!(s, KeystoreSettings::default());
        assert_eq!(s.tcti, "device:/dev/tpmrm0");
        let s: KeystoreSettings = toml::from_str("tier = \"file\"\npcrs = [7]").unwrap();
        assert_eq!(s.tier, TierChoice::File);
        assert!(toml::from_str::<KeystoreSettings>("tier = \"hsm\"").is_err());
        assert!(toml::from_str::<KeystoreSettings>("colour = 1").is_err());
    }

    #[test]
    fn bad_pcr_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = KeystoreSettings {
            pcrs: vec![24],
            ..Default::default()
        };
        assert!(matches!(
            Keystore::open(&s, d.path(), &no_helper()),
            Err(KeystoreError::InvalidPcr { index: 24 })
        ));
    }

    #[test]
    fn keychain_reports_why_on_linux() {
        #[cfg(target_os = "linux")]
        {
            let d = tempfile::tempdir().unwrap();
            let s = KeystoreSettings {
                tier: TierChoice::Keychain,
                ..Default::default()
            };
            let e = Keystore::open(&s, d.path(), &no_helper()).unwrap_err();
            assert!(e.to_string().contains("kernel keyring"), "{e}");
        }
    }

    #[test]
    fn missing_device_node_is_reported_plainly() {
        let d = tempfile::tempdir().unwrap();
        let s = KeystoreSettings {
            tcti: "device:/nonexistent/tpmrm0".into(),
            ..Default::default()
        };
        let (_, report) = Keystore::open(&s, d.path(), &no_helper()).unwrap();
        assert_eq!(report.tier, TierKind::File);
        assert!(
            report.skipped[0]
                .reason
                .contains("no TPM device node /nonexistent/tpmrm0"),
            "{:?}",
            report.skipped
        );
    }

    #[test]
    fn debug_never_shows_key() {
        let d = tempfile::tempdir().unwrap();
        let s = KeystoreSettings {
            tier: TierChoice::File,
            ..Default::default()
        };
        let (ks, _) = Keystore::open(&s, d.path(), &no_helper()).unwrap();
        let dbg = format!("{ks:?}");
        assert!(!dbg.contains("master:"), "{dbg}");
    }
}
