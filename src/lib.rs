//! The CoWork OS appliance firmware: one crate with four binaries: `coworkd`
//! (the supervisor, and each privilege-separated component as `coworkd
//! component NAME`), `coworkd-tpm` (the short-lived helper that alone links the
//! TPM stack), `coworkd-sandbox-init` (a sandboxed command's confinement stage)
//! and the admin CLI `coworkctl`. The modules and
//! processes: `docs/architecture.md`.

pub mod admin;
pub mod agent;
pub mod audit;
pub mod component;
pub mod config;
pub mod doctor;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod guard;
pub mod ipc;
pub mod keystore;
pub mod logging;
pub mod net;
pub mod paths;
pub mod privs;
pub mod sandbox;
pub mod schema;
pub mod supervisor;
pub mod update;

/// The version reported by `coworkctl status` and the admin page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An error and its sources on one line (`a: b: c`), for logs and messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = plain(&e.to_string()).to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(plain(&s.to_string()));
        source = s.source();
    }
    text
}

/// A command line clap refuses: EX_USAGE, apart from every exit code the
/// binaries give a meaning of their own.
pub const EXIT_USAGE: u8 = 64;

/// The command line of `coworkd` or `coworkctl`, or the exit code to end with
/// after clap has printed why: `--help` and `--version` are a success, a
/// command line it refuses is [`EXIT_USAGE`].
pub fn parse_args<A: clap::Parser>() -> Result<A, std::process::ExitCode> {
    A::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            std::process::ExitCode::from(EXIT_USAGE)
        } else {
            std::process::ExitCode::SUCCESS
        }
    })
}

/// `1 secret`, `2 secrets`: a count with its noun, for messages people read.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// An error's text without the `(os error N)` the standard library appends to
/// system errors: people read "Connection refused", not errno numbers.
pub fn plain(message: &str) -> &str {
    match message.rfind(" (os error ") {
        Some(at) if message.ends_with(')') => &message[..at],
        _ => message,
    }
}
