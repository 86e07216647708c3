//! A recursive-descent parser for POSIX `sh` command lines (plus the common bash forms an agent
//! emits: `$'..'`, `<<<`, `&>`, `|&`, `<(..)`, `function f`, `[[`/`((` as plain commands).
//!
//! It never executes or expands anything. Hostile input is bounded: the caller's length limit,
//! NUL bytes refused, and a nesting bound shared with the judge (`sh -c` inside `$(..)` inside
//! a subshell all count). Every failure is a [`ParseError`], never a panic.

use heredoc::fill_script;
use words::flat_text;

use super::ast::{
    AndOr, Assign, Command, Compound, Part, Pipeline, RedirOp, Redirect, Script, SimpleCommand,
    Word,
};

/// Maximum nesting of subshells, groups, substitutions and re-parsed strings, all together.
pub(crate) const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at character {}", self.message, self.offset)
    }
}

type PResult<T> = Result<T, ParseError>;

/// Parse `src` as a shell script, starting at nesting level `depth`.
pub(crate) fn parse(src: &str, depth: usize) -> PResult<Script> {
    if let Some(i) = src.find('\0') {
        return Err(ParseError {
            offset: i,
            message: "NUL byte in command".into(),
        });
    }
    if depth > MAX_DEPTH {
        return Err(ParseError {
            offset: 0,
            message: "nesting too deep".into(),
        });
    }
    let mut p = Parser {
        s: src.chars().collect(),
        pos: 0,
        depth,
        pending: Vec::new(),
        bodies: Vec::new(),
    };
    let mut script = p.list(Stop::Eof)?;
    if !p.pending.is_empty() {
        // Here-doc whose body never started (no newline after the command): empty body.
        p.read_heredoc_bodies()?;
    }
    fill_script(&mut script, &mut p.bodies);
    Ok(script)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Eof,
    RParen,
    Keywords(&'static [&'static str]),
    CaseArm,
}

#[derive(Debug)]
struct PendingHeredoc {
    idx: usize,
    delim: String,
    strip_tabs: bool,
    quoted: bool,
}

struct Parser {
    s: Vec<char>,
    pos: usize,
    depth: usize,
    pending: Vec<PendingHeredoc>,
    bodies: Vec<Option<Word>>,
}

const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "{",
    "}", "!", "in", "function",
];

fn is_meta(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')'
    )
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Parser {
    fn err<T>(&self, message: &str) -> PResult<T> {
        Err(ParseError {
            offset: self.pos,
            message: message.to_string(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.s.get(self.pos + n).copied()
    }

    fn starts_with(&self, t: &str) -> bool {
        self.starts_with_at(self.pos, t)
    }

    fn starts_with_at(&self, at: usize, t: &str) -> bool {
        t.chars()
            .enumerate()
            .all(|(k, c)| self.s.get(at + k) == Some(&c))
    }

    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Skip spaces, tabs, line continuations and a comment (not the newline).
    fn skip_blanks(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t') => self.pos += 1,
                Some('\\') if self.peek_at(1) == Some('\n') => self.pos += 2,
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn newline(&mut self) -> PResult<()> {
        self.pos += 1;
        if !self.pending.is_empty() {
            self.read_heredoc_bodies()?;
        }
        Ok(())
    }

    /// Skip blanks, comments and newlines.
    fn skip_linebreaks(&mut self) -> PResult<()> {
        loop {
            self.skip_blanks();
            if self.peek() == Some('\n') {
                self.newline()?;
            } else {
                return Ok(());
            }
        }
    }

    /// The reserved word at the cursor, if any (unquoted, followed by a delimiter).
    fn peek_reserved(&self) -> Option<&'static str> {
        for kw in RESERVED {
            if self.starts_with(kw) {
                let next = self.s.get(self.pos + kw.chars().count()).copied();
                let delimited = match next {
                    None => true,
                    Some(c) => is_meta(c),
                };
                if delimited {
                    return Some(kw);
                }
            }
        }
        None
    }

    fn expect_keyword(&mut self, kw: &str) -> PResult<()> {
        self.skip_linebreaks()?;
        if self.peek_reserved() == Some(kw_static(kw)) {
            self.pos += kw.chars().count();
            Ok(())
        } else {
            self.err(&format!("expected '{kw}'"))
        }
    }

    fn at_stop(&self, stop: Stop) -> bool {
        match stop {
            Stop::Eof => self.eof(),
            Stop::RParen => self.peek() == Some(')'),
            Stop::Keywords(kws) => self.peek_reserved().is_some_and(|k| kws.contains(&k)),
            Stop::CaseArm => {
                self.starts_with(";;")
                    || self.starts_with(";&")
                    || self.peek_reserved() == Some("esac")
            }
        }
    }

    fn list(&mut self, stop: Stop) -> PResult<Script> {
        let mut items = Vec::new();
        loop {
            self.skip_linebreaks()?;
            if self.at_stop(stop) {
                break;
            }
            if self.eof() {
                return self.err("unexpected end of input");
            }
            let mut ao = self.and_or()?;
            self.skip_blanks();
            match self.peek() {
                Some(';') if !self.starts_with(";;") && !self.starts_with(";&") => self.pos += 1,
                Some('&') => {
                    self.pos += 1;
                    ao.background = true;
                }
                Some('\n') | None => {}
                _ if self.at_stop(stop) => {}
                Some(c) => return self.err(&format!("unexpected '{c}'")),
            }
            items.push(ao);
        }
        Ok(Script { items })
    }

    fn and_or(&mut self) -> PResult<AndOr> {
        let first = self.pipeline()?;
        let mut rest = Vec::new();
        loop {
            self.skip_blanks();
            if self.starts_with("&&") || self.starts_with("||") {
                self.pos += 2;
                self.skip_linebreaks()?;
                rest.push(self.pipeline()?);
            } else {
                break;
            }
        }
        Ok(AndOr {
            first,
            rest,
            background: false,
        })
    }

    fn pipeline(&mut self) -> PResult<Pipeline> {
        self.skip_blanks();
        if self.peek_reserved() == Some("!") {
            self.pos += 1;
            self.skip_blanks();
        }
        let mut cmds = vec![self.command()?];
        loop {
            self.skip_blanks();
            if self.peek() == Some('|') && self.peek_at(1) != Some('|') {
                self.pos += if self.peek_at(1) == Some('&') { 2 } else { 1 };
                self.skip_linebreaks()?;
                cmds.push(self.command()?);
            } else {
                break;
            }
        }
        Ok(Pipeline { cmds })
    }

    fn command(&mut self) -> PResult<Command> {
        self.skip_blanks();
        self.enter()?;
        let r = self.command_inner();
        self.leave();
        r
    }

    fn command_inner(&mut self) -> PResult<Command> {
        if self.peek() == Some('(') {
            let compound = if self.peek_at(1) == Some('(') {
                self.pos += 2;
                Compound::Arith(self.arith_body()?)
            } else {
                self.pos += 1;
                let body = self.list(Stop::RParen)?;
                self.expect_char(')')?;
                Compound::Subshell(body)
            };
            return self.finish_compound(compound);
        }
        match self.peek_reserved() {
            Some("{") => {
                self.pos += 1;
                let body = self.list(Stop::Keywords(&["}"]))?;
                self.expect_keyword("}")?;
                self.finish_compound(Compound::Brace(body))
            }
            Some("if") => {
                self.pos += 2;
                let mut parts = Vec::new();
                loop {
                    parts.push(self.list(Stop::Keywords(&["then"]))?);
                    self.expect_keyword("then")?;
                    parts.push(self.list(Stop::Keywords(&["elif", "else", "fi"]))?);
                    match self.peek_reserved() {
                        Some("elif") => self.pos += 4,
                        Some("else") => {
                            self.pos += 4;
                            parts.push(self.list(Stop::Keywords(&["fi"]))?);
                            self.expect_keyword("fi")?;
                            break;
                        }
                        _ => {
                            self.expect_keyword("fi")?;
                            break;
                        }
                    }
                }
                self.finish_compound(Compound::If(parts))
            }
            Some(kw @ ("while" | "until")) => {
                self.pos += kw.len();
                let cond = self.list(Stop::Keywords(&["do"]))?;
                self.expect_keyword("do")?;
                let body = self.list(Stop::Keywords(&["done"]))?;
                self.expect_keyword("done")?;
                self.finish_compound(Compound::Loop(cond, body))
            }
            Some("for") => {
                self.pos += 3;
                self.for_loop()
            }
            Some("case") => {
                self.pos += 4;
                self.case()
            }
            Some("function") => {
                self.pos += 8;
                self.skip_blanks();
                let name_word = self.word()?;
                let name = name_word.static_text().unwrap_or_default();
                self.skip_blanks();
                if self.starts_with("()") {
                    self.pos += 2;
                } else if self.peek() == Some('(') {
                    self.pos += 1;
                    self.skip_blanks();
                    self.expect_char(')')?;
                }
                self.skip_linebreaks()?;
                let body = self.command()?;
                Ok(Command::FunctionDef {
                    name,
                    body: Box::new(body),
                })
            }
            Some(kw @ ("then" | "else" | "elif" | "fi" | "do" | "done" | "esac" | "}" | "in")) => {
                self.err(&format!("unexpected '{kw}'"))
            }
            _ => self.simple(),
        }
    }

    fn expect_char(&mut self, c: char) -> PResult<()> {
        self.skip_linebreaks()?;
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else if self.eof() {
            self.err(&format!("unexpected end of input, expected '{c}'"))
        } else {
            self.err(&format!("expected '{c}'"))
        }
    }

    fn finish_compound(&mut self, c: Compound) -> PResult<Command> {
        let mut redirs = Vec::new();
        loop {
            self.skip_blanks();
            match self.redirect()? {
                Some(r) => redirs.push(r),
                None => break,
            }
        }
        Ok(Command::Compound(c, redirs))
    }

    fn for_loop(&mut self) -> PResult<Command> {
        self.skip_blanks();
        if self.starts_with("((") {
            self.pos += 2;
            let nested = self.arith_body()?;
            self.skip_blanks();
            if self.peek() == Some(';') {
                self.pos += 1;
            }
            self.expect_keyword("do")?;
            let body = self.list(Stop::Keywords(&["done"]))?;
            self.expect_keyword("done")?;
            let mut items = body.items;
            items.push(arith_item(nested));
            return self.finish_compound(Compound::Brace(Script { items }));
        }
        let var = self.word()?.static_text().unwrap_or_default();
        self.skip_linebreaks()?;
        let mut words = Vec::new();
        if self.peek_reserved() == Some("in") {
            self.pos += 2;
            loop {
                self.skip_blanks();
                match self.peek() {
                    Some(';') => {
                        self.pos += 1;
                        break;
                    }
                    Some('\n') => break,
                    None => return self.err("unexpected end of input in for"),
                    _ => words.push(self.word()?),
                }
            }
        } else if self.peek() == Some(';') {
            self.pos += 1;
        }
        self.expect_keyword("do")?;
        let body = self.list(Stop::Keywords(&["done"]))?;
        self.expect_keyword("done")?;
        self.finish_compound(Compound::For { var, words, body })
    }

    fn case(&mut self) -> PResult<Command> {
        self.skip_blanks();
        let word = self.word()?;
        self.expect_keyword("in")?;
        let mut arms = Vec::new();
        loop {
            self.skip_linebreaks()?;
            if self.peek_reserved() == Some("esac") {
                self.pos += 4;
                break;
            }
            if self.eof() {
                return self.err("unterminated case");
            }
            if self.peek() == Some('(') {
                self.pos += 1;
            }
            let mut pats = Vec::new();
            loop {
                self.skip_blanks();
                pats.push(self.word()?);
                self.skip_blanks();
                match self.peek() {
                    Some('|') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return self.err("expected ')' in case pattern"),
                }
            }
            let body = self.list(Stop::CaseArm)?;
            arms.push((pats, body));
            if self.starts_with(";;&") {
                self.pos += 3;
            } else if self.starts_with(";;") || self.starts_with(";&") {
                self.pos += 2;
            }
        }
        self.finish_compound(Compound::Case { word, arms })
    }

    fn simple(&mut self) -> PResult<Command> {
        let mut sc = SimpleCommand::default();
        loop {
            self.skip_blanks();
            match self.peek() {
                Some('&') if self.peek_at(1) == Some('>') => {}
                None | Some(';' | '&' | '|' | ')' | '\n') => break,
                Some('(') => {
                    // `name ( )` function definition
                    if sc.words.len() == 1 && sc.assigns.is_empty() && sc.redirs.is_empty() {
                        self.pos += 1;
                        self.skip_blanks();
                        self.expect_char(')')?;
                        self.skip_linebreaks()?;
                        let name = sc.words[0].static_text().unwrap_or_default();
                        let body = self.command()?;
                        return Ok(Command::FunctionDef {
                            name,
                            body: Box::new(body),
                        });
                    }
                    return self.err("unexpected '('");
                }
                _ => {}
            }
            if let Some(r) = self.redirect()? {
                sc.redirs.push(r);
                continue;
            }
            if sc.words.is_empty()
                && let Some(a) = self.assignment()?
            {
                sc.assigns.push(a);
                continue;
            }
            let w = self.word()?;
            sc.words.push(w);
        }
        if sc.words.is_empty() && sc.assigns.is_empty() && sc.redirs.is_empty() {
            return match self.peek() {
                None => self.err("expected a command"),
                Some(c) => self.err(&format!("unexpected '{c}'")),
            };
        }
        Ok(Command::Simple(sc))
    }

    /// `NAME=value` or `NAME=(a b c)` at the cursor.
    fn assignment(&mut self) -> PResult<Option<Assign>> {
        if !self.peek().is_some_and(is_name_start) {
            return Ok(None);
        }
        let mut i = self.pos;
        while self.s.get(i).copied().is_some_and(is_name_char) {
            i += 1;
        }
        let mut j = i;
        if self.s.get(j) == Some(&'+') {
            j += 1;
        }
        if self.s.get(j) != Some(&'=') {
            return Ok(None);
        }
        let name: String = self.s[self.pos..i].iter().collect();
        self.pos = j + 1;
        if self.peek() == Some('(') {
            // array: NAME=(w1 w2 ...) — the words are concatenated with spaces.
            self.pos += 1;
            let mut value = Word::default();
            loop {
                self.skip_linebreaks()?;
                match self.peek() {
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    None => return self.err("unterminated array assignment"),
                    _ => {
                        let w = self.word()?;
                        if !value.parts.is_empty() {
                            value.parts.push(Part::Lit {
                                text: " ".into(),
                                quoted: true,
                            });
                        }
                        value.parts.extend(w.parts);
                    }
                }
            }
            return Ok(Some(Assign { name, value }));
        }
        let value = self.word_allow_empty()?;
        Ok(Some(Assign { name, value }))
    }

    fn redirect(&mut self) -> PResult<Option<Redirect>> {
        let start = self.pos;
        // optional IO number
        let mut i = self.pos;
        while self.s.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        let after_num = i;
        let op_text: &str;
        let op;
        let rest = |t: &str| self.starts_with_at(after_num, t);
        if after_num == self.pos && (self.starts_with("&>>") || self.starts_with("&>")) {
            op_text = if self.starts_with("&>>") { "&>>" } else { "&>" };
            op = RedirOp::Out;
        } else if rest("<<<") {
            op_text = "<<<";
            op = RedirOp::HereString;
        } else if rest("<<-") {
            op_text = "<<-";
            op = RedirOp::HereDoc;
        } else if rest("<<") {
            op_text = "<<";
            op = RedirOp::HereDoc;
        } else if rest("<>") {
            op_text = "<>";
            op = RedirOp::Out;
        } else if rest("<&") {
            op_text = "<&";
            op = RedirOp::Dup;
        } else if rest("<(") && after_num == self.pos {
            return Ok(None); // process substitution: a word
        } else if rest("<") {
            op_text = "<";
            op = RedirOp::In;
        } else if rest(">>") {
            op_text = ">>";
            op = RedirOp::Out;
        } else if rest(">&") {
            op_text = ">&";
            op = RedirOp::Dup;
        } else if rest(">|") {
            op_text = ">|";
            op = RedirOp::Out;
        } else if rest(">(") && after_num == self.pos {
            return Ok(None);
        } else if rest(">") {
            op_text = ">";
            op = RedirOp::Out;
        } else {
            self.pos = start;
            return Ok(None);
        }
        self.pos = after_num + op_text.len();
        self.skip_blanks();
        if self.eof()
            || self
                .peek()
                .is_some_and(|c| matches!(c, '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')'))
        {
            return self.err("missing redirection target");
        }
        let target = self.word()?;
        if op == RedirOp::HereDoc {
            let quoted = target
                .parts
                .iter()
                .any(|p| matches!(p, Part::Lit { quoted: true, .. }));
            let delim = flat_text(&target);
            let idx = self.bodies.len();
            self.bodies.push(None);
            self.pending.push(PendingHeredoc {
                idx,
                delim,
                strip_tabs: op_text == "<<-",
                quoted,
            });
            return Ok(Some(Redirect {
                op,
                target: Word::default(),
                heredoc: Some(idx),
            }));
        }
        Ok(Some(Redirect {
            op,
            target,
            heredoc: None,
        }))
    }

    fn read_heredoc_bodies(&mut self) -> PResult<()> {
        let pending = std::mem::take(&mut self.pending);
        for h in pending {
            let mut body = String::new();
            loop {
                if self.eof() {
                    break; // bash accepts an unterminated here-doc at end of input
                }
                let mut line = String::new();
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == '\n' {
                        break;
                    }
                    line.push(c);
                }
                let cmp = if h.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line.as_str()
                };
                if cmp == h.delim {
                    break;
                }
                body.push_str(if h.strip_tabs { cmp } else { &line });
                body.push('\n');
            }
            let word = if h.quoted {
                Word {
                    parts: vec![Part::Lit {
                        text: body,
                        quoted: true,
                    }],
                }
            } else {
                let mut sub = Parser {
                    s: body.chars().collect(),
                    pos: 0,
                    depth: self.depth + 1,
                    pending: Vec::new(),
                    bodies: Vec::new(),
                };
                if sub.depth > MAX_DEPTH {
                    return self.err("nesting too deep");
                }
                sub.dquote_content(None)?
            };
            if let Some(slot) = self.bodies.get_mut(h.idx) {
                *slot = Some(word);
            }
        }
        Ok(())
    }
}

fn kw_static(kw: &str) -> &'static str {
    RESERVED.iter().copied().find(|k| *k == kw).unwrap_or("")
}

fn arith_item(nested: Vec<Script>) -> AndOr {
    AndOr {
        first: Pipeline {
            cmds: vec![Command::Compound(Compound::Arith(nested), Vec::new())],
        },
        rest: Vec::new(),
        background: false,
    }
}

mod heredoc;
mod words;

#[cfg(test)]
mod tests;
