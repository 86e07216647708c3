//! A loopback HTTPS server for tests: a fresh CA (rcgen) and a leaf for
//! 127.0.0.1 and localhost, rustls with the ring provider, hyper serving an
//! axum router (WebSocket upgrades included). The client under test trusts
//! `ca_pem`, nothing else.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it.
pub struct TestTls {
    pub ca_pem: Vec<u8>,
    pub server: Arc<rustls::ServerConfig>,
    /// The server certificate and its key, as PEM (for real servers).
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn test_tls() -> TestTls {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    TestTls {
        ca_pem: ca.pem().into_bytes(),
        server: Arc::new(server),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// Serves `router` over TLS on 127.0.0.1; returns the `https://` base URL.
pub async fn serve_tls(router: Router, tls: &TestTls) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    // A fake's WebSocket route upgrades its connection.
                    .with_upgrades()
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

/// A fresh CA and server, serving `app` until the test's runtime ends;
/// returns the base URL (`https://127.0.0.1:PORT`) and the CA (PEM).
pub async fn serve(app: Router) -> (String, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = test_tls();
    (serve_tls(app, &tls).await, tls.ca_pem)
}
