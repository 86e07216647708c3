//! Group commit: one dedicated thread owns the write connection. Callers
//! (many async tasks or threads) validate, redact and encode their entry on
//! their own thread, then queue it; the writer drains every pending append
//! into ONE transaction, commits it durably (WAL + synchronous=FULL),
//! rewrites the anchor, mirrors each entry to journald via `tracing`, and only
//! then answers every caller of that batch.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::AuditSettings;
use super::chain::{canonical_json, format_time};
use super::entry::{AppendReceipt, Entry, MAX_PAYLOAD_LEN, NewEntry, check_party};
use super::error::{AuditError, Result};
use super::key::CheckpointKey;
use super::redact::Redactor;
use super::store::{
    AuditPaths, CheckpointInfo, CheckpointReason, Committed, Prepared, PruneReport, WriteStore,
};

/// Most appends committed in one transaction (bounds latency and memory).
pub const MAX_BATCH: usize = 1024;
/// How often retention runs while the writer is up.
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Appended entries between two checks of `[audit] max_bytes`.
pub const SIZE_CHECK_EVERY: u64 = 500;

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    Append(Prepared, Reply<AppendReceipt>),
    Checkpoint(CheckpointReason, Reply<CheckpointInfo>),
    Prune(OffsetDateTime, Reply<PruneReport>),
    PruneToSize(Reply<PruneReport>),
    Shutdown(Reply<CheckpointInfo>),
    Rekey(CheckpointKey, Reply<usize>),
}

/// Handle to the audit writer thread. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct AuditWriter {
    tx: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    redactor: RwLock<Arc<Redactor>>,
    db_path: PathBuf,
    /// What opening did to `audit.db`'s schema.
    migration: crate::schema::Migration,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Append(..) => "Append",
            Command::Checkpoint(..) => "Checkpoint",
            Command::Prune(..) => "Prune",
            Command::PruneToSize(..) => "PruneToSize",
            Command::Shutdown(..) => "Shutdown",
            Command::Rekey(..) => "Rekey",
        })
    }
}

impl AuditWriter {
    /// Opens the db (creating it and its 0700 directory if needed), checks it
    /// against the anchor (refusing a rolled-back or cut db), runs retention
    /// and starts the writer thread.
    pub fn open(
        paths: &AuditPaths,
        key: CheckpointKey,
        settings: &AuditSettings,
        redactor: Redactor,
    ) -> Result<Self> {
        let store = WriteStore::open(
            paths,
            key,
            settings.checkpoint_every_entries,
            Duration::from_secs(settings.checkpoint_every_secs.max(1)),
        )?;
        let db_path = store.db_path().to_owned();
        let migration = store.migration().clone();
        let (tx, rx) = mpsc::channel();
        let retention_days = settings.retention_days;
        let max_bytes = settings.max_bytes;
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer_loop(store, rx, retention_days, max_bytes))
            .map_err(|source| AuditError::SpawnWriter { source })?;
        Ok(AuditWriter {
            tx,
            thread: Mutex::new(Some(thread)),
            redactor: RwLock::new(Arc::new(redactor)),
            db_path,
            migration,
        })
    }

    /// Replaces the redactor (e.g. when the vault's secrets change).
    pub fn set_redactor(&self, redactor: Redactor) {
        if let Ok(mut r) = self.redactor.write() {
            *r = Arc::new(redactor);
        }
    }

    /// Validates, redacts and encodes an entry (on the caller's thread).
    fn prepare(&self, raw: NewEntry) -> Result<Prepared> {
        let entry = Entry::try_from(raw)?;
        let redactor = self
            .redactor
            .read()
            .map(|r| Arc::clone(&r))
            .map_err(|_| AuditError::WriterStopped)?;
        let actor = redactor.redact_text(&entry.actor);
        let subject = redactor.redact_text(&entry.subject);
        check_party("actor", &actor, false)?;
        check_party("subject", &subject, true)?;
        let mut payload = serde_json::Value::Object(entry.payload);
        redactor.redact_json(&mut payload);
        let mut bytes = Vec::with_capacity(256);
        canonical_json(&payload, &mut bytes);
        if bytes.len() > MAX_PAYLOAD_LEN {
            return Err(AuditError::ValidatePayloadSize {
                size: bytes.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        Ok(Prepared {
            component: entry.component.as_str().to_owned(),
            kind: entry.kind.as_str().to_owned(),
            actor,
            subject,
            payload: bytes,
        })
    }

    fn send<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<oneshot::Receiver<Result<T>>> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| AuditError::WriterStopped)?;
        Ok(rx)
    }

    /// Appends an entry; resolves once it is durably committed and anchored.
    /// Invalid input is refused before anything is queued.
    pub async fn append(&self, raw: NewEntry) -> Result<AppendReceipt> {
        let p = self.prepare(raw)?;
        let rx = self.send(|r| Command::Append(p, r))?;
        rx.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Blocking [`AuditWriter::append`] for threads (must not be called from
    /// inside an async runtime thread).
    pub fn append_blocking(&self, raw: NewEntry) -> Result<AppendReceipt> {
        let p = self.prepare(raw)?;
        let rx = self.send(|r| Command::Append(p, r))?;
        rx.blocking_recv().map_err(|_| AuditError::WriterStopped)?
    }

    /// Writes a checkpoint (reason 'commit') of the current head now.
    /// Moves the trail to a new checkpoint key (after a master key rotation):
    /// every checkpoint and the anchor are re-MACed; returns how many checkpoints.
    pub async fn rekey(&self, new: CheckpointKey) -> Result<usize> {
        let rx = self.send(|r| Command::Rekey(new, r))?;
        rx.await.map_err(|_| AuditError::WriterStopped)?
    }

    pub async fn checkpoint(&self) -> Result<CheckpointInfo> {
        let rx = self.send(|r| Command::Checkpoint(CheckpointReason::Commit, r))?;
        rx.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Blocking [`AuditWriter::checkpoint`].
    pub fn checkpoint_blocking(&self) -> Result<CheckpointInfo> {
        let rx = self.send(|r| Command::Checkpoint(CheckpointReason::Commit, r))?;
        rx.blocking_recv().map_err(|_| AuditError::WriterStopped)?
    }

    /// Deletes entries older than `older_than` (the newest entry is always
    /// kept) and records a MAC'd 'prune' checkpoint.
    pub async fn prune(&self, older_than: Duration) -> Result<PruneReport> {
        let cutoff = cutoff_for(older_than);
        let rx = self.send(|r| Command::Prune(cutoff, r))?;
        rx.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// Blocking prune of entries with time before `cutoff`.
    pub fn prune_before_blocking(&self, cutoff: OffsetDateTime) -> Result<PruneReport> {
        let rx = self.send(|r| Command::Prune(cutoff, r))?;
        rx.blocking_recv().map_err(|_| AuditError::WriterStopped)?
    }

    /// Blocking: prunes the oldest entries now if the trail is over
    /// `[audit] max_bytes` (the writer also does so every [`SIZE_CHECK_EVERY`]
    /// appended entries and with the daily retention).
    pub fn prune_to_size_blocking(&self) -> Result<PruneReport> {
        let rx = self.send(Command::PruneToSize)?;
        rx.blocking_recv().map_err(|_| AuditError::WriterStopped)?
    }

    /// The database this writer owns.
    /// What opening did to `audit.db`'s schema (the owner audits it).
    pub fn migration(&self) -> &crate::schema::Migration {
        &self.migration
    }

    pub fn db_path(&self) -> &std::path::Path {
        &self.db_path
    }

    /// Drains pending appends, writes a 'shutdown' checkpoint, folds the WAL
    /// into the db file and stops the thread. Blocking.
    pub fn shutdown(self) -> Result<CheckpointInfo> {
        let rx = self.send(Command::Shutdown)?;
        let res = rx.blocking_recv().map_err(|_| AuditError::WriterStopped)?;
        self.join();
        res
    }

    fn join(&self) {
        let handle = self.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        // Best effort: a writer dropped without shutdown() still checkpoints.
        let has_thread = self.thread.lock().map(|h| h.is_some()).unwrap_or(false);
        if has_thread {
            let (tx, _rx) = oneshot::channel();
            let _ = self.tx.send(Command::Shutdown(tx));
            self.join();
        }
    }
}

fn cutoff_for(older_than: Duration) -> OffsetDateTime {
    let age = time::Duration::try_from(older_than).unwrap_or(time::Duration::MAX);
    OffsetDateTime::now_utc()
        .checked_sub(age)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn writer_loop(
    mut store: WriteStore,
    rx: mpsc::Receiver<Command>,
    retention_days: u32,
    max_bytes: u64,
) {
    let mut pending: Option<Command> = None;
    let mut next_retention = Instant::now();
    let mut since_size_check: u64 = 0;
    loop {
        if retention_days > 0 && Instant::now() >= next_retention {
            next_retention = Instant::now() + RETENTION_EVERY;
            let cutoff = cutoff_for(Duration::from_secs(u64::from(retention_days) * 86_400));
            if let Err(e) = do_prune(&mut store, cutoff) {
                tracing::error!(target: "cowork::audit", error = %e, "audit retention failed");
            }
            since_size_check = SIZE_CHECK_EVERY;
        }
        if since_size_check >= SIZE_CHECK_EVERY {
            since_size_check = 0;
            if let Err(e) = do_prune_to_size(&mut store, max_bytes) {
                tracing::error!(target: "cowork::audit", error = %e, "audit size bound failed");
            }
        }
        let cmd = match pending.take() {
            Some(c) => c,
            None => {
                let mut wait = next_retention.saturating_duration_since(Instant::now());
                if store.checkpoint_due() {
                    wait = Duration::ZERO;
                } else if store.last_seq() > 0 {
                    wait = wait.min(store.until_checkpoint().max(Duration::from_millis(10)));
                }
                if let Some(due) = store.until_anchor_file() {
                    wait = wait.min(due);
                }
                match rx.recv_timeout(wait) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => {
                        if store.checkpoint_due()
                            && let Err(e) = store.checkpoint(CheckpointReason::Interval)
                        {
                            tracing::error!(target: "cowork::audit", error = %e, "audit checkpoint failed");
                        }
                        if store.until_anchor_file() == Some(Duration::ZERO)
                            && let Err(e) = store.refresh_anchor_file()
                        {
                            tracing::error!(target: "cowork::audit", error = %e, "audit anchor file update failed");
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = finish(&mut store);
                        return;
                    }
                }
            }
        };
        match cmd {
            Command::Append(p, reply) => {
                let mut batch = vec![p];
                let mut replies = vec![reply];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(Command::Append(p, r)) => {
                            batch.push(p);
                            replies.push(r);
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                since_size_check = since_size_check.saturating_add(batch.len() as u64);
                commit_and_answer(&mut store, batch, replies);
            }
            Command::PruneToSize(reply) => {
                let _ = reply.send(do_prune_to_size(&mut store, max_bytes));
            }
            Command::Checkpoint(reason, reply) => {
                let _ = reply.send(store.checkpoint(reason));
            }
            Command::Prune(cutoff, reply) => {
                let _ = reply.send(do_prune(&mut store, cutoff));
            }
            Command::Rekey(key, reply) => {
                let _ = reply.send(store.rekey(key));
            }
            Command::Shutdown(reply) => {
                // Answer appends queued before the shutdown request first.
                let mut batch = Vec::new();
                let mut replies = Vec::new();
                while let Ok(c) = rx.try_recv() {
                    match c {
                        Command::Append(p, r) => {
                            batch.push(p);
                            replies.push(r);
                        }
                        Command::Checkpoint(_, r) => {
                            let _ = r.send(Err(AuditError::WriterStopped));
                        }
                        Command::Prune(_, r) | Command::PruneToSize(r) => {
                            let _ = r.send(Err(AuditError::WriterStopped));
                        }
                        Command::Rekey(_, r) => {
                            let _ = r.send(Err(AuditError::WriterStopped));
                        }
                        Command::Shutdown(r) => {
                            let _ = r.send(Err(AuditError::WriterStopped));
                        }
                    }
                }
                if !batch.is_empty() {
                    commit_and_answer(&mut store, batch, replies);
                }
                let _ = reply.send(finish(&mut store));
                return;
            }
        }
    }
}

fn finish(store: &mut WriteStore) -> Result<CheckpointInfo> {
    let info = store.checkpoint(CheckpointReason::Shutdown)?;
    store.wal_checkpoint()?;
    Ok(info)
}

fn do_prune(store: &mut WriteStore, cutoff: OffsetDateTime) -> Result<PruneReport> {
    let cutoff = format_time(cutoff)?;
    let report = store.prune_before(&cutoff)?;
    if report.deleted > 0 {
        tracing::info!(
            target: "cowork::audit",
            audit_pruned = report.deleted,
            audit_first_kept_seq = report.first_kept_seq,
            "audit pruned {} entries older than {cutoff}",
            report.deleted
        );
    }
    Ok(report)
}

/// Over `max_bytes` (0: no bound), prunes the oldest entries down to 90% of it
/// (so not every check prunes), recorded like an age prune.
fn do_prune_to_size(store: &mut WriteStore, max_bytes: u64) -> Result<PruneReport> {
    let none = PruneReport {
        deleted: 0,
        first_kept_seq: None,
    };
    if max_bytes == 0 {
        return Ok(none);
    }
    let size = store.entries_bytes()?;
    if size <= max_bytes {
        return Ok(none);
    }
    let report = store.prune_to_bytes(max_bytes / 10 * 9)?;
    if report.deleted > 0 {
        tracing::warn!(
            target: "cowork::audit",
            audit_pruned = report.deleted,
            audit_first_kept_seq = report.first_kept_seq,
            "audit trail at {size} bytes, over max_bytes {max_bytes}: pruned the {} oldest entries",
            report.deleted
        );
    }
    Ok(report)
}

fn commit_and_answer(
    store: &mut WriteStore,
    batch: Vec<Prepared>,
    replies: Vec<Reply<AppendReceipt>>,
) {
    match store.commit_batch(&batch) {
        Ok(committed) => {
            for (c, p) in committed.iter().zip(&batch) {
                mirror(c, p);
            }
            for (c, r) in committed.into_iter().zip(replies) {
                let _ = r.send(Ok(AppendReceipt {
                    seq: c.seq,
                    hash: c.hash,
                }));
            }
        }
        Err(e) => {
            tracing::error!(target: "cowork::audit", error = %e, batch = batch.len(), "audit commit failed");
            let reason = e.to_string();
            for r in replies {
                let _ = r.send(Err(AuditError::CommitBatch {
                    reason: reason.clone(),
                }));
            }
        }
    }
}

/// Journald mirror: one structured event per committed entry.
fn mirror(c: &Committed, p: &Prepared) {
    tracing::info!(
        target: "cowork::audit",
        audit_seq = c.seq,
        audit_kind = %p.kind,
        audit_component = %p.component,
        audit_actor = %p.actor,
        audit_subject = %p.subject,
        "audit #{} {} from {} by {}{}{}",
        c.seq,
        p.kind,
        p.component,
        p.actor,
        if p.subject.is_empty() { "" } else { " on " },
        p.subject
    );
}
