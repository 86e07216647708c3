//! The audit redactor against corpora in `tests/data/redaction/`:
//! * `secrets.txt`: one line per real-world secret shape (cloud keys,
//!   platform tokens, URLs with user info, `.env` lines, shell history), the
//!   secret between `«` and `»`: each line must be redacted and the secret
//!   must not survive;
//! * `private_keys.txt`: PEM/OpenSSH/PGP blocks: no body line survives;
//! * `ordinary/`: output a command prints every day (`ls -la`, `ps aux`,
//!   `git log`, `dmesg`, a JSON document, a base64 image, UUIDs, checksums,
//!   package lists): the false-positive rate is printed and must stay at the
//!   documented number (zero for free text).
//!
//! Also the writer's path: a vault value and its encodings given to
//! `with_known_secrets` never reach the stored entry.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cowork::audit::Redactor;

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/redaction")
        .join(rel)
}

/// `(input, secrets)` of one corpus line: the markers removed.
fn parse(line: &str) -> (String, Vec<String>) {
    let mut input = String::new();
    let mut secrets = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('«') {
        input.push_str(&rest[..open]);
        let after = &rest[open + '«'.len_utf8()..];
        let close = after
            .find('»')
            .unwrap_or_else(|| panic!("unclosed « in {line:?}"));
        input.push_str(&after[..close]);
        secrets.push(after[..close].to_string());
        rest = &after[close + '»'.len_utf8()..];
    }
    input.push_str(rest);
    (input, secrets)
}

#[test]
fn every_secret_shape_of_the_corpus_is_redacted() {
    let text = std::fs::read_to_string(corpus("secrets.txt")).unwrap();
    let red = Redactor::new();
    let mut checked = 0;
    let mut missed = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (input, secrets) = parse(line);
        assert!(!secrets.is_empty(), "no «secret» marked in {line:?}");
        let out = red.redact_text(&input);
        for s in &secrets {
            if out.contains(s.as_str()) || !out.contains("[REDACTED:") {
                missed.push(format!("{input}\n   -> {out}"));
            }
        }
        checked += 1;
    }
    assert!(checked >= 70, "only {checked} corpus lines");
    assert!(
        missed.is_empty(),
        "{} of {checked} secrets kept:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

#[test]
fn private_key_blocks_leave_no_body_line() {
    let text = std::fs::read_to_string(corpus("private_keys.txt")).unwrap();
    let out = Redactor::new().redact_text(&text);
    for line in text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 8)
    {
        assert!(!out.contains(line), "kept {line:?}\n{out}");
    }
    assert_eq!(out.matches("[REDACTED:private_key]").count(), 6, "{out}");
}

/// Redactions per line of each ordinary file, printed; the sum must stay at
/// `allowed` (free text of ordinary output: none).
#[test]
fn ordinary_output_is_left_alone() {
    let red = Redactor::new();
    let mut files: Vec<_> = std::fs::read_dir(corpus("ordinary"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    let (mut lines, mut hits) = (0usize, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let out = red.redact_text(&text);
        let n = text.lines().count();
        let changed: Vec<_> = text
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("{}: {a}\n   -> {b}", f.display()))
            .collect();
        println!(
            "{}: {n} lines, {} redacted",
            f.file_name().unwrap().to_string_lossy(),
            changed.len()
        );
        lines += n;
        hits.extend(changed);
    }
    println!(
        "false positives: {} of {lines} lines ({:.3}%)",
        hits.len(),
        100.0 * hits.len() as f64 / lines as f64
    );
    assert!(
        hits.is_empty(),
        "ordinary output redacted:\n{}",
        hits.join("\n")
    );
}

/// As a JSON payload, keys that name a credential lose their string value
/// whole (by design: `token_type`, `secret_name`, `api_key_header`); numbers
/// and booleans (`max_tokens`, `require_password`) and everything else stay.
#[test]
fn ordinary_json_payload_loses_only_credential_named_strings() {
    let text = std::fs::read_to_string(corpus("ordinary/document.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let before = v.clone();
    Redactor::new().redact_json(&mut v);
    let s = &v["settings"];
    assert_eq!(s["token_type"], "[REDACTED:token]");
    assert_eq!(s["secret_name"], "[REDACTED:secret]");
    assert_eq!(s["api_key_header"], "[REDACTED:api_key]");
    assert_eq!(s["password_min_length"], 12);
    assert_eq!(s["require_password"], true);
    assert_eq!(v["usage"], before["usage"]);
    assert_eq!(v["packages"], before["packages"]);
    assert_eq!(v["choices"], before["choices"]);
    assert_eq!(v["tasks"], before["tasks"]);
}

#[test]
fn a_vault_value_and_its_encodings_never_reach_the_text() {
    let value = "corpus-Vault-Secret-9";
    let red = Redactor::new().with_known_secrets([value]);
    let printed = format!(
        "plain {value}\nbase64 Y29ycHVzLVZhdWx0LVNlY3JldC05\nhex {}\nurl {}\n",
        "636f727075732d5661756c742d5365637265742d39", "https://x.example/?k=corpus-Vault-Secret-9"
    );
    let out = red.redact_text(&printed);
    assert!(!out.contains(value), "{out}");
    assert!(!out.contains("Y29ycHVzLVZhdWx0LVNlY3JldC05"), "{out}");
    assert!(!out.contains("636f727075732d"), "{out}");
    assert_eq!(out.matches("[REDACTED:known_secret]").count(), 4, "{out}");
}
