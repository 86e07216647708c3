//! `coworkd`: the supervisor, and each component when re-executed as
//! `coworkd component NAME`. This file only parses arguments, calls `run`, prints
//! the error chain and exits with a code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cowork::ipc::Component;
use cowork::logging::LogTarget;
use cowork::paths::{DEFAULT_CONFIG, DEFAULT_RUNTIME_DIR, DEFAULT_STATE_DIR, Paths};

/// `coworkd --help`: what each exit status means.
const EXIT_CODES: &str = "\
Exit codes:
  0    stopped cleanly; `check-config`: the image's files are valid;
       `update verify`: the bundle is valid
  1    failed to start or failed (the message says why; another coworkd on the
       same directories, a bad configuration); `check-config`: problems found;
       `update verify`: refused
  64   usage error (unknown command or option, missing argument)
`sandbox exec` exits with the command's status, 124 when it timed out, 128+N
when signal N ended it, 125 when the sandbox itself failed (the workspace, the
isolation), 126 when the program cannot be executed, 127 when it is not found.";

/// `coworkd --version`; a test build says so, and image/build.sh refuses it.
const VERSION: &str = if cfg!(feature = "state-db-before-newest") {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (test build: state.db before its newest step)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

#[derive(Debug, Parser)]
#[command(
    name = "coworkd",
    version = VERSION,
    about = "CoWork OS appliance supervisor",
    after_help = EXIT_CODES
)]
struct Args {
    /// Configuration file; drop-ins are read from FILE.d/*.toml.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Persistent state (databases, keys).
    #[arg(long, global = true, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Sockets and other runtime files.
    #[arg(long, global = true, default_value = DEFAULT_RUNTIME_DIR)]
    runtime_dir: PathBuf,
    /// Executable to start for components (testing aid; default: this binary).
    #[arg(long, hide = true)]
    component_exe: Option<PathBuf>,
    /// The sandbox runs as a systemd unit of its own and serves its socket in
    /// DIR (the appliance: /run/cowork-sandbox/sandbox); the supervisor watches
    /// it instead of spawning it.
    #[arg(long, value_name = "DIR")]
    external_sandbox: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one component (started by the supervisor, not by hand).
    #[command(hide = true)]
    Component {
        #[arg(value_parser = parse_component)]
        name: Component,
        #[arg(long, value_enum, default_value = "stderr")]
        log: LogTarget,
        /// Sandbox only: systemd delegated this process's cgroup to it (the
        /// sandbox's own unit); per-command cgroups are made inside it.
        #[arg(long)]
        delegated_cgroup: bool,
        /// A pipe from the supervisor: when it closes, exit at once.
        #[arg(long, value_name = "FD")]
        lifeline_fd: Option<i32>,
        /// Serve this component's own socket in DIR instead of RUNTIME_DIR/NAME/
        /// (the sandbox's own unit); peers are still reached under --runtime-dir.
        #[arg(long, value_name = "DIR")]
        socket_dir: Option<PathBuf>,
    },
    /// Run commands in the sandbox without the daemon (operators, tests, benchmarks).
    Sandbox {
        #[command(subcommand)]
        cmd: cowork::sandbox::SandboxCommand,
    },
    /// Signed image updates (offline).
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Check a configuration file, its drop-ins and the owner's settings
    /// ($STATE/settings/owner.toml); print every problem as
    /// FILE:LINE:COLUMN: MESSAGE and exit 1 if the image's files have any.
    /// Owner settings that do not validate are reported and left out (coworkd
    /// starts without them, so the admin page can fix them).
    CheckConfig {
        /// Defaults to --config.
        path: Option<PathBuf>,
        /// Print every value with the file that set it.
        #[arg(long)]
        origins: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UpdateCommand {
    /// Verify a bundle's signature, version and payload; exit 0 valid, 1 refused.
    Verify(cowork::update::cli::VerifyArgs),
    /// The update writer: one request on the connection systemd hands over as
    /// stdin (cowork-update.socket), from root only.
    #[command(hide = true)]
    Serve,
}

fn parse_component(s: &str) -> Result<Component, String> {
    Component::from_name(s)
        .ok_or_else(|| format!("unknown component {s:?} (audit, sandbox, gateway, admin)"))
}

fn absolute_paths(args: &Args) -> std::io::Result<Paths> {
    Ok(Paths::new(
        std::path::absolute(&args.config)?,
        std::path::absolute(&args.state_dir)?,
        std::path::absolute(&args.runtime_dir)?,
    ))
}

fn main() -> ExitCode {
    // `coworkd sandbox init` runs once per sandboxed command: dispatch it before
    // building the argument parser (measurable on the spawn path).
    if cowork::sandbox::is_init_invocation(std::env::args_os()) {
        return exit_code(cowork::sandbox::init_main());
    }
    let args: Args = match cowork::parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    // Components start in `/`: every path they are handed must be absolute.
    let paths = match absolute_paths(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coworkd: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match args.command {
        None => cowork::supervisor::run(cowork::supervisor::Options {
            paths,
            component_exe: args.component_exe,
            external_sandbox: args.external_sandbox,
        }),
        Some(Command::Component {
            name,
            log,
            delegated_cgroup,
            lifeline_fd,
            socket_dir,
        }) => cowork::component::run(
            name,
            paths.with_own_socket_dir(socket_dir),
            log,
            delegated_cgroup,
            lifeline_fd,
        ),
        Some(Command::Sandbox { cmd }) => return exit_code(cowork::sandbox::dispatch(cmd)),
        Some(Command::Update(UpdateCommand::Verify(a))) => {
            return exit_code(cowork::update::cli::verify_cli(&a));
        }
        Some(Command::Update(UpdateCommand::Serve)) => match cowork::config::load(&args.config) {
            Ok(config) => {
                let _log =
                    cowork::logging::init("update-writer", config.log.level, LogTarget::detect());
                cowork::update::writer::serve_stdin(config.update)
            }
            Err(e) => Err(anyhow::anyhow!("{e}")),
        },
        Some(Command::CheckConfig { path, origins }) => {
            let path = path.unwrap_or(args.config);
            let owner = paths.owner_settings();
            return match cowork::config::load_layers(&path, &owner) {
                Ok(loaded) => {
                    println!("{}: ok", path.display());
                    match &loaded.owner {
                        cowork::config::OwnerState::Absent => {}
                        cowork::config::OwnerState::Applied => {
                            println!("{}: ok", owner.display())
                        }
                        cowork::config::OwnerState::Refused(e) => {
                            eprintln!(
                                "{}: NOT APPLIED (coworkd runs without the owner's settings until they are fixed):\n{e}",
                                owner.display()
                            );
                        }
                    }
                    if origins {
                        print_origins(&loaded);
                    }
                    // Still 0: coworkd.service's ExecStartPre gates the start on
                    // the image's files only.
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coworkd: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `check-config --origins`: every running value and the file that set it.
fn print_origins(loaded: &cowork::config::Loaded) {
    let values = toml::Value::try_from(&loaded.config)
        .map(|v| cowork::config::owner::flatten(&v))
        .unwrap_or_default();
    for (key, value) in values {
        println!("{key} = {value}  # {}", loaded.origin(&key));
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
