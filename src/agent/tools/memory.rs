//! Per-user memory notes: a small append-only text per user, kept in one file
//! per user (name = hex of the user id) under a directory the agent owns.
//! Not offered in group contexts (the gateway decides).

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Tool, ToolOutcome, str_field};
use crate::agent::error::ToolError;

/// Storage of the notes.
pub trait MemoryStore: Send + Sync + fmt::Debug {
    fn read(&self, user: &str) -> Result<String, ToolError>;
    fn append(&self, user: &str, note: &str) -> Result<(), ToolError>;
    fn clear(&self, user: &str) -> Result<(), ToolError>;
}

/// Notes in `dir/<hex(user)>.txt`, 0600, capped at `max_bytes` per user.
#[derive(Debug)]
pub struct FileMemoryStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl FileMemoryStore {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        FileMemoryStore { dir, max_bytes }
    }

    fn file(&self, user: &str) -> PathBuf {
        let hex: String = user.bytes().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.txt"))
    }

    fn err(user: &str, what: String) -> ToolError {
        ToolError::Memory {
            user: user.to_string(),
            what,
        }
    }
}

impl MemoryStore for FileMemoryStore {
    fn read(&self, user: &str) -> Result<String, ToolError> {
        match std::fs::read_to_string(self.file(user)) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(Self::err(user, format!("reading failed: {e}"))),
        }
    }

    fn append(&self, user: &str, note: &str) -> Result<(), ToolError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.file(user);
        let current = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if current + note.len() as u64 + 1 > self.max_bytes {
            return Err(Self::err(
                user,
                format!("the notes would exceed {} bytes", self.max_bytes),
            ));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Self::err(user, format!("creating the directory failed: {e}")))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Self::err(user, format!("opening failed: {e}")))?;
        let line = note.replace('\n', " ");
        writeln!(f, "{line}").map_err(|e| Self::err(user, format!("writing failed: {e}")))
    }

    fn clear(&self, user: &str) -> Result<(), ToolError> {
        match std::fs::remove_file(self.file(user)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::err(user, format!("removing failed: {e}"))),
        }
    }
}

/// `memory`: the current user's notes (`recall`, `remember`, `forget`).
#[derive(Debug, Clone)]
pub struct MemoryTool {
    store: Arc<dyn MemoryStore>,
    user: String,
}

impl MemoryTool {
    pub fn new(store: Arc<dyn MemoryStore>, user: impl Into<String>) -> Self {
        MemoryTool {
            store,
            user: user.into(),
        }
    }
}

#[async_trait]
impl Tool for MemoryTool {
    fn name(&self) -> &str {
        "memory"
    }
    fn description(&self) -> &str {
        "Your notes about this user: action `recall` reads them, `remember` adds `note`, `forget` clears them."
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object",
               "properties": {"action": {"type": "string", "enum": ["recall", "remember", "forget"]},
                              "note": {"type": "string"}},
               "required": ["action"]})
    }
    async fn call(&self, input: Value) -> ToolOutcome {
        let action = match str_field("memory", &input, "action") {
            Ok(a) => a,
            Err(e) => return ToolOutcome::Failed(e.to_string()),
        };
        let r = match action {
            "recall" => self.store.read(&self.user),
            "remember" => match str_field("memory", &input, "note") {
                Ok(n) => self
                    .store
                    .append(&self.user, n)
                    .map(|()| "noted".to_string()),
                Err(e) => Err(e),
            },
            "forget" => self
                .store
                .clear(&self.user)
                .map(|()| "forgotten".to_string()),
            _ => Err(ToolError::ParseInput {
                tool: "memory".into(),
                what: "`action` must be recall, remember or forget".into(),
            }),
        };
        match r {
            Ok(s) => ToolOutcome::Output(s),
            Err(e) => ToolOutcome::Failed(e.to_string()),
        }
    }
}
