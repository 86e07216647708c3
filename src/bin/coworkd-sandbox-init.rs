//! `coworkd-sandbox-init`: the sandbox's confinement stage, exec'd once per command
//! by the sandbox (see src/sandbox/init.rs). A binary of its own so that it links
//! nothing of the keystore's TPM stack: each sandboxed command pays no dynamic
//! loading of libtss2/libcrypto. `coworkd sandbox init` is the same code, used
//! when this binary is not installed beside coworkd.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(u8::try_from(cowork::sandbox::init_main()).unwrap_or(125))
}
