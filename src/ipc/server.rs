//! The serving side of a socket: handshake, peer check, per-request authorization,
//! concurrent handling. One bad client never disturbs another.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, watch};

use super::error::FrameError;
use super::frame::{decode, encode, read_frame, write_frame};
use super::messages::{
    ErrorCode, Frame, Hello, HelloReply, PROTOCOL_VERSION, RequestKind, WireError,
};
use super::peer::{PeerAuth, PeerCred, may_send};
use super::roles::Role;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests one connection may have in flight at once.
const MAX_IN_FLIGHT: usize = 64;

/// The identified peer of a request.
#[derive(Debug, Clone)]
pub struct Peer {
    pub role: Role,
    pub cred: PeerCred,
}

/// What a server does with requests that passed the checks.
pub trait Service: Send + Sync + 'static {
    type Request: DeserializeOwned + RequestKind + Send + 'static;
    type Response: Serialize + From<WireError> + Send + 'static;

    /// The role this server plays in the peer table.
    fn role(&self) -> Role;

    fn handle(
        &self,
        peer: Peer,
        request: Self::Request,
    ) -> impl Future<Output = Self::Response> + Send;
}

/// Binds a socket at `path`, replacing a stale one, with the given mode.
pub fn bind_socket(path: &Path, mode: u32) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Serves connections until `stop` turns true.
pub async fn serve<S: Service>(
    listener: UnixListener,
    auth: Arc<PeerAuth>,
    service: Arc<S>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let auth = Arc::clone(&auth);
                    let service = Arc::clone(&service);
                    tokio::spawn(async move { connection(stream, auth, service).await });
                }
                Err(e) => {
                    tracing::warn!(server = %service.role(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

async fn connection<S: Service>(stream: UnixStream, auth: Arc<PeerAuth>, service: Arc<S>) {
    let server = service.role();
    let cred = match PeerCred::of(&stream) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%server, error = %e, "cannot read peer credentials; closing");
            return;
        }
    };
    let (mut reader, mut writer) = stream.into_split();

    // Handshake: protocol version and the peer's role, checked against its uid.
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut reader)).await {
        Ok(Ok(Some(bytes))) => decode::<Hello>(&bytes),
        Ok(Ok(None)) => return,
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::warn!(%server, uid = cred.uid, "peer sent no hello in time; closing");
            return;
        }
    };
    let role = match hello {
        Ok(h) if h.protocol != PROTOCOL_VERSION => Err(format!(
            "protocol {} spoken, {} expected",
            h.protocol, PROTOCOL_VERSION
        )),
        Ok(h) => auth.identify(&cred, h.role),
        Err(e) => Err(format!("bad hello: {e}")),
    };
    let reply = match &role {
        Ok(_) => HelloReply::Accepted { server },
        Err(reason) => {
            tracing::warn!(%server, uid = cred.uid, pid = cred.pid, %reason, "connection refused");
            HelloReply::Refused {
                reason: reason.clone(),
            }
        }
    };
    if let Ok(bytes) = encode(&reply) {
        let _ = write_frame(&mut writer, &bytes).await;
    }
    let Ok(role) = role else { return };
    let peer = Peer { role, cred };

    // Responses funnel through one writer task so handlers can run concurrently.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_IN_FLIGHT);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if write_frame(&mut writer, &bytes).await.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));

    loop {
        let bytes = match read_frame(&mut reader).await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(FrameError::TooLarge { len, max }) => {
                tracing::warn!(%server, peer = %peer.role, len, max, "oversized frame; closing connection");
                send_error::<S>(
                    &tx,
                    0,
                    ErrorCode::TooLarge,
                    format!("frame of {len} bytes exceeds the {max}-byte cap"),
                )
                .await;
                break;
            }
            Err(e) => {
                tracing::debug!(%server, peer = %peer.role, error = %e, "connection ended");
                break;
            }
        };
        let frame = match decode::<Frame<S::Request>>(&bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(%server, peer = %peer.role, error = %e, "malformed request refused");
                send_error::<S>(&tx, 0, ErrorCode::Malformed, e.to_string()).await;
                continue;
            }
        };
        let kind = frame.body.kind();
        if !may_send(server, kind, peer.role) {
            tracing::warn!(%server, peer = %peer.role, request = kind, "request refused by the peer table");
            send_error::<S>(
                &tx,
                frame.id,
                ErrorCode::Forbidden,
                format!("{} may not send {kind} to {server}", peer.role),
            )
            .await;
            continue;
        }
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let service = Arc::clone(&service);
        let tx = tx.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            let response = service.handle(peer, frame.body).await;
            send::<S>(&tx, frame.id, response).await;
            drop(permit);
        });
    }
    drop(tx);
    let _ = write_task.await;
}

async fn send<S: Service>(tx: &mpsc::Sender<Vec<u8>>, id: u64, body: S::Response) {
    let bytes = match encode(&Frame { id, body }) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "response could not be encoded");
            let fallback: S::Response = WireError::new(
                ErrorCode::Internal,
                format!("response could not be encoded: {e}"),
            )
            .into();
            match encode(&Frame { id, body: fallback }) {
                Ok(bytes) => bytes,
                Err(_) => return,
            }
        }
    };
    let _ = tx.send(bytes).await;
}

async fn send_error<S: Service>(
    tx: &mpsc::Sender<Vec<u8>>,
    id: u64,
    code: ErrorCode,
    message: String,
) {
    send::<S>(tx, id, WireError::new(code, message).into()).await;
}
