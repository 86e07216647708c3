//! The anchor: (db id, last seq, head hash, MAC) kept outside the database.
//! It is brought up to date after every commit, before the appends of that
//! commit are acknowledged, so deleting the db's tail (even together with its
//! in-db checkpoints) or swapping in an older db copy is detected by comparing
//! the db against it.
//!
//! It lives in two files beside the db, both holding the same text:
//! * `audit.anchor`: the anchor alone, replaced by rename (readers see the old
//!   or the new one, never a mix). It follows the head within a second of an
//!   append (`store::ANCHOR_FILE_EVERY`: a replace per commit cost more than
//!   the rest of the commit), and is replaced and flushed to the device at
//!   open, at checkpoints, on re-keying and at shutdown. It is the file an
//!   older image reads after a rollback (a db ahead of it is accepted when its
//!   chain links verify), so its format does not change.
//! * `audit.anchor-slots`: two 4 KiB slots, written in place by turns with one
//!   `fdatasync` per commit. This is what makes every acknowledged append
//!   durable: an in-place data flush costs about a seventh of a temp file's
//!   fsync, rename and directory fsync (0.13 vs 0.97 ms on the CI disk). A
//!   torn write can only damage the slot being written; the other one holds
//!   the previous anchor. A slot that is empty, does not parse, or (when the
//!   key is known) fails its MAC is skipped.
//!
//! The newest anchor of the two files is the one compared with the db.
//!
//! Format (text, one `key=value` per line, fixed order; a slot pads it with NULs):
//! ```text
//! cowork-audit-anchor-v1
//! db_id=<32 hex>
//! seq=<decimal u64>
//! head=<64 hex>
//! mac=<64 hex>   HMAC-SHA256(key, "cowork-audit-anchor-v1\0" || db_id || u64be(seq) || head)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::{AuditError, Result};
use super::key::CheckpointKey;

const MAGIC: &str = "cowork-audit-anchor-v1";

/// One slot of `audit.anchor-slots`: a page, so two slots never share one.
const SLOT_SIZE: usize = 4096;
const SLOTS: usize = 2;

/// The parsed anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub db_id: [u8; 16],
    pub seq: u64,
    pub head: [u8; 32],
    pub mac: [u8; 32],
}

impl Anchor {
    /// Builds and MACs an anchor.
    pub fn new(key: &CheckpointKey, db_id: [u8; 16], seq: u64, head: [u8; 32]) -> Self {
        let mac = key.anchor_mac(&db_id, seq, &head);
        Anchor {
            db_id,
            seq,
            head,
            mac,
        }
    }

    /// Whether the MAC is valid under `key`.
    pub fn mac_valid(&self, key: &CheckpointKey) -> bool {
        key.verify_anchor_mac(&self.db_id, self.seq, &self.head, &self.mac)
    }

    fn render(&self) -> String {
        format!(
            "{MAGIC}\ndb_id={}\nseq={}\nhead={}\nmac={}\n",
            hex::encode(self.db_id),
            self.seq,
            hex::encode(self.head),
            hex::encode(self.mac)
        )
    }

    /// Reads and parses an anchor file (no MAC check: see [`Anchor::mac_valid`]).
    pub fn read(path: &Path) -> Result<Option<Self>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AuditError::ReadAnchor {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|reason| AuditError::ParseAnchor {
                path: path.to_owned(),
                reason,
            })
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err("bad magic line".into());
        }
        let mut field = |name: &str| -> std::result::Result<String, String> {
            let line = lines.next().ok_or_else(|| format!("missing {name}"))?;
            line.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_owned)
                .ok_or_else(|| format!("expected {name}=..."))
        };
        let db_id = hex_array::<16>(&field("db_id")?).ok_or("bad db_id")?;
        let seq = field("seq")?
            .parse::<u64>()
            .map_err(|e| format!("bad seq: {e}"))?;
        let head = hex_array::<32>(&field("head")?).ok_or("bad head")?;
        let mac = hex_array::<32>(&field("mac")?).ok_or("bad mac")?;
        if lines.next().is_some() {
            return Err("trailing data".into());
        }
        Ok(Anchor {
            db_id,
            seq,
            head,
            mac,
        })
    }

    /// Writes the anchor atomically and durably: temp file, fsync, rename, fsync dir.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        self.replace(path, true)
    }

    /// Replaces the anchor by rename without flushing: readers and a restarted
    /// process see it at once; the device gets it with the next writeback.
    pub fn replace_unflushed(&self, path: &Path) -> Result<()> {
        self.replace(path, false)
    }

    fn replace(&self, path: &Path, flush: bool) -> Result<()> {
        let err = |source| AuditError::WriteAnchor {
            path: path.to_owned(),
            source,
        };
        let tmp = tmp_path(path);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(self.render().as_bytes()).map_err(err)?;
        if flush {
            f.sync_all().map_err(err)?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(err)?;
        if flush && let Some(dir) = path.parent() {
            fsync_dir(dir).map_err(err)?;
        }
        Ok(())
    }
}

/// `audit.anchor-slots` beside the anchor file `audit.anchor`.
pub fn slots_path(anchor: &Path) -> PathBuf {
    let mut name = anchor
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push("-slots");
    anchor.with_file_name(name)
}

/// The anchors found in the slots file at `path`, with their slot index
/// (no MAC check). A missing file has none; an empty, torn or foreign slot
/// is skipped.
pub fn read_slots(path: &Path) -> Result<Vec<(usize, Anchor)>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuditError::ReadAnchor {
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(bytes
        .chunks(SLOT_SIZE)
        .take(SLOTS)
        .enumerate()
        .filter_map(|(i, slot)| {
            let end = slot.iter().position(|&b| b == 0).unwrap_or(slot.len());
            let text = std::str::from_utf8(&slot[..end]).ok()?;
            Anchor::parse(text).ok().map(|a| (i, a))
        })
        .collect())
}

/// The newest anchor kept for the db whose anchor file is `anchor_path`:
/// the anchor file and the slots beside it, by seq. With `key`, a slot whose
/// MAC fails is skipped (a write in progress or torn), while the anchor file,
/// which is only ever replaced whole, is returned as it is so that a bad MAC
/// there is reported. `None`: neither file holds an anchor.
pub fn read_newest(anchor_path: &Path, key: Option<&CheckpointKey>) -> Result<Option<Anchor>> {
    let slots: Vec<Anchor> = read_slots(&slots_path(anchor_path))?
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| key.is_none_or(|k| a.mac_valid(k)))
        .collect();
    let file = match Anchor::read(anchor_path) {
        Ok(a) => a,
        // Not in the slots' write path: a rename on a filesystem that
        // does not order it after the data can leave an empty file after a
        // power cut. The durable slots stand for it.
        Err(AuditError::ParseAnchor { .. }) if !slots.is_empty() => None,
        Err(e) => return Err(e),
    };
    if let Some(f) = &file
        && key.is_some_and(|k| !f.mac_valid(k))
    {
        return Ok(file);
    }
    Ok(file.into_iter().chain(slots).max_by_key(|a| a.seq))
}

/// The slots file held open by the writer: one slot written in place and
/// flushed per commit, by turns.
#[derive(Debug)]
pub(crate) struct AnchorSlots {
    file: File,
    path: PathBuf,
    next: usize,
}

impl AnchorSlots {
    /// Opens (creating, 0600, two zeroed slots) the slots file; the first
    /// write goes to the slot that does not hold the newest valid anchor.
    pub fn open(path: &Path, key: &CheckpointKey) -> Result<Self> {
        let err = |source| AuditError::WriteAnchor {
            path: path.to_owned(),
            source,
        };
        let newest = read_slots(path)?
            .into_iter()
            .filter(|(_, a)| a.mac_valid(key))
            .max_by_key(|(_, a)| a.seq)
            .map(|(i, _)| i);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        let want = (SLOT_SIZE * SLOTS) as u64;
        if file.metadata().map_err(err)?.len() != want {
            file.set_len(want).map_err(err)?;
            file.sync_all().map_err(err)?;
            if let Some(dir) = path.parent() {
                fsync_dir(dir).map_err(err)?;
            }
        }
        Ok(AnchorSlots {
            file,
            path: path.to_owned(),
            next: newest.map_or(0, |i| (i + 1) % SLOTS),
        })
    }

    /// Writes `anchor` into the next slot and flushes it to the device.
    pub fn write(&mut self, anchor: &Anchor) -> Result<()> {
        let err = |source| AuditError::WriteAnchor {
            path: self.path.clone(),
            source,
        };
        let mut slot = [0u8; SLOT_SIZE];
        let text = anchor.render();
        slot[..text.len()].copy_from_slice(text.as_bytes());
        self.file
            .write_all_at(&slot, (self.next * SLOT_SIZE) as u64)
            .map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.next = (self.next + 1) % SLOTS;
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// fsync a directory so a rename or create in it is durable.
pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

pub(crate) fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_mac() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.anchor");
        assert_eq!(Anchor::read(&p).unwrap(), None);
        let key = CheckpointKey::generate();
        let a = Anchor::new(&key, [3; 16], 42, [9; 32]);
        a.write_atomic(&p).unwrap();
        let b = Anchor::read(&p).unwrap().unwrap();
        assert_eq!(a, b);
        assert!(b.mac_valid(&key));
        assert!(!Anchor { seq: 41, ..b }.mac_valid(&key));
    }

    #[test]
    fn slots_take_turns_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.anchor");
        let key = CheckpointKey::generate();
        assert_eq!(read_newest(&file, Some(&key)).unwrap(), None);
        let mut slots = AnchorSlots::open(&slots_path(&file), &key).unwrap();
        Anchor::new(&key, [3; 16], 5, [5; 32])
            .write_atomic(&file)
            .unwrap();
        for seq in [6, 7, 8] {
            slots
                .write(&Anchor::new(&key, [3; 16], seq, [seq as u8; 32]))
                .unwrap();
        }
        let found = read_slots(&slots_path(&file)).unwrap();
        assert_eq!(
            found.iter().map(|(i, a)| (*i, a.seq)).collect::<Vec<_>>(),
            [(0, 8), (1, 7)]
        );
        assert_eq!(read_newest(&file, Some(&key)).unwrap().unwrap().seq, 8);
        assert_eq!(read_newest(&file, None).unwrap().unwrap().seq, 8);
        // Reopened, the writer goes on in the slot that is not the newest.
        let mut slots = AnchorSlots::open(&slots_path(&file), &key).unwrap();
        slots
            .write(&Anchor::new(&key, [3; 16], 9, [9; 32]))
            .unwrap();
        let found = read_slots(&slots_path(&file)).unwrap();
        assert_eq!(
            found.iter().map(|(i, a)| (*i, a.seq)).collect::<Vec<_>>(),
            [(0, 8), (1, 9)]
        );
        let meta = std::fs::metadata(slots_path(&file)).unwrap();
        assert_eq!(meta.len(), (SLOT_SIZE * SLOTS) as u64);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_torn_or_forged_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.anchor");
        let key = CheckpointKey::generate();
        let mut slots = AnchorSlots::open(&slots_path(&file), &key).unwrap();
        slots
            .write(&Anchor::new(&key, [3; 16], 6, [6; 32]))
            .unwrap();
        slots
            .write(&Anchor::new(&key, [3; 16], 7, [7; 32]))
            .unwrap();
        let raw = std::fs::OpenOptions::new()
            .write(true)
            .open(slots_path(&file))
            .unwrap();
        // Torn: half of slot 1 (seq 7) is garbage.
        raw.write_all_at(&[0xff; 100], SLOT_SIZE as u64 + 40)
            .unwrap();
        assert_eq!(read_newest(&file, Some(&key)).unwrap().unwrap().seq, 6);
        // Parses, but its MAC fails: skipped with the key, taken without it.
        let forged = Anchor {
            mac: [0; 32],
            ..Anchor::new(&key, [3; 16], 9, [9; 32])
        };
        let mut slot = [0u8; SLOT_SIZE];
        slot[..forged.render().len()].copy_from_slice(forged.render().as_bytes());
        raw.write_all_at(&slot, SLOT_SIZE as u64).unwrap();
        assert_eq!(read_newest(&file, Some(&key)).unwrap().unwrap().seq, 6);
        assert_eq!(read_newest(&file, None).unwrap().unwrap().seq, 9);
    }

    #[test]
    fn the_anchor_file_is_strict_unless_the_slots_stand_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.anchor");
        let key = CheckpointKey::generate();
        // An empty anchor file (a rename not ordered after its data, then a
        // power cut) with nothing in the slots: an error, as before.
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            read_newest(&file, Some(&key)),
            Err(AuditError::ParseAnchor { .. })
        ));
        let mut slots = AnchorSlots::open(&slots_path(&file), &key).unwrap();
        slots
            .write(&Anchor::new(&key, [3; 16], 4, [4; 32]))
            .unwrap();
        assert_eq!(read_newest(&file, Some(&key)).unwrap().unwrap().seq, 4);
        // A whole anchor file with a bad MAC is returned so it is reported,
        // even beside a newer valid slot.
        let bad = Anchor {
            mac: [1; 32],
            ..Anchor::new(&key, [3; 16], 2, [2; 32])
        };
        bad.write_atomic(&file).unwrap();
        assert_eq!(read_newest(&file, Some(&key)).unwrap(), Some(bad));
    }

    #[test]
    fn hostile_slot_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.anchor-slots");
        for bad in [
            vec![],
            vec![0xff; 3],
            vec![0; SLOT_SIZE * 5],
            b"cowork-audit-anchor-v1\n".repeat(400),
            "é".repeat(5000).into_bytes(),
        ] {
            std::fs::write(&p, &bad).unwrap();
            assert_eq!(read_slots(&p).unwrap(), Vec::new(), "{bad:?}");
        }
    }

    #[test]
    fn hostile_anchor_files() {
        for bad in [
            "",
            "garbage",
            "cowork-audit-anchor-v1\ndb_id=zz\n",
            "cowork-audit-anchor-v1\ndb_id=00000000000000000000000000000000\nseq=-1\nhead=00\nmac=00\n",
        ] {
            assert!(Anchor::parse(bad).is_err(), "{bad:?}");
        }
    }
}
