//! `update status` and the post-boot check that turns boot assessment into
//! `update.boot_marked` / `update.rolled_back`.

use std::path::Path;

use serde::Serialize;

use super::Updater;
use super::audit::UpdateEvent;
use super::error::UpdateError;
use super::slots::{EntryState, Slot, entry_version, slot_entry};
use super::state::{self, AttemptResult, LastAttempt};

/// What `update status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateStatus {
    pub running: Slot,
    pub running_version: u64,
    pub running_entry: EntryState,
    pub other: Slot,
    /// The `version` line of the other slot's entry, if it has one.
    pub other_version: Option<String>,
    pub other_entry: EntryState,
    pub floor: u64,
    pub last_attempt: Option<LastAttempt>,
    /// The last attempt says `in_progress` but no apply holds the lock: it was
    /// interrupted (power cut, kill); the slot it wrote has no entry.
    pub last_attempt_interrupted: bool,
    /// Why the appliance runs a slot other than the last applied one.
    pub fallback: Option<String>,
}

/// Boot assessment of `slot` from its entry's file name: `Missing` (not
/// bootable), `Pending` (tries left), `Good` (blessed: no counter), `Bad`
/// (`+0-N`: exhausted, systemd-boot falls back to the other slot).
pub fn entry_state(entries_dir: &Path, slot: Slot) -> Result<EntryState, UpdateError> {
    Ok(slot_entry(entries_dir, slot)?
        .map(|e| e.state)
        .unwrap_or(EntryState::Missing))
}

/// The reason for a fallback, when the last applied slot is not running.
pub fn fallback_reason(
    running: Slot,
    attempt: &LastAttempt,
    target_state: EntryState,
) -> Option<String> {
    if attempt.result != AttemptResult::Applied || attempt.target == running {
        return None;
    }
    let t = attempt.target;
    match target_state {
        EntryState::Bad { done } => Some(format!(
            "slot {t} (image {}) ran out of boot tries: its entry is cowork-{}+0-{done}.conf, \
             never blessed; systemd-boot fell back to slot {running}",
            attempt.version_label,
            t.letter()
        )),
        EntryState::Missing => Some(format!(
            "the entry of slot {t} (image {}) is gone; slot {running} boots",
            attempt.version_label
        )),
        EntryState::Good => Some(format!(
            "slot {t} (image {}) was blessed but slot {running} was booted (chosen by hand?)",
            attempt.version_label
        )),
        EntryState::Pending { .. } => None,
    }
}

impl Updater<'_> {
    /// Current slot and version, the other slot, the floor, the last attempt,
    /// and after a fallback, why.
    pub fn status(&self) -> Result<UpdateStatus, UpdateError> {
        let entries = self.slots.entries_dir();
        let running = self.slots.running();
        let other = running.other();
        let other_entry = slot_entry(&entries, other)?;
        let other_state = other_entry
            .as_ref()
            .map(|e| e.state)
            .unwrap_or(EntryState::Missing);
        let last_attempt = state::read_last_attempt(self.slots.state_dir())?;
        let fallback = last_attempt.as_ref().and_then(|a| {
            let s = if a.target == other {
                other_state
            } else {
                entry_state(&entries, a.target).unwrap_or(EntryState::Missing)
            };
            fallback_reason(running, a, s)
        });
        let last_attempt_interrupted = last_attempt
            .as_ref()
            .is_some_and(|a| a.result == AttemptResult::InProgress)
            && !self.apply_running();
        Ok(UpdateStatus {
            running,
            running_version: self.current_version,
            running_entry: entry_state(&entries, running)?,
            other,
            other_version: other_entry.and_then(|e| entry_version(&entries, &e)),
            other_entry: other_state,
            floor: state::read_floor(self.slots.state_dir())?,
            last_attempt,
            last_attempt_interrupted,
            fallback,
        })
    }

    /// Whether an apply holds the lock right now.
    fn apply_running(&self) -> bool {
        let path = self.slots.state_dir().join(super::apply::LOCK_FILE);
        match std::fs::File::open(&path) {
            Ok(f) => f.try_lock_shared().is_err(),
            Err(_) => false,
        }
    }

    /// Run at each start: when the last applied slot has been blessed and is
    /// running, emits `update.boot_marked`; when its entry is exhausted and
    /// the other slot runs, `update.rolled_back`. Each once per attempt.
    pub fn check_boot(&self) -> Result<Option<UpdateEvent>, UpdateError> {
        let state_dir = self.slots.state_dir();
        let Some(mut attempt) = state::read_last_attempt(state_dir)? else {
            return Ok(None);
        };
        if attempt.result != AttemptResult::Applied || attempt.outcome_reported {
            return Ok(None);
        }
        let running = self.slots.running();
        let target_state = entry_state(&self.slots.entries_dir(), attempt.target)?;
        let event = if attempt.target == running && target_state == EntryState::Good {
            UpdateEvent::BootMarked {
                version: attempt.version,
                slot: running,
            }
        } else if attempt.target != running && matches!(target_state, EntryState::Bad { .. }) {
            UpdateEvent::RolledBack {
                version: attempt.version,
                from: attempt.target,
                to: running,
                reason: fallback_reason(running, &attempt, target_state).unwrap_or_default(),
            }
        } else {
            return Ok(None);
        };
        attempt.outcome_reported = true;
        state::write_last_attempt(state_dir, &attempt)?;
        self.audit.record(&event);
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(target: Slot) -> LastAttempt {
        LastAttempt {
            bundle: "/b".into(),
            version: 5,
            version_label: "2026.11.5".into(),
            target,
            started_unix: 1,
            finished_unix: Some(2),
            result: AttemptResult::Applied,
            outcome_reported: false,
            schema: 1,
        }
    }

    #[test]
    fn fallback_reason_names_the_exhausted_entry() {
        let why = fallback_reason(Slot::A, &applied(Slot::B), EntryState::Bad { done: 3 });
        let why = why.unwrap_or_default();
        assert!(
            why.contains("cowork-b+0-3.conf") && why.contains("slot A"),
            "{why}"
        );
        // Still on probation, or the update is the one running: no fallback.
        let pending = EntryState::Pending { left: 2, done: 1 };
        assert_eq!(fallback_reason(Slot::A, &applied(Slot::B), pending), None);
        assert_eq!(
            fallback_reason(Slot::B, &applied(Slot::B), EntryState::Good),
            None
        );
        let mut refused = applied(Slot::B);
        refused.result = AttemptResult::Refused {
            reason: "x".into(),
            detail: "y".into(),
        };
        assert_eq!(
            fallback_reason(Slot::A, &refused, EntryState::Missing),
            None
        );
    }
}
