//! `coworkctl`: the admin CLI. Talks to the supervisor's control socket; only root
//! or members of group cowork-admin get in. Every command that prints data takes
//! `--json`. Exit codes ([`EXIT_CODES`]): 0 ok/healthy, 1 degraded or refused,
//! 2 daemon unreachable, 64 usage error.

mod access;
mod doctor;
mod settings;
mod tasks;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use access::print_json;
use clap::{Parser, Subcommand};
use cowork::ipc::{Client, ControlRequest, ControlResponse, Role, StatusReport};
use cowork::paths::{DEFAULT_RUNTIME_DIR, Paths};

#[derive(Debug, Parser)]
#[command(
    name = "coworkctl",
    version,
    about = "Manage a CoWork OS appliance",
    after_help = EXIT_CODES
)]
struct Args {
    /// The runtime directory of the coworkd instance to talk to.
    #[arg(long, global = true, default_value = DEFAULT_RUNTIME_DIR)]
    runtime_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Version, uptime, components, keystore tier. Exit 0 healthy, 1 degraded,
    /// 2 unreachable.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Read the configuration again and apply it (like SIGHUP): components
    /// whose settings changed are restarted; prints what changed.
    Reload,
    /// The owner's settings ($STATE/settings/owner.toml): show, set, unset.
    Settings {
        #[command(subcommand)]
        command: settings::SettingsCommand,
    },
    /// Secrets in the vault (LLM API keys, channel tokens, signing secrets).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Command guardrails.
    Guard {
        #[command(subcommand)]
        command: GuardCommand,
    },
    /// The channel kinds this build knows (no daemon needed).
    Channels {
        #[command(subcommand)]
        command: ChannelsCommand,
    },
    /// Pairing codes for messaging channels.
    Pair {
        #[command(subcommand)]
        command: access::PairCommand,
    },
    /// Who may use the assistant on each channel.
    Users {
        #[command(subcommand)]
        command: access::UsersCommand,
    },
    /// The LAN admin page: fingerprint, setup token, certificate rotation.
    Admin {
        #[command(subcommand)]
        command: access::AdminCommand,
    },
    /// Signed image updates: status, apply, and pack (for release builds).
    Update {
        #[command(subcommand)]
        command: UpdateCommand,
    },
    /// Talk to the assistant on the local channel: one message, or lines from
    /// standard input. Pairing rules apply as on every channel. Waits for the
    /// agent's replies until its task ends or waits for an approval.
    Chat {
        /// Print the acknowledgement only; do not wait for the agent.
        #[arg(long)]
        no_wait: bool,
        /// Send nothing: print the replies waiting for you (waiting while a
        /// task of yours still runs).
        #[arg(long, conflicts_with = "message")]
        inbox: bool,
        /// Print {"replies": [...]} once every reply has arrived.
        #[arg(long)]
        json: bool,
        message: Vec<String>,
    },
    /// The security checklist: one line per check (ok, warn, fail), what was
    /// found and what fixes it. Exit 0 all ok, 1 a warn, 2 a fail.
    Doctor {
        #[arg(long)]
        json: bool,
        /// Apply the safe, reversible fixes (group tools denied, mentions
        /// required in groups, debug logging off), each after a confirmation;
        /// never credentials or listen addresses.
        #[arg(long, conflicts_with = "json")]
        fix: bool,
        /// With --fix: apply without asking.
        #[arg(long, requires = "fix")]
        yes: bool,
    },
    /// The agent's tasks: list, show, cancel, resume.
    Tasks {
        #[command(subcommand)]
        command: tasks::TasksCommand,
    },
    /// Approval requests of the agent's commands: list, approve, deny.
    Approvals {
        #[command(subcommand)]
        command: tasks::ApprovalsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UpdateCommand {
    /// Running slot and version, the other slot's version and state, the last
    /// attempt and its result (and, after a fallback, why).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Verify a bundle (a file, or an https:// URL the appliance downloads) and
    /// write it to the inactive slot, bootable on trial (3 tries); the running
    /// slot is not touched.
    Apply {
        bundle: String,
        #[arg(long)]
        json: bool,
    },
    /// Fetch the signed update feed ([update] feed_url) and say whether a newer
    /// version is offered. Exit 0 up to date, 1 an update is available, 2 the
    /// check failed (the reason: expired, unsigned, replayed, unreachable).
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Pack and sign a bundle (release builds; needs no daemon).
    Pack(cowork::update::cli::PackArgs),
    /// Write the signed feed offering BUNDLEs into a directory a web server
    /// serves (release builds; needs no daemon).
    Publish(cowork::update::cli::PublishArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// The latest entries; -f keeps following new ones.
    Tail {
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only kinds starting with this (e.g. `command.` or `secret.stored`).
        #[arg(long)]
        kind: Option<String>,
        /// Only entries at or after this RFC 3339 time (e.g. 2026-11-28T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// How many of the latest entries to show first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        #[arg(long)]
        json: bool,
    },
    /// Check the chain, checkpoints and anchor. Exit 0 intact, 1 tampered (the first
    /// bad sequence number is printed), 2 unreadable. With --db, works offline on a
    /// copy (checkpoint MACs are then not checked: the key never leaves the daemon).
    Verify {
        #[arg(long)]
        db: Option<PathBuf>,
        /// The anchor file to compare against (offline; default: audit.anchor beside the db).
        #[arg(long)]
        anchor: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Every entry, oldest first.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Store a secret. The value is read from standard input (or asked for, without
    /// echo, on a terminal); never give it as an argument.
    Set {
        name: String,
    },
    /// Names, versions and last change; never values.
    List {
        #[arg(long)]
        json: bool,
    },
    Delete {
        name: String,
    },
    /// Generate a new master key and re-wrap every secret under it. Pairing
    /// codes issued before are cancelled (they were hashed with a key derived
    /// from the old one): the answer says how many; issue new ones.
    RotateMaster {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ChannelsCommand {
    /// Each platform with its transports, their settings and the vault
    /// secrets they need.
    Kinds {
        #[arg(long)]
        json: bool,
    },
    /// Confirm a sender's safety number on a Signal channel (after comparing
    /// it with the person, in person or on a call). A sender whose number
    /// changed is paused until this is run; it resumes them.
    Trust {
        /// The channel's name in [channels].
        channel: String,
        /// The sender's ACI (a UUID, as the audit entry and settings page show it).
        sender: String,
        /// The 60-digit safety number (spaces allowed).
        safety_number: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum GuardCommand {
    /// Judge a command string as the agent's guardrails would: prints the decision
    /// (allow, ask, block), the rule that decided and why. Needs no daemon. Exit 0
    /// whatever the decision; 2 when the configuration is bad.
    Check {
        /// Configuration to take [guard] rules from (default: /etc/cowork/coworkd.toml
        /// if it exists, else the built-in rules alone).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// The command line, as one argument after `--`.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
}

/// `coworkctl --help`: what every command's exit status means.
const EXIT_CODES: &str = "\
Exit codes:
  0   done; `status`: healthy
  1   refused or failed (the message says why); `status`: degraded or starting;
      `audit verify`: tampered (the first bad sequence number is printed);
      `doctor`: a check warns
  2   coworkd unreachable (not running, wrong --runtime-dir, no permission);
      `audit verify`: unreadable; `guard check`: bad configuration;
      `doctor`: a check fails
  64  usage error (unknown command or option, missing argument)
`guard check` and `update pack` need no daemon; `guard check` exits 0 whatever
the decision. Every command that prints data takes --json; times in JSON are
RFC 3339, UTC.";

/// How long any command tries to reach coworkd before saying it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const EXIT_DEGRADED: u8 = 1;
const EXIT_UNREACHABLE: u8 = 2;

fn main() -> ExitCode {
    let args: Args = match cowork::parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Command::Guard {
        command:
            GuardCommand::Check {
                config,
                json,
                command,
            },
    } = &args.command
    {
        return guard_check(config.as_deref(), *json, &command.join(" "));
    }
    if let Command::Audit {
        command:
            AuditCommand::Verify {
                db: Some(db),
                anchor,
                json,
            },
    } = &args.command
    {
        return audit_verify_offline(db, anchor.as_deref(), *json);
    }
    if let Command::Channels {
        command: ChannelsCommand::Kinds { json },
    } = &args.command
    {
        return channel_kinds(*json);
    }
    if let Command::Update {
        command: UpdateCommand::Pack(a),
    } = &args.command
    {
        return ExitCode::from(u8::try_from(cowork::update::cli::pack_cli(a)).unwrap_or(1));
    }
    if let Command::Update {
        command: UpdateCommand::Publish(a),
    } = &args.command
    {
        return ExitCode::from(u8::try_from(cowork::update::cli::publish_cli(a)).unwrap_or(1));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coworkctl: starting the async runtime: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let socket = Paths::new(PathBuf::new(), PathBuf::new(), args.runtime_dir).control_socket();
    // Every command gives up connecting after CONNECT_TIMEOUT; long operations
    // (update apply, audit verify) wait long only for the answer.
    let client: Client<ControlRequest, ControlResponse> =
        Client::new(&socket, Role::Ctl, Duration::from_secs(5))
            .with_connect_timeout(CONNECT_TIMEOUT);
    runtime.block_on(async {
        match args.command {
            Command::Status { json } => status(&client, json).await,
            Command::Doctor { json, fix, yes } => doctor::doctor(&client, json, fix, yes).await,
            Command::Channels {
                command:
                    ChannelsCommand::Trust {
                        channel,
                        sender,
                        safety_number,
                    },
            } => access::trust(&client, channel, sender, safety_number.concat()).await,
            Command::Guard { .. } | Command::Channels { .. } => ExitCode::SUCCESS,
            Command::Secret { command } => secret(&client, command).await,
            Command::Audit { command } => audit(&client, command).await,
            Command::Pair { command } => access::pair(&client, command).await,
            Command::Users { command } => access::users(&client, command).await,
            Command::Chat {
                message,
                no_wait,
                inbox,
                json,
            } => access::chat(&client, message, !no_wait, inbox, json).await,
            Command::Tasks { command } => tasks::tasks(&client, command).await,
            Command::Approvals { command } => tasks::approvals(&client, command).await,
            Command::Admin { command } => access::admin(&client, command).await,
            Command::Update { command } => update(&client, command).await,
            Command::Settings { command } => settings::settings(&client, command).await,
            Command::Reload => match client
                .call_with_timeout(ControlRequest::Reload, settings::APPLY_TIMEOUT)
                .await
            {
                Ok(ControlResponse::Reloaded(report)) => {
                    println!("configuration reloaded: {}", report.summary());
                    ExitCode::SUCCESS
                }
                Ok(ControlResponse::Error(e)) => {
                    eprintln!("coworkctl: reload refused:\n{}", e.message);
                    ExitCode::from(1)
                }
                Ok(other) => unexpected(&other),
                Err(e) => unreachable_daemon(&e),
            },
        }
    })
}

async fn status(client: &Client<ControlRequest, ControlResponse>, json: bool) -> ExitCode {
    let report = match client.call(ControlRequest::Status).await {
        Ok(ControlResponse::Status(r)) => r,
        Ok(ControlResponse::Error(e)) => {
            eprintln!("coworkctl: {}", e.message);
            return ExitCode::from(EXIT_UNREACHABLE);
        }
        Ok(other) => return unexpected(&other),
        Err(e) => return unreachable_daemon(&e),
    };
    if json {
        print_json(&report);
    } else {
        print_status(&report);
    }
    if report.degraded || !report.ready {
        ExitCode::from(EXIT_DEGRADED)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_status(r: &StatusReport) {
    let health = if r.degraded {
        "DEGRADED"
    } else if r.ready {
        "healthy"
    } else {
        "starting"
    };
    println!(
        "coworkd {} ({} profile), pid {}, up {}s: {health}",
        r.version, r.profile, r.pid, r.uptime_secs
    );
    for why in &r.degraded_because {
        println!("DEGRADED: {why}");
    }
    println!("keystore: {}", r.keystore);
    println!("cgroups: {}", r.cgroups);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    match r.disk.free_bytes {
        Some(free) if r.disk.low() => println!(
            "disk: {} free, under the {} reserve: workspaces may not grow until files are deleted",
            mib(free),
            mib(r.disk.reserve_bytes)
        ),
        Some(free) => println!(
            "disk: {} free ({} kept in reserve)",
            mib(free),
            mib(r.disk.reserve_bytes)
        ),
        None => println!("disk: free space unknown"),
    }
    println!(
        "{:<10} {:<13} {:>8} {:>9} {:>7} {:>10}  user",
        "component", "state", "pid", "restarts", "recent", "backoff"
    );
    for c in &r.components {
        let pid = c.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
        println!(
            "{:<10} {:<13} {:>8} {:>9} {:>7} {:>8}ms  {}",
            c.component.name(),
            format!("{:?}", c.state).to_lowercase(),
            pid,
            c.restarts,
            c.recent_restarts,
            c.backoff_ms,
            c.user
        );
    }
    for c in &r.components {
        if let Some(summary) = &c.summary {
            println!("{}: {summary}", c.component.name());
        }
    }
    for store in &r.stores {
        println!(
            "store {}: schema {} ({})",
            store.name, store.schema, store.file
        );
    }
}

async fn secret(
    client: &Client<ControlRequest, ControlResponse>,
    command: SecretCommand,
) -> ExitCode {
    let request = match command {
        SecretCommand::Set { name } => match read_secret_value(&name) {
            Ok(value) => ControlRequest::SecretSet { name, value },
            Err(e) => {
                eprintln!("coworkctl secret set: {e}");
                return ExitCode::from(1);
            }
        },
        SecretCommand::List { json } => {
            return match client.call(ControlRequest::SecretList).await {
                Ok(ControlResponse::Secrets(list)) => {
                    if json {
                        print_json(&list);
                    } else if list.is_empty() {
                        println!("no secrets stored");
                    } else {
                        println!("{:<32} {:>7}  updated", "name", "version");
                        for s in list {
                            println!("{:<32} {:>7}  {}", s.name, s.version, s.updated_at);
                        }
                    }
                    ExitCode::SUCCESS
                }
                Ok(other) => refused("secret list", &other),
                Err(e) => unreachable_daemon(&e),
            };
        }
        SecretCommand::Delete { name } => ControlRequest::SecretDelete { name },
        SecretCommand::RotateMaster { json } => {
            return match client
                .call_with_timeout(ControlRequest::SecretRotateMaster, Duration::from_secs(60))
                .await
            {
                Ok(ControlResponse::Rotated {
                    secrets,
                    pairing_codes_cancelled,
                }) => {
                    if json {
                        print_json(&serde_json::json!({
                            "secrets": secrets,
                            "pairing_codes_cancelled": pairing_codes_cancelled,
                        }));
                    } else {
                        let mut line = format!(
                            "master key rotated; {} re-wrapped",
                            cowork::plural(secrets as u64, "secret", "secrets")
                        );
                        match pairing_codes_cancelled {
                            Some(0) => {}
                            Some(n) => line.push_str(&format!(
                                "; {} cancelled (issued under the old key): issue new ones with `coworkctl pair new`",
                                cowork::plural(n, "pairing code", "pairing codes")
                            )),
                            None => line.push_str(
                                "; pairing codes issued before no longer work and could not be cancelled: run `coworkctl pair cancel --all` and issue new ones",
                            ),
                        }
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Ok(other) => refused("secret rotate-master", &other),
                Err(e) => unreachable_daemon(&e),
            };
        }
    };
    match client
        .call_with_timeout(request, Duration::from_secs(60))
        .await
    {
        Ok(ControlResponse::SecretStored { name, version }) => {
            println!("stored {name} (version {version})");
            ExitCode::SUCCESS
        }
        Ok(ControlResponse::Done) => {
            println!("deleted");
            ExitCode::SUCCESS
        }
        Ok(other) => refused("secret", &other),
        Err(e) => unreachable_daemon(&e),
    }
}

async fn audit(
    client: &Client<ControlRequest, ControlResponse>,
    command: AuditCommand,
) -> ExitCode {
    use cowork::ipc::AuditQuery;
    match command {
        AuditCommand::Tail {
            follow,
            kind,
            since,
            lines,
            json,
        } => {
            let mut query = AuditQuery {
                kind,
                since,
                after_seq: None,
                limit: lines,
            };
            loop {
                let entries = match client.call(ControlRequest::AuditTail(query.clone())).await {
                    Ok(ControlResponse::AuditEntries(e)) => e,
                    Ok(other) => return refused("audit tail", &other),
                    Err(e) => return unreachable_daemon(&e),
                };
                for e in &entries {
                    print_entry(e, json);
                }
                if !follow {
                    return ExitCode::SUCCESS;
                }
                // Follow: from the last seen entry on, oldest first.
                let last = entries
                    .last()
                    .map(|e| e.seq)
                    .or(query.after_seq)
                    .unwrap_or(0);
                query.after_seq = Some(last);
                query.limit = 1000;
                if entries.is_empty() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        AuditCommand::Verify { json, .. } => match client
            .call_with_timeout(ControlRequest::AuditVerify, Duration::from_secs(300))
            .await
        {
            Ok(ControlResponse::AuditVerified(v)) => {
                if json {
                    print_json(&v);
                } else if v.intact {
                    println!("intact: {} entries, last seq {}", v.entries, v.last_seq);
                } else {
                    println!("{}", v.detail);
                }
                match (v.intact, v.first_bad_seq) {
                    (true, _) => ExitCode::SUCCESS,
                    (false, Some(_)) => ExitCode::from(1),
                    (false, None) => ExitCode::from(2),
                }
            }
            Ok(other) => {
                refused("audit verify", &other);
                ExitCode::from(2)
            }
            Err(e) => unreachable_daemon(&e),
        },
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
        } => {
            let mut after = 0u64;
            loop {
                let query = AuditQuery {
                    kind: None,
                    since: None,
                    after_seq: Some(after),
                    limit: 1000,
                };
                let entries = match client.call(ControlRequest::AuditTail(query)).await {
                    Ok(ControlResponse::AuditEntries(e)) => e,
                    Ok(other) => return refused("audit export", &other),
                    Err(e) => return unreachable_daemon(&e),
                };
                let Some(last) = entries.last() else {
                    return ExitCode::SUCCESS;
                };
                after = last.seq;
                for e in &entries {
                    print_entry(e, true);
                }
            }
        }
    }
}

fn print_entry(e: &cowork::ipc::AuditEntry, json: bool) {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        let subject = if e.subject.is_empty() {
            String::new()
        } else {
            format!(" {}", e.subject)
        };
        println!(
            "{:>7} {} {:<8} {:<24} {}{} {}",
            e.seq, e.time, e.component, e.kind, e.actor, subject, e.payload
        );
    }
}

/// `coworkctl audit verify --db PATH`: no daemon, a copy is fine.
fn audit_verify_offline(
    db: &std::path::Path,
    anchor: Option<&std::path::Path>,
    json: bool,
) -> ExitCode {
    let default_anchor = db.with_file_name("audit.anchor");
    let anchor = anchor.or(default_anchor.exists().then_some(default_anchor.as_path()));
    let report = cowork::audit::verify(db, anchor, None);
    let code = cowork::audit::verify::exit_code(&report);
    match (&report, json) {
        (Ok(r), true) => println!(
            "{}",
            serde_json::json!({"exit": code, "verdict": r.to_string()})
        ),
        (Ok(r), false) => println!("{r}"),
        (Err(e), _) => eprintln!("coworkctl audit verify: {e}"),
    }
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// The value of a secret: from a pipe, or typed at a prompt with echo off.
fn read_secret_value(name: &str) -> Result<cowork::ipc::SecretBytes, String> {
    use std::io::{IsTerminal, Read};
    const MAX: usize = 64 * 1024;
    let stdin = std::io::stdin();
    let mut value = zeroize::Zeroizing::new(Vec::new());
    if stdin.is_terminal() {
        eprint!("value for {name} (not echoed): ");
        let line = read_without_echo().map_err(|e| format!("reading the value: {e}"))?;
        value.extend_from_slice(line.as_bytes());
        eprintln!();
    } else {
        stdin
            .lock()
            .take(MAX as u64 + 2)
            .read_to_end(&mut value)
            .map_err(|e| format!("reading the value from standard input: {e}"))?;
    }
    // One trailing newline is the shell's, not the secret's.
    if value.last() == Some(&b'\n') {
        value.pop();
        if value.last() == Some(&b'\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(
            "the value is empty (pipe it in, e.g. `coworkctl secret set NAME < file`)".to_string(),
        );
    }
    if value.len() > MAX {
        return Err(format!("the value is larger than {MAX} bytes"));
    }
    Ok(cowork::ipc::SecretBytes(std::mem::take(&mut *value)))
}

fn read_without_echo() -> std::io::Result<zeroize::Zeroizing<String>> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let mut line = zeroize::Zeroizing::new(String::new());
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    read.map(|_| line)
}

fn refused(what: &str, r: &ControlResponse) -> ExitCode {
    match r {
        ControlResponse::Error(e) => eprintln!("coworkctl {what}: {}", e.message),
        other => eprintln!("coworkctl {what}: unexpected answer: {other:?}"),
    }
    ExitCode::from(1)
}

fn guard_check(config: Option<&std::path::Path>, json: bool, command: &str) -> ExitCode {
    use cowork::guard::{Guard, GuardSettings, render_json, render_text};
    let default = std::path::Path::new(cowork::paths::DEFAULT_CONFIG);
    // With the owner's settings on this host (their trusted rules), as coworkd runs.
    let owner = Paths::new(
        PathBuf::new(),
        PathBuf::from(cowork::paths::DEFAULT_STATE_DIR),
        PathBuf::new(),
    )
    .owner_settings();
    let settings = match config {
        Some(path) => cowork::config::load_layers(path, &owner).map(|l| l.config.guard),
        None if default.exists() => {
            cowork::config::load_layers(default, &owner).map(|l| l.config.guard)
        }
        None => Ok(GuardSettings::default()),
    };
    let guard = match settings
        .map_err(|e| e.to_string())
        .and_then(|s| Guard::from_settings(&s).map_err(|e| e.to_string()))
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("coworkctl guard check: bad configuration:\n{e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let verdict = guard.check(command);
    if json {
        println!("{}", render_json(&verdict));
    } else {
        print!("{}", render_text(&verdict));
    }
    ExitCode::SUCCESS
}

fn unreachable_daemon(e: &cowork::ipc::IpcError) -> ExitCode {
    eprintln!("coworkctl: coworkd unreachable: {}", cowork::error_chain(e));
    ExitCode::from(EXIT_UNREACHABLE)
}

fn unexpected(r: &ControlResponse) -> ExitCode {
    eprintln!("coworkctl: unexpected answer from coworkd: {r:?}");
    ExitCode::from(EXIT_UNREACHABLE)
}

async fn update(
    client: &Client<ControlRequest, ControlResponse>,
    command: UpdateCommand,
) -> ExitCode {
    let (request, json) = match command {
        UpdateCommand::Status { json } => (ControlRequest::UpdateStatus, json),
        UpdateCommand::Apply { bundle, json } if cowork::update::download::is_url(&bundle) => {
            (ControlRequest::UpdateApply { path: bundle }, json)
        }
        UpdateCommand::Apply { bundle, json } => {
            match cowork::update::cli::absolute(Path::new(&bundle)) {
                Ok(p) => (
                    ControlRequest::UpdateApply {
                        path: p.display().to_string(),
                    },
                    json,
                ),
                Err(e) => {
                    eprintln!("coworkctl update apply: {bundle}: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        UpdateCommand::Check { json } => return update_check(client, json).await,
        UpdateCommand::Pack(_) | UpdateCommand::Publish(_) => return ExitCode::SUCCESS,
    };
    let apply = matches!(request, ControlRequest::UpdateApply { .. });
    // The connection is made within CONNECT_TIMEOUT; writing a slot may take long.
    match client
        .call_with_timeout(request, Duration::from_secs(3600))
        .await
    {
        Ok(ControlResponse::Update(v)) => {
            if json {
                print_json(&v);
            } else if apply {
                println!(
                    "update version {} written to slot {}; it boots on trial ({}) at the next restart",
                    v["version"],
                    v["slot"].as_str().unwrap_or("?"),
                    v["entry"].as_str().unwrap_or("")
                );
            } else {
                print_update_status(&v);
            }
            ExitCode::SUCCESS
        }
        Ok(other) => refused("update", &other),
        Err(e) => unreachable_daemon(&e),
    }
}

/// `coworkctl update check`: exit 0 up to date, 1 an update is available, 2
/// the check failed.
async fn update_check(client: &Client<ControlRequest, ControlResponse>, json: bool) -> ExitCode {
    let v = match client
        .call_with_timeout(ControlRequest::UpdateCheck, Duration::from_secs(120))
        .await
    {
        Ok(ControlResponse::Update(v)) => v,
        Ok(other) => return refused("update check", &other),
        Err(e) => return unreachable_daemon(&e),
    };
    let error = v["error"].as_str();
    let installable = v["installable"].as_bool().unwrap_or(false);
    if json {
        print_json(&v);
    } else if let Some(e) = error {
        eprintln!("coworkctl update check: {e}");
    } else {
        let newest = match (&v["newest_version"], v["newest_label"].as_str()) {
            (serde_json::Value::Null, _) => "nothing for this hardware".to_string(),
            (n, Some(label)) if !label.is_empty() => format!("version {n} ({label})"),
            (n, _) => format!("version {n}"),
        };
        println!(
            "running version {}; the feed (version {}) offers {newest}",
            v["running_version"], v["feed_version"]
        );
        if installable {
            println!(
                "an update is available: coworkctl update apply {}",
                v["bundle_url"].as_str().unwrap_or("?")
            );
        } else {
            println!("up to date");
        }
    }
    match (error, installable) {
        (Some(_), _) => ExitCode::from(2),
        (None, true) => ExitCode::from(1),
        (None, false) => ExitCode::SUCCESS,
    }
}

/// `update status` for people: the slots, the floor, the last attempt.
fn print_update_status(v: &serde_json::Value) {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let entry = |e: &serde_json::Value| match e["state"].as_str() {
        Some("pending") => format!("on trial, {} of its boot tries left", text(&e["left"])),
        Some("bad") => format!("failed all {} boot tries", text(&e["done"])),
        Some("good") => "good".to_string(),
        Some("missing") => "not bootable (no entry)".to_string(),
        _ => text(e),
    };
    println!(
        "running: slot {}, version {} ({})",
        text(&v["running"]).to_uppercase(),
        text(&v["running_version"]),
        entry(&v["running_entry"])
    );
    println!(
        "other:   slot {}, version {} ({})",
        text(&v["other"]).to_uppercase(),
        text(&v["other_version"]),
        entry(&v["other_entry"])
    );
    println!("lowest version accepted: {}", text(&v["floor"]));
    let a = &v["last_attempt"];
    if a.is_null() {
        println!("last attempt: none");
    } else {
        let result = match a["result"]["kind"].as_str() {
            Some("refused") | Some("failed") => format!(
                "{}: {}",
                text(&a["result"]["kind"]),
                text(&a["result"]["reason"])
            ),
            Some(kind) => kind.replace('_', " "),
            None => text(&a["result"]),
        };
        let when = a["started_unix"]
            .as_i64()
            .map(access::time)
            .unwrap_or_else(|| "-".to_string());
        println!(
            "last attempt: image {} (version {}) to slot {}, started {when}: {result}{}",
            text(&a["version_label"]),
            text(&a["version"]),
            text(&a["target"]).to_uppercase(),
            if v["last_attempt_interrupted"].as_bool() == Some(true) {
                " (interrupted)"
            } else {
                ""
            }
        );
    }
    if let Some(why) = v["fallback"].as_str() {
        println!("fallback: {why}");
    }
}

/// `channels kinds`: the registry (`gateway::channels::registry`).
fn channel_kinds(json: bool) -> ExitCode {
    use cowork::gateway::channels::registry::kinds;
    if json {
        let kinds: Vec<serde_json::Value> = kinds()
            .map(|k| {
                serde_json::json!({
                    "name": k.name,
                    "transports": k.transports.iter().map(|t| serde_json::json!({
                        "kind": t.name,
                        "webhook_route": t.webhook_route,
                        "required": t.required,
                        "settings": t.keys(),
                        "secrets": t.secrets.iter()
                            .map(|(key, what)| serde_json::json!({"key": key, "holds": what}))
                            .collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(kinds));
        return ExitCode::SUCCESS;
    }
    for k in kinds() {
        println!("{}", k.name);
        for t in k.transports {
            let inbound = match t.webhook_route {
                Some(r) => format!("webhook {r}"),
                None if t.keys().is_empty() => "no network".to_string(),
                None => "connects out".to_string(),
            };
            println!("  {:<22} {inbound}", t.name);
            if !t.required.is_empty() {
                println!("    needs: {}", t.required.join(", "));
            }
            for (key, what) in t.secrets {
                println!("    secret {key}: {what}");
            }
        }
    }
    ExitCode::SUCCESS
}
