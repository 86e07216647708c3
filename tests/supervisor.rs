//! The supervisor, run as the real binary: readiness and systemd notifications,
//! healing after SIGKILL of each component, backoff and "degraded" for a
//! crash-looping component, orderly stop, reload, status exit codes.

#![allow(clippy::unwrap_used)]

mod common;
mod skip;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{COWORKD, DEV_CONFIG, Instance, alive, wait_until};
use nix::sys::signal::Signal;

const COMPONENTS: [&str; 4] = ["audit", "sandbox", "gateway", "admin"];

#[test]
fn notifies_ready_status_watchdog_and_stopping() {
    let mut i = Instance::start_with(DEV_CONFIG, &[], &[("WATCHDOG_USEC", "2000000")]);
    i.wait_notification("READY=1", Duration::from_secs(10));
    let status = i.wait_notification("STATUS=4/4 components up", Duration::from_secs(5));
    assert!(status.contains("keystore: "), "{status}");
    // WatchdogSec=2s → pings (and WATCHDOG=1) at least every second.
    i.wait_notification("WATCHDOG=1", Duration::from_secs(3));
    let out = i.ctl(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("healthy"), "{text}");
    let (status, took) = i.stop();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    i.wait_notification("STOPPING=1", Duration::from_secs(1));
}

#[test]
fn sigkill_of_each_component_is_healed_within_two_seconds() {
    let i = Instance::start();
    for victim in COMPONENTS {
        let before: Vec<(String, i32)> = COMPONENTS
            .iter()
            .map(|c| (c.to_string(), i.pid_of(c).expect("pid")))
            .collect();
        let old = before
            .iter()
            .find(|(c, _)| c == victim)
            .map(|(_, p)| *p)
            .expect("victim");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), Signal::SIGKILL).expect("kill");
        let t = std::time::Instant::now();
        wait_until(Duration::from_secs(2), &format!("{victim} back up"), || {
            let c = i.component(victim);
            (c["state"] == "up" && c["pid"].as_i64() != Some(i64::from(old))).then_some(())
        });
        eprintln!("{victim} healed in {:?}", t.elapsed());
        for (name, pid) in &before {
            if name != victim {
                assert_eq!(
                    i.pid_of(name),
                    Some(*pid),
                    "{name} must keep running while {victim} restarts"
                );
            }
        }
        assert!(!alive(old));
    }
    assert_eq!(i.ctl(&["status"]).status.code(), Some(0));
}

#[test]
fn crash_looping_component_backs_off_and_marks_degraded() {
    // A wrapper that runs the real binary for every component except the gateway,
    // which dies at once every time.
    let dir = tempfile::tempdir().expect("tempdir");
    let wrapper = dir.path().join("wrapper.sh");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\n[ \"$2\" = gateway ] && exit 3\nexec {COWORKD} \"$@\"\n"),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let wrapper = wrapper.to_string_lossy().into_owned();
    let i = Instance::start_with(DEV_CONFIG, &["--component-exe", &wrapper], &[]);

    // 100+200+400+800+1600 ms: the sixth restart comes after ~3.1 s.
    let gw = wait_until(Duration::from_secs(8), "degraded", || {
        let s = i.status();
        (s["degraded"] == true).then_some(s)
    });
    let comps = gw["components"].as_array().expect("components");
    let gateway = comps
        .iter()
        .find(|c| c["component"] == "gateway")
        .expect("gateway");
    assert!(gateway["restarts"].as_u64().unwrap() >= 6);
    assert!(
        gateway["backoff_ms"].as_u64().unwrap() >= 6400,
        "backoff must grow: {gateway}"
    );
    for c in comps.iter().filter(|c| c["component"] != "gateway") {
        assert_eq!(c["state"], "up", "others keep running: {c}");
    }
    let out = i.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(1), "degraded → exit 1");
    // Which component and why, in words (issue 19).
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DEGRADED: the gateway component restarted"),
        "{text}"
    );
    let why = gw["degraded_because"].as_array().expect("degraded_because");
    assert!(
        why.iter().any(|w| w.as_str().unwrap().contains("gateway")),
        "{gw}"
    );
    // Not spinning: over the next 3 s at most one more restart (backoff ≥ 3.2 s).
    let before = gateway["restarts"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after = i.component("gateway")["restarts"].as_u64().unwrap();
    assert!(
        after <= before + 1,
        "restarts went from {before} to {after} in 3 s"
    );
}

#[test]
fn reload_applies_good_config_and_refuses_bad() {
    let mut i = Instance::start();
    let config = Instance::config_path(i.dir.path());
    std::fs::write(&config, format!("{DEV_CONFIG}[log]\nlevel = \"warn\"\n")).expect("write");
    let out = i.ctl(&["reload"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        &config,
        "profile = \"production\"\n[channels.local]\ndm = \"open\"\n",
    )
    .expect("write");
    let out = i.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("coworkd.toml:3:1: open mode"), "{err}");
    // SIGHUP with the bad file: refused too, and the appliance keeps running.
    let pids: Vec<_> = COMPONENTS.iter().map(|c| i.pid_of(c)).collect();
    let refusals = |i: &Instance| i.log().matches("configuration reload refused").count();
    let before = refusals(&i);
    i.signal(Signal::SIGHUP);
    wait_until(Duration::from_secs(10), "the SIGHUP reload refused", || {
        (refusals(&i) > before).then_some(())
    });
    assert_eq!(
        pids,
        COMPONENTS.iter().map(|c| i.pid_of(c)).collect::<Vec<_>>()
    );
    assert_eq!(i.ctl(&["status"]).status.code(), Some(0));
    let (status, _) = i.stop();
    assert!(status.success());
}

#[test]
fn unreachable_daemon_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(common::COWORKCTL)
        .arg("--runtime-dir")
        .arg(dir.path())
        .arg("status")
        .output()
        .expect("coworkctl");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
}

#[test]
fn bad_config_refuses_to_start_with_a_placed_error() {
    let mut i = Instance::start_with(
        "profile = \"production\"\n[log]\nlevel = \"debug\"\n",
        &[],
        &[],
    );
    let status = i.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn components_get_a_clean_environment() {
    let i = Instance::start_with(DEV_CONFIG, &[], &[("COWORK_TEST_SECRET", "hunter2-in-env")]);
    let mut i = i;
    i.wait_notification("READY=1", Duration::from_secs(10));
    for c in COMPONENTS {
        let pid = i.pid_of(c).expect("pid");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("hunter2"), "{c} inherited the secret");
        assert!(
            !environ.contains("NOTIFY_SOCKET"),
            "{c} inherited NOTIFY_SOCKET"
        );
        let vars: Vec<&str> = environ.split('\0').filter(|v| !v.is_empty()).collect();
        assert_eq!(vars.len(), 1, "{c} env: {vars:?}");
        assert!(vars[0].starts_with("PATH="));
    }
}

#[test]
fn components_started_by_root_hold_no_capabilities() {
    if !skip::is_root() {
        return skip::skip(
            "components_started_by_root_hold_no_capabilities",
            "needs root (unprivileged, every component runs as the caller anyway)",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    let i = Instance::start();
    for c in ["audit", "gateway", "admin"] {
        let pid = i.pid_of(c).expect("pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
            let line = status
                .lines()
                .find(|l| l.starts_with(field))
                .expect("cap line");
            assert!(line.ends_with("0000000000000000"), "{c}: {line}");
        }
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
            "{c}: no_new_privs"
        );
    }
}

/// Starts `coworkd component audit` by hand with `--lifeline-fd` set to `fd`
/// (or to the read end of a fresh pipe when `fd` is None, returning its write end).
fn audit_component_with_lifeline(
    dir: &std::path::Path,
    fd: Option<i32>,
) -> (std::process::Child, Option<std::os::fd::OwnedFd>) {
    use std::os::fd::AsRawFd;
    std::fs::write(dir.join("coworkd.toml"), DEV_CONFIG).unwrap();
    for d in ["state/audit", "run/audit"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let (fd, write_end, read_end) = match fd {
        Some(fd) => (fd, None, None),
        None => {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            // Only the read end is inherited.
            nix::fcntl::fcntl(
                r.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .unwrap();
            (r.as_raw_fd(), Some(w), Some(r))
        }
    };
    let child = std::process::Command::new(COWORKD)
        .arg("component")
        .arg("audit")
        .arg("--lifeline-fd")
        .arg(fd.to_string())
        .arg("--config")
        .arg(dir.join("coworkd.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--runtime-dir")
        .arg(dir.join("run"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(read_end);
    (child, write_end)
}

#[test]
fn closing_the_lifeline_ends_a_component_at_once() {
    // How the supervisor ends a component without signals (the unit has no
    // CAP_KILL): it drops the write end of the component's lifeline pipe.
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    let (mut child, write_end) = audit_component_with_lifeline(dir.path(), None);
    let socket = dir.path().join("run/audit/audit.sock");
    wait_until(Duration::from_secs(10), "audit socket", || {
        socket.exists().then_some(())
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "running while the lifeline is held"
    );
    drop(write_end);
    let status = wait_until(
        Duration::from_secs(2),
        "exit after the lifeline closed",
        || child.try_wait().unwrap(),
    );
    assert_eq!(status.code(), Some(137), "{status}");
}

#[test]
fn a_lifeline_that_is_not_a_pipe_is_refused() {
    let dir = tempfile::Builder::new()
        .prefix("cw")
        .tempdir_in("/tmp")
        .unwrap();
    // fd 0 is /dev/null here (not a pipe); fd 999 is not open.
    for fd in [0, 999] {
        let (child, _) = audit_component_with_lifeline(dir.path(), Some(fd));
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "fd {fd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("lifeline"), "fd {fd}: {err}");
    }
}

#[test]
fn an_unresponsive_component_is_replaced_through_its_lifeline() {
    // SIGSTOP: it answers no health check; after three misses the supervisor
    // cuts its lifeline (it sends no signal: the unit has no CAP_KILL). The
    // process ends as soon as it runs again, and a new one takes its place.
    let i = Instance::start();
    let old = i.pid_of("gateway").expect("gateway pid");
    let pid = nix::unistd::Pid::from_raw(old);
    nix::sys::signal::kill(pid, Signal::SIGSTOP).unwrap();
    wait_until(Duration::from_secs(10), "gateway unresponsive", || {
        (i.component("gateway")["state"] == "unresponsive").then_some(())
    });
    // The supervisor gives up on it after three missed rounds.
    wait_until(Duration::from_secs(15), "the supervisor ending it", || {
        i.log()
            .contains("gateway: component stopped answering health checks; ending it")
            .then_some(())
    });
    nix::sys::signal::kill(pid, Signal::SIGCONT).unwrap();
    let g = wait_until(Duration::from_secs(10), "a new gateway", || {
        let g = i.component("gateway");
        (g["state"] == "up" && g["pid"].as_i64() != Some(i64::from(old))).then_some(g)
    });
    assert!(g["restarts"].as_u64().unwrap() >= 1, "{g}");
    assert!(!alive(old), "the old gateway is gone");
}

#[test]
fn admin_page_on_a_taken_port_backs_off_and_says_why() {
    // Another program holds the admin page's port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("local addr").port();
    let config = format!(
        "profile = \"development\"\n[admin]\nlisten = [\"127.0.0.1\"]\nport = {port}\n\
         [supervisor]\nrestart_backoff_max_ms = 1000\n"
    );
    let i = Instance::start_with(&config, &[], &[]);
    let addr = format!("127.0.0.1:{port}");
    let admin = wait_until(
        Duration::from_secs(10),
        "the admin component failed, naming its address",
        || {
            let a = i.component("admin");
            let state = a["state"].as_str().unwrap_or_default().to_string();
            let named = a["summary"].as_str().is_some_and(|s| s.contains(&addr));
            (state != "up" && state != "starting" && named).then_some(a)
        },
    );
    assert_eq!(
        admin["summary"].as_str(),
        Some(format!("failed: {addr} in use (another program listens there)").as_str()),
        "{admin}"
    );
    let text = String::from_utf8_lossy(&i.ctl(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!("admin: failed: {addr} in use")),
        "status says why: {text}"
    );
    // Said once per attempt, not at the polling rate.
    let attempts = wait_until(Duration::from_secs(10), "a third attempt", || {
        let n = i.component("admin")["restarts"].as_u64().unwrap_or(0);
        (n >= 3).then_some(n)
    });
    let said = i.log().matches(": failed: ").count() as u64;
    assert!(
        said <= attempts + 2,
        "{said} failure lines for {attempts} restarts:\n{}",
        i.log()
    );
    // Once the port is free the page comes up on its own.
    drop(taken);
    wait_until(Duration::from_secs(10), "the admin page up", || {
        (i.component("admin")["state"] == "up").then_some(())
    });
}
