//! Commands that run other commands: wrappers (`sudo`, `env`, `nice`, `timeout`, `xargs`,
//! `find -exec`, `watch`, `busybox APPLET`...), shells (`sh -c STRING`, `bash` reading a pipe) and
//! `eval`. The inner command is what is judged; a wrapper, shell or `eval` is never trusted by a
//! prefix rule of its own.

use super::analyze::{Analyzer, Arg, Stream};
use super::checks::{deletion, has_short, write_target};
use super::commands::Outcome;
use super::interp::Lang;
use super::verdict::{Decision, Finding, raise};

/// Shells: `-c STRING` is parsed and judged; reading stdin judges what the pipe carries.
pub(crate) const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "pdksh", "yash", "posh", "rbash", "fish",
    "csh", "tcsh", "ksh93", "oksh", "loksh", "hush", "elvish", "nu", "xonsh", "pwsh",
];

/// (name, options that take a value, positional arguments before the command)
const WRAPPERS: &[(&str, &[&str], usize)] = &[
    ("nice", &["-n", "--adjustment"], 0),
    ("ionice", &["-c", "-n", "--class", "--classdata"], 0),
    ("timeout", &["-s", "-k", "--signal", "--kill-after"], 1),
    ("gtimeout", &["-s", "-k", "--signal", "--kill-after"], 1),
    (
        "stdbuf",
        &["-i", "-o", "-e", "--input", "--output", "--error"],
        0,
    ),
    ("nohup", &[], 0),
    ("setsid", &[], 0),
    ("time", &["-f", "-o", "--format", "--output"], 0),
    ("command", &[], 0),
    ("builtin", &[], 0),
    ("exec", &["-a"], 0),
    ("chrt", &["-T", "-P", "-D"], 1),
    ("taskset", &[], 1),
    (
        "flock",
        &["-w", "--timeout", "-E", "--conflict-exit-code"],
        1,
    ),
    ("unbuffer", &[], 0),
    ("caffeinate", &["-t", "-w"], 0),
    (
        "strace",
        &[
            "-o", "-e", "-p", "-s", "-u", "-E", "-O", "-a", "-b", "-I", "-P", "-S", "-X",
        ],
        0,
    ),
    (
        "ltrace",
        &[
            "-o", "-e", "-p", "-s", "-u", "-n", "-a", "-A", "-D", "-F", "-l", "-w",
        ],
        0,
    ),
    ("chroot", &["--userspec", "--groups"], 1),
    (
        "unshare",
        &[
            "--map-user",
            "--map-group",
            "--propagation",
            "--setgroups",
            "-S",
            "-G",
            "--wd",
            "-R",
            "--root",
        ],
        0,
    ),
    (
        "nsenter",
        &["-t", "--target", "-S", "-G", "--wd", "-R", "--root"],
        0,
    ),
    ("firejail", &[], 0),
    ("proxychains", &["-f"], 0),
    ("proxychains4", &["-f"], 0),
    ("torsocks", &[], 0),
    ("xvfb-run", &["-n", "-s", "-e", "-f", "-p"], 0),
    ("dbus-run-session", &[], 0),
    (
        "systemd-run",
        &[
            "-p",
            "--property",
            "-u",
            "--unit",
            "--uid",
            "--gid",
            "-E",
            "--setenv",
            "--slice",
            "-M",
            "--machine",
            "-H",
            "--host",
        ],
        0,
    ),
];

/// Wrappers that add a floor of their own (they change the execution environment).
const ASK_WRAPPERS: &[&str] = &[
    "chroot",
    "unshare",
    "nsenter",
    "systemd-run",
    "strace",
    "ltrace",
    "firejail",
    "proxychains",
    "proxychains4",
    "torsocks",
];

/// Names no trusted prefix rule can allow: their inner command is what counts.
pub(crate) fn untrustable(base: &str) -> bool {
    SHELLS.contains(&base)
        || WRAPPERS.iter().any(|(n, _, _)| *n == base)
        || matches!(
            base,
            "sudo"
                | "doas"
                | "pkexec"
                | "su"
                | "env"
                | "xargs"
                | "eval"
                | "source"
                | "."
                | "watch"
                | "busybox"
                | "toybox"
                | "alias"
                | "trap"
        )
}

/// Index of the wrapped command in `argv` (None: there is none).
fn skip_options(argv: &[Arg], with_value: &[&str], positional: usize) -> Option<usize> {
    let mut i = 1;
    while i < argv.len() {
        let t = argv[i].text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if !t.starts_with('-') || t == "-" {
            break;
        }
        if with_value.contains(&t) {
            i += 2;
        } else {
            i += 1;
        }
    }
    i += positional;
    (i < argv.len()).then_some(i)
}

impl Analyzer<'_> {
    pub(crate) fn wrapper_rules(
        &mut self,
        base: &str,
        argv: &[Arg],
        stdin: Option<&Stream>,
        depth: usize,
    ) -> Option<Outcome> {
        if SHELLS.contains(&base) {
            return Some(self.shell_rules(base, argv, stdin, depth));
        }
        match base {
            "sudo" | "doas" | "pkexec" | "su" | "run0" => {
                // blocked anyway; judge the inner command too so the segments show it
                let with_value: &[&str] = &[
                    "-u", "-g", "-h", "-p", "-C", "-r", "-t", "-U", "-D", "-T", "-R", "--user",
                    "--group", "-c",
                ];
                if let Some(i) = skip_options(argv, with_value, 0)
                    && base != "su"
                {
                    self.inner(&argv[i..], &[], stdin, depth);
                }
                let mut f =
                    Finding::block("builtin:privilege", format!("{base} escalates privileges"));
                if let Some(i) = argv
                    .iter()
                    .position(|a| a.text == "-c" || a.text == "--command")
                    && let Some(c) = argv.get(i + 1)
                {
                    let inner = self.judge_text(&c.text, depth, None, false);
                    f.reason.push_str(&format!(" (inner: {})", inner.rule));
                }
                Some(Outcome::Floor(Some(f)))
            }
            "env" => Some(self.env_rules(argv, stdin, depth)),
            "xargs" => {
                let with_value: &[&str] = &[
                    "-I",
                    "-L",
                    "-l",
                    "-n",
                    "-P",
                    "-s",
                    "-d",
                    "-E",
                    "-e",
                    "-a",
                    "--arg-file",
                    "--delimiter",
                    "--max-args",
                    "--max-procs",
                    "--replace",
                    "--max-lines",
                    "--max-chars",
                    "--eof",
                    "--process-slot-var",
                ];
                let replace = argv
                    .iter()
                    .position(|a| {
                        a.text == "-I"
                            || a.text == "--replace"
                            || a.text.starts_with("-I")
                            || a.text.starts_with("--replace=")
                            || a.text.starts_with("-i")
                    })
                    .map(|i| {
                        let t = &argv[i].text;
                        if t == "-I" || t == "--replace" {
                            argv.get(i + 1).map_or("{}".to_string(), |a| a.text.clone())
                        } else if let Some(r) = t.strip_prefix("--replace=") {
                            r.to_string()
                        } else if t.len() > 2 {
                            t[2..].to_string()
                        } else {
                            "{}".to_string()
                        }
                    });
                let mut f = Some(Finding::ask(
                    "builtin:xargs",
                    "xargs builds the command from its input",
                ));
                let inner: Vec<Arg> = match skip_options(argv, with_value, 0) {
                    Some(i) => {
                        let mut v: Vec<Arg> = argv[i..]
                            .iter()
                            .map(|a| match &replace {
                                Some(r) if a.text.contains(r.as_str()) => Arg {
                                    text: a.text.replace(r.as_str(), "$INPUT"),
                                    unknown: true,
                                    ..a.clone()
                                },
                                _ => a.clone(),
                            })
                            .collect();
                        if replace.is_none() {
                            v.push(Arg::unknown_input());
                        }
                        v
                    }
                    None => vec![Arg::lit("echo"), Arg::unknown_input()],
                };
                raise(&mut f, Some(self.inner(&inner, &[], None, depth)));
                Some(Outcome::Floor(f))
            }
            "find" => Some(self.find_rules(argv, depth)),
            "watch" => {
                let with_value: &[&str] = &["-n", "--interval", "-q", "--equexit"];
                let exec = argv.iter().any(|a| a.text == "-x" || a.text == "--exec");
                let i = skip_options(argv, with_value, 0)?;
                let inner = if exec {
                    self.inner(&argv[i..], &[], None, depth)
                } else {
                    let text = argv[i..]
                        .iter()
                        .map(|a| a.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let mut f = self.judge_text(&text, depth, None, false);
                    if argv[i..].iter().any(|a| a.unknown) {
                        raise_f(
                            &mut f,
                            Finding::ask(
                                "builtin:unknown-argument",
                                "watch runs a command not statically known",
                            ),
                        );
                    }
                    f
                };
                Some(Outcome::Inner(inner))
            }
            "busybox" | "toybox" => {
                let a1 = argv.get(1)?;
                if a1.text.starts_with('-') {
                    return None;
                }
                Some(Outcome::Inner(self.inner(&argv[1..], &[], stdin, depth)))
            }
            "command" | "builtin"
                if argv
                    .iter()
                    .skip(1)
                    .take_while(|a| a.text.starts_with('-'))
                    .any(|a| a.text.contains('v') || a.text.contains('V')) =>
            {
                Some(Outcome::Floor(None))
            }
            "eval" => {
                let text = argv[1..]
                    .iter()
                    .map(|a| a.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut f = self.judge_text(&text, depth, stdin, false);
                if argv[1..].iter().any(|a| a.unknown) {
                    raise_f(
                        &mut f,
                        Finding::ask(
                            "builtin:unknown-argument",
                            "eval of text not statically known",
                        ),
                    );
                    if argv[1..].iter().any(|a| a.taint.network) {
                        raise_f(
                            &mut f,
                            Finding::block(
                                "builtin:network-to-shell",
                                "eval of text downloaded from the network",
                            ),
                        );
                    } else if argv[1..].iter().any(|a| a.taint.obfuscated) {
                        raise_f(
                            &mut f,
                            Finding::block(
                                "builtin:obfuscated-to-shell",
                                "eval of encoded text that cannot be decoded statically",
                            ),
                        );
                    }
                }
                Some(Outcome::Inner(f))
            }
            _ => {
                let (_, with_value, positional) = WRAPPERS.iter().find(|(n, _, _)| *n == base)?;
                if base == "ionice" && has_short(argv, 'p')
                    || base == "taskset" && has_short(argv, 'p')
                    || base == "chrt" && has_short(argv, 'p')
                {
                    return Some(Outcome::Floor(Some(Finding::ask(
                        "default",
                        format!("{base} changes a running process"),
                    ))));
                }
                if base == "flock"
                    && let Some(i) = argv
                        .iter()
                        .position(|a| a.text == "-c" || a.text == "--command")
                {
                    let c = argv.get(i + 1)?;
                    return Some(Outcome::Inner(
                        self.judge_text(&c.text, depth, stdin, false),
                    ));
                }
                let Some(i) = skip_options(argv, with_value, *positional) else {
                    // `exec 3>&1`, `time` alone, `nohup` alone: nothing wrapped
                    return Some(Outcome::Floor(None));
                };
                let mut f = self.inner(&argv[i..], &[], stdin, depth);
                if ASK_WRAPPERS.contains(&base) {
                    raise_f(
                        &mut f,
                        Finding::ask(
                            "builtin:wrapper",
                            format!("{base} changes how the command runs"),
                        ),
                    );
                }
                Some(Outcome::Inner(f))
            }
        }
    }

    /// Judge an inner command (of a wrapper); returns its finding (maybe allow).
    pub(crate) fn inner(
        &mut self,
        argv: &[Arg],
        assigns: &[(String, Arg)],
        stdin: Option<&Stream>,
        depth: usize,
    ) -> Finding {
        if argv.is_empty() {
            return Finding::ask("default", "nothing wrapped");
        }
        let f = self.judge_argv(argv, assigns, &[], stdin, depth + 1);
        if f.decision > Decision::Allow {
            self.push(super::analyze::display(argv), f.clone());
        }
        f
    }

    fn env_rules(&mut self, argv: &[Arg], stdin: Option<&Stream>, depth: usize) -> Outcome {
        // options as env reads them (`-S'..'`, `--split-s=..`, `-iS ..`); `-C` is judged by
        // the option table
        let parsed = super::options::specs_for("env")
            .next()
            .map(|spec| super::options::parse(argv, 1, spec))
            .unwrap_or_default();
        let split: Option<String> = parsed
            .uses
            .iter()
            .filter(|u| u.name == "-S" || u.name == "--split-string")
            .find_map(|u| u.value.as_ref().map(|v| v.text.clone()));
        let mut i = parsed.operands.first().copied().unwrap_or(argv.len());
        let mut assigns = Vec::new();
        while i < argv.len() {
            match argv[i].text.split_once('=') {
                Some((n, v))
                    if !n.is_empty()
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    assigns.push((
                        n.to_string(),
                        Arg {
                            text: v.to_string(),
                            ..argv[i].clone()
                        },
                    ));
                    i += 1;
                }
                _ => break,
            }
        }
        if let Some(s) = split {
            let rest = argv[i..]
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let mut f = self.judge_text(&format!("{s} {rest}"), depth, stdin, false);
            for (n, v) in &assigns {
                if let Some(a) = super::checks::check_assign(n, v) {
                    raise_f(&mut f, a);
                }
            }
            return Outcome::Inner(f);
        }
        if i >= argv.len() {
            // prints the environment
            let mut f = None;
            for (n, v) in &assigns {
                raise(&mut f, super::checks::check_assign(n, v));
            }
            return Outcome::Floor(f.or_else(|| {
                Some(Finding::ask(
                    "builtin:env-dump",
                    "prints the environment, which may hold secrets",
                ))
            }));
        }
        Outcome::Inner(self.inner(&argv[i..], &assigns, stdin, depth))
    }

    fn shell_rules(
        &mut self,
        base: &str,
        argv: &[Arg],
        stdin: Option<&Stream>,
        depth: usize,
    ) -> Outcome {
        let mut i = 1;
        let mut dash_c = false;
        let mut read_stdin = false;
        while i < argv.len() {
            let t = argv[i].text.as_str();
            if t == "--" || t == "-" {
                read_stdin |= t == "-";
                i += 1;
                break;
            }
            if matches!(t, "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") {
                i += 2;
                continue;
            }
            if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 {
                if !t.starts_with("--") {
                    dash_c |= t.contains('c');
                    read_stdin |= t.contains('s');
                }
                i += 1;
                continue;
            }
            break;
        }
        if dash_c {
            let Some(code) = argv.get(i) else {
                return Outcome::Floor(Some(Finding::ask(
                    "builtin:parse-error",
                    format!("{base} -c without a command"),
                )));
            };
            let mut f = self.judge_text(&code.text, depth, stdin, false);
            if code.unknown {
                raise_f(
                    &mut f,
                    Finding::ask(
                        "builtin:unknown-argument",
                        format!("{base} -c with a command not statically known"),
                    ),
                );
                if code.taint.network {
                    raise_f(
                        &mut f,
                        Finding::block(
                            "builtin:network-to-shell",
                            format!("{base} -c runs code downloaded from the network"),
                        ),
                    );
                } else if code.taint.obfuscated {
                    raise_f(
                        &mut f,
                        Finding::block(
                            "builtin:obfuscated-to-shell",
                            format!(
                                "{base} -c runs encoded code that cannot be decoded statically"
                            ),
                        ),
                    );
                }
            }
            return Outcome::Inner(f);
        }
        match argv.get(i) {
            Some(script) if !read_stdin && script.text != "/dev/stdin" => {
                if let Some(s) = &script.stream {
                    return Outcome::Floor(Some(self.judge_code_stream(None, s, depth)));
                }
                let mut f = Some(Finding::ask(
                    "builtin:script",
                    format!("{base} runs the script {}", script.text),
                ));
                if script.taint.network {
                    raise(
                        &mut f,
                        Some(Finding::block(
                            "builtin:network-to-shell",
                            format!("{base} runs a script downloaded from the network"),
                        )),
                    );
                }
                Outcome::Floor(f)
            }
            _ => match stdin {
                Some(s) => Outcome::Floor(Some(self.judge_code_stream(None, s, depth))),
                None => Outcome::Floor(Some(Finding::ask(
                    "builtin:interactive-shell",
                    format!("{base} starts an interactive shell"),
                ))),
            },
        }
    }

    /// A shell (`lang` None) or an interpreter reads code from `s`.
    pub(crate) fn judge_code_stream(
        &mut self,
        lang: Option<Lang>,
        s: &Stream,
        depth: usize,
    ) -> Finding {
        let what = lang.map_or("a shell", Lang::name);
        if s.network {
            return Finding::block(
                "builtin:network-to-shell",
                format!("{what} runs code downloaded from the network"),
            );
        }
        let mut f = Finding::ask(
            "builtin:pipe-to-shell",
            format!("{what} runs code from its input"),
        );
        for t in &s.texts {
            let inner = match lang {
                None => self.judge_text(t, depth, None, false),
                Some(l) => self.judge_code(l, t, depth),
            };
            raise_f(&mut f, inner);
        }
        if s.unknown && s.obfuscated {
            raise_f(
                &mut f,
                Finding::block(
                    "builtin:obfuscated-to-shell",
                    format!("{what} runs encoded code that cannot be decoded statically"),
                ),
            );
        }
        f
    }

    fn find_rules(&mut self, argv: &[Arg], depth: usize) -> Outcome {
        const NO_FILTER: &[&str] = &[
            "-maxdepth",
            "-mindepth",
            "-depth",
            "-xdev",
            "-mount",
            "-follow",
            "-noleaf",
            "-ignore_readdir_race",
            "-d",
            "-H",
            "-L",
            "-P",
            "-print",
            "-print0",
            "-ls",
            "-daystart",
        ];
        let mut i = 1;
        while i < argv.len()
            && matches!(
                argv[i].text.as_str(),
                "-H" | "-L" | "-P" | "-O0" | "-O1" | "-O2" | "-O3"
            )
        {
            i += 1;
        }
        let mut starts: Vec<Arg> = Vec::new();
        while i < argv.len()
            && !argv[i].text.starts_with('-')
            && !matches!(argv[i].text.as_str(), "(" | "!" | ",")
        {
            starts.push(argv[i].clone());
            i += 1;
        }
        if starts.is_empty() {
            starts.push(Arg::lit("."));
        }
        let expr = &argv[i.min(argv.len())..];
        let mut filtered = false;
        let mut j = 0;
        while j < expr.len() {
            let t = expr[j].text.as_str();
            if matches!(t, "-exec" | "-execdir" | "-ok" | "-okdir") {
                while j < expr.len() && expr[j].text != ";" && expr[j].text != "+" {
                    j += 1;
                }
            } else if t.starts_with('-')
                && !NO_FILTER.contains(&t)
                && t != "-delete"
                && !t.starts_with("-fprint")
                && t != "-fls"
            {
                filtered = true;
            }
            j += 1;
        }
        // what `{}` / the deleted files stand for
        let targets: Vec<Arg> = starts
            .iter()
            .map(|s| {
                if filtered {
                    Arg {
                        text: format!("{}/$FOUND", s.text.trim_end_matches('/')),
                        unknown: true,
                        ..s.clone()
                    }
                } else {
                    s.clone()
                }
            })
            .collect();
        let mut f: Option<Finding> = None;
        let mut j = 0;
        while j < expr.len() {
            let t = expr[j].text.as_str();
            match t {
                "-delete" => {
                    let refs: Vec<&Arg> = targets.iter().collect();
                    raise(&mut f, deletion(&refs, true, "find -delete"));
                    raise(
                        &mut f,
                        Some(Finding::ask(
                            "builtin:find-delete",
                            "find -delete deletes files",
                        )),
                    );
                }
                "-exec" | "-execdir" | "-ok" | "-okdir" => {
                    let mut k = j + 1;
                    let mut inner = Vec::new();
                    while k < expr.len() && expr[k].text != ";" && expr[k].text != "+" {
                        inner.push(expr[k].clone());
                        k += 1;
                    }
                    for target in &targets {
                        let argv: Vec<Arg> = inner
                            .iter()
                            .map(|a| {
                                if a.text.contains("{}") {
                                    Arg {
                                        text: a.text.replace("{}", &target.text),
                                        unknown: a.unknown || target.unknown,
                                        ..a.clone()
                                    }
                                } else {
                                    a.clone()
                                }
                            })
                            .collect();
                        let g = self.inner(&argv, &[], None, depth);
                        raise(&mut f, Some(g));
                    }
                    raise(
                        &mut f,
                        Some(Finding::ask(
                            "builtin:find-exec",
                            format!("find {t} runs a command for every file"),
                        )),
                    );
                    j = k;
                }
                "-fprint" | "-fprint0" | "-fprintf" | "-fls" => {
                    if let Some(a) = expr.get(j + 1) {
                        raise(&mut f, write_target(a, "find writes to"));
                    }
                }
                _ => {}
            }
            j += 1;
        }
        Outcome::Floor(f)
    }
}

fn raise_f(acc: &mut Finding, f: Finding) {
    if f.decision > acc.decision {
        *acc = f;
    }
}
