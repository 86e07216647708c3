//! Schema versions of the files the appliance keeps, and the one migration
//! runner every SQLite database uses.
//!
//! Each database has one owner (the component that opens it: `state.db` the
//! gateway, `audit.db` the audit component) and one [`Schema`]: its ordered
//! steps, numbered from 1. Step 1 is the baseline, the tables as they were
//! before versions were recorded; its statements are all `IF NOT EXISTS`, so a
//! database from before this module (no version recorded, tables present) is
//! recognised as the baseline by simply running step 1 on it.
//!
//! At open, [`Schema::migrate`]:
//! 1. reads the recorded version (0 = none); a version above the newest step
//!    is refused ([`SchemaError::TooNew`], one sentence for the journal and
//!    the console) and the file is not touched;
//! 2. before the first step on a database that has tables, copies the file to
//!    `FILE.pre-vN` beside it (`VACUUM INTO`: a consistent copy even in WAL
//!    mode), so a rollback across an incompatible step has something to restore;
//! 3. runs each step and the version bump in one `IMMEDIATE` transaction: a
//!    crash (kill -9, power cut) leaves the old or the new version, never a
//!    mix.
//!
//! The owner audits a [`Migration`] that changed something as
//! `store.migrated` (from → to). Copies are removed by [`Migration::prune_copies`] after an
//! open on a boot that is not on trial (see `docs/update-format.md`, *Schema
//! versions*); with no boot counting (development) that is the next open.
//!
//! The rollback rule (a step may only make changes the previous version can
//! still open) is checked by [`Step::is_additive`] and the tests in
//! `tests/schema_rollback.rs`.
//!
//! Files that are not SQLite (the update state's `last-attempt.json`, the
//! owner's password file) carry a version field instead, missing = 1, checked
//! with [`check_file_version`].

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

mod copies;
mod error;

pub use copies::{EFIVARS_DIR, boot_on_trial, copies, copy_path};
pub use error::SchemaError;

/// Where a database records its version and the oldest version that can
/// still read it (its *readers*: see [`Change`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// `PRAGMA user_version` (in the file header, changed transactionally);
    /// the oldest reader in the runner's one-row table `schema_readers`.
    UserVersion,
    /// `key → value` rows of a table the baseline creates: the audit trail's
    /// `meta.schema_version`, which predates this module and which `coworkctl
    /// audit verify` reads, and `readers_key` beside it.
    MetaRow {
        table: &'static str,
        key: &'static str,
        readers_key: &'static str,
    },
}

/// The runner's table for [`Record::UserVersion`] files.
const READERS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_readers (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    oldest INTEGER NOT NULL
)";

/// What a step does to the data the previous version reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New tables, indexes, or columns with a default: the previous image
    /// still opens and reads the database (it does not look at what is new),
    /// so the oldest reader recorded in the file stays what it was.
    Additive,
    /// Anything else. Only allowed with a restore path: the previous image
    /// cannot read the result, so the file records this version as its oldest
    /// reader (older images refuse it), and rolling back means restoring
    /// `FILE.pre-vN`. `restore` says how (checked non-empty, read by people).
    Incompatible { restore: &'static str },
}

/// One numbered step: its statements, run in order in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// SQL batches; several modules may own tables in one file, each brings
    /// its own batch (their constants stay with the module that owns them).
    pub sql: &'static [&'static str],
    pub change: Change,
}

impl Step {
    /// Whether every statement is one the previous version can live with:
    /// `CREATE TABLE`/`CREATE INDEX`/`CREATE UNIQUE INDEX` (with `IF NOT
    /// EXISTS`), or `ALTER TABLE … ADD COLUMN` with a `DEFAULT` or nullable.
    /// Deliberately strict: anything it does not recognise is not additive.
    pub fn is_additive(&self) -> bool {
        self.statements().all(|s| additive_statement(&s))
    }

    /// The statements [`Step::is_additive`] does not accept (to name them).
    pub fn not_additive(&self) -> Vec<String> {
        self.statements()
            .filter(|s| !additive_statement(s))
            .collect()
    }

    /// The step's statements, one by one, normalised (upper case, single spaces).
    pub fn statements(&self) -> impl Iterator<Item = String> + '_ {
        self.sql.iter().flat_map(|batch| {
            batch
                .split(';')
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|s| !s.is_empty())
                .map(|s| s.to_ascii_uppercase())
        })
    }
}

fn additive_statement(s: &str) -> bool {
    let creates = [
        "CREATE TABLE IF NOT EXISTS ",
        "CREATE INDEX IF NOT EXISTS ",
        "CREATE UNIQUE INDEX IF NOT EXISTS ",
    ];
    if creates.iter().any(|p| s.starts_with(p)) {
        return true;
    }
    // ALTER TABLE t ADD COLUMN c TYPE ...: NOT NULL only with a DEFAULT.
    if s.starts_with("ALTER TABLE ") && s.contains(" ADD COLUMN ") {
        return !s.contains("NOT NULL") || s.contains(" DEFAULT ");
    }
    false
}

/// A database's name (as people see it), its steps and where its version lives.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The file name shown in messages and `coworkctl status` (`state.db`).
    pub name: &'static str,
    pub steps: &'static [Step],
    pub record: Record,
}

/// What [`Schema::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub name: &'static str,
    pub path: PathBuf,
    /// The version found (0: none recorded, an empty or pre-versioning file).
    pub from: u32,
    /// The version now recorded.
    pub to: u32,
    /// The copy taken before the first step, if any.
    pub copy: Option<PathBuf>,
}

/// What a file records about its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Its version (0: none recorded).
    pub version: u32,
    /// The oldest version that can read it (`version` when none is recorded:
    /// a file that says nothing is not assumed readable by older images).
    pub oldest_reader: u32,
}

impl Migration {
    /// Whether a step ran (what is worth an audit entry).
    pub fn changed(&self) -> bool {
        self.from != self.to
    }

    /// After a successful open: removes the file's older pre-migration
    /// copies (not the one this open took) unless the boot is on trial; see
    /// `docs/update-format.md`, *Schema versions*. A refused file never gets
    /// here, so its copies stay for the rollback. Logs what it removed.
    pub fn prune_copies(&self, on_trial: bool) {
        match copies::prune_copies(&self.path, self.copy.as_deref(), on_trial) {
            Ok(removed) => {
                for copy in removed {
                    tracing::info!(copy = %copy.display(), "pre-migration copy removed (the boot is not on trial)");
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "cannot remove the pre-migration copies of {}",
                self.path.display()
            ),
        }
    }

    /// The `store.migrated` entry's details.
    pub fn audit_payload(&self) -> serde_json::Value {
        serde_json::json!({
            "store": self.name,
            "file": self.path.display().to_string(),
            "from": self.from,
            "to": self.to,
            "copy": self.copy.as_ref().map(|p| p.display().to_string()),
        })
    }
}

fn as_u32(v: i64) -> Option<u32> {
    u32::try_from(v).ok()
}

impl Schema {
    /// The newest version this image knows.
    pub fn latest(&self) -> u32 {
        u32::try_from(self.steps.len()).unwrap_or(u32::MAX)
    }

    /// The version recorded in `conn` (0 when none is).
    pub fn version(&self, conn: &Connection, path: &Path) -> Result<u32, SchemaError> {
        Ok(self.found(conn, path)?.version)
    }

    /// The version and oldest reader recorded in `conn`.
    pub fn found(&self, conn: &Connection, path: &Path) -> Result<Found, SchemaError> {
        let read = |source| SchemaError::ReadVersion {
            name: self.name,
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let bad = |value: String| SchemaError::BadVersion {
            name: self.name,
            path: path.to_path_buf(),
            value,
        };
        let table_exists = |table: &str| -> Result<bool, SchemaError> {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [table],
                |r| r.get(0),
            )
            .map_err(read)
        };
        let (version, oldest) = match self.record {
            Record::UserVersion => {
                let v: i64 = conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(read)?;
                let version = as_u32(v).ok_or_else(|| bad(v.to_string()))?;
                let oldest: Option<i64> = if table_exists("schema_readers")? {
                    conn.query_row("SELECT oldest FROM schema_readers WHERE id = 1", [], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(read)?
                } else {
                    None
                };
                let oldest = match oldest {
                    Some(o) => Some(as_u32(o).ok_or_else(|| bad(o.to_string()))?),
                    None => None,
                };
                (version, oldest)
            }
            Record::MetaRow {
                table,
                key,
                readers_key,
            } => {
                if !table_exists(table)? {
                    return Ok(Found {
                        version: 0,
                        oldest_reader: 0,
                    });
                }
                let get = |k: &str| -> Result<Option<u32>, SchemaError> {
                    let value: Option<String> = conn
                        .query_row(
                            &format!("SELECT value FROM {table} WHERE key = ?1"),
                            [k],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(read)?;
                    value
                        .map(|v| v.trim().parse::<u32>().map_err(|_| bad(v)))
                        .transpose()
                };
                (get(key)?.unwrap_or(0), get(readers_key)?)
            }
        };
        Ok(Found {
            version,
            oldest_reader: oldest.unwrap_or(version).min(version),
        })
    }

    /// Whether this image may use a file that records `found`: any version
    /// it knows, or a newer one whose oldest reader is this image or older.
    /// Otherwise the file is from an incompatible newer image: refused.
    pub fn check_known(&self, found: Found) -> Result<(), SchemaError> {
        if found.version > self.latest() && found.oldest_reader > self.latest() {
            return Err(SchemaError::TooNew {
                name: self.name.to_string(),
                found: found.version,
                known: self.latest(),
            });
        }
        Ok(())
    }

    /// The oldest version that can read a file at version `v` of these steps:
    /// the last incompatible step up to `v`, or 1.
    pub fn oldest_reader(&self, v: u32) -> u32 {
        self.steps
            .iter()
            .zip(1u32..)
            .take_while(|(_, n)| *n <= v)
            .filter(|(s, _)| matches!(s.change, Change::Incompatible { .. }))
            .map(|(_, n)| n)
            .last()
            .unwrap_or(1)
    }

    fn set_version(&self, tx: &rusqlite::Transaction<'_>, v: u32) -> rusqlite::Result<()> {
        let oldest = self.oldest_reader(v);
        match self.record {
            // PRAGMA takes no parameters; `v` is a number we produced.
            Record::UserVersion => {
                tx.execute_batch(READERS_TABLE)?;
                tx.execute(
                    "INSERT OR REPLACE INTO schema_readers (id, oldest) VALUES (1, ?1)",
                    [oldest],
                )?;
                tx.execute_batch(&format!("PRAGMA user_version = {v}"))
            }
            Record::MetaRow {
                table,
                key,
                readers_key,
            } => tx
                .execute(
                    &format!(
                        "INSERT OR REPLACE INTO {table} (key, value) VALUES (?1, ?2), (?3, ?4)"
                    ),
                    rusqlite::params![key, v.to_string(), readers_key, oldest.to_string()],
                )
                .map(|_| ()),
        }
    }

    /// Brings the database at `path` (open as `conn`) to [`Schema::latest`]:
    /// refuses a newer one, copies the file before the first step, runs each
    /// step with its version bump in one transaction.
    pub fn migrate(&self, conn: &mut Connection, path: &Path) -> Result<Migration, SchemaError> {
        let found = self.found(conn, path)?;
        self.check_known(found)?;
        let from = found.version;
        let to = self.latest();
        let mut done = Migration {
            name: self.name,
            path: path.to_path_buf(),
            from,
            to: from,
            copy: None,
        };
        // At the newest version, or newer but still readable by this image
        // (a rollback across additive steps): used as it is.
        if from >= to {
            return Ok(done);
        }
        if has_tables(conn).map_err(|source| SchemaError::ReadVersion {
            name: self.name,
            path: path.to_path_buf(),
            source: Box::new(source),
        })? {
            done.copy = Some(self.copy(conn, path, from)?);
        }
        for (i, step) in self.steps.iter().enumerate().skip(from as usize) {
            let target = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let step_err = |source| SchemaError::Step {
                name: self.name,
                path: path.to_path_buf(),
                from: target - 1,
                to: target,
                source: Box::new(source),
            };
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(step_err)?;
            // Another connection may have migrated meanwhile: re-read under the lock.
            let now = self.found(&tx, path)?;
            self.check_known(now)?;
            if now.version >= target {
                continue;
            }
            for batch in step.sql {
                tx.execute_batch(batch).map_err(step_err)?;
            }
            self.set_version(&tx, target).map_err(step_err)?;
            tx.commit().map_err(step_err)?;
            done.to = target;
        }
        done.to = self.version(conn, path)?;
        Ok(done)
    }

    /// `FILE.pre-vN` beside the file, replacing an older copy of the same name.
    fn copy(&self, conn: &Connection, path: &Path, from: u32) -> Result<PathBuf, SchemaError> {
        let copy = copy_path(path, from);
        match std::fs::remove_file(&copy) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SchemaError::RemoveCopy {
                    name: self.name,
                    path: copy,
                    source,
                });
            }
        }
        // The copy holds what the file holds (sealed secrets, the trail):
        // created 0600 and empty, which VACUUM INTO accepts as its target.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&copy)
            .map_err(|source| SchemaError::CreateCopy {
                name: self.name,
                path: copy.clone(),
                source,
            })?;
        conn.execute("VACUUM INTO ?1", [copy.to_string_lossy()])
            .map_err(|source| SchemaError::Copy {
                name: self.name,
                path: path.to_path_buf(),
                copy: copy.clone(),
                source: Box::new(source),
            })?;
        Ok(copy)
    }
}

fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')",
        [],
        |r| r.get(0),
    )
}

/// For files that are not SQLite: refuses a version above `known`, with the
/// same sentence as a database. `found` is `None` when the file has no
/// version field (the files of before versioning: version 1).
pub fn check_file_version(name: &str, found: Option<u32>, known: u32) -> Result<u32, SchemaError> {
    let found = found.unwrap_or(1);
    if found > known {
        return Err(SchemaError::TooNew {
            name: name.to_string(),
            found,
            known,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, a TEXT NOT NULL);";
    const V2: &str = "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 0;
                      CREATE INDEX IF NOT EXISTS t_b ON t (b);";
    const STEPS: &[Step] = &[
        Step {
            sql: &[V1],
            change: Change::Additive,
        },
        Step {
            sql: &[V2],
            change: Change::Additive,
        },
    ];
    const TEST: Schema = Schema {
        name: "test.db",
        steps: STEPS,
        record: Record::UserVersion,
    };
    const TEST_V1: Schema = Schema {
        name: "test.db",
        steps: STEPS.split_at(1).0,
        record: Record::UserVersion,
    };

    fn open(path: &Path) -> Connection {
        let c = Connection::open(path).expect("open");
        c.pragma_update(None, "journal_mode", "WAL").expect("wal");
        c
    }

    #[test]
    fn fresh_file_gets_every_step_and_no_copy() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("test.db");
        let mut c = open(&path);
        let m = TEST.migrate(&mut c, &path).expect("migrate");
        assert_eq!((m.from, m.to, m.copy), (0, 2, None));
        c.execute("INSERT INTO t (a) VALUES ('x')", [])
            .expect("insert");
        let b: i64 = c.query_row("SELECT b FROM t", [], |r| r.get(0)).expect("b");
        assert_eq!(b, 0);
        assert!(!TEST.migrate(&mut c, &path).expect("again").changed());
    }

    #[test]
    fn unversioned_tables_are_the_baseline_and_are_copied_first() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("test.db");
        let mut c = open(&path);
        c.execute_batch(V1).expect("legacy");
        c.execute("INSERT INTO t (a) VALUES ('kept')", [])
            .expect("row");
        let m = TEST.migrate(&mut c, &path).expect("migrate");
        assert_eq!((m.from, m.to), (0, 2));
        let copy = m.copy.clone().expect("copy");
        assert_eq!(copy, dir.path().join("test.db.pre-v0"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the copy is as private as the file");
        let old = Connection::open(&copy).expect("copy opens");
        let a: String = old
            .query_row("SELECT a FROM t", [], |r| r.get(0))
            .expect("row");
        assert_eq!(a, "kept");
        assert_eq!(TEST.version(&old, &copy).expect("v"), 0);
        assert_eq!(copies(&path), vec![copy.clone()]);
        // The open that took it keeps it, even off trial.
        m.prune_copies(false);
        assert_eq!(copies(&path), vec![copy.clone()]);
        // A later open keeps it on trial, removes it once not on trial.
        let later = TEST.migrate(&mut c, &path).expect("again");
        later.prune_copies(true);
        assert_eq!(copies(&path), vec![copy]);
        later.prune_copies(false);
        assert!(copies(&path).is_empty());
    }

    #[test]
    fn a_newer_file_is_used_when_its_steps_were_additive() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("test.db");
        let mut c = open(&path);
        TEST.migrate(&mut c, &path).expect("v2");
        // The image that knows only step 1 (rolled back): opens it as it is.
        let m = TEST_V1
            .migrate(&mut c, &path)
            .expect("readable by version 1");
        assert_eq!((m.from, m.to, m.copy), (2, 2, None));
        c.execute("INSERT INTO t (a) VALUES ('by v1')", [])
            .expect("v1's insert works: the new column has a default");
        assert!(copies(&path).is_empty());
    }

    #[test]
    fn a_newer_incompatible_file_is_refused_with_the_sentence_and_left_alone() {
        const BREAKING: &[Step] = &[
            Step {
                sql: &[V1],
                change: Change::Additive,
            },
            Step {
                sql: &["ALTER TABLE t RENAME COLUMN a TO z;"],
                change: Change::Incompatible {
                    restore: "restore test.db.pre-v1",
                },
            },
            Step {
                sql: &[V2],
                change: Change::Additive,
            },
        ];
        let newer = Schema {
            name: "test.db",
            steps: BREAKING,
            record: Record::UserVersion,
        };
        assert_eq!(
            (
                newer.oldest_reader(1),
                newer.oldest_reader(2),
                newer.oldest_reader(3)
            ),
            (1, 2, 2)
        );
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("test.db");
        let mut c = open(&path);
        newer.migrate(&mut c, &path).expect("v3");
        let e = TEST_V1.migrate(&mut c, &path).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "test.db has schema 3; this image knows up to 1: the appliance was rolled back across an incompatible update"
        );
        // Version 2 knows the incompatible step: it may use the file.
        let v2 = Schema {
            steps: BREAKING.split_at(2).0,
            ..newer
        };
        assert_eq!(v2.migrate(&mut c, &path).expect("readable by 2").to, 3);
        assert_eq!(newer.version(&c, &path).expect("v"), 3);
        assert!(copies(&path).is_empty());
    }

    #[test]
    fn a_failing_step_leaves_the_previous_version() {
        const BROKEN: &[Step] = &[
            Step {
                sql: &[V1],
                change: Change::Additive,
            },
            Step {
                sql: &["ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 0; SELECT * FROM nowhere;"],
                change: Change::Additive,
            },
        ];
        let schema = Schema {
            name: "test.db",
            steps: BROKEN,
            record: Record::UserVersion,
        };
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("test.db");
        let mut c = open(&path);
        let e = schema.migrate(&mut c, &path).expect_err("fails");
        assert!(e.to_string().contains("from schema 1 to 2"), "{e}");
        assert_eq!(schema.version(&c, &path).expect("v"), 1);
        let cols: i64 = c
            .query_row(
                "SELECT count(*) FROM pragma_table_info('t') WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .expect("cols");
        assert_eq!(
            cols, 0,
            "the step's first statement was rolled back with it"
        );
    }

    #[test]
    fn meta_row_versions_and_garbage_in_them() {
        const META: Schema = Schema {
            name: "meta.db",
            steps: &[Step {
                sql: &[
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
                ],
                change: Change::Additive,
            }],
            record: Record::MetaRow {
                table: "meta",
                key: "schema_version",
                readers_key: "schema_readers",
            },
        };
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("meta.db");
        let mut c = open(&path);
        assert_eq!(META.migrate(&mut c, &path).expect("m").to, 1);
        c.execute(
            "UPDATE meta SET value = 'seven' WHERE key = 'schema_version'",
            [],
        )
        .expect("garbage");
        let e = META.migrate(&mut c, &path).expect_err("garbage refused");
        assert!(matches!(e, SchemaError::BadVersion { .. }), "{e}");
        c.execute(
            "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
            [],
        )
        .expect("future");
        assert_eq!(META.migrate(&mut c, &path).expect("readable by 1").to, 3);
        c.execute(
            "UPDATE meta SET value = '3' WHERE key = 'schema_readers'",
            [],
        )
        .expect("incompatible");
        let e = META.migrate(&mut c, &path).expect_err("future refused");
        assert!(
            matches!(
                e,
                SchemaError::TooNew {
                    found: 3,
                    known: 1,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn additive_is_strict() {
        let step = |sql: &'static str| Step {
            sql: Box::leak(Box::new([sql])),
            change: Change::Additive,
        };
        assert!(step(V1).is_additive());
        assert!(step(V2).is_additive());
        assert!(step("ALTER TABLE t ADD COLUMN c TEXT").is_additive());
        for bad in [
            "ALTER TABLE t ADD COLUMN c TEXT NOT NULL",
            "ALTER TABLE t RENAME COLUMN a TO z",
            "ALTER TABLE t DROP COLUMN a",
            "DROP TABLE t",
            "UPDATE t SET a = upper(a)",
            "CREATE TABLE t2 (x)",
        ] {
            assert!(!step(bad).is_additive(), "{bad}");
        }
    }

    #[test]
    fn file_versions() {
        assert_eq!(check_file_version("f", None, 1).expect("missing = 1"), 1);
        assert_eq!(check_file_version("f", Some(1), 1).expect("1"), 1);
        assert_eq!(
            check_file_version("last-attempt.json", Some(4), 1)
                .expect_err("newer")
                .to_string(),
            "last-attempt.json has schema 4; this image knows up to 1: the appliance was rolled back across an incompatible update"
        );
    }
}
