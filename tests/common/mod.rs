//! Shared helpers for integration tests: a coworkd instance in temp directories,
//! with a NOTIFY_SOCKET the test listens on.
#![allow(dead_code)]

pub mod swtpm;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const COWORKD: &str = env!("CARGO_BIN_EXE_coworkd");
pub const COWORKCTL: &str = env!("CARGO_BIN_EXE_coworkctl");

pub const DEV_CONFIG: &str =
    "profile = \"development\"\n[admin]\nlisten = [\"127.0.0.1\"]\nport = 0\n";

pub struct Instance {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub notify: UnixDatagram,
    pub notifications: Vec<String>,
}

impl Instance {
    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("coworkd.toml")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Starts coworkd with `config` and extra args/env; does not wait for READY.
    pub fn start_with(config: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Instance {
        // Short paths: Unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("cw")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::write(Self::config_path(dir.path()), config).expect("write config");
        Self::start_in(dir, extra_args, env)
    }

    /// The log of every coworkd run in this instance's directory (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("coworkd.log")).unwrap_or_default()
    }

    /// Stops coworkd and starts it again on the same directories; waits for READY.
    pub fn restart(self) -> Instance {
        let mut old = self;
        let (status, _) = old.stop();
        assert!(status.success(), "stop before restart: {status:?}");
        let dir = std::mem::replace(&mut old.dir, tempfile::tempdir().expect("tempdir"));
        drop(old);
        let mut i = Self::start_in(dir, &[], &[]);
        i.wait_notification("READY=1", Duration::from_secs(10));
        i
    }

    /// Starts coworkd on an existing instance directory; does not wait for READY.
    pub fn start_in(dir: tempfile::TempDir, extra_args: &[&str], env: &[(&str, &str)]) -> Instance {
        let notify_path = dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut cmd = Command::new(COWORKD);
        cmd.arg("--config")
            .arg(Self::config_path(dir.path()))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--runtime-dir")
            .arg(dir.path().join("run"))
            .args(extra_args)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if std::env::var_os("COWORK_TEST_VERBOSE").is_none() {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("coworkd.log"))
                .expect("open log");
            cmd.stderr(log);
        }
        let child = cmd.spawn().expect("spawn coworkd");
        Instance {
            dir,
            child,
            notify,
            notifications: Vec::new(),
        }
    }

    pub fn start() -> Instance {
        let mut i = Self::start_with(DEV_CONFIG, &[], &[]);
        i.wait_notification("READY=1", Duration::from_secs(10));
        i
    }

    /// Reads notifications until one contains `needle`; panics at the deadline.
    pub fn wait_notification(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        if let Some(n) = self.notifications.iter().find(|n| n.contains(needle)) {
            return n.clone();
        }
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.notifications.push(msg.clone());
                if msg.contains(needle) {
                    return msg;
                }
            }
        }
        panic!(
            "no {needle:?} notification within {within:?}; saw {:?}",
            self.notifications
        );
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(COWORKCTL)
            .arg("--runtime-dir")
            .arg(self.runtime_dir())
            .args(args)
            .output()
            .expect("run coworkctl")
    }

    /// `coworkctl audit tail --json -n 10000 ARGS`, one JSON value per entry;
    /// panics (with coworkctl's stderr) if it fails.
    pub fn audit_tail(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut a = vec!["audit", "tail", "--json", "-n", "10000"];
        a.extend_from_slice(args);
        let out = self.ctl(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit tail --json prints JSON lines"))
            .collect()
    }

    /// coworkctl with `input` on its standard input.
    pub fn ctl_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(COWORKCTL)
            .arg("--runtime-dir")
            .arg(self.runtime_dir())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run coworkctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        child.wait_with_output().expect("coworkctl output")
    }

    /// Pids of the supervisor and every component.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = vec![self.child.id() as i32];
        for c in ["audit", "sandbox", "gateway", "admin"] {
            pids.extend(self.pid_of(c));
        }
        pids
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.ctl(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}; stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    pub fn component(&self, name: &str) -> serde_json::Value {
        self.status()["components"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["component"] == name).cloned())
            .unwrap_or_else(|| panic!("component {name} missing from status"))
    }

    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.component(name)["pid"].as_i64().map(|p| p as i32)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signal coworkd");
    }

    /// SIGTERM and wait for exit; returns the exit status and how long it took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return (s, t.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "coworkd did not stop within 15 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` every 20 ms until it returns Some, or panics after `within`.
/// The standard output of a command that must have succeeded (else a panic
/// with its status and both outputs).
pub fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn wait_until<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when a process with this pid exists (and is not a zombie of ours).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}
