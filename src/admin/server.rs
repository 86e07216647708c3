//! Binding and serving: one accept loop per listen address; each accepted
//! TCP connection gets a TLS handshake (10 s limit) and an HTTP/1.1
//! connection whose requests carry the socket's peer address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::backend::AdminBackend;
use super::cert::{self, AdminKeys, CertInfo};
use super::clock::{Clock, SystemClock};
use super::error::AdminError;
use super::http::PeerAddr;
use super::lan;
use super::ratelimit::LoginLimiter;
use super::session::SessionStore;
use super::settings::AdminWebSettings;
use super::{handlers, owner, tls};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A lingering close reads at most this much of a body nobody will use...
const LINGER_BYTES: usize = 1024 * 1024;
/// ...for at most this long.
const LINGER_TIME: Duration = Duration::from_secs(2);
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_CONNECTIONS: usize = 256;

/// Shared state of the running admin page.
pub struct AppState {
    pub(crate) state_dir: PathBuf,
    /// Replaced after a master key rotation (the TLS key is re-wrapped).
    keys: RwLock<AdminKeys>,
    pub(crate) backend: Arc<dyn AdminBackend>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sessions: SessionStore,
    pub(crate) limiter: Mutex<LoginLimiter>,
    pub(crate) cert_names: Vec<String>,
    /// Which peers are LAN (CGNAT only when `allow_cgnat`).
    pub(crate) lan: lan::LanFilter,
    pub(crate) setup_lock: tokio::sync::Mutex<()>,
    tls: RwLock<(Arc<ServerConfig>, CertInfo)>,
    refused: Mutex<HashMap<IpAddr, u64>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

fn relock<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppState {
    pub(crate) fn lock_refused(&self) -> MutexGuard<'_, HashMap<IpAddr, u64>> {
        relock(self.refused.lock())
    }
    pub(crate) fn lock_limiter(&self) -> MutexGuard<'_, LoginLimiter> {
        relock(self.limiter.lock())
    }
    pub(crate) fn cert(&self) -> CertInfo {
        relock(self.tls.read()).1.clone()
    }
    fn tls_config(&self) -> Arc<ServerConfig> {
        relock(self.tls.read()).0.clone()
    }
    /// Replace the certificate (new key) and start using it for new connections.
    pub(crate) fn rotate_certificate(&self) -> Result<CertInfo, AdminError> {
        let keys = relock(self.keys.read()).clone();
        cert::rotate_certificate(&self.state_dir, &keys, &self.cert_names)?;
        let loaded =
            cert::load_or_create(&self.state_dir, &keys, &self.cert_names, self.clock.now())?;
        let config = tls::server_config(&loaded)?;
        let info = loaded.info.clone();
        *relock(self.tls.write()) = (config, loaded.info);
        Ok(info)
    }
}

/// Operations on a running admin page from outside HTTP.
#[derive(Debug, Clone)]
pub struct AdminHandle {
    state: Arc<AppState>,
}

impl AdminHandle {
    pub fn certificate(&self) -> CertInfo {
        self.state.cert()
    }

    /// A new key and certificate for new connections; every session is logged out.
    pub fn rotate_certificate(&self) -> Result<CertInfo, AdminError> {
        let info = self.state.rotate_certificate()?;
        self.state.sessions.clear();
        Ok(info)
    }

    /// After a master key rotation: the stored TLS key is re-encrypted under the
    /// new wrapping key; the certificate (and its fingerprint) stay.
    pub fn rewrap(&self, new: AdminKeys) -> Result<(), AdminError> {
        let mut keys = relock(self.state.keys.write());
        cert::rewrap_certificate(&self.state.state_dir, &keys, &new)?;
        *keys = new;
        Ok(())
    }
}

/// A bound, not yet serving admin page. Tests use it to learn the bound
/// addresses (listen on `127.0.0.1` port 0) and inject a clock.
#[derive(Debug)]
pub struct AdminServer {
    listeners: Vec<TcpListener>,
    state: Arc<AppState>,
}

impl AdminServer {
    /// Bind with the system clock.
    pub async fn bind(
        settings: &AdminWebSettings,
        state_dir: &Path,
        keys: AdminKeys,
        backend: Arc<dyn AdminBackend>,
    ) -> Result<AdminServer, AdminError> {
        Self::bind_with_clock(settings, state_dir, keys, backend, Arc::new(SystemClock)).await
    }

    /// Bind every listen address (configured, else the host's LAN addresses),
    /// load or create the certificate, and prepare the pages.
    pub async fn bind_with_clock(
        settings: &AdminWebSettings,
        state_dir: &Path,
        keys: AdminKeys,
        backend: Arc<dyn AdminBackend>,
        clock: Arc<dyn Clock>,
    ) -> Result<AdminServer, AdminError> {
        let filter = lan::LanFilter {
            allow_cgnat: settings.allow_cgnat,
        };
        let addrs = lan::listen_addresses(&settings.listen, filter)?;
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let cert_names = cert::certificate_names(&hostname, &addrs);
        let loaded = cert::load_or_create(state_dir, &keys, &cert_names, clock.now())?;
        // Make sure a setup token exists while no owner does (the caller logs it).
        owner::setup_token(state_dir)?;
        let config = tls::server_config(&loaded)?;
        let mut listeners = Vec::new();
        for ip in addrs {
            let addr = SocketAddr::new(ip, settings.port);
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| AdminError::Bind { addr, source })?;
            tracing::info!(addr = %l.local_addr().unwrap_or(addr), fingerprint = %loaded.info.fingerprint, "admin page listening");
            listeners.push(l);
        }
        let state = Arc::new(AppState {
            state_dir: state_dir.to_path_buf(),
            keys: RwLock::new(keys),
            backend,
            sessions: SessionStore::new(settings.session_idle_secs, settings.session_max_secs),
            limiter: Mutex::new(LoginLimiter::new(
                settings.login_lockout_after,
                settings.login_lockout_secs,
                settings.login_checks_per_minute,
                clock.now(),
            )),
            clock,
            cert_names,
            lan: filter,
            setup_lock: tokio::sync::Mutex::new(()),
            tls: RwLock::new((config, loaded.info)),
            refused: Mutex::new(HashMap::new()),
        });
        Ok(AdminServer { listeners, state })
    }

    /// The addresses actually bound (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The certificate currently served.
    pub fn certificate(&self) -> CertInfo {
        self.state.cert()
    }

    /// A handle for operating the page while it runs (`coworkctl admin ...`).
    pub fn handle(&self) -> AdminHandle {
        AdminHandle {
            state: self.state.clone(),
        }
    }

    /// Serve until `shutdown` becomes true (or its sender is dropped); open
    /// connections are asked to finish their current request.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), AdminError> {
        let router = handlers::router(self.state.clone());
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut loops = tokio::task::JoinSet::new();
        for listener in self.listeners {
            loops.spawn(accept_loop(
                listener,
                self.state.clone(),
                router.clone(),
                limit.clone(),
                shutdown.clone(),
            ));
        }
        while loops.join_next().await.is_some() {}
        Ok(())
    }
}

async fn wait_shutdown(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    router: axum::Router,
    limit: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let stop = wait_shutdown(shutdown.clone());
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin page: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "admin page: too many connections; dropping one");
            continue;
        };
        let acceptor = TlsAcceptor::from(state.tls_config());
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "admin page: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "admin page: TLS handshake timed out");
                    return;
                }
            };
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    let answer = router.clone().oneshot(req);
                    Box::pin(async move {
                        let mut res = answer.await?;
                        // Refused unread: this connection ends after the
                        // answer, so the client must not send on it again.
                        if res.status() == hyper::StatusCode::PAYLOAD_TOO_LARGE {
                            res.headers_mut().insert(
                                hyper::header::CONNECTION,
                                hyper::header::HeaderValue::from_static("close"),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(res)
                    })
                },
            );
            let mut conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(tls), svc);
            let stop = wait_shutdown(shutdown);
            tokio::pin!(stop);
            let served = tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => Some(r),
                _ = &mut stop => None,
            };
            let served = match served {
                Some(r) => r,
                None => {
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                    let finish = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx));
                    match tokio::time::timeout(Duration::from_secs(5), finish).await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
            };
            match served {
                Ok(()) => linger(conn.into_parts().io.into_inner()).await,
                Err(e) => tracing::debug!(%peer, error = %e, "admin connection ended"),
            }
        });
    }
}

/// Bind and serve the admin page until `shutdown` turns true.
pub async fn serve(
    settings: &AdminWebSettings,
    state_dir: &Path,
    keys: AdminKeys,
    backend: Arc<dyn AdminBackend>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AdminError> {
    AdminServer::bind(settings, state_dir, keys, backend)
        .await?
        .run(shutdown)
        .await
}

/// Closes a connection the way a browser can read the last answer: a request
/// refused before its body was read (413 for an oversized form) leaves the
/// client still sending; closing at once would reset the connection and the
/// client would see a broken pipe instead of the answer. So: send TLS
/// close_notify and FIN, then read and drop what the client still sends, up
/// to [`LINGER_BYTES`] or [`LINGER_TIME`], and only then close.
async fn linger(mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if tls.shutdown().await.is_err() {
        return;
    }
    let (mut tcp, _) = tls.into_inner();
    let drain = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
