//! Signed image updates with A/B root slots and boot counting.
//!
//! Role: verify a signed update bundle (docs/update-format.md) and write it to
//! the inactive root slot, make that slot bootable with a counted systemd-boot
//! entry (`cowork-b+3.conf`) only once it is complete and matches its signed
//! hashes, and report the outcome of the boot assessment afterwards.
//!
//! Peers: called by the supervisor (for `coworkctl update apply|verify|status`);
//! reports every step through [`UpdateAudit`] (wired to the audit trail).
//! systemd-boot and systemd-bless-boot do the counting and blessing; this
//! module only reads the entry names they leave.
//!
//! Privileges: write access to the inactive root partition
//! (`/dev/disk/by-partlabel/root-X`), the ESP (`/efi`) and its state
//! directory; read access to the trusted keys and `/proc/cmdline`. It never
//! writes the running slot or the running slot's boot entry.
//!
//! Data it owns: `<state_dir>/version-floor` (highest version ever installed),
//! `revoked-keys`, `last-attempt.json`, `apply.lock`; the inactive slot's
//! entry and `/cowork-X/` files on the ESP.

mod apply;
mod audit;
pub mod cli;
pub mod download;
mod error;
pub mod feed;
mod format;
mod pack;
mod settings;
mod slots;
pub mod state;
mod status;
mod trust;
mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

pub use apply::Applied;
pub use audit::{MemoryAudit, NoAudit, UpdateAudit, UpdateEvent};
pub use error::UpdateError;
pub use format::{
    BootFile, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, HEADER_LEN, Header, KeyId, MAGIC,
    MAX_MANIFEST_LEN, Manifest, PayloadInfo, SIGNATURE_LEN, SIGNING_DOMAIN, decode_manifest,
    encode_manifest,
};
pub use pack::{PackOptions, PackedBundle, pack, sign_parts};
pub use settings::UpdateSettings;
pub use slots::{
    EntryName, EntryState, Slot, SlotLayout, Slots, entry_text, list_entries,
    running_slot_from_cmdline,
};
pub use state::{AttemptResult, LastAttempt, read_floor, read_last_attempt};
pub use status::{UpdateStatus, entry_state, fallback_reason};
pub use trust::{KeyStatus, TrustStore, load_public_key, load_signing_key};
pub use verify::{DeviceIdentity, VerifiedManifest, verify};

/// The update operations on one set of slots, with one audit sink.
#[derive(Debug)]
pub struct Updater<'a> {
    slots: Slots,
    device: DeviceIdentity,
    keys_dir: PathBuf,
    current_version: u64,
    kernel_options: String,
    boot_tries: u32,
    audit: &'a dyn UpdateAudit,
}

impl<'a> Updater<'a> {
    /// `current_version` is the running image's version
    /// (see [`read_image_version`] in production).
    pub fn new(
        slots: Slots,
        settings: &UpdateSettings,
        current_version: u64,
        audit: &'a dyn UpdateAudit,
    ) -> Updater<'a> {
        Updater {
            slots,
            device: DeviceIdentity {
                product: settings.product.clone(),
                hardware: settings.hardware.clone(),
            },
            keys_dir: settings.keys_dir.clone(),
            current_version,
            kernel_options: settings.kernel_options.clone(),
            boot_tries: settings.boot_tries.max(1),
            audit,
        }
    }

    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// The trusted keys with the persisted revocations applied.
    pub fn trust(&self) -> Result<TrustStore, UpdateError> {
        TrustStore::load(&self.keys_dir, self.slots.state_dir())
    }

    /// Offline verification (payload included) against the stored floor,
    /// with audit events; writes nothing.
    pub fn verify(&self, bundle_path: &Path) -> Result<VerifiedManifest, UpdateError> {
        let bundle = bundle_path.display().to_string();
        self.audit.record(&UpdateEvent::VerifyStarted {
            bundle: bundle.clone(),
        });
        let result = self.trust().and_then(|trust| {
            let floor = read_floor(self.slots.state_dir())?;
            verify(
                bundle_path,
                &trust,
                &self.device,
                self.current_version,
                floor,
            )
        });
        if let Err(e) = &result {
            self.audit.record(&UpdateEvent::Refused {
                bundle,
                reason: e.reason().into(),
                detail: e.to_string(),
            });
        }
        result
    }
}

/// Reads the running image's version (one decimal number) from `path`.
pub fn read_image_version(path: &Path) -> Result<u64, UpdateError> {
    let text = std::fs::read_to_string(path).map_err(|e| UpdateError::ReadImageVersion {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.trim()
        .parse()
        .map_err(|_| UpdateError::ReadImageVersion {
            path: path.to_path_buf(),
            reason: format!("not a version number: {:?}", text.trim()),
        })
}
