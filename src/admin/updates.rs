//! The Updates page: `update status`, and an upload of a signed bundle with a
//! progress bar (`/assets/admin.js` sends it with XMLHttpRequest). The bundle
//! is streamed to the upload directory (at most `[update] max_bundle_bytes`),
//! handed to the supervisor, which verifies it and has the update writer write
//! the inactive slot, and removed afterwards whatever the outcome.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::http::{PeerAddr, cookie};
use super::server::AppState;
use super::session::{COOKIE_NAME, ct_eq};
use super::views::{self, Nav};

/// The header carrying the page's CSRF token with the upload.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub(crate) async fn page(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let sess = match super::handlers::session_or_redirect(&st, &headers) {
        Ok(s) => s,
        Err(to) => return super::http::redirect(to),
    };
    let status = st.backend.update_status().await;
    let ctx = super::handlers::ctx(&sess);
    let body = views::updates(&ctx, status.as_ref().map_err(|e| e.message.as_str()));
    axum::response::Html(views::page(&ctx, Nav::Updates, "Updates", body).into_string())
        .into_response()
}

/// "Check now": the feed fetched and verified; the outcome as the flash.
pub(crate) async fn check(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: super::handlers::Body,
) -> super::handlers::PageResult {
    let (sess, _) = super::handlers::authorize_post(&st, &headers, body)?;
    let v = st.backend.update_check().await?;
    let msg = match (v["error"].as_str(), v["installable"].as_bool()) {
        (Some(e), _) => format!("The update check failed: {e}"),
        (None, Some(true)) => format!(
            "Version {} is available; install it below.",
            v["newest_version"]
        ),
        (None, _) => format!("Up to date: version {} runs.", v["running_version"]),
    };
    Ok(super::handlers::flash_redirect(&st, &sess, msg, "/updates"))
}

/// "Install version N": the bundle the last check offered, never a URL from
/// the form, downloaded and checked against the feed by the supervisor.
pub(crate) async fn install(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: super::handlers::Body,
) -> super::handlers::PageResult {
    let (sess, _) = super::handlers::authorize_post(&st, &headers, body)?;
    let status = st.backend.update_status().await?;
    let last = &status["last_check"];
    let msg = match last["bundle_url"].as_str() {
        Some(url) if last["installable"].as_bool() == Some(true) => {
            match st.backend.update_apply_url(url.to_string()).await {
                Ok(v) => format!(
                    "Version {} was written to slot {}; it boots on trial at the next restart.",
                    v["version"],
                    v["slot"].as_str().unwrap_or("?").to_uppercase()
                ),
                Err(e) => format!("Not installed: {}", e.message),
            }
        }
        _ => "No update is waiting: check for updates first.".to_string(),
    };
    Ok(super::handlers::flash_redirect(&st, &sess, msg, "/updates"))
}

fn reply(code: StatusCode, ok: bool, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        code,
        Json(serde_json::json!({"ok": ok, "message": message})),
    )
        .into_response()
}

pub(crate) async fn upload(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(sess) =
        cookie(&headers, COOKIE_NAME).and_then(|id| st.sessions.get(&id, st.clock.now()))
    else {
        return reply(
            StatusCode::FORBIDDEN,
            false,
            "Your session has ended. Log in again; nothing was uploaded.",
        );
    };
    match headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(t) if ct_eq(t, &sess.csrf) => {}
        _ => {
            return reply(
                StatusCode::FORBIDDEN,
                false,
                "The page was stale (CSRF check failed). Reload it; nothing was uploaded.",
            );
        }
    }
    let target = st.backend.update_upload();
    let too_large = || {
        reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            false,
            format!(
                "The bundle is larger than the {} bytes allowed ([update] max_bundle_bytes); nothing was applied.",
                target.max_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > target.max_bytes) {
        return too_large();
    }
    let path = target
        .dir
        .join(format!("upload-{:016x}.bundle", rand::random::<u64>()));
    let received = receive(body, &target.dir, &path, target.max_bytes).await;
    let bytes = match received {
        Ok(bytes) => bytes,
        Err(Received::TooLarge) => return too_large(),
        Err(Received::Failed(why)) => {
            tracing::warn!(error = %why, "admin page: update upload failed");
            return reply(
                StatusCode::BAD_REQUEST,
                false,
                format!("The upload did not arrive whole ({why}); nothing was applied."),
            );
        }
    };
    let actor = super::handlers::actor(peer);
    super::handlers::audit(
        &st,
        "admin.update_uploaded",
        actor,
        "",
        serde_json::json!({"bytes": bytes}),
    )
    .await;
    let applied = st.backend.update_apply(path.clone()).await;
    let _ = tokio::fs::remove_file(&path).await;
    match applied {
        Ok(v) => reply(
            StatusCode::OK,
            true,
            format!(
                "Version {} was written to slot {}. It boots on trial at the next restart; if it does not come up, the appliance falls back to the running slot.",
                v["version"],
                v["slot"].as_str().unwrap_or("?").to_uppercase()
            ),
        ),
        Err(e) => reply(
            StatusCode::BAD_REQUEST,
            false,
            format!("The update was refused: {}", e.message),
        ),
    }
}

enum Received {
    TooLarge,
    Failed(String),
}

/// Streams the body into a new file at `path` (0640: the update writer reads
/// it through the directory's group), at most `max` bytes. Leaves nothing
/// behind on failure.
async fn receive(
    body: Body,
    dir: &std::path::Path,
    path: &std::path::Path,
    max: u64,
) -> Result<u64, Received> {
    let result = async {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Received::Failed(format!("creating {}: {e}", dir.display())))?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(path)
            .await
            .map_err(|e| Received::Failed(format!("creating {}: {e}", path.display())))?;
        let mut stream = body.into_data_stream();
        let mut written: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Received::Failed(format!("reading the upload: {e}")))?;
            written += chunk.len() as u64;
            if written > max {
                return Err(Received::TooLarge);
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| Received::Failed(format!("writing {}: {e}", path.display())))?;
        }
        file.sync_all()
            .await
            .map_err(|e| Received::Failed(format!("writing {}: {e}", path.display())))?;
        // UMask=0077 cut the mode at creation; the writer (root, via group) must read it.
        tokio::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .await
            .map_err(|e| {
                Received::Failed(format!("setting the mode of {}: {e}", path.display()))
            })?;
        if written == 0 {
            return Err(Received::Failed("the upload was empty".into()));
        }
        Ok(written)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    result
}
