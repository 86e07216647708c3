//! `coworkctl update status|apply` in the supervisor. On the appliance the
//! update writer (`cowork-update.socket`, see `update::writer`) does the work:
//! this unit may open no block device. Without a writer socket configured, the
//! same work runs here on a blocking thread. Either way every step goes to the
//! audit trail as it happens.

use std::path::PathBuf;

use crate::audit::AuditLog;
use crate::update::writer::{self, WriterRequest};
use crate::update::{Slots, UpdateEvent, UpdateSettings};

/// Runs `request` through the writer (or here), recording its events.
async fn run(
    settings: UpdateSettings,
    audit: AuditLog,
    actor: String,
    request: WriterRequest,
) -> Result<serde_json::Value, String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<UpdateEvent>();
    let forward = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let payload = serde_json::to_value(&event).unwrap_or_default();
            audit.record(event.name(), &actor, "", payload).await;
        }
    });
    let result = match settings.writer_socket.clone() {
        Some(socket) => writer::call(&socket, &request, &tx).await,
        None => writer::execute_blocking(request, settings, tx.clone()).await,
    };
    drop(tx);
    let _ = forward.await;
    result
}

/// `coworkctl update status`: slots, versions, entries, last attempt, and (after
/// a fallback) why. Also notices a blessed or rolled-back boot since last time.
pub async fn status(
    settings: UpdateSettings,
    audit: AuditLog,
) -> Result<serde_json::Value, String> {
    run(settings, audit, "supervisor".into(), WriterRequest::Status).await
}

/// `coworkctl update apply FILE`: verify, write the inactive slot, make it
/// bootable on trial. The running slot is never touched.
pub async fn apply(
    settings: UpdateSettings,
    audit: AuditLog,
    actor: String,
    bundle: PathBuf,
) -> Result<serde_json::Value, String> {
    run(settings, audit, actor, WriterRequest::Apply { bundle }).await
}

/// `coworkctl update apply URL`: download into `<state_dir>/incoming/` (where
/// the writer can read it), apply, and remove the download either way.
pub async fn apply_url(
    settings: UpdateSettings,
    audit: AuditLog,
    actor: String,
    url: &str,
) -> Result<serde_json::Value, String> {
    use crate::update::download;
    let url = download::check_url(url)?;
    let shown = download::redacted(&url);
    let ca = match &settings.ca_file {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| format!("[update] ca_file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let dir = settings.state_dir.join("incoming");
    let fetched = download::download(&url, &dir, ca.as_deref(), settings.max_bundle_bytes).await;
    let bundle = match fetched {
        Ok(path) => path,
        Err(e) => {
            audit
                .record(
                    "update.download_failed",
                    &actor,
                    "",
                    serde_json::json!({"url": shown, "error": e}),
                )
                .await;
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0);
    audit
        .record(
            "update.downloaded",
            &actor,
            "",
            serde_json::json!({"url": shown, "bytes": bytes}),
        )
        .await;
    let result = apply(settings, audit, actor, bundle.clone()).await;
    let _ = std::fs::remove_file(&bundle);
    result
}

/// At start: a blessed or rolled-back update since the last run is audited.
pub fn check_boot_at_start(settings: UpdateSettings, audit: AuditLog) {
    tokio::spawn(async move {
        if Slots::production(&settings).is_err() {
            return; // not the appliance image
        }
        if let Err(e) = run(
            settings,
            audit,
            "supervisor".into(),
            WriterRequest::CheckBoot,
        )
        .await
        {
            tracing::warn!(error = %e, "checking the last update's boot");
        }
    });
}
