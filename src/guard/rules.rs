//! Argv-prefix rules (trusted and blocked) from `[guard]` and the optional rules file.
//!
//! A pattern is parsed with the same shell parser as commands and must be one simple command of
//! static words (`git status`, `'cargo' test`). It matches a parsed command whose argv starts with
//! exactly those tokens: `git status` matches `git status --short` but not `git statusx` nor
//! `git -c core.pager=sh status`.

use std::path::Path;

use serde::Deserialize;

use super::analyze::{Arg, basename};
use super::ast::{Command, Part};
use super::error::GuardError;
use super::interp::interp_trust_ok;
use super::parser;
use super::verdict::{Decision, Finding};
use super::wrappers::untrustable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrefixRule {
    pub id: String,
    pub tokens: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    pub trusted: Vec<PrefixRule>,
    pub blocked: Vec<PrefixRule>,
}

/// Parse a pattern into argv tokens.
pub(crate) fn parse_pattern(rule: &str, pattern: &str) -> Result<Vec<String>, GuardError> {
    let bad = |reason: &str| GuardError::InvalidPattern {
        rule: rule.to_string(),
        pattern: pattern.to_string(),
        reason: reason.to_string(),
    };
    if pattern.trim().is_empty() {
        return Err(bad("empty pattern"));
    }
    let script = parser::parse(pattern, 0).map_err(|e| bad(&e.to_string()))?;
    let [item] = script.items.as_slice() else {
        return Err(bad("a pattern must be exactly one simple command"));
    };
    if !item.rest.is_empty() || item.background || item.first.cmds.len() != 1 {
        return Err(bad("a pattern must be exactly one simple command"));
    }
    let Command::Simple(sc) = &item.first.cmds[0] else {
        return Err(bad("a pattern must be a simple command"));
    };
    if !sc.assigns.is_empty() || !sc.redirs.is_empty() {
        return Err(bad("a pattern cannot hold assignments or redirections"));
    }
    let mut tokens = Vec::new();
    for w in &sc.words {
        let glob = w.parts.iter().any(
            |p| matches!(p, Part::Lit { text, quoted: false } if text.contains(['*', '?']) || (text.contains('[') && text.contains(']'))),
        );
        match w.static_text() {
            Some(t) if !glob => tokens.push(t),
            _ => {
                return Err(bad(
                    "patterns are literal argv tokens: no expansions or globs",
                ));
            }
        }
    }
    Ok(tokens)
}

impl RuleSet {
    /// A trusted rule matching `argv` (argv[0] compared exactly, no basename), as an allow.
    /// Wrappers, shells, `eval` never match; interpreters only with 2+ tokens and no inline code.
    pub fn trusted(&self, argv: &[Arg]) -> Option<Finding> {
        let base = basename(&argv.first()?.text);
        if untrustable(base) {
            return None;
        }
        self.trusted
            .iter()
            .find(|r| prefix_match(&r.tokens, argv, false) && interp_trust_ok(argv, r.tokens.len()))
            .map(|r| Finding::new(Decision::Allow, &r.id, r.reason.clone()))
    }

    /// A blocked rule matching `argv` (argv[0] compared by basename too).
    pub fn blocked(&self, argv: &[Arg]) -> Option<Finding> {
        self.blocked
            .iter()
            .find(|r| prefix_match(&r.tokens, argv, true))
            .map(|r| Finding::block(&r.id, r.reason.clone()))
    }
}

fn prefix_match(tokens: &[String], argv: &[Arg], by_basename: bool) -> bool {
    if tokens.is_empty() || argv.len() < tokens.len() {
        return false;
    }
    tokens.iter().zip(argv).enumerate().all(|(i, (t, a))| {
        if a.unknown || a.glob {
            return false;
        }
        a.text == *t || (i == 0 && by_basename && !t.contains('/') && basename(&a.text) == t)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RuleAction {
    Allow,
    Block,
}

/// One `[[rule]]` of the rules file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub pattern: String,
    pub action: RuleAction,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub matches: Vec<String>,
    #[serde(default)]
    pub does_not_match: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

impl RuleSpec {
    pub fn id(&self) -> String {
        format!("rules:{}", self.name.as_deref().unwrap_or(&self.pattern))
    }
}

/// Read and parse a rules file (examples are checked by the caller, which owns the judge).
pub(crate) fn load_rules_file(path: &Path) -> Result<Vec<RuleSpec>, GuardError> {
    let text = std::fs::read_to_string(path).map_err(|source| GuardError::ReadRulesFile {
        path: path.to_path_buf(),
        source,
    })?;
    let file: RulesFile = toml::from_str(&text).map_err(|e| GuardError::ParseRulesFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(file.rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Arg> {
        v.iter().map(|s| Arg::lit(s)).collect()
    }

    #[test]
    fn patterns() {
        assert_eq!(
            parse_pattern("t", "'git' \"status\"").expect("ok"),
            vec!["git", "status"]
        );
        assert!(parse_pattern("t", "").is_err());
        assert!(parse_pattern("t", "   ").is_err());
        assert!(parse_pattern("t", "git 'status").is_err());
        assert!(parse_pattern("t", "ls; rm").is_err());
        assert!(parse_pattern("t", "ls | cat").is_err());
        assert!(parse_pattern("t", "ls $X").is_err());
        assert!(parse_pattern("t", "ls *").is_err());
        assert!(parse_pattern("t", "A=b ls").is_err());
        assert!(parse_pattern("t", "ls > x").is_err());
    }

    #[test]
    fn prefix_matching() {
        let rs = RuleSet {
            trusted: vec![PrefixRule {
                id: "trusted:git status".into(),
                tokens: vec!["git".into(), "status".into()],
                reason: String::new(),
            }],
            blocked: vec![PrefixRule {
                id: "config:npm publish".into(),
                tokens: vec!["npm".into(), "publish".into()],
                reason: String::new(),
            }],
        };
        assert!(rs.trusted(&args(&["git", "status", "--short"])).is_some());
        assert!(rs.trusted(&args(&["git", "statusx"])).is_none());
        assert!(
            rs.trusted(&args(&["git", "-c", "core.pager=sh", "status"]))
                .is_none()
        );
        assert!(rs.trusted(&args(&["/usr/bin/git", "status"])).is_none());
        assert!(
            rs.blocked(&args(&["/usr/bin/npm", "publish", "--tag", "x"]))
                .is_some()
        );
        assert!(rs.blocked(&args(&["npm", "test"])).is_none());
    }
}
