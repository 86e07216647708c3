//! TLS of the admin page: a rustls client trusting only the generated
//! certificate gets the page; OpenSSL's s_client shows TLS 1.1 refused,
//! TLS 1.2/1.3 accepted with AEAD suites only, a CBC suite refused; the served
//! certificate's fingerprint equals `CertInfo::fingerprint`, stays the same
//! across a restart on the same state dir and changes after rotation.

#![allow(clippy::unwrap_used)]

mod admin_common;
use admin_common as common;

use common::*;
use cowork::admin::{AdminKeys, certificate_names, rotate_certificate};
use tokio::process::Command;

async fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run openssl (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)"),
        text,
    )
}

async fn served_fingerprint(port: u16) -> String {
    let (ok, text) = s_client(port, &[]).await;
    assert!(ok, "{text}");
    let begin = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let pem = format!("{}\n", &text[begin..end]);
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    s.trim().split_once('=').unwrap().1.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_client_trusting_generated_cert() {
    let h = Harness::start().await;
    let r = reqwest_client(&h.cert.der)
        .get(format!("{}/login", h.base))
        .send()
        .await
        .unwrap();
    // No owner yet: the login page sends to setup.
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/setup");
    // A client that trusts nothing else refuses the self-signed certificate.
    let plain = reqwest::Client::builder().build().unwrap();
    assert!(plain.get(format!("{}/setup", h.base)).send().await.is_err());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_versions_and_cipher_suites() {
    let h = Harness::start().await;
    let port = h.addr.port();

    let (ok, text) = s_client(port, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]).await;
    assert!(!ok, "TLS 1.1 must be refused:\n{text}");
    assert!(
        text.contains("alert"),
        "the server (not the client) must refuse:\n{text}"
    );

    let (ok, text) = s_client(port, &["-tls1_2"]).await;
    assert!(ok, "TLS 1.2 must work:\n{text}");
    assert!(text.contains("TLSv1.2"), "{text}");
    assert!(
        text.contains("GCM") || text.contains("CHACHA20"),
        "AEAD suite expected:\n{text}"
    );

    let (ok, text) = s_client(port, &["-tls1_3"]).await;
    assert!(ok, "TLS 1.3 must work:\n{text}");
    assert!(text.contains("TLSv1.3"), "{text}");

    for cbc in [
        "AES128-SHA256",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-SHA",
        "AES256-SHA",
    ] {
        let (ok, text) =
            s_client(port, &["-tls1_2", "-cipher", &format!("{cbc}@SECLEVEL=0")]).await;
        assert!(!ok, "non-AEAD suite {cbc} must be refused:\n{text}");
        assert!(
            text.contains("alert"),
            "the server (not the client) must refuse {cbc}:\n{text}"
        );
    }
    // Each TLS 1.2 AEAD suite we offer works; ChaCha20 on TLS 1.3 too.
    for aead in [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ] {
        let (ok, text) = s_client(port, &["-tls1_2", "-cipher", aead]).await;
        assert!(ok, "{aead}:\n{text}");
    }
    let (ok, text) = s_client(
        port,
        &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
    )
    .await;
    assert!(ok, "{text}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_stable_across_restart_and_changed_by_rotation() {
    let h = Harness::start().await;
    let first = h.cert.clone();
    assert_eq!(served_fingerprint(h.addr.port()).await, first.fingerprint);
    let (dir, _, _) = h.stop().await;

    let h = Harness::start_with(settings("127.0.0.1"), dir).await;
    assert_eq!(h.cert, first, "same certificate after a restart");
    assert_eq!(served_fingerprint(h.addr.port()).await, first.fingerprint);
    let (dir, _, _) = h.stop().await;

    let names = certificate_names("testbox", &["127.0.0.1".parse().unwrap()]);
    let rotated = rotate_certificate(dir.path(), &AdminKeys::new(KEY), &names).unwrap();
    assert_ne!(rotated.fingerprint, first.fingerprint);
    let h = Harness::start_with(settings("127.0.0.1"), dir).await;
    assert_eq!(h.cert.fingerprint, rotated.fingerprint);
    assert_eq!(served_fingerprint(h.addr.port()).await, rotated.fingerprint);
    // A client pinned to the old certificate no longer connects.
    assert!(
        reqwest_client(&first.der)
            .get(format!("{}/login", h.base))
            .send()
            .await
            .is_err()
    );
    assert!(
        reqwest_client(&rotated.der)
            .get(format!("{}/login", h.base))
            .send()
            .await
            .is_ok()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_wrapping_key_refuses_to_start() {
    let h = Harness::start().await;
    let (dir, _, _) = h.stop().await;
    let backend = cowork::admin::testing::FakeBackend::new(std::sync::Arc::new(
        cowork::admin::TestClock::new(START),
    ));
    let err = cowork::admin::AdminServer::bind(
        &settings("127.0.0.1"),
        dir.path(),
        AdminKeys::new([1; 32]),
        std::sync::Arc::new(backend),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot be decrypted"), "{err}");
}
