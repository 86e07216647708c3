//! The gateway's tables in `state.db`: channel users, pairing codes (hashed),
//! redemption-failure counters (per sender, and per active code with whether it
//! was burned) and pairing-prompt marks. SQLite in WAL mode with
//! `synchronous = FULL`; every multi-step change is one `IMMEDIATE` transaction.
//!
//! The store never reads a clock: callers pass `now` (Unix seconds).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::error::GatewayError;

/// The access-control tables as of `state.db` schema 1 (created by the
/// migration runner, see [`super::state_db`]).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_users (
    channel      TEXT NOT NULL,
    sender       TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('paired', 'allowlisted', 'revoked')),
    since        INTEGER NOT NULL,
    last_seen    INTEGER,
    display_name TEXT,
    PRIMARY KEY (channel, sender)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gateway_pairing_codes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT NOT NULL,
    code_hash  BLOB NOT NULL CHECK (length(code_hash) = 32),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('active', 'used', 'revoked', 'cancelled', 'expired')),
    used_by    TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS gateway_one_active_code
    ON gateway_pairing_codes (channel) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS gateway_code_guesses (
    code_id   INTEGER PRIMARY KEY REFERENCES gateway_pairing_codes (id),
    failures  INTEGER NOT NULL,
    burned_at INTEGER
);
CREATE TABLE IF NOT EXISTS gateway_redeem_limits (
    scope        TEXT NOT NULL CHECK (scope IN ('sender', 'channel')),
    channel      TEXT NOT NULL,
    sender       TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    PRIMARY KEY (scope, channel, sender)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gateway_pairing_prompts (
    channel TEXT NOT NULL,
    sender  TEXT NOT NULL,
    last_at INTEGER NOT NULL,
    PRIMARY KEY (channel, sender)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gateway_pairing_prompts_age ON gateway_pairing_prompts (last_at);
";

/// A user's standing on a channel: the IPC type itself, stored by the same
/// spelling.
pub use crate::ipc::UserState;

impl UserState {
    fn parse(s: &str) -> Result<UserState, GatewayError> {
        match s {
            "paired" => Ok(UserState::Paired),
            "allowlisted" => Ok(UserState::Allowlisted),
            "revoked" => Ok(UserState::Revoked),
            other => Err(GatewayError::CorruptRow {
                operation: "read user state",
                value: other.to_string(),
            }),
        }
    }
}

/// One row of `gateway_users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub channel: String,
    pub sender: String,
    pub state: UserState,
    /// When the current state was entered.
    pub since: i64,
    pub last_seen: Option<i64>,
    pub display_name: Option<String>,
}

/// Which users `revoke_all` revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope<'a> {
    Channel(&'a str),
    Everything,
}

/// Which failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitScope<'a> {
    Sender { channel: &'a str, sender: &'a str },
}

impl LimitScope<'_> {
    fn key(&self) -> (&'static str, &str, &str) {
        match *self {
            LimitScope::Sender { channel, sender } => ("sender", channel, sender),
        }
    }
}

/// The gateway's handle on `state.db`: the process's connection to it,
/// opened once with the file's pragma set ([`super::state_db::open`]) and lent
/// to every store of the file (users and pairing here, the vault, the agent's
/// tasks, approvals and usage). The replay writer alone has a connection of
/// its own (see [`super::replay`]).
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// The store on `conn`, a connection to `path` that [`super::state_db`]
    /// opened (which also defines `Store::open`, the one way in).
    pub(super) fn on(path: &Path, conn: Connection) -> Store {
        Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (every
        // change is a transaction), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when `f` returns Ok.
    pub(crate) fn transaction<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(GatewayError::db(operation))?;
        let out = f(&tx)?;
        tx.commit().map_err(GatewayError::db(operation))?;
        Ok(out)
    }

    // ---- users ----

    pub fn user(&self, channel: &str, sender: &str) -> Result<Option<UserRecord>, GatewayError> {
        user_in(&self.lock(), channel, sender)
    }

    pub fn list_users(&self, channel: Option<&str>) -> Result<Vec<UserRecord>, GatewayError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT channel, sender, state, since, last_seen, display_name FROM gateway_users
                 WHERE ?1 IS NULL OR channel = ?1 ORDER BY channel, sender",
            )
            .map_err(GatewayError::db("list users"))?;
        let rows = stmt
            .query_map(params![channel], row_to_raw)
            .map_err(GatewayError::db("list users"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(raw_to_user(r.map_err(GatewayError::db("list users"))?)?);
        }
        Ok(out)
    }

    /// Marks `sender` as allowlisted on `channel` (an admin action).
    pub fn allowlist_user(
        &self,
        channel: &str,
        sender: &str,
        display_name: Option<&str>,
        now: i64,
    ) -> Result<(), GatewayError> {
        self.transaction("allowlist user", |tx| {
            set_user(
                tx,
                channel,
                sender,
                UserState::Allowlisted,
                display_name,
                now,
            )
        })
    }

    /// Revokes one user; returns whether a non-revoked user was there. A sender
    /// who was never seen is recorded as revoked too, so a later pairing is refused.
    pub fn revoke_user(&self, channel: &str, sender: &str, now: i64) -> Result<bool, GatewayError> {
        self.transaction("revoke user", |tx| {
            let before = user_in(tx, channel, sender)?;
            set_user(tx, channel, sender, UserState::Revoked, None, now)?;
            Ok(before.is_some_and(|u| u.state != UserState::Revoked))
        })
    }

    /// Revokes every paired or allowlisted user in `scope` and every active
    /// pairing code there ("reset security"); returns the number of users revoked.
    pub fn revoke_all(&self, scope: RevokeScope<'_>, now: i64) -> Result<usize, GatewayError> {
        let channel = match scope {
            RevokeScope::Channel(c) => Some(c),
            RevokeScope::Everything => None,
        };
        self.transaction("revoke all users", |tx| {
            let n = tx
                .execute(
                    "UPDATE gateway_users SET state = 'revoked', since = ?2
                     WHERE state != 'revoked' AND (?1 IS NULL OR channel = ?1)",
                    params![channel, now],
                )
                .map_err(GatewayError::db("revoke all users"))?;
            tx.execute(
                "UPDATE gateway_pairing_codes SET state = 'revoked'
                 WHERE state = 'active' AND (?1 IS NULL OR channel = ?1)",
                params![channel],
            )
            .map_err(GatewayError::db("revoke all codes"))?;
            Ok(n)
        })
    }

    /// Deletes a user's row (e.g. to let a revoked sender pair again).
    pub fn forget_user(&self, channel: &str, sender: &str) -> Result<bool, GatewayError> {
        let n = self
            .lock()
            .execute(
                "DELETE FROM gateway_users WHERE channel = ?1 AND sender = ?2",
                params![channel, sender],
            )
            .map_err(GatewayError::db("forget user"))?;
        Ok(n > 0)
    }

    /// Updates `last_seen` if it is older than `min_interval` seconds (bounds writes).
    pub(crate) fn touch(
        &self,
        channel: &str,
        sender: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<(), GatewayError> {
        self.lock()
            .prepare_cached(
                "UPDATE gateway_users SET last_seen = ?3
                 WHERE channel = ?1 AND sender = ?2 AND (last_seen IS NULL OR last_seen <= ?3 - ?4)",
            )
            .and_then(|mut st| st.execute(params![channel, sender, now, min_interval]))
            .map_err(GatewayError::db("update last seen"))?;
        Ok(())
    }

    // ---- pairing prompts ----

    /// True (and remembered) if no "requires pairing" reply went to this sender
    /// within `window` seconds.
    pub(crate) fn claim_prompt(
        &self,
        channel: &str,
        sender: &str,
        now: i64,
        window: i64,
    ) -> Result<bool, GatewayError> {
        self.transaction("claim pairing prompt", |tx| {
            tx.execute(
                "DELETE FROM gateway_pairing_prompts WHERE last_at <= ?1",
                params![now - window],
            )
            .map_err(GatewayError::db("prune pairing prompts"))?;
            let n = tx
                .execute(
                    "INSERT INTO gateway_pairing_prompts (channel, sender, last_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (channel, sender) DO NOTHING",
                    params![channel, sender, now],
                )
                .map_err(GatewayError::db("claim pairing prompt"))?;
            Ok(n == 1)
        })
    }

    /// Forgets the prompt claimed for this sender (it was never sent).
    pub(crate) fn release_prompt(&self, channel: &str, sender: &str) -> Result<(), GatewayError> {
        self.lock()
            .execute(
                "DELETE FROM gateway_pairing_prompts WHERE channel = ?1 AND sender = ?2",
                params![channel, sender],
            )
            .map_err(GatewayError::db("release pairing prompt"))?;
        Ok(())
    }

    // ---- redemption failure limits ----

    /// `Some(until)` while the counter is locked.
    pub(crate) fn locked_until(
        conn: &Connection,
        scope: LimitScope<'_>,
        now: i64,
    ) -> Result<Option<i64>, GatewayError> {
        let (s, c, snd) = scope.key();
        let until: Option<i64> = conn
            .prepare_cached(
                "SELECT locked_until FROM gateway_redeem_limits
                 WHERE scope = ?1 AND channel = ?2 AND sender = ?3",
            )
            .and_then(|mut st| st.query_row(params![s, c, snd], |r| r.get(0)).optional())
            .map_err(GatewayError::db("read redemption lockout"))?;
        Ok(until.filter(|&u| u > now))
    }

    /// Same as [`Store::locked_until`] on the store's own connection, for one
    /// sender (a channel is never locked: a code is burned instead).
    pub fn lockout(
        &self,
        scope_channel: &str,
        sender: &str,
        now: i64,
    ) -> Result<Option<i64>, GatewayError> {
        let scope = LimitScope::Sender {
            channel: scope_channel,
            sender,
        };
        Store::locked_until(&self.lock(), scope, now)
    }

    /// Senders locked out at `now`: (channel, sender, until), oldest lockout first.
    pub fn lockouts(&self, now: i64) -> Result<Vec<(String, String, i64)>, GatewayError> {
        let conn = self.lock();
        let mut st = conn
            .prepare(
                "SELECT channel, sender, locked_until FROM gateway_redeem_limits
                 WHERE scope = 'sender' AND locked_until > ?1 ORDER BY locked_until",
            )
            .map_err(GatewayError::db("list pairing lockouts"))?;
        let rows = st
            .query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(GatewayError::db("list pairing lockouts"))?;
        Ok(rows)
    }

    /// Forgets the pairing failures (and so the lockouts) of one sender, of a
    /// channel's senders, or of everyone; returns how many lockouts it lifted.
    pub fn clear_lockouts(
        &self,
        channel: Option<&str>,
        sender: Option<&str>,
        now: i64,
    ) -> Result<usize, GatewayError> {
        self.transaction("clear pairing lockouts", |tx| {
            let filter = "scope = 'sender' AND (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR sender = ?2)";
            let locked: i64 = tx
                .query_row(
                    &format!("SELECT count(*) FROM gateway_redeem_limits WHERE {filter} AND locked_until > ?3"),
                    params![channel, sender, now],
                    |r| r.get(0),
                )
                .map_err(GatewayError::db("count pairing lockouts"))?;
            tx.execute(
                &format!("DELETE FROM gateway_redeem_limits WHERE {filter}"),
                params![channel, sender],
            )
            .map_err(GatewayError::db("clear pairing lockouts"))?;
            Ok(usize::try_from(locked).unwrap_or(0))
        })
    }

    /// The failures `scope` has left within its current window, without counting one.
    pub(crate) fn failures_left(
        conn: &Connection,
        scope: LimitScope<'_>,
        now: i64,
        max: u32,
        window: i64,
    ) -> Result<u32, GatewayError> {
        let (s, c, snd) = scope.key();
        let row: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT window_start, failures FROM gateway_redeem_limits
                 WHERE scope = ?1 AND channel = ?2 AND sender = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![s, c, snd], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(GatewayError::db("read redemption failures"))?;
        let used = match row {
            Some((start, failures)) if now >= start && now - start < window => failures,
            _ => 0,
        };
        Ok(u32::try_from((i64::from(max) - used).max(0)).unwrap_or(0))
    }

    /// Counts one failure; locks the counter for `lockout` seconds when `max`
    /// failures fall within one `window`. Returns the failures left before a lockout.
    pub(crate) fn record_failure(
        tx: &rusqlite::Transaction<'_>,
        scope: LimitScope<'_>,
        now: i64,
        max: u32,
        window: i64,
        lockout: i64,
    ) -> Result<u32, GatewayError> {
        let (s, c, snd) = scope.key();
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT window_start, failures FROM gateway_redeem_limits
                 WHERE scope = ?1 AND channel = ?2 AND sender = ?3",
                params![s, c, snd],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(GatewayError::db("read redemption failures"))?;
        let (mut start, mut failures) = row.unwrap_or((now, 0));
        if now - start >= window || now < start {
            start = now;
            failures = 0;
        }
        failures += 1;
        let mut locked_until = 0;
        let max = i64::from(max);
        let left = if failures >= max {
            locked_until = now + lockout;
            failures = 0;
            start = now;
            0
        } else {
            max - failures
        };
        tx.execute(
            "INSERT INTO gateway_redeem_limits (scope, channel, sender, window_start, failures, locked_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (scope, channel, sender) DO UPDATE SET
                 window_start = excluded.window_start, failures = excluded.failures,
                 locked_until = max(locked_until, excluded.locked_until)",
            params![s, c, snd, start, failures, locked_until],
        )
        .map_err(GatewayError::db("record redemption failure"))?;
        // Forget quiet counters of this channel (bounded: only guesses against an
        // active code count, and each code takes at most `code_max_failures`).
        tx.execute(
            "DELETE FROM gateway_redeem_limits
             WHERE channel = ?1 AND locked_until <= ?2 AND window_start <= ?2 - ?3",
            params![c, now, window],
        )
        .map_err(GatewayError::db("prune redemption failures"))?;
        Ok(u32::try_from(left).unwrap_or(0))
    }

    pub(crate) fn clear_failures(
        tx: &rusqlite::Transaction<'_>,
        scope: LimitScope<'_>,
    ) -> Result<(), GatewayError> {
        let (s, c, snd) = scope.key();
        tx.execute(
            "DELETE FROM gateway_redeem_limits WHERE scope = ?1 AND channel = ?2 AND sender = ?3",
            params![s, c, snd],
        )
        .map_err(GatewayError::db("clear redemption failures"))?;
        Ok(())
    }
}

type RawUser = (String, String, String, i64, Option<i64>, Option<String>);

fn row_to_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn raw_to_user(
    (channel, sender, state, since, last_seen, display_name): RawUser,
) -> Result<UserRecord, GatewayError> {
    Ok(UserRecord {
        channel,
        sender,
        state: UserState::parse(&state)?,
        since,
        last_seen,
        display_name,
    })
}

pub(crate) fn user_in(
    conn: &Connection,
    channel: &str,
    sender: &str,
) -> Result<Option<UserRecord>, GatewayError> {
    let raw = conn
        .prepare_cached(
            "SELECT channel, sender, state, since, last_seen, display_name FROM gateway_users
             WHERE channel = ?1 AND sender = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![channel, sender], row_to_raw)
                .optional()
        })
        .map_err(GatewayError::db("read user"))?;
    raw.map(raw_to_user).transpose()
}

pub(crate) fn set_user(
    conn: &Connection,
    channel: &str,
    sender: &str,
    state: UserState,
    display_name: Option<&str>,
    now: i64,
) -> Result<(), GatewayError> {
    conn.execute(
        "INSERT INTO gateway_users (channel, sender, state, since, last_seen, display_name)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5)
         ON CONFLICT (channel, sender) DO UPDATE SET
             state = excluded.state, since = excluded.since,
             display_name = coalesce(excluded.display_name, display_name)",
        params![channel, sender, state.as_str(), now, display_name],
    )
    .map_err(GatewayError::db("write user"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_roundtrip_and_revoke_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.allowlist_user("slack", "U1", Some("Ada"), 10).unwrap();
        s.allowlist_user("telegram", "7", None, 11).unwrap();
        let u = s.user("slack", "U1").unwrap().unwrap();
        assert_eq!(u.state, UserState::Allowlisted);
        assert_eq!(u.display_name.as_deref(), Some("Ada"));
        assert!(s.revoke_user("slack", "U1", 20).unwrap());
        assert!(!s.revoke_user("slack", "U1", 21).unwrap());
        assert_eq!(
            s.user("slack", "U1").unwrap().unwrap().state,
            UserState::Revoked
        );
        assert_eq!(s.revoke_all(RevokeScope::Channel("slack"), 30).unwrap(), 0);
        assert_eq!(s.revoke_all(RevokeScope::Everything, 30).unwrap(), 1);
        assert!(s.forget_user("slack", "U1").unwrap());
        assert!(s.user("slack", "U1").unwrap().is_none());
    }

    #[test]
    fn prompt_once_per_window() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.claim_prompt("t", "1", 1000, 3600).unwrap());
        assert!(!s.claim_prompt("t", "1", 4599, 3600).unwrap());
        assert!(s.claim_prompt("t", "2", 4599, 3600).unwrap());
        assert!(s.claim_prompt("t", "1", 4600, 3600).unwrap());
    }
}
