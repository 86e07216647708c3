//! Tools the agent may call. The loop sees only the [`Tool`] trait; the
//! gateway decides which tools a context allows (shell tools go through the
//! guard and sandbox elsewhere). Implemented here: the workspace file tools
//! (`read_file`, `write_file`, `list_files`) and the per-user `memory` tool.
//!
//! There is no `clipboard` tool: the appliance is headless and has no
//! clipboard, so it is never offered.

mod memory;
mod workspace;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use memory::{FileMemoryStore, MemoryStore, MemoryTool};
pub use workspace::{ListFilesTool, ReadFileTool, Workspace, WriteFileTool};

use super::types::ToolDefinition;

/// What a tool asks the owner to approve before it can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub tool: String,
    /// The exact command line to approve (for shell tools).
    pub command: String,
    /// The working directory it would run in.
    pub cwd: String,
    /// Why approval is needed (the guard's rule).
    pub reason: String,
}

/// Result of one tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolOutcome {
    /// Success; the text goes back to the model.
    Output(String),
    /// The tool ran (or tried) and failed; the message goes back as an error result.
    Failed(String),
    /// Refused by policy; the reason goes back to the model as an error result.
    Denied(String),
    /// Needs the owner's approval first; the loop pauses the task.
    NeedsApproval(ApprovalRequest),
}

/// A tool the model may call.
#[async_trait]
pub trait Tool: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON schema of the input object.
    fn input_schema(&self) -> Value;
    async fn call(&self, input: Value) -> ToolOutcome;

    /// The definition offered to the model.
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: self.name().to_string(),
            description: self.description().to_string(),
            input_schema: self.input_schema(),
        }
    }
}

/// A required string field of a tool input.
pub(crate) fn str_field<'a>(
    tool: &str,
    input: &'a Value,
    key: &str,
) -> Result<&'a str, super::error::ToolError> {
    input[key]
        .as_str()
        .ok_or_else(|| super::error::ToolError::ParseInput {
            tool: tool.to_string(),
            what: format!("`{key}` must be a string"),
        })
}
