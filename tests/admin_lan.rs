//! The LAN filter end to end: loopback peers get the page; a peer with a
//! public address (198.51.100.2 in a network namespace created by the test,
//! over a veth pair to 198.51.100.1 where the server listens) gets 403 and an
//! `admin.lan_refused` audit entry (one per address per minute). Needs root
//! for `ip netns`; skipped with a message otherwise. The address classifier
//! itself is unit-tested in src/admin/lan.rs.

#![allow(clippy::unwrap_used)]

mod admin_common;
use admin_common as common;

use common::*;
use std::process::Command;

/// Also runs on a current_thread runtime, as in production.
#[tokio::test]
async fn loopback_peer_passes() {
    let h = Harness::start().await;
    let mut c = h.client();
    let r = c.get("/setup").await;
    assert_eq!(r.status, 200);
    assert!(h.backend.audit_of_kind("admin.lan_refused").is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_peer_passes() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback on this host");
        return;
    }
    let h = Harness::start_with(settings("::1"), tempfile::tempdir().unwrap()).await;
    let mut c = h.client();
    assert_eq!(c.get("/setup").await.status, 200);
    h.stop().await;
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the namespace and the veth pair even if the test fails.
struct NetNs {
    ns: String,
    host_if: String,
}

impl NetNs {
    fn create() -> NetNs {
        let id = std::process::id() % 100_000;
        let n = NetNs {
            ns: format!("cwadm{id}"),
            host_if: format!("cwa{id}h"),
        };
        let peer_if = format!("cwa{id}n");
        let _ = Command::new("ip").args(["netns", "del", &n.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &n.host_if])
            .output();
        run(&["ip", "netns", "add", &n.ns]);
        run(&[
            "ip", "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        run(&["ip", "link", "set", &peer_if, "netns", &n.ns]);
        run(&["ip", "addr", "add", "198.51.100.1/24", "dev", &n.host_if]);
        run(&["ip", "link", "set", &n.host_if, "up"]);
        run(&[
            "ip",
            "netns",
            "exec",
            &n.ns,
            "ip",
            "addr",
            "add",
            "198.51.100.2/24",
            "dev",
            &peer_if,
        ]);
        run(&[
            "ip", "netns", "exec", &n.ns, "ip", "link", "set", &peer_if, "up",
        ]);
        run(&[
            "ip", "netns", "exec", &n.ns, "ip", "link", "set", "lo", "up",
        ]);
        n
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_lan_peer_gets_403_and_audit() {
    if !is_root() {
        eprintln!(
            "SKIP non_lan_peer_gets_403_and_audit: needs root to create a network namespace (ip netns add)"
        );
        return;
    }
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is missing: apt-get install curl (listed in APT-PACKAGES)");
    }
    let ns = NetNs::create();
    // Give the host side a moment to bring the address up (DAD is v6 only, but be safe).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let h = Harness::start_with(settings("198.51.100.1"), tempfile::tempdir().unwrap()).await;
    let url = format!("https://198.51.100.1:{}/login", h.addr.port());
    let curl = |url: String, nsname: String| async move {
        tokio::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &nsname,
                "curl",
                "-sk",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                &url,
            ])
            .output()
            .await
            .unwrap()
    };
    let out = curl(url.clone(), ns.ns.clone()).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.trim_end().ends_with("403"),
        "expected 403 from a non-LAN peer, got:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("only reachable from the local network"));
    let refused = h.backend.audit_of_kind("admin.lan_refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].payload["peer"], "198.51.100.2");
    assert_eq!(refused[0].payload["path"], "/login");

    // A second request in the same minute: still 403, but no audit flood.
    let out = curl(url.clone(), ns.ns.clone()).await;
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with("403")
    );
    assert_eq!(h.backend.audit_of_kind("admin.lan_refused").len(), 1);
    // A POST with a body is refused the same way, and changes nothing.
    let before = h.backend.state().mutations;
    let out = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.ns,
            "curl",
            "-sk",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "-d",
            "channel=telegram",
            &url.replace("/login", "/pairing/issue"),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim_end()
            .ends_with("403")
    );
    assert_eq!(h.backend.state().mutations, before);
    h.stop().await;
    drop(ns);
}
