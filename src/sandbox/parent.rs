//! The parent side of a built-in run: resolve the identity, create the cgroup, spawn
//! the helper (`coworkd sandbox init`) with a clean environment, hand it the spec,
//! capture output with caps, enforce the deadline or a cancel, collect status + report.

use std::collections::HashMap;
use std::io::Write;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Uid, User, getegid, geteuid};

use super::capture::{CancelHandle, KillStep, Stop, pump};
use super::cgroup::{self, Limits, RunCgroup};
use super::error::SandboxError;
use super::outcome::{ExitKind, RunOutcome};
use super::probe;
use super::settings::SandboxSettings;
use super::spec::ValidSpec;
use super::wire::{ControlMessage, InitSpec, MAX_CONTROL_BYTES, PayloadStatus, parse_control};

/// Default sandbox user name, looked up when the settings name none.
pub const SANDBOX_USER: &str = "cowork-sandbox";
/// Fallback identity: nobody/nogroup.
pub const NOBODY: u32 = 65534;
/// RLIMIT_NOFILE for the command.
const NOFILE: u64 = 1024;
/// The helper and the sandbox init count against pids.max too.
const HELPER_PIDS: u64 = 2;

type Identity = (u32, u32, String);

/// Who runs the command: (uid, gid, words for the report). The user database is read
/// once per process and setting (a user created later needs a daemon restart).
pub fn resolve_identity(settings: &SandboxSettings) -> Result<Identity, SandboxError> {
    static CACHE: OnceLock<Mutex<HashMap<Option<String>, Identity>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = settings.unprivileged_user.clone();
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(hit);
    }
    let resolved = lookup_identity(settings)?;
    if let Ok(mut c) = cache.lock() {
        c.insert(key, resolved.clone());
    }
    Ok(resolved)
}

fn lookup_identity(settings: &SandboxSettings) -> Result<Identity, SandboxError> {
    let (euid, egid) = (geteuid(), getegid());
    if !euid.is_root() {
        return Ok((
            euid.as_raw(),
            egid.as_raw(),
            "caller's own unprivileged uid, mapped 1:1 in a user namespace".into(),
        ));
    }
    let lookup = |name: &str| User::from_name(name).ok().flatten();
    let user = match &settings.unprivileged_user {
        Some(name) => {
            Some(lookup(name).ok_or_else(|| SandboxError::LookupUser { name: name.clone() })?)
        }
        None => lookup(SANDBOX_USER),
    };
    match user {
        Some(u) if u.uid == Uid::from_raw(0) || u.gid == Gid::from_raw(0) => {
            Err(SandboxError::RootSandboxUser { name: u.name })
        }
        Some(u) => Ok((
            u.uid.as_raw(),
            u.gid.as_raw(),
            format!("caller is root: switched to user {} before a 1:1 user-namespace mapping", u.name),
        )),
        None => Ok((
            NOBODY,
            NOBODY,
            "caller is root: switched to uid/gid 65534 (nobody) before a 1:1 user-namespace mapping".into(),
        )),
    }
}

/// Runs a validated spec with the built-in backend.
pub fn run_builtin(
    spec: &ValidSpec,
    settings: &SandboxSettings,
    self_exe: &Path,
    cancel: Option<&CancelHandle>,
) -> Result<RunOutcome, SandboxError> {
    let started = Instant::now();
    let deadline = started + spec.timeout;
    if !probe::user_namespaces_allowed() {
        return Err(SandboxError::IsolationUnavailable {
            missing: "user namespaces are disabled on this host (the built-in backend needs them)"
                .into(),
        });
    }
    let (uid, gid, identity) = resolve_identity(settings)?;
    let init = InitSpec {
        program: spec.program.clone(),
        args: spec.args.clone(),
        workspace: spec.workspace.clone(),
        allow_network: spec.allow_network,
        require_full_isolation: settings.require_full_isolation,
        uid,
        gid,
        identity,
        rlimit_as: Some(spec.memory_bytes), // dropped below if the memory cgroup is on
        rlimit_nproc: Some(spec.max_pids + HELPER_PIDS), // dropped below if the pids cgroup is on
        // No one file may be larger than the workspace's quota either.
        rlimit_fsize: spec.max_file_bytes.min(settings.workspace_quota_bytes),
        rlimit_nofile: NOFILE,
        tmp_size_bytes: settings.tmp_size_bytes,
    };
    let limits = Limits {
        memory_bytes: spec.memory_bytes,
        pids: spec.max_pids + HELPER_PIDS,
        cpu_percent: settings.cpu_percent,
    };
    let (result, cg) = spawn_and_collect(init, spec, settings, self_exe, limits, deadline, cancel);
    if let Some(cg) = cg {
        // Everything in it is normally dead with the pid namespace; make sure, then
        // remove the directories off the caller's path.
        cg.kill_all();
        std::thread::spawn(move || cg.remove(Duration::from_secs(5)));
    }
    let mut outcome = result?;
    outcome.duration = started.elapsed();
    Ok(outcome)
}

fn cgroup_weaknesses(cg: &RunCgroup) -> Vec<String> {
    let r = &cg.report;
    let mut w = Vec::new();
    let note = r.note.clone().unwrap_or_default();
    if !r.memory {
        w.push(format!("no memory cgroup, RLIMIT_AS used instead ({note})"));
    }
    if !r.pids {
        w.push(format!(
            "no pids cgroup, per-uid RLIMIT_NPROC used instead ({note})"
        ));
    }
    if !r.cpu {
        w.push(format!(
            "no cpu cgroup, CPU not limited beyond the timeout ({note})"
        ));
    }
    w
}

/// Spawns the helper, then creates and joins the cgroup while the helper is still
/// starting up (it waits for its spec), sends the spec and collects the result.
/// Returns the cgroup (if one was created) so the caller always removes it.
fn spawn_and_collect(
    mut init: InitSpec,
    spec: &ValidSpec,
    settings: &SandboxSettings,
    self_exe: &Path,
    limits: Limits,
    deadline: Instant,
    cancel: Option<&CancelHandle>,
) -> (Result<RunOutcome, SandboxError>, Option<RunCgroup>) {
    let mut helper = match spawn_helper(self_exe) {
        Ok(h) => h,
        Err(e) => return (Err(e), None),
    };
    let mut cg = cgroup::create(
        &settings.cgroup_root,
        settings.cgroup_parent.as_deref(),
        limits,
    );
    // Join the cgroup before the helper reads its spec (it does nothing before that).
    cg.attach(helper.child.id());
    if cg.report.memory {
        init.rlimit_as = None;
    }
    if cg.report.pids {
        init.rlimit_nproc = None;
    }
    let result = collect(&mut helper, &init, spec, &mut cg, deadline, cancel);
    if result.is_err() {
        let _ = helper.child.kill();
        let _ = helper.child.wait();
    }
    (result, Some(cg))
}

#[derive(Debug)]
struct Helper {
    child: std::process::Child,
    /// Our end of the socketpair that is the helper's fd 0: spec out, control lines in.
    control: UnixStream,
}

/// The small confinement binary installed beside coworkd.
pub const INIT_BINARY: &str = "coworkd-sandbox-init";

/// `coworkd-sandbox-init` beside us when installed (no TPM libraries to load on
/// every command), else `coworkd sandbox init` (same code).
fn helper_command(self_exe: &Path) -> Command {
    let init = self_exe.with_file_name(INIT_BINARY);
    if init.is_file() {
        Command::new(init)
    } else {
        let mut cmd = Command::new(self_exe);
        cmd.args(["sandbox", "init"]);
        cmd
    }
}

fn spawn_helper(self_exe: &Path) -> Result<Helper, SandboxError> {
    let (ours, theirs) = UnixStream::pair().map_err(|source| SandboxError::CreatePipe {
        purpose: "control socketpair",
        source,
    })?;
    // No pre_exec hook: std can use posix_spawn (vfork-like), the cheapest spawn.
    let child = helper_command(self_exe)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SandboxError::SpawnHelper {
            exe: self_exe.to_path_buf(),
            source,
        })?;
    Ok(Helper {
        child,
        control: ours,
    })
}

fn collect(
    helper: &mut Helper,
    init: &InitSpec,
    spec: &ValidSpec,
    cg: &mut RunCgroup,
    deadline: Instant,
    cancel: Option<&CancelHandle>,
) -> Result<RunOutcome, SandboxError> {
    let mut weaknesses = cgroup_weaknesses(cg);
    if init.require_full_isolation && !weaknesses.is_empty() {
        return Err(SandboxError::IsolationUnavailable {
            missing: weaknesses.join("; "),
        });
    }
    let child = &mut helper.child;
    let spec_bytes =
        serde_json::to_vec(init).map_err(|e| SandboxError::SendSpec { source: e.into() })?;
    // A helper that died early shows up below as an error message or a missing status.
    let _ = helper.control.write_all(&spec_bytes);
    let _ = helper.control.shutdown(Shutdown::Write);
    let pumped = pump(
        child.stdout.take(),
        child.stderr.take(),
        Some(&mut helper.control),
        spec.output_cap,
        MAX_CONTROL_BYTES,
        deadline,
        cancel,
        |step| match step {
            // A graceful cancel: SIGTERM to the command's processes (the
            // helper's descendants below the sandbox init, which ignores
            // signals from outside its namespace); the kill follows.
            KillStep::Terminate => terminate_descendants(child.id()),
            // The helper's death takes the sandbox init (PDEATHSIG) and so the whole
            // pid namespace with it; the cgroup kill catches anything in between.
            KillStep::Kill => {
                let _ = child.kill();
                cg.kill_all();
            }
        },
    )
    .map_err(|source| SandboxError::CaptureOutput { source })?;
    let helper_status = child
        .wait()
        .map_err(|source| SandboxError::WaitHelper { source })?;
    let messages = parse_control(&pumped.control.data)
        .map_err(|detail| SandboxError::HelperProtocol { detail })?;
    let mut report = None;
    let mut status = None;
    for m in messages {
        match m {
            ControlMessage::Report(r) if report.is_none() => report = Some(r),
            ControlMessage::Report(_) => {
                return Err(SandboxError::HelperProtocol {
                    detail: "second report".into(),
                });
            }
            ControlMessage::Status(s) => status = Some(s),
            ControlMessage::Error { stage, message } => {
                return Err(SandboxError::Setup { stage, message });
            }
        }
    }
    let kind = match (pumped.stop, status) {
        (Stop::TimedOut, _) => ExitKind::TimedOut,
        (Stop::Cancelled, _) => ExitKind::Killed,
        (Stop::Finished, Some(PayloadStatus::Exited(c))) => ExitKind::Exited(c),
        (Stop::Finished, Some(PayloadStatus::Signaled(s))) => ExitKind::Signaled(s),
        (Stop::Finished, None) => {
            return Err(SandboxError::HelperDied {
                status: helper_status.to_string(),
            });
        }
    };
    let mut isolation = *report.ok_or_else(|| SandboxError::HelperDied {
        status: format!("{helper_status}, before reporting its isolation"),
    })?;
    isolation.cgroup = cg.report.clone();
    isolation.weaknesses.append(&mut weaknesses);
    Ok(RunOutcome {
        status: kind,
        stdout: pumped.stdout.data,
        stderr: pumped.stderr.data,
        stdout_truncated: pumped.stdout.truncated,
        stderr_truncated: pumped.stderr.truncated,
        duration: Duration::ZERO,
        isolation,
    })
}

/// SIGTERM to the command's processes: the descendants of the helper `pid`
/// below the sandbox init (helper → init → payload...), found through
/// `/proc/PID/task/TID/children`. The helper and the init are left alone (their
/// death would kill everything at once); processes that appear meanwhile are
/// left to the kill that follows.
fn terminate_descendants(pid: u32) {
    let mut queue = vec![(pid, 0u32)];
    let mut seen = 0usize;
    while let Some((p, depth)) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                seen += 1;
                if seen > 4096 {
                    return;
                }
                // depth + 1: 1 is the sandbox init, 2 and more the command.
                if depth + 1 >= 2
                    && let Ok(raw) = i32::try_from(c)
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(raw),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                queue.push((c, depth + 1));
            }
        }
    }
}
