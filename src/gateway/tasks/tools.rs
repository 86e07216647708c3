//! The tools a task's agent may call, as the gateway provides them:
//! `run_command` (guard → approval or sandbox) and the workspace file tools,
//! which run inside the sandbox component (it owns the workspaces) over IPC,
//! and the memory notes. Every call is audited as `task.tool_call` first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::agent::tools::MemoryTool;
use crate::agent::{ApprovalRequest, FileWrite, Tool, ToolOutcome};
use crate::guard::{Decision, Guard};
use crate::ipc::{
    Client, ComponentRequest, ComponentResponse, FileOp, FileRequest, RunCommand, RunResult,
    SandboxRequest, SandboxResponse,
};

use crate::gateway::sinks::Trail;

/// The gateway's connection to the sandbox component.
pub type SandboxClient = Client<ComponentRequest, ComponentResponse>;

/// Command output handed back to the model, per stream, whatever
/// `[limits] output_cap_bytes` lets the sandbox capture: it guards the
/// model's context, not the appliance's memory.
const MODEL_OUTPUT_CAP: u64 = 16 * 1024;
/// Beyond the command's own timeout, how long the sandbox may take to answer.
const SANDBOX_SLACK: Duration = Duration::from_secs(30);

/// What `[limits]` bounds in each command and file call of a task; the
/// sandbox holds them to its `[sandbox]` ceilings as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLimits {
    /// `command_timeout_secs` (validated to be at most `command_timeout_max_secs`).
    pub timeout_secs: u64,
    /// `output_cap_bytes`: captured stdout, and stderr, of one command.
    pub output_cap_bytes: u64,
    /// `max_file_bytes`: one file of the file tools, and RLIMIT_FSIZE of commands.
    pub max_file_bytes: u64,
}

impl From<&crate::guard::LimitSettings> for CommandLimits {
    fn from(l: &crate::guard::LimitSettings) -> Self {
        CommandLimits {
            // Never more than the most a command may ask for, even if the
            // settings were not validated.
            timeout_secs: l.command_timeout_secs.min(l.command_timeout_max_secs),
            output_cap_bytes: l.output_cap_bytes,
            max_file_bytes: l.max_file_bytes,
        }
    }
}

impl CommandLimits {
    /// The largest content one file tool call carries: the limit, and what
    /// fits a frame.
    fn file_cap(&self) -> u64 {
        self.max_file_bytes.min(crate::ipc::MAX_FILE_BYTES)
    }
}

/// What every tool of one task shares: who asked, where, and the handle that
/// lets a cancel reach the command in flight.
#[derive(Debug, Clone)]
pub struct TaskScope {
    pub task_id: String,
    /// `channel:sender`
    pub requester: String,
    /// The sandbox workspace name of this task's context.
    pub workspace: String,
    /// Write generations of every workspace (shared by the runtime's tasks).
    pub writes: Arc<WorkspaceWrites>,
    pub sandbox: Arc<SandboxClient>,
    pub trail: Trail,
    /// The sandbox run in flight, if any (for cancel).
    pub run: Arc<Mutex<Option<u64>>>,
    pub limits: CommandLimits,
}

impl TaskScope {
    async fn tool_call(&self, tool: &str, payload: Value) {
        let mut payload = payload;
        payload["tool"] = json!(tool);
        payload["task"] = json!(self.task_id);
        self.trail
            .note("task.tool_call", &self.requester, payload)
            .await;
    }

    /// Runs `command` in this task's workspace through the sandbox (which
    /// audits command.started / output / finished itself).
    pub async fn run_in_sandbox(
        &self,
        command: &str,
        decision: &str,
        rule: &str,
        approver: Option<String>,
    ) -> ToolOutcome {
        let run_id = rand::random::<u64>() >> 1;
        *lock(&self.run) = Some(run_id);
        let request = ComponentRequest::Sandbox(SandboxRequest::Run(Box::new(RunCommand {
            run_id,
            program: "/bin/sh".to_string(),
            args: vec!["-c".to_string(), command.to_string()],
            workspace: self.workspace.clone(),
            allow_network: false,
            timeout_secs: Some(self.limits.timeout_secs),
            output_cap_bytes: Some(self.limits.output_cap_bytes),
            max_file_bytes: Some(self.limits.max_file_bytes),
            command_line: command.to_string(),
            task: Some(self.task_id.clone()),
            requester: self.requester.clone(),
            decision: decision.to_string(),
            rule: rule.to_string(),
            approver,
        })));
        let wait = Duration::from_secs(self.limits.timeout_secs) + SANDBOX_SLACK;
        // Cleared however the call ends (a dropped future included).
        let _clear = ClearOnDrop(Arc::clone(&self.run));
        // A command may write anything in its workspace, while it runs too.
        let _written = self.writes.writing(&self.workspace);
        let answer = self.sandbox.call_with_timeout(request, wait).await;
        self.trail
            .note(
                "command.run",
                &self.requester,
                json!({"task": self.task_id, "run_id": run_id, "decision": decision, "rule": rule,
                       "ok": matches!(answer, Ok(ComponentResponse::Sandbox(SandboxResponse::Finished(_))))}),
            )
            .await;
        match answer {
            Ok(ComponentResponse::Sandbox(SandboxResponse::Finished(r))) => {
                command_outcome(&r, self.limits.output_cap_bytes)
            }
            Ok(ComponentResponse::Error(e)) => {
                ToolOutcome::Failed(format!("the sandbox refused the command: {}", e.message))
            }
            Ok(_) => ToolOutcome::Failed("the sandbox gave an unexpected answer".to_string()),
            Err(e) => ToolOutcome::Failed(format!("the sandbox is unreachable: {e}")),
        }
    }
}

/// A counter per workspace, moved on every command run and file write, so an
/// approval can tell whether the workspace is still as the owner saw it.
#[derive(Debug, Default)]
pub struct WorkspaceWrites {
    generations: Mutex<std::collections::HashMap<String, u64>>,
}

impl WorkspaceWrites {
    pub fn generation(&self, workspace: &str) -> u64 {
        lock(&self.generations).get(workspace).copied().unwrap_or(0)
    }

    fn bump(&self, workspace: &str) {
        let mut g = lock(&self.generations);
        let n = g.entry(workspace.to_string()).or_insert(0);
        *n = n.wrapping_add(1);
    }

    /// Moves the generation now and again when the returned guard drops (a
    /// write in progress is a change whichever side of it an approval falls).
    pub fn writing<'a>(&'a self, workspace: &'a str) -> impl Drop + 'a {
        self.bump(workspace);
        BumpOnDrop(self, workspace)
    }
}

struct BumpOnDrop<'a>(&'a WorkspaceWrites, &'a str);

impl Drop for BumpOnDrop<'_> {
    fn drop(&mut self) {
        self.0.bump(self.1);
    }
}

impl TaskScope {
    /// Runs one file operation in this task's workspace through the sandbox.
    async fn file_in_sandbox(&self, op: FileOp) -> ToolOutcome {
        let writes = matches!(op, FileOp::Write { .. });
        let request = ComponentRequest::Sandbox(SandboxRequest::File(FileRequest {
            workspace: self.workspace.clone(),
            op,
            max_bytes: Some(self.limits.file_cap()),
        }));
        let _written = writes.then(|| self.writes.writing(&self.workspace));
        match self.sandbox.call(request).await {
            Ok(ComponentResponse::Sandbox(SandboxResponse::File(text))) => {
                ToolOutcome::Output(text)
            }
            Ok(ComponentResponse::Error(e)) => ToolOutcome::Failed(e.message),
            Ok(_) => ToolOutcome::Failed("the sandbox gave an unexpected answer".to_string()),
            Err(e) => ToolOutcome::Failed(format!("the sandbox is unreachable: {e}")),
        }
    }

    /// Writes a file the owner approved: exactly the approved path and content.
    pub async fn write_approved(&self, write: &FileWrite, approver: &str) -> ToolOutcome {
        self.trail
            .note(
                "file.write_approved",
                &self.requester,
                json!({"task": self.task_id, "path": write.path, "length": write.content.len(),
                       "approver": approver}),
            )
            .await;
        self.file_in_sandbox(FileOp::Write {
            path: write.path.clone(),
            content: write.content.clone(),
        })
        .await
    }
}

struct ClearOnDrop(Arc<Mutex<Option<u64>>>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

/// The command's result as the model sees it: each stream at most
/// `output_cap_bytes` (what the sandbox captured) and [`MODEL_OUTPUT_CAP`],
/// a cut one marked with where it was cut.
fn command_outcome(r: &RunResult, output_cap_bytes: u64) -> ToolOutcome {
    let shown = output_cap_bytes.min(MODEL_OUTPUT_CAP);
    let cut = |s: &str, truncated: bool| {
        let (t, c) =
            crate::sandbox::capped_text(s.as_bytes(), usize::try_from(shown).unwrap_or(usize::MAX));
        if c || truncated {
            format!("{t}\n[output truncated at {shown} bytes]")
        } else {
            t
        }
    };
    let text = format!(
        "exit code {} ({})\nstdout:\n{}\nstderr:\n{}",
        r.exit_code,
        r.status,
        cut(&r.stdout, r.stdout_truncated),
        cut(&r.stderr, r.stderr_truncated)
    );
    if r.exit_code == 0 {
        ToolOutcome::Output(text)
    } else {
        ToolOutcome::Failed(text)
    }
}

/// `run_command`: one shell command line in the user's workspace. The guard
/// judges it: blocked → refused; ask → the task pauses for the owner's
/// approval; allowed (a trusted pattern) → run at once in the sandbox.
#[derive(Debug)]
pub struct RunCommandTool {
    pub scope: TaskScope,
    pub guard: Arc<Guard>,
}

#[async_trait]
impl Tool for RunCommandTool {
    fn name(&self) -> &str {
        "run_command"
    }
    fn description(&self) -> &str {
        "Run a shell command (POSIX sh) in the task workspace, without network. Some commands need the owner's approval first; some are never allowed."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object",
               "properties": {"command": {"type": "string", "description": "The command line"}},
               "required": ["command"]})
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let Some(command) = input["command"].as_str() else {
            return ToolOutcome::Failed("`command` must be a string".to_string());
        };
        let verdict = self.guard.check(command);
        self.scope
            .tool_call(
                "run_command",
                json!({"command": command, "decision": verdict.decision.as_str(),
                       "rule": verdict.rule, "reason": verdict.reason}),
            )
            .await;
        match verdict.decision {
            Decision::Block => ToolOutcome::Denied(format!(
                "blocked by the guard ({}): {}",
                verdict.rule, verdict.reason
            )),
            Decision::Ask => ToolOutcome::NeedsApproval(ApprovalRequest {
                tool: "run_command".to_string(),
                command: command.to_string(),
                cwd: self.scope.workspace.clone(),
                reason: format!("{}: {}", verdict.rule, verdict.reason),
                write: None,
            }),
            Decision::Allow => {
                self.scope
                    .run_in_sandbox(command, "allow", &verdict.rule, None)
                    .await
            }
        }
    }
}

/// Which file tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTool {
    Read,
    Write,
    List,
}

/// `read_file` / `write_file` / `list_files`, executed by the sandbox
/// component in the user's workspace. A write is judged by the guard first
/// ([`Guard::check_write`]): a file that configures execution waits for the
/// owner's approval, bound to its path, content hash and workspace.
#[derive(Debug)]
pub struct SandboxFileTool {
    pub scope: TaskScope,
    pub kind: FileTool,
    pub guard: Arc<Guard>,
}

fn path_schema(with_content: bool) -> Value {
    let mut props =
        json!({"path": {"type": "string", "description": "Path relative to the workspace"}});
    let mut required = vec!["path"];
    if with_content {
        props["content"] =
            json!({"type": "string", "description": "The full new content of the file"});
        required.push("content");
    }
    json!({"type": "object", "properties": props, "required": required})
}

#[async_trait]
impl Tool for SandboxFileTool {
    fn name(&self) -> &str {
        match self.kind {
            FileTool::Read => "read_file",
            FileTool::Write => "write_file",
            FileTool::List => "list_files",
        }
    }
    fn description(&self) -> &str {
        match self.kind {
            FileTool::Read => "Read a text file of the task workspace.",
            FileTool::Write => "Create or replace a text file of the task workspace.",
            FileTool::List => "List a directory of the task workspace (\".\" for its top).",
        }
    }
    fn input_schema(&self) -> Value {
        path_schema(self.kind == FileTool::Write)
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let path = match (self.kind, input["path"].as_str()) {
            (_, Some(p)) => p.to_string(),
            (FileTool::List, None) => ".".to_string(),
            (_, None) => return ToolOutcome::Failed("`path` must be a string".to_string()),
        };
        let op = match self.kind {
            FileTool::Read => FileOp::Read { path: path.clone() },
            FileTool::List => FileOp::List { path: path.clone() },
            FileTool::Write => {
                let Some(content) = input["content"].as_str() else {
                    return ToolOutcome::Failed("`content` must be a string".to_string());
                };
                let cap = self.scope.limits.file_cap();
                if content.len() as u64 > cap {
                    return ToolOutcome::Failed(format!(
                        "not written: the content is {} bytes, over the {cap}-byte file limit",
                        content.len()
                    ));
                }
                return self.write(path, content.to_string()).await;
            }
        };
        self.scope
            .tool_call(self.name(), json!({"path": path}))
            .await;
        self.scope.file_in_sandbox(op).await
    }
}

impl SandboxFileTool {
    /// `write_file`: judged like a command; written at once only when the guard allows.
    async fn write(&self, path: String, content: String) -> ToolOutcome {
        let verdict = self.guard.check_write(&path);
        self.scope
            .tool_call(
                self.name(),
                json!({"path": path, "length": content.len(),
                       "decision": verdict.decision.as_str(), "rule": verdict.rule}),
            )
            .await;
        match verdict.decision {
            Decision::Allow => {
                self.scope
                    .file_in_sandbox(FileOp::Write { path, content })
                    .await
            }
            Decision::Ask => ToolOutcome::NeedsApproval(ApprovalRequest::file_write(
                FileWrite { path, content },
                self.scope.workspace.clone(),
                format!("{}: {}", verdict.rule, verdict.reason),
            )),
            Decision::Block => ToolOutcome::Denied(format!(
                "blocked by the guard ({}): {}",
                verdict.rule, verdict.reason
            )),
        }
    }
}

/// `memory`, audited like every other tool. The entry records the operation
/// and the note's size, not its text: notes are what the model chose to keep
/// about a person, the trail is append-only (a `forget` could never remove
/// them from it) and redaction only catches secret shapes, not personal data.
#[derive(Debug)]
pub struct AuditedMemoryTool {
    pub scope: TaskScope,
    pub inner: MemoryTool,
}

#[async_trait]
impl Tool for AuditedMemoryTool {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn description(&self) -> &str {
        self.inner.description()
    }
    fn input_schema(&self) -> Value {
        self.inner.input_schema()
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let mut payload = json!({"action": input["action"].as_str().map(|a| a.chars().take(32).collect::<String>())});
        if let Some(note) = input["note"].as_str() {
            payload["length"] = json!(note.len());
        }
        self.scope.tool_call(self.name(), payload).await;
        self.inner.call(input).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::FileMemoryStore;
    use crate::gateway::sinks::{MemoryAudit, TrailWriter};

    #[tokio::test]
    async fn memory_calls_are_audited_by_operation_and_size_only() {
        let dir = tempfile::tempdir().unwrap();
        let notes = Arc::new(MemoryAudit::default());
        let scope = TaskScope {
            task_id: "t-1".into(),
            requester: "local:uid:1".into(),
            workspace: "w".into(),
            writes: Arc::default(),
            sandbox: Arc::new(SandboxClient::new(
                dir.path().join("none.sock"),
                crate::ipc::Role::Gateway,
                Duration::from_secs(1),
            )),
            trail: Trail::new(Arc::clone(&notes) as Arc<dyn TrailWriter>),
            run: Arc::new(Mutex::new(None)),
            limits: CommandLimits::from(&crate::guard::LimitSettings::default()),
        };
        let tool = AuditedMemoryTool {
            scope,
            inner: MemoryTool::new(
                Arc::new(FileMemoryStore::new(dir.path().join("m"), 4096)),
                "local:uid:1",
            ),
        };
        let note = "likes tea; lives at 12 Private Road";
        let out = tool.call(json!({"action": "remember", "note": note})).await;
        assert!(matches!(out, ToolOutcome::Output(_)), "{out:?}");
        tool.call(json!({"action": "recall"})).await;
        tool.call(json!({"action": 7})).await; // hostile: audited, refused
        let notes = notes.entries();
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes.iter().all(|e| e.kind == "task.tool_call"
            && e.subject == "local:uid:1"
            && e.payload["tool"] == "memory"
            && e.payload["task"] == "t-1"));
        assert_eq!(notes[0].payload["action"], "remember");
        assert_eq!(notes[0].payload["length"], note.len());
        assert_eq!(notes[1].payload["action"], "recall");
        assert!(notes[2].payload["action"].is_null());
        let all = serde_json::to_string(&notes).unwrap();
        assert!(
            !all.contains("Private Road"),
            "note text in the trail: {all}"
        );
    }
}
