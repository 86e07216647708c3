//! The audit component's IPC side: opens the trail once the supervisor has sent the
//! checkpoint key, appends for every peer (stamping the peer's authenticated role
//! as the component), serves tail and verify, and re-keys the trail when the
//! master key rotates.

use std::sync::Arc;

use tokio::sync::RwLock;
use zeroize::Zeroizing;

use super::{
    AuditError, AuditPaths, AuditReader, AuditSettings, AuditWriter, CheckpointKey, Filter,
    NewEntry, Redactor, StoredEntry, VerifyReport,
};
use crate::ipc::{
    AuditEntry, AuditQuery, AuditRequest, AuditResponse, AuditVerdict, ComponentResponse,
    ErrorCode, KeyBundle, Peer, WireError,
};
use crate::keystore::Purpose;

/// Keeps a `Tail` answer well inside the 1 MiB frame cap.
const MAX_TAIL_BYTES: usize = 768 * 1024;

#[derive(Debug)]
pub struct AuditService {
    paths: AuditPaths,
    settings: AuditSettings,
    open: RwLock<Option<Open>>,
}

#[derive(Debug)]
struct Open {
    writer: Arc<AuditWriter>,
    key: Zeroizing<[u8; 32]>,
}

impl AuditService {
    /// The trail under `$STATE/audit/` (`state_dir` is the appliance's state directory).
    pub fn new(state_dir: &std::path::Path, settings: &AuditSettings) -> AuditService {
        AuditService {
            paths: AuditPaths::in_state_dir(state_dir),
            settings: settings.clone(),
            open: RwLock::new(None),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.try_read().map(|o| o.is_some()).unwrap_or(true)
    }

    /// The checkpoint key from the supervisor: opens the trail the first time; a
    /// different key later (a master key rotation) re-keys the trail.
    pub async fn install_keys(&self, bundle: &KeyBundle) -> Result<(), WireError> {
        let Some(wire) = bundle
            .keys
            .iter()
            .find(|k| k.purpose == Purpose::AuditCheckpoint)
        else {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                "key bundle lacks the audit-checkpoint key",
            ));
        };
        let mut open = self.open.write().await;
        match open.as_ref() {
            None => {
                let writer = AuditWriter::open(
                    &self.paths,
                    CheckpointKey::from_bytes(wire.bytes),
                    &self.settings,
                    Redactor::new(),
                )
                .map_err(|e| internal("opening the audit trail", &e))?;
                tracing::info!(db = %self.paths.db.display(), "audit trail open");
                *open = Some(Open {
                    writer: Arc::new(writer),
                    key: Zeroizing::new(wire.bytes),
                });
            }
            Some(current) if *current.key == wire.bytes => {}
            Some(current) => {
                let n = current
                    .writer
                    .rekey(CheckpointKey::from_bytes(wire.bytes))
                    .await
                    .map_err(|e| internal("re-keying the audit trail", &e))?;
                tracing::warn!(
                    checkpoints = n,
                    "audit trail re-keyed after a master key rotation"
                );
                let writer = Arc::clone(&current.writer);
                *open = Some(Open {
                    writer,
                    key: Zeroizing::new(wire.bytes),
                });
            }
        }
        Ok(())
    }

    pub async fn handle(&self, peer: &Peer, request: AuditRequest) -> ComponentResponse {
        match self.dispatch(peer, request).await {
            Ok(r) => ComponentResponse::Audit(r),
            Err(e) => ComponentResponse::Error(e),
        }
    }

    async fn dispatch(
        &self,
        peer: &Peer,
        request: AuditRequest,
    ) -> Result<AuditResponse, WireError> {
        let (writer, key) = {
            let open = self.open.read().await;
            let open = open.as_ref().ok_or_else(|| {
                WireError::new(
                    ErrorCode::Unavailable,
                    "the audit trail is not open yet (no key)",
                )
            })?;
            (Arc::clone(&open.writer), open.key.clone())
        };
        match request {
            AuditRequest::Append(a) => {
                let entry = NewEntry {
                    component: peer.role.name().to_string(),
                    kind: a.kind,
                    actor: a.actor,
                    subject: a.subject,
                    payload: a.payload,
                };
                let receipt = writer.append(entry).await.map_err(append_error)?;
                Ok(AuditResponse::Appended { seq: receipt.seq })
            }
            AuditRequest::Tail(q) => {
                let paths = self.paths.clone();
                let entries = tokio::task::spawn_blocking(move || tail(&paths, &q))
                    .await
                    .map_err(|e| {
                        WireError::new(ErrorCode::Internal, format!("audit tail task: {e}"))
                    })??;
                Ok(AuditResponse::Entries(entries))
            }
            AuditRequest::Verify => {
                let paths = self.paths.clone();
                let report = tokio::task::spawn_blocking(move || {
                    super::verify_live(&paths, Some(&CheckpointKey::from_bytes(*key)))
                })
                .await
                .map_err(|e| {
                    WireError::new(ErrorCode::Internal, format!("audit verify task: {e}"))
                })?;
                Ok(AuditResponse::Verified(verdict(report)))
            }
        }
    }
}

fn tail(paths: &AuditPaths, q: &AuditQuery) -> Result<Vec<AuditEntry>, WireError> {
    let since = match &q.since {
        Some(t) => Some(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    WireError::new(
                        ErrorCode::BadRequest,
                        format!("since {t:?} is not an RFC 3339 time: {e}"),
                    )
                })?,
        ),
        None => None,
    };
    let reader = AuditReader::open(&paths.db)
        .map_err(|e| internal("opening the audit trail for reading", &e))?;
    let filter = Filter {
        kind: q.kind.clone(),
        since,
        after_seq: q.after_seq,
        limit: q.limit as usize,
    };
    let stored = reader
        .tail(&filter)
        .map_err(|e| internal("reading the audit trail", &e))?;
    let mut entries: Vec<AuditEntry> = stored.into_iter().map(entry).collect();
    // Keep the answer inside one frame: when paging forward keep the first ones,
    // when asking for the latest keep the last ones.
    let mut size: usize = entries.iter().map(approx_size).sum();
    while size > MAX_TAIL_BYTES && !entries.is_empty() {
        let dropped = if q.after_seq.is_some() {
            entries.pop()
        } else {
            Some(entries.remove(0))
        };
        size -= dropped.as_ref().map_or(0, approx_size);
    }
    Ok(entries)
}

fn approx_size(e: &AuditEntry) -> usize {
    e.payload.to_string().len() + e.actor.len() + e.subject.len() + e.kind.len() + 256
}

fn entry(s: StoredEntry) -> AuditEntry {
    AuditEntry {
        seq: s.seq,
        time: s.time,
        component: s.component,
        kind: s.kind,
        actor: s.actor,
        subject: s.subject,
        payload: s.payload,
        prev_hash: s.prev_hash,
        hash: s.hash,
    }
}

fn verdict(report: Result<VerifyReport, AuditError>) -> AuditVerdict {
    match report {
        Ok(VerifyReport::Intact {
            entries, last_seq, ..
        }) => AuditVerdict {
            intact: true,
            entries,
            last_seq,
            first_bad_seq: None,
            detail: "intact".to_string(),
        },
        Ok(r @ VerifyReport::Tampered { first_bad_seq, .. }) => AuditVerdict {
            intact: false,
            entries: 0,
            last_seq: 0,
            first_bad_seq: Some(first_bad_seq),
            detail: r.to_string(),
        },
        Err(e) => AuditVerdict {
            intact: false,
            entries: 0,
            last_seq: 0,
            first_bad_seq: None,
            detail: format!("unreadable: {e}"),
        },
    }
}

fn append_error(e: AuditError) -> WireError {
    let code = match &e {
        AuditError::ValidateEntry { .. } | AuditError::ValidatePayloadSize { .. } => {
            ErrorCode::BadRequest
        }
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}

fn internal(what: &str, e: &AuditError) -> WireError {
    WireError::new(ErrorCode::Internal, format!("{what}: {e}"))
}
