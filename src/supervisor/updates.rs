//! `coworkctl update status|apply` in the supervisor. On the appliance the
//! update writer (`cowork-update.socket`, see `update::writer`) does the work:
//! this unit may open no block device. Without a writer socket configured, the
//! same work runs here on a blocking thread. Either way every step goes to the
//! audit trail as it happens.

use std::path::PathBuf;

use crate::audit::AuditLog;
use crate::update::feed::{Feed, FeedCheck, FeedState};
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
    let state_dir = settings.state_dir.clone();
    let feed_url = settings.feed_url.clone();
    let mut v = run(settings, audit, "supervisor".into(), WriterRequest::Status).await?;
    // The feed's side, kept here (the writer never fetches anything).
    if let Some(o) = v.as_object_mut() {
        o.insert("feed_url".into(), serde_json::json!(feed_url));
        let last = FeedState::load(&state_dir)
            .ok()
            .and_then(|s| s.last_check)
            .map(|c| serde_json::to_value(c).unwrap_or_default());
        o.insert("last_check".into(), last.unwrap_or_default());
    }
    Ok(v)
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
    // The bundle the last feed check offered must be exactly what the feed
    // says: no byte past its size is read, and its hash must match.
    let expected = FeedState::load(&settings.state_dir)
        .ok()
        .and_then(|s| s.last_check)
        .filter(|c| c.error.is_none() && c.bundle_url.as_deref() == Some(url.as_str()))
        .and_then(|c| Some((c.bundle_size?, c.bundle_sha256?)));
    let max_bytes = expected
        .as_ref()
        .map_or(settings.max_bundle_bytes, |(size, _)| *size);
    let dir = settings.state_dir.join("incoming");
    let cap = if expected.is_some() {
        "the update feed's size of it"
    } else {
        "[update] max_bundle_bytes"
    };
    let fetched = download::download(&url, &dir, ca.as_deref(), max_bytes, cap)
        .await
        .and_then(|path| match &expected {
            None => Ok(path),
            Some((size, sha256)) => match crate::update::feed::hash(&path) {
                Ok((s, h)) if s == *size && h == *sha256 => Ok(path),
                Ok((s, h)) => {
                    let _ = std::fs::remove_file(&path);
                    Err(format!(
                        "{shown} does not match the update feed ({s} bytes, sha256 {h}; the feed says {size} bytes, sha256 {sha256}): refused, nothing written"
                    ))
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(e)
                }
            },
        });
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

/// `coworkctl update check`: fetch the feed, verify it, remember the newest
/// feed version seen and the outcome (`<state_dir>/feed-state.json`, read by
/// `doctor` and the Updates page), audit it. A failed check is an outcome
/// too: its `error` says why, in one sentence.
pub async fn check(settings: UpdateSettings, audit: AuditLog, actor: String) -> FeedCheck {
    let now = crate::update::state::now_unix();
    let mut state = FeedState::load(&settings.state_dir);
    let outcome = match &mut state {
        Ok(state) => check_feed(&settings, state.seen_feed_version, now).await,
        Err(e) => Err(e.clone()),
    };
    let running_version = running_version(&settings).unwrap_or(0);
    let result = match outcome {
        Ok((feed, check)) => {
            if let Ok(state) = &mut state {
                state.seen_feed_version = state.seen_feed_version.max(feed.feed_version);
            }
            check
        }
        Err(error) => FeedCheck {
            checked_at: now,
            running_version,
            newest_version: None,
            newest_label: None,
            installable: false,
            bundle_url: None,
            bundle_size: None,
            bundle_sha256: None,
            feed_version: None,
            expires_at: None,
            error: Some(error),
        },
    };
    if let Ok(state) = &mut state {
        state.last_check = Some(result.clone());
        if let Err(e) = state.save(&settings.state_dir) {
            tracing::warn!(error = %e, "saving the update check");
        }
    }
    let (kind, payload) = match &result.error {
        None => (
            "update.checked",
            serde_json::json!({
                "running_version": result.running_version,
                "newest_version": result.newest_version,
                "installable": result.installable,
                "feed_version": result.feed_version,
            }),
        ),
        Some(e) => ("update.check_failed", serde_json::json!({"error": e})),
    };
    audit.record(kind, &actor, "", payload).await;
    result
}

/// The running image's version (`image_version_file`).
fn running_version(settings: &UpdateSettings) -> Result<u64, String> {
    let path = &settings.image_version_file;
    std::fs::read_to_string(path)
        .map_err(|e| format!("the running version is unknown ({}: {e})", path.display()))?
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{} holds no version number", path.display()))
}

async fn check_feed(
    settings: &UpdateSettings,
    seen: u64,
    now: u64,
) -> Result<(Feed, FeedCheck), String> {
    use crate::update::download;
    use crate::update::feed::{MAX_FEED_BYTES, verify_feed};
    use crate::update::{DeviceIdentity, TrustStore};
    let url = settings
        .feed_url
        .as_deref()
        .ok_or("no update feed is configured ([update] feed_url)")?;
    let url = download::check_url(url)?;
    let running = running_version(settings)?;
    let floor = crate::update::read_floor(&settings.state_dir).map_err(|e| e.to_string())?;
    let ca = match &settings.ca_file {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| format!("[update] ca_file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let bytes = download::fetch_small(&url, ca.as_deref(), MAX_FEED_BYTES, FEED_DEADLINE).await?;
    let trust =
        TrustStore::load(&settings.keys_dir, &settings.state_dir).map_err(|e| e.to_string())?;
    let device = DeviceIdentity {
        product: settings.product.clone(),
        hardware: settings.hardware.clone(),
    };
    let feed = verify_feed(&bytes, &trust, &device, now, seen).map_err(|e| e.to_string())?;
    let newest = feed.newest_for(&device);
    let bundle_url = match newest {
        Some(b) => Some(
            url.join(&b.file)
                .map_err(|e| format!("the bundle's URL: {e}"))?
                .to_string(),
        ),
        None => None,
    };
    let check = FeedCheck {
        checked_at: now,
        running_version: running,
        newest_version: newest.map(|b| b.version),
        newest_label: newest.map(|b| b.version_label.clone()),
        installable: newest.is_some_and(|b| b.version > running.max(floor)),
        bundle_url,
        bundle_size: newest.map(|b| b.size),
        bundle_sha256: newest.map(|b| b.sha256.clone()),
        feed_version: Some(feed.feed_version),
        expires_at: Some(feed.expires_at),
        error: None,
    };
    Ok((feed, check))
}

/// The whole feed must arrive within this.
const FEED_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

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
