//! Replay dedupe: platform event ids (Telegram `update_id`, Slack `event_id`,
//! Discord interaction / message id) are remembered for a bounded window, in
//! memory for the decision and in `state.db` for durability, so a replay inside
//! the window is refused even across a restart.
//!
//! Table `gateway_seen_events (channel, event_id, seen_at)`. A fresh id is
//! written by one writer thread on a connection of its own (opened by
//! [`super::state_db::open`] like the process's [`Store`], then
//! `synchronous=NORMAL`: see below), so the lookups every message makes on the
//! store are not queued behind its commits.
//! [`ReplayGuard::check`] returns only after the id is committed (the
//! dispatcher splits it: [`ReplayGuard::claim`], then [`ReplayGuard::durable`]
//! before any effect), so a message is never acknowledged before its id would
//! survive a restart of the process.
//! A claim only queues its id; the writer commits when somebody waits
//! ([`ReplayGuard::durable`], [`ReplayGuard::forget`]) or [`FLUSH_AT`] ids
//! are queued, whatever has queued up by then in one transaction (group
//! commit). The dispatcher waits after its audit entry is durable: the
//! messages of one audit commit wake the writer about once between them,
//! where waking it per claim cost a transaction and two context switches
//! per message.
//! Not fsynced per commit: the audit entry written beside it (with the event id) is,
//! and one fsync per message instead of two doubles the webhook rate. What a
//! power cut can lose is the last few ids, whose replay would then need a
//! captured, validly signed request inside the platform's window. Rows older than the
//! window are pruned, and the table and the memory map are capped at
//! `max_entries` (oldest first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::error::GatewayError;
use super::store::Store;

/// As of `state.db` schema 1 (created by the migration runner, see
/// [`super::state_db`]).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gateway_seen_events (
    channel  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gateway_seen_events_age ON gateway_seen_events (seen_at);
";

/// Default window: Slack retries for up to ~1 h, Telegram keeps updates 24 h.
pub const DEFAULT_REPLAY_WINDOW_SECS: i64 = 24 * 3600;
/// Default cap on remembered ids.
pub const DEFAULT_MAX_EVENTS: i64 = 100_000;
/// Longest event id accepted (longer ones are refused as malformed).
pub const MAX_EVENT_ID_LEN: usize = 128;

/// Whether an event id was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time inside the window: remembered (durably), process it.
    Fresh,
    /// Already seen inside the window: a replay, drop it.
    Replay,
}

type Key = (String, String);
/// A fresh id to insert (`Some(seen_at)`) or one to forget (`None`), and who waits.
type Job = (Key, Option<i64>, oneshot::Sender<Result<(), String>>);
/// Ids queued but not yet committed.
type Queue = Arc<Mutex<Vec<Job>>>;

/// Queued ids that make the writer commit without waiting for a waiter.
pub const FLUSH_AT: usize = 1024;

/// What [`ReplayGuard::claim`] decided.
#[derive(Debug)]
pub enum Claim {
    /// Already seen inside the window: a replay, drop it.
    Replay,
    /// First time inside the window: remembered in memory, its write queued.
    Fresh(Pending),
}

/// A fresh id whose write is queued; [`ReplayGuard::durable`] waits for it.
#[derive(Debug)]
pub struct Pending {
    key: Key,
    wait: oneshot::Receiver<Result<(), String>>,
}

/// Remembers event ids (memory + `state.db`).
#[derive(Debug)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<Key, i64>>,
    window_secs: i64,
    max_entries: usize,
    queue: Queue,
    /// Wakes the writer to commit the queue.
    flush: Mutex<std::sync::mpsc::Sender<()>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for ReplayGuard {
    /// Ends the writer once it has committed what is queued.
    fn drop(&mut self) {
        let (closed, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(
            &mut *self.flush.lock().unwrap_or_else(|p| p.into_inner()),
            closed,
        ));
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

impl ReplayGuard {
    /// Loads the remembered ids (the store's open created the table) and starts the
    /// writer thread on `conn` (it ends when the guard is dropped).
    /// `ReplayGuard::new` (in [`super::state_db`]) opens that connection.
    pub(super) fn with_writer(
        store: Arc<Store>,
        conn: rusqlite::Connection,
        window_secs: i64,
        max_entries: i64,
    ) -> Result<Self, GatewayError> {
        let window_secs = window_secs.max(1);
        let max_entries = usize::try_from(max_entries.max(1)).unwrap_or(usize::MAX);
        let mut seen = HashMap::new();
        {
            let conn = store.lock();
            let mut st = conn
                .prepare(
                    "SELECT channel, event_id, seen_at FROM gateway_seen_events
                     ORDER BY seen_at DESC LIMIT ?1",
                )
                .map_err(GatewayError::db("load event ids"))?;
            let rows = st
                .query_map(
                    params![i64::try_from(max_entries).unwrap_or(i64::MAX)],
                    |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)),
                )
                .map_err(GatewayError::db("load event ids"))?;
            for row in rows {
                let (k, at): (Key, i64) = row.map_err(GatewayError::db("load event ids"))?;
                seen.insert(k, at);
            }
        }
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let max = i64::try_from(max_entries).unwrap_or(i64::MAX);
        let queue = Queue::default();
        let writer_queue = Arc::clone(&queue);
        let writer = std::thread::Builder::new()
            .name("gateway-replay-writer".into())
            .spawn(move || writer(conn, &writer_queue, rx, window_secs, max))
            .map_err(|e| GatewayError::Sink {
                sink: "replay",
                reason: format!("start writer thread: {e}"),
            })?;
        Ok(ReplayGuard {
            seen: Mutex::new(seen),
            window_secs,
            max_entries,
            queue,
            flush: Mutex::new(tx),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Remembers `event_id` for `channel` at `now` and returns once it is
    /// durable; [`Seen::Replay`] if it was already seen inside the window.
    pub async fn check(
        &self,
        channel: &str,
        event_id: &str,
        now: i64,
    ) -> Result<Seen, GatewayError> {
        match self.claim(channel, event_id, now)? {
            Claim::Replay => Ok(Seen::Replay),
            Claim::Fresh(pending) => self.durable(pending).await.map(|()| Seen::Fresh),
        }
    }

    /// Decides, in memory, whether `event_id` is fresh, and if so queues it to
    /// be written: the caller awaits [`ReplayGuard::durable`] before any
    /// effect of the message (meanwhile it may audit it).
    pub fn claim(&self, channel: &str, event_id: &str, now: i64) -> Result<Claim, GatewayError> {
        if event_id.is_empty()
            || event_id.len() > MAX_EVENT_ID_LEN
            || event_id.chars().any(char::is_control)
        {
            return Err(GatewayError::ValidateInbound {
                field: "event_id",
                reason: "empty, longer than 128 bytes or with a control character",
            });
        }
        let key = (channel.to_string(), event_id.to_string());
        let cutoff = now.saturating_sub(self.window_secs);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(&key).is_some_and(|&at| at >= cutoff) {
                return Ok(Claim::Replay);
            }
            if seen.len() >= self.max_entries {
                seen.retain(|_, at| *at >= cutoff);
                if seen.len() >= self.max_entries {
                    // Still full: drop the oldest tenth.
                    let mut ages: Vec<i64> = seen.values().copied().collect();
                    ages.sort_unstable();
                    let limit = ages[ages.len() / 10];
                    seen.retain(|_, at| *at > limit);
                }
            }
            seen.insert(key.clone(), now);
        }
        let wait = self.enqueue(key.clone(), Some(now));
        Ok(Claim::Fresh(Pending { key, wait }))
    }

    /// Queues a write; the writer is woken only when the queue is long.
    fn enqueue(&self, key: Key, at: Option<i64>) -> oneshot::Receiver<Result<(), String>> {
        let (done, wait) = oneshot::channel();
        let queued = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.push((key, at, done));
            queue.len()
        };
        if queued >= FLUSH_AT {
            self.wake_writer();
        }
        wait
    }

    /// Asks the writer to commit the queue; false when it has stopped.
    fn wake_writer(&self) -> bool {
        self.flush
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(())
            .is_ok()
    }

    /// Waits for a queued write: committed already, or once the writer,
    /// woken, has committed the queue.
    async fn committed(
        &self,
        mut wait: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(), String> {
        match wait.try_recv() {
            Ok(result) => return result,
            Err(oneshot::error::TryRecvError::Closed) => return Err("writer stopped".into()),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        if !self.wake_writer() {
            return Err("writer stopped".into());
        }
        wait.await.unwrap_or_else(|_| Err("writer stopped".into()))
    }

    /// Waits until a fresh id's write is durable. On failure the id is
    /// forgotten, so the platform's retry is not a "replay".
    pub async fn durable(&self, pending: Pending) -> Result<(), GatewayError> {
        let result = self.committed(pending.wait).await;
        result.map_err(|reason| {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pending.key);
            GatewayError::Sink {
                sink: "replay",
                reason,
            }
        })
    }

    /// Forgets `event_id` (the message it named failed before any effect, so
    /// the platform's retry must not count as a replay). Waits until durable.
    pub async fn forget(&self, channel: &str, event_id: &str) -> Result<(), GatewayError> {
        let key = (channel.to_string(), event_id.to_string());
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let wait = self.enqueue(key, None);
        self.committed(wait)
            .await
            .map_err(|reason| GatewayError::Sink {
                sink: "replay",
                reason,
            })
    }

    /// Number of ids remembered in memory (for tests and status).
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The writer thread: commits the queue when woken (and once more when the
/// guard is gone), pruning by age and count.
fn writer(
    mut conn: Connection,
    queue: &Mutex<Vec<Job>>,
    wake: std::sync::mpsc::Receiver<()>,
    window: i64,
    max: i64,
) {
    let mut commits: u64 = 0;
    loop {
        let open = wake.recv().is_ok();
        // Wake-ups sent while this one was on its way are answered by this commit.
        while wake.try_recv().is_ok() {}
        let batch = std::mem::take(&mut *queue.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            if open {
                continue;
            }
            return;
        }
        let newest = batch.iter().filter_map(|j| j.1).max().unwrap_or(0);
        let prune = commits.is_multiple_of(64);
        commits += 1;
        let result = conn.transaction().and_then(|tx| {
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO gateway_seen_events (channel, event_id, seen_at)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (channel, event_id) DO UPDATE SET seen_at = excluded.seen_at",
                )?;
                let mut delete = tx.prepare_cached(
                    "DELETE FROM gateway_seen_events WHERE channel = ?1 AND event_id = ?2",
                )?;
                for ((channel, id), at, _) in &batch {
                    match at {
                        Some(at) => insert.execute(params![channel, id, at])?,
                        None => delete.execute(params![channel, id])?,
                    };
                }
            }
            if prune {
                tx.execute(
                    "DELETE FROM gateway_seen_events WHERE seen_at < ?1",
                    params![newest.saturating_sub(window)],
                )?;
                let count: i64 =
                    tx.query_row("SELECT count(*) FROM gateway_seen_events", [], |r| r.get(0))?;
                if count > max {
                    tx.execute(
                        "DELETE FROM gateway_seen_events WHERE (channel, event_id) IN (
                             SELECT channel, event_id FROM gateway_seen_events
                             ORDER BY seen_at LIMIT ?1)",
                        params![count - max],
                    )?;
                }
            }
            tx.commit()
        });
        let result = result.map_err(|e| format!("remember event ids: {e}"));
        for (_, _, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replay_inside_window_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let g = ReplayGuard::new(store, 100, 1000).unwrap();
        assert_eq!(g.check("slack", "Ev1", 1000).await.unwrap(), Seen::Fresh);
        assert_eq!(g.check("slack", "Ev1", 1050).await.unwrap(), Seen::Replay);
        assert_eq!(g.check("telegram", "Ev1", 1050).await.unwrap(), Seen::Fresh);
        drop(g);
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let g = ReplayGuard::new(store, 100, 1000).unwrap();
        assert_eq!(g.check("slack", "Ev1", 1090).await.unwrap(), Seen::Replay);
        // Outside the window the id is forgotten.
        assert_eq!(g.check("slack", "Ev1", 1200).await.unwrap(), Seen::Fresh);
        assert!(g.check("slack", "", 1200).await.is_err());
        assert!(g.check("slack", &"x".repeat(129), 1200).await.is_err());
        assert!(g.check("slack", "a\nb", 1200).await.is_err());
        // A forgotten id is fresh again, also after a reopen.
        g.forget("slack", "Ev1").await.unwrap();
        assert_eq!(g.check("telegram", "Ev9", 1200).await.unwrap(), Seen::Fresh);
        drop(g);
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let g = ReplayGuard::new(store, 100, 1000).unwrap();
        assert_eq!(g.check("slack", "Ev1", 1210).await.unwrap(), Seen::Fresh);
    }

    /// One waiter's flush commits every id claimed before it, in one
    /// transaction; ids still queued when the guard goes are committed too.
    #[tokio::test]
    async fn one_wait_commits_the_queue_and_a_drop_commits_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let rows = || -> i64 {
            store
                .lock()
                .query_row("SELECT count(*) FROM gateway_seen_events", [], |r| r.get(0))
                .unwrap()
        };
        let g = ReplayGuard::new(store.clone(), 100, 1000).unwrap();
        let mut pending: Vec<Pending> = (0..5)
            .map(
                |i| match g.claim("slack", &format!("Ev{i}"), 1000).unwrap() {
                    Claim::Fresh(p) => p,
                    Claim::Replay => panic!("fresh id taken for a replay"),
                },
            )
            .collect();
        let last = pending.pop().unwrap();
        g.durable(last).await.unwrap();
        assert_eq!(rows(), 5);
        // The others' waits are answered without waking the writer again.
        for p in pending {
            g.durable(p).await.unwrap();
        }
        for i in 5..8 {
            assert!(matches!(
                g.claim("slack", &format!("Ev{i}"), 1000).unwrap(),
                Claim::Fresh(_)
            ));
        }
        // The writer commits what was queued before it ends.
        drop(g);
        assert_eq!(rows(), 8);
    }

    #[tokio::test]
    async fn bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let g = ReplayGuard::new(store.clone(), 1_000_000, 10).unwrap();
        for i in 0..300 {
            g.check("t", &i.to_string(), i).await.unwrap();
        }
        assert!(g.len() <= 10);
        // The newest ids are still refused.
        assert_eq!(g.check("t", "299", 300).await.unwrap(), Seen::Replay);
        // The replay table's commits are not flushed; every other store's are
        // (synchronous FULL is 2).
        let sync: i64 = store
            .lock()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
        drop(g);
        let g = ReplayGuard::new(store, 1_000_000, 10).unwrap();
        assert!(g.len() <= 10);
    }
}
