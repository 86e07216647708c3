//! The sandbox component over IPC, as the gateway uses it: runs an approved command
//! in a named task workspace, refuses bad workspace names and other senders,
//! cancels a long run within two seconds, reports the isolation in force.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Instance;
use cowork::ipc::{
    Client, Component, ComponentRequest, ComponentResponse, ErrorCode, Role, RunCommand, RunResult,
    SandboxRequest, SandboxResponse,
};

fn command(run_id: u64, program: &str, args: &[&str], workspace: &str) -> RunCommand {
    RunCommand {
        run_id,
        program: program.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        workspace: workspace.to_string(),
        allow_network: false,
        timeout_secs: Some(20),
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
            g.call(run(command(3, "/bin/sleep", &["30"], "task-1")))
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        assert!(matches!(
            gateway
                .call(ComponentRequest::Sandbox(SandboxRequest::Cancel {
                    run_id: 3
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
