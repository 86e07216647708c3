//! The sandbox component over IPC, as the gateway uses it: runs an approved command
//! in a named task workspace, refuses bad workspace names and other senders,
//! cancels a long run within two seconds (forced: at once; graceful: SIGTERM,
//! then the kill after the grace for a command that ignores it), reports the isolation in force; the
//! agent's file tools (`SandboxRequest::File`) confined to the workspace against
//! hostile paths, symlinks, oversized content and other senders; the caller's
//! output cap and file size limit (`[limits]`) held, and never above the
//! sandbox's own ceilings (`[sandbox]`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{DEV_CONFIG, Instance};
use cowork::ipc::{
    Client, Component, ComponentRequest, ComponentResponse, ErrorCode, FileOp, FileRequest, Role,
    RunCommand, RunResult, SandboxRequest, SandboxResponse,
};

fn command(run_id: u64, program: &str, args: &[&str], workspace: &str) -> RunCommand {
    RunCommand {
        run_id,
        program: program.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        workspace: workspace.to_string(),
        allow_network: false,
        timeout_secs: Some(20),
        output_cap_bytes: None,
        max_file_bytes: None,
        command_line: format!("{program} {}", args.join(" ")),
        task: Some("task-1".to_string()),
        requester: "local:alice".to_string(),
        decision: "allow".to_string(),
        rule: "trusted:echo".to_string(),
        approver: None,
    }
}

fn finished(r: Result<ComponentResponse, cowork::ipc::IpcError>) -> RunResult {
    match r {
        Ok(ComponentResponse::Sandbox(SandboxResponse::Finished(result))) => result,
        other => panic!("expected a finished run, got {other:?}"),
    }
}

/// Waits until the command running in workspace task-1 has made `marker`:
/// it is running (and has set up what it does before the marker).
async fn started(i: &Instance, marker: &str) {
    let path = i
        .dir
        .path()
        .join("state/sandbox/workspaces/task-1")
        .join(marker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "the command never made {marker}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn gateway_runs_and_cancels_commands() {
    let i = Instance::start();
    let socket = i.runtime_dir().join("sandbox/sandbox.sock");
    let summary = i.component("sandbox")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.contains("isolation"), "{summary}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let gateway = Arc::new(Client::<ComponentRequest, ComponentResponse>::new(
            &socket,
            Role::Gateway,
            Duration::from_secs(30),
        ));
        let r = finished(
            gateway
                .call(run(command(
                    1,
                    "/bin/sh",
                    &["-c", "echo hi > f; cat f; id -u"],
                    "task-1",
                )))
                .await,
        );
        assert_eq!(r.exit_code, 0, "{r:?}");
        assert!(r.stdout.starts_with("hi\n"), "{r:?}");
        assert_ne!(r.stdout.lines().nth(1), Some("0"), "never real root");
        assert!(r.isolation.contains("namespaces"), "{r:?}");
        let ws = i.dir.path().join("state/sandbox/workspaces/task-1/f");
        assert_eq!(std::fs::read_to_string(ws).unwrap(), "hi\n");

        for bad in ["../etc", "", ".hidden", "a/b", &"x".repeat(65)] {
            match gateway.call(run(command(2, "true", &[], bad))).await {
                Ok(ComponentResponse::Error(e)) => {
                    assert_eq!(e.code, ErrorCode::BadRequest, "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }

        // Cancel a long run.
        let g = Arc::clone(&gateway);
        let long = tokio::spawn(async move {
            g.call(run(command(
                3,
                "/bin/sh",
                &["-c", "touch started-3; exec /bin/sleep 30"],
                "task-1",
            )))
            .await
        });
        started(&i, "started-3").await;
        let t = Instant::now();
        assert!(matches!(
            gateway
                .call(ComponentRequest::Sandbox(SandboxRequest::Cancel {
                    run_id: 3,
                    force: true,
                }))
                .await,
            Ok(ComponentResponse::Done)
        ));
        let r = finished(long.await.unwrap());
        assert_eq!(r.status, "killed", "{r:?}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "cancel took {:?}",
            t.elapsed()
        );

        // A graceful cancel: SIGTERM ends a plain command at once...
        let cancel = |run_id: u64, force: bool| {
            ComponentRequest::Sandbox(SandboxRequest::Cancel { run_id, force })
        };
        let g = Arc::clone(&gateway);
        let long = tokio::spawn(async move {
            g.call(run(command(
                5,
                "/bin/sh",
                &["-c", "touch started-5; exec /bin/sleep 30"],
                "task-1",
            )))
            .await
        });
        started(&i, "started-5").await;
        let t = Instant::now();
        assert!(matches!(
            gateway.call(cancel(5, false)).await,
            Ok(ComponentResponse::Done)
        ));
        let r = finished(long.await.unwrap());
        assert_eq!(r.status, "killed", "{r:?}");
        assert!(
            t.elapsed() < Duration::from_millis(1400),
            "{:?}",
            t.elapsed()
        );
        // ...and one that ignores it is killed after the grace.
        let g = Arc::clone(&gateway);
        let stubborn = tokio::spawn(async move {
            g.call(run(command(
                6,
                "/bin/sh",
                &["-c", "trap '' TERM; touch started-6; sleep 30"],
                "task-1",
            )))
            .await
        });
        started(&i, "started-6").await;
        let t = Instant::now();
        assert!(matches!(
            gateway.call(cancel(6, false)).await,
            Ok(ComponentResponse::Done)
        ));
        let r = finished(stubborn.await.unwrap());
        assert_eq!(r.status, "killed", "{r:?}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
            "{took:?}"
        );

        // Nobody but the gateway may run commands.
        let admin = Client::<ComponentRequest, ComponentResponse>::new(
            &socket,
            Role::Admin,
            Duration::from_secs(5),
        );
        match admin.call(run(command(4, "true", &[], "task-1"))).await {
            Ok(ComponentResponse::Error(e)) => assert_eq!(e.code, ErrorCode::Forbidden),
            other => panic!("{other:?}"),
        }
    });
    let _ = Component::Sandbox;
}

fn run(cmd: RunCommand) -> ComponentRequest {
    ComponentRequest::Sandbox(SandboxRequest::Run(Box::new(cmd)))
}

fn file(workspace: &str, op: FileOp) -> ComponentRequest {
    ComponentRequest::Sandbox(SandboxRequest::File(FileRequest {
        workspace: workspace.to_string(),
        op,
        max_bytes: None,
    }))
}

#[test]
fn file_tools_stay_inside_the_workspace() {
    let i = Instance::start();
    let socket = i.runtime_dir().join("sandbox/sandbox.sock");
    let root = i.dir.path().join("state/sandbox/workspaces");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let gateway = Client::<ComponentRequest, ComponentResponse>::new(
            &socket,
            Role::Gateway,
            Duration::from_secs(10),
        );
        let text = |r: Result<ComponentResponse, cowork::ipc::IpcError>| match r {
            Ok(ComponentResponse::Sandbox(SandboxResponse::File(t))) => t,
            other => panic!("expected file text, got {other:?}"),
        };
        let refused = |r: Result<ComponentResponse, cowork::ipc::IpcError>| match r {
            Ok(ComponentResponse::Error(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let write = |path: &str, content: &str| {
            file(
                "u-files",
                FileOp::Write {
                    path: path.to_string(),
                    content: content.to_string(),
                },
            )
        };
        let read = |path: &str| {
            file(
                "u-files",
                FileOp::Read {
                    path: path.to_string(),
                },
            )
        };
        let wrote = text(gateway.call(write("notes/a.txt", "hello")).await);
        assert!(wrote.contains("wrote 5 bytes"), "{wrote}");
        assert_eq!(text(gateway.call(read("notes/a.txt")).await), "hello");
        let listing = text(
            gateway
                .call(file("u-files", FileOp::List { path: ".".into() }))
                .await,
        );
        assert!(listing.contains("notes/"), "{listing}");
        // A command in the same workspace reads what the file tool wrote and
        // writes what the file tool then reads (whoever commands run as).
        let r = finished(
            gateway
                .call(run(command(
                    7,
                    "/bin/sh",
                    &["-c", "cat notes/a.txt; echo back > notes/b.txt"],
                    "u-files",
                )))
                .await,
        );
        assert_eq!(r.stdout, "hello", "{r:?}");
        assert_eq!(text(gateway.call(read("notes/b.txt")).await), "back\n");

        // Escapes: .., absolute paths, NUL, a symlink planted in the workspace.
        std::os::unix::fs::symlink("/etc", root.join("u-files/etc-link")).unwrap();
        for bad in [
            "../../../etc/passwd",
            "/etc/passwd",
            "notes/../../x",
            "a\0b",
            "etc-link/passwd",
            "etc-link",
        ] {
            let bad = bad.to_string();
            let e = refused(gateway.call(read(&bad)).await);
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad:?}: {e:?}");
            let e = refused(gateway.call(write(&bad, "x")).await);
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad:?}: {e:?}");
        }
        // Bad workspace names, as for commands.
        for ws in ["../sandbox", "", ".x", "a/b"] {
            let e = refused(
                gateway
                    .call(file(ws, FileOp::List { path: ".".into() }))
                    .await,
            );
            assert_eq!(e.code, ErrorCode::BadRequest, "{ws:?}");
        }
        // Content over the cap: refused by the sandbox (or, past the frame cap,
        // by the transport), nothing written.
        let big = "x".repeat(cowork::ipc::MAX_FILE_BYTES as usize + 1);
        let _ = refused(gateway.call(write("big.txt", &big)).await);
        assert!(!root.join("u-files/big.txt").exists());
        let huge = "x".repeat(2 * 1024 * 1024);
        assert!(!matches!(
            gateway.call(write("huge.txt", &huge)).await,
            Ok(ComponentResponse::Sandbox(_))
        ));
        assert!(!root.join("u-files/huge.txt").exists());
        // The sandbox still serves afterwards.
        assert_eq!(text(gateway.call(read("notes/a.txt")).await), "hello");

        // Only the gateway may touch workspaces.
        for role in [Role::Admin, Role::Audit, Role::Supervisor] {
            let other = Client::<ComponentRequest, ComponentResponse>::new(
                &socket,
                role,
                Duration::from_secs(5),
            );
            let e = refused(other.call(read("notes/a.txt")).await);
            assert_eq!(e.code, ErrorCode::Forbidden, "{role:?}");
        }
    });
}

/// What the gateway asks (`[limits] output_cap_bytes`, `max_file_bytes`) is
/// what a command and a file call get, and asking for more than `[sandbox]`
/// allows gets the sandbox's ceiling.
#[test]
fn callers_limits_hold_under_the_sandbox_ceilings() {
    let mut i = Instance::start_with(
        &format!(
            "{DEV_CONFIG}[sandbox]\noutput_cap_bytes = 1000\nmax_file_bytes = 4096\n\
             [limits]\noutput_cap_bytes = 1000\nmax_file_bytes = 4096\n"
        ),
        &[],
        &[],
    );
    i.wait_notification("READY=1", Duration::from_secs(15));
    let socket = i.runtime_dir().join("sandbox/sandbox.sock");
    let ws = i.dir.path().join("state/sandbox/workspaces/u-limits");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let gateway = Client::<ComponentRequest, ComponentResponse>::new(
            &socket,
            Role::Gateway,
            Duration::from_secs(30),
        );
        let limited = |run_id: u64, script: &str, cap: Option<u64>, fsize: Option<u64>| {
            let mut c = command(run_id, "/bin/sh", &["-c", script], "u-limits");
            c.output_cap_bytes = cap;
            c.max_file_bytes = fsize;
            run(c)
        };
        let print = "head -c 5000 /dev/zero | tr '\\0' x";
        // Output: the asked cap, then the ceiling however much is asked.
        let r = finished(gateway.call(limited(1, print, Some(100), None)).await);
        assert_eq!(r.stdout, "x".repeat(100), "{r:?}");
        assert!(r.stdout_truncated, "{r:?}");
        let r = finished(gateway.call(limited(2, print, Some(1 << 40), None)).await);
        assert_eq!(r.stdout.len(), 1000, "{r:?}");
        assert!(r.stdout_truncated, "{r:?}");
        // Files a command writes: RLIMIT_FSIZE at the asked size, or the ceiling.
        let r = finished(
            gateway
                .call(limited(3, "head -c 3000 /dev/zero > a", None, Some(2000)))
                .await,
        );
        assert_ne!(r.exit_code, 0, "{r:?}");
        assert_eq!(std::fs::metadata(ws.join("a")).unwrap().len(), 2000);
        let r = finished(
            gateway
                .call(limited(
                    4,
                    "head -c 9000 /dev/zero > b",
                    None,
                    Some(1 << 40),
                ))
                .await,
        );
        assert_ne!(r.exit_code, 0, "{r:?}");
        assert_eq!(std::fs::metadata(ws.join("b")).unwrap().len(), 4096);
        let r = finished(
            gateway
                .call(limited(5, "head -c 1500 /dev/zero > c", None, Some(2000)))
                .await,
        );
        assert_eq!(r.exit_code, 0, "{r:?}");

        // File calls: the asked size, then the ceiling.
        let call = |op: FileOp, max: Option<u64>| {
            ComponentRequest::Sandbox(SandboxRequest::File(FileRequest {
                workspace: "u-limits".to_string(),
                op,
                max_bytes: max,
            }))
        };
        let write = |path: &str, n: usize| FileOp::Write {
            path: path.to_string(),
            content: "y".repeat(n),
        };
        let read = |path: &str| FileOp::Read {
            path: path.to_string(),
        };
        let refusal = |r: Result<ComponentResponse, cowork::ipc::IpcError>| match r {
            Ok(ComponentResponse::Error(e)) => e.message,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let e = refusal(gateway.call(call(write("w1", 101), Some(100))).await);
        assert!(e.contains("over the 100-byte limit"), "{e}");
        assert!(!ws.join("w1").exists());
        let e = refusal(gateway.call(call(write("w2", 4097), Some(1 << 40))).await);
        assert!(e.contains("over the 4096-byte limit"), "{e}");
        assert!(matches!(
            gateway.call(call(write("w3", 100), Some(100))).await,
            Ok(ComponentResponse::Sandbox(SandboxResponse::File(_)))
        ));
        // `c` (1500 bytes, written by the command) is over a 1000-byte limit.
        let e = refusal(gateway.call(call(read("c"), Some(1000))).await);
        assert!(e.contains("over the 1000-byte limit"), "{e}");
        assert!(matches!(
            gateway.call(call(read("c"), Some(2000))).await,
            Ok(ComponentResponse::Sandbox(SandboxResponse::File(_)))
        ));
    });
}
