//! Confinement mechanisms, one small function per mechanism. `init.rs` runs them in
//! the fixed order documented there.

pub mod env;
pub mod fds;
pub mod identity;
pub mod landlock;
pub mod mounts;
pub mod namespaces;
pub mod rlimits;
pub mod seccomp;
pub mod sys;
