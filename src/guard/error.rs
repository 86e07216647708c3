//! Errors of the guard module: loading its settings and rules. Judging a command never fails
//! (bad input is an `ask` verdict), so there is no error for it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("cannot read guard rules file {path}: {source}")]
    ReadRulesFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse guard rules file {path}: {message}")]
    ParseRulesFile { path: PathBuf, message: String },
    #[error("invalid guard pattern for {rule} ({pattern:?}): {reason}")]
    InvalidPattern {
        rule: String,
        pattern: String,
        reason: String,
    },
    #[error("guard rule {rule}: example {example:?} {problem}")]
    RuleExample {
        rule: String,
        example: String,
        problem: String,
    },
    #[error("invalid limit {key}: {reason}")]
    InvalidLimit { key: &'static str, reason: String },
}
