//! Word-level lexing: quotes, escapes, `$'..'`, parameters, `$(..)`, backticks, `$((..))`.

use super::{PResult, ParseError, Parser, Stop, is_meta, is_name_char, is_name_start, parse};
use crate::guard::ast::{Part, Script, Word};

impl Parser {
    pub(super) fn word_allow_empty(&mut self) -> PResult<Word> {
        match self.peek() {
            None => Ok(Word::default()),
            Some(c) if is_meta(c) => Ok(Word::default()),
            _ => self.word(),
        }
    }

    /// An unquoted-context word.
    pub(super) fn word(&mut self) -> PResult<Word> {
        let mut parts: Vec<Part> = Vec::new();
        let start = self.pos;
        if self.peek() == Some('~') {
            let mut i = self.pos + 1;
            while self
                .s
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
            {
                i += 1;
            }
            let end_ok = match self.s.get(i) {
                None => true,
                Some(c) => *c == '/' || is_meta(*c),
            };
            if end_ok {
                let user: String = self.s[self.pos + 1..i].iter().collect();
                parts.push(Part::Tilde(user));
                self.pos = i;
            }
        }
        if matches!(self.peek(), Some('<' | '>')) && self.peek_at(1) == Some('(') {
            self.pos += 2;
            self.enter()?;
            let script = self.list(Stop::RParen)?;
            self.leave();
            self.expect_char(')')?;
            parts.push(Part::ProcSubst(Box::new(script)));
        }
        while let Some(c) = self.peek() {
            match c {
                c if is_meta(c) => break,
                '\\' => match self.peek_at(1) {
                    Some('\n') => self.pos += 2,
                    Some(n) => {
                        self.pos += 2;
                        push_lit(&mut parts, n, true);
                    }
                    None => {
                        self.pos += 1;
                        push_lit(&mut parts, '\\', true);
                    }
                },
                '\'' => {
                    self.pos += 1;
                    let mut t = String::new();
                    loop {
                        match self.peek() {
                            None => return self.err("unterminated single quote"),
                            Some('\'') => {
                                self.pos += 1;
                                break;
                            }
                            Some(c) => {
                                t.push(c);
                                self.pos += 1;
                            }
                        }
                    }
                    parts.push(Part::Lit {
                        text: t,
                        quoted: true,
                    });
                }
                '"' => {
                    self.pos += 1;
                    let w = self.dquote_content(Some('"'))?;
                    if w.parts.is_empty() {
                        parts.push(Part::Lit {
                            text: String::new(),
                            quoted: true,
                        });
                    }
                    parts.extend(w.parts);
                }
                '$' => {
                    let p = self.dollar(false)?;
                    parts.extend(p);
                }
                '`' => {
                    let p = self.backtick(false)?;
                    parts.push(p);
                }
                _ => {
                    self.pos += 1;
                    push_lit(&mut parts, c, false);
                }
            }
        }
        if parts.is_empty() && self.pos == start {
            return match self.peek() {
                Some(c) => self.err(&format!("unexpected '{c}'")),
                None => self.err("unexpected end of input"),
            };
        }
        Ok(Word { parts })
    }

    /// Double-quoted content until `end` (or end of input when `end` is None: here-doc bodies).
    pub(super) fn dquote_content(&mut self, end: Option<char>) -> PResult<Word> {
        let mut parts = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                if end.is_some() {
                    return self.err("unterminated double quote");
                }
                break;
            };
            if Some(c) == end {
                self.pos += 1;
                break;
            }
            match c {
                '\\' => match self.peek_at(1) {
                    Some('\n') => self.pos += 2,
                    Some(n @ ('$' | '`' | '\\')) => {
                        self.pos += 2;
                        push_lit(&mut parts, n, true);
                    }
                    Some('"') if end.is_some() => {
                        self.pos += 2;
                        push_lit(&mut parts, '"', true);
                    }
                    _ => {
                        self.pos += 1;
                        push_lit(&mut parts, '\\', true);
                    }
                },
                '$' => {
                    let p = self.dollar(true)?;
                    parts.extend(p);
                }
                '`' => {
                    let p = self.backtick(true)?;
                    parts.push(p);
                }
                _ => {
                    self.pos += 1;
                    push_lit(&mut parts, c, true);
                }
            }
        }
        Ok(Word { parts })
    }

    /// `$...` at the cursor.
    /// Several parts only for `$"..."`.
    fn dollar(&mut self, quoted: bool) -> PResult<Vec<Part>> {
        self.pos += 1; // '$'
        match self.peek() {
            Some('\'') if !quoted => {
                self.pos += 1;
                let text = self.ansi_c()?;
                Ok(vec![Part::Lit { text, quoted: true }])
            }
            Some('"') if !quoted => {
                self.pos += 1;
                let w = self.dquote_content(Some('"'))?;
                if w.parts.is_empty() {
                    return Ok(vec![Part::Lit {
                        text: String::new(),
                        quoted: true,
                    }]);
                }
                Ok(w.parts)
            }
            Some('(') => {
                if self.peek_at(1) == Some('(') {
                    let save = self.pos;
                    self.pos += 2;
                    match self.arith_body() {
                        Ok(nested) => return Ok(vec![Part::Arith(nested)]),
                        Err(_) => self.pos = save,
                    }
                }
                self.pos += 1;
                self.enter()?;
                let script = self.list(Stop::RParen)?;
                self.leave();
                self.expect_char(')')?;
                Ok(vec![Part::Subst {
                    script: Box::new(script),
                    quoted,
                }])
            }
            Some('{') => {
                self.pos += 1;
                Ok(vec![self.brace_param(quoted)?])
            }
            Some(c) if is_name_start(c) => {
                let mut name = String::new();
                while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
                    name.push(c);
                    self.pos += 1;
                }
                Ok(vec![Part::Param {
                    name,
                    quoted,
                    nested: Vec::new(),
                }])
            }
            Some(c)
                if c.is_ascii_digit() || matches!(c, '@' | '*' | '#' | '?' | '$' | '!' | '-') =>
            {
                self.pos += 1;
                Ok(vec![Part::Param {
                    name: c.to_string(),
                    quoted,
                    nested: Vec::new(),
                }])
            }
            _ => Ok(vec![Part::Lit {
                text: "$".into(),
                quoted,
            }]),
        }
    }

    /// `${...}` after the `{`.
    fn brace_param(&mut self, quoted: bool) -> PResult<Part> {
        self.enter()?;
        let mut name = String::new();
        let mut indirect = false;
        if matches!(self.peek(), Some('#' | '!')) && self.peek_at(1).is_some_and(|c| c != '}') {
            indirect = true;
            self.pos += 1;
        }
        while let Some(c) = self.peek() {
            if is_name_char(c)
                || (name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '$' | '!' | '-'))
            {
                name.push(c);
                self.pos += 1;
                if !is_name_char(c) {
                    break;
                }
            } else {
                break;
            }
        }
        let mut nested = Vec::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated ${"),
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => self.pos += 2,
                Some('\'') if !quoted => {
                    self.pos += 1;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '\'' {
                            break;
                        }
                    }
                }
                Some('"') => {
                    self.pos += 1;
                    let w = self.dquote_content(Some('"'))?;
                    nested.extend(w.nested_scripts().into_iter().cloned());
                }
                Some('$') => {
                    let p = self.dollar(quoted)?;
                    nested.extend(Word { parts: p }.nested_scripts().into_iter().cloned());
                }
                Some('`') => {
                    let p = self.backtick(quoted)?;
                    nested.extend(
                        Word { parts: vec![p] }
                            .nested_scripts()
                            .into_iter()
                            .cloned(),
                    );
                }
                Some(_) => self.pos += 1,
            }
        }
        self.leave();
        if indirect {
            name.clear();
        }
        Ok(Part::Param {
            name,
            quoted,
            nested,
        })
    }

    /// Body of `$((...))` / `((...))` after the opening `((`: returns nested substitutions.
    pub(super) fn arith_body(&mut self) -> PResult<Vec<Script>> {
        self.enter()?;
        let mut nested = Vec::new();
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return self.err("unterminated arithmetic expression"),
                Some('(') => {
                    depth += 1;
                    self.pos += 1;
                }
                Some(')') => {
                    if depth == 0 {
                        if self.peek_at(1) == Some(')') {
                            self.pos += 2;
                            break;
                        }
                        return self.err("unbalanced arithmetic expression");
                    }
                    depth -= 1;
                    self.pos += 1;
                }
                Some('$') => {
                    let p = self.dollar(true)?;
                    nested.extend(Word { parts: p }.nested_scripts().into_iter().cloned());
                }
                Some('`') => {
                    let p = self.backtick(true)?;
                    nested.extend(
                        Word { parts: vec![p] }
                            .nested_scripts()
                            .into_iter()
                            .cloned(),
                    );
                }
                Some('\\') => self.pos += 2,
                Some(_) => self.pos += 1,
            }
        }
        self.leave();
        Ok(nested)
    }

    fn backtick(&mut self, quoted: bool) -> PResult<Part> {
        self.pos += 1;
        let mut content = String::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated backquote"),
                Some('`') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => {
                    match self.peek_at(1) {
                        Some(n @ ('\\' | '`' | '$')) => content.push(n),
                        Some('"') if quoted => content.push('"'),
                        Some(n) => {
                            content.push('\\');
                            content.push(n);
                        }
                        None => return self.err("unterminated backquote"),
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    content.push(c);
                    self.pos += 1;
                }
            }
        }
        let script = parse(&content, self.depth + 1).map_err(|e| ParseError {
            offset: self.pos,
            message: format!("in backquotes: {}", e.message),
        })?;
        Ok(Part::Subst {
            script: Box::new(script),
            quoted,
        })
    }

    /// `$'...'` body after the opening quote.
    fn ansi_c(&mut self) -> PResult<String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated $' quote");
            };
            self.pos += 1;
            match c {
                '\'' => break,
                '\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated $' quote");
                    };
                    self.pos += 1;
                    match e {
                        'a' => out.push('\x07'),
                        'b' => out.push('\x08'),
                        'e' | 'E' => out.push('\x1b'),
                        'f' => out.push('\x0c'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\x0b'),
                        'c' => {
                            if let Some(x) = self.peek() {
                                self.pos += 1;
                                out.push(char::from((x as u32 as u8) & 0x1f));
                            }
                        }
                        'x' => {
                            let v = self.take_digits(16, 2);
                            push_code(&mut out, v);
                        }
                        'u' => {
                            let v = self.take_digits(16, 4);
                            push_code(&mut out, v);
                        }
                        'U' => {
                            let v = self.take_digits(16, 8);
                            push_code(&mut out, v);
                        }
                        '0'..='7' => {
                            self.pos -= 1;
                            let v = self.take_digits(8, 3);
                            push_code(&mut out, v);
                        }
                        other => {
                            if !matches!(other, '\\' | '\'' | '"' | '?') {
                                out.push('\\');
                            }
                            out.push(other);
                        }
                    }
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn take_digits(&mut self, radix: u32, max: usize) -> Option<u32> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            match self.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    v = v.saturating_mul(radix).saturating_add(d);
                    self.pos += 1;
                    n += 1;
                }
                None => break,
            }
        }
        (n > 0).then_some(v)
    }
}

fn push_code(out: &mut String, v: Option<u32>) {
    if let Some(c) = v.and_then(char::from_u32)
        && c != '\0'
    {
        out.push(c);
    }
}

pub(super) fn push_lit(parts: &mut Vec<Part>, c: char, quoted: bool) {
    if let Some(Part::Lit { text, quoted: q }) = parts.last_mut()
        && *q == quoted
    {
        text.push(c);
        return;
    }
    parts.push(Part::Lit {
        text: c.to_string(),
        quoted,
    });
}

/// Text of a word with expansions shown literally (for here-doc delimiters).
pub(super) fn flat_text(w: &Word) -> String {
    let mut s = String::new();
    for p in &w.parts {
        match p {
            Part::Lit { text, .. } => s.push_str(text),
            Part::Tilde(u) => {
                s.push('~');
                s.push_str(u);
            }
            Part::Param { name, .. } => {
                s.push('$');
                s.push_str(name);
            }
            _ => s.push_str("$(...)"),
        }
    }
    s
}
