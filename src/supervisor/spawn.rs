//! Starting a component: re-exec ourselves as `coworkd component NAME` with a clean
//! environment, stdin closed, under the component's user, dying with the supervisor.
//!
//! Each component also gets a lifeline: the read end of a pipe whose write end
//! only the supervisor holds. Closing it (or the supervisor dying) makes the
//! component exit at once (see `component::watch_lifeline`). That is how a hung
//! or stuck component is ended: signals would need CAP_KILL, as components run
//! under other uids, and the unit does without it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use crate::ipc::Component;
use crate::logging::LogTarget;
use crate::paths::Paths;
use crate::privs::RunAs;

/// The only variable a component inherits. No secret ever travels in env or argv.
const COMPONENT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn command(
    exe: &Path,
    component: Component,
    paths: &Paths,
    log: LogTarget,
    run_as: Option<&RunAs>,
) -> std::io::Result<(tokio::process::Command, Lifeline)> {
    // The supervisor's own binary: five processes of one file share its pages.
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("component");
    let (child_end, lifeline) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    cmd.arg(component.name())
        .arg("--lifeline-fd")
        .arg(child_end.as_raw_fd().to_string())
        .arg("--config")
        .arg(&paths.config)
        .arg("--state-dir")
        .arg(&paths.state_dir)
        .arg("--runtime-dir")
        .arg(&paths.runtime_dir)
        .arg("--log")
        .arg(log.name())
        .env_clear()
        .env("PATH", COMPONENT_PATH)
        .current_dir("/")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let run_as = run_as.cloned();
    let parent = std::process::id();
    // A development instance started as root without the component users runs
    // components as root; they still get no capabilities, except the sandbox,
    // which needs them to build each command's namespaces and drop to nobody.
    let drop_caps =
        run_as.is_none() && nix::unistd::geteuid().is_root() && component != Component::Sandbox;
    install_pre_exec(&mut cmd, run_as, parent, drop_caps, child_end);
    Ok((
        cmd,
        Lifeline {
            _write_end: lifeline,
        },
    ))
}

/// The supervisor's end of a component's lifeline: dropping it ends the component.
#[derive(Debug)]
pub struct Lifeline {
    _write_end: OwnedFd,
}

/// In the child between fork and exec: switch user, then ask the kernel to kill us
/// if the supervisor dies (set after the switch, which would clear it).
#[allow(unsafe_code)]
fn install_pre_exec(
    cmd: &mut tokio::process::Command,
    run_as: Option<RunAs>,
    parent: u32,
    drop_caps: bool,
    lifeline: OwnedFd,
) {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    let groups: Vec<Gid> = run_as
        .as_ref()
        .map(|r| r.groups.iter().map(|g| Gid::from_raw(*g)).collect())
        .unwrap_or_default();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (fcntl, setgroups, setgid, setuid,
    // setsid, prctl, capset, getppid) on data prepared before the fork; it
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // The lifeline's read end survives the exec (the only inherited fd
            // beside stdio); it keeps its number, so nothing else is overwritten.
            if libc::fcntl(lifeline.as_raw_fd(), libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(r) = &run_as {
                setgroups(&groups)?;
                setgid(Gid::from_raw(r.gid))?;
                setuid(Uid::from_raw(r.uid))?;
            }
            // Own session: a Ctrl-C meant for the supervisor's terminal does not
            // kill components behind its back; the supervisor stops them in order.
            nix::unistd::setsid()?;
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if drop_caps {
                crate::privs::drop_all_capabilities()?;
            }
            // The supervisor may have died before the line above took effect.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::other("supervisor exited during spawn"));
            }
            Ok(())
        });
    }
}
