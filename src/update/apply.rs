//! Applying a verified bundle to the inactive slot.
//!
//! Order (each step durable before the next):
//! 1. lock; refuse while the running slot is unblessed (its fallback is the
//!    slot we would overwrite); verify header, key, signature, manifest, compatibility, version;
//! 2. record the attempt as in progress;
//! 3. delete every entry of the inactive slot (and stale temp files), fsync the
//!    entries directory: from here on a power cut leaves that slot unbootable,
//!    and the running slot's entry is never touched;
//! 4. stream the image into the slot, each chunk checked before it is written
//!    (or the whole image hash checked at the end); fsync the slot;
//! 5. kernel and initrd to `<esp>/cowork-X/` via temp files, renamed only when
//!    their hashes match;
//! 6. persist revocations and raise the version floor;
//! 7. write `cowork-X+3.conf` (temp + fsync + rename + fsync dir): the slot is
//!    bootable only now, and sorts first, so it is the default.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::Updater;
use super::audit::UpdateEvent;
use super::error::UpdateError;
use super::slots::{EntryName, EntryState, Slot, entry_text, list_entries, slot_entry};
use super::state::{self, AttemptResult, LastAttempt, now_unix, sync_dir, write_atomic};
use super::trust::persist_revocations;
use super::verify::{VerifiedManifest, open_verified, stream_boot_file, stream_image};

/// Lock file in the state directory: one apply at a time.
pub(crate) const LOCK_FILE: &str = "apply.lock";

/// The result of a successful apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub slot: Slot,
    pub version: u64,
    /// File name of the new entry (`cowork-b+3.conf`).
    pub entry: String,
    pub manifest: VerifiedManifest,
}

impl Updater<'_> {
    /// Verifies `bundle_path` and writes it to the inactive slot; see the
    /// module doc for the order of steps.
    pub fn apply(&self, bundle_path: &Path) -> Result<Applied, UpdateError> {
        let state_dir = self.slots.state_dir();
        let lock_path = state_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| UpdateError::WriteState {
                path: lock_path.clone(),
                source,
            })?;
        if lock.try_lock().is_err() {
            return Err(UpdateError::Busy { path: lock_path });
        }
        let target = self.slots.inactive();
        let bundle = bundle_path.display().to_string();
        let mut attempt = LastAttempt {
            bundle: bundle.clone(),
            version: 0,
            version_label: String::new(),
            target,
            started_unix: now_unix(),
            finished_unix: None,
            result: AttemptResult::InProgress,
            outcome_reported: false,
            schema: super::state::LAST_ATTEMPT_SCHEMA,
        };
        self.audit.record(&UpdateEvent::VerifyStarted {
            bundle: bundle.clone(),
        });
        let checked = self
            .check_running_blessed()
            .and_then(|()| self.trust())
            .and_then(|trust| {
                let floor = state::read_floor(state_dir)?;
                open_verified(
                    bundle_path,
                    &trust,
                    &self.device,
                    self.current_version,
                    floor,
                )
            });
        let (mut file, vm) = match checked {
            Ok(v) => v,
            Err(e) => {
                self.refused(&bundle, &e);
                attempt.finished_unix = Some(now_unix());
                attempt.result = AttemptResult::Refused {
                    reason: e.reason().into(),
                    detail: e.to_string(),
                };
                // The refusal is what matters; a state write error must not hide it.
                let _ = state::write_last_attempt(state_dir, &attempt);
                return Err(e);
            }
        };
        attempt.version = vm.version();
        attempt.version_label = vm.manifest.version_label.clone();
        state::write_last_attempt(state_dir, &attempt)?;
        match self.write_slot(&mut file, bundle_path, &vm, target) {
            Ok(entry) => {
                attempt.finished_unix = Some(now_unix());
                attempt.result = AttemptResult::Applied;
                state::write_last_attempt(state_dir, &attempt)?;
                self.audit.record(&UpdateEvent::Applied {
                    version: vm.version(),
                    slot: target,
                    entry: entry.clone(),
                });
                drop(lock);
                Ok(Applied {
                    slot: target,
                    version: vm.version(),
                    entry,
                    manifest: vm,
                })
            }
            Err(e) => {
                self.refused(&bundle, &e);
                attempt.finished_unix = Some(now_unix());
                attempt.result = AttemptResult::Failed {
                    reason: e.reason().into(),
                    detail: e.to_string(),
                };
                let _ = state::write_last_attempt(state_dir, &attempt);
                Err(e)
            }
        }
    }

    /// The other slot is the fallback while the running one has not been
    /// blessed yet (`+N-M` entry): it must not be overwritten then. (A running
    /// `+0-N` entry means nothing better exists; updating is then allowed.)
    fn check_running_blessed(&self) -> Result<(), UpdateError> {
        let running = self.slots.running();
        match slot_entry(&self.slots.entries_dir(), running)? {
            Some(e) if matches!(e.state, EntryState::Pending { .. }) => {
                Err(UpdateError::RunningNotBlessed {
                    slot: running.to_string(),
                    entry: e.file_name,
                })
            }
            _ => Ok(()),
        }
    }

    fn refused(&self, bundle: &str, e: &UpdateError) {
        self.audit.record(&UpdateEvent::Refused {
            bundle: bundle.to_string(),
            reason: e.reason().into(),
            detail: e.to_string(),
        });
    }

    /// Steps 3 to 7. Returns the new entry's file name.
    fn write_slot(
        &self,
        file: &mut File,
        bundle_path: &Path,
        vm: &VerifiedManifest,
        target: Slot,
    ) -> Result<String, UpdateError> {
        let entries_dir = self.slots.entries_dir();
        invalidate_slot(&entries_dir, target)?;
        self.audit.record(&UpdateEvent::Applying {
            version: vm.version(),
            slot: target,
            key_id: vm.key_id.to_string(),
        });

        let slot_path = self.slots.root_path(target).to_path_buf();
        let mut out = open_slot(&slot_path, vm.manifest.image.size)?;
        let werr = |source| UpdateError::WriteSlot {
            path: slot_path.clone(),
            source,
        };
        stream_image(file, bundle_path, vm, |buf| {
            out.write_all(buf).map_err(werr)
        })?;
        out.sync_all().map_err(werr)?;
        drop(out);

        let boot_dir = self.slots.esp().join(target.esp_dir_name());
        std::fs::create_dir_all(&boot_dir).map_err(|source| UpdateError::WriteBootFile {
            path: boot_dir.clone(),
            source,
        })?;
        file.seek(SeekFrom::Start(vm.payload_offset + vm.manifest.image.size))
            .map_err(|source| UpdateError::ReadBundle {
                path: bundle_path.to_path_buf(),
                source,
            })?;
        for bf in &vm.manifest.boot_files {
            let dest = boot_dir.join(&bf.name);
            let tmp = boot_dir.join(format!(".{}.tmp", bf.name));
            let berr = |source| UpdateError::WriteBootFile {
                path: dest.clone(),
                source,
            };
            let mut f = File::create(&tmp).map_err(berr)?;
            stream_boot_file(file, bundle_path, bf, |buf| f.write_all(buf).map_err(berr))?;
            f.sync_all().map_err(berr)?;
            std::fs::rename(&tmp, &dest).map_err(berr)?;
        }
        sync_dir(&boot_dir).map_err(|source| UpdateError::WriteBootFile {
            path: boot_dir.clone(),
            source,
        })?;

        let state_dir = self.slots.state_dir();
        persist_revocations(state_dir, &vm.revoked_keys())?;
        state::raise_floor(state_dir, vm.version())?;

        let name = EntryName::fresh(target, self.boot_tries);
        let path = entries_dir.join(&name);
        let text = entry_text(
            target,
            vm.version(),
            &vm.manifest.version_label,
            &self.kernel_options,
        );
        write_atomic(&path, text.as_bytes())
            .map_err(|source| UpdateError::WriteEntry { path, source })?;
        Ok(name)
    }
}

/// Removes every entry of `slot` and stale temp files of ours, then fsyncs the
/// directory, so the slot cannot boot while it is being written.
fn invalidate_slot(entries_dir: &Path, slot: Slot) -> Result<(), UpdateError> {
    for e in list_entries(entries_dir)? {
        if e.slot == slot {
            let p = entries_dir.join(&e.file_name);
            std::fs::remove_file(&p)
                .map_err(|source| UpdateError::RemoveEntry { path: p, source })?;
        }
    }
    let prefix = format!(".cowork-{}", slot.letter());
    let rd = std::fs::read_dir(entries_dir).map_err(|source| UpdateError::ReadEntries {
        path: entries_dir.to_path_buf(),
        source,
    })?;
    for ent in rd.flatten() {
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            let p = ent.path();
            std::fs::remove_file(&p)
                .map_err(|source| UpdateError::RemoveEntry { path: p, source })?;
        }
    }
    sync_dir(entries_dir).map_err(|source| UpdateError::RemoveEntry {
        path: entries_dir.to_path_buf(),
        source,
    })
}

/// Opens a slot for writing: a block device as is (its size checked), a
/// regular file (tests) truncated.
fn open_slot(path: &PathBuf, size: u64) -> Result<File, UpdateError> {
    let werr = |source| UpdateError::WriteSlot {
        path: path.clone(),
        source,
    };
    let is_block = std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    if is_block {
        let mut f = OpenOptions::new().write(true).open(path).map_err(werr)?;
        let capacity = f.seek(SeekFrom::End(0)).map_err(werr)?;
        if capacity < size {
            return Err(UpdateError::SlotTooSmall {
                path: path.clone(),
                size,
                capacity,
            });
        }
        f.seek(SeekFrom::Start(0)).map_err(werr)?;
        Ok(f)
    } else {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(werr)
    }
}
