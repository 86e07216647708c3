//! The calling side of a socket: connects lazily, says hello, multiplexes requests
//! by id, and reconnects after the peer restarts.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::error::IpcError;
use super::frame::{decode, encode, read_frame, write_frame};
use super::messages::{Frame, Hello, HelloReply, PROTOCOL_VERSION};
use super::roles::Role;

type Pending<Resp> = Arc<Mutex<HashMap<u64, oneshot::Sender<Resp>>>>;

struct Connection<Resp> {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending<Resp>,
    alive: Arc<AtomicBool>,
}

/// A client of one socket, for one channel's request/response types.
pub struct Client<Req, Resp> {
    path: PathBuf,
    role: Role,
    timeout: Duration,
    /// The most a call waits to connect (the rest of its timeout is for the
    /// answer): a long operation waits long only once connected.
    connect_timeout: Duration,
    next_id: AtomicU64,
    /// Connections made so far (a new one means the peer may have restarted).
    connections: AtomicU64,
    conn: tokio::sync::Mutex<Option<Connection<Resp>>>,
    _req: PhantomData<fn(Req)>,
}

impl<Req, Resp> std::fmt::Debug for Client<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.path)
            .field("role", &self.role)
            .finish()
    }
}

impl<Req, Resp> Client<Req, Resp>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
{
    /// A client that speaks as `role` and gives each call `timeout` in total,
    /// including reconnecting to a peer that is restarting.
    pub fn new(path: impl Into<PathBuf>, role: Role, timeout: Duration) -> Self {
        Client {
            path: path.into(),
            role,
            timeout,
            connect_timeout: timeout,
            next_id: AtomicU64::new(1),
            connections: AtomicU64::new(0),
            conn: tokio::sync::Mutex::new(None),
            _req: PhantomData,
        }
    }

    /// The same client, giving up connecting after `limit` whatever a call's
    /// timeout is (`coworkctl`: a daemon that is down is reported in seconds,
    /// not after an update's hour).
    pub fn with_connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many connections this client has made: a change means the peer
    /// may have restarted and forgotten per-connection state it was sent.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
    }

    /// Sends one request and waits for its response.
    pub async fn call(&self, request: Req) -> Result<Resp, IpcError> {
        self.call_with_timeout(request, self.timeout).await
    }

    pub async fn call_with_timeout(
        &self,
        request: Req,
        timeout: Duration,
    ) -> Result<Resp, IpcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.call_inner(request, deadline)).await {
            Ok(r) => r,
            Err(_) => Err(IpcError::Timeout {
                path: self.path.clone(),
                after: timeout,
            }),
        }
    }

    async fn call_inner(
        &self,
        request: Req,
        deadline: tokio::time::Instant,
    ) -> Result<Resp, IpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = encode(&Frame { id, body: request }).map_err(|source| IpcError::Frame {
            path: self.path.clone(),
            source,
        })?;
        let (tx, rx) = oneshot::channel();
        {
            let mut guard = self.conn.lock().await;
            let dead = guard
                .as_ref()
                .is_none_or(|c| !c.alive.load(Ordering::Acquire));
            if dead {
                let connect_by = deadline.min(tokio::time::Instant::now() + self.connect_timeout);
                *guard = Some(self.connect_until(connect_by).await?);
            }
            let Some(conn) = guard.as_ref() else {
                return Err(IpcError::Closed {
                    path: self.path.clone(),
                });
            };
            lock(&conn.pending).insert(id, tx);
            if conn.tx.send(bytes).await.is_err() {
                conn.alive.store(false, Ordering::Release);
                lock(&conn.pending).remove(&id);
                return Err(IpcError::Closed {
                    path: self.path.clone(),
                });
            }
        }
        rx.await.map_err(|_| IpcError::Closed {
            path: self.path.clone(),
        })
    }

    /// Connects, retrying while the socket is missing or refusing (its owner may be
    /// restarting), until the deadline.
    async fn connect_until(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<Connection<Resp>, IpcError> {
        let mut delay = Duration::from_millis(10);
        loop {
            match self.connect_once().await {
                Ok(c) => {
                    self.connections.fetch_add(1, Ordering::AcqRel);
                    return Ok(c);
                }
                Err(e @ IpcError::Refused { .. }) => return Err(e),
                Err(e) => {
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    async fn connect_once(&self) -> Result<Connection<Resp>, IpcError> {
        let frame_err = |source| IpcError::Frame {
            path: self.path.clone(),
            source,
        };
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|source| IpcError::Connect {
                path: self.path.clone(),
                source,
            })?;
        let (mut reader, mut writer) = stream.into_split();
        let hello = encode(&Hello {
            protocol: PROTOCOL_VERSION,
            role: self.role,
        })
        .map_err(frame_err)?;
        write_frame(&mut writer, &hello).await.map_err(frame_err)?;
        let reply = read_frame(&mut reader)
            .await
            .map_err(frame_err)?
            .ok_or_else(|| IpcError::Closed {
                path: self.path.clone(),
            })?;
        match decode::<HelloReply>(&reply).map_err(frame_err)? {
            HelloReply::Accepted { .. } => {}
            HelloReply::Refused { reason } => {
                return Err(IpcError::Refused {
                    path: self.path.clone(),
                    reason,
                });
            }
        }

        let pending: Pending<Resp> = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);

        let writer_alive = Arc::clone(&alive);
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if write_frame(&mut writer, &bytes).await.is_err() {
                    break;
                }
            }
            writer_alive.store(false, Ordering::Release);
        });

        let reader_pending = Arc::clone(&pending);
        let reader_alive = Arc::clone(&alive);
        let path = self.path.clone();
        tokio::spawn(async move {
            loop {
                let bytes = match read_frame(&mut reader).await {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(path = %path.display(), error = %e, "ipc connection lost");
                        break;
                    }
                };
                match decode::<Frame<Resp>>(&bytes) {
                    Ok(frame) => {
                        if let Some(waiter) = lock(&reader_pending).remove(&frame.id) {
                            let _ = waiter.send(frame.body);
                        } else {
                            tracing::warn!(path = %path.display(), id = frame.id, "answer to no pending request");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "malformed answer; dropping connection");
                        break;
                    }
                }
            }
            reader_alive.store(false, Ordering::Release);
            // Waking every waiter with a closed channel lets callers fail fast.
            lock(&reader_pending).clear();
        });

        Ok(Connection { tx, pending, alive })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
