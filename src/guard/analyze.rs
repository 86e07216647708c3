//! The judge: walks the syntax tree, expands words as far as is statically known, follows data
//! through pipelines (so `echo <b64> | base64 -d | sh` is judged on the decoded text) and asks
//! [`super::commands`] about every simple command. Every simple command becomes a segment.
//!
//! Expansion is done in variants: variant 0 keeps every `$VAR` / `$(..)` unknown; further variants
//! substitute values assigned earlier in the same command line or statically computed command
//! substitutions. A command is judged in every variant and the strictest result is kept, so
//! substitution can only make a verdict stricter, never looser.

use std::collections::HashMap;

use super::ast::{Command, Compound, Part, Pipeline, RedirOp, Script, SimpleCommand, Word};
use super::commands::Outcome;
use super::parser::{self, MAX_DEPTH};
use super::rules::RuleSet;
use super::verdict::{Decision, Finding, SegmentVerdict, raise};

/// Upper bound on simple commands and expansions judged for one check (hostile input such as
/// deeply nested re-parsed strings cannot make a check slow).
const WORK_BUDGET: u32 = 100_000;
/// Variants judged per simple command beyond the opaque one.
const MAX_VARIANTS: usize = 4;
/// Fields produced by brace expansion of one word.
const MAX_BRACE_FIELDS: usize = 64;

/// Where data in a pipe came from, as far as can be told statically.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stream {
    /// Possible contents that are fully known.
    pub texts: Vec<String>,
    /// Content may be something other than `texts`.
    pub unknown: bool,
    /// Came from the network (curl, wget, nc...).
    pub network: bool,
    /// Went through a decoder or transformation that could not be computed.
    pub obfuscated: bool,
    /// Carries secrets (credential files, .env, history, environment dumps).
    pub sensitive: bool,
}

impl Stream {
    pub fn unknown() -> Stream {
        Stream {
            unknown: true,
            ..Stream::default()
        }
    }

    pub fn text(t: String) -> Stream {
        Stream {
            texts: vec![t],
            ..Stream::default()
        }
    }

    pub fn taint_from(&mut self, other: &Stream) {
        self.network |= other.network;
        self.obfuscated |= other.obfuscated;
        self.sensitive |= other.sensitive;
    }

    pub fn known(&self) -> bool {
        !self.unknown && !self.texts.is_empty()
    }
}

/// One expanded argument.
#[derive(Debug, Clone, Default)]
pub(crate) struct Arg {
    /// Text after quote removal; unknown parts appear as `$NAME`, `$(...)`, `$((...))`.
    pub text: String,
    /// Contains an expansion whose value is not statically known.
    pub unknown: bool,
    /// Contains an unquoted glob character or brace expansion that was not expanded.
    pub glob: bool,
    /// Taint of command substitutions inside (network, obfuscated, sensitive).
    pub taint: Stream,
    /// For a process substitution `<(..)`: what the file will contain.
    pub stream: Option<Box<Stream>>,
}

impl Arg {
    pub fn lit(text: &str) -> Arg {
        Arg {
            text: text.to_string(),
            ..Arg::default()
        }
    }

    pub fn unknown_input() -> Arg {
        Arg {
            text: "$INPUT".into(),
            unknown: true,
            ..Arg::default()
        }
    }
}

/// A simple command after expansion (one variant).
#[derive(Debug, Clone, Default)]
pub(crate) struct Expanded {
    pub assigns: Vec<(String, Arg)>,
    pub argv: Vec<Arg>,
    pub redirs: Vec<(RedirOp, Arg)>,
}

#[derive(Debug)]
pub(crate) struct Analyzer<'r> {
    pub rules: &'r RuleSet,
    vars: HashMap<String, Vec<String>>,
    pub segments: Vec<SegmentVerdict>,
    budget: u32,
    pub exhausted: bool,
    /// A `cd` left the workspace: relative paths no longer mean "inside the workspace".
    pub cwd_escaped: bool,
}

pub(crate) fn display(argv: &[Arg]) -> String {
    argv.iter()
        .map(|a| {
            if a.text.is_empty()
                || (a.text.contains([' ', '\t', '\n', ';', '&', '|', '\'', '"']) && !a.unknown)
            {
                format!("'{}'", a.text.replace('\'', "'\\''"))
            } else {
                a.text.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn max_finding(segs: &[SegmentVerdict]) -> Option<Finding> {
    let mut acc = None;
    for s in segs {
        raise(
            &mut acc,
            Some(Finding {
                decision: s.decision,
                rule: s.rule.clone(),
                reason: s.reason.clone(),
            }),
        );
    }
    acc
}

impl<'r> Analyzer<'r> {
    pub fn new(rules: &'r RuleSet) -> Analyzer<'r> {
        Analyzer {
            rules,
            vars: HashMap::new(),
            segments: Vec::new(),
            budget: WORK_BUDGET,
            exhausted: false,
            cwd_escaped: false,
        }
    }

    fn tick(&mut self) -> bool {
        if self.budget == 0 {
            self.exhausted = true;
            return false;
        }
        self.budget -= 1;
        true
    }

    pub fn push(&mut self, command: String, f: Finding) {
        self.segments.push(SegmentVerdict {
            command,
            decision: f.decision,
            rule: f.rule,
            reason: f.reason,
        });
    }

    /// Parse and judge `text` as a shell script (for `sh -c`, `eval`, decoded payloads...).
    /// With `quiet`, its segments are kept only when it is blocked.
    pub fn judge_text(
        &mut self,
        text: &str,
        depth: usize,
        stdin: Option<&Stream>,
        quiet: bool,
    ) -> Finding {
        if depth + 1 > MAX_DEPTH {
            return Finding::ask("builtin:too-deep", "commands nested too deeply to judge");
        }
        // placeholders of unknown expansions re-parse as unknown parameters, not as commands
        let text = text
            .replace("$((...))", "$_ARITH")
            .replace("$(...)", "$_SUBST");
        match parser::parse(&text, depth + 1) {
            Err(e) => Finding::ask(
                "builtin:parse-error",
                format!("nested command does not parse: {e}"),
            ),
            Ok(script) => {
                let start = self.segments.len();
                let (f, _) = self.judge_script(&script, depth + 1, stdin);
                if quiet && f.as_ref().is_none_or(|f| f.decision < Decision::Block) {
                    self.segments.truncate(start);
                }
                f.unwrap_or_else(|| Finding::ask("builtin:empty", "nothing to run"))
            }
        }
    }

    /// Judge a script; returns the strictest finding of its segments and what it writes to stdout.
    pub fn judge_script(
        &mut self,
        s: &Script,
        depth: usize,
        stdin: Option<&Stream>,
    ) -> (Option<Finding>, Stream) {
        let start = self.segments.len();
        let mut out = Stream::default();
        let mut parts: Vec<String> = vec![String::new()];
        for ao in &s.items {
            let mut last = Stream::unknown();
            for p in ao.pipelines() {
                last = self.judge_pipeline(p, depth, stdin);
            }
            if ao.rest.is_empty() && !ao.background && last.known() {
                // concatenate the possible outputs (first candidate of each, plus the rest of the last)
                let t = last.texts[0].clone();
                for x in &mut parts {
                    x.push_str(&t);
                }
            } else {
                out.unknown = true;
            }
            out.taint_from(&last);
        }
        if !out.unknown {
            out.texts = parts;
        }
        (max_finding(&self.segments[start..]), out)
    }

    fn judge_pipeline(&mut self, p: &Pipeline, depth: usize, stdin: Option<&Stream>) -> Stream {
        let mut input: Option<Stream> = stdin.cloned();
        for cmd in &p.cmds {
            let out = self.judge_command(cmd, depth, input.as_ref());
            input = Some(out);
        }
        input.unwrap_or_default()
    }

    fn judge_command(&mut self, cmd: &Command, depth: usize, stdin: Option<&Stream>) -> Stream {
        if depth > MAX_DEPTH {
            self.push(
                "…".into(),
                Finding::ask("builtin:too-deep", "commands nested too deeply to judge"),
            );
            return Stream::unknown();
        }
        match cmd {
            Command::Simple(sc) => self.judge_simple(sc, depth, stdin),
            Command::FunctionDef { name, body } => {
                if calls_itself_concurrently(name, body) {
                    self.push(
                        format!("{name}() {{ ... }}"),
                        Finding::block("builtin:fork-bomb", format!("function {name} calls itself in a pipe or in the background (fork bomb)")),
                    );
                }
                self.judge_command(body, depth + 1, None);
                Stream::text(String::new())
            }
            Command::Compound(c, redirs) => {
                // redirections of the compound
                let mut stdin_owned = stdin.cloned();
                if !redirs.is_empty() {
                    let mut substs = HashMap::new();
                    for r in redirs {
                        substs.extend(self.judge_word_scripts(&r.target, depth));
                    }
                    let expanded: Vec<(RedirOp, Arg)> = redirs
                        .iter()
                        .map(|r| {
                            (
                                r.op,
                                self.expand_word(&r.target, None, false, &substs)
                                    .into_iter()
                                    .next()
                                    .unwrap_or_default(),
                            )
                        })
                        .collect();
                    let mut floor = None;
                    for (op, t) in &expanded {
                        raise(&mut floor, super::checks::check_redirect(*op, t));
                    }
                    if let Some(f) = floor {
                        self.push("(compound command redirections)".into(), f);
                    }
                    if let Some(s) = redirect_stdin(&expanded) {
                        stdin_owned = Some(s);
                    }
                }
                let stdin = stdin_owned.as_ref();
                let d = depth + 1;
                let mut out = Stream::unknown();
                let mut judge = |a: &mut Self, s: &Script| {
                    let (_, o) = a.judge_script(s, d, stdin);
                    out.taint_from(&o);
                    o
                };
                match c {
                    Compound::Subshell(s) | Compound::Brace(s) => {
                        let o = judge(self, s);
                        out = o;
                    }
                    Compound::If(parts) => parts.iter().for_each(|s| {
                        judge(self, s);
                    }),
                    Compound::Loop(a, b) => {
                        judge(self, a);
                        judge(self, b);
                    }
                    Compound::For { var, words, body } => {
                        let mut vals = Vec::new();
                        for w in words {
                            let substs = self.judge_word_scripts(w, depth);
                            let n = self.resolvable(w, &substs).min(MAX_VARIANTS);
                            for k in std::iter::once(None).chain((0..n).map(Some)) {
                                for a in self.expand_word(w, k, true, &substs) {
                                    if !a.unknown {
                                        vals.push(a.text);
                                    }
                                }
                            }
                        }
                        self.add_var(var, vals);
                        judge(self, body);
                    }
                    Compound::Case { word, arms } => {
                        self.judge_word_scripts(word, depth);
                        for (pats, body) in arms {
                            for w in pats {
                                self.judge_word_scripts(w, depth);
                            }
                            judge(self, body);
                        }
                    }
                    Compound::Arith(nested) => nested.iter().for_each(|s| {
                        judge(self, s);
                    }),
                }
                out
            }
        }
    }

    fn judge_word_scripts(&mut self, w: &Word, depth: usize) -> HashMap<usize, Stream> {
        let mut m = HashMap::new();
        for s in w.nested_scripts() {
            let (_, out) = self.judge_script(s, depth + 1, None);
            m.insert(s as *const Script as usize, out);
        }
        m
    }

    fn add_var(&mut self, name: &str, vals: Vec<String>) {
        if vals.is_empty() {
            return;
        }
        let e = self.vars.entry(name.to_string()).or_default();
        for v in vals {
            if !e.contains(&v) {
                e.push(v);
            }
        }
        if e.len() > MAX_VARIANTS {
            let drop = e.len() - MAX_VARIANTS;
            e.drain(0..drop);
        }
    }

    fn judge_simple(&mut self, sc: &SimpleCommand, depth: usize, stdin: Option<&Stream>) -> Stream {
        if !self.tick() {
            return Stream::unknown();
        }
        // 1. every nested substitution is a command of its own
        let mut substs: HashMap<usize, Stream> = HashMap::new();
        let all_words = sc
            .assigns
            .iter()
            .map(|a| &a.value)
            .chain(sc.words.iter())
            .chain(sc.redirs.iter().map(|r| &r.target));
        for w in all_words {
            substs.extend(self.judge_word_scripts(w, depth));
        }
        // 2. variants
        let nvar = sc
            .assigns
            .iter()
            .map(|a| &a.value)
            .chain(sc.words.iter())
            .chain(sc.redirs.iter().map(|r| &r.target))
            .map(|w| self.resolvable(w, &substs))
            .max()
            .unwrap_or(0)
            .min(MAX_VARIANTS);
        let mut variants: Vec<Expanded> = Vec::with_capacity(nvar + 1);
        for k in std::iter::once(None).chain((0..nvar).map(Some)) {
            let mut e = Expanded::default();
            for a in &sc.assigns {
                let v = self
                    .expand_word(&a.value, k, false, &substs)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                e.assigns.push((a.name.clone(), v));
            }
            for w in &sc.words {
                e.argv.extend(self.expand_word(w, k, true, &substs));
            }
            for r in &sc.redirs {
                let t = self
                    .expand_word(&r.target, k, false, &substs)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                e.redirs.push((r.op, t));
            }
            variants.push(e);
        }
        // 3. stdin
        let redir_in = redirect_stdin(&variants[0].redirs);
        let stdin = redir_in.as_ref().or(stdin);
        // 4. judge every variant, keep the strictest
        let mut acc: Option<Finding> = None;
        for v in &variants {
            let f = self.judge_argv(&v.argv, &v.assigns, &v.redirs, stdin, depth);
            raise(&mut acc, Some(f));
        }
        let f = acc.unwrap_or_else(|| Finding::ask("default", "nothing to judge"));
        let mut shown = String::new();
        for (n, v) in &variants[0].assigns {
            shown.push_str(&format!("{n}={} ", display(std::slice::from_ref(v))));
        }
        shown.push_str(&display(&variants[0].argv));
        self.push(shown.trim_end().to_string(), f);
        // 5. variables assigned here are known to later commands (as extra variants)
        let standalone = sc.words.is_empty();
        for a in &sc.assigns {
            let vals: Vec<String> = variants
                .iter()
                .filter_map(|v| v.assigns.iter().find(|(n, _)| *n == a.name))
                .filter(|(_, x)| !x.unknown)
                .map(|(_, x)| x.text.clone())
                .collect();
            if standalone || !vals.is_empty() {
                self.add_var(&a.name, vals);
            }
        }
        if let Some(first) = variants[0].argv.first()
            && matches!(
                first.text.as_str(),
                "export" | "declare" | "typeset" | "local" | "readonly"
            )
        {
            for v in &variants {
                for a in v.argv.iter().skip(1) {
                    if let Some((n, val)) = a.text.split_once('=')
                        && !a.unknown
                    {
                        self.add_var(n, vec![val.to_string()]);
                    }
                }
            }
        }
        // 6. what it writes to stdout
        let best = variants
            .iter()
            .rev()
            .find(|v| v.argv.iter().all(|a| !a.unknown))
            .unwrap_or(&variants[0]);
        let mut out = super::streams::output_of(best, stdin);
        for v in &variants {
            for a in &v.argv {
                out.taint_from(&a.taint);
            }
        }
        out
    }

    /// How many candidate values the expansions of `w` have (0: nothing to substitute).
    fn resolvable(&self, w: &Word, substs: &HashMap<usize, Stream>) -> usize {
        let mut n = 0;
        for p in &w.parts {
            match p {
                Part::Param { name, .. } => n = n.max(self.vars.get(name).map_or(0, Vec::len)),
                Part::Subst { script, .. } => {
                    if let Some(s) = substs.get(&(script.as_ref() as *const Script as usize))
                        && s.known()
                    {
                        n = n.max(s.texts.len());
                    }
                }
                _ => {}
            }
        }
        n
    }

    /// Expand one word into fields. `k`: None = opaque; Some(k) = substitute candidate k.
    pub fn expand_word(
        &self,
        w: &Word,
        k: Option<usize>,
        split: bool,
        substs: &HashMap<usize, Stream>,
    ) -> Vec<Arg> {
        let mut fields: Vec<Arg> = Vec::new();
        let mut cur = Arg::default();
        let mut has = false;
        let pick = |c: &[String], k: usize| -> Option<String> {
            c.get(k.min(c.len().saturating_sub(1))).cloned()
        };
        let push_value =
            |cur: &mut Arg, has: &mut bool, fields: &mut Vec<Arg>, v: &str, quoted: bool| {
                if quoted || !split {
                    cur.text.push_str(v);
                    *has = true;
                    return;
                }
                let mut first = true;
                for piece in v.split([' ', '\t', '\n']) {
                    if !first && *has {
                        fields.push(std::mem::take(cur));
                        *has = false;
                    }
                    first = false;
                    if !piece.is_empty() {
                        cur.text.push_str(piece);
                        *has = true;
                    }
                }
            };
        for p in &w.parts {
            match p {
                Part::Lit { text, quoted } => {
                    cur.text.push_str(text);
                    has = true;
                    if !quoted
                        && (text.contains(['*', '?']) || (text.contains('[') && text.contains(']')))
                    {
                        cur.glob = true;
                    }
                }
                Part::Tilde(u) => {
                    cur.text.push('~');
                    cur.text.push_str(u);
                    has = true;
                }
                Part::Param { name, quoted, .. } => {
                    if name == "IFS" && !quoted && split {
                        if has {
                            fields.push(std::mem::take(&mut cur));
                            has = false;
                        }
                        continue;
                    }
                    match k.and_then(|k| self.vars.get(name).and_then(|c| pick(c, k))) {
                        Some(v) => push_value(&mut cur, &mut has, &mut fields, &v, *quoted),
                        None => {
                            cur.text.push('$');
                            cur.text.push_str(if name.is_empty() { "?" } else { name });
                            cur.unknown = true;
                            has = true;
                        }
                    }
                }
                Part::Subst { script, quoted } => {
                    let s = substs
                        .get(&(script.as_ref() as *const Script as usize))
                        .cloned()
                        .unwrap_or_else(Stream::unknown);
                    cur.taint.taint_from(&s);
                    let v = if s.known() {
                        k.and_then(|k| pick(&s.texts, k))
                    } else {
                        None
                    };
                    match v {
                        Some(v) => {
                            let v = v.trim_end_matches('\n').to_string();
                            push_value(&mut cur, &mut has, &mut fields, &v, *quoted);
                        }
                        None => {
                            cur.text.push_str("$(...)");
                            cur.unknown = true;
                            has = true;
                        }
                    }
                }
                Part::ProcSubst(script) => {
                    let s = substs
                        .get(&(script.as_ref() as *const Script as usize))
                        .cloned()
                        .unwrap_or_else(Stream::unknown);
                    cur.taint.taint_from(&s);
                    cur.text.push_str("/dev/fd/63");
                    cur.unknown = true;
                    cur.stream = Some(Box::new(s));
                    has = true;
                }
                Part::Arith(_) => {
                    cur.text.push_str("$((...))");
                    cur.unknown = true;
                    has = true;
                }
            }
        }
        if has || (fields.is_empty() && !split) {
            fields.push(cur);
        }
        if !split {
            return fields;
        }
        // brace expansion of plain unquoted words; otherwise braces make the word unknown-ish
        let pure = w
            .parts
            .iter()
            .all(|p| matches!(p, Part::Lit { quoted: false, .. }));
        let unquoted_brace = w.parts.iter().any(|p| matches!(p, Part::Lit { text, quoted: false } if text.contains('{') && text.contains('}') && (text.contains(',') || text.contains(".."))));
        if unquoted_brace {
            if pure && fields.len() == 1 {
                let expanded = brace_expand(&fields[0].text);
                if expanded.len() > 1 {
                    return expanded
                        .into_iter()
                        .map(|t| Arg {
                            text: t,
                            ..fields[0].clone()
                        })
                        .collect();
                }
            } else {
                for f in &mut fields {
                    f.glob = true;
                }
            }
        }
        fields
    }

    /// Judge one expanded simple command (also used for inner commands of wrappers).
    pub fn judge_argv(
        &mut self,
        argv: &[Arg],
        assigns: &[(String, Arg)],
        redirs: &[(RedirOp, Arg)],
        stdin: Option<&Stream>,
        depth: usize,
    ) -> Finding {
        let mut floor: Option<Finding> = None;
        if self.cwd_escaped && !argv.is_empty() {
            floor = Some(Finding::ask(
                "builtin:cwd-outside",
                "runs after a cd outside the workspace, so relative paths may point anywhere",
            ));
        }
        for (op, t) in redirs {
            raise(&mut floor, super::checks::check_redirect(*op, t));
        }
        for (name, v) in assigns {
            raise(&mut floor, super::checks::check_assign(name, v));
        }
        let Some(a0) = argv.first() else {
            if let Some(f) = floor {
                return f;
            }
            if !redirs.is_empty() {
                return Finding::ask("default", "redirection without a command");
            }
            return Finding::new(
                Decision::Allow,
                "builtin:assignment",
                "variable assignment only",
            );
        };
        raise(&mut floor, super::checks::generic_arg_checks(argv, stdin));
        if a0.unknown || a0.glob {
            raise(
                &mut floor,
                Some(Finding::ask(
                    "builtin:unknown-command",
                    format!("command name {} is not statically known", a0.text),
                )),
            );
            return floor.unwrap_or_else(|| {
                Finding::ask(
                    "builtin:unknown-command",
                    "command name is not statically known",
                )
            });
        }
        let base = basename(&a0.text).to_string();
        if let Some(b) = self.rules.blocked(argv) {
            raise(&mut floor, Some(b));
        }
        match self.command_rules(&base, argv, stdin, depth) {
            Outcome::Inner(inner) => {
                let mut r = floor;
                if r.as_ref().is_none_or(|f| f.decision < inner.decision) {
                    r = Some(inner);
                }
                return r.unwrap_or_else(|| Finding::ask("default", "no trusted pattern matches"));
            }
            Outcome::Floor(f) => raise(&mut floor, f.filter(|f| f.decision > Decision::Allow)),
        }
        if let Some(f) = floor {
            return f;
        }
        if let Some(a) = argv.iter().find(|a| a.unknown) {
            return Finding::ask(
                "builtin:unknown-argument",
                format!("argument {} is not statically known", a.text),
            );
        }
        if let Some(t) = self.rules.trusted(argv) {
            return t;
        }
        Finding::ask("default", "no trusted pattern matches")
    }
}

/// stdin given by `<`, `<<`, `<<<` redirections of a command (the last one wins).
fn redirect_stdin(redirs: &[(RedirOp, Arg)]) -> Option<Stream> {
    let mut result = None;
    for (op, a) in redirs {
        match op {
            RedirOp::In => {
                let mut s = match &a.stream {
                    Some(ps) => (**ps).clone(),
                    None => Stream::unknown(),
                };
                s.sensitive |=
                    super::paths::is_credential(&a.text) || super::paths::is_dotenv(&a.text);
                s.taint_from(&a.taint);
                result = Some(s);
            }
            RedirOp::HereDoc | RedirOp::HereString => {
                let mut s = if a.unknown {
                    Stream::unknown()
                } else {
                    Stream::text(a.text.clone())
                };
                if *op == RedirOp::HereString && !a.unknown {
                    s.texts[0].push('\n');
                }
                s.taint_from(&a.taint);
                result = Some(s);
            }
            RedirOp::Out | RedirOp::Dup => {}
        }
    }
    result
}

/// Does function `name` call itself in a pipeline or in the background (a fork bomb)?
fn calls_itself_concurrently(name: &str, body: &Command) -> bool {
    fn in_script(name: &str, s: &Script, bg: bool) -> bool {
        s.items.iter().any(|ao| {
            ao.pipelines()
                .any(|p| in_pipeline(name, p, bg || ao.background))
        })
    }
    fn in_pipeline(name: &str, p: &Pipeline, bg: bool) -> bool {
        p.cmds
            .iter()
            .any(|c| in_command(name, c, bg || p.cmds.len() > 1))
    }
    fn in_command(name: &str, c: &Command, concurrent: bool) -> bool {
        match c {
            Command::Simple(sc) => {
                concurrent
                    && sc
                        .words
                        .first()
                        .and_then(Word::static_text)
                        .is_some_and(|n| n == name)
            }
            Command::Compound(Compound::Subshell(s) | Compound::Brace(s), _) => {
                in_script(name, s, concurrent)
            }
            Command::Compound(Compound::If(parts), _) => {
                parts.iter().any(|s| in_script(name, s, concurrent))
            }
            Command::Compound(Compound::Loop(a, b), _) => {
                in_script(name, a, concurrent) || in_script(name, b, concurrent)
            }
            Command::Compound(Compound::For { body, .. }, _) => in_script(name, body, concurrent),
            Command::Compound(Compound::Case { arms, .. }, _) => {
                arms.iter().any(|(_, s)| in_script(name, s, concurrent))
            }
            Command::Compound(Compound::Arith(_), _) | Command::FunctionDef { .. } => false,
        }
    }
    !name.is_empty() && in_command(name, body, false)
}

/// Bash brace expansion (`{a,b}`, `{1..3}`), bounded.
pub(crate) fn brace_expand(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(s, &mut out);
    if out.is_empty() {
        out.push(s.to_string());
    }
    out
}

fn expand_into(s: &str, out: &mut Vec<String>) {
    if out.len() >= MAX_BRACE_FIELDS {
        return;
    }
    let b = s.as_bytes();
    // find the first `{` with a matching `}` that has a top-level `,` or `..`
    for open in (0..b.len()).filter(|&i| b[i] == b'{') {
        let mut depth = 0;
        let mut commas = Vec::new();
        let mut close = None;
        for (j, &c) in b.iter().enumerate().skip(open) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                b',' if depth == 1 => commas.push(j),
                _ => {}
            }
        }
        let Some(close) = close else { continue };
        let (pre, inner, post) = (&s[..open], &s[open + 1..close], &s[close + 1..]);
        let alts: Vec<String> = if !commas.is_empty() {
            let mut v = Vec::new();
            let mut last = open + 1;
            for c in commas.iter().copied().chain(std::iter::once(close)) {
                v.push(s[last..c].to_string());
                last = c + 1;
            }
            v
        } else if let Some((a, z)) = inner.split_once("..") {
            match (a.parse::<i64>(), z.parse::<i64>()) {
                (Ok(a), Ok(z)) if (z - a).abs() < MAX_BRACE_FIELDS as i64 => {
                    if a <= z {
                        (a..=z).map(|n| n.to_string()).collect()
                    } else {
                        (z..=a).rev().map(|n| n.to_string()).collect()
                    }
                }
                _ => {
                    let (ca, cz) = (a.chars().next(), z.chars().next());
                    match (ca, cz) {
                        (Some(ca), Some(cz)) if a.len() == 1 && z.len() == 1 && ca <= cz => {
                            (ca..=cz).map(|c| c.to_string()).collect()
                        }
                        _ => continue,
                    }
                }
            }
        } else {
            continue;
        };
        for alt in alts {
            expand_into(&format!("{pre}{alt}{post}"), out);
            if out.len() >= MAX_BRACE_FIELDS {
                return;
            }
        }
        return;
    }
    out.push(s.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brace_expansion() {
        assert_eq!(brace_expand("{rm,-rf,/}"), vec!["rm", "-rf", "/"]);
        assert_eq!(brace_expand("/{etc,usr}"), vec!["/etc", "/usr"]);
        assert_eq!(brace_expand("a{1..3}"), vec!["a1", "a2", "a3"]);
        assert_eq!(brace_expand("{}"), vec!["{}"]);
        assert!(brace_expand(&"{a,b}".repeat(20)).len() <= MAX_BRACE_FIELDS);
    }
}
