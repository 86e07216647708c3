//! Starting a component: re-exec ourselves as `coworkd component NAME` with a clean
//! environment, stdin closed, under the component's user, dying with the supervisor.

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
    cgroups: Option<&super::cgroups::Layout>,
) -> tokio::process::Command {
    let mut cmd = match component_binary(exe) {
        Some(binary) => tokio::process::Command::new(binary),
        None => {
            let mut cmd = tokio::process::Command::new(exe);
            cmd.arg("component");
            cmd
        }
    };
    cmd.arg(component.name())
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
    if component == Component::Sandbox
        && let Some(parent) = cgroups.and_then(|l| l.sandbox_parent.as_ref())
    {
        cmd.arg("--cgroup-parent").arg(parent);
    }
    let join = cgroups.map(|l| l.join_files(component)).unwrap_or_default();
    let run_as = run_as.cloned();
    let parent = std::process::id();
    // A development instance started as root without the component users runs
    // components as root; they still get no capabilities, except the sandbox,
    // which needs them to build each command's namespaces and drop to nobody.
    let drop_caps =
        run_as.is_none() && nix::unistd::geteuid().is_root() && component != Component::Sandbox;
    install_pre_exec(&mut cmd, run_as, parent, drop_caps, join);
    cmd
}

/// The component binary installed beside coworkd (it maps no TPM libraries).
pub const COMPONENT_BINARY: &str = "coworkd-component";

/// `coworkd-component` beside `coworkd`, when installed; else `coworkd component`.
fn component_binary(exe: &Path) -> Option<std::path::PathBuf> {
    let sibling = exe.with_file_name(COMPONENT_BINARY);
    (exe.file_name().is_some_and(|n| n == "coworkd") && sibling.is_file()).then_some(sibling)
}

/// In the child between fork and exec: switch user, then ask the kernel to kill us
/// if the supervisor dies (set after the switch, which would clear it).
#[allow(unsafe_code)]
fn install_pre_exec(
    cmd: &mut tokio::process::Command,
    run_as: Option<RunAs>,
    parent: u32,
    drop_caps: bool,
    join: Vec<std::ffi::CString>,
) {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    let groups: Vec<Gid> = run_as
        .as_ref()
        .map(|r| r.groups.iter().map(|g| Gid::from_raw(*g)).collect())
        .unwrap_or_default();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (open, write, close, setgroups, setgid, setuid,
    // setsid, prctl, capset, getppid) on data prepared before the fork; it
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // Join the component's cgroup while still root ("0": this process).
            // A failure leaves it where it is; the sandbox then reports no cgroup.
            for file in &join {
                let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    let _ = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
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
