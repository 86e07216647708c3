//! Signed updates through the running appliance, on file-backed slots named in
//! `[update]`: `coworkctl update pack` signs a bundle with the test key;
//! `coworkd update verify` checks it offline (exit 0 / 1 with the reason);
//! `coworkctl update apply` writes slot B and its `cowork-b+3.conf` entry
//! through the supervisor while slot A stays byte-for-byte the same;
//! `coworkctl update status` reports it; a tampered bundle, a downgrade and a
//! bundle owned by someone else are refused; every step is in the audit trail.
//! The same again with `[update] writer_socket` set: the supervisor hands the
//! work to `coworkd update serve`, started per connection the way
//! cowork-update.socket (Accept=yes) does; and that writer's answers to
//! malformed, oversized and foreign requests. `update apply URL` downloads
//! from a loopback HTTP server (a missing file, an oversized one and a
//! non-loopback http:// URL are refused, nothing left behind).

#![allow(clippy::unwrap_used)]

mod common;
mod skip;
mod update_common;

use std::process::Command;
use std::time::Duration;

use common::{COWORKCTL, COWORKD, DEV_CONFIG, Instance, wait_until};
use cowork::update::writer::{WriterMessage, WriterRequest};
use update_common::{SLOT_A_ENTRY, daemon_slots, data, pattern};

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn update_through_the_appliance() {
    scenario(false);
}

#[test]
fn update_through_the_appliance_and_its_update_writer() {
    if !skip::is_root() {
        return skip::skip(
            "update_through_the_appliance_and_its_update_writer",
            "needs root (the update writer serves root only, as on the appliance)",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    scenario(true);
}

/// Accepts connections on `socket` and runs `coworkd update serve` on each,
/// the connection as its stdin: what systemd does for cowork-update.socket.
fn socket_activator(socket: &std::path::Path, config: std::path::PathBuf) {
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let fd = std::os::fd::OwnedFd::from(stream);
            let child = Command::new(COWORKD)
                .args(["update", "serve", "--config"])
                .arg(&config)
                .stdin(std::process::Stdio::from(fd))
                .spawn();
            if let Ok(mut child) = child {
                std::thread::spawn(move || child.wait());
            }
        }
    });
}

fn scenario(via_writer: bool) {
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    // Through the writer, bundles must not be under /tmp, /var/tmp, /home or
    // /root (private to the units on the appliance, and refused for that
    // reason); this variant runs as root only, so /var/lib will do.
    let bundles = tempfile::Builder::new()
        .prefix("cowork-test-bundles")
        .tempdir_in(if via_writer { "/var/lib" } else { "/tmp" })
        .unwrap();
    let slots = d.join("slots");
    let slot_a = pattern(256 * 1024, 1);
    let slot_lines = daemon_slots(&slots, &slot_a, 5);
    let s = |p: &str| slots.join(p).display().to_string();
    let writer_line = if via_writer {
        format!("writer_socket = \"{}\"\n", d.join("writer.sock").display())
    } else {
        String::new()
    };
    let config =
        format!("{DEV_CONFIG}[update]\n{writer_line}max_bundle_bytes = 10000000\n{slot_lines}");

    // Pack (offline) with the test key.
    let work = if via_writer {
        bundles.path().join("work")
    } else {
        d.join("work")
    };
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("root.img"), pattern(300 * 1024, 6)).unwrap();
    std::fs::write(work.join("vmlinuz"), b"kernel 6").unwrap();
    std::fs::write(work.join("initrd"), b"initrd 6").unwrap();
    let pack = |version: &str, out: &str| {
        run(Command::new(COWORKCTL).args([
            "update",
            "pack",
            "--payload",
            &work.join("root.img").display().to_string(),
            "--kernel",
            &work.join("vmlinuz").display().to_string(),
            "--initrd",
            &work.join("initrd").display().to_string(),
            "--version",
            version,
            "--label",
            "test",
            "--key",
            &data("test-signing-key.pem").display().to_string(),
            "--out",
            &work.join(out).display().to_string(),
        ]))
    };
    let (rc, out, err) = pack("6", "v6.bundle");
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, _, _) = pack("4", "v4.bundle");
    assert_eq!(rc, 0);
    let bundle = work.join("v6.bundle");

    // Offline verification: valid; a flipped byte is refused with a reason.
    let verify = |b: &std::path::Path| {
        run(Command::new(COWORKD).args([
            "update",
            "verify",
            "--keys",
            &s("keys"),
            "--state",
            &s("state"),
            "--current-version",
            "5",
            &b.display().to_string(),
        ]))
    };
    let (rc, out, err) = verify(&bundle);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("valid: version 6"), "{out}");
    let tampered = work.join("tampered.bundle");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x40;
    std::fs::write(&tampered, bytes).unwrap();
    let (rc, _, err) = verify(&tampered);
    assert_eq!(rc, 1);
    assert!(err.contains("refused"), "{err}");

    // Through the daemon.
    std::fs::write(Instance::config_path(d), config).unwrap();
    if via_writer {
        socket_activator(&d.join("writer.sock"), Instance::config_path(d));
    }
    let mut i = Instance::start_in(dir, &[], &[]);
    i.wait_notification("READY=1", Duration::from_secs(15));
    let status = |i: &Instance| -> serde_json::Value {
        let out = i.ctl(&["update", "status", "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let st = status(&i);
    assert_eq!(st["running"], "a", "{st}");
    assert_eq!(st["running_version"], 5, "{st}");

    for (b, why) in [(&tampered, "tampered"), (&work.join("v4.bundle"), "older")] {
        let out = i.ctl(&["update", "apply", &b.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{why}: {out:?}");
        assert!(
            !slots.join("esp/loader/entries/cowork-b+3.conf").exists(),
            "{why}: slot B made bootable"
        );
    }
    let out = i.ctl(&["update", "apply", &bundle.display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("slot") && text.contains("cowork-b+3.conf"),
        "{text}"
    );
    assert!(slots.join("esp/loader/entries/cowork-b+3.conf").exists());
    assert_eq!(std::fs::read(slots.join("slot-a.img")).unwrap(), slot_a);
    assert_eq!(
        std::fs::read_to_string(slots.join("esp/loader/entries/cowork-a.conf")).unwrap(),
        SLOT_A_ENTRY
    );
    let st = status(&i);
    assert_eq!(st["other"], "b", "{st}");
    assert!(
        st["other_entry"]
            .to_string()
            .to_lowercase()
            .contains("pending"),
        "{st}"
    );

    // A relative path is made absolute by coworkctl; a missing one is refused.
    let out = i.ctl(&["update", "apply", "/nonexistent/bundle"]);
    assert_eq!(out.status.code(), Some(1));

    // The supervisor queues its audit entries: wait for them.
    let in_trail = |i: &Instance, kinds: &[&str]| {
        wait_until(Duration::from_secs(10), &kinds.join(", "), || {
            let trail =
                String::from_utf8_lossy(&i.ctl(&["audit", "tail", "-n", "200", "--json"]).stdout)
                    .into_owned();
            kinds.iter().all(|k| trail.contains(k)).then_some(())
        })
    };
    in_trail(
        &i,
        &[
            "update.verify_started",
            "update.refused",
            "update.applying",
            "update.applied",
        ],
    );
    // From a URL: a loopback HTTP server with v7, a missing file and a big one.
    let (rc, out, err) = pack("7", "v7.bundle");
    assert_eq!(rc, 0, "{out}{err}");
    let port = http_server(vec![
        ("/v7.bundle", std::fs::read(work.join("v7.bundle")).unwrap()),
        ("/big.bundle", vec![0u8; 20_000_000]),
    ]);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let out = i.ctl(&["update", "apply", &url("/v7.bundle")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status(&i)["other_version"], "7");
    for (u, why) in [
        (url("/missing.bundle"), "404"),
        (url("/big.bundle"), "max_bundle_bytes"),
        (
            "http://updates.example.com/v8.bundle".to_string(),
            "loopback",
        ),
        ("https://127.0.0.1:1/v8.bundle".to_string(), "fetching"),
    ] {
        let out = i.ctl(&["update", "apply", &u]);
        assert_eq!(out.status.code(), Some(1), "{u}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{u}: {err}");
    }
    let incoming = slots.join("state/incoming");
    let left: Vec<_> = std::fs::read_dir(&incoming)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "downloads left behind: {left:?}");
    in_trail(&i, &["update.downloaded", "update.download_failed"]);

    if via_writer {
        // Under /tmp: invisible to the units on the appliance, so refused up front.
        let in_tmp = i.dir.path().join("v6.bundle");
        std::fs::copy(&bundle, &in_tmp).unwrap();
        let out = i.ctl(&["update", "apply", &in_tmp.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("private to each service"),
            "{out:?}"
        );
        hostile_writer_requests(&i.dir.path().join("writer.sock"), &work);
    }
    i.stop();
}

/// A loopback HTTP/1.1 server for `update apply URL`: the given paths, 404 for
/// the rest. Returns its port.
fn http_server(files: Vec<(&'static str, Vec<u8>)>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                }
                None => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    port
}

/// Sends `bytes` to the writer, closes our side, and returns its last answer.
fn writer_answer(socket: &std::path::Path, bytes: &[u8]) -> Option<WriterMessage> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream.write_all(bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let mut last = None;
    let mut rest = &answer[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        last = Some(cowork::ipc::decode(&rest[4..4 + len]).unwrap());
        rest = &rest[4 + len..];
    }
    last
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn hostile_writer_requests(socket: &std::path::Path, work: &std::path::Path) {
    let refusal = |bytes: &[u8]| match writer_answer(socket, bytes) {
        Some(WriterMessage::Done(Err(e))) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(refusal(&framed(b"hello")).contains("malformed"));
    assert!(refusal(&framed(&cowork::ipc::encode(&"Reboot").unwrap())).contains("malformed"));
    assert!(refusal(&0x7fff_ffffu32.to_be_bytes()).contains("bad frame"));
    assert!(
        refusal(&[0, 0, 0, 9, 1, 2]).contains("bad frame"),
        "cut short"
    );
    // Not a bundle: refused by verification, nothing written.
    std::fs::write(work.join("junk.bundle"), vec![0x55; 4096]).unwrap();
    let request = WriterRequest::Apply {
        bundle: work.join("junk.bundle"),
    };
    let e = refusal(&framed(&cowork::ipc::encode(&request).unwrap()));
    assert!(e.contains("refused") || e.contains("bundle"), "{e}");
    // Nothing asked: the connection just closes.
    assert_eq!(writer_answer(socket, b""), None);
}
