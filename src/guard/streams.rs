//! What a simple command writes to its stdout, as far as it can be computed statically:
//! `echo`, `printf`, `cat` of a here-doc, `base64 -d`, `xxd -r -p`, `rev`, `tee`; network tools
//! taint the stream; other transformations of known text mark it obfuscated.

use super::analyze::{Arg, Expanded, Stream, basename};
use super::checks::{has_long, has_short, is_network_tool};
use super::decode;
use super::paths::{is_credential, is_dotenv};

/// Decoders whose output is not computed here: their unknown output piped into a shell is blocked.
const DECODERS: &[&str] = &[
    "base32",
    "basenc",
    "uudecode",
    "gunzip",
    "zcat",
    "gzcat",
    "bunzip2",
    "bzcat",
    "xz",
    "unxz",
    "xzcat",
    "lzma",
    "unlzma",
    "zstd",
    "unzstd",
    "zstdcat",
    "brotli",
    "lz4",
    "openssl",
    "gpg",
    "age",
    "od",
    "tr",
    "iconv",
    "recode",
    "uncompress",
    "unzip",
    "7z",
    "python",
    "python3",
    "perl",
    "ruby",
    "node",
    "php",
    "awk",
    "gawk",
    "sed",
    "rot13",
    "caesar",
    "xxd",
    "base64",
];

pub(crate) fn output_of(e: &Expanded, stdin: Option<&Stream>) -> Stream {
    let argv = &e.argv;
    let mut out = match argv.first() {
        None => Stream::text(String::new()),
        Some(a0) if a0.unknown => Stream::unknown(),
        Some(a0) => compute(basename(&a0.text), argv, stdin),
    };
    if let Some(s) = stdin {
        out.taint_from(s);
    }
    // stdout redirected to a file: nothing reaches the pipe
    if e.redirs
        .iter()
        .any(|(op, t)| *op == super::ast::RedirOp::Out && !t.text.starts_with("/dev/std"))
    {
        let mut empty = Stream::text(String::new());
        empty.taint_from(&out);
        return empty;
    }
    out
}

fn all_known(args: &[Arg]) -> bool {
    args.iter().all(|a| !a.unknown)
}

fn compute(base: &str, argv: &[Arg], stdin: Option<&Stream>) -> Stream {
    let input = stdin.cloned().unwrap_or_else(Stream::unknown);
    let map_known = |f: &dyn Fn(&str) -> Option<String>| -> Stream {
        if !input.known() {
            let mut s = Stream::unknown();
            s.obfuscated = true;
            return s;
        }
        let mut s = Stream::default();
        for t in &input.texts {
            match f(t) {
                Some(d) => s.texts.push(d),
                None => {
                    s.unknown = true;
                    s.obfuscated = true;
                }
            }
        }
        s
    };
    match base {
        "echo" => {
            let mut i = 1;
            let (mut newline, mut escapes) = (true, false);
            while let Some(a) = argv.get(i) {
                let t = a.text.as_str();
                if t.len() > 1
                    && t.starts_with('-')
                    && t[1..].chars().all(|c| matches!(c, 'n' | 'e' | 'E'))
                {
                    newline &= !t.contains('n');
                    escapes = t.contains('e') || (escapes && !t.contains('E'));
                    i += 1;
                } else {
                    break;
                }
            }
            let args = &argv[i.min(argv.len())..];
            if !all_known(args) {
                return Stream::unknown();
            }
            let raw = args
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let mut texts = Vec::new();
            // dash's echo interprets escapes even without -e: keep both readings
            let (esc, _) = decode::echo_escapes(&raw);
            if escapes {
                texts.push(esc);
            } else {
                texts.push(raw.clone());
                if esc != raw {
                    texts.push(esc);
                }
            }
            if newline {
                texts.iter_mut().for_each(|t| t.push('\n'));
            }
            Stream {
                texts,
                ..Stream::default()
            }
        }
        "printf" => {
            let args: Vec<&Arg> = argv.iter().skip(1).skip_while(|a| a.text == "--").collect();
            if args.is_empty() || args.iter().any(|a| a.unknown) {
                return Stream::unknown();
            }
            if args[0].text == "-v" {
                return Stream::text(String::new());
            }
            let rest: Vec<String> = args[1..].iter().map(|a| a.text.clone()).collect();
            Stream::text(decode::printf(&args[0].text, &rest))
        }
        "cat" | "tee" | "head" | "tail" | "more" | "less" | "stdbuf" | "pv" | "dd" => {
            let files: Vec<&Arg> = argv
                .iter()
                .skip(1)
                .filter(|a| !a.text.starts_with('-') && !a.text.contains('='))
                .collect();
            if base == "cat" && !files.is_empty() {
                let mut s = Stream::unknown();
                s.sensitive = files
                    .iter()
                    .any(|a| is_credential(&a.text) || is_dotenv(&a.text));
                if let Some(st) = files.iter().find_map(|a| a.stream.as_ref()) {
                    s.taint_from(st);
                }
                return s;
            }
            if matches!(base, "cat" | "tee" | "pv" | "dd") {
                return input;
            }
            let mut s = Stream::unknown();
            s.taint_from(&input);
            s
        }
        "base64" => {
            if !(has_short(argv, 'd') || has_short(argv, 'D') || has_long(argv, "--decode")) {
                let mut s = Stream::unknown();
                s.taint_from(&input);
                return s;
            }
            if argv.iter().skip(1).any(|a| !a.text.starts_with('-')) {
                let mut s = Stream::unknown();
                s.obfuscated = true;
                return s;
            }
            let garbage = has_short(argv, 'i') || has_long(argv, "--ignore-garbage");
            map_known(&|t| decode::base64(t, garbage))
        }
        "xxd" => {
            if !has_short(argv, 'r') && !has_long(argv, "-revert") {
                let mut s = Stream::unknown();
                s.taint_from(&input);
                return s;
            }
            let plain = argv.iter().any(|a| {
                matches!(
                    a.text.as_str(),
                    "-p" | "-ps" | "-plain" | "-postscript" | "-rp" | "-r-p"
                )
            }) || has_short(argv, 'p');
            if !plain || argv.iter().skip(1).any(|a| !a.text.starts_with('-')) {
                let mut s = Stream::unknown();
                s.obfuscated = true;
                return s;
            }
            map_known(&decode::hex)
        }
        "rev" => {
            if argv.len() > 1 {
                return Stream::unknown();
            }
            map_known(&|t| Some(decode::rev(t)))
        }
        "env" | "printenv" | "set" | "export" | "declare" | "history" | "compgen"
            if argv.len() == 1 || base == "history" =>
        {
            let mut s = Stream::unknown();
            s.sensitive = true;
            s
        }
        b if is_network_tool(b) => {
            let mut s = Stream::unknown();
            s.network = true;
            s
        }
        b if DECODERS.contains(&b) || b.starts_with("python") => {
            let mut s = Stream::unknown();
            s.obfuscated = input.known()
                || !matches!(
                    b,
                    "sed"
                        | "awk"
                        | "gawk"
                        | "tr"
                        | "od"
                        | "iconv"
                        | "python"
                        | "python3"
                        | "perl"
                        | "ruby"
                        | "node"
                        | "php"
                );
            s.taint_from(&input);
            s
        }
        _ => {
            let mut s = Stream::unknown();
            s.sensitive = argv
                .iter()
                .any(|a| is_credential(&a.text) || is_dotenv(&a.text));
            // a filter of known text we cannot compute (grep, cut, sort...) hides nothing we could decode
            s
        }
    }
}
