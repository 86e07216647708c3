//! Checks shared by every command: flags and operands, deletion targets, written files,
//! redirections, assignments, credential and secrets arguments.

use super::analyze::{Arg, Stream, basename};
use super::ast::RedirOp;
use super::paths::{PathKind, classify, is_credential, is_dotenv};
use super::verdict::{Finding, raise};

/// Programs that fetch data from the network (a pipe from them into a shell is blocked).
pub(crate) const NETWORK_TOOLS: &[&str] = &[
    "curl", "wget", "nc", "ncat", "netcat", "socat", "fetch", "aria2c", "http", "https", "xh",
    "lynx", "links", "w3m", "ftp", "tftp", "telnet", "ssh", "scp", "sftp", "rsync", "openssl",
    "mail", "mailx", "sendmail", "s3cmd", "aws", "gsutil", "rclone", "httpie",
];

pub(crate) fn is_network_tool(base: &str) -> bool {
    NETWORK_TOOLS.contains(&base)
}

/// Short flag `c` present (in `-abc` style groups before `--`)?
pub(crate) fn has_short(argv: &[Arg], c: char) -> bool {
    for a in argv.iter().skip(1) {
        let t = a.text.as_str();
        if t == "--" {
            break;
        }
        if t.starts_with('-')
            && !t.starts_with("--")
            && t.len() > 1
            && t[1..].chars().all(|x| x.is_ascii_alphanumeric())
            && t.contains(c)
        {
            return true;
        }
    }
    false
}

pub(crate) fn has_long(argv: &[Arg], l: &str) -> bool {
    argv.iter()
        .skip(1)
        .take_while(|a| a.text != "--")
        .any(|a| a.text == l || a.text.starts_with(&format!("{l}=")))
}

/// Arguments that are not options (everything after `--` counts).
pub(crate) fn positionals(argv: &[Arg]) -> Vec<&Arg> {
    let mut out = Vec::new();
    let mut opts = true;
    for a in argv.iter().skip(1) {
        if opts && a.text == "--" {
            opts = false;
            continue;
        }
        if opts && a.text.starts_with('-') && a.text.len() > 1 {
            continue;
        }
        out.push(a);
    }
    out
}

pub(crate) fn kind(a: &Arg) -> PathKind {
    classify(&a.text)
}

pub(crate) fn describe(k: PathKind) -> &'static str {
    match k {
        PathKind::Root => "the root file system",
        PathKind::System => "a system path",
        PathKind::TopLevel => "a top-level directory",
        PathKind::Home => "the home directory",
        PathKind::WorkspaceTop => "the whole workspace",
        PathKind::Parent => "a directory above the workspace",
        PathKind::BlockDevice => "a raw disk or memory device",
        PathKind::NetDevice => "a network socket device",
        _ => "a path outside the workspace",
    }
}

fn rule_for(k: PathKind) -> &'static str {
    match k {
        PathKind::Root => "builtin:rm-root",
        PathKind::System | PathKind::TopLevel => "builtin:rm-system",
        PathKind::Home => "builtin:rm-home",
        PathKind::WorkspaceTop | PathKind::Parent => "builtin:rm-workspace",
        _ => "builtin:rm",
    }
}

/// Deleting `targets` (recursively or not): the finding for the strictest target.
pub(crate) fn deletion(targets: &[&Arg], recursive: bool, what: &str) -> Option<Finding> {
    let mut f = None;
    for t in targets {
        let k = kind(t);
        let found = match k {
            PathKind::Root | PathKind::System | PathKind::BlockDevice => Some(Finding::block(
                rule_for(k),
                format!("{what} {} ({})", t.text, describe(k)),
            )),
            k if recursive && k.is_destructive_tree() => Some(Finding::block(
                rule_for(k),
                format!("recursive {what} of {} ({})", t.text, describe(k)),
            )),
            PathKind::Relative | PathKind::SafeDevice => None,
            PathKind::Unknown if recursive => Some(Finding::ask(
                "builtin:rm-unknown",
                format!(
                    "recursive {what} of {}, a path not statically known",
                    t.text
                ),
            )),
            _ => Some(Finding::ask(
                "builtin:rm-outside",
                format!("{what} of {} ({})", t.text, describe(k)),
            )),
        };
        raise(&mut f, found);
    }
    f
}

/// A file written by a redirection, `tee`, `cp` destination...
pub(crate) fn write_target(a: &Arg, how: &str) -> Option<Finding> {
    if is_credential(&a.text) {
        return Some(Finding::block(
            "builtin:credential-write",
            format!("{how} {}: a credential or history file", a.text),
        ));
    }
    let k = kind(a);
    match k {
        PathKind::BlockDevice => Some(Finding::block(
            "builtin:device-write",
            format!("{how} {}: a raw disk or memory device", a.text),
        )),
        PathKind::NetDevice => Some(Finding::block(
            "builtin:reverse-shell",
            format!(
                "{how} {}: a network socket (reverse shell or exfiltration)",
                a.text
            ),
        )),
        PathKind::Root | PathKind::System | PathKind::TopLevel => Some(Finding::block(
            "builtin:system-write",
            format!("{how} {}: {}", a.text, describe(k)),
        )),
        PathKind::Relative => match super::files::classify_write(&a.text) {
            super::files::WriteClass::ExecConfig(why) => Some(Finding::ask(
                "builtin:exec-config-file",
                format!("{how} {}: a file that configures execution: {why}", a.text),
            )),
            _ => None,
        },
        PathKind::SafeDevice => None,
        PathKind::Home if a.text.contains(".ssh") => Some(Finding::block(
            "builtin:credential-write",
            format!("{how} {}", a.text),
        )),
        _ if home_persistence(&a.text) => Some(Finding::block(
            "builtin:persistence",
            format!("{how} {}: a login or shell start-up file", a.text),
        )),
        PathKind::Unknown => Some(Finding::ask(
            "builtin:write-unknown",
            format!("{how} {}, a path not statically known", a.text),
        )),
        _ => Some(Finding::ask(
            "builtin:write-outside",
            format!("{how} {}, outside the workspace", a.text),
        )),
    }
}

fn home_persistence(t: &str) -> bool {
    const FILES: &[&str] = &[
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".profile",
        ".zshrc",
        ".zprofile",
        ".zshenv",
        ".bash_logout",
        "authorized_keys",
        ".config/autostart",
        ".config/systemd",
    ];
    (t.starts_with('~')
        || t.starts_with("$HOME")
        || t.starts_with("/home/")
        || t.starts_with("/root/"))
        && FILES
            .iter()
            .any(|f| t.ends_with(f) || t.contains(&format!("/{f}/")))
}

pub(crate) fn check_redirect(op: RedirOp, t: &Arg) -> Option<Finding> {
    match op {
        RedirOp::Out => write_target(t, "writes to"),
        RedirOp::Dup => {
            if t.text == "-" || t.text.chars().all(|c| c.is_ascii_digit()) {
                None
            } else {
                write_target(t, "writes to")
            }
        }
        RedirOp::In => {
            if is_credential(&t.text) {
                return Some(Finding::block(
                    "builtin:credential-read",
                    format!("reads {}: a credential or history file", t.text),
                ));
            }
            match kind(t) {
                PathKind::BlockDevice => Some(Finding::block(
                    "builtin:device-read",
                    format!("reads {}: a raw disk or memory device", t.text),
                )),
                PathKind::NetDevice => Some(Finding::block(
                    "builtin:reverse-shell",
                    format!("reads {}: a network socket", t.text),
                )),
                PathKind::Relative | PathKind::SafeDevice if !is_dotenv(&t.text) => None,
                _ if is_dotenv(&t.text) => Some(Finding::ask(
                    "builtin:secrets-file",
                    format!("reads {}, a secrets file", t.text),
                )),
                _ if t.stream.is_some() => None,
                _ => Some(Finding::ask(
                    "builtin:read-outside",
                    format!(
                        "reads {}, outside the workspace or not statically known",
                        t.text
                    ),
                )),
            }
        }
        RedirOp::HereDoc | RedirOp::HereString => t.unknown.then(|| {
            Finding::ask(
                "builtin:unknown-argument",
                "here-document with expansions not statically known",
            )
        }),
    }
}

const SENSITIVE_VARS: &[&str] = &[
    "PATH",
    "IFS",
    "BASH_ENV",
    "ENV",
    "PS4",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "BASHOPTS",
    "HOME",
    "CDPATH",
    "GLOBIGNORE",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "RUBYOPT",
    "RUBYLIB",
    "PAGER",
    "EDITOR",
    "VISUAL",
    "MANPAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "SHELL",
    "TMPDIR",
    "SUDO_ASKPASS",
    "SSH_ASKPASS",
    "GIT_ASKPASS",
    "BROWSER",
    // configuration of commands in the option table (super::options): options or a program
    // given through the environment are the same request as on the command line
    "RIPGREP_CONFIG_PATH",
    "TAR_OPTIONS",
    "RSYNC_RSH",
    "RSYNC_CONNECT_PROG",
    "WGETRC",
    "CURL_HOME",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "MAKEFLAGS",
    "MFLAGS",
    "GNUMAKEFLAGS",
    "MAKEFILES",
    "CC",
    "CXX",
    "CPP",
    "LD",
    "AR",
    "AS",
    "CFLAGS",
    "CXXFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "GOFLAGS",
    "LESS",
    "LESSKEY",
    "LESSKEYIN",
    "LESSKEY_CONTENT",
    "MANOPT",
    "AWKPATH",
    "AWKLIBPATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "SYSTEMD_PAGER",
    "SYSTEMD_EDITOR",
];

/// Prefixes of variables that configure a command of the option table (`CARGO_TARGET_DIR`,
/// `CARGO_TARGET_<triple>_RUNNER`, `npm_config_script_shell`, `PIP_TARGET`).
const SENSITIVE_PREFIXES: &[&str] = &["LD_", "DYLD_", "GIT_", "CARGO_", "NPM_CONFIG_", "PIP_"];
/// Variables under those prefixes that only change output or caching.
const HARMLESS_VARS: &[&str] = &[
    "CARGO_TERM_COLOR",
    "CARGO_TERM_VERBOSE",
    "CARGO_INCREMENTAL",
];

pub(crate) fn check_assign(name: &str, v: &Arg) -> Option<Finding> {
    if matches!(
        name,
        "HISTFILE" | "HISTSIZE" | "HISTFILESIZE" | "HISTCONTROL" | "HISTIGNORE"
    ) {
        let harmless = matches!(name, "HISTSIZE" | "HISTFILESIZE")
            && v.text.parse::<u64>().is_ok_and(|n| n > 0);
        if !harmless {
            return Some(Finding::block(
                "builtin:history-disable",
                format!("{name}={} tampers with shell history", v.text),
            ));
        }
    }
    let upper = name.to_ascii_uppercase();
    if (SENSITIVE_PREFIXES.iter().any(|p| upper.starts_with(p)) && !HARMLESS_VARS.contains(&name))
        || SENSITIVE_VARS.contains(&name)
    {
        return Some(Finding::ask(
            "builtin:sensitive-variable",
            format!("sets {name}, which changes how programs are found or run"),
        ));
    }
    if v.unknown {
        return Some(Finding::ask(
            "builtin:unknown-argument",
            format!("{name} is assigned a value not statically known"),
        ));
    }
    None
}

/// `--option=PATH` / `--option PATH` forms that name a file the command writes.
const OUTPUT_OPTIONS: &[&str] = &[
    "--output",
    "--output-file",
    "--outfile",
    "--out",
    "--log-file",
    "--logfile",
    "--output-document",
    "--dump-header",
    "--trace",
    "--trace-ascii",
    "--stderr",
];

/// Keys of `git config` / `git -c` whose value is a program to run.
pub(crate) fn git_exec_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("alias.")
        || k.starts_with("filter.")
        || k.ends_with(".textconv")
        || k.ends_with(".cmd")
        || k.ends_with(".command")
        || k.ends_with("program")
        || k.ends_with("editor")
        || k.ends_with("helper")
        || matches!(
            k.as_str(),
            "core.pager"
                | "core.sshcommand"
                | "core.fsmonitor"
                | "core.hookspath"
                | "core.askpass"
                | "diff.external"
                | "pager.log"
                | "pager.diff"
                | "pager.show"
                | "pager.branch"
                | "uploadpack.packobjectshook"
                | "protocol.ext.allow"
        )
}

/// Commands that may name a credential file without reading its content.
const CREDENTIAL_EXEMPT: &[&str] = &[
    "ls",
    "stat",
    "test",
    "[",
    "ssh",
    "ssh-add",
    "ssh-keygen",
    "chmod",
    "file",
    "mkdir",
    "dirname",
    "basename",
    "realpath",
    "readlink",
];

/// Checks that apply to every command's arguments.
pub(crate) fn generic_arg_checks(argv: &[Arg], stdin: Option<&Stream>) -> Option<Finding> {
    let base = argv.first().map(|a| basename(&a.text)).unwrap_or_default();
    let mut f = None;
    for (i, a) in argv.iter().enumerate().skip(1) {
        let next = argv.get(i + 1);
        // per-command `-o FILE` (every spelling) is in the option table, super::options
        if let Some(n) = next
            && OUTPUT_OPTIONS.contains(&a.text.as_str())
        {
            raise(
                &mut f,
                write_target(n, &format!("{base} {} writes to", a.text)),
            );
        }
        if is_credential(&a.text) {
            if CREDENTIAL_EXEMPT.contains(&base) {
                raise(
                    &mut f,
                    Some(Finding::ask(
                        "builtin:credential-path",
                        format!("names {}, a credential file", a.text),
                    )),
                );
            } else {
                raise(
                    &mut f,
                    Some(Finding::block(
                        "builtin:credential-read",
                        format!(
                            "{base} {}: reads or moves a credential or history file",
                            a.text
                        ),
                    )),
                );
            }
        } else if is_dotenv(&a.text) {
            if is_network_tool(base) {
                raise(
                    &mut f,
                    Some(Finding::block(
                        "builtin:exfiltration",
                        format!("{base} sends {}, a secrets file, over the network", a.text),
                    )),
                );
            } else {
                raise(
                    &mut f,
                    Some(Finding::ask(
                        "builtin:secrets-file",
                        format!("uses {}, a secrets file", a.text),
                    )),
                );
            }
        }
        let k = classify(&a.text);
        if k == PathKind::BlockDevice {
            if ["/dev/mem", "/dev/kmem", "/dev/port"]
                .iter()
                .any(|d| a.text.starts_with(d))
            {
                raise(
                    &mut f,
                    Some(Finding::block(
                        "builtin:device-read",
                        format!("{base} {}: reads physical or kernel memory", a.text),
                    )),
                );
            } else {
                raise(
                    &mut f,
                    Some(Finding::ask(
                        "builtin:raw-device",
                        format!("{base} {}: uses a raw disk device", a.text),
                    )),
                );
            }
        }
        if let Some((opt, path)) = a.text.split_once('=')
            && OUTPUT_OPTIONS.contains(&opt)
        {
            raise(
                &mut f,
                write_target(
                    &Arg {
                        text: path.to_string(),
                        ..a.clone()
                    },
                    &format!("{base} {opt} writes to"),
                ),
            );
        }
        if a.taint.sensitive && is_network_tool(base) {
            raise(
                &mut f,
                Some(Finding::block(
                    "builtin:exfiltration",
                    format!("{base} sends secrets read by a command substitution"),
                )),
            );
        }
        if is_network_tool(base) && a.text.starts_with('@') && a.taint.sensitive {
            raise(
                &mut f,
                Some(Finding::block("builtin:exfiltration", "uploads secrets")),
            );
        }
    }
    if let Some(s) = stdin
        && s.sensitive
        && is_network_tool(base)
    {
        raise(
            &mut f,
            Some(Finding::block(
                "builtin:exfiltration",
                format!(
                    "{base} receives secrets (credentials, .env, history or environment) on its input"
                ),
            )),
        );
    }
    f
}
