//! Command guardrails: every shell command the agent proposes is judged here before it may run.
//!
//! Role: a pure library (no daemon, no I/O except reading the optional rules file at load time).
//! The gateway's agent loop calls [`Guard::check`] for each shell tool call and acts on the
//! [`Decision`]: `Block` never runs, `Ask` becomes an approval request, `Allow` goes straight to
//! the sandbox. Peers: the gateway (caller), `coworkctl guard check` (diagnostics); verdicts go to
//! the audit trail through the gateway. Privileges: none. Data owned: none beyond the loaded rules.
//! It also owns the shared limit settings `[limits]` ([`LimitSettings`]).
//!
//! How a command is judged:
//! 1. Input over 64 KiB, with NUL bytes, that does not parse, or nested deeper than a fixed bound
//!    → `Ask` (never `Allow`, never a panic).
//! 2. The command line is parsed as POSIX `sh` ([`parser`]); every simple command, including those
//!    inside pipelines, lists, subshells, groups, functions, `$(..)`, backticks, `<(..)`, the
//!    inner commands of wrappers (`sudo`, `env`, `nice`, `timeout`, `xargs`, `find -exec`,
//!    `busybox`, `watch`...), `sh -c STRING`, `eval`, here-docs fed to shells and statically
//!    decoded payloads (`base64 -d`, `xxd -r -p`, `printf`/`echo -e` escapes, `rev`) is a segment.
//! 3. Each segment gets `Block` (built-in rules, then extra `blocked` prefix rules), an `Ask` floor
//!    (things a person must see even when trusted), `Allow` (a trusted prefix rule), else `Ask`.
//! 4. The verdict is the strictest segment (`Allow < Ask < Block`).
//!
//! The trusted-prefix rule, exactly: a simple command is `Allow`ed only when
//! (a) its argv starts with all tokens of a trusted pattern (argv[0] compared literally, after
//! quote removal), (b) no built-in rule puts a floor on it, (c) no word of it (argv, assignment
//! values, redirection targets, here-doc text) contains an expansion whose value is not
//! statically known (`$VAR`, `$(..)`, backticks, `$((..))`, process substitution), its command
//! name has no glob, and (d) every file redirection targets a relative path inside the workspace
//! (no leading `/` other than `/dev/null`-like devices, no `~`, no `..` escaping). Wrappers,
//! shells, `eval`, `source` and `xargs` can never be trusted by a prefix rule: their inner command
//! is judged instead (so `nice cargo test` is allowed by a `cargo test` rule, and a `bash` rule
//! allows nothing). Interpreters (`python3`, `node`...) are trusted only by rules of two or more
//! tokens (`python3 -m pytest`) and never with inline code (`-c`, `-e`...).
//! Built-in block rules always win over trusted patterns.
//!
//! **What a trusted rule admits.** A trusted pattern names the command shape the owner meant
//! (`sort`, `rg`, `git diff`, `tar -tf`) and nothing that makes that command run another
//! program or write outside the workspace. So whatever rule matches, an option that names a
//! program or command line to run (`sort --compress-program`, `rg --pre`, `git diff
//! --ext-diff`, `git -c`, `tar --to-command`, `rsync -e`, `ssh -o ProxyCommand=`), that reads
//! options or code from a file (`curl -K`, `ssh -F`, `awk -f`, `@file`), that moves the working
//! directory or repository elsewhere (`git -C /x`, `env -C /x`) or that lifts a path check
//! (`tar -P`) is `Ask` (`nc -e` stays `Block`), and an option naming a file written
//! (`-o FILE`, `--target-directory`) is judged like a redirection. Options are read the way
//! the command reads them, one table per command ([`options`]): attached and separated values
//! are one case (`-oFILE` = `-o FILE` = `--output=FILE` = `--output FILE` = `-uo FILE`), as are
//! unique abbreviations of long names where the command accepts them (`--compress-prog`) and
//! tar's dash-less bundles. An unquoted glob where an option may stand (`rg foo *`) is `Ask`
//! for these commands, since a file name can become an option. Variables that configure
//! those commands (`TAR_OPTIONS`, `RIPGREP_CONFIG_PATH`, `RUSTC_WRAPPER`, `CARGO_*`...) are
//! `Ask` like `PATH`.
//!
//! Smaller rules worth knowing: a bare assignment of a non-sensitive variable to a static value
//! (`X=1`) is `Allow`; a redirection without a command (`> f`) is `Ask`; after a `cd` that leaves
//! the workspace (`cd /`, `cd ..`, `cd $X`, plain `cd`) every later command is at least `Ask`,
//! because relative paths no longer point inside the workspace; `cd DIR` inside it is `Allow`.
//! Reading files outside the workspace by a trusted command (`cat /etc/hosts`) stays `Allow`,
//! except credential/history files (`Block`), `.env` files and raw disks (`Ask`).
//!
//! **Code run through files.** A trusted or approved command can be made to execute code it
//! never shows when a program reads a file implicitly and acts on it: `git status` runs
//! `core.fsmonitor` from `.git/config`, `python3` imports every `*.pth` of its site
//! directories, `sqlite3` runs `~/.sqliterc`, `bash -i` sources `~/.bashrc`. Three things
//! stop it. (1) The sandbox gives every command an empty per-run HOME outside the workspace
//! and an environment that loads no user code (see [`crate::sandbox`]), so HOME-relative
//! start-up files the agent writes are never read. (2) [`classify_write`] names the files
//! that configure execution (the rule and the list are in `files.rs`): anything under
//! `.git/`, `.config/`, `.local/`, shell and client start-up files, `*.pth`,
//! `sitecustomize.py`; a write of one by the agent's file tools is judged by
//! [`Guard::check_write`] as `Ask`, and the approval is bound to path, content hash and
//! workspace; a trusted command's redirection, `tee` or `cp` into one is `Ask` too. Reads stay
//! free. (3) Git gets command-line config overrides (fsmonitor, hooksPath, pager) that outrank
//! a repository's own config. What is left: such files written by a command in ways the guard
//! cannot see statically (an interpreter's own code, an archive unpacked with `tar x`), and
//! project build files (`Makefile`, `package.json`, `conftest.py`), which are the project's
//! code by definition: approving `make` approves running them.

mod analyze;
mod ast;
mod checks;
mod commands;
pub(crate) mod decode;
mod error;
mod files;
mod interp;
mod options;
mod parser;
mod paths;
mod render;
mod rules;
mod settings;
mod streams;
mod verdict;
mod wrappers;

pub use error::GuardError;
pub use files::{WriteClass, classify_write};
pub use render::{render_json, render_text};
pub use settings::{GuardSettings, LimitSettings, Limits};
pub use verdict::{Decision, SegmentVerdict, Verdict};

use analyze::Analyzer;
use rules::{PrefixRule, RuleAction, RuleSet, parse_pattern};
use verdict::Finding;

/// Commands longer than this are not judged (`ask`).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// A loaded, validated set of rules. Cheap to share; [`Guard::check`] takes `&self`.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    rules: RuleSet,
}

impl Guard {
    /// Build from `[guard]` settings: parses every pattern, loads `rules_file` if set and checks
    /// each rule's `matches` / `does_not_match` examples.
    pub fn from_settings(settings: &GuardSettings) -> Result<Guard, GuardError> {
        let mut rules = RuleSet::default();
        for p in &settings.trusted {
            let id = format!("trusted:{p}");
            rules.trusted.push(PrefixRule {
                tokens: parse_pattern(&id, p)?,
                id,
                reason: "matches a trusted pattern".into(),
            });
        }
        for p in &settings.blocked {
            let id = format!("config:{p}");
            rules.blocked.push(PrefixRule {
                tokens: parse_pattern(&id, p)?,
                id,
                reason: "matches a blocked pattern from the configuration".into(),
            });
        }
        let specs = match &settings.rules_file {
            Some(path) => rules::load_rules_file(path)?,
            None => Vec::new(),
        };
        for s in &specs {
            let id = s.id();
            let tokens = parse_pattern(&id, &s.pattern)?;
            let reason = if s.reason.is_empty() {
                format!("rule {}", s.pattern)
            } else {
                s.reason.clone()
            };
            let r = PrefixRule { id, tokens, reason };
            match s.action {
                RuleAction::Allow => rules.trusted.push(r),
                RuleAction::Block => rules.blocked.push(r),
            }
        }
        let guard = Guard { rules };
        for s in &specs {
            guard.check_examples(s)?;
        }
        Ok(guard)
    }

    fn check_examples(&self, s: &rules::RuleSpec) -> Result<(), GuardError> {
        let id = s.id();
        let want = match s.action {
            RuleAction::Allow => Decision::Allow,
            RuleAction::Block => Decision::Block,
        };
        for ex in &s.matches {
            let v = self.check(ex);
            if v.decision != want {
                return Err(GuardError::RuleExample {
                    rule: id,
                    example: ex.clone(),
                    problem: format!(
                        "should get {want} but got {} ({}: {})",
                        v.decision, v.rule, v.reason
                    ),
                });
            }
        }
        for ex in &s.does_not_match {
            let v = self.check(ex);
            if v.decision == want
                && v.segments
                    .iter()
                    .any(|seg| seg.rule == id && seg.decision == want)
            {
                return Err(GuardError::RuleExample {
                    rule: id,
                    example: ex.clone(),
                    problem: format!("must not be decided by this rule but got {want}"),
                });
            }
        }
        Ok(())
    }

    /// Judge a write of `path` (relative to the workspace) by the agent's file tools, like a
    /// command: a file that configures execution ([`classify_write`]) is `Ask`, any other
    /// `Allow`. The verdict's one segment shows the write as `write_file PATH`.
    pub fn check_write(&self, path: &str) -> Verdict {
        let (decision, rule, reason) = match classify_write(path) {
            WriteClass::Ordinary => (
                Decision::Allow,
                "builtin:ordinary-file",
                "an ordinary workspace file".to_string(),
            ),
            WriteClass::ExecConfig(why) => (
                Decision::Ask,
                "builtin:exec-config-file",
                format!("writes a file that configures execution: {why}"),
            ),
            WriteClass::Unclear(what) => (
                Decision::Ask,
                "builtin:unclear-path",
                format!("writes {what}, not a plain workspace path"),
            ),
        };
        Verdict {
            decision,
            rule: rule.to_string(),
            reason: reason.clone(),
            segments: vec![SegmentVerdict {
                command: format!("write_file {path}"),
                decision,
                rule: rule.to_string(),
                reason,
            }],
        }
    }

    /// Judge one proposed command line. Never panics; bad input is `Ask`.
    pub fn check(&self, command: &str) -> Verdict {
        let early = |rule: &str, reason: String| Verdict {
            decision: Decision::Ask,
            rule: rule.to_string(),
            reason: reason.clone(),
            segments: vec![SegmentVerdict {
                command: String::new(),
                decision: Decision::Ask,
                rule: rule.to_string(),
                reason,
            }],
        };
        if command.len() > MAX_COMMAND_BYTES {
            return early(
                "builtin:too-long",
                format!(
                    "command is {} bytes, over the {MAX_COMMAND_BYTES}-byte limit",
                    command.len()
                ),
            );
        }
        if command.contains('\0') {
            return early("builtin:nul-byte", "command contains a NUL byte".into());
        }
        let script = match parser::parse(command, 0) {
            Ok(s) => s,
            Err(e) => {
                return early(
                    "builtin:parse-error",
                    format!("command does not parse: {e}"),
                );
            }
        };
        let mut a = Analyzer::new(&self.rules);
        let (found, _) = a.judge_script(&script, 0, None);
        let mut f = found.unwrap_or_else(|| Finding::ask("builtin:empty", "nothing to run"));
        if a.exhausted && f.decision < Decision::Ask {
            f = Finding::ask(
                "builtin:too-complex",
                "command too complex to judge completely",
            );
        }
        let mut segments: Vec<SegmentVerdict> = Vec::with_capacity(a.segments.len());
        for s in a.segments {
            if !segments.contains(&s) {
                segments.push(s);
            }
        }
        Verdict {
            decision: f.decision,
            rule: f.rule,
            reason: f.reason,
            segments,
        }
    }
}

#[cfg(test)]
mod tests;
