//! The CoWork OS appliance firmware: one crate, one binary `coworkd` that is both the
//! supervisor and (re-executed as `coworkd component NAME`) each privilege-separated
//! component, plus the admin CLI `coworkctl`. See ARCHITECTURE.md for the picture.

pub mod admin;
pub mod agent;
pub mod audit;
pub mod component;
pub mod config;
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
pub mod supervisor;
pub mod update;

/// The version reported by `coworkctl status` and the admin page.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An error and its sources on one line (`a: b: c`), for logs and messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
