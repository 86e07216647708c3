//! Time to spawn /bin/true through the full sandbox (`run`), beside plain fork/exec
//! and bubblewrap with all namespaces, measured in the same run. Prints median and p95.
//! Run with: cargo bench --bench sandbox_spawn   (ITERATIONS env var overrides 200)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cowork::sandbox::{ExitKind, RunSpec, SandboxSettings, run};

fn measure(n: usize, mut f: impl FnMut() -> bool) -> Option<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        if !f() {
            return None;
        }
        v.push(t.elapsed());
    }
    v.sort_unstable();
    Some(v)
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn quiet(c: &mut Command) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let n: usize = std::env::var("ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let ws = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(ws.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let settings = SandboxSettings::default();
    let spec = RunSpec::new("/bin/true", vec![], ws.path(), &settings);
    let exe = Path::new(env!("CARGO_BIN_EXE_coworkd"));
    // Warm up caches once each.
    let first = run(&spec, &settings, exe).expect("sandbox run");
    assert_eq!(first.status, ExitKind::Exited(0));
    println!("{}", first.isolation);

    let mut rows: Vec<(&str, Option<Vec<Duration>>)> = Vec::new();
    rows.push((
        "fork/exec /bin/true",
        measure(n, || quiet(&mut Command::new("/bin/true"))),
    ));
    let bwrap_args = [
        "--unshare-all",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "/bin/true",
    ];
    rows.push((
        "bwrap --unshare-all",
        measure(n, || quiet(Command::new("bwrap").args(bwrap_args))),
    ));
    rows.push((
        "sandbox run() /bin/true",
        measure(n, || {
            run(&spec, &settings, exe).is_ok_and(|o| o.status == ExitKind::Exited(0))
        }),
    ));
    let no_cg = SandboxSettings {
        cgroup_root: "/nonexistent-cgroup-root".into(),
        ..SandboxSettings::default()
    };
    rows.push((
        "  same, cgroup disabled",
        measure(n, || {
            run(&spec, &no_cg, exe).is_ok_and(|o| o.status == ExitKind::Exited(0))
        }),
    ));
    println!("{n} iterations each");
    println!("{:<26} {:>10} {:>10}", "method", "median ms", "p95 ms");
    for (name, v) in rows {
        match v {
            Some(v) => println!(
                "{:<26} {:>10.2} {:>10.2}",
                name,
                pct(&v, 0.5),
                pct(&v, 0.95)
            ),
            None => println!("{name:<26} {:>10} {:>10}", "n/a", "n/a"),
        }
    }
}
