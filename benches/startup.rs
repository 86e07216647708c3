//! Time from exec of `coworkd` to READY=1 with all four components up, and the
//! resident memory of the supervisor and its components when idle.
//! Goals: under 300 ms to READY, under 40 MB total RSS.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COWORKD: &str = env!("CARGO_BIN_EXE_coworkd");
const RUNS: usize = 15;

fn main() {
    println!("startup benchmark: {RUNS} runs of {COWORKD}");
    println!("machine: {} cores, {}", cores(), cpu_model());
    let mut to_ready = Vec::new();
    let mut rss = Vec::new();
    let mut pss = Vec::new();
    for _ in 0..RUNS {
        let (t, kib, pss_kib) = one_run();
        to_ready.push(t);
        rss.push(kib);
        pss.push(pss_kib);
    }
    to_ready.sort();
    rss.sort();
    pss.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "exec → READY=1 (4/4 components up): median {:.1} ms, min {:.1} ms, max {:.1} ms (goal < 300 ms)",
        ms(to_ready[RUNS / 2]),
        ms(to_ready[0]),
        ms(to_ready[RUNS - 1])
    );
    println!(
        "idle RSS, supervisor + 4 components: median {:.1} MB, max {:.1} MB (goal < 40 MB)",
        rss[RUNS / 2] as f64 / 1024.0,
        rss[RUNS - 1] as f64 / 1024.0
    );
    println!(
        "idle PSS (shared pages of the one binary and its libraries counted once): median {:.1} MB",
        pss[RUNS / 2] as f64 / 1024.0
    );
}

fn one_run() -> (Duration, u64, u64) {
    let dir = tempfile::Builder::new()
        .prefix("cwb")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let config = dir.path().join("coworkd.toml");
    std::fs::write(&config, "profile = \"development\"\n").expect("config");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let start = Instant::now();
    let mut child = Command::new(COWORKD)
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coworkd");
    let mut buf = [0u8; 4096];
    let ready_after = loop {
        let n = notify.recv(&mut buf).expect("no READY=1 within 10 s");
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break start.elapsed();
        }
    };
    // Let the first health round pass, then measure the idle footprint.
    std::thread::sleep(Duration::from_millis(1200));
    let pid = child.id();
    let mut total = rss_kib(pid);
    let mut total_pss = pss_kib(pid);
    for c in children(pid) {
        total += rss_kib(c);
        total_pss += pss_kib(c);
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    (ready_after, total, total_pss)
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}
