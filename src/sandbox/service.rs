//! The sandbox component's IPC side: runs approved commands for the gateway in
//! task workspaces it owns, reports the isolation in force, cancels on request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::AuditLog;
use crate::ipc::{
    AuditAppend, ComponentResponse, ErrorCode, FileOp, FileRequest, MAX_FILE_BYTES, RunCommand,
    RunResult, SandboxRequest, SandboxResponse, WireError,
};
use crate::paths::Paths;

use super::{CancelHandle, ExitKind, RunOutcome, RunSpec, SandboxSettings, Workspace};

/// Transport cap for each of stdout and stderr in an IPC answer, so one answer
/// always fits a frame (the capture cap itself may be larger).
pub const MAX_REPLY_OUTPUT: usize = 448 * 1024;
/// Output kept in the audit trail per stream (the trail caps a payload at 64 KiB).
const AUDIT_OUTPUT: usize = 24 * 1024;
/// Workspace of the start-up self-test.
const SELFTEST_WORKSPACE: &str = "selftest";

#[derive(Debug)]
pub struct SandboxService {
    settings: SandboxSettings,
    workspace_root: PathBuf,
    self_exe: PathBuf,
    running: Mutex<HashMap<u64, CancelHandle>>,
    summary: String,
    audit_socket: PathBuf,
    /// Started on first use, inside the component's runtime.
    audit: std::sync::OnceLock<AuditLog>,
}

impl SandboxService {
    /// Prepares the workspace area and runs `/bin/true` through the full sandbox, so
    /// that the reported isolation is what commands really get under this unit's
    /// restrictions, not what a probe guesses.
    pub fn start(settings: &SandboxSettings, paths: &Paths) -> std::io::Result<SandboxService> {
        let workspace_root = settings.workspace_root.clone().unwrap_or_else(|| {
            paths
                .component_state_dir(crate::ipc::Component::Sandbox)
                .join("workspaces")
        });
        std::fs::create_dir_all(&workspace_root)?;
        let mut settings = settings.clone();
        settings.workspace_root = Some(workspace_root.clone());
        settings.protected_paths = vec![
            paths.state_dir.clone(),
            paths.runtime_dir.clone(),
            paths
                .config
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/etc/cowork")),
        ];
        settings
            .protected_paths
            .extend(paths.own_socket_dir.iter().cloned());
        let self_exe = std::env::current_exe()?;
        let mut service = SandboxService {
            settings,
            workspace_root,
            self_exe,
            running: Mutex::new(HashMap::new()),
            summary: String::new(),
            audit_socket: paths.component_socket(crate::ipc::Component::Audit),
            audit: std::sync::OnceLock::new(),
        };
        service.summary = service.self_test();
        Ok(service)
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }

    fn self_test(&self) -> String {
        let outcome = self
            .workspace(SELFTEST_WORKSPACE)
            .map_err(|e| e.message)
            .and_then(|ws| {
                let spec = RunSpec::new("/bin/true", Vec::new(), ws, &self.settings);
                super::run(&spec, &self.settings, &self.self_exe)
                    .map_err(|e| crate::error_chain(&e))
            });
        match outcome {
            Ok(o) if o.status == ExitKind::Exited(0) => o.isolation.summary(),
            Ok(o) => format!("self-test failed: /bin/true ended {:?}", o.status),
            Err(e) if self.settings.require_full_isolation => format!("REFUSING COMMANDS: {e}"),
            Err(e) => format!("self-test failed: {e}"),
        }
    }

    /// The directory of a named task workspace, created on first use.
    fn workspace(&self, name: &str) -> Result<PathBuf, WireError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "workspace name {name:?} must be 1-64 characters of A-Z a-z 0-9 - _ . and not start with a dot"
                ),
            ));
        }
        let dir = self.workspace_root.join(name);
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            WireError::new(ErrorCode::Internal, format!("{what} workspace {name}: {e}"))
        };
        std::fs::create_dir_all(&dir).map_err(|e| internal("creating", &e))?;
        // Started as root, commands run as the sandbox user: the workspace is theirs.
        if nix::unistd::geteuid().is_root() {
            let (uid, gid) = super::command_identity(&self.settings)
                .map_err(|e| internal("choosing the owner of", &e))?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| internal("handing over", &e))?;
        }
        Ok(dir)
    }

    pub async fn handle(self: &Arc<Self>, request: SandboxRequest) -> ComponentResponse {
        match request {
            SandboxRequest::Run(cmd) => match self.run(cmd).await {
                Ok(result) => ComponentResponse::Sandbox(SandboxResponse::Finished(result)),
                Err(e) => ComponentResponse::Error(e),
            },
            SandboxRequest::File(req) => match self.file(req).await {
                Ok(text) => ComponentResponse::Sandbox(SandboxResponse::File(text)),
                Err(e) => ComponentResponse::Error(e),
            },
            SandboxRequest::Cancel { run_id, force } => {
                let handle = lock(&self.running).get(&run_id).cloned();
                match handle {
                    Some(h) => {
                        if force {
                            h.cancel();
                        } else {
                            h.cancel_gracefully();
                        }
                        ComponentResponse::Done
                    }
                    None => {
                        WireError::new(ErrorCode::NotFound, format!("no run {run_id} in progress"))
                            .into()
                    }
                }
            }
        }
    }

    /// A file tool call, confined to the named workspace by the
    /// [`Workspace`] rules: relative paths
    /// only, no `..`, every component opened without following symlinks, the
    /// real path checked, hard links and oversized files refused.
    async fn file(&self, req: FileRequest) -> Result<String, WireError> {
        let dir = self.workspace(&req.workspace)?;
        // The caller's limit (`[limits] max_file_bytes`), never above the
        // ceiling nor what fits a frame.
        let cap = req
            .max_bytes
            .unwrap_or(u64::MAX)
            .min(self.settings.max_file_bytes)
            .min(MAX_FILE_BYTES);
        if let FileOp::Write { content, .. } = &req.op {
            self.settings
                .disk_policy()
                .check(&dir, content.len() as u64)
                .map_err(|e| WireError::new(ErrorCode::BadRequest, format!("not written: {e}")))?;
        }
        // Started as root, commands run as the sandbox user: what the file
        // tools create must be theirs too (as the workspace directory is).
        let ws = if nix::unistd::geteuid().is_root() {
            let (uid, gid) = super::command_identity(&self.settings).map_err(|e| {
                WireError::new(ErrorCode::Internal, format!("choosing the file owner: {e}"))
            })?;
            Workspace::with_owner(&dir, cap, uid, gid)
        } else {
            Workspace::new(&dir, cap)
        }
        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?;
        let done = tokio::task::spawn_blocking(move || match req.op {
            FileOp::Read { path } => ws.read(&path),
            FileOp::List { path } => ws.list(&path),
            FileOp::Write { path, content } => ws
                .write(&path, &content)
                .map(|()| format!("wrote {} bytes to {path}", content.len())),
        })
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("file task failed: {e}")))?;
        // Tool errors are plain sentences naming the path and the reason.
        done.map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))
    }

    fn audit(&self) -> &AuditLog {
        self.audit
            .get_or_init(|| AuditLog::start(self.audit_socket.clone(), crate::ipc::Role::Sandbox))
    }

    /// Appends and waits until durable; an unaudited command is never run and an
    /// unaudited result is never handed back.
    async fn audited(
        &self,
        kind: &str,
        cmd: &RunCommand,
        payload: serde_json::Value,
    ) -> Result<u64, WireError> {
        let entry = AuditAppend {
            kind: kind.to_string(),
            actor: cmd.requester.clone(),
            subject: capped_text(cmd.command_line.as_bytes(), 200).0,
            payload,
        };
        self.audit().append(entry).await.map_err(|e| {
            WireError::new(
                ErrorCode::Unavailable,
                format!("refusing: the audit trail did not take {kind}: {e}"),
            )
        })
    }

    async fn run(self: &Arc<Self>, cmd: Box<RunCommand>) -> Result<RunResult, WireError> {
        let workspace = self.workspace(&cmd.workspace)?;
        let disk = self.settings.disk_policy();
        disk.check(&workspace, 0).map_err(|e| {
            WireError::new(
                ErrorCode::BadRequest,
                format!("refusing to start the command: {e}"),
            )
        })?;
        let watched = workspace.clone();
        // The caller's limits (`[limits]`), never above this executor's ceilings.
        let output_cap = cmd
            .output_cap_bytes
            .map_or(self.settings.output_cap_bytes, |asked| {
                usize::try_from(asked)
                    .unwrap_or(usize::MAX)
                    .min(self.settings.output_cap_bytes)
            });
        let max_file_bytes = cmd
            .max_file_bytes
            .map_or(self.settings.max_file_bytes, |asked| {
                asked.min(self.settings.max_file_bytes)
            });
        let started_seq = self
            .audited(
                "command.started",
                &cmd,
                serde_json::json!({
                    "run_id": cmd.run_id, "task": cmd.task, "command": cmd.command_line,
                    "program": cmd.program, "args": cmd.args, "workspace": cmd.workspace, "cwd": "/workspace",
                    "allow_network": cmd.allow_network, "timeout_secs": cmd.timeout_secs,
                    "output_cap_bytes": output_cap, "max_file_bytes": max_file_bytes,
                    "decision": cmd.decision, "rule": cmd.rule, "approver": cmd.approver,
                }),
            )
            .await?;
        let mut spec = RunSpec::new(
            cmd.program.clone(),
            cmd.args.clone(),
            workspace,
            &self.settings,
        );
        spec.allow_network = cmd.allow_network;
        spec.output_cap = output_cap;
        spec.max_file_bytes = max_file_bytes;
        if let Some(secs) = cmd.timeout_secs {
            spec.timeout = Duration::from_secs(secs);
        }
        let cancel = CancelHandle::new();
        {
            let mut running = lock(&self.running);
            if running.contains_key(&cmd.run_id) {
                return Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!("run {} is already in progress", cmd.run_id),
                ));
            }
            running.insert(cmd.run_id, cancel.clone());
        }
        let this = Arc::clone(self);
        let run_id = cmd.run_id;
        let outcome = tokio::task::spawn_blocking(move || {
            let watch = DiskWatch::start(disk, watched, cancel.clone());
            let r = super::run_with_cancel(&spec, &this.settings, &this.self_exe, &cancel);
            lock(&this.running).remove(&run_id);
            (r, watch.stop())
        })
        .await
        .map_err(|e| {
            WireError::new(ErrorCode::Internal, format!("sandbox run task failed: {e}"))
        })?;
        let (outcome, stopped_by_disk) = outcome;
        let result = match outcome {
            Ok(o) => {
                let mut r = result_of(&o);
                if let Some(why) = stopped_by_disk {
                    r.stderr
                        .push_str(&format!("\n[the sandbox stopped the command: {why}]"));
                }
                r
            }
            Err(e) => {
                let message = crate::error_chain(&e);
                self.audited(
                    "command.failed",
                    &cmd,
                    serde_json::json!({"run_id": cmd.run_id, "task": cmd.task, "started_seq": started_seq, "error": message}),
                )
                .await?;
                return Err(WireError::new(ErrorCode::BadRequest, message));
            }
        };
        let (stdout, stdout_cut) = capped_text(result.stdout.as_bytes(), AUDIT_OUTPUT);
        let (stderr, stderr_cut) = capped_text(result.stderr.as_bytes(), AUDIT_OUTPUT);
        self.audited(
            "command.output",
            &cmd,
            serde_json::json!({
                "run_id": cmd.run_id, "task": cmd.task, "started_seq": started_seq,
                "stdout": stdout, "stderr": stderr,
                "stdout_truncated": result.stdout_truncated || stdout_cut,
                "stderr_truncated": result.stderr_truncated || stderr_cut,
            }),
        )
        .await?;
        self.audited(
            "command.finished",
            &cmd,
            serde_json::json!({
                "run_id": cmd.run_id, "task": cmd.task, "started_seq": started_seq,
                "exit_code": result.exit_code, "status": result.status, "duration_ms": result.duration_ms,
                "isolation": result.isolation,
            }),
        )
        .await?;
        Ok(result)
    }
}

/// Watches a running command's workspace: past the quota, or with the disk
/// down to its reserve, the command is killed (checked every 250 ms; the
/// quota's directory walk once a second).
struct DiskWatch {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Option<super::disk::DiskRefusal>>,
}

impl DiskWatch {
    fn start(policy: super::disk::DiskPolicy, dir: PathBuf, cancel: CancelHandle) -> DiskWatch {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut tick = 0u32;
            loop {
                match stopped.recv_timeout(Duration::from_millis(250)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return None,
                }
                tick = tick.wrapping_add(1);
                if let Err(why) = policy.check_running(&dir, tick.is_multiple_of(4)) {
                    cancel.cancel();
                    return Some(why);
                }
            }
        });
        DiskWatch { stop, thread }
    }

    /// Ends the watch; why it killed the command, if it did.
    fn stop(self) -> Option<super::disk::DiskRefusal> {
        let _ = self.stop.send(());
        self.thread.join().ok().flatten()
    }
}

fn result_of(o: &RunOutcome) -> RunResult {
    let (stdout, cut_out) = capped_text(&o.stdout, MAX_REPLY_OUTPUT);
    let (stderr, cut_err) = capped_text(&o.stderr, MAX_REPLY_OUTPUT);
    RunResult {
        exit_code: o.status.code(),
        status: match o.status {
            ExitKind::Exited(_) => "exited",
            ExitKind::Signaled(_) => "signaled",
            ExitKind::TimedOut => "timed_out",
            ExitKind::Killed => "killed",
        }
        .to_string(),
        stdout,
        stderr,
        stdout_truncated: o.stdout_truncated || cut_out,
        stderr_truncated: o.stderr_truncated || cut_err,
        duration_ms: u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX),
        isolation: o.isolation.summary(),
    }
}

/// Lossy UTF-8 of at most `cap` bytes, cut on a character boundary.
pub fn capped_text(bytes: &[u8], cap: usize) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= cap {
        return (text.into_owned(), false);
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_text_cuts_on_char_boundary() {
        let (t, cut) = capped_text("aé".as_bytes(), 2);
        assert_eq!(t, "a");
        assert!(cut);
        let (t, cut) = capped_text(b"abc", 3);
        assert_eq!(t, "abc");
        assert!(!cut);
        let (t, _) = capped_text(&[0xff, b'x'], 10);
        assert_eq!(t, "\u{fffd}x");
    }
}
