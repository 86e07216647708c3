//! Tools the agent may call. The loop sees only the [`Tool`] trait; the
//! gateway decides which tools a context allows (shell tools go through the
//! guard and sandbox elsewhere). Implemented here: the workspace file tools
//! (`read_file`, `write_file`, `list_files`) over a local
//! [`crate::sandbox::Workspace`], and the per-user `memory` tool.
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
pub use workspace::{ListFilesTool, ReadFileTool, WriteFileTool};

use super::types::ToolDefinition;

/// What a tool asks the owner to approve before it can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub tool: String,
    /// The exact action the approval is bound to: the command line (shell tools), or
    /// for a file write `write_file PATH (N bytes, sha256 HEX)` ([`FileWrite::binding`]).
    pub command: String,
    /// The working directory it would run in (the workspace).
    pub cwd: String,
    /// Why approval is needed (the guard's rule).
    pub reason: String,
    /// For a file write: the path and the exact content, whose hash `command` carries.
    #[serde(default)]
    pub write: Option<FileWrite>,
}

/// A file write waiting for the owner's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWrite {
    pub path: String,
    pub content: String,
}

/// Lines of a pending write's content shown to the owner.
const SHOWN_LINES: usize = 5;
/// Characters per shown line.
const SHOWN_LINE_CHARS: usize = 120;

impl FileWrite {
    /// What an approval of this write is bound to: the path, the size and the SHA-256 of
    /// the content, so what is written is exactly what was approved.
    pub fn binding(&self) -> String {
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(self.content.as_bytes()));
        format!(
            "write_file {} ({} bytes, sha256 {hash})",
            self.path,
            self.content.len()
        )
    }

    /// The first lines of the content, each cut and with control characters shown
    /// escaped, for the owner to read before approving.
    pub fn preview(&self) -> String {
        let mut out: Vec<String> = self
            .content
            .lines()
            .take(SHOWN_LINES)
            .map(|l| {
                let shown: String = l.chars().take(SHOWN_LINE_CHARS).collect();
                let cut = if shown.len() < l.len() { " [...]" } else { "" };
                format!("> {}{cut}", shown.escape_debug())
            })
            .collect();
        if self.content.lines().count() > SHOWN_LINES {
            out.push("> [...]".to_string());
        }
        out.join("\n")
    }
}

impl ApprovalRequest {
    /// A request to write `write` in workspace `cwd`, bound to its content.
    pub fn file_write(write: FileWrite, cwd: String, reason: String) -> Self {
        ApprovalRequest {
            tool: "write_file".to_string(),
            command: write.binding(),
            cwd,
            reason,
            write: Some(write),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_bound_to_its_exact_content() {
        let w = |c: &str| FileWrite {
            path: ".git/config".into(),
            content: c.into(),
        };
        let a = w("[core]\n\tfsmonitor = x\n").binding();
        assert!(
            a.starts_with("write_file .git/config (22 bytes, sha256 "),
            "{a}"
        );
        assert_ne!(a, w("[core]\n\tfsmonitor = y\n").binding());
        assert_eq!(a, w("[core]\n\tfsmonitor = x\n").binding());
    }

    #[test]
    fn preview_shows_first_lines_escaped_and_cut() {
        let long = "x".repeat(500);
        let w = FileWrite {
            path: "a".into(),
            content: format!("one\n\u{1b}[2Jtwo\n{long}\n4\n5\n6\n"),
        };
        let p = w.preview();
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "> one");
        assert_eq!(lines[1], "> \\u{1b}[2Jtwo");
        assert!(
            lines[2].ends_with(" [...]") && lines[2].len() < 200,
            "{}",
            lines[2]
        );
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[5], "> [...]");
    }
}
