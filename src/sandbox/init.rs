//! The hidden `coworkd sandbox init` stage: a freshly exec'd, single-threaded helper
//! that confines itself step by step and then runs the command. Fixed order:
//!
//! ```text
//! helper (host side, starts as the caller: root in production)
//!   1. close inherited fds (env was cleared by the parent)   fds::close_inherited
//!   2. read the spec, clone the workspace's mount tree      (now if root, else after 5)
//!   3. rlimits (the cgroup was joined by the parent)         rlimits::apply
//!   4. leave root for the unprivileged uid/gid               identity::switch_host_identity
//!   5. unshare user/mount/pid/ipc/uts/cgroup(/net) + maps    namespaces::unshare_all, identity::write_id_maps
//!   6. fork the sandbox init, wait for it, exit
//! sandbox init (pid 1 of the new pid namespace)
//!   7. die with the helper                                   PR_SET_PDEATHSIG
//!   8. build the root, pivot_root, hostname; RLIMIT_FSIZE    mounts::build_root, rlimits::apply_fsize
//!   9. drop every capability                                 identity::drop_capabilities
//!  10. no_new_privs
//!  11. landlock                                              landlock::restrict
//!  12. seccomp                                               seccomp::install
//!  13. report to the parent, fork the payload, reap, report its status
//! payload (spawned by the sandbox init)
//!  14. setsid (no controlling tty), posix_spawn: stdin /dev/null, SIGPIPE default,
//!      only fds 0-2, cwd /workspace, the fixed env of env::payload_env (HOME: the
//!      empty per-run tmpfs mounted in step 8, never the workspace)
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{AccessFlags, ForkResult, Pid, access, pipe2, setsid};

use super::confine::{env, fds, identity, landlock, mounts, namespaces, rlimits, seccomp, sys};
use super::error::ConfineError;
use super::report::{Enforcement, IsolationReport, RlimitEntry};
use super::wire::{CONTROL_FD, ControlMessage, InitSpec, MAX_SPEC_BYTES, PayloadStatus};

/// Entry point of `coworkd sandbox init`. Returns the process exit code.
pub fn init_main() -> i32 {
    match helper() {
        Ok(code) => code,
        Err(e) => {
            send_error(&e);
            125
        }
    }
}

fn send(msg: &ControlMessage) -> Result<(), ConfineError> {
    // Borrow fd 0 without taking ownership (ManuallyDrop keeps it open).
    let mut line = serde_json::to_vec(msg).map_err(|e| ConfineError::Control(e.into()))?;
    line.push(b'\n');
    let mut file = std::mem::ManuallyDrop::new(control_file());
    file.write_all(&line).map_err(ConfineError::Control)
}

#[allow(unsafe_code)]
fn control_file() -> File {
    // SAFETY: fd 0 is the control socket the parent installed for this process; callers
    // wrap the File in ManuallyDrop so it is never closed here.
    unsafe { File::from_raw_fd(CONTROL_FD) }
}

fn send_error(e: &ConfineError) {
    let message = crate::error_chain(e);
    let _ = send(&ControlMessage::Error {
        stage: e.stage().to_string(),
        message,
    });
}

fn read_spec() -> Result<InitSpec, ConfineError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(MAX_SPEC_BYTES)
        .read_to_end(&mut buf)
        .map_err(ConfineError::ReadSpec)?;
    serde_json::from_slice(&buf).map_err(|e| ConfineError::DecodeSpec(e.to_string()))
}

/// Steps 1-6 (host side).
fn helper() -> Result<i32, ConfineError> {
    // 1. Only stdio and the control pipe survive; the parent already cleared the env.
    fds::close_inherited()?;
    // 2. The spec, and the workspace opened while we may still be root.
    let spec = read_spec()?;
    // As root the tree must be cloned now, before we give root up. Unprivileged
    // callers (the cowork-sandbox user, a developer) may not clone host mounts;
    // they clone it in step 5, inside their own user and mount namespaces.
    let early_workspace = if nix::unistd::geteuid().is_root() {
        Some(mounts::clone_workspace_tree(&spec.workspace)?)
    } else {
        None
    };
    // 3. Resource limits, inherited by everything below.
    let rlimits = rlimits::apply(&spec)?;
    // 4. Never keep host root: switch to the unprivileged uid/gid first.
    identity::switch_host_identity(spec.uid, spec.gid)?;
    // 5. Namespaces, owned by a user namespace mapping that uid/gid 1:1.
    let host_ids = identity::host_ids();
    let namespaces = namespaces::unshare_all(spec.allow_network)?;
    let (uid, gid) = identity::write_id_maps(host_ids)?;
    let workspace = match early_workspace {
        Some(tree) => tree,
        None => mounts::clone_workspace_tree(&spec.workspace)?,
    };
    // 6. The next child is pid 1 of the new pid namespace. A pipe tells it if we die early.
    let (life_read, life_write) = pipe2(OFlag::O_CLOEXEC).map_err(ConfineError::Fork)?;
    match sys::fork().map_err(ConfineError::Fork)? {
        ForkResult::Child => {
            drop(life_write);
            let ctx = InitContext {
                spec,
                workspace,
                namespaces,
                rlimits,
                uid,
                gid,
                life: life_read,
            };
            let code = match sandbox_init(ctx) {
                Ok(code) => code,
                Err(e) => {
                    send_error(&e);
                    125
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            drop(life_read);
            drop(workspace);
            let code = wait_exit_code(child);
            drop(life_write);
            Ok(code)
        }
    }
}

fn wait_exit_code(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(_) => return 125,
        }
    }
}

#[derive(Debug)]
struct InitContext {
    spec: InitSpec,
    workspace: OwnedFd,
    namespaces: Vec<String>,
    rlimits: Vec<RlimitEntry>,
    uid: u32,
    gid: u32,
    life: OwnedFd,
}

/// Steps 7-13 (pid 1 of the sandbox).
fn sandbox_init(mut ctx: InitContext) -> Result<i32, ConfineError> {
    // 7. If the helper is killed (timeout, cancel), we die, and with us the pid namespace.
    prctl::set_pdeathsig(Signal::SIGKILL).map_err(ConfineError::ParentDeathSignal)?;
    let mut fds = [PollFd::new(
        std::os::fd::AsFd::as_fd(&ctx.life),
        PollFlags::POLLIN,
    )];
    if poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0 {
        return Ok(137); // the helper died before the death signal was armed
    }
    drop(ctx.life);
    let allow_network = ctx.spec.allow_network;
    // 8. The filesystem view, then the hostname of the private uts namespace.
    mounts::build_root(mounts::RootPlan {
        workspace: ctx.workspace,
        tmp_size_bytes: ctx.spec.tmp_size_bytes,
        allow_network,
        uid: ctx.uid,
        gid: ctx.gid,
    })?;
    mounts::set_hostname()?;
    // The root's copies from the host are written: from here on, file size is
    // the command's limit.
    ctx.rlimits.push(rlimits::apply_fsize(&ctx.spec)?);
    // 9. Capabilities the user namespace granted are no longer needed.
    identity::drop_capabilities()?;
    // 10. Nothing exec'd below can gain privileges (setuid bits, file caps).
    prctl::set_no_new_privs().map_err(ConfineError::NoNewPrivs)?;
    // 11. Landlock.
    let landlock = landlock::restrict(allow_network)?;
    // 12. Seccomp, last: it would otherwise block the steps above.
    let seccomp = seccomp::install(allow_network)?;

    // 13. Report, refusing first if full isolation is required and something is weaker.
    let mut weaknesses = Vec::new();
    match landlock.enforcement {
        Enforcement::Full => {}
        Enforcement::Partial => weaknesses.push(format!(
            "landlock only partially enforced (kernel ABI {})",
            landlock.abi
        )),
        Enforcement::None => weaknesses.push("landlock not enforced (kernel lacks it)".to_string()),
    }
    if ctx.spec.require_full_isolation && !weaknesses.is_empty() {
        return Err(ConfineError::IsolationUnavailable(weaknesses.join("; ")));
    }
    let report = IsolationReport {
        backend: "builtin".into(),
        namespaces: ctx.namespaces,
        host_uid: Some(ctx.uid),
        host_gid: Some(ctx.gid),
        identity: ctx.spec.identity.clone(),
        network: if allow_network {
            "host (network switch on; no domain allow-list proxy)".into()
        } else {
            "none (empty network namespace, inet sockets denied)".into()
        },
        filesystem: "tmpfs root + pivot_root; read-only /usr, minimal /etc, /dev, /proc; rw /workspace, private /tmp and an empty per-run HOME".into(),
        no_new_privs: true,
        capabilities_dropped: true,
        landlock,
        seccomp,
        cgroup: Default::default(),
        rlimits: ctx.rlimits,
        weaknesses,
    };
    send(&ControlMessage::Report(Box::new(report)))?;
    // /proc/1 of the sandbox is not readable or ptrace-able by the payload.
    prctl::set_dumpable(false).map_err(ConfineError::NoNewPrivs)?;
    fds::cloexec_all_but_stdio()?;
    let status = match spawn_payload(&ctx.spec) {
        Ok(payload) => reap_until(payload),
        Err((code, message)) => {
            let _ = writeln!(
                std::io::stderr(),
                "coworkd sandbox: {}: {message}",
                ctx.spec.program
            );
            PayloadStatus::Exited(code)
        }
    };
    send(&ControlMessage::Status(status))?;
    Ok(0)
}

/// As pid 1: reap every orphan until the payload itself ends.
fn reap_until(payload: Pid) -> PayloadStatus {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == payload => {
                return PayloadStatus::Exited(code);
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == payload => {
                return PayloadStatus::Signaled(sig as i32);
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(_) => return PayloadStatus::Exited(125),
        }
    }
}

/// Step 14: the payload. We become a session leader without a controlling terminal
/// (the payload inherits that session), then spawn it with std's posix_spawn path
/// (vfork-like, the cheapest): stdin = /dev/null, SIGPIPE back to default, cwd
/// /workspace, a fresh fixed environment ([`env::payload_env`]). Nothing but fds 0-2 is inherited:
/// every other descriptor in this process is close-on-exec.
fn spawn_payload(spec: &InitSpec) -> Result<Pid, (i32, String)> {
    setsid().map_err(|e| (126, format!("setsid: {e}")))?;
    let program =
        resolve_program(&spec.program).ok_or_else(|| (127, "command not found".to_string()))?;
    let child = std::process::Command::new(program)
        .arg0(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(env::payload_env())
        .current_dir(mounts::WORKSPACE)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            (code, e.to_string())
        })?;
    // Reaped by reap_until with waitpid(-1), as pid 1 must reap orphans too.
    Ok(Pid::from_raw(child.id() as i32))
}

/// `program` as given when it has a slash, else the first executable match in PATH.
fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    env::SANDBOX_PATH.split(':').find_map(|dir| {
        let candidate = Path::new(dir).join(program);
        access(&candidate, AccessFlags::X_OK).ok()?;
        (!candidate.is_dir()).then_some(candidate)
    })
}
