//! `coworkd-sandbox-init`: the sandbox's confinement stage, exec'd once per command
//! by the sandbox (see src/sandbox/init.rs). A small binary of its own so that
//! each sandboxed command maps and relocates under 1 MB instead of all of
//! `coworkd`. `coworkd sandbox init` is the same code, used when this binary is
//! not installed beside coworkd.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(u8::try_from(cowork::sandbox::init_main()).unwrap_or(125))
}
