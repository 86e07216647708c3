//! `coworkd sandbox exec` (a debugging and test entry that runs one command through
//! exactly the daemon's code path) and the hidden `coworkd sandbox init` stage.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::settings::SandboxSettings;
use super::spec::RunSpec;

/// `coworkd sandbox ...` subcommands (the lead wires this enum into coworkd's CLI).
#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Run one command in the sandbox and exit with its status (124 on timeout).
    Exec(ExecArgs),
    /// Internal: the confinement stage, spawned by the executor itself.
    #[command(hide = true)]
    Init,
}

/// Arguments of `coworkd sandbox exec`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Host directory mounted read-write at /workspace.
    #[arg(long)]
    pub workspace: PathBuf,
    /// Keep the host network (default: none).
    #[arg(long)]
    pub allow_network: bool,
    /// Wall-clock timeout in seconds (default 60).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<u64>,
    /// Process limit.
    #[arg(long)]
    pub pids: Option<u64>,
    /// Cap on captured stdout and on stderr, each, in bytes.
    #[arg(long)]
    pub output_cap: Option<usize>,
    /// Refuse to run if any mechanism is missing (production behaviour).
    #[arg(long)]
    pub require_full_isolation: bool,
    /// Print the isolation report to stderr after the command's output.
    #[arg(long)]
    pub report: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Runs `coworkd sandbox <cmd>`; returns the process exit code.
pub fn dispatch(cmd: SandboxCommand) -> i32 {
    match cmd {
        SandboxCommand::Exec(args) => exec_cli(args),
        SandboxCommand::Init => super::init::init_main(),
    }
}

/// The workspace must be a directory the command's user may enter, read and
/// write: otherwise the command fails with a bare "Permission denied" from
/// inside the sandbox. Says what is wrong and how to fix it.
fn check_workspace(dir: &std::path::Path, settings: &SandboxSettings) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // The rules every run applies first (absolute, not a system directory...).
    let dir = super::spec::validate_workspace(dir, settings).map_err(|e| crate::error_chain(&e))?;
    let shown = dir.display();
    let meta = std::fs::metadata(&dir).map_err(|e| {
        format!(
            "the workspace {shown} cannot be used: {}",
            crate::plain(&e.to_string())
        )
    })?;
    if !meta.is_dir() {
        return Err(format!("the workspace {shown} is not a directory"));
    }
    let (uid, gid, _) = super::parent::resolve_identity(settings)
        .map_err(|e| format!("finding the sandbox user: {}", crate::error_chain(&e)))?;
    let mode = meta.mode() & 0o7777;
    let bits = if meta.uid() == uid {
        (mode >> 6) & 0o7
    } else if meta.gid() == gid {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    if bits == 0o7 {
        return Ok(());
    }
    Err(format!(
        "the workspace {shown} (owner uid {}, group gid {}, mode {mode:04o}) cannot be entered, read and written by uid {uid}, which the sandbox runs the command as; \
         make that user its owner (chown {uid}:{gid} {shown}) or give it a directory it owns",
        meta.uid(),
        meta.gid()
    ))
}

fn print_error(e: &dyn std::error::Error) {
    eprintln!("coworkd sandbox exec: {}", crate::error_chain(e));
}

/// `coworkd sandbox exec`: prints the command's stdout/stderr to ours and exits with
/// its status (124 on timeout, 128+N for signal N, 125 when the sandbox itself failed).
pub fn exec_cli(args: ExecArgs) -> i32 {
    let settings = SandboxSettings {
        require_full_isolation: args.require_full_isolation,
        ..SandboxSettings::default()
    };
    let Some((program, rest)) = args.command.split_first() else {
        eprintln!("coworkd sandbox exec: no command given");
        return 125;
    };
    let mut spec = RunSpec::new(
        program.clone(),
        rest.to_vec(),
        args.workspace.clone(),
        &settings,
    );
    spec.allow_network = args.allow_network;
    if let Some(t) = args.timeout {
        if !(t.is_finite() && t > 0.0 && t <= settings.max_timeout_secs as f64) {
            eprintln!(
                "coworkd sandbox exec: --timeout must be in (0, {}] seconds",
                settings.max_timeout_secs
            );
            return 125;
        }
        spec.timeout = Duration::from_secs_f64(t);
    }
    if let Some(m) = args.memory {
        spec.memory_bytes = m;
    }
    if let Some(p) = args.pids {
        spec.max_pids = p;
    }
    if let Some(c) = args.output_cap {
        spec.output_cap = c;
    }
    if let Err(problem) = check_workspace(&args.workspace, &settings) {
        eprintln!("coworkd sandbox exec: {problem}");
        return 125;
    }
    let self_exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            print_error(&e);
            return 125;
        }
    };
    match super::run(&spec, &settings, &self_exe) {
        Ok(outcome) => {
            let _ = std::io::stdout().write_all(&outcome.stdout);
            let _ = std::io::stdout().flush();
            let mut err = std::io::stderr();
            let _ = err.write_all(&outcome.stderr);
            if outcome.stdout_truncated {
                let _ = writeln!(
                    err,
                    "[coworkd sandbox: stdout truncated at {} bytes]",
                    spec.output_cap
                );
            }
            if outcome.stderr_truncated {
                let _ = writeln!(
                    err,
                    "[coworkd sandbox: stderr truncated at {} bytes]",
                    spec.output_cap
                );
            }
            if outcome.status == super::ExitKind::TimedOut {
                let _ = writeln!(err, "[coworkd sandbox: timed out after {:?}]", spec.timeout);
            }
            if args.report {
                let _ = write!(err, "{}", outcome.isolation);
                let _ = writeln!(err, "report-json: {}", outcome.isolation.to_json());
            }
            outcome.status.code()
        }
        Err(e) => {
            print_error(&e);
            125
        }
    }
}
