//! The anchor: a small file outside the database holding (db id, last seq,
//! head hash, MAC). It is rewritten atomically after every commit, before the
//! appends of that commit are acknowledged, so deleting the db's tail (even
//! together with its in-db checkpoints) or swapping in an older db copy is
//! detected by comparing the db against it.
//!
//! Format (text, one `key=value` per line, fixed order):
//! ```text
//! cowork-audit-anchor-v1
//! db_id=<32 hex>
//! seq=<decimal u64>
//! head=<64 hex>
//! mac=<64 hex>   HMAC-SHA256(key, "cowork-audit-anchor-v1\0" || db_id || u64be(seq) || head)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::{AuditError, Result};
use super::key::CheckpointKey;

const MAGIC: &str = "cowork-audit-anchor-v1";

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

    /// Writes the anchor atomically: temp file, fsync, rename, fsync dir.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
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
        f.sync_all().map_err(err)?;
        drop(f);
        fs::rename(&tmp, path).map_err(err)?;
        if let Some(dir) = path.parent() {
            fsync_dir(dir).map_err(err)?;
        }
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
