//! Errors of the admin component, one variant per failed operation.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can stop the admin component from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating state directory {path}: {source}")]
    CreateStateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating the admin certificate: {0}")]
    GenerateCertificate(String),
    #[error(
        "admin TLS key file {path} cannot be decrypted with the AdminTlsKey (wrong key or tampered file)"
    )]
    DecryptTlsKey { path: PathBuf },
    #[error("admin TLS key file {path} is malformed: {detail}")]
    MalformedTlsKey { path: PathBuf, detail: String },
    #[error("encrypting the admin TLS key: {0}")]
    EncryptTlsKey(String),
    #[error("building the TLS configuration: {0}")]
    TlsConfig(String),
    #[error("listen address {addr:?} is not an IP address")]
    ParseListenAddr { addr: String },
    #[error(
        "refusing to listen on {addr}: wildcard and multicast addresses are not allowed; name concrete LAN addresses"
    )]
    WildcardListenAddr { addr: std::net::IpAddr },
    #[error("listing the host's network interfaces: {0}")]
    ListInterfaces(#[source] std::io::Error),
    #[error("no loopback or private address found to listen on")]
    NoListenAddr,
    #[error("{}", bind_problem(addr, source))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("hashing the owner password: {0}")]
    HashPassword(String),
    #[error("owner password file {path} is malformed: {detail}")]
    MalformedPasswordFile { path: PathBuf, detail: String },
    /// The owner file was written by a newer image (see `owner::OWNER_SCHEMA`).
    #[error("owner password file {path}: {source}")]
    PasswordFileSchema {
        path: PathBuf,
        source: crate::schema::SchemaError,
    },
}

/// Why the page cannot listen on `addr`, as the console and `coworkctl status`
/// show it.
fn bind_problem(addr: &SocketAddr, source: &std::io::Error) -> String {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => format!("{addr} in use (another program listens there)"),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{addr} is not an address of this machine")
        }
        std::io::ErrorKind::PermissionDenied => format!("{addr}: not allowed to listen there"),
        _ => format!("cannot listen on {addr}: {source}"),
    }
}
