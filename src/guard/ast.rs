//! Syntax tree of a POSIX shell command line, as produced by [`super::parser`].
//!
//! Only what the judge needs is kept: words keep their quoting (so quote removal, globbing and
//! unknown expansions can be told apart), nested scripts are kept whole so that they are judged too.

/// A list of and-or lists (`a; b & c && d`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    pub items: Vec<AndOr>,
}

/// `p1 && p2 || p3`, optionally run in the background (`&`).
#[derive(Debug, Clone)]
pub(crate) struct AndOr {
    pub first: Pipeline,
    pub rest: Vec<Pipeline>,
    pub background: bool,
}

impl AndOr {
    pub fn pipelines(&self) -> impl Iterator<Item = &Pipeline> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }
}

/// `c1 | c2 | c3`.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Simple(SimpleCommand),
    Compound(Compound, Vec<Redirect>),
    FunctionDef { name: String, body: Box<Command> },
}

#[derive(Debug, Clone)]
pub(crate) enum Compound {
    /// `( list )`
    Subshell(Script),
    /// `{ list; }`
    Brace(Script),
    /// `if c; then b; elif c; then b; else b; fi` — every part is judged.
    If(Vec<Script>),
    /// `while c; do b; done`, `until ...`
    Loop(Script, Script),
    /// `for v in words; do b; done` (words empty for `for v; do`)
    For {
        var: String,
        words: Vec<Word>,
        body: Script,
    },
    /// `case w in p) b;; esac`
    Case {
        word: Word,
        arms: Vec<(Vec<Word>, Script)>,
    },
    /// `(( expr ))` and `for ((;;))` headers: only their nested substitutions matter.
    Arith(Vec<Script>),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SimpleCommand {
    pub assigns: Vec<Assign>,
    pub words: Vec<Word>,
    pub redirs: Vec<Redirect>,
}

#[derive(Debug, Clone)]
pub(crate) struct Assign {
    pub name: String,
    pub value: Word,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirOp {
    /// `<`
    In,
    /// `>`, `>|`, `>>`, `<>`, `&>`, `&>>`
    Out,
    /// `>&` / `<&` (duplication, or a file for `>& file`)
    Dup,
    /// `<<`, `<<-`
    HereDoc,
    /// `<<<`
    HereString,
}

#[derive(Debug, Clone)]
pub(crate) struct Redirect {
    pub op: RedirOp,
    /// For `HereDoc`, the body (filled in once the body has been read); otherwise the target word.
    pub target: Word,
    /// Here-doc index while parsing (bodies are read after the line ends).
    pub heredoc: Option<usize>,
}

/// A shell word: a sequence of parts; quote removal is the concatenation of the parts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Word {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub(crate) enum Part {
    /// Literal text; `quoted` is false for unquoted text (subject to globbing).
    Lit { text: String, quoted: bool },
    /// A leading `~` or `~user`.
    Tilde(String),
    /// `$name`, `${name...}`; `nested` holds substitutions inside `${x:-$(cmd)}`.
    Param {
        name: String,
        quoted: bool,
        nested: Vec<Script>,
    },
    /// `$(...)` or backticks.
    Subst { script: Box<Script>, quoted: bool },
    /// `<(...)` / `>(...)`.
    ProcSubst(Box<Script>),
    /// `$((...))` with the substitutions found inside.
    Arith(Vec<Script>),
}

impl Word {
    /// The text of a word made only of literal parts (quote removal), or None.
    pub fn static_text(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Lit { text, .. } => s.push_str(text),
                _ => return None,
            }
        }
        Some(s)
    }

    /// Every script nested in this word (command and process substitutions, `${..}` words).
    pub fn nested_scripts(&self) -> Vec<&Script> {
        let mut v = Vec::new();
        for p in &self.parts {
            match p {
                Part::Param { nested, .. } | Part::Arith(nested) => v.extend(nested.iter()),
                Part::Subst { script, .. } | Part::ProcSubst(script) => v.push(script.as_ref()),
                Part::Lit { .. } | Part::Tilde(_) => {}
            }
        }
        v
    }
}
