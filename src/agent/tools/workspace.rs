//! The agent's workspace file tools (`read_file`, `write_file`, `list_files`)
//! over a [`Workspace`] opened in this process. The gateway does not use them:
//! its file tools ask the sandbox component, which owns the workspaces.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{ApprovalRequest, FileWrite, Tool, ToolOutcome, str_field};
use crate::guard::{WriteClass, classify_write};
use crate::sandbox::{Workspace, WorkspaceError};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkspaceError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the file operation was aborted".to_string()),
    }
}

fn path_schema(extra: Option<(&str, &str)>) -> Value {
    let mut props =
        json!({"path": {"type": "string", "description": "Path relative to the workspace"}});
    let mut required = vec!["path"];
    if let Some((k, d)) = extra {
        props[k] = json!({"type": "string", "description": d});
        required.push(k);
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// `read_file`: read a UTF-8 file of the workspace.
#[derive(Debug, Clone)]
pub struct ReadFileTool(pub Arc<Workspace>);

#[async_trait]
impl Tool for ReadFileTool {
    fn name(&self) -> &str {
        "read_file"
    }
    fn description(&self) -> &str {
        "Read a text file of the task workspace."
    }
    fn input_schema(&self) -> Value {
        path_schema(None)
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let path = match str_field("read_file", &input, "path") {
            Ok(p) => p.to_string(),
            Err(e) => return ToolOutcome::Failed(e.to_string()),
        };
        let ws = self.0.clone();
        match blocking(move || ws.read(&path)).await {
            Ok(s) => ToolOutcome::Output(s),
            Err(e) => ToolOutcome::Failed(e),
        }
    }
}

/// `write_file`: create or replace a file of the workspace; a file that configures
/// execution is not written but asked for ([`ToolOutcome::NeedsApproval`]).
#[derive(Debug, Clone)]
pub struct WriteFileTool(pub Arc<Workspace>);

#[async_trait]
impl Tool for WriteFileTool {
    fn name(&self) -> &str {
        "write_file"
    }
    fn description(&self) -> &str {
        "Create or replace a text file of the task workspace."
    }
    fn input_schema(&self) -> Value {
        path_schema(Some(("content", "The full new content of the file")))
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let (path, content) = match (
            str_field("write_file", &input, "path"),
            str_field("write_file", &input, "content"),
        ) {
            (Ok(p), Ok(c)) => (p.to_string(), c.to_string()),
            (Err(e), _) | (_, Err(e)) => return ToolOutcome::Failed(e.to_string()),
        };
        // A file some program would read and act on implicitly is the owner's matter
        // (crate::guard::classify_write); the rest is refused or written below.
        if let WriteClass::ExecConfig(why) = classify_write(&path) {
            return ToolOutcome::NeedsApproval(ApprovalRequest::file_write(
                FileWrite { path, content },
                self.0.root().display().to_string(),
                format!("builtin:exec-config-file: writes a file that configures execution: {why}"),
            ));
        }
        let ws = self.0.clone();
        let n = content.len();
        let shown = path.clone();
        match blocking(move || ws.write(&path, &content)).await {
            Ok(()) => ToolOutcome::Output(format!("wrote {n} bytes to {shown}")),
            Err(e) => ToolOutcome::Failed(e),
        }
    }
}

/// `list_files`: list a directory of the workspace.
#[derive(Debug, Clone)]
pub struct ListFilesTool(pub Arc<Workspace>);

#[async_trait]
impl Tool for ListFilesTool {
    fn name(&self) -> &str {
        "list_files"
    }
    fn description(&self) -> &str {
        "List a directory of the task workspace (\".\" for its top)."
    }
    fn input_schema(&self) -> Value {
        path_schema(None)
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let path = input["path"].as_str().unwrap_or(".").to_string();
        let ws = self.0.clone();
        match blocking(move || ws.list(&path)).await {
            Ok(s) => ToolOutcome::Output(s),
            Err(e) => ToolOutcome::Failed(e),
        }
    }
}
