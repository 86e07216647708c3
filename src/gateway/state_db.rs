//! `state.db`, the gateway's SQLite file: who owns which tables, its schema
//! steps, and the one way to open it.
//!
//! The gateway component owns the file (it is the only process that opens
//! it); the tables belong to the modules that use them, each keeping its
//! statements beside its code: the vault (`keystore::vault`), users and
//! pairing (`gateway::store`), replay ids (`gateway::replay`), tasks and
//! approvals (`gateway::tasks::store`), task origins (`gateway::tasks`), daily
//! usage (`gateway::tasks::budget`) and kept safety numbers
//! (`gateway::identities`). [`STATE_DB`] lists them as numbered steps
//! (see [`crate::schema`]); the version is `PRAGMA user_version`.
//!
//! Every connection is opened with [`open`], which migrates (a no-op once the
//! file is current) and refuses a file from a newer image. The gateway's first
//! open at start returns the [`Migration`] it audits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::error::GatewayError;
use super::replay::ReplayGuard;
use super::store::Store;
use crate::schema::{Change, Migration, Record, Schema, Step};

/// The file name inside the gateway's state directory.
pub const FILE: &str = "state.db";

/// `state.db`'s steps. Step 1 is the baseline: the tables as they were
/// created before versions were recorded (all `IF NOT EXISTS`, so a file of
/// that time is recognised as version 1 by running it).
///
/// Adding a step: append it, additive (new tables, indexes, columns with a
/// default) so the previous image can still open the file after a rollback;
/// see `docs/update-format.md`, *Schema versions*, and the tests in
/// `tests/schema_rollback.rs`. Add a fixture of the old version too.
pub const STATE_DB: Schema = Schema {
    name: FILE,
    steps: KNOWN_STEPS,
    record: Record::UserVersion,
};

const STEPS: &[Step] = &[
    Step {
        sql: &[
            crate::keystore::vault::SCHEMA,
            super::store::SCHEMA,
            super::replay::SCHEMA,
            crate::gateway::tasks::store::TASKS_SCHEMA,
            crate::gateway::tasks::store::APPROVALS_SCHEMA,
            super::tasks::ORIGINS_SCHEMA,
            super::tasks::budget::SCHEMA,
        ],
        change: Change::Additive,
    },
    Step {
        sql: &[crate::gateway::tasks::store::LISTING_INDEXES],
        change: Change::Additive,
    },
    Step {
        sql: &[super::identities::SCHEMA],
        change: Change::Additive,
    },
];

#[cfg(not(feature = "state-db-before-newest"))]
const KNOWN_STEPS: &[Step] = STEPS;
/// The image before the newest step, for `make test-image` only (see the
/// feature in `Cargo.toml`): its update test then crosses a real migration
/// and rolls back onto the migrated file.
#[cfg(feature = "state-db-before-newest")]
const KNOWN_STEPS: &[Step] = match STEPS.split_last() {
    Some((_, before)) => before,
    None => STEPS,
};

/// Opens (creating) `path` in WAL mode with `synchronous = FULL` and
/// `secure_delete = ON`, and brings
/// it to [`STATE_DB`]'s newest version; a file from a newer image is refused
/// ([`crate::schema::SchemaError::TooNew`]) and left as it is.
pub fn open(path: &Path) -> Result<(Connection, Migration), GatewayError> {
    let open_err = |source| GatewayError::OpenStore {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    // Refuse a newer file before anything writes to it (even the journal mode).
    STATE_DB.check_known(STATE_DB.found(&conn, path)?)?;
    // secure_delete is per connection: the vault's deletes (and every other
    // table's) overwrite the freed pages on every connection to the file.
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
        .and_then(|_| conn.pragma_update(None, "secure_delete", "ON"))
        .and_then(|_| conn.busy_timeout(Duration::from_secs(5)))
        .map_err(open_err)?;
    let migration = STATE_DB.migrate(&mut conn, path)?;
    Ok((conn, migration))
}

impl Store {
    /// Opens (creating, migrating) `dir/state.db`.
    pub fn open(dir: &Path) -> Result<Store, GatewayError> {
        Store::open_path(&dir.join(FILE))
    }

    /// Opens (creating, migrating) the database at `path`.
    pub fn open_path(path: &Path) -> Result<Store, GatewayError> {
        Store::open_migrated(path).map(|(store, _)| store)
    }

    /// [`Store::open_path`], and what opening did to the file's schema.
    pub fn open_migrated(path: &Path) -> Result<(Store, Migration), GatewayError> {
        let (conn, migration) = open(path)?;
        Ok((Store::on(path, conn), migration))
    }
}

impl ReplayGuard {
    /// The guard of `store`'s file, its writer on a connection of its own
    /// (the one exception to the file's pragma set: see [`super::replay`]).
    pub fn new(
        store: Arc<Store>,
        window_secs: i64,
        max_entries: i64,
    ) -> Result<ReplayGuard, GatewayError> {
        let path = store.path().to_path_buf();
        let (conn, _) = open(&path)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|source| GatewayError::OpenStore { path, source })?;
        ReplayGuard::with_writer(store, conn, window_secs, max_entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secure_delete` is per connection: every one opened here has it, so a
    /// deleted secret's pages are overwritten whichever store deleted it.
    #[test]
    fn every_connection_has_the_one_pragma_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        for _ in 0..2 {
            let (conn, _) = open(&path).unwrap();
            let get = |name: &str| -> String {
                conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap()
            };
            assert_eq!(get("journal_mode"), "Text(\"wal\")");
            assert_eq!(get("synchronous"), "Integer(2)");
            assert_eq!(get("secure_delete"), "Integer(1)");
        }
    }
}
