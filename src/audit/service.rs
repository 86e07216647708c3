//! The audit component's IPC side: opens the trail once the supervisor has sent the
//! checkpoint key, appends for every peer (stamping the peer's authenticated role
//! as the component), serves tail and verify, re-keys the trail when the
//! master key rotates, and redacts the vault's values once the gateway has
//! sent them (`KnownSecrets`, kept in memory only; see `redact.rs`).

use std::sync::Arc;

use tokio::sync::RwLock;
use zeroize::Zeroizing;

use super::{
    AuditError, AuditPaths, AuditReader, AuditSettings, AuditWriter, CheckpointKey, Filter,
    NewEntry, Redactor, StoredEntry, VerifyReport,
};
use crate::ipc::{
    AuditEntry, AuditQuery, AuditRequest, AuditResponse, AuditVerdict, ComponentResponse,
    ErrorCode, KeyBundle, KnownSecrets, MAX_KNOWN_SECRETS, Peer, WireError,
};
use crate::keystore::Purpose;

/// Keeps a `Tail` answer well inside the 1 MiB frame cap.
const MAX_TAIL_BYTES: usize = 768 * 1024;

#[derive(Debug)]
pub struct AuditService {
    paths: AuditPaths,
    settings: AuditSettings,
    open: RwLock<Option<Open>>,
    /// The redactor for new entries: the patterns plus the vault's values
    /// last sent by the gateway (given to the writer when it opens).
    redactor: std::sync::Mutex<Redactor>,
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
            redactor: std::sync::Mutex::new(Redactor::new()),
        }
    }

    /// `audit.db`'s schema version, once the trail is open.
    pub async fn stores(&self) -> Vec<crate::ipc::StoreStatus> {
        match self.open.read().await.as_ref() {
            Some(open) => vec![crate::ipc::StoreStatus {
                name: open.writer.migration().name.to_string(),
                file: self.paths.db.display().to_string(),
                schema: open.writer.migration().to,
            }],
            None => Vec::new(),
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
                    self.current_redactor(),
                )
                .map_err(|e| match e {
                    // One sentence for the journal, the console and `status`.
                    AuditError::Schema(too_new @ crate::schema::SchemaError::TooNew { .. }) => {
                        tracing::error!("{too_new}");
                        WireError::new(ErrorCode::Unavailable, too_new.to_string())
                    }
                    e => internal("opening the audit trail", &e),
                })?;
                tracing::info!(db = %self.paths.db.display(), "audit trail open");
                let m = writer.migration().clone();
                if m.changed() {
                    let entry = NewEntry {
                        component: "audit".into(),
                        kind: "store.migrated".into(),
                        actor: "audit".into(),
                        subject: m.name.into(),
                        payload: m.audit_payload(),
                    };
                    if let Err(e) = writer.append(entry).await {
                        tracing::error!(error = %e, "cannot audit the migration of audit.db");
                    }
                }
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

    fn current_redactor(&self) -> Redactor {
        self.redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The vault's values from the gateway (the peer table lets nobody else
    /// send them): a new redactor for every entry appended from now on. Works
    /// before the trail is open, too. The values are never logged.
    async fn known_secrets(&self, known: KnownSecrets) -> Result<AuditResponse, WireError> {
        if known.values.len() > MAX_KNOWN_SECRETS {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "{} known secrets, more than {MAX_KNOWN_SECRETS}",
                    known.values.len()
                ),
            ));
        }
        let max = crate::keystore::vault::MAX_VALUE;
        if let Some(i) = known.values.iter().position(|v| v.0.len() > max) {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!("known secret #{i} is longer than a vault value ({max} bytes)"),
            ));
        }
        let count = known.values.len();
        let redactor = tokio::task::spawn_blocking(move || {
            Redactor::new().with_known_secrets(known.values.iter().map(|v| v.0.as_slice()))
        })
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("known-secret task: {e}")))?;
        let matched = redactor.known_secret_count();
        *self.redactor.lock().unwrap_or_else(|p| p.into_inner()) = redactor.clone();
        if let Some(open) = self.open.read().await.as_ref() {
            open.writer.set_redactor(redactor);
        }
        tracing::info!(
            values = count,
            matched,
            "known secrets from the gateway: redacting them from now on"
        );
        Ok(AuditResponse::KnownSecretsTaken {
            matched: u32::try_from(matched).unwrap_or(u32::MAX),
        })
    }

    async fn dispatch(
        &self,
        peer: &Peer,
        request: AuditRequest,
    ) -> Result<AuditResponse, WireError> {
        let request = match request {
            AuditRequest::KnownSecrets(known) => return self.known_secrets(known).await,
            other => other,
        };
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
            AuditRequest::KnownSecrets(_) => Err(WireError::new(
                ErrorCode::Internal,
                "known secrets are handled before the trail is needed",
            )),
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
            entries,
            last_seq,
            newest_checkpoint,
            ..
        }) => AuditVerdict {
            intact: true,
            entries,
            last_seq,
            first_bad_seq: None,
            detail: "intact".to_string(),
            newest_checkpoint,
        },
        Ok(r @ VerifyReport::Tampered { first_bad_seq, .. }) => AuditVerdict {
            intact: false,
            entries: 0,
            last_seq: 0,
            first_bad_seq: Some(first_bad_seq),
            detail: r.to_string(),
            newest_checkpoint: None,
        },
        Err(e) => AuditVerdict {
            intact: false,
            entries: 0,
            last_seq: 0,
            first_bad_seq: None,
            detail: format!("unreadable: {e}"),
            newest_checkpoint: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{AuditAppend, PeerCred, Role, SecretBytes, WireKey};

    fn peer(role: Role) -> Peer {
        Peer {
            role,
            cred: PeerCred {
                pid: None,
                uid: 0,
                gid: 0,
                groups: Vec::new(),
            },
        }
    }

    fn known(values: &[&[u8]]) -> AuditRequest {
        AuditRequest::KnownSecrets(KnownSecrets {
            values: values.iter().map(|v| SecretBytes(v.to_vec())).collect(),
        })
    }

    async fn append(s: &AuditService, text: &str) {
        let r = s
            .handle(
                &peer(Role::Sandbox),
                AuditRequest::Append(AuditAppend {
                    kind: "command.output".into(),
                    actor: "sandbox".into(),
                    subject: "t-1".into(),
                    payload: serde_json::json!({ "stdout": text }),
                }),
            )
            .await;
        assert!(
            matches!(r, ComponentResponse::Audit(AuditResponse::Appended { .. })),
            "{r:?}"
        );
    }

    async fn stored(s: &AuditService) -> String {
        match s
            .handle(
                &peer(Role::Supervisor),
                AuditRequest::Tail(AuditQuery {
                    limit: 100,
                    ..AuditQuery::default()
                }),
            )
            .await
        {
            ComponentResponse::Audit(AuditResponse::Entries(e)) => {
                serde_json::to_string(&e).unwrap_or_default()
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn known_secrets_before_and_after_the_trail_opens() {
        let dir = tempfile::tempdir().unwrap();
        let s = AuditService::new(dir.path(), &AuditSettings::default());
        // Before the key: taken, and used once the trail opens.
        let r = s
            .handle(
                &peer(Role::Gateway),
                known(&[b"first-vault-value", b"short"]),
            )
            .await;
        assert!(
            matches!(
                r,
                ComponentResponse::Audit(AuditResponse::KnownSecretsTaken { matched: 1 })
            ),
            "{r:?}"
        );
        let bundle = KeyBundle {
            keys: vec![WireKey {
                purpose: Purpose::AuditCheckpoint,
                bytes: [7; 32],
            }],
        };
        s.install_keys(&bundle).await.unwrap();
        append(&s, "printed first-vault-value").await;
        // A new set replaces the old one, on the open writer.
        s.handle(&peer(Role::Gateway), known(&[b"second-vault-value\n"]))
            .await;
        append(&s, "printed second-vault-value and first-vault-value").await;
        let text = stored(&s).await;
        assert!(!text.contains("second-vault-value"), "{text}");
        assert_eq!(text.matches("[REDACTED:known_secret]").count(), 2, "{text}");
        // The first value was dropped from the set: it is no longer a secret.
        assert!(text.contains("and first-vault-value"), "{text}");
    }

    #[tokio::test]
    async fn hostile_known_secret_sets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = AuditService::new(dir.path(), &AuditSettings::default());
        let many: Vec<&[u8]> = vec![b"abcdefgh"; MAX_KNOWN_SECRETS + 1];
        let big = vec![b'x'; crate::keystore::vault::MAX_VALUE + 1];
        for request in [known(&many), known(&[big.as_slice()])] {
            match s.handle(&peer(Role::Gateway), request).await {
                ComponentResponse::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest),
                other => panic!("{other:?}"),
            }
        }
        // An empty set is fine (the vault was emptied).
        let r = s.handle(&peer(Role::Gateway), known(&[])).await;
        assert!(
            matches!(
                r,
                ComponentResponse::Audit(AuditResponse::KnownSecretsTaken { matched: 0 })
            ),
            "{r:?}"
        );
    }
}
