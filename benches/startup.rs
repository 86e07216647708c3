//! Time from exec of `coworkd` to READY=1 with all four components up, and the
//! memory of the supervisor and its components when idle, per process.
//! Goals: under 300 ms to READY, under 25 MB total PSS.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COWORKD: &str = env!("CARGO_BIN_EXE_coworkd");
const RUNS: usize = 15;

fn main() {
    println!("startup benchmark: {RUNS} runs of {COWORKD}");
    println!("machine: {} cores, {}", cores(), cpu_model());
    let mut to_ready = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let (t, procs) = one_run();
        to_ready.push(t);
        runs.push(procs);
    }
    to_ready.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "exec → READY=1 (4/4 components up): median {:.1} ms, min {:.1} ms, max {:.1} ms (goal < 300 ms)",
        ms(to_ready[RUNS / 2]),
        ms(to_ready[0]),
        ms(to_ready[RUNS - 1])
    );
    let mut pss: Vec<u64> = runs.iter().map(|r| r.iter().map(|p| p.pss).sum()).collect();
    let mut rss: Vec<u64> = runs.iter().map(|r| r.iter().map(|p| p.rss).sum()).collect();
    pss.sort();
    rss.sort();
    // PSS is the headline: the five processes run one binary, whose shared
    // pages RSS counts five times.
    println!(
        "idle PSS, supervisor + 4 components: median {:.1} MB, max {:.1} MB (goal < 25 MB)",
        mb(pss[RUNS / 2]),
        mb(pss[RUNS - 1])
    );
    println!(
        "idle RSS (shared pages counted once per process): median {:.1} MB",
        mb(rss[RUNS / 2])
    );
    // What each process holds, from the median run by PSS.
    let median_pss = pss[RUNS / 2];
    let Some(run) = runs
        .iter()
        .find(|r| r.iter().map(|p| p.pss).sum::<u64>() == median_pss)
    else {
        return;
    };
    for p in run {
        println!(
            "  {:<10} PSS {:>5.1} MB = {:>5.1} MB its own (heap, stacks) + {:>4.1} MB its share of the binary and libraries; RSS {:>5.1} MB",
            p.name,
            mb(p.pss),
            mb(p.pss_anon),
            mb(p.pss_file),
            mb(p.rss)
        );
    }
}

/// One process's idle footprint, in KiB.
struct Footprint {
    name: String,
    rss: u64,
    pss: u64,
    pss_anon: u64,
    pss_file: u64,
}

fn one_run() -> (Duration, Vec<Footprint>) {
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
    let procs = std::iter::once(pid)
        .chain(children(pid))
        .map(footprint)
        .collect();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    (ready_after, procs)
}

fn footprint(pid: u32) -> Footprint {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // Components run as `coworkd component NAME ...`.
    let name = match args.iter().position(|a| a == "component") {
        Some(i) => args.get(i + 1).cloned().unwrap_or_default(),
        None => "supervisor".to_string(),
    };
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Footprint {
        name,
        rss: rss_kib(pid),
        pss: field_kib(&rollup, "Pss:"),
        pss_anon: field_kib(&rollup, "Pss_Anon:"),
        pss_file: field_kib(&rollup, "Pss_File:"),
    }
}

fn field_kib(text: &str, field: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
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
