//! rustls server configuration: ring provider, TLS 1.2 and 1.3 only, and an
//! explicit list of AEAD cipher suites (ECDHE key exchange, AES-GCM or
//! ChaCha20-Poly1305). No CBC, no RSA key exchange, no client certificates.

use std::sync::Arc;

use rustls::crypto::ring as ring_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, SupportedCipherSuite};

use super::cert::LoadedCert;
use super::error::AdminError;

/// The cipher suites offered, strongest first.
pub fn cipher_suites() -> Vec<SupportedCipherSuite> {
    use ring_provider::cipher_suite as cs;
    vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// Build the server configuration for a certificate and its key.
pub(crate) fn server_config(cert: &LoadedCert) -> Result<Arc<ServerConfig>, AdminError> {
    let err = |e: rustls::Error| AdminError::TlsConfig(e.to_string());
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: cipher_suites(),
        ..ring_provider::default_provider()
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.to_vec()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.info.der.clone())], key)
        .map_err(err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
