//! A test whose prerequisite is missing says so and is counted; it never
//! passes silently. Each skip is printed (`SKIPPED: test: why`) and appended
//! to `$CARGO_TARGET_TMPDIR/skipped.log`, which `make test` counts and lists.
#![allow(dead_code)]

use std::io::Write;

/// Whose job the missing prerequisite is.
pub enum Missing {
    /// `make test` provides it (a package it installs, or root, which CI
    /// has): under `CI=true` its absence fails the test.
    ProvidedByMakeTest,
    /// The host decides (IPv6 loopback switched off in the kernel): a skip
    /// wherever it happens.
    Host,
}

/// Records that `test` did not run because of `why`. Panics instead under
/// `CI=true` when `make test` should have provided what is missing.
pub fn skip(test: &str, why: &str, missing: Missing) {
    let line = format!("SKIPPED: {test}: {why}");
    if matches!(missing, Missing::ProvidedByMakeTest)
        && std::env::var("CI").is_ok_and(|v| v == "true")
    {
        panic!("{line} (CI=true: `make test` provides this, so its absence is a failure)");
    }
    println!("{line}");
    eprintln!("{line}");
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.log");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        panic!(
            "{line} (and recording the skip in {} failed: {e})",
            log.display()
        );
    }
}

/// Whether this process runs as root (what network namespaces, chown and the
/// update writer need).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
