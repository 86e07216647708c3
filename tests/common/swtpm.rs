//! A real software TPM (swtpm) on loopback for tests; killed on drop. swtpm must
//! be installed (make test installs swtpm, swtpm-tools, tpm2-tools): without it
//! the tests fail with a message, they do not skip.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm; killed on drop.
pub struct Swtpm {
    child: Child,
    pub port: u16,
}

fn free_port_pair() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 65535 && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` not found: install the Debian packages swtpm, swtpm-tools and tpm2-tools \
         (listed in APT-PACKAGES; `make test` installs them)"
    );
}

impl Swtpm {
    pub fn start(state: &Path) -> Swtpm {
        Self::start_with_flags(state, "not-need-init,startup-clear")
    }

    pub fn start_with_flags(state: &Path, flags: &str) -> Swtpm {
        require_tool("swtpm");
        std::fs::create_dir_all(state).unwrap();
        for _attempt in 0..5 {
            let port = free_port_pair();
            let mut child = Command::new("swtpm")
                .args([
                    "socket",
                    "--tpm2",
                    "--server",
                    &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
                    "--ctrl",
                    &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
                    "--tpmstate",
                    &format!("dir={}", state.display()),
                    "--flags",
                    flags,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn swtpm");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: retry with another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Swtpm { child, port };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start");
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn pcr_extend(&self, pcr: u8) {
        require_tool("tpm2_pcrextend");
        let out = Command::new("tpm2_pcrextend")
            .arg(format!("{pcr}:sha256={}", "ab".repeat(32)))
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tpm2_pcrextend: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
