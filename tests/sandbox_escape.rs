//! Escape attempts against the real `coworkd sandbox exec` binary (the daemon's code
//! path). Each attempt must fail inside the sandbox and leave the host unchanged:
//! secrets and state dirs unreadable, no writes outside the workspace (directly, via
//! symlink or hard link), no network unless switched on, dangerous syscalls denied,
//! fork/memory bombs and timeouts bounded with the whole tree killed, no TIOCSTI, never
//! real root, scrubbed env, capped output, hostile CLI input refused.
//! Needs root (as the appliance and CI run) and python3 at /usr/bin/python3.

mod common;
mod skip;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PY: &str = "/usr/bin/python3";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn coworkd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_coworkd"))
}

/// A workspace the sandbox user can write (the executor does not chown workspaces).
fn workspace() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

fn exec_with(ws: &Path, opts: &[&str], cmd: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = coworkd();
    c.args(["sandbox", "exec", "--workspace"])
        .arg(ws)
        .args(opts)
        .arg("--")
        .args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run coworkd");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn exec(ws: &Path, cmd: &[&str]) -> Out {
    exec_with(ws, &[], cmd, &[])
}

fn sh(ws: &Path, script: &str) -> Out {
    exec(ws, &["/bin/sh", "-c", script])
}

fn unique(tag: &str) -> String {
    format!(
        "cw-escape-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    )
}

/// Host processes whose command line contains `marker`.
/// Waits (up to 10 s) until processes whose command line has `marker` are
/// there (`present`) or all gone; a zombie being reaped takes a moment.
fn wait_processes(marker: &str, present: bool) {
    let what = format!("{} process with {marker}", if present { "a" } else { "no" });
    common::wait_until(Duration::from_secs(10), &what, || {
        (processes_with(marker).is_empty() != present).then_some(())
    });
}

fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("proc").flatten() {
        let mut buf = Vec::new();
        if let Ok(mut f) = fs::File::open(entry.path().join("cmdline")) {
            let _ = f.read_to_end(&mut buf);
        }
        let cmd = String::from_utf8_lossy(&buf).replace('\0', " ");
        if cmd.contains(marker) && !cmd.contains("cargo") && !cmd.contains("sandbox exec") {
            found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn etc_shadow_is_not_readable() {
    let ws = workspace();
    let o = sh(ws.path(), "cat /etc/shadow; ls /etc/shadow");
    assert_ne!(o.code, 0);
    assert!(!o.stdout.contains("root:"), "{}", o.stdout);
    assert!(Path::new("/etc/shadow").exists(), "host unchanged");
}

#[test]
fn appliance_state_dirs_are_invisible() {
    let ws = workspace();
    for parent in ["/var/tmp", "/tmp"] {
        let state = tempfile::tempdir_in(parent).expect("state dir");
        fs::set_permissions(state.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let marker = unique("state");
        fs::write(state.path().join("state.db"), &marker).expect("marker");
        fs::set_permissions(
            state.path().join("state.db"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let p = state.path().display().to_string();
        let o = sh(ws.path(), &format!("cat {p}/state.db; ls {p}"));
        assert_ne!(o.code, 0, "{parent}");
        assert!(!o.stdout.contains(&marker), "state readable from {parent}");
    }
    let o = sh(
        ws.path(),
        "ls -d /root /home /run /var /srv /sys 2>&1; true",
    );
    for d in ["/root", "/home", "/run", "/var", "/srv", "/sys"] {
        assert!(
            o.stdout.contains(&format!("cannot access '{d}'")),
            "{d} visible: {}",
            o.stdout
        );
    }
}

#[test]
fn host_proc_and_env_are_not_visible() {
    let ws = workspace();
    let secret = unique("SECRETVALUE");
    let o = exec_with(
        ws.path(),
        &[],
        &[
            "/bin/sh",
            "-c",
            "cat /proc/1/environ; echo; env; ls /proc | grep -c '^[0-9]'",
        ],
        &[("SECRET", &secret), ("AWS_SECRET_ACCESS_KEY", &secret)],
    );
    assert!(
        !o.stdout.contains(&secret) && !o.stderr.contains(&secret),
        "secret leaked: {}",
        o.stdout
    );
    // The pid namespace shows only the sandbox's own few processes.
    let count: usize = o
        .stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("count");
    assert!(count <= 5, "{count} pids visible");
}

#[test]
fn env_is_scrubbed() {
    let ws = workspace();
    let o = exec_with(
        ws.path(),
        &[],
        &["/usr/bin/env"],
        &[
            ("SECRET", "hunter2"),
            ("HOME", "/root"),
            ("PYTHONSTARTUP", "/workspace/x.py"),
            ("PYTHONPATH", "/workspace"),
            ("PERL5OPT", "-Mx"),
            ("RUBYOPT", "-rx"),
            ("NODE_OPTIONS", "--require=/workspace/x.js"),
            ("BASH_ENV", "/workspace/x.sh"),
            ("ENV", "/workspace/x.sh"),
            ("LD_PRELOAD", "/workspace/x.so"),
            ("GIT_CONFIG_GLOBAL", "/workspace/gitconfig"),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut lines: Vec<&str> = o.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "GIT_CONFIG_COUNT=3",
            "GIT_CONFIG_KEY_0=core.fsmonitor",
            "GIT_CONFIG_KEY_1=core.hooksPath",
            "GIT_CONFIG_KEY_2=core.pager",
            "GIT_CONFIG_NOSYSTEM=1",
            "GIT_CONFIG_VALUE_0=false",
            "GIT_CONFIG_VALUE_1=/dev/null",
            "GIT_CONFIG_VALUE_2=cat",
            "HOME=/sandbox-home",
            "LANG=C.UTF-8",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONNOUSERSITE=1",
        ]
    );
}

/// HOME is an empty tmpfs of its own run: not the workspace, empty at start, and
/// what one run leaves in it is gone for the next.
#[test]
fn home_is_empty_private_and_new_for_every_run() {
    let ws = workspace();
    let script = "echo \"$HOME\"; ls -A \"$HOME\" | wc -l; stat -c %a \"$HOME\"; \
                  echo x > \"$HOME/.bashrc\" && echo wrote";
    let first = sh(ws.path(), script);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(
        lines,
        ["/sandbox-home", "0", "700", "wrote"],
        "{}",
        first.stderr
    );
    // The second run does not see the first run's file.
    let second = sh(ws.path(), script);
    assert_eq!(second.stdout, first.stdout, "{}", second.stderr);
    // Nothing reached the workspace, and HOME is not reachable through it.
    assert!(!ws.path().join(".bashrc").exists());
    assert!(!ws.path().join("sandbox-home").exists());
}

/// Startup files planted in the workspace (as the agent's write_file could) are not
/// read by an ordinary, trusted-looking command (issue 17.3).
#[test]
fn startup_files_in_the_workspace_do_not_run() {
    let ws = workspace();
    let version = exec(
        ws.path(),
        &[
            PY,
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2])",
        ],
    );
    assert_eq!(version.code, 0, "{}", version.stderr);
    let site = ws.path().join(format!(
        ".local/lib/python{}/site-packages",
        version.stdout.trim()
    ));
    fs::create_dir_all(&site).expect("site dir");
    fs::write(
        site.join("zz.pth"),
        "import os; open('/workspace/pwned-pth', 'w').write('x'); print('PLANTED-PTH')\n",
    )
    .expect("pth");
    fs::write(
        ws.path().join("sitecustomize.py"),
        "print('PLANTED-SITECUSTOMIZE')\n",
    )
    .expect("sitecustomize");
    fs::write(ws.path().join(".bashrc"), "echo PLANTED-BASHRC\n").expect("bashrc");
    make_world_writable(ws.path());
    let o = exec(ws.path(), &["python3", "-c", "print(1)"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "1\n"), "{}", o.stderr);
    assert!(!ws.path().join("pwned-pth").exists(), ".pth ran");
    let o = exec(ws.path(), &["python3", "-m", "json.tool", "--help"]);
    assert!(!o.stdout.contains("PLANTED"), "{}", o.stdout);
    let o = exec(ws.path(), &["bash", "-i", "-c", "echo ok"]);
    assert!(!o.stdout.contains("PLANTED-BASHRC"), "{}", o.stdout);

    if !Path::new("/usr/bin/sqlite3").exists() {
        return skip::skip(
            "startup_files_in_the_workspace_do_not_run (the .sqliterc half)",
            "sqlite3 is not installed at /usr/bin/sqlite3 (apt-get install sqlite3)",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    fs::write(
        ws.path().join(".sqliterc"),
        ".shell touch /workspace/pwned-sqlite\nselect 'PLANTED-SQLITERC';\n",
    )
    .expect("sqliterc");
    let o = exec(ws.path(), &["sqlite3", ":memory:", "select 1"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "1\n"), "{}", o.stderr);
    assert!(!ws.path().join("pwned-sqlite").exists(), ".sqliterc ran");
}

/// A repository's own `.git/config` cannot make `git status` run its fsmonitor hook,
/// nor a hook from `.git/hooks` (issue 16.5).
#[test]
fn git_ignores_the_repository_fsmonitor_and_hooks() {
    if !Path::new("/usr/bin/git").exists() && !Path::new("/usr/local/bin/git").exists() {
        return skip::skip(
            "git_ignores_the_repository_fsmonitor_and_hooks",
            "git is not installed (apt-get install git)",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    let ws = workspace();
    let o = sh(
        ws.path(),
        "git init -q . && printf '#!/bin/sh\\ntouch /workspace/pwned-$1\\n' > hook.sh && chmod +x hook.sh \
         && cp hook.sh .git/hooks/post-commit && cp hook.sh .git/hooks/pre-commit \
         && printf '[core]\\n\\tfsmonitor = /workspace/hook.sh\\n' >> .git/config \
         && git status --short >/dev/null && git -c user.name=a -c user.email=a@b add hook.sh \
         && git -c user.name=a -c user.email=a@b commit -q -m x && echo done",
    );
    assert!(o.stdout.contains("done"), "{} {}", o.stdout, o.stderr);
    let planted: Vec<_> = fs::read_dir(ws.path())
        .expect("ws")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned"))
        .collect();
    assert!(planted.is_empty(), "repository hooks ran: {planted:?}");
}

/// Files the test wrote as root become the sandbox user's to read.
fn make_world_writable(dir: &Path) {
    for entry in walk(dir) {
        let mode = if entry.is_dir() { 0o777 } else { 0o666 };
        fs::set_permissions(&entry, fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn writes_to_etc_and_host_home_fail() {
    let ws = workspace();
    let name = unique("w");
    let o = sh(
        ws.path(),
        &format!(
            "echo x > /etc/{name}; echo x > /root/{name}; mkdir -p /root; echo x > /{name}; echo x > /usr/{name}; echo done"
        ),
    );
    assert!(o.stdout.contains("done"));
    for p in [
        format!("/etc/{name}"),
        format!("/root/{name}"),
        format!("/{name}"),
        format!("/usr/{name}"),
    ] {
        assert!(!Path::new(&p).exists(), "host file {p} created");
    }
}

#[test]
fn workspace_is_writable_and_owned_by_non_root() {
    let ws = workspace();
    let o = sh(
        ws.path(),
        "id -u; grep '^Uid:' /proc/self/status; echo hello > made.txt",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let uid: u32 = o
        .stdout
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("uid");
    assert_ne!(uid, 0);
    let status_uids: Vec<u32> = o
        .stdout
        .lines()
        .nth(1)
        .expect("Uid line")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(status_uids.len(), 4);
    assert!(status_uids.iter().all(|u| *u != 0), "{status_uids:?}");
    let meta = fs::metadata(ws.path().join("made.txt")).expect("file written");
    assert_ne!(meta.uid(), 0, "file owned by host root");
    assert_ne!(meta.gid(), 0);
}

#[test]
fn symlink_in_workspace_does_not_lead_outside() {
    let ws = workspace();
    let outside = tempfile::tempdir_in("/var/tmp").expect("outside");
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    std::os::unix::fs::symlink(outside.path(), ws.path().join("link")).expect("symlink");
    std::os::unix::fs::symlink("/etc", ws.path().join("etc-link")).expect("symlink");
    let name = unique("sym");
    let o = sh(
        ws.path(),
        &format!("echo x > /workspace/link/{name}; echo x > /workspace/etc-link/{name}; echo done"),
    );
    assert!(o.stdout.contains("done"));
    assert!(!outside.path().join(&name).exists());
    assert!(!Path::new("/etc").join(&name).exists());
}

#[test]
fn hard_link_in_workspace_does_not_write_outside() {
    let ws = workspace();
    // Same filesystem as the workspace, so the host can hard-link it in.
    let outside = tempfile::tempdir().expect("outside");
    let target = outside.path().join("appliance.conf");
    fs::write(&target, "original\n").expect("write");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::hard_link(&target, ws.path().join("hard")).expect("hard link");
    let o = sh(
        ws.path(),
        "echo pwned > /workspace/hard; echo pwned >> /workspace/hard; ln /etc/passwd /workspace/pw; ln /usr/bin/sh /workspace/sh2; echo done",
    );
    assert!(o.stdout.contains("done"));
    assert_eq!(fs::read_to_string(&target).expect("read"), "original\n");
    assert!(
        !ws.path().join("sh2").exists(),
        "hard link to a system file created"
    );
}

#[test]
fn network_is_off_by_default_and_switchable() {
    let ws = workspace();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let script = format!(
        "import socket; s=socket.create_connection(('127.0.0.1',{port}),timeout=3); s.sendall(b'hi'); print('connected')"
    );
    let off = exec(ws.path(), &[PY, "-c", &script]);
    assert_ne!(off.code, 0);
    assert!(!off.stdout.contains("connected"));
    let accept = std::thread::spawn(move || {
        listener.set_nonblocking(false).expect("blocking");
        let (mut s, _) = listener.accept().expect("accept");
        let mut b = [0u8; 2];
        s.read_exact(&mut b).expect("read");
        b
    });
    let on = exec_with(ws.path(), &["--allow-network"], &[PY, "-c", &script], &[]);
    assert_eq!(on.code, 0, "{}", on.stderr);
    assert!(on.stdout.contains("connected"));
    assert_eq!(&accept.join().expect("accept thread"), b"hi");
}

/// Calls raw syscalls with ctypes and prints name=errno for each.
const SYSCALLS_PY: &str = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(512)
calls = {
    "ptrace": (101, 0, 0, 0, 0),             # PTRACE_TRACEME
    "mount": (165, b"none", b"/tmp", b"tmpfs", 0, 0),
    "unshare_user": (272, 0x10000000),
    "unshare_ns": (272, 0x00020000),
    "setns": (308, 0, 0),
    "keyctl": (250, 0, -3, 0),               # KEYCTL_GET_KEYRING_ID session
    "add_key": (248, b"user", b"k", b"v", 1, -3),
    "io_uring_setup": (425, 8, ctypes.addressof(buf)),
    "bpf": (321, 0, 0, 0),
    "perf_event_open": (298, ctypes.addressof(buf), 0, -1, -1, 0),
    "userfaultfd": (323, 0),
    "process_vm_readv": (310, 1, 0, 0, 0, 0, 0),
    "open_by_handle_at": (304, -100, ctypes.addressof(buf), 0),
    "pivot_root": (155, b"/tmp", b"/tmp"),
    "chroot": (161, b"/tmp"),
    "kexec_load": (246, 0, 0, 0, 0),
    "init_module": (175, 0, 0, b""),
    "clone_newuser": (56, 0x10000000 | 17, 0, 0, 0, 0),
}
for name, args in calls.items():
    ctypes.set_errno(0)
    r = libc.syscall(*args)
    print(f"{name}={r}:{ctypes.get_errno()}")
r = libc.syscall(435, 0, 0)                    # clone3
print(f"clone3={r}:{ctypes.get_errno()}")
"#;

#[test]
fn dangerous_syscalls_fail_with_eperm() {
    let ws = workspace();
    let o = exec(ws.path(), &[PY, "-c", SYSCALLS_PY]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut seen = 0;
    for line in o.stdout.lines() {
        let (name, rest) = line.split_once('=').expect("name=r:errno");
        let (ret, errno) = rest.split_once(':').expect("r:errno");
        assert_eq!(ret, "-1", "{name} succeeded");
        let want = if name == "clone3" {
            libc::ENOSYS
        } else {
            libc::EPERM
        };
        assert_eq!(errno.parse::<i32>().expect("errno"), want, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 19, "{}", o.stdout);
}

#[test]
fn ptrace_mount_unshare_tools_fail() {
    let ws = workspace();
    let o = sh(
        ws.path(),
        "strace -f true >/dev/null 2>&1 && echo strace-ok; \
         mount -t tmpfs none /tmp >/dev/null 2>&1 && echo mount-ok; \
         unshare -U true >/dev/null 2>&1 && echo unshare-ok; \
         unshare -r true >/dev/null 2>&1 && echo unshare-r-ok; echo done",
    );
    assert!(o.stdout.contains("done"), "{}", o.stderr);
    assert!(!o.stdout.contains("-ok"), "{}", o.stdout);
}

#[test]
fn tiocsti_injection_fails() {
    let ws = workspace();
    let script = "import fcntl, termios, os\n\
        for fd in (0, 1, 2):\n\
        \x20   try:\n\
        \x20       fcntl.ioctl(fd, termios.TIOCSTI, b'x'); print('injected')\n\
        \x20   except OSError as e: print('errno', e.errno)\n\
        try:\n\
        \x20   os.open('/dev/tty', os.O_RDWR); print('tty-open')\n\
        except OSError as e: print('tty', e.errno)\n";
    let o = exec(ws.path(), &[PY, "-c", script]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        !o.stdout.contains("injected") && !o.stdout.contains("tty-open"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.stdout.matches(&format!("errno {}", libc::EPERM)).count(),
        3,
        "{}",
        o.stdout
    );
}

#[test]
fn only_stdio_fds_are_inherited() {
    let ws = workspace();
    let o = exec(
        ws.path(),
        &[
            PY,
            "-c",
            "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    // 3 is listdir's own descriptor.
    assert_eq!(o.stdout.trim(), "[0, 1, 2, 3]");
}

#[test]
fn fork_bomb_is_bounded_and_ends() {
    let ws = workspace();
    let marker = unique("forkbomb");
    let started = Instant::now();
    let o = exec_with(
        ws.path(),
        &["--timeout", "4", "--pids", "64"],
        &["/bin/bash", "-c", "f(){ f | f & }; f; sleep 100", &marker],
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_ne!(o.code, 0);
    wait_processes(&marker, false);
}

#[test]
fn memory_bomb_is_bounded_and_ends() {
    let ws = workspace();
    let started = Instant::now();
    let o = exec_with(
        ws.path(),
        &["--timeout", "30", "--memory", &(64u64 << 20).to_string()],
        &[PY, "-c", "a = []\nwhile True: a.append(bytearray(8 << 20))"],
        &[],
    );
    assert_ne!(o.code, 0);
    assert_ne!(o.code, 124, "memory bomb ran to the timeout");
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn timeout_kills_the_whole_tree() {
    let ws = workspace();
    let marker = "987654";
    let started = Instant::now();
    let o = exec_with(
        ws.path(),
        &["--timeout", "1"],
        &[
            "/bin/sh",
            "-c",
            "sleep 987654 & (sleep 987654 &) ; setsid sleep 987654 & sleep 987654",
        ],
        &[],
    );
    assert_eq!(o.code, 124, "{}", o.stderr);
    assert!(o.stderr.contains("timed out"));
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_processes(marker, false);
}

#[test]
fn output_is_capped_and_marked() {
    let ws = workspace();
    let o = exec_with(
        ws.path(),
        &["--output-cap", "1000"],
        &[
            "/bin/sh",
            "-c",
            "head -c 3000000 /dev/zero | tr '\\0' a; head -c 5000 /dev/zero | tr '\\0' b >&2",
        ],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.len(), 1000);
    assert!(o.stderr.starts_with(&"b".repeat(1000)));
    assert!(o.stderr.contains("stdout truncated at 1000 bytes"));
    assert!(o.stderr.contains("stderr truncated at 1000 bytes"));
}

#[test]
fn report_is_printed_on_request() {
    let ws = workspace();
    let o = exec_with(ws.path(), &["--report"], &["/bin/true"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let json = o
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("report-json: "))
        .expect("json line");
    let r: cowork::sandbox::IsolationReport = serde_json::from_str(json).expect("report json");
    assert!(r.seccomp.enabled && r.no_new_privs && r.capabilities_dropped);
    assert!(r.namespaces.iter().any(|n| n == "net"));
    assert_ne!(r.host_uid, Some(0));
}

#[test]
fn hostile_cli_input_is_refused() {
    let cwd = PathBuf::from("relative-ws");
    for (ws, needle) in [
        (cwd.as_path(), "not an absolute path"),
        (Path::new("/"), "refused"),
        (Path::new("/etc"), "refused"),
        (Path::new("/nonexistent/cw-ws"), "cannot resolve"),
    ] {
        let o = exec(ws, &["/bin/true"]);
        assert_eq!(o.code, 125, "{ws:?}");
        assert!(o.stderr.contains(needle), "{ws:?}: {}", o.stderr);
    }
    let ws = workspace();
    let o = exec_with(ws.path(), &["--timeout", "100000"], &["/bin/true"], &[]);
    assert_eq!(o.code, 125);
    let o = exec(ws.path(), &["no-such-program-cw"]);
    assert_eq!(o.code, 127, "{}", o.stderr);
}

#[test]
fn cancel_kills_a_running_command() {
    use cowork::sandbox::{CancelHandle, ExitKind, RunSpec, SandboxSettings, run_with_cancel};
    let ws = workspace();
    let settings = SandboxSettings::default();
    let spec = RunSpec::new(
        "/bin/sh",
        vec!["-c".into(), "sleep 987653 & sleep 987653".into()],
        ws.path(),
        &settings,
    );
    let cancel = CancelHandle::new();
    let c2 = cancel.clone();
    let t = std::thread::spawn(move || {
        wait_processes("987653", true);
        c2.cancel();
    });
    let started = Instant::now();
    let out = run_with_cancel(
        &spec,
        &settings,
        Path::new(env!("CARGO_BIN_EXE_coworkd")),
        &cancel,
    )
    .expect("run");
    t.join().expect("thread");
    assert_eq!(out.status, ExitKind::Killed);
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_processes("987653", false);
}

#[test]
fn full_isolation_is_available_on_this_host() {
    // The production switch: on a host with landlock >= 6, user namespaces and writable
    // cgroups (this CI machine), nothing is missing, so the run goes ahead.
    let ws = workspace();
    let o = exec_with(
        ws.path(),
        &["--require-full-isolation", "--report"],
        &["/bin/true"],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains(": full"), "{}", o.stderr);
    let probe = cowork::sandbox::probe();
    assert!(probe.landlock.abi >= 1 && probe.seccomp.enabled, "{probe}");
}

/// The sandbox component runs as the unprivileged cowork-sandbox user in
/// production (and as the developer in dev mode): the same confinement must work
/// without root — here as uid 4242, through setpriv. (Not 65534: inside a fresh
/// user namespace every unmapped uid reads as 65534, which once hid a bug.)
#[test]
fn works_for_an_unprivileged_caller() {
    if !skip::is_root() {
        // Every other test here already runs unprivileged; this one is about
        // root dropping to a user of its own.
        return skip::skip(
            "works_for_an_unprivileged_caller",
            "needs root to switch to uid 4242",
            skip::Missing::ProvidedByMakeTest,
        );
    }
    let ws = workspace();
    let o = Command::new("setpriv")
        .args(["--reuid=4242", "--regid=4242", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_coworkd"))
        .args(["sandbox", "exec", "--workspace"])
        .arg(ws.path())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "id -u; echo ok > /workspace/out; cat /etc/shadow 2>&1; touch /etc/x 2>&1",
        ])
        .output()
        .expect("setpriv");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("4242\n"),
        "stdout {stdout:?} stderr {:?}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        fs::read_to_string(ws.path().join("out")).expect("written"),
        "ok\n"
    );
    assert!(!Path::new("/etc/x").exists());
}
