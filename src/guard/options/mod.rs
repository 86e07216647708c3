//! Options that make a command run another program, read its orders from a file, or write
//! outside the workspace: one table per command ([`SPECS`], [`GIT_SUBCOMMANDS`]), and the one
//! option parser every check uses ([`parse`]).
//!
//! Why a parser: `sort -o/etc/x`, `sort -o /etc/x`, `sort --output=/etc/x`,
//! `sort --outp /etc/x` and `sort -uo /etc/x` are the same request to `sort`; judging the
//! argv words one by one judged them differently. [`parse`] turns every spelling into one
//! [`Use`] (the option's full name and its value) the way the command's own parser would:
//! GNU bundles (`-xo VALUE`, `-oVALUE`), `--name=VALUE` and `--name VALUE`, unique
//! abbreviations of long names where the command accepts them, one-dash words (`-specs=F`,
//! `-Bdir`) for compilers, and tar's old dash-less bundles (`tar xIf PROG a.tar`). Where the
//! table is unsure it errs toward seeing an option: an unknown short option is taken as a
//! flag, so a later letter of the bundle is still read as an option.
//!
//! What counts (the [`Effect`]s): an option that names a program or a command line to run
//! (`sort --compress-program`, `rg --pre`, `git diff --ext-diff`, `tar --to-command`,
//! `rsync -e`); an option that makes the command read options or code from a file
//! (`curl -K`, `ssh -F`, `awk -f`, `@file`); an option naming a file or directory written
//! (`-o FILE`, `--target-directory`), judged like a redirection; an option that moves the
//! working directory or repository (`git -C`, `env -C`); an option that lifts a path check
//! (`tar -P`, `unzip -:`). Each is at least `ask` whoever trusts the command; `nc -e` stays
//! `block`.

mod table;
#[cfg(test)]
mod tests;

pub(crate) use table::{GIT_GLOBAL, GIT_SUBCOMMANDS, SPECS};

use super::analyze::{Analyzer, Arg};
use super::checks::write_target;
use super::paths::{PathKind, classify};
use super::verdict::{Decision, Finding, raise};

/// How the command spells its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// getopt / getopt_long: `-abc` bundles, `-oVAL` / `-o VAL`, `--name=VAL` / `--name VAL`,
    /// `--` ends options. `abbrev`: unique prefixes of long names are accepted.
    Gnu { abbrev: bool },
    /// One dash, whole words (`-o FILE`, `-oFILE`, `-specs=FILE`, `--specs=FILE`): compilers,
    /// `go`, `openssl`. No bundling; `--` ends nothing.
    Words,
}

/// Does the option take a value?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val {
    /// A flag.
    No,
    /// Attached (`-oV`, `--o=V`) or the next word.
    Required,
    /// Attached only (`-O[pager]`, `--exec-path[=dir]`).
    Optional,
}

/// What using the option does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Runs a program or command line (named by the value, or configured): `ask`; a value
    /// that is a blocked command line is `block`.
    Runs,
    /// Runs a program when the value contains one of these (ASCII case-insensitive):
    /// `ssh -o ProxyCommand=..`, `go build -ldflags=-extld=..`.
    RunsIf(&'static [&'static str]),
    /// Connects a program to a network socket: `block` (`nc -e`).
    Block,
    /// Reads options, commands or code from the named file: `ask`.
    Config,
    /// Runs code from the named file: `ask` unless it is a plain workspace path (`make -f`).
    Code,
    /// The value is a file or directory written: judged like a redirection target.
    Writes,
    /// The value becomes the working directory or repository: `ask` unless inside the workspace.
    Chdir,
    /// Lifts the command's own path checks, so it may write anywhere: `ask`.
    Outside,
    /// tar's archive (`-f`): `host:file` runs rsh; written in create/append/update mode.
    TarArchive,
}

/// One option of a command that runs, reads orders from, or writes somewhere.
#[derive(Debug)]
pub(crate) struct Risky {
    /// All spellings; the first names the option in verdicts.
    pub names: &'static [&'static str],
    pub val: Val,
    pub effect: Effect,
    pub why: &'static str,
}

/// One command's options.
#[derive(Debug)]
pub(crate) struct Spec {
    pub commands: &'static [&'static str],
    pub style: Style,
    /// Options stop at the first operand (`env`, `time`, git's global options).
    pub stop_at_operand: bool,
    /// Harmless options that take a required value (so the value is not read as an option).
    pub values: &'static [&'static str],
    /// Harmless options with an optional attached value.
    pub optional: &'static [&'static str],
    /// Harmless long options that are a prefix of a risky one (`--text` of `--textconv`):
    /// an exact match wins over abbreviation, as in getopt_long.
    pub exact: &'static [&'static str],
    pub risky: &'static [Risky],
    /// First operands that run a program (`git bisect run`, `npm explore`).
    pub verbs: &'static [(&'static str, &'static str)],
    /// Operands starting with `+` are commands (`vim +cmd`, `less +cmd`).
    pub plus_runs: bool,
}

use Effect::{Block, Chdir, Code, Config, Outside, Runs, RunsIf, TarArchive, Writes};
use Val::{No, Optional, Required};

/// The table entries of a command (a command may have several, e.g. `less` and its `+`).
pub(crate) fn specs_for(base: &str) -> impl Iterator<Item = &'static Spec> + '_ {
    SPECS.iter().filter(move |s| s.commands.contains(&base))
}

pub(crate) fn git_subcommand(name: &str) -> Option<&'static Spec> {
    GIT_SUBCOMMANDS.iter().find(|s| s.commands.contains(&name))
}

/// One option as the command will see it, whatever its spelling.
#[derive(Debug, Clone)]
pub(crate) struct Use {
    /// The option's full name (`--compress-program` for `--compress-prog=x`; `-o` for `-uo`).
    pub name: &'static str,
    /// The word(s) as written.
    pub spelled: String,
    pub value: Option<Arg>,
    /// Table entry, when the option is risky.
    pub risky: Option<&'static Risky>,
}

/// A parsed command line.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub uses: Vec<Use>,
    /// Indices of operands.
    pub operands: Vec<usize>,
    /// Words that look like options the command cannot read (`--=x`): why.
    pub malformed: Vec<String>,
    /// An unquoted glob in an option position: a file name could become an option.
    pub glob_option: Option<String>,
}

fn value_of(a: &Arg, text: &str) -> Arg {
    Arg {
        text: text.to_string(),
        ..a.clone()
    }
}

/// Long option lookup: exact risky, exact harmless, then (with abbreviations) a risky name
/// the word is a prefix of. Returns the full name and its table entry.
fn long_lookup(spec: &'static Spec, name: &str) -> Option<(&'static str, Option<&'static Risky>)> {
    for risky in spec.risky {
        if let Some(n) = risky.names.iter().find(|n| **n == name) {
            return Some((n, Some(risky)));
        }
    }
    if let Some(n) = spec
        .values
        .iter()
        .chain(spec.optional)
        .chain(spec.exact)
        .find(|n| **n == name)
    {
        return Some((n, None));
    }
    if matches!(spec.style, Style::Gnu { abbrev: true }) && name.len() > 2 {
        for risky in spec.risky {
            if let Some(n) = risky
                .names
                .iter()
                .find(|n| n.starts_with("--") && n.starts_with(name))
            {
                return Some((n, Some(risky)));
            }
        }
        if let Some(n) = spec
            .values
            .iter()
            .chain(spec.optional)
            .find(|n| n.starts_with("--") && n.starts_with(name))
        {
            return Some((n, None));
        }
    }
    None
}

fn takes_value(spec: &Spec, name: &str, risky: Option<&Risky>) -> Val {
    match risky {
        Some(r) => r.val,
        None if spec.values.contains(&name) => Required,
        None if spec.optional.contains(&name) => Optional,
        None => No,
    }
}

/// A glob whose expansion could start with `-` (a file named `--pre=sh` becomes an option).
fn glob_may_be_option(a: &Arg) -> bool {
    a.glob
        && !a
            .text
            .starts_with(|c: char| c != '*' && c != '?' && c != '[' && c != '{')
}

/// Parse `argv[start..]` by `spec`: every option in one normal form.
pub(crate) fn parse(argv: &[Arg], start: usize, spec: &'static Spec) -> Parsed {
    let mut p = Parsed::default();
    let mut i = start;
    let mut options_end = false;
    // tar's first word without a dash is a bundle whose values are the next words, in order
    if spec.commands.contains(&"tar")
        && let Some(a) = argv.get(start)
        && !a.text.starts_with('-')
        && !a.text.is_empty()
    {
        let mut next = start + 1;
        for c in a.text.chars() {
            let Some((name, risky)) = short_name(spec, c) else {
                continue;
            };
            let value = if takes_value(spec, name, risky) == Required {
                next += 1;
                argv.get(next - 1).map(|v| value_of(v, &v.text))
            } else {
                None
            };
            p.uses.push(Use {
                name,
                spelled: format!("{} (in {})", name, a.text),
                value,
                risky,
            });
        }
        i = next;
    }
    while i < argv.len() {
        let a = &argv[i];
        let t = a.text.as_str();
        let word_option = spec.style == Style::Words && t.starts_with('@');
        if !word_option && (options_end || t == "-" || !t.starts_with('-')) {
            if !options_end && glob_may_be_option(a) && p.glob_option.is_none() {
                p.glob_option = Some(a.text.clone());
            }
            if spec.stop_at_operand && !options_end {
                p.operands.extend(i..argv.len());
                return p;
            }
            p.operands.push(i);
            i += 1;
            continue;
        }
        if t == "--" && spec.style != Style::Words {
            options_end = true;
            i += 1;
            continue;
        }
        i = match spec.style {
            Style::Words => parse_word(argv, i, spec, &mut p),
            Style::Gnu { .. } if t.starts_with("--") => parse_long(argv, i, spec, &mut p),
            Style::Gnu { .. } => parse_bundle(argv, i, spec, &mut p),
        };
    }
    p
}

fn short_name(spec: &'static Spec, c: char) -> Option<(&'static str, Option<&'static Risky>)> {
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    let is = |n: &str| n.len() == 1 + s.len() && n.starts_with('-') && n.ends_with(s);
    for risky in spec.risky {
        if let Some(n) = risky.names.iter().find(|n| is(n)) {
            return Some((n, Some(risky)));
        }
    }
    spec.values
        .iter()
        .chain(spec.optional)
        .find(|n| is(n))
        .map(|n| (*n, None))
}

/// The value of an option that takes one: attached text, else (if required) the next word.
/// Returns the value and the index of the word after the option.
fn take_value(argv: &[Arg], i: usize, val: Val, attached: Option<&str>) -> (Option<Arg>, usize) {
    match (val, attached) {
        (No, _) => (None, i + 1),
        (_, Some(v)) => (Some(value_of(&argv[i], v)), i + 1),
        (Required, None) => (argv.get(i + 1).map(|v| value_of(v, &v.text)), i + 2),
        (Optional, None) => (None, i + 1),
    }
}

fn spelled(a: &Arg, attached: bool, value: &Option<Arg>) -> String {
    match value {
        Some(v) if !attached => format!("{} {}", a.text, v.text),
        _ => a.text.clone(),
    }
}

/// Record an option that is risky or carries a value (harmless values are kept for the
/// command-specific checks: sed's script, env's split string).
fn record(p: &mut Parsed, u: Use, val: Val) {
    if u.risky.is_some() || val != No {
        p.uses.push(u);
    }
}

fn parse_long(argv: &[Arg], i: usize, spec: &'static Spec, p: &mut Parsed) -> usize {
    let a = &argv[i];
    let (name, attached) = match a.text.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (a.text.as_str(), None),
    };
    if name == "--" {
        p.malformed
            .push(format!("{} has an empty option name", a.text));
        return i + 1;
    }
    let Some((full, risky)) = long_lookup(spec, name) else {
        return i + 1;
    };
    let val = takes_value(spec, full, risky);
    let (value, next) = take_value(argv, i, val, attached);
    let spelled = spelled(a, attached.is_some(), &value);
    record(
        p,
        Use {
            name: full,
            spelled,
            value,
            risky,
        },
        val,
    );
    next
}

fn parse_bundle(argv: &[Arg], i: usize, spec: &'static Spec, p: &mut Parsed) -> usize {
    let a = &argv[i];
    // names of several letters after one dash (`zip -TT`) are whole words, not bundles
    let word = spec.risky.iter().find_map(|r| {
        r.names
            .iter()
            .find(|n| n.len() > 2 && !n.starts_with("--") && a.text.starts_with(**n))
            .map(|n| (r, *n))
    });
    if let Some((risky, n)) = word {
        let rest = &a.text[n.len()..];
        let attached = (!rest.is_empty()).then(|| rest.strip_prefix('=').unwrap_or(rest));
        let (value, next) = take_value(argv, i, risky.val, attached);
        let spelled = spelled(a, attached.is_some(), &value);
        record(
            p,
            Use {
                name: n,
                spelled,
                value,
                risky: Some(risky),
            },
            risky.val,
        );
        return next;
    }
    let body: Vec<char> = a.text.chars().skip(1).collect();
    for (k, c) in body.iter().enumerate() {
        let Some((name, risky)) = short_name(spec, *c) else {
            continue; // unknown: taken as a flag, so later letters are still read
        };
        let val = takes_value(spec, name, risky);
        let rest: String = body[k + 1..].iter().collect();
        let attached = (val != No && !rest.is_empty()).then_some(rest.as_str());
        let (value, next) = take_value(argv, i, val, attached);
        let spelled = spelled(a, attached.is_some(), &value);
        record(
            p,
            Use {
                name,
                spelled,
                value,
                risky,
            },
            val,
        );
        if val != No {
            return next;
        }
    }
    i + 1
}

/// One-dash word options: exact name (value next), `NAME=V`, `NAMEV`, `-NAME` doubled; the
/// longest matching name wins (`go -overlay` is not `-o verlay`).
fn parse_word(argv: &[Arg], i: usize, spec: &'static Spec, p: &mut Parsed) -> usize {
    let a = &argv[i];
    let t = a.text.as_str();
    if spec.values.contains(&t) {
        return i + 2;
    }
    if spec.exact.contains(&t) {
        return i + 1;
    }
    let undoubled = t.strip_prefix('-').filter(|u| u.starts_with('-'));
    let mut best: Option<(&'static Risky, &'static str, &str)> = None;
    for risky in spec.risky {
        for n in risky.names {
            for word in std::iter::once(t).chain(undoubled) {
                if let Some(rest) = word.strip_prefix(n)
                    && best.is_none_or(|(_, b, _)| n.len() > b.len())
                {
                    best = Some((risky, n, rest));
                }
            }
        }
    }
    let Some((risky, n, rest)) = best else {
        return i + 1;
    };
    let attached = (!rest.is_empty()).then(|| rest.strip_prefix('=').unwrap_or(rest));
    let val = if attached.is_some() && risky.val == No {
        Optional
    } else {
        risky.val
    };
    let (value, next) = take_value(argv, i, val, attached);
    let spelled = spelled(a, attached.is_some(), &value);
    record(
        p,
        Use {
            name: n,
            spelled,
            value,
            risky: Some(risky),
        },
        val,
    );
    next
}

/// Is `value` a directory or file inside the workspace, plainly?
fn inside(value: &Arg) -> bool {
    !value.unknown && !value.glob && classify(&value.text) == PathKind::Relative
}

/// tar modes that write the archive named by `-f`.
fn tar_writes_archive(argv: &[Arg]) -> bool {
    const LONG: &[&str] = &[
        "--create",
        "--append",
        "--update",
        "--catenate",
        "--concatenate",
    ];
    argv.iter().enumerate().skip(1).any(|(i, a)| {
        let t = a.text.as_str();
        if let Some(long) = t.strip_prefix("--") {
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            return name.len() >= 2 && LONG.iter().any(|l| l[2..].starts_with(name));
        }
        let letters = match t.strip_prefix('-') {
            Some(rest) => rest,
            None if i == 1 => t,
            None => "",
        };
        letters.contains(['c', 'r', 'u', 'A'])
    })
}

impl Analyzer<'_> {
    /// The floor the option table puts on `argv` (`None`: nothing risky).
    pub(crate) fn option_rules(
        &mut self,
        base: &str,
        argv: &[Arg],
        depth: usize,
    ) -> Option<Finding> {
        let mut f = None;
        if base == "git" {
            let global = parse(argv, 1, &GIT_GLOBAL);
            raise(
                &mut f,
                self.judge_parsed("git", &GIT_GLOBAL, &global, argv, depth),
            );
            if let Some(&sub) = global.operands.first()
                && let Some(spec) = git_subcommand(&argv[sub].text)
            {
                let p = parse(argv, sub + 1, spec);
                let cmd = format!("git {}", argv[sub].text);
                raise(&mut f, self.judge_parsed(&cmd, spec, &p, argv, depth));
            }
            return f;
        }
        for spec in specs_for(base) {
            let p = parse(argv, 1, spec);
            raise(&mut f, self.judge_parsed(base, spec, &p, argv, depth));
        }
        f
    }

    fn judge_parsed(
        &mut self,
        cmd: &str,
        spec: &Spec,
        p: &Parsed,
        argv: &[Arg],
        depth: usize,
    ) -> Option<Finding> {
        let mut f = None;
        for u in &p.uses {
            let Some(risky) = u.risky else { continue };
            raise(&mut f, self.judge_use(cmd, u, risky, argv, depth));
        }
        if let Some(&first) = p.operands.first()
            && let Some((_, why)) = spec.verbs.iter().find(|(v, _)| argv[first].text == *v)
        {
            raise(
                &mut f,
                Some(Finding::ask(
                    "builtin:option-runs",
                    format!("{cmd} {}: {why}", argv[first].text),
                )),
            );
        }
        if spec.plus_runs
            && let Some(a) = p
                .operands
                .iter()
                .map(|&i| &argv[i])
                .find(|a| a.text.len() > 1 && a.text.starts_with('+'))
        {
            raise(
                &mut f,
                Some(Finding::ask(
                    "builtin:option-runs",
                    format!("{cmd} {}: runs a command of the program", a.text),
                )),
            );
        }
        if let Some(m) = p.malformed.first() {
            raise(
                &mut f,
                Some(Finding::ask(
                    "builtin:option-malformed",
                    format!("{cmd}: {m}"),
                )),
            );
        }
        if let Some(g) = &p.glob_option {
            raise(
                &mut f,
                Some(Finding::ask(
                    "builtin:option-glob",
                    format!(
                        "{cmd} {g}: the glob can expand to a file named like an option \
                         (`--pre=sh`); write ./{g} instead"
                    ),
                )),
            );
        }
        f
    }

    fn judge_use(
        &mut self,
        cmd: &str,
        u: &Use,
        risky: &Risky,
        argv: &[Arg],
        depth: usize,
    ) -> Option<Finding> {
        // name the option as the command reads it, and as written when that differs
        let what = if u.spelled.starts_with(u.name) {
            format!("{cmd} {}", u.spelled)
        } else {
            format!("{cmd} {} ({})", u.spelled, u.name)
        };
        let value = u.value.as_ref();
        let runs = |why: &str| Finding::ask("builtin:option-runs", format!("{what}: {why}"));
        match risky.effect {
            Runs => Some(self.runs_value(runs(risky.why), value, depth)),
            RunsIf(needles) => {
                let text = value.map_or(u.spelled.as_str(), |v| v.text.as_str());
                let lower = text.to_ascii_lowercase();
                needles
                    .iter()
                    .any(|n| lower.contains(n))
                    .then(|| self.runs_value(runs(risky.why), value, depth))
            }
            Block => Some(Finding::block(
                "builtin:reverse-shell",
                format!("{what}: {}", risky.why),
            )),
            Config => Some(Finding::ask(
                "builtin:option-config",
                format!("{what}: {}", risky.why),
            )),
            Code => value.filter(|v| !inside(v)).map(|_| {
                Finding::ask(
                    "builtin:option-code",
                    format!("{what}: {}, outside the workspace", risky.why),
                )
            }),
            Writes => value.and_then(|v| write_target(v, &format!("{what}: writes to"))),
            Chdir => value.filter(|v| !inside(v)).map(|_| {
                Finding::ask(
                    "builtin:option-chdir",
                    format!("{what}: {}, outside the workspace", risky.why),
                )
            }),
            Outside => Some(Finding::ask(
                "builtin:option-outside",
                format!("{what}: {}", risky.why),
            )),
            TarArchive => {
                let v = value?;
                // GNU tar reads `host:file` as a remote archive reached through rsh
                let remote = v
                    .text
                    .split_once(':')
                    .is_some_and(|(h, _)| !h.contains('/'))
                    && !argv.iter().any(|a| a.text == "--force-local");
                if remote {
                    Some(runs("a host:file archive runs a remote shell program"))
                } else if tar_writes_archive(argv) {
                    write_target(v, &format!("{what}: writes to"))
                } else {
                    None
                }
            }
        }
    }

    /// A program or command line named by an option: `ask`, or `block` when the value is
    /// itself a blocked command line (`-c core.pager='rm -rf /'`).
    fn runs_value(&mut self, ask: Finding, value: Option<&Arg>, depth: usize) -> Finding {
        let Some(v) = value else { return ask };
        let mut f = ask;
        let mut texts = vec![v.text.as_str()];
        if let Some((_, after)) = v.text.split_once('=') {
            texts.push(after);
        }
        for t in texts {
            let inner = self.judge_text(t.trim_start_matches('!'), depth, None, true);
            if inner.decision == Decision::Block && f.decision < Decision::Block {
                f = inner;
            }
        }
        f
    }
}
