//! `coworkctl update status|apply` in the supervisor: the only process that
//! may write the inactive root slot and the ESP. The work is blocking file I/O
//! on a helper thread; every step goes to the audit trail as it happens.

use std::path::PathBuf;

use crate::audit::AuditLog;
use crate::update::{Slots, UpdateAudit, UpdateEvent, UpdateSettings, Updater};

/// Forwards update events to the trail from the blocking apply.
#[derive(Debug)]
struct TrailEvents(tokio::sync::mpsc::UnboundedSender<UpdateEvent>);

impl UpdateAudit for TrailEvents {
    fn record(&self, event: &UpdateEvent) {
        let _ = self.0.send(event.clone());
    }
}

fn event_kind(event: &UpdateEvent) -> &'static str {
    match event {
        UpdateEvent::VerifyStarted { .. } => "update.verify_started",
        UpdateEvent::Refused { .. } => "update.refused",
        UpdateEvent::Applying { .. } => "update.applying",
        UpdateEvent::Applied { .. } => "update.applied",
        UpdateEvent::BootMarked { .. } => "update.boot_marked",
        UpdateEvent::RolledBack { .. } => "update.rolled_back",
    }
}

/// The running image's version; 0 when the file is missing (development).
fn current_version(settings: &UpdateSettings) -> u64 {
    crate::update::read_image_version(&settings.image_version_file).unwrap_or(0)
}

/// Runs `work` on a blocking thread with an updater, recording its events.
async fn with_updater<T: Send + 'static>(
    settings: UpdateSettings,
    audit: AuditLog,
    actor: String,
    work: impl FnOnce(&Updater<'_>) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let payload = serde_json::to_value(&event).unwrap_or_default();
            audit.record(event_kind(&event), &actor, "", payload).await;
        }
    });
    let result = tokio::task::spawn_blocking(move || {
        let slots = Slots::production(&settings).map_err(|e| {
            format!("{e} (updates need the appliance image, booted from slot A or B)")
        })?;
        let sink = TrailEvents(tx);
        let updater = Updater::new(slots, &settings, current_version(&settings), &sink);
        work(&updater)
    })
    .await
    .map_err(|e| format!("the update task failed: {e}"))?;
    let _ = forward.await;
    result
}

/// `coworkctl update status`: slots, versions, entries, last attempt, and (after
/// a fallback) why. Also notices a blessed or rolled-back boot since last time.
pub async fn status(
    settings: UpdateSettings,
    audit: AuditLog,
) -> Result<serde_json::Value, String> {
    with_updater(settings, audit, "supervisor".into(), |u| {
        if let Err(e) = u.check_boot() {
            tracing::warn!(error = %e, "checking the last update's boot");
        }
        let status = u.status().map_err(|e| e.to_string())?;
        serde_json::to_value(&status).map_err(|e| e.to_string())
    })
    .await
}

/// `coworkctl update apply FILE`: verify, write the inactive slot, make it
/// bootable on trial. The running slot is never touched.
pub async fn apply(
    settings: UpdateSettings,
    audit: AuditLog,
    actor: String,
    bundle: PathBuf,
) -> Result<serde_json::Value, String> {
    with_updater(settings, audit, actor, move |u| {
        let applied = u.apply(&bundle).map_err(|e| e.to_string())?;
        Ok(serde_json::json!({
            "slot": applied.slot,
            "version": applied.version,
            "entry": applied.entry,
            "key_id": applied.manifest.key_id.to_string(),
        }))
    })
    .await
}

/// At start: a blessed or rolled-back update since the last run is audited.
pub fn check_boot_at_start(settings: UpdateSettings, audit: AuditLog) {
    tokio::spawn(async move {
        if Slots::production(&settings).is_err() {
            return; // not the appliance image
        }
        if let Err(e) = with_updater(settings, audit, "supervisor".into(), |u| {
            u.check_boot().map(|_| ()).map_err(|e| e.to_string())
        })
        .await
        {
            tracing::warn!(error = %e, "checking the last update's boot");
        }
    });
}
