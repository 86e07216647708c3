//! A/B root slots and their systemd-boot entries.
//!
//! `Slots` names where each slot's bytes live (a partition in production, a
//! file in tests), the ESP and the state directory, and which slot is running.
//! Boot entries follow Automatic Boot Assessment: `cowork-b+3.conf` (3 tries
//! left), renamed by systemd-boot to `cowork-b+2-1.conf` per try, by
//! systemd-bless-boot to `cowork-b.conf` when good, ending at `cowork-b+0-3.conf`
//! when every try failed.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::UpdateError;
use super::settings::UpdateSettings;

/// One of the two root slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// `a` or `b`, as in `root-a`, `cowork-a+3.conf`, `/cowork-a/`.
    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    pub fn partlabel(self) -> String {
        format!("root-{}", self.letter())
    }

    /// The directory of the slot's kernel and initrd on the ESP.
    pub fn esp_dir_name(self) -> String {
        format!("cowork-{}", self.letter())
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::A => "A",
            Slot::B => "B",
        })
    }
}

/// Which slot the kernel command line booted (`root=PARTLABEL=root-X`).
pub fn running_slot_from_cmdline(cmdline: &str) -> Option<Slot> {
    cmdline.split_whitespace().find_map(|w| match w {
        "root=PARTLABEL=root-a" => Some(Slot::A),
        "root=PARTLABEL=root-b" => Some(Slot::B),
        _ => None,
    })
}

/// Where things are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLayout {
    pub root_a: PathBuf,
    pub root_b: PathBuf,
    /// The ESP mount point: `loader/entries/` and `cowork-X/` live here.
    pub esp: PathBuf,
    pub state_dir: PathBuf,
}

/// The two slots, the ESP, the state directory and the running slot.
#[derive(Debug, Clone)]
pub struct Slots {
    layout: SlotLayout,
    running: Slot,
}

impl Slots {
    pub fn new(layout: SlotLayout, running: Slot) -> Slots {
        Slots { layout, running }
    }

    /// Test layout under `dir`: `slot-a.img`, `slot-b.img`, `esp/loader/entries/`,
    /// `state/` (directories created).
    pub fn file_backed(dir: &Path, running: Slot) -> Result<Slots, UpdateError> {
        let layout = SlotLayout {
            root_a: dir.join("slot-a.img"),
            root_b: dir.join("slot-b.img"),
            esp: dir.join("esp"),
            state_dir: dir.join("state"),
        };
        for d in [layout.esp.join("loader/entries"), layout.state_dir.clone()] {
            std::fs::create_dir_all(&d)
                .map_err(|source| UpdateError::WriteState { path: d, source })?;
        }
        Ok(Slots::new(layout, running))
    }

    /// Production: the partitions, ESP and state directory from the settings,
    /// the running slot from the kernel command line.
    pub fn production(settings: &UpdateSettings) -> Result<Slots, UpdateError> {
        let path = &settings.cmdline_path;
        let cmdline = std::fs::read_to_string(path).map_err(|source| UpdateError::ReadCmdline {
            path: path.clone(),
            source,
        })?;
        let running = running_slot_from_cmdline(&cmdline)
            .ok_or_else(|| UpdateError::UnknownRunningSlot { path: path.clone() })?;
        Ok(Slots::new(
            SlotLayout {
                root_a: settings.root_a.clone(),
                root_b: settings.root_b.clone(),
                esp: settings.esp.clone(),
                state_dir: settings.state_dir.clone(),
            },
            running,
        ))
    }

    pub fn running(&self) -> Slot {
        self.running
    }

    /// The slot an update writes.
    pub fn inactive(&self) -> Slot {
        self.running.other()
    }

    pub fn root_path(&self, slot: Slot) -> &Path {
        match slot {
            Slot::A => &self.layout.root_a,
            Slot::B => &self.layout.root_b,
        }
    }

    pub fn esp(&self) -> &Path {
        &self.layout.esp
    }

    pub fn entries_dir(&self) -> PathBuf {
        self.layout.esp.join("loader/entries")
    }

    pub fn state_dir(&self) -> &Path {
        &self.layout.state_dir
    }
}

/// Boot counting state of an entry, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EntryState {
    /// No entry: the slot is not bootable.
    Missing,
    /// No counter (blessed by systemd-bless-boot, or never counted).
    Good,
    /// Tries left and tries done so far.
    Pending { left: u32, done: u32 },
    /// `+0-N`: every try failed; systemd-boot sorts it last.
    Bad { done: u32 },
}

impl EntryState {
    pub fn is_bootable(self) -> bool {
        matches!(self, EntryState::Good | EntryState::Pending { .. })
    }
}

/// A parsed entry file name `cowork-X[+L[-D]].conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    pub slot: Slot,
    pub state: EntryState,
    pub file_name: String,
}

impl EntryName {
    pub fn parse(file_name: &str) -> Option<EntryName> {
        let stem = file_name.strip_suffix(".conf")?;
        let rest = stem.strip_prefix("cowork-")?;
        let (slot, counter) = match rest.as_bytes().first()? {
            b'a' => (Slot::A, &rest[1..]),
            b'b' => (Slot::B, &rest[1..]),
            _ => return None,
        };
        let state = if counter.is_empty() {
            EntryState::Good
        } else {
            let counter = counter.strip_prefix('+')?;
            let (left, done) = match counter.split_once('-') {
                Some((l, d)) => (l, d),
                None => (counter, "0"),
            };
            let num = |s: &str| -> Option<u32> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok()
            };
            let (left, done) = (num(left)?, num(done)?);
            if left == 0 {
                EntryState::Bad { done }
            } else {
                EntryState::Pending { left, done }
            }
        };
        Some(EntryName {
            slot,
            state,
            file_name: file_name.to_string(),
        })
    }

    /// The name of a fresh entry with `tries` tries.
    pub fn fresh(slot: Slot, tries: u32) -> String {
        format!("cowork-{}+{tries}.conf", slot.letter())
    }
}

/// Every entry of ours in `entries_dir`, sorted by file name.
pub fn list_entries(entries_dir: &Path) -> Result<Vec<EntryName>, UpdateError> {
    let rd = std::fs::read_dir(entries_dir).map_err(|source| UpdateError::ReadEntries {
        path: entries_dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|source| UpdateError::ReadEntries {
            path: entries_dir.to_path_buf(),
            source,
        })?;
        if let Some(name) = ent.file_name().to_str().and_then(EntryName::parse) {
            out.push(name);
        }
    }
    out.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(out)
}

/// The boot state of `slot`: its best entry (a bootable one wins over a bad one).
pub fn slot_entry(entries_dir: &Path, slot: Slot) -> Result<Option<EntryName>, UpdateError> {
    let mut best: Option<EntryName> = None;
    for e in list_entries(entries_dir)? {
        if e.slot != slot {
            continue;
        }
        let better = match &best {
            None => true,
            Some(b) => !b.state.is_bootable() && e.state.is_bootable(),
        };
        if better {
            best = Some(e);
        }
    }
    Ok(best)
}

/// The `version` line of an entry file, if any.
pub fn entry_version(entries_dir: &Path, entry: &EntryName) -> Option<String> {
    let text = std::fs::read_to_string(entries_dir.join(&entry.file_name)).ok()?;
    text.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("version")
            .filter(|r| r.starts_with([' ', '\t']))
            .map(|r| r.trim().to_string())
    })
}

/// The text of a new slot's entry. `sort-key` + `version` make systemd-boot
/// order it before the build-time entry (which has no sort-key) and before any
/// older-versioned entry of ours, so `default cowork-*` picks it; once it is
/// `+0-N` it sorts last and the other slot boots.
pub fn entry_text(slot: Slot, version: u64, label: &str, kernel_options: &str) -> String {
    let dir = slot.esp_dir_name();
    format!(
        "title      CoWork OS (slot {slot}, {label})\n\
         sort-key   cowork\n\
         version    {version}\n\
         linux      /{dir}/vmlinuz\n\
         initrd     /{dir}/initrd.img\n\
         options    root=PARTLABEL={} {kernel_options}\n",
        slot.partlabel()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_names_the_slot() {
        assert_eq!(
            running_slot_from_cmdline("ro root=PARTLABEL=root-b console=ttyS0"),
            Some(Slot::B)
        );
        assert_eq!(running_slot_from_cmdline("root=/dev/sda2"), None);
        assert_eq!(running_slot_from_cmdline("root=PARTLABEL=root-bb"), None);
    }

    #[test]
    fn entry_names_parse() {
        let p = |s| EntryName::parse(s).map(|e| (e.slot, e.state));
        assert_eq!(
            p("cowork-a+3.conf"),
            Some((Slot::A, EntryState::Pending { left: 3, done: 0 }))
        );
        assert_eq!(
            p("cowork-b+2-1.conf"),
            Some((Slot::B, EntryState::Pending { left: 2, done: 1 }))
        );
        assert_eq!(
            p("cowork-b+0-3.conf"),
            Some((Slot::B, EntryState::Bad { done: 3 }))
        );
        assert_eq!(p("cowork-a.conf"), Some((Slot::A, EntryState::Good)));
        for bad in [
            "cowork-c.conf",
            "cowork-a+.conf",
            "cowork-a+x.conf",
            ".cowork-b+3.conf.tmp",
            "cowork-a+3-.conf",
            "other.conf",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
