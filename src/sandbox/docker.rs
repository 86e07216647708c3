//! Optional Docker backend: builds a locked-down `docker run` argv and runs it through
//! the same capture loop. Used only when `backend = "docker"` and a daemon is reachable.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::capture::{CancelHandle, KillStep, Stop, pump};
use super::confine::env::payload_env;
use super::confine::mounts::{HOME, WORKSPACE};
use super::error::SandboxError;
use super::outcome::{ExitKind, RunOutcome};
use super::report::{IsolationReport, RlimitEntry};
use super::settings::SandboxSettings;
use super::spec::ValidSpec;

/// The daemon socket looked at by [`daemon_reachable`].
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// `docker` arguments (without the program name) for one run.
pub fn docker_argv(
    spec: &ValidSpec,
    settings: &SandboxSettings,
    image: &str,
    uid: u32,
    gid: u32,
    name: &str,
) -> Vec<String> {
    let mut argv: Vec<String> = [
        "run",
        "--rm",
        "--name",
        name,
        "--network",
        if spec.allow_network { "bridge" } else { "none" },
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend([
        "--pids-limit".to_string(),
        spec.max_pids.to_string(),
        "--memory".to_string(),
        spec.memory_bytes.to_string(),
        "--memory-swap".to_string(),
        spec.memory_bytes.to_string(),
        "--cpus".to_string(),
        format!("{:.2}", f64::from(settings.cpu_percent) / 100.0),
        "--user".to_string(),
        format!("{uid}:{gid}"),
        "--ulimit".to_string(),
        "core=0".to_string(),
        "--ulimit".to_string(),
        "nofile=1024:1024".to_string(),
        // As RLIMIT_FSIZE in the built-in backend (docker passes bytes through).
        "--ulimit".to_string(),
        format!(
            "fsize={0}:{0}",
            spec.max_file_bytes.min(settings.workspace_quota_bytes)
        ),
        "--tmpfs".to_string(),
        format!("/tmp:rw,nosuid,nodev,size={}", settings.tmp_size_bytes),
        // HOME: empty and private to this container, as in the built-in backend.
        "--tmpfs".to_string(),
        format!(
            "{HOME}:rw,nosuid,nodev,mode=0700,uid={uid},gid={gid},size={}",
            settings.tmp_size_bytes
        ),
        "-v".to_string(),
        format!("{}:{WORKSPACE}:rw", spec.workspace.display()),
        "-w".to_string(),
        WORKSPACE.to_string(),
    ]);
    for (name, value) in payload_env() {
        argv.extend(["-e".to_string(), format!("{name}={value}")]);
    }
    argv.extend([
        // One token, so a program starting with "-" can never be read as a docker option.
        format!("--entrypoint={}", spec.program),
        image.to_string(),
    ]);
    argv.extend(spec.args.iter().cloned());
    argv
}

/// True when the docker CLI can reach a daemon on the default socket.
pub fn daemon_reachable() -> bool {
    Path::new(DOCKER_SOCKET).exists() && UnixStream::connect(DOCKER_SOCKET).is_ok()
}

/// Runs one spec with `docker run`.
pub fn run_docker(
    spec: &ValidSpec,
    settings: &SandboxSettings,
    cancel: Option<&CancelHandle>,
) -> Result<RunOutcome, SandboxError> {
    let image =
        settings
            .docker_image
            .as_deref()
            .ok_or_else(|| SandboxError::DockerUnavailable {
                reason: "docker_image is not set".into(),
            })?;
    if !daemon_reachable() {
        return Err(SandboxError::DockerUnavailable {
            reason: format!("no daemon at {DOCKER_SOCKET}"),
        });
    }
    let (uid, gid, _) = super::parent::resolve_identity(settings)?;
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("cowork-sandbox-{}-{n}", std::process::id());
    let started = Instant::now();
    let mut child = Command::new("docker")
        .args(docker_argv(spec, settings, image, uid, gid, &name))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SandboxError::DockerUnavailable {
            reason: format!("cannot start docker: {e}"),
        })?;
    let pumped = pump(
        child.stdout.take(),
        child.stderr.take(),
        None::<std::fs::File>,
        spec.output_cap,
        0,
        started + spec.timeout,
        cancel,
        |step| {
            // `docker stop` sends SIGTERM and kills after its own grace.
            let verb = match step {
                KillStep::Terminate => "stop",
                KillStep::Kill => "kill",
            };
            let _ = Command::new("docker")
                .args([verb, &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if step == KillStep::Kill {
                let _ = child.kill();
            }
        },
    )
    .map_err(|source| SandboxError::CaptureOutput { source })?;
    let status = child
        .wait()
        .map_err(|source| SandboxError::WaitHelper { source })?;
    let kind = match pumped.stop {
        Stop::TimedOut => ExitKind::TimedOut,
        Stop::Cancelled => ExitKind::Killed,
        Stop::Finished => ExitKind::Exited(status.code().unwrap_or(125)),
    };
    Ok(RunOutcome {
        status: kind,
        stdout: pumped.stdout.data,
        stderr: pumped.stderr.data,
        stdout_truncated: pumped.stdout.truncated,
        stderr_truncated: pumped.stderr.truncated,
        duration: started.elapsed(),
        isolation: IsolationReport {
            backend: "docker".into(),
            namespaces: vec!["docker default (mount, pid, ipc, uts, net)".into()],
            host_uid: Some(uid),
            host_gid: Some(gid),
            identity: "docker --user".into(),
            network: if spec.allow_network {
                "docker bridge".into()
            } else {
                "none (--network none)".into()
            },
            filesystem: format!(
                "image {image} read-only, /workspace rw, /tmp and an empty HOME tmpfs"
            ),
            no_new_privs: true,
            capabilities_dropped: true,
            rlimits: vec![RlimitEntry {
                name: "RLIMIT_CORE".into(),
                value: 0,
            }],
            weaknesses: vec![
                "docker backend: no landlock; seccomp is docker's default profile".into(),
            ],
            ..Default::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn spec(net: bool) -> ValidSpec {
        ValidSpec {
            program: "sh".into(),
            args: vec!["-c".into(), "echo hi".into()],
            workspace: PathBuf::from("/srv/ws/t1"),
            allow_network: net,
            timeout: Duration::from_secs(5),
            memory_bytes: 256 << 20,
            max_pids: 64,
            output_cap: 1024,
            max_file_bytes: 4096,
        }
    }

    fn pair(argv: &[String], flag: &str) -> Option<String> {
        argv.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone())
    }

    #[test]
    fn argv_is_locked_down() {
        let argv = docker_argv(
            &spec(false),
            &SandboxSettings::default(),
            "debian:12",
            65534,
            65534,
            "n1",
        );
        assert_eq!(argv[0], "run");
        assert_eq!(pair(&argv, "--network").as_deref(), Some("none"));
        assert!(argv.contains(&"--read-only".to_string()));
        assert_eq!(pair(&argv, "--cap-drop").as_deref(), Some("ALL"));
        assert_eq!(
            pair(&argv, "--security-opt").as_deref(),
            Some("no-new-privileges")
        );
        assert_eq!(pair(&argv, "--pids-limit").as_deref(), Some("64"));
        assert_eq!(
            pair(&argv, "--memory").as_deref(),
            Some(&*(256u64 << 20).to_string())
        );
        assert_eq!(pair(&argv, "--user").as_deref(), Some("65534:65534"));
        // The command's largest file is the spec's (`[limits] max_file_bytes`).
        assert!(argv.contains(&"fsize=4096:4096".to_string()), "{argv:?}");
        assert_eq!(
            pair(&argv, "-v").as_deref(),
            Some("/srv/ws/t1:/workspace:rw")
        );
        assert!(!argv.iter().any(|a| a == "--privileged"));
        // HOME is a private tmpfs, not the workspace; interpreters load no user code.
        assert!(argv.contains(&"HOME=/sandbox-home".to_string()));
        assert!(argv.contains(&"PYTHONNOUSERSITE=1".to_string()));
        assert!(!argv.iter().any(|a| a == "HOME=/workspace"));
        assert!(argv.iter().any(|a| a.starts_with("/sandbox-home:rw,")
            && a.contains("mode=0700")
            && a.contains("uid=65534")));
        // image, then the command's arguments, last
        let img = argv.iter().position(|a| a == "debian:12").expect("image");
        assert_eq!(&argv[img + 1..], ["-c", "echo hi"]);
        assert!(argv.contains(&"--entrypoint=sh".to_string()));
    }

    #[test]
    fn network_switch_changes_only_the_network() {
        let off = docker_argv(&spec(false), &SandboxSettings::default(), "img", 1, 1, "n");
        let on = docker_argv(&spec(true), &SandboxSettings::default(), "img", 1, 1, "n");
        assert_eq!(pair(&on, "--network").as_deref(), Some("bridge"));
        let diff: Vec<_> = off.iter().zip(&on).filter(|(a, b)| a != b).collect();
        assert_eq!(diff.len(), 1);
    }

    #[test]
    fn hostile_program_stays_an_argument() {
        let mut s = spec(false);
        s.program = "--privileged".into();
        s.args = vec!["--volume=/:/host".into()];
        let argv = docker_argv(&s, &SandboxSettings::default(), "img", 1, 1, "n");
        let img = argv.iter().position(|a| a == "img").expect("image");
        // Everything after the image is the container's argv, never docker's options.
        assert_eq!(&argv[img + 1..], ["--volume=/:/host"]);
        assert!(argv.contains(&"--entrypoint=--privileged".to_string()));
    }
}
