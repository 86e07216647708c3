//! Parser unit tests: each construct, and hostile input.

use super::*;

fn ok(s: &str) -> Script {
    match parse(s, 0) {
        Ok(x) => x,
        Err(e) => panic!("parse failed for {s:?}: {e}"),
    }
}

fn simple(s: &Script, i: usize) -> &SimpleCommand {
    match &s.items[i].first.cmds[0] {
        Command::Simple(sc) => sc,
        other => panic!("not simple: {other:?}"),
    }
}

fn words(sc: &SimpleCommand) -> Vec<Option<String>> {
    sc.words.iter().map(Word::static_text).collect()
}

fn sv(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

#[test]
fn quoting_and_escapes() {
    let s = ok(r#"r''m -r"f" \/ 'a b' "c\"d" $'\x72\x6d\n' e\ f"#);
    assert_eq!(
        words(simple(&s, 0)),
        sv(&["rm", "-rf", "/", "a b", "c\"d", "rm\n", "e f"])
    );
}

#[test]
fn ansi_c_escapes() {
    let s = ok(r"echo $'\101\u00e9\t\'q\\'");
    assert_eq!(words(simple(&s, 0)), sv(&["echo", "A\u{e9}\t'q\\"]));
}

#[test]
fn lists_and_pipelines() {
    let s = ok("a | b |& c && d || e; f & g\nh");
    assert_eq!(s.items.len(), 4);
    assert_eq!(s.items[0].first.cmds.len(), 3);
    assert_eq!(s.items[0].rest.len(), 2);
    assert!(s.items[1].background);
    assert!(!s.items[2].background);
}

#[test]
fn line_continuation_and_comments() {
    let s = ok("ec\\\nho hi \\\n there # comment; rm -rf /\nls");
    assert_eq!(words(simple(&s, 0)), sv(&["echo", "hi", "there"]));
    assert_eq!(words(simple(&s, 1)), sv(&["ls"]));
    assert_eq!(s.items.len(), 2);
}

#[test]
fn assignments_and_redirections() {
    let s = ok("A=b C=\"d e\" cmd x >out 2>>err <in 2>&1 &>all <<<here");
    let sc = simple(&s, 0);
    assert_eq!(sc.assigns.len(), 2);
    assert_eq!(sc.assigns[1].value.static_text().as_deref(), Some("d e"));
    assert_eq!(words(sc), sv(&["cmd", "x"]));
    let ops: Vec<RedirOp> = sc.redirs.iter().map(|r| r.op).collect();
    assert_eq!(
        ops,
        vec![
            RedirOp::Out,
            RedirOp::Out,
            RedirOp::In,
            RedirOp::Dup,
            RedirOp::Out,
            RedirOp::HereString
        ]
    );
    assert_eq!(sc.redirs[0].target.static_text().as_deref(), Some("out"));
}

#[test]
fn heredocs() {
    let s = ok("cat <<EOF | sh\nrm -rf /\nEOF\nls <<-'X'\n\t$HOME\n\tX\n");
    let sc = simple(&s, 0);
    assert_eq!(
        sc.redirs[0].target.static_text().as_deref(),
        Some("rm -rf /\n")
    );
    let sc2 = simple(&s, 1);
    assert_eq!(
        sc2.redirs[0].target.static_text().as_deref(),
        Some("$HOME\n")
    );
    // unquoted delimiter: expansions are parsed
    let s = ok("cat <<E\n$(rm -rf /)\nE");
    let sc = simple(&s, 0);
    assert_eq!(sc.redirs[0].target.nested_scripts().len(), 1);
}

#[test]
fn substitutions_nested() {
    let s = ok("echo $(echo `echo $(rm -rf /)`) ${X:-$(id)} $((1 + $(date +%s)))");
    let sc = simple(&s, 0);
    assert_eq!(sc.words.len(), 4);
    assert!(matches!(sc.words[1].parts[0], Part::Subst { .. }));
    assert_eq!(sc.words[2].nested_scripts().len(), 1);
    assert_eq!(sc.words[3].nested_scripts().len(), 1);
}

#[test]
fn compound_commands() {
    ok("(cd x && make) ; { echo a; echo b; } > f");
    ok("if true; then echo y; elif false; then echo n; else echo z; fi");
    ok("for i in 1 2 3; do echo $i; done; while read l; do echo $l; done < f");
    ok("case $x in a|b) echo ab;; (c) echo c;; *) echo d;; esac");
    ok("f() { echo hi; }; f; function g { ls; }; :(){ :|:& };:");
    ok("for ((i=0;i<3;i++)); do echo $i; done");
    ok("diff <(ls a) <(ls b)");
    ok("A=(1 2 3) ls");
}

#[test]
fn tilde_and_params() {
    let s = ok("ls ~ ~/x ~root/y a~b $HOME ${HOME} $1 $@");
    let sc = simple(&s, 0);
    assert!(matches!(&sc.words[1].parts[0], Part::Tilde(u) if u.is_empty()));
    assert!(matches!(&sc.words[3].parts[0], Part::Tilde(u) if u == "root"));
    assert_eq!(sc.words[4].static_text().as_deref(), Some("a~b"));
    assert!(matches!(&sc.words[6].parts[0], Part::Param { name, .. } if name == "HOME"));
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    for bad in [
        "echo 'abc",
        "echo \"abc",
        "echo $(ls",
        "echo `ls",
        "echo ${X",
        "echo $'abc",
        "(ls",
        "ls )",
        "{ ls",
        "if true; then ls",
        "case x in a) ls",
        "ls |",
        "ls &&",
        "; ls",
        "> ",
        "echo $((1 + 2)",
        "a\0b",
        "for x in a b",
    ] {
        assert!(parse(bad, 0).is_err(), "should fail: {bad:?}");
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = "( ".repeat(10_000) + &")".repeat(10_000);
    assert!(parse(&deep, 0).is_err());
    let deep = "{ ".repeat(10_000) + &"; }".repeat(10_000);
    assert!(parse(&deep, 0).is_err());
    let deep = "if a; then ".repeat(10_000);
    assert!(parse(&deep, 0).is_err());
    let deep = "$(".repeat(5_000) + &")".repeat(5_000);
    assert!(parse(&deep, 0).is_err());
    let deep = "${x:-".repeat(5_000);
    assert!(parse(&deep, 0).is_err());
    let ok_depth = "(".repeat(10) + "ls" + &")".repeat(10);
    assert!(parse(&ok_depth, 0).is_ok());
}

#[test]
fn control_characters_and_huge_input() {
    assert!(parse("echo \x01\x02\x1b[31m", 0).is_ok());
    let big = "echo a; ".repeat(8_000);
    assert!(parse(&big, 0).is_ok());
    let long_word = "a".repeat(100_000);
    assert!(parse(&long_word, 0).is_ok());
}
