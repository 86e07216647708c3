//! The guard on shell-shaped input built from tokens: each input byte picks a
//! token (words, quotes, expansions, operators, keywords, wrappers,
//! redirections). The line is cut in two at a marker byte: a prefix X and a
//! suffix Y; a blocked command, optionally inside a wrapper (`sudo ..`,
//! `bash -c '..'`, `$(..)`, `xargs ..`...), is placed between them as a
//! segment of its own. Asserts: never a panic, the verdict is at least as
//! strict as each segment, and when X is a complete command line the whole is
//! never allowed.
#![no_main]

#[path = "common/guard.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

const TOKENS: &[&str] = &[
    "ls",
    "echo",
    "cat",
    "x",
    "-la",
    "-rf",
    "/",
    "~",
    ".",
    "..",
    "*",
    "?",
    "a b",
    "'a b'",
    "\"a b\"",
    "\"$HOME\"",
    "$X",
    "${X}",
    "${X:-/}",
    "$(ls)",
    "`ls`",
    "$((1+2))",
    "<(ls)",
    "X=1",
    "PATH=/tmp",
    "IFS=/",
    "sudo",
    "env",
    "env -i",
    "nice",
    "timeout 5",
    "xargs",
    "find . -exec",
    "\\;",
    "{}",
    "+",
    "eval",
    "bash -c",
    "sh -c",
    "command",
    "builtin",
    "exec",
    "time",
    "!",
    "busybox",
    "watch",
    "git status",
    "cd /",
    "cd ..",
    "cd sub",
    "base64 -d",
    "xxd -r -p",
    "printf",
    "echo -e",
    "rev",
    "tee",
    "cp",
    "mv",
    "rm",
    "chmod",
    "python3 -c",
    "|",
    "||",
    "&&",
    ";",
    "&",
    "\n",
    "(",
    ")",
    "{",
    "}",
    "$(",
    "`",
    "'",
    "\"",
    ">",
    ">>",
    "<",
    "2>&1",
    ">/dev/null",
    "> out.txt",
    "< in.txt",
    "if true; then",
    "then",
    "else",
    "fi",
    "for i in a b; do",
    "while false; do",
    "do",
    "done",
    "case x in x)",
    ";;",
    "esac",
    "f() {",
    "function f {",
    "f",
    "alias",
    "unalias",
    "set -e",
    "trap",
    "exit",
    "return",
    "\\",
    "\\n",
    "\\x72\\x6d",
    "cm0gLXJmIC8=",
    "$'\\x72m'",
    "r''m",
    "r\"\"m",
    "/bin/rm",
    "/usr/bin/env",
    "\t",
    " ",
    "=",
    "--",
    "-",
    "-c",
    "-e",
    "-exec",
    ";",
    "npm",
    "publish",
];

/// How the blocked command is put in the line: `{}` is the command.
const WRAPPERS: &[&str] = &[
    "{}",
    "sudo {}",
    "env {}",
    "nice {}",
    "timeout 5 {}",
    "command {}",
    "exec {}",
    "time {}",
    "! {}",
    "( {} )",
    "{ {}; }",
    "$({})",
    "echo $({})",
    "`{}`",
    "bash -c '{}'",
    "sh -c \"{}\"",
    "eval '{}'",
    "if true; then {}; fi",
    "for i in 1; do {}; done",
    "while true; do {}; break; done",
    "f() { {}; }; f",
    "echo x | xargs {}",
    "X=1 {}",
    "cat <( {} )",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let cut = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
    let words = |bytes: &[u8]| {
        let mut s = String::new();
        for &b in bytes {
            if b == 0xff {
                continue;
            }
            let t = TOKENS[usize::from(b) % TOKENS.len()];
            // Bit 7 glues the token to the previous one.
            if b & 0x80 == 0 && !s.is_empty() {
                s.push(' ');
            }
            s.push_str(t);
        }
        s
    };
    let prefix = words(&rest[..cut]);
    let suffix = words(rest.get(cut + 1..).unwrap_or(&[]));
    let blocked = common::blocked_commands();
    let tail = &blocked[usize::from(pick) % blocked.len()];
    let mut wrap = WRAPPERS[usize::from(pick / 4) % WRAPPERS.len()];
    // A wrapper that quotes its command only takes commands without quotes
    // or expansions of their own.
    if wrap.contains(['\'', '"']) && tail.contains(['\'', '"', '$', '`', '\\']) {
        wrap = "{}";
    }
    let sep = common::SEPARATORS[usize::from(pick) % common::SEPARATORS.len()];
    let middle = wrap.replace("{}", tail);

    let whole = format!("{prefix}{sep}{middle}\n{suffix}");
    common::consistent(&prefix);
    common::consistent(&whole);
    if prefix.trim().is_empty() {
        common::never_allowed(&format!("{middle}\n{suffix}"));
    } else if common::complete(&prefix) {
        common::never_allowed(&whole);
    }
});
