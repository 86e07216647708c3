//! Interpreters with inline code (`python3 -c`, `perl -e`, `node -e`, `ruby -e`, `php -r`,
//! `lua -e`, `awk 'prog'`...). Inline code is always at least `ask`. It is `block`ed when it
//! plainly does something destructive, judged by patterns kept deliberately conservative:
//! a string literal that is a blocked shell command next to a process-spawning call, a
//! deletion call next to a root/system/home path literal, a credential path, a raw device,
//! a write to a system path, `fork` in a loop, or code fetched from the network and executed.

use super::analyze::{Analyzer, Arg, Stream};
use super::commands::Outcome;
use super::paths::{PathKind, classify, is_credential};
use super::verdict::{Decision, Finding};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Python,
    Perl,
    Ruby,
    Node,
    Php,
    Lua,
    Awk,
    Other,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Perl => "perl",
            Lang::Ruby => "ruby",
            Lang::Node => "node",
            Lang::Php => "php",
            Lang::Lua => "lua",
            Lang::Awk => "awk",
            Lang::Other => "interpreter",
        }
    }
}

pub(crate) fn lang_of(base: &str) -> Option<Lang> {
    let b = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    Some(match b {
        "python" | "pypy" | "ipython" => Lang::Python,
        "perl" => Lang::Perl,
        "ruby" | "jruby" | "irb" => Lang::Ruby,
        "node" | "nodejs" | "deno" | "bun" => Lang::Node,
        "php" | "php-cli" => Lang::Php,
        "lua" | "luajit" => Lang::Lua,
        "awk" | "gawk" | "mawk" | "nawk" => Lang::Awk,
        "Rscript" | "osascript" | "tclsh" | "wish" | "expect" | "guile" | "julia" | "jshell"
        | "groovy" | "scala" | "elixir" | "erl" | "escript" => Lang::Other,
        _ => return None,
    })
}

#[derive(Debug, Default)]
struct Invocation {
    code: Vec<Arg>,
    script: Option<Arg>,
    /// `-m module`, `--version`...: neither inline code nor stdin.
    other: bool,
}

/// Flags whose presence means "the next argument (or the rest of this one) is code".
fn code_flag(lang: Lang) -> &'static [char] {
    match lang {
        Lang::Python => &['c'],
        Lang::Perl | Lang::Ruby | Lang::Lua => &['e', 'E'],
        Lang::Node => &['e', 'p'],
        Lang::Php => &['r'],
        Lang::Awk | Lang::Other => &['e'],
    }
}

/// Short options that take the rest of the group or the next argument as a plain value.
fn value_flags(lang: Lang) -> &'static [char] {
    match lang {
        Lang::Python => &['W', 'X', 'Q'],
        Lang::Perl => &['M', 'm', 'I', 'i', 'x', 'C', 'd', 'D'],
        Lang::Ruby => &['r', 'I', 'C', 'E', 'F', 'i', 'x', 'K', 'T', 'W'],
        Lang::Node => &['r'],
        Lang::Php => &['c', 'd', 'f', 'z', 't'],
        Lang::Lua => &['l'],
        Lang::Awk => &['F', 'v', 'f'],
        Lang::Other => &[],
    }
}

fn parse_invocation(lang: Lang, argv: &[Arg]) -> Invocation {
    let mut inv = Invocation::default();
    let mut i = 1;
    let mut awk_progfile = false;
    // deno/bun sub-commands
    if matches!(argv.first().map(|a| a.text.as_str()), Some(n) if n.ends_with("deno") || n.ends_with("bun"))
        && let Some(a1) = argv.get(1)
    {
        if a1.text == "eval" {
            inv.code.extend(argv.get(2).cloned());
            return inv;
        }
        if !a1.text.starts_with('-') {
            inv.script = argv.get(2).cloned().or_else(|| Some(a1.clone()));
            return inv;
        }
    }
    while i < argv.len() {
        let a = &argv[i];
        let t = a.text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if t == "-" {
            return inv; // reads stdin
        }
        if let Some(long) = t.strip_prefix("--") {
            match long.split_once('=') {
                Some(("eval" | "print" | "source", code)) => inv.code.push(Arg {
                    text: code.to_string(),
                    ..a.clone()
                }),
                None if matches!(long, "eval" | "print" | "source") => {
                    inv.code.extend(argv.get(i + 1).cloned());
                    i += 1;
                }
                None if matches!(long, "version" | "help") => inv.other = true,
                None if matches!(
                    long,
                    "require" | "file" | "field-separator" | "assign" | "import" | "loader"
                ) =>
                {
                    awk_progfile |= long == "file";
                    i += 1;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        if !t.starts_with('-') || t.len() < 2 {
            break;
        }
        let chars: Vec<char> = t[1..].chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let c = chars[k];
            let rest: String = chars[k + 1..].iter().collect();
            if code_flag(lang).contains(&c) {
                if rest.is_empty() {
                    inv.code.extend(argv.get(i + 1).cloned());
                    i += 1;
                } else {
                    inv.code.push(Arg {
                        text: rest,
                        ..a.clone()
                    });
                }
                break;
            }
            if matches!(lang, Lang::Perl | Lang::Ruby) && matches!(c, 'l' | '0') {
                // optional octal digits
                k += 1;
                while k < chars.len() && chars[k].is_ascii_digit() {
                    k += 1;
                }
                continue;
            }
            if lang == Lang::Python && c == 'm' {
                inv.other = true;
                return inv;
            }
            if matches!(c, 'V' | 'h' | 'v') && lang != Lang::Awk && lang != Lang::Perl {
                inv.other = true;
            }
            if lang == Lang::Perl && matches!(c, 'v' | 'V' | 'c') {
                inv.other = true;
            }
            if value_flags(lang).contains(&c) {
                if lang == Lang::Awk && c == 'f' {
                    awk_progfile = true;
                }
                let optional = lang == Lang::Perl && matches!(c, 'i' | 'x' | 'C' | 'd' | 'D')
                    || lang == Lang::Ruby && matches!(c, 'i' | 'x' | 'W' | 'T');
                if rest.is_empty() && !optional {
                    i += 1;
                }
                break;
            }
            k += 1;
        }
        i += 1;
    }
    if lang == Lang::Awk
        && !awk_progfile
        && inv.code.is_empty()
        && let Some(p) = argv.get(i)
    {
        inv.code.push(p.clone());
        return inv;
    }
    if inv.code.is_empty() && !(lang == Lang::Awk && awk_progfile) {
        inv.script = argv.get(i).cloned();
    }
    if lang == Lang::Awk && awk_progfile {
        inv.other = true;
    }
    inv
}

/// An awk program that runs nothing and writes no file.
fn awk_plain(code: &str) -> bool {
    ![
        "system", "getline", "|", ">", "close(", "fflush", "ENVIRON", "@load", "@include",
    ]
    .iter()
    .any(|m| code.contains(m))
}

/// Does a trusted prefix rule of `pattern_len` tokens count for this interpreter command?
/// One-token rules (`python3`) never allow; longer ones allow only without inline code.
pub(crate) fn interp_trust_ok(argv: &[Arg], pattern_len: usize) -> bool {
    let Some(lang) = argv
        .first()
        .and_then(|a| lang_of(super::analyze::basename(&a.text)))
    else {
        return true;
    };
    let inv = parse_invocation(lang, argv);
    if lang == Lang::Awk {
        return inv.code.iter().all(|c| awk_plain(&c.text));
    }
    pattern_len >= 2 && inv.code.is_empty()
}

const EXEC_MARKERS: &[&str] = &[
    "system(",
    "system (",
    "system \"",
    "system '",
    "system qq",
    "popen",
    "subprocess",
    "exec(",
    "exec \"",
    "exec '",
    "execSync",
    "execFile",
    "spawn",
    "child_process",
    "`",
    "qx",
    "shell_exec",
    "passthru",
    "proc_open",
    "os.execute",
    "pty.",
    "execv",
    "execl",
    "%x",
    "Open3",
    "getoutput",
    "check_output",
    "check_call",
    ".run(",
    ".call(",
    "Popen",
    "Deno.run",
    "Deno.Command",
    "Bun.spawn",
    "$(",
    "do shell script",
];
const DELETE_MARKERS: &[&str] = &[
    "rmtree",
    "remove",
    "unlink",
    "rmdir",
    "rmSync",
    "rm_rf",
    "rm_r",
    "rimraf",
    "removedirs",
    "delete",
    "File.delete",
    "FileUtils.rm",
    "Remove-Item",
    "truncate",
    "rm(",
];
const WRITE_MARKERS: &[&str] = &[
    "'w'",
    "\"w\"",
    "'a'",
    "\"a\"",
    "'wb'",
    "\"wb\"",
    "'w+'",
    "'r+'",
    "writeFile",
    "appendFile",
    "write_text",
    "write_bytes",
    "File.write",
    "file_put_contents",
    "createWriteStream",
    ">",
];
const FETCH_MARKERS: &[&str] = &[
    "urlopen",
    "urllib",
    "requests.",
    "http.get",
    "https.get",
    "fetch(",
    "LWP",
    "HTTP::Tiny",
    "Net::HTTP",
    "open-uri",
    "URI.open",
    "file_get_contents(\"http",
    "file_get_contents('http",
    "socket",
];
const EVAL_MARKERS: &[&str] = &["exec(", "eval(", "eval ", "system", "popen", "Function("];

/// String literals of `code`: '...', "...", `...`, and perl/ruby qx{...} / %x(...).
fn string_literals(code: &str) -> Vec<String> {
    let cs: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() && out.len() < 64 {
        let c = cs[i];
        let quote = match c {
            '\'' | '"' | '`' => Some((c, c)),
            'q' | '%' if cs.get(i + 1) == Some(&'x') => cs.get(i + 2).and_then(|d| match d {
                '{' => Some(('{', '}')),
                '(' => Some(('(', ')')),
                '[' => Some(('[', ']')),
                '<' => Some(('<', '>')),
                d if d.is_ascii_punctuation() => Some((*d, *d)),
                _ => None,
            }),
            _ => None,
        };
        let Some((open, close)) = quote else {
            i += 1;
            continue;
        };
        i += if c == open { 1 } else { 3 };
        let mut s = String::new();
        while i < cs.len() && cs[i] != close {
            if cs[i] == '\\' && i + 1 < cs.len() {
                let n = cs[i + 1];
                match n {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'x' if i + 3 < cs.len() => {
                        let h: String = cs[i + 2..i + 4].iter().collect();
                        match u8::from_str_radix(&h, 16) {
                            Ok(b) => {
                                s.push(char::from(b));
                                i += 2;
                            }
                            Err(_) => s.push('x'),
                        }
                    }
                    n => s.push(n),
                }
                i += 2;
                continue;
            }
            s.push(cs[i]);
            i += 1;
        }
        let _ = open;
        i += 1;
        out.push(s);
    }
    out
}

impl Analyzer<'_> {
    pub(crate) fn interpreter_rules(
        &mut self,
        base: &str,
        argv: &[Arg],
        stdin: Option<&Stream>,
        depth: usize,
    ) -> Option<Outcome> {
        let lang = lang_of(base)?;
        let inv = parse_invocation(lang, argv);
        if lang == Lang::Awk && inv.code.iter().all(|c| !c.unknown && awk_plain(&c.text)) {
            // a plain awk program (no system(), pipes, getline or output redirection) is a filter
            return Some(Outcome::Floor(None));
        }
        if !inv.code.is_empty() {
            let mut f = Finding::ask(
                "builtin:inline-code",
                format!("inline {} code", lang.name()),
            );
            for c in &inv.code {
                raise_f(&mut f, self.judge_code(lang, &c.text, depth));
                if c.unknown && (c.taint.network || c.taint.obfuscated) {
                    raise_f(
                        &mut f,
                        Finding::block(
                            "builtin:network-to-shell",
                            format!("{} runs downloaded or encoded code", lang.name()),
                        ),
                    );
                }
            }
            return Some(Outcome::Floor(Some(f)));
        }
        if let Some(script) = &inv.script {
            if script.text == "/dev/stdin" || script.text == "-" {
                return Some(Outcome::Floor(Some(match stdin {
                    Some(s) => self.judge_code_stream(Some(lang), s, depth),
                    None => Finding::ask(
                        "builtin:interactive-shell",
                        format!("{} reads code from the terminal", lang.name()),
                    ),
                })));
            }
            if let Some(s) = &script.stream {
                return Some(Outcome::Floor(Some(self.judge_code_stream(
                    Some(lang),
                    s,
                    depth,
                ))));
            }
            if script.text.starts_with("http://") || script.text.starts_with("https://") {
                return Some(Outcome::Floor(Some(Finding::block(
                    "builtin:network-to-shell",
                    format!("{} runs code from a URL", lang.name()),
                ))));
            }
            return Some(Outcome::Floor(None));
        }
        if inv.other {
            return Some(Outcome::Floor(None));
        }
        Some(Outcome::Floor(Some(match stdin {
            Some(s) => self.judge_code_stream(Some(lang), s, depth),
            None => Finding::ask(
                "builtin:interactive-shell",
                format!("{} starts an interactive interpreter", lang.name()),
            ),
        })))
    }

    /// Judge inline code (always at least ask).
    pub(crate) fn judge_code(&mut self, lang: Lang, code: &str, depth: usize) -> Finding {
        let mut f = Finding::ask(
            "builtin:inline-code",
            format!("inline {} code", lang.name()),
        );
        let lits = string_literals(code);
        let exec = EXEC_MARKERS.iter().any(|m| code.contains(m))
            || (lang == Lang::Awk
                && (code.contains("| \"") || code.contains("|&") || code.contains("getline")));
        if exec {
            for l in lits.iter().take(32) {
                let g = self.judge_text(l, depth, None, true);
                if g.decision == Decision::Block {
                    raise_f(
                        &mut f,
                        Finding::block(
                            &g.rule,
                            format!(
                                "inline {} code runs `{}`: {}",
                                lang.name(),
                                l.trim(),
                                g.reason
                            ),
                        ),
                    );
                }
            }
            if lits.len() > 1 {
                let joined = lits.join(" ");
                let g = self.judge_text(&joined, depth, None, true);
                if g.decision == Decision::Block {
                    raise_f(
                        &mut f,
                        Finding::block(
                            &g.rule,
                            format!("inline {} code runs `{}`", lang.name(), joined),
                        ),
                    );
                }
            }
        }
        let deletes = DELETE_MARKERS.iter().any(|m| code.contains(m));
        let writes = WRITE_MARKERS.iter().any(|m| code.contains(m));
        for l in &lits {
            let path = l.trim_start_matches(['>', '<', '+', ' ']);
            if is_credential(path) {
                raise_f(
                    &mut f,
                    Finding::block(
                        "builtin:credential-read",
                        format!(
                            "inline {} code uses {path}, a credential or history file",
                            lang.name()
                        ),
                    ),
                );
            }
            let k = classify(path);
            let looks_like_path = path.starts_with(['/', '~', '.']) || path.starts_with("$HOME");
            if !looks_like_path {
                continue;
            }
            if k == PathKind::BlockDevice {
                raise_f(
                    &mut f,
                    Finding::block(
                        "builtin:device-write",
                        format!("inline {} code uses the raw device {path}", lang.name()),
                    ),
                );
            }
            if deletes && k.is_destructive_tree() {
                raise_f(
                    &mut f,
                    Finding::block(
                        "builtin:inline-delete",
                        format!("inline {} code deletes {path}", lang.name()),
                    ),
                );
            }
            if writes && matches!(k, PathKind::System | PathKind::Root) && path != "/" {
                raise_f(
                    &mut f,
                    Finding::block(
                        "builtin:system-write",
                        format!("inline {} code writes to {path}", lang.name()),
                    ),
                );
            }
        }
        if code.contains("fork")
            && ["while", "for ", "for(", "loop", "until", "each"]
                .iter()
                .any(|m| code.contains(m))
        {
            raise_f(
                &mut f,
                Finding::block(
                    "builtin:fork-bomb",
                    format!("inline {} code forks in a loop", lang.name()),
                ),
            );
        }
        if FETCH_MARKERS.iter().any(|m| code.contains(m))
            && EVAL_MARKERS.iter().any(|m| code.contains(m))
        {
            raise_f(
                &mut f,
                Finding::block(
                    "builtin:network-to-shell",
                    format!(
                        "inline {} code runs code fetched from the network",
                        lang.name()
                    ),
                ),
            );
        }
        f
    }
}

fn raise_f(acc: &mut Finding, f: Finding) {
    if f.decision > acc.decision {
        *acc = f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<Arg> {
        v.iter().map(|s| Arg::lit(s)).collect()
    }

    #[test]
    fn invocations() {
        let i = parse_invocation(Lang::Python, &argv(&["python3", "-Bc", "print(1)"]));
        assert_eq!(i.code[0].text, "print(1)");
        let i = parse_invocation(Lang::Python, &argv(&["python3", "-m", "pytest"]));
        assert!(i.other && i.code.is_empty());
        let i = parse_invocation(Lang::Python, &argv(&["python3", "script.py", "-c", "x"]));
        assert_eq!(i.script.map(|a| a.text).as_deref(), Some("script.py"));
        assert!(i.code.is_empty());
        let i = parse_invocation(Lang::Perl, &argv(&["perl", "-lne", "print", "f"]));
        assert_eq!(i.code[0].text, "print");
        let i = parse_invocation(Lang::Perl, &argv(&["perl", "-i.bak", "-pe", "s/a/b/", "f"]));
        assert_eq!(i.code[0].text, "s/a/b/");
        let i = parse_invocation(Lang::Node, &argv(&["node", "--eval=1+1"]));
        assert_eq!(i.code[0].text, "1+1");
        let i = parse_invocation(
            Lang::Awk,
            &argv(&["awk", "-F:", "{print $1}", "/etc/passwd"]),
        );
        assert_eq!(i.code[0].text, "{print $1}");
        let i = parse_invocation(Lang::Awk, &argv(&["awk", "-f", "prog.awk", "x"]));
        assert!(i.code.is_empty());
        let i = parse_invocation(Lang::Php, &argv(&["php", "-r", "echo 1;"]));
        assert_eq!(i.code[0].text, "echo 1;");
    }

    #[test]
    fn literals() {
        assert_eq!(
            string_literals(r#"os.system('rm -rf /'); x="a\"b""#),
            vec!["rm -rf /".to_string(), "a\"b".to_string()]
        );
        assert_eq!(
            string_literals("print qx{rm -rf /}"),
            vec!["rm -rf /".to_string()]
        );
    }
}
