//! The read side: `tail` with a filter and JSON-lines export, on separate
//! read-only connections (WAL lets them read while the writer writes).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Row};
use time::OffsetDateTime;

use super::chain::format_time;
use super::entry::StoredEntry;
use super::error::{AuditError, Result};

/// Most entries one `tail` returns.
pub const MAX_TAIL: usize = 10_000;

/// What `tail` selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Kind prefix, e.g. `pairing.` or `command.output`.
    pub kind: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries with seq > this (paging / follow): results ascend from it.
    pub after_seq: Option<u64>,
    /// At most this many (capped at [`MAX_TAIL`]; 0 means the cap).
    pub limit: usize,
}

/// A read-only connection to `audit.db`.
#[derive(Debug)]
pub struct AuditReader {
    conn: Connection,
    path: PathBuf,
}

const COLUMNS: &str = "seq, time, component, kind, actor, subject, payload, prev_hash, hash";

fn row_to_entry(r: &Row<'_>) -> rusqlite::Result<StoredEntry> {
    let payload: Vec<u8> = r.get(6)?;
    let prev: Vec<u8> = r.get(7)?;
    let hash: Vec<u8> = r.get(8)?;
    Ok(StoredEntry {
        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        time: r.get(1)?,
        component: r.get(2)?,
        kind: r.get(3)?,
        actor: r.get(4)?,
        subject: r.get(5)?,
        payload: serde_json::from_slice(&payload).unwrap_or(serde_json::Value::Null),
        prev_hash: hex::encode(prev),
        hash: hex::encode(hash),
    })
}

impl AuditReader {
    /// Opens a read-only connection (the writer must have created the db).
    pub fn open(path: &Path) -> Result<Self> {
        let err = |source| AuditError::OpenDb {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        Ok(AuditReader {
            conn,
            path: path.to_owned(),
        })
    }

    fn qerr(&self) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
        |source| AuditError::Query {
            path: self.path.clone(),
            source,
        }
    }

    /// Entries matching `filter`, ascending by seq. Without `after_seq` these
    /// are the newest `limit` matches; with it, the first `limit` after it.
    pub fn tail(&self, filter: &Filter) -> Result<Vec<StoredEntry>> {
        let mut conds = Vec::new();
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(k) = &filter.kind {
            args.push(SqlValue::Text(k.clone()));
            conds.push(format!("substr(kind, 1, length(?{0})) = ?{0}", args.len()));
        }
        if let Some(t) = filter.since {
            args.push(SqlValue::Text(format_time(t)?));
            conds.push(format!("time >= ?{}", args.len()));
        }
        if let Some(s) = filter.after_seq {
            args.push(SqlValue::Integer(i64::try_from(s).unwrap_or(i64::MAX)));
            conds.push(format!("seq > ?{}", args.len()));
        }
        let limit = if filter.limit == 0 {
            MAX_TAIL
        } else {
            filter.limit.min(MAX_TAIL)
        };
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let order = if filter.after_seq.is_some() {
            "ASC"
        } else {
            "DESC"
        };
        let sql =
            format!("SELECT {COLUMNS} FROM entries {where_} ORDER BY seq {order} LIMIT {limit}");
        let mut stmt = self.conn.prepare(&sql).map_err(self.qerr())?;
        let mut out = stmt
            .query_map(rusqlite::params_from_iter(args), row_to_entry)
            .map_err(self.qerr())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.qerr())?;
        if filter.after_seq.is_none() {
            out.reverse();
        }
        Ok(out)
    }

    /// Number of entries stored.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(self.qerr())
    }

    /// Writes every entry as one JSON object per line, ascending by seq,
    /// inside one read transaction (a consistent snapshot). Returns the count.
    pub fn export_jsonl<W: Write>(&self, mut out: W) -> Result<u64> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM entries ORDER BY seq"))
            .map_err(self.qerr())?;
        let mut rows = stmt.query([]).map_err(self.qerr())?;
        let mut n = 0u64;
        while let Some(r) = rows.next().map_err(self.qerr())? {
            let e = row_to_entry(r).map_err(self.qerr())?;
            serde_json::to_writer(&mut out, &e)
                .map_err(|e| AuditError::Export { source: e.into() })?;
            out.write_all(b"\n")
                .map_err(|source| AuditError::Export { source })?;
            n += 1;
        }
        out.flush()
            .map_err(|source| AuditError::Export { source })?;
        Ok(n)
    }
}
