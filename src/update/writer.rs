//! The update writer: on the appliance, the one process that writes the
//! inactive root slot and the ESP.
//!
//! systemd starts it per connection on `/run/cowork-update.sock`
//! (`cowork-update.socket`, `Accept=yes`, `coworkd update serve`): root
//! without capabilities, no network, the two root partitions as its only
//! devices. The supervisor, whose unit may open no block device at all, sends
//! it one [`WriterRequest`] per connection and relays the [`UpdateEvent`]s it
//! streams back to the audit trail. Where no writer socket is configured
//! (development, tests on file-backed slots), the supervisor runs the same
//! [`execute`] itself.
//!
//! Wire: the IPC codec (u32 length + CBOR, 1 MiB cap); client → writer one
//! request; writer → client any number of `Event`s, then one `Done`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Slots, UpdateAudit, UpdateEvent, UpdateSettings, Updater};
use crate::ipc as frame;

/// What the supervisor asks of the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriterRequest {
    /// Slots, versions, entries, last attempt (checks the last boot first).
    Status,
    /// Notices a blessed or rolled-back update since the last look.
    CheckBoot,
    /// Verifies `bundle` and writes it to the inactive slot.
    Apply { bundle: PathBuf },
}

/// What the writer streams back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriterMessage {
    Event(UpdateEvent),
    /// The outcome: the JSON shown by `coworkctl update status|apply`, or why not.
    Done(Result<serde_json::Value, String>),
}

/// Runs one request on the production slots (blocking file and device I/O).
pub fn execute(
    request: &WriterRequest,
    settings: &UpdateSettings,
    audit: &dyn UpdateAudit,
) -> Result<serde_json::Value, String> {
    let slots = Slots::production(settings)
        .map_err(|e| format!("{e} (updates need the appliance image, booted from slot A or B)"))?;
    let current = super::read_image_version(&settings.image_version_file).unwrap_or(0);
    let updater = Updater::new(slots, settings, current, audit);
    match request {
        WriterRequest::Status => {
            if let Err(e) = updater.check_boot() {
                tracing::warn!(error = %e, "checking the last update's boot");
            }
            let status = updater.status().map_err(|e| e.to_string())?;
            serde_json::to_value(&status).map_err(|e| e.to_string())
        }
        WriterRequest::CheckBoot => {
            let event = updater.check_boot().map_err(|e| e.to_string())?;
            serde_json::to_value(&event).map_err(|e| e.to_string())
        }
        WriterRequest::Apply { bundle } => {
            let applied = updater.apply(bundle).map_err(|e| e.to_string())?;
            Ok(serde_json::json!({
                "slot": applied.slot,
                "version": applied.version,
                "entry": applied.entry,
                "key_id": applied.manifest.key_id.to_string(),
            }))
        }
    }
}

/// Sends events from the blocking work to the connection as they happen.
#[derive(Debug)]
struct Forward(tokio::sync::mpsc::UnboundedSender<UpdateEvent>);

impl UpdateAudit for Forward {
    fn record(&self, event: &UpdateEvent) {
        let _ = self.0.send(event.clone());
    }
}

/// Events of a running request, as they happen.
pub type EventSender = tokio::sync::mpsc::UnboundedSender<UpdateEvent>;

/// Runs [`execute`] on a blocking thread, sending each event to `events`.
pub async fn execute_blocking(
    request: WriterRequest,
    settings: UpdateSettings,
    events: EventSender,
) -> Result<serde_json::Value, String> {
    tokio::task::spawn_blocking(move || execute(&request, &settings, &Forward(events)))
        .await
        .map_err(|e| format!("the update task failed: {e}"))?
}

/// The writer's side of one connection: one request from a peer whose uid is
/// `allowed_uid` (root on the appliance), its events, its outcome.
pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer_uid: u32,
    allowed_uid: u32,
    settings: UpdateSettings,
) -> Result<(), String> {
    if peer_uid != allowed_uid {
        let reply =
            WriterMessage::Done(Err(format!("uid {peer_uid} may not use the update writer")));
        send(stream, &reply).await?;
        return Err(format!("refused a connection from uid {peer_uid}"));
    }
    let request: WriterRequest = match frame::read_frame(stream).await {
        Ok(Some(body)) => match frame::decode(&body) {
            Ok(r) => r,
            Err(e) => {
                let reply = WriterMessage::Done(Err(format!("malformed request: {e}")));
                send(stream, &reply).await?;
                return Err(format!("malformed request: {e}"));
            }
        },
        Ok(None) => return Err("the peer closed the connection before asking".into()),
        Err(e) => {
            let reply = WriterMessage::Done(Err(format!("bad frame: {e}")));
            let _ = send(stream, &reply).await;
            return Err(format!("bad frame: {e}"));
        }
    };
    tracing::info!(?request, "update writer: request");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let work = tokio::spawn(execute_blocking(request, settings, tx));
    let mut lost = None;
    while let Some(event) = rx.recv().await {
        // Keep working when the supervisor is gone: an apply abandoned half
        // way would help nobody, and its steps are in the journal either way.
        if lost.is_none()
            && let Err(e) = send(stream, &WriterMessage::Event(event)).await
        {
            lost = Some(e);
        }
    }
    let outcome = work
        .await
        .map_err(|e| format!("the update task failed: {e}"))
        .and_then(|r| r);
    if let Err(e) = &outcome {
        tracing::warn!(error = %e, "update writer: refused or failed");
    }
    match lost {
        Some(e) => Err(format!("the supervisor went away: {e}")),
        None => send(stream, &WriterMessage::Done(outcome)).await,
    }
}

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &WriterMessage,
) -> Result<(), String> {
    let body = frame::encode(message).map_err(|e| e.to_string())?;
    frame::write_frame(stream, &body)
        .await
        .map_err(|e| e.to_string())
}

/// `coworkd update serve`: one connection on stdin (systemd's `Accept=yes`
/// socket), from root only.
pub fn serve_stdin(settings: UpdateSettings) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let cred = nix::sys::socket::getsockopt(
        &stdin.as_fd(),
        nix::sys::socket::sockopt::PeerCredentials,
    )
    .context(
        "stdin is not a Unix socket (coworkd update serve is started by cowork-update.socket)",
    )?;
    let fd = stdin
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating the connection")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let std_stream = std::os::unix::net::UnixStream::from(fd);
        std_stream
            .set_nonblocking(true)
            .context("making the connection non-blocking")?;
        let mut stream =
            tokio::net::UnixStream::from_std(std_stream).context("adopting the connection")?;
        serve_stream(&mut stream, cred.uid(), 0, settings)
            .await
            .map_err(anyhow::Error::msg)
    })
}

/// The supervisor's side: one request to the writer at `socket`, each event
/// to `events`, then the outcome.
pub async fn call(
    socket: &Path,
    request: &WriterRequest,
    events: &EventSender,
) -> Result<serde_json::Value, String> {
    let unit_hint = "see journalctl -u 'cowork-update@*'";
    let mut stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
        format!(
            "the update writer at {} is unreachable: {e}",
            socket.display()
        )
    })?;
    let body = frame::encode(request).map_err(|e| e.to_string())?;
    frame::write_frame(&mut stream, &body)
        .await
        .map_err(|e| format!("asking the update writer: {e}"))?;
    loop {
        let body = match frame::read_frame(&mut stream).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                return Err(format!(
                    "the update writer closed the connection without an outcome ({unit_hint})"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "reading the update writer's answer: {e} ({unit_hint})"
                ));
            }
        };
        match frame::decode::<WriterMessage>(&body) {
            Ok(WriterMessage::Event(event)) => {
                let _ = events.send(event);
            }
            Ok(WriterMessage::Done(outcome)) => return outcome,
            Err(e) => return Err(format!("the update writer's answer is malformed: {e}")),
        }
    }
}
