//! Secrets end to end through the real daemon: `coworkctl secret set` (value on
//! stdin, never argv), list without values, delete, `rotate-master`, restarts; and
//! the grep tests: after storing a secret and restarting, its plaintext is in no
//! file under the state directory, no log line, and not in the environment or
//! command line of any component or sandboxed child. Also: bad names and empty
//! values are refused and change nothing; the file keystore refuses a
//! world-readable key.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{DEV_CONFIG, Instance};

fn canary() -> String {
    format!(
        "sk-ant-api03-CANARY{}x{}",
        std::process::id(),
        rand_suffix()
    )
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Every file below `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

fn list(i: &Instance) -> serde_json::Value {
    let out = i.ctl(&["secret", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn secrets_survive_restarts_and_rotation_and_never_leak() {
    let i = Instance::start();
    let secret = canary();
    let out = i.ctl_with_input(
        &["secret", "set", "ANTHROPIC_API_KEY"],
        format!("{secret}\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = list(&i);
    assert_eq!(listed[0]["name"], "ANTHROPIC_API_KEY");
    assert_eq!(listed[0]["version"], 1);
    assert!(!listed.to_string().contains(&secret));

    // Bad input changes nothing.
    assert_eq!(
        i.ctl_with_input(&["secret", "set", "bad name!"], b"x")
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        i.ctl_with_input(&["secret", "set", "EMPTY"], b"")
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        i.ctl_with_input(&["secret", "set", "HUGE"], &vec![b'a'; 70_000])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(list(&i).as_array().unwrap().len(), 1);

    // A restart, a rotation (which decrypts every secret to re-wrap it), another
    // restart (keys derived from the new master) and a second rotation.
    let i = i.restart();
    assert_eq!(list(&i)[0]["name"], "ANTHROPIC_API_KEY");
    let out = i.ctl(&["secret", "rotate-master"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 secret re-wrapped"));
    let i = i.restart();
    let out = i.ctl(&["secret", "rotate-master"]);
    assert!(
        out.status.success(),
        "after restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A sandboxed child is running while we look.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let socket = i.runtime_dir().join("sandbox/sandbox.sock");
    // A unique duration makes the child findable by its command line.
    let marker = format!("3.{}", rand_suffix() % 1_000_000_000);
    let m = marker.clone();
    let sandboxed = std::thread::spawn(move || {
        rt.block_on(async {
            let gw = cowork::ipc::Client::<
                cowork::ipc::ComponentRequest,
                cowork::ipc::ComponentResponse,
            >::new(
                &socket, cowork::ipc::Role::Gateway, Duration::from_secs(30)
            );
            let cmd = cowork::ipc::RunCommand {
                run_id: 1,
                program: "/bin/sleep".into(),
                args: vec![m],
                workspace: "grep-test".into(),
                allow_network: false,
                timeout_secs: Some(10),
                output_cap_bytes: None,
                max_file_bytes: None,
                command_line: "sleep 3".into(),
                task: None,
                requester: "test".into(),
                decision: "allow".into(),
                rule: "test".into(),
                approver: None,
            };
            gw.call(cowork::ipc::ComponentRequest::Sandbox(
                cowork::ipc::SandboxRequest::Run(Box::new(cmd)),
            ))
            .await
        })
    });
    let child_pids = common::wait_until(Duration::from_secs(5), "the sandboxed child", || {
        let pids = pids_with_cmdline(&marker);
        (!pids.is_empty()).then_some(pids)
    });

    let needle = secret.as_bytes();
    let mut leaks = files_containing(&i.dir.path().join("state"), needle);
    leaks.extend(files_containing(&i.dir.path().join("run"), needle));
    assert!(leaks.is_empty(), "plaintext found in {leaks:?}");
    assert!(!i.log().contains(&secret), "plaintext in the log");
    for pid in i.pids().into_iter().chain(child_pids) {
        for f in ["environ", "cmdline"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_default();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "plaintext in /proc/{pid}/{f}"
            );
        }
    }
    let _ = sandboxed.join();

    // Delete.
    assert!(
        i.ctl(&["secret", "delete", "ANTHROPIC_API_KEY"])
            .status
            .success()
    );
    assert_eq!(list(&i).as_array().unwrap().len(), 0);
    assert_eq!(
        i.ctl(&["secret", "delete", "ANTHROPIC_API_KEY"])
            .status
            .code(),
        Some(1)
    );
}

fn pids_with_cmdline(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd) == format!("/bin/sleep\0{marker}\0") {
            out.push(pid);
        }
    }
    out
}

#[test]
fn world_readable_host_key_is_refused() {
    let mut i = Instance::start();
    let key = i.dir.path().join("state/supervisor/keystore/master.key");
    assert!(key.exists(), "file tier key at {}", key.display());
    assert!(i.stop().0.success());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = std::mem::replace(&mut i.dir, tempfile::tempdir().unwrap());
    let mut again = Instance::start_in(dir, &[], &[]);
    let status = again.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let log = again.log();
    assert!(log.contains("master.key"), "{log}");
    // Nothing was overwritten: the key file is the same, still 0644 for the owner to fix.
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

fn config_with_tpm(tier: &str, tcti: &str) -> String {
    format!("{DEV_CONFIG}[keystore]\ntier = \"{tier}\"\ntcti = \"{tcti}\"\n")
}

fn set_config(i: &Instance, text: &str) {
    std::fs::write(Instance::config_path(i.dir.path()), text).unwrap();
}

/// The supervisor on a real software TPM: auto picks the file tier while no TPM
/// answers, migrates the master into the TPM once one appears (secrets stay
/// readable, the host key file is gone), and a different TPM is refused with a
/// clear error and nothing overwritten.
#[test]
fn tpm2_tier_migration_and_foreign_tpm_through_the_daemon() {
    let tpm_state = tempfile::tempdir().unwrap();
    let tpm = common::swtpm::Swtpm::start(tpm_state.path());
    // No TPM reachable at first: a port nobody listens on.
    let i = Instance::start_with(
        &config_with_tpm("auto", "swtpm:host=127.0.0.1,port=1"),
        &[],
        &[],
    );
    let mut i = i;
    i.wait_notification("READY=1", Duration::from_secs(15));
    assert_eq!(i.status()["keystore"], "file (software-bound)");
    let secret = canary();
    assert!(
        i.ctl_with_input(
            &["secret", "set", "SLACK_SIGNING_SECRET"],
            secret.as_bytes()
        )
        .status
        .success()
    );

    // The TPM appears: the master moves into it.
    set_config(&i, &config_with_tpm("auto", &tpm.tcti()));
    let i = i.restart();
    assert_eq!(i.status()["keystore"], "tpm2");
    assert!(
        !i.dir
            .path()
            .join("state/supervisor/keystore/master.key")
            .exists()
    );
    assert!(
        i.dir
            .path()
            .join("state/supervisor/keystore/master.tpm2")
            .exists()
    );
    // Still readable: a rotation decrypts every secret.
    let out = i.ctl(&["secret", "rotate-master"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let i = i.restart();
    assert_eq!(list(&i)[0]["name"], "SLACK_SIGNING_SECRET");

    // Another TPM: refused, clearly, and the sealed blob is left as it was.
    let blob = i.dir.path().join("state/supervisor/keystore/master.tpm2");
    let before = std::fs::read(&blob).unwrap();
    let other_state = tempfile::tempdir().unwrap();
    let other = common::swtpm::Swtpm::start(other_state.path());
    set_config(&i, &config_with_tpm("auto", &other.tcti()));
    let mut i = i;
    assert!(i.stop().0.success());
    let dir = std::mem::replace(&mut i.dir, tempfile::tempdir().unwrap());
    let mut foreign = Instance::start_in(dir, &[], &[]);
    assert_eq!(foreign.child.wait().unwrap().code(), Some(1));
    let log = foreign.log();
    assert!(
        log.to_lowercase().contains("another tpm")
            || log.contains("Foreign")
            || log.contains("foreign"),
        "{log}"
    );
    assert_eq!(std::fs::read(&blob).unwrap(), before);
}
