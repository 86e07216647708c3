//! The judgement types: [`Decision`], [`Verdict`], [`SegmentVerdict`].

use serde::{Deserialize, Serialize};

/// What may happen to a proposed command. Ordered by strictness: `Allow < Ask < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Matches a trusted pattern and nothing in it needs a person's look.
    Allow,
    /// Needs the owner's approval.
    Ask,
    /// Never runs.
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Ask => "ask",
            Decision::Block => "block",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The judgement of one simple command (a segment of the command line, or a command found
/// inside it: a wrapper's inner command, `sh -c` text, a substitution, decoded payload...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentVerdict {
    /// The command as the judge saw it (after quote removal), for display.
    pub command: String,
    pub decision: Decision,
    /// `builtin:NAME`, `trusted:PATTERN`, `config:PATTERN`, `rules:NAME`, or `default`.
    pub rule: String,
    pub reason: String,
}

/// The judgement of a whole command line: the strictest of its segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    pub rule: String,
    pub reason: String,
    pub segments: Vec<SegmentVerdict>,
}

/// A decision with the rule that made it; combined by strictness (first one wins a tie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub decision: Decision,
    pub rule: String,
    pub reason: String,
}

impl Finding {
    pub fn new(decision: Decision, rule: &str, reason: impl Into<String>) -> Finding {
        Finding {
            decision,
            rule: rule.to_string(),
            reason: reason.into(),
        }
    }

    pub fn block(rule: &str, reason: impl Into<String>) -> Finding {
        Finding::new(Decision::Block, rule, reason)
    }

    pub fn ask(rule: &str, reason: impl Into<String>) -> Finding {
        Finding::new(Decision::Ask, rule, reason)
    }
}

/// Keep the stricter of `acc` and `f`; on a tie the earlier one, unless it is only the default
/// rule and `f` names a specific one (so `ls | sh` reports the pipe, not "no trusted pattern").
pub(crate) fn raise(acc: &mut Option<Finding>, f: Option<Finding>) {
    if let Some(f) = f {
        match acc {
            Some(a) if a.decision > f.decision => {}
            Some(a)
                if a.decision == f.decision && !(a.rule == "default" && f.rule != "default") => {}
            _ => *acc = Some(f),
        }
    }
}
