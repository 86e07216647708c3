//! `coworkd check-config`: exit codes and FILE:LINE:COLUMN messages, the shipped
//! configuration files, and hostile input.

mod common;

use std::process::Command;

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("coworkd.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(common::COWORKD)
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn shipped_configs_are_valid() {
    for f in ["config/coworkd.toml", "config/dev.toml"] {
        let out = Command::new(common::COWORKD)
            .arg("check-config")
            .arg(f)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn errors_name_file_line_and_column() {
    let (code, err) =
        check("profile = \"production\"\n\n[supervisor]\nrestart_burst = -1\nbogus = true\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("FILE:4:17:"), "{err}");
    // Every problem, not only the first one serde meets.
    assert!(err.contains("\nFILE:5:1: unknown field `bogus`"), "{err}");
    let (code, err) = check("[channels.telegram]\ndm = \"open\"\n[log]\nlevel = \"trace\"\n");
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("FILE:4:1: log level \"trace\""),
        "{err}"
    );
    assert!(lines[1].starts_with("FILE:2:1: open mode"), "{err}");
}

#[test]
fn hostile_files_are_errors() {
    for text in [
        "\0\0\0",
        "x = \"\\u{zzzz}\"",
        &"[a]\n".repeat(10_000),
        &format!("s = \"{}\"", "a".repeat(2_000_000)),
    ] {
        let (code, err) = check(text);
        assert_eq!(code, 1, "{err}");
        assert!(err.starts_with("FILE:"), "{err}");
    }
}
