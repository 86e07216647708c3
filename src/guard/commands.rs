//! Built-in rules per command name: what is destructive or escalating (`block`) and what must
//! always be looked at even when a trusted pattern matches (`ask` floor). Wrappers, shells and
//! interpreters are in [`super::wrappers`] and [`super::interp`].

use super::analyze::{Analyzer, Arg, Stream};
use super::checks::{
    check_assign, deletion, describe, git_exec_key, has_long, has_short, kind, positionals,
    write_target,
};
use super::options::{parse, specs_for};
use super::paths::{PathKind, classify, is_credential, is_dotenv};
use super::verdict::{Finding, raise};

/// What the command-specific rules say.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The command is a transparent wrapper: its verdict is its inner command's (may be allow).
    Inner(Finding),
    /// A floor (`ask` or `block`) or nothing.
    Floor(Option<Finding>),
}

fn block(rule: &str, reason: impl Into<String>) -> Outcome {
    Outcome::Floor(Some(Finding::block(rule, reason)))
}

fn ask(rule: &str, reason: impl Into<String>) -> Outcome {
    Outcome::Floor(Some(Finding::ask(rule, reason)))
}

const NONE: Outcome = Outcome::Floor(None);

impl Analyzer<'_> {
    /// The built-in rules for command `base` (basename of argv[0]): its own rules, and the
    /// floor its options put on it ([`super::options`]), whatever rule trusts it.
    pub(crate) fn command_rules(
        &mut self,
        base: &str,
        argv: &[Arg],
        stdin: Option<&Stream>,
        depth: usize,
    ) -> Outcome {
        let options = self.option_rules(base, argv, depth);
        match (self.builtin_rules(base, argv, stdin, depth), options) {
            (o, None) => o,
            (Outcome::Inner(f), Some(g)) => {
                Outcome::Inner(if g.decision > f.decision { g } else { f })
            }
            (Outcome::Floor(mut f), g) => {
                raise(&mut f, g);
                Outcome::Floor(f)
            }
        }
    }

    fn builtin_rules(
        &mut self,
        base: &str,
        argv: &[Arg],
        stdin: Option<&Stream>,
        depth: usize,
    ) -> Outcome {
        if let Some(o) = self.wrapper_rules(base, argv, stdin, depth) {
            return o;
        }
        if let Some(o) = self.interpreter_rules(base, argv, stdin, depth) {
            return o;
        }
        let pos = positionals(argv);
        match base {
            "sudo" | "doas" | "pkexec" | "su" | "run0" | "runuser" | "ksu" | "calife"
            | "sudoedit" => block("builtin:privilege", format!("{base} escalates privileges")),
            "cd" | "pushd" | "popd" | "chdir" => {
                let target = pos.first().map(|a| kind(a));
                match target {
                    Some(PathKind::Relative) if base != "popd" => Outcome::Inner(Finding::new(
                        super::verdict::Decision::Allow,
                        "builtin:cd",
                        "changes to a directory inside the workspace",
                    )),
                    _ => {
                        self.cwd_escaped = true;
                        ask("builtin:cd-outside", format!("{base} leaves the workspace"))
                    }
                }
            }
            "true" | "false" | ":" => Outcome::Inner(Finding::new(
                super::verdict::Decision::Allow,
                "builtin:noop",
                "does nothing",
            )),
            "rm" | "unlink" | "rmdir" | "srm" => {
                if has_long(argv, "--no-preserve-root") {
                    return block("builtin:rm-root", "rm --no-preserve-root");
                }
                let recursive = base != "unlink"
                    && (has_short(argv, 'r')
                        || has_short(argv, 'R')
                        || has_long(argv, "--recursive"));
                Outcome::Floor(deletion(&pos, recursive, "delete"))
            }
            "shred" | "wipe" => {
                let mut f = deletion(&pos, true, "shred");
                if f.is_none() && pos.iter().any(|a| a.text.starts_with("/dev/")) {
                    f = Some(Finding::block("builtin:device-write", "shreds a device"));
                }
                Outcome::Floor(f)
            }
            "dd" => {
                let mut f = None;
                for a in argv.iter().skip(1) {
                    if let Some(t) = a.text.strip_prefix("of=") {
                        raise(
                            &mut f,
                            write_target(
                                &Arg {
                                    text: t.to_string(),
                                    ..a.clone()
                                },
                                "dd writes to",
                            ),
                        );
                    }
                    if let Some(t) = a.text.strip_prefix("if=") {
                        let k = classify(t);
                        if k == PathKind::BlockDevice || is_credential(t) {
                            let rule = if t.contains("mem") || t.contains("port") {
                                "builtin:device-read"
                            } else {
                                "builtin:raw-disk-read"
                            };
                            raise(
                                &mut f,
                                Some(if rule == "builtin:device-read" || is_credential(t) {
                                    Finding::block(rule, format!("dd reads {t}"))
                                } else {
                                    Finding::ask(rule, format!("dd reads the raw device {t}"))
                                }),
                            );
                        }
                    }
                }
                Outcome::Floor(f)
            }
            b if b.starts_with("mkfs")
                || matches!(
                    b,
                    "mke2fs"
                        | "mkswap"
                        | "wipefs"
                        | "fdisk"
                        | "sfdisk"
                        | "cfdisk"
                        | "parted"
                        | "gdisk"
                        | "sgdisk"
                        | "blkdiscard"
                        | "mkdosfs"
                        | "mkntfs"
                        | "zpool"
                        | "cryptsetup"
                        | "pvcreate"
                        | "vgremove"
                        | "lvremove"
                        | "diskutil"
                        | "badblocks"
                ) =>
            {
                block(
                    "builtin:disk-format",
                    format!("{base} formats or erases disks"),
                )
            }
            "chmod" | "chown" | "chgrp" | "chattr" | "setfacl" => self.perm_rules(base, argv, &pos),
            "shutdown" | "reboot" | "halt" | "poweroff" | "telinit" | "kexec"
            | "systemd-shutdown" => block(
                "builtin:power",
                format!("{base} stops or restarts the machine"),
            ),
            "init" if !pos.is_empty() => block("builtin:power", "init changes the run level"),
            "systemctl" | "loginctl" => {
                let verbs = [
                    "poweroff",
                    "reboot",
                    "halt",
                    "kexec",
                    "soft-reboot",
                    "suspend",
                    "hibernate",
                    "hybrid-sleep",
                    "rescue",
                    "emergency",
                    "default",
                    "isolate",
                    "suspend-then-hibernate",
                ];
                match pos.iter().find(|a| verbs.contains(&a.text.as_str())) {
                    Some(v) => block("builtin:power", format!("{base} {}", v.text)),
                    None => NONE,
                }
            }
            "insmod" | "rmmod" | "modprobe" => block(
                "builtin:kernel-module",
                format!("{base} changes kernel modules"),
            ),
            "mount" | "umount" | "swapon" | "swapoff" | "losetup" | "pivot_root" | "fusermount"
            | "mount.nfs" => block("builtin:mount", format!("{base} changes mounts or swap")),
            "iptables" | "ip6tables" | "iptables-legacy" | "ip6tables-legacy" | "iptables-nft"
            | "ip6tables-nft" | "ebtables" | "arptables" => {
                if has_short(argv, 'F')
                    || has_long(argv, "--flush")
                    || has_short(argv, 'X')
                    || has_long(argv, "--delete-chain")
                {
                    block(
                        "builtin:firewall-flush",
                        format!("{base} flushes firewall rules"),
                    )
                } else {
                    ask("builtin:firewall", format!("{base} changes firewall rules"))
                }
            }
            "nft" => {
                if argv
                    .iter()
                    .any(|a| a.text.contains("flush") || a.text.contains("delete"))
                {
                    block(
                        "builtin:firewall-flush",
                        "nft flushes or deletes firewall rules",
                    )
                } else {
                    ask("builtin:firewall", "nft changes firewall rules")
                }
            }
            "ufw"
                if pos
                    .iter()
                    .any(|a| matches!(a.text.as_str(), "disable" | "reset")) =>
            {
                block("builtin:firewall-flush", "ufw disables the firewall")
            }
            "crontab" => {
                if has_short(argv, 'r') {
                    block(
                        "builtin:crontab-remove",
                        "crontab -r removes every cron job",
                    )
                } else {
                    ask("builtin:crontab", "crontab changes scheduled jobs")
                }
            }
            "history" => {
                if has_short(argv, 'c')
                    || has_short(argv, 'w')
                    || has_short(argv, 'd')
                    || has_short(argv, 'r')
                {
                    block(
                        "builtin:history-disable",
                        "history -c/-w/-d/-r rewrites shell history",
                    )
                } else {
                    NONE
                }
            }
            "unset" => {
                let hist = pos.iter().find(|a| a.text.starts_with("HIST"));
                match hist {
                    Some(a) => block(
                        "builtin:history-disable",
                        format!("unset {} disables shell history", a.text),
                    ),
                    None => NONE,
                }
            }
            "set" | "shopt" => {
                if argv.iter().any(|a| a.text == "history")
                    && argv.iter().any(|a| a.text == "+o" || a.text == "-u")
                {
                    block("builtin:history-disable", "disables shell history")
                } else {
                    NONE
                }
            }
            "export" | "declare" | "typeset" | "readonly" | "local" => {
                let mut f = None;
                for a in &pos {
                    if let Some((n, v)) = a.text.split_once('=') {
                        raise(
                            &mut f,
                            check_assign(
                                n,
                                &Arg {
                                    text: v.to_string(),
                                    ..(*a).clone()
                                },
                            ),
                        );
                    }
                }
                Outcome::Floor(f)
            }
            "kill" | "pkill" | "killall" | "killall5" => {
                if base == "killall5"
                    || (base == "kill"
                        && argv.iter().skip(1).enumerate().any(|(i, a)| {
                            a.text == "1" || (a.text == "-1" && (i > 0 || argv.len() == 2))
                        }))
                {
                    block(
                        "builtin:kill-all",
                        format!("{base} kills init or every process"),
                    )
                } else {
                    NONE
                }
            }
            "tee" => {
                let mut f = None;
                for a in &pos {
                    raise(&mut f, write_target(a, "tee writes to"));
                }
                Outcome::Floor(f)
            }
            "cp" | "install" | "ln" | "rsync" | "scp" => {
                let mut f = None;
                if base == "ln" && pos.len() >= 2 {
                    // a link inside the workspace to a system tree makes later relative paths dangerous
                    let k = kind(pos[0]);
                    if k.is_destructive_tree() && k != PathKind::Relative {
                        raise(
                            &mut f,
                            Some(Finding::ask(
                                "builtin:link-outside",
                                format!("ln links to {} ({})", pos[0].text, describe(k)),
                            )),
                        );
                    }
                }
                // with -t (any spelling) the operands are all sources; the table judges -t
                let target_dir = specs_for(base).any(|spec| {
                    parse(argv, 1, spec)
                        .uses
                        .iter()
                        .any(|u| u.name == "-t" || u.name == "--target-directory")
                });
                if !target_dir
                    && (pos.len() >= 2 || (base == "ln" && !pos.is_empty()))
                    && let Some(last) = pos.last()
                    && (!(base == "scp" || base == "rsync") || !last.text.contains(':'))
                {
                    raise(&mut f, write_target(last, &format!("{base} writes to")));
                }
                Outcome::Floor(f)
            }
            "mv" => {
                let mut f = deletion(&pos[..pos.len().saturating_sub(1)], true, "move away");
                if let Some(last) = pos.last() {
                    raise(&mut f, write_target(last, "mv writes to"));
                }
                Outcome::Floor(f)
            }
            "truncate" | "touch" | "mkdir" | "mknod" | "mkfifo" => {
                let mut f = None;
                for a in &pos {
                    if !(base == "truncate" && a.text.chars().all(|c| c.is_ascii_digit())) {
                        raise(&mut f, write_target(a, &format!("{base} writes to")));
                    }
                }
                Outcome::Floor(f)
            }
            "sed" | "gsed" => self.sed_rules(base, argv),
            "git" => {
                let mut f = None;
                if let Some(ci) = argv.iter().position(|a| a.text == "config") {
                    let rest = &argv[ci + 1..];
                    if let Some(ki) = rest
                        .iter()
                        .position(|a| !a.text.starts_with('-') && git_exec_key(&a.text))
                    {
                        raise(
                            &mut f,
                            Some(Finding::ask(
                                "builtin:git-exec",
                                format!("git config {} sets a program to run", rest[ki].text),
                            )),
                        );
                        if let Some(v) = rest.get(ki + 1) {
                            let inner =
                                self.judge_text(v.text.trim_start_matches('!'), depth, None, true);
                            if inner.decision == super::verdict::Decision::Block {
                                raise(&mut f, Some(inner));
                            }
                        }
                    }
                }
                Outcome::Floor(f)
            }
            "perl" if has_short(argv, 'i') || has_long(argv, "--in-place") => {
                let mut f = None;
                for a in pos.iter().skip(1) {
                    raise(&mut f, write_target(a, &format!("{base} -i edits")));
                }
                Outcome::Floor(f)
            }
            "socat" => {
                if argv.iter().any(|a| {
                    let t = a.text.to_ascii_lowercase();
                    t.contains("exec:") || t.contains("system:")
                }) {
                    block(
                        "builtin:reverse-shell",
                        "socat connects a program to a socket",
                    )
                } else {
                    NONE
                }
            }
            "curl" | "wget" => {
                let mut f = None;
                for a in argv.iter().skip(1) {
                    if (a.text.starts_with('@') || a.text.contains("=@"))
                        && (is_credential(&a.text) || is_dotenv(&a.text))
                    {
                        raise(
                            &mut f,
                            Some(Finding::block(
                                "builtin:exfiltration",
                                format!("{base} uploads {}", a.text),
                            )),
                        );
                    }
                }
                if let Some(t) = argv
                    .iter()
                    .position(|a| a.text == "-T" || a.text == "--upload-file")
                    .and_then(|i| argv.get(i + 1))
                    && (is_credential(&t.text) || is_dotenv(&t.text))
                {
                    raise(
                        &mut f,
                        Some(Finding::block(
                            "builtin:exfiltration",
                            format!("{base} uploads {}", t.text),
                        )),
                    );
                }
                Outcome::Floor(f)
            }
            "alias" => {
                let mut f = None;
                for a in &pos {
                    if let Some((_, v)) = a.text.split_once('=') {
                        let inner = self.judge_text(v, depth, None, true);
                        if inner.decision == super::verdict::Decision::Block {
                            raise(&mut f, Some(inner));
                        }
                    }
                }
                Outcome::Floor(
                    f.or_else(|| Some(Finding::ask("builtin:alias", "defines an alias"))),
                )
            }
            "trap" => {
                let mut f = Some(Finding::ask("builtin:trap", "sets a signal handler"));
                if let Some(a) = pos.first() {
                    raise(&mut f, Some(self.judge_text(&a.text, depth, None, false)));
                }
                Outcome::Floor(f)
            }
            "source" | "." => {
                let mut f = Some(Finding::ask("builtin:source", "runs commands from a file"));
                if let Some(a) = pos.first()
                    && let Some(s) = &a.stream
                {
                    raise(&mut f, Some(self.judge_code_stream(None, s, depth)));
                }
                Outcome::Floor(f)
            }
            _ => NONE,
        }
    }

    /// sed: a script that runs commands or writes files (`e`, `w`, `r`), and `-i` targets,
    /// with the options read as sed reads them (`-e's/x/y/e'`, `--expr=..`, `-i.bak`).
    fn sed_rules(&mut self, base: &str, argv: &[Arg]) -> Outcome {
        let mut f = None;
        let Some(spec) = specs_for(base).next() else {
            return NONE;
        };
        let p = parse(argv, 1, spec);
        let mut scripts: Vec<&str> = p
            .uses
            .iter()
            .filter(|u| u.name == "-e" || u.name == "--expression")
            .filter_map(|u| u.value.as_ref().map(|v| v.text.as_str()))
            .collect();
        let mut files = p.operands.as_slice();
        if scripts.is_empty()
            && !p.uses.iter().any(|u| u.name == "-f" || u.name == "--file")
            && let Some((first, rest)) = p.operands.split_first()
        {
            scripts.push(argv[*first].text.as_str());
            files = rest;
        }
        if scripts.iter().any(|s| sed_script_risky(s)) {
            raise(
                &mut f,
                Some(Finding::ask(
                    "builtin:sed-exec",
                    "sed script runs commands or writes files (e, w, r commands or flags)",
                )),
            );
        }
        if p.uses
            .iter()
            .any(|u| u.name == "-i" || u.name == "--in-place")
        {
            for &i in files {
                raise(&mut f, write_target(&argv[i], &format!("{base} -i edits")));
            }
        }
        Outcome::Floor(f)
    }

    fn perm_rules(&mut self, base: &str, argv: &[Arg], pos: &[&Arg]) -> Outcome {
        let recursive = has_short(argv, 'R') || has_long(argv, "--recursive");
        let reference = has_long(argv, "--reference");
        let (spec, targets) = if reference || pos.is_empty() {
            (None, pos)
        } else {
            (Some(pos[0]), &pos[1..])
        };
        let setuid = base == "chmod" && spec.is_some_and(|s| is_setuid_mode(&s.text));
        let mut f = None;
        for t in targets {
            let k = kind(t);
            let found = match k {
                PathKind::Root => Some(Finding::block(
                    "builtin:chmod-root",
                    format!("{base} on the root file system"),
                )),
                PathKind::System | PathKind::BlockDevice => Some(Finding::block(
                    "builtin:chmod-system",
                    format!("{base} {} changes a system path", t.text),
                )),
                k if recursive && k.is_destructive_tree() => Some(Finding::block(
                    "builtin:chmod-system",
                    format!("{base} -R on {} ({})", t.text, describe(k)),
                )),
                _ if setuid && k != PathKind::Relative => Some(Finding::block(
                    "builtin:setuid",
                    format!("chmod sets setuid/setgid on {}", t.text),
                )),
                _ if setuid => Some(Finding::ask(
                    "builtin:setuid",
                    format!("chmod sets setuid/setgid on {}", t.text),
                )),
                PathKind::Relative => None,
                _ => Some(Finding::ask(
                    "builtin:chmod-outside",
                    format!("{base} {} outside the workspace", t.text),
                )),
            };
            raise(&mut f, found);
        }
        if base == "chown" || base == "chgrp" {
            raise(
                &mut f,
                Some(Finding::ask(
                    "builtin:chown",
                    format!("{base} changes file ownership"),
                )),
            );
        }
        Outcome::Floor(f)
    }
}

fn sed_script_risky(s: &str) -> bool {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut at_cmd = true;
    while i < cs.len() {
        let c = cs[i];
        if at_cmd {
            match c {
                ' ' | '\t' | '\n' | ';' | '{' | '}' | '!' | ',' | '$' => {}
                '0'..='9' => {}
                '/' | '\\' => {
                    // address regex: skip to the closing delimiter
                    let d = if c == '\\' {
                        i += 1;
                        cs.get(i).copied().unwrap_or('/')
                    } else {
                        '/'
                    };
                    i += 1;
                    while i < cs.len() && cs[i] != d {
                        if cs[i] == '\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                'e' | 'w' | 'W' | 'r' | 'R' => return true,
                's' | 'y' => {
                    let Some(&d) = cs.get(i + 1) else {
                        return false;
                    };
                    i += 2;
                    let mut seen = 0;
                    while i < cs.len() && seen < 2 {
                        if cs[i] == '\\' {
                            i += 1;
                        } else if cs[i] == d {
                            seen += 1;
                        }
                        i += 1;
                    }
                    while i < cs.len() && cs[i].is_ascii_alphanumeric() {
                        if c == 's' && matches!(cs[i], 'e' | 'w') {
                            return true;
                        }
                        i += 1;
                    }
                    at_cmd = false;
                    continue;
                }
                _ => at_cmd = false,
            }
        } else if c == ';' || c == '\n' || c == '}' {
            at_cmd = true;
        }
        i += 1;
    }
    false
}

/// `u+s`, `+s`, `g=s`, `4755`, `2755`, `6755`...
fn is_setuid_mode(m: &str) -> bool {
    if m.chars().all(|c| c.is_ascii_digit()) {
        return m.len() >= 4
            && m.chars()
                .rev()
                .nth(3)
                .and_then(|c| c.to_digit(8))
                .is_some_and(|d| d & 0b110 != 0);
    }
    m.split(',').any(|clause| {
        clause
            .find(['+', '='])
            .is_some_and(|i| clause[i..].contains('s'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sed_scripts() {
        for s in [
            "s/a/b/e",
            "1e id",
            "w /etc/x",
            "s/a/b/w out",
            "/x/e rm -rf /",
            "p;e id",
        ] {
            assert!(sed_script_risky(s), "{s}");
        }
        for s in [
            "s/foo/bar/g",
            "1,10p",
            "/^#/d",
            "s/e/w/",
            "y/abc/xyz/",
            "$!N;P;D",
        ] {
            assert!(!sed_script_risky(s), "{s}");
        }
    }

    #[test]
    fn setuid_modes() {
        for m in [
            "u+s", "+s", "g=s", "4755", "2755", "6755", "ug+rws", "04755",
        ] {
            assert!(is_setuid_mode(m), "{m}");
        }
        for m in ["755", "644", "u+x", "1777", "a-s", "0755"] {
            assert!(!is_setuid_mode(m), "{m}");
        }
    }
}
