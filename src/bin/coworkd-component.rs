//! `coworkd-component NAME`: one component of the appliance (audit, sandbox,
//! gateway, admin), started by the supervisor (the sandbox, on the appliance, by
//! its own systemd unit). A binary of its own so that no
//! component process maps the keystore's TPM stack (libtss2, libcrypto): only the
//! supervisor talks to the TPM. `coworkd component NAME` is the same code, used
//! when this binary is not installed beside coworkd.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cowork::ipc::Component;
use cowork::logging::LogTarget;
use cowork::paths::Paths;

#[derive(Debug, Parser)]
#[command(
    name = "coworkd-component",
    version,
    about = "One CoWork OS component (started by coworkd)"
)]
struct Args {
    #[arg(value_parser = parse_component)]
    name: Component,
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    state_dir: PathBuf,
    /// The appliance's runtime directory: every component's socket is reached
    /// under it.
    #[arg(long)]
    runtime_dir: PathBuf,
    /// Serve this component's own socket in DIR instead of RUNTIME_DIR/NAME/
    /// (the sandbox's own unit: its RuntimeDirectory, /run/cowork-sandbox/sandbox).
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "stderr")]
    log: LogTarget,
    /// Sandbox only: systemd delegated this process's cgroup to it (the
    /// sandbox's own unit, cowork-sandbox.service); per-command cgroups are made
    /// inside it.
    #[arg(long)]
    delegated_cgroup: bool,
    /// A pipe from the supervisor: when it closes, exit at once.
    #[arg(long, value_name = "FD")]
    lifeline_fd: Option<i32>,
}

fn parse_component(s: &str) -> Result<Component, String> {
    Component::from_name(s)
        .ok_or_else(|| format!("unknown component {s:?} (audit, sandbox, gateway, admin)"))
}

fn main() -> ExitCode {
    // The sandbox's fallback confinement stage is `<self> sandbox init`.
    if cowork::sandbox::is_init_invocation(std::env::args_os()) {
        return ExitCode::from(u8::try_from(cowork::sandbox::init_main()).unwrap_or(125));
    }
    let args = Args::parse();
    let paths = Paths::new(args.config, args.state_dir, args.runtime_dir)
        .with_own_socket_dir(args.socket_dir);
    match cowork::component::run(
        args.name,
        paths,
        args.log,
        args.delegated_cgroup,
        args.lifeline_fd,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coworkd-component {}: {e:#}", args.name.name());
            ExitCode::from(1)
        }
    }
}
