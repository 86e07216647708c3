//! The LAN filter end to end: loopback peers get the page; a peer with a
//! public address (198.51.100.2 in a network namespace created by the test,
//! over a veth pair to 198.51.100.1 where the server listens) gets 403 and an
//! `admin.lan_refused` audit entry (one per address per minute). A CGNAT peer
//! (100.64.0.2, as from a Tailscale interface) is refused and its host address
//! not listened on by default, and admitted and listened on with
//! `allow_cgnat = true` (issue 16 item 7). Needs root
//! for `ip netns`; skipped with a message otherwise. The address classifier
//! itself is unit-tested in src/admin/lan.rs.

#![allow(clippy::unwrap_used)]

mod admin_common;
mod skip;
use admin_common as common;

use common::*;
use cowork::admin::AdminWebSettings;
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
        return skip::skip(
            "ipv6_loopback_peer_passes",
            "no IPv6 loopback on this host",
            skip::Missing::Host,
        );
    }
    let h = Harness::start_with(settings("::1"), tempfile::tempdir().unwrap()).await;
    let mut c = h.client();
    assert_eq!(c.get("/setup").await.status, 200);
    h.stop().await;
}

/// `curl -sk URL` from inside network namespace `ns`; the body then the status.
async fn curl_in(ns: &str, url: &str) -> String {
    let out = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-sk",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
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
    /// A namespace holding `ns_addr`, joined by a veth pair to `host_addr` on
    /// the host; `tag` keeps the names of tests running at once apart.
    fn create(tag: char, host_addr: &str, ns_addr: &str) -> NetNs {
        let id = std::process::id() % 100_000;
        let n = NetNs {
            ns: format!("cwadm{tag}{id}"),
            host_if: format!("cwa{tag}{id}h"),
        };
        let peer_if = format!("cwa{tag}{id}n");
        let _ = Command::new("ip").args(["netns", "del", &n.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &n.host_if])
            .output();
        run(&["ip", "netns", "add", &n.ns]);
        run(&[
            "ip", "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        run(&["ip", "link", "set", &peer_if, "netns", &n.ns]);
        let host_cidr = format!("{host_addr}/24");
        let ns_cidr = format!("{ns_addr}/24");
        run(&["ip", "addr", "add", &host_cidr, "dev", &n.host_if]);
        run(&["ip", "link", "set", &n.host_if, "up"]);
        run(&[
            "ip", "netns", "exec", &n.ns, "ip", "addr", "add", &ns_cidr, "dev", &peer_if,
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
        return skip::skip(
            "non_lan_peer_gets_403_and_audit",
            "needs root to create a network namespace (ip netns add)",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is missing: apt-get install curl (listed in APT-PACKAGES)");
    }
    let ns = NetNs::create('p', "198.51.100.1", "198.51.100.2");
    let h = Harness::start_with(settings("198.51.100.1"), tempfile::tempdir().unwrap()).await;
    let url = format!("https://198.51.100.1:{}/login", h.addr.port());
    let text = curl_in(&ns.ns, &url).await;
    assert!(
        text.trim_end().ends_with("403"),
        "expected 403 from a non-LAN peer, got:\n{text}"
    );
    assert!(text.contains("only reachable from the local network"));
    let refused = h.backend.audit_of_kind("admin.lan_refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].payload["peer"], "198.51.100.2");
    assert_eq!(refused[0].payload["path"], "/login");

    // A second request in the same minute: still 403, but no audit flood.
    assert!(curl_in(&ns.ns, &url).await.trim_end().ends_with("403"));
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

/// Issue 16 item 7: CGNAT is opt-in, for the default listen set and for peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgnat_peer_and_listen_need_opt_in() {
    if !is_root() {
        return skip::skip(
            "cgnat_peer_and_listen_need_opt_in",
            "needs root to create a network namespace (ip netns add)",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is missing: apt-get install curl (listed in APT-PACKAGES)");
    }
    let ns = NetNs::create('c', "100.64.0.1", "100.64.0.2");
    let host: std::net::IpAddr = "100.64.0.1".parse().unwrap();
    for allow_cgnat in [false, true] {
        // The default listen set (no `listen`) has the CGNAT address only when allowed.
        let defaults = AdminWebSettings {
            listen: Vec::new(),
            port: 0,
            allow_cgnat,
            ..AdminWebSettings::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let server = cowork::admin::AdminServer::bind(
            &defaults,
            dir.path(),
            cowork::admin::AdminKeys::new(KEY),
            std::sync::Arc::new(cowork::admin::testing::FakeBackend::new(
                std::sync::Arc::new(cowork::admin::SystemClock),
            )),
        )
        .await
        .unwrap();
        let bound: Vec<_> = server.local_addrs().iter().map(|a| a.ip()).collect();
        assert_eq!(bound.contains(&host), allow_cgnat, "{bound:?}");
        assert!(bound.iter().any(|a| a.is_loopback()), "{bound:?}");
        drop(server);

        // A CGNAT peer on an explicitly named CGNAT address: 403 unless allowed.
        let s = AdminWebSettings {
            allow_cgnat,
            ..settings("100.64.0.1")
        };
        let h = Harness::start_with(s, tempfile::tempdir().unwrap()).await;
        let url = format!("https://100.64.0.1:{}/setup", h.addr.port());
        let text = curl_in(&ns.ns, &url).await;
        let refused = h.backend.audit_of_kind("admin.lan_refused");
        if allow_cgnat {
            assert!(text.trim_end().ends_with("200"), "allowed: {text}");
            assert!(refused.is_empty(), "{refused:?}");
        } else {
            assert!(text.trim_end().ends_with("403"), "default: {text}");
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].payload["peer"], "100.64.0.2");
        }
        h.stop().await;
    }
    drop(ns);
}
