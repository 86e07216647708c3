//! Workspace file tools (read_file / write_file / list_files) and the memory
//! tool, on a temp dir: happy paths, then hostile paths — `..`, absolute paths,
//! symlinks (final and intermediate, to files and directories outside), hard
//! links, oversized files and content, non-UTF-8, FIFOs — all refused without
//! touching anything outside the workspace; files that configure execution
//! (`.git/config`, `.sqliterc`, `*.pth`) asked for, not written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::sync::Arc;

use cowork::agent::tools::{
    FileMemoryStore, ListFilesTool, MemoryTool, ReadFileTool, WriteFileTool,
};
use cowork::agent::{Tool, ToolOutcome};
use cowork::sandbox::Workspace;
use serde_json::json;

struct Env {
    _tmp: tempfile::TempDir,
    ws_dir: std::path::PathBuf,
    outside: std::path::PathBuf,
    read: ReadFileTool,
    write: WriteFileTool,
    list: ListFilesTool,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let ws_dir = tmp.path().join("ws");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&ws_dir).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "top secret").unwrap();
    let ws = Workspace::new(&ws_dir, 1024).unwrap();
    Env {
        read: ReadFileTool(ws.clone()),
        write: WriteFileTool(ws.clone()),
        list: ListFilesTool(ws),
        _tmp: tmp,
        ws_dir,
        outside,
    }
}

fn failed(o: &ToolOutcome, needle: &str) {
    match o {
        ToolOutcome::Failed(msg) => assert!(msg.contains(needle), "`{msg}` lacks `{needle}`"),
        other => panic!("expected failure containing `{needle}`, got {other:?}"),
    }
}

#[tokio::test]
async fn write_read_list_round_trip() {
    let e = env();
    let o = e
        .write
        .call(json!({"path": "notes/a.txt", "content": "hello"}))
        .await;
    assert_eq!(
        o,
        ToolOutcome::Output("wrote 5 bytes to notes/a.txt".into())
    );
    assert_eq!(
        e.read.call(json!({"path": "./notes/a.txt"})).await,
        ToolOutcome::Output("hello".into())
    );
    let ToolOutcome::Output(listing) = e.list.call(json!({"path": "."})).await else {
        panic!()
    };
    assert_eq!(listing, "notes/");
    let ToolOutcome::Output(listing) = e.list.call(json!({"path": "notes"})).await else {
        panic!()
    };
    assert_eq!(listing, "a.txt (5 bytes)");
    // Overwrite.
    e.write
        .call(json!({"path": "notes/a.txt", "content": "bye"}))
        .await;
    assert_eq!(
        std::fs::read_to_string(e.ws_dir.join("notes/a.txt")).unwrap(),
        "bye"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(e.ws_dir.join("notes/a.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn dotdot_and_absolute_paths_are_refused() {
    let e = env();
    failed(
        &e.read.call(json!({"path": "../outside/secret.txt"})).await,
        "`..`",
    );
    failed(
        &e.read
            .call(json!({"path": "a/../../outside/secret.txt"}))
            .await,
        "`..`",
    );
    failed(
        &e.read
            .call(json!({"path": e.outside.join("secret.txt").to_str().unwrap()}))
            .await,
        "absolute",
    );
    failed(
        &e.write
            .call(json!({"path": "/tmp/x", "content": "x"}))
            .await,
        "absolute",
    );
    failed(
        &e.write
            .call(json!({"path": "../escape.txt", "content": "x"}))
            .await,
        "`..`",
    );
    failed(&e.list.call(json!({"path": ".."})).await, "`..`");
    failed(&e.list.call(json!({"path": "/"})).await, "absolute");
    failed(&e.read.call(json!({"path": "a\u{0}b"})).await, "NUL");
    failed(&e.read.call(json!({"path": ""})).await, "workspace itself");
    failed(&e.read.call(json!({"nopath": 1})).await, "must be a string");
    assert!(!e.ws_dir.parent().unwrap().join("escape.txt").exists());
}

#[tokio::test]
async fn symlink_escapes_are_refused() {
    let e = env();
    symlink(e.outside.join("secret.txt"), e.ws_dir.join("link.txt")).unwrap();
    symlink(&e.outside, e.ws_dir.join("linkdir")).unwrap();
    failed(
        &e.read.call(json!({"path": "link.txt"})).await,
        "symbolic link",
    );
    failed(
        &e.read.call(json!({"path": "linkdir/secret.txt"})).await,
        "symbolic link",
    );
    failed(
        &e.write
            .call(json!({"path": "link.txt", "content": "pwned"}))
            .await,
        "symbolic link",
    );
    failed(
        &e.write
            .call(json!({"path": "linkdir/new.txt", "content": "pwned"}))
            .await,
        "symbolic link",
    );
    failed(
        &e.list.call(json!({"path": "linkdir"})).await,
        "symbolic link",
    );
    assert_eq!(
        std::fs::read_to_string(e.outside.join("secret.txt")).unwrap(),
        "top secret"
    );
    assert!(!e.outside.join("new.txt").exists());
    // Listing shows the links as links, without following them.
    let ToolOutcome::Output(listing) = e.list.call(json!({"path": "."})).await else {
        panic!()
    };
    assert_eq!(listing, "link.txt@\nlinkdir@");
    // A symlink inside the workspace pointing inside is refused too (never followed).
    std::fs::write(e.ws_dir.join("real.txt"), "x").unwrap();
    symlink("real.txt", e.ws_dir.join("inner.txt")).unwrap();
    failed(
        &e.read.call(json!({"path": "inner.txt"})).await,
        "symbolic link",
    );
}

#[tokio::test]
async fn workspace_root_behind_a_symlink_is_resolved_once() {
    let e = env();
    let alias = e.ws_dir.parent().unwrap().join("alias");
    symlink(&e.ws_dir, &alias).unwrap();
    let ws = Workspace::new(&alias, 1024).unwrap();
    assert_eq!(ws.root(), e.ws_dir.canonicalize().unwrap());
    let w = WriteFileTool(ws.clone());
    assert!(matches!(
        w.call(json!({"path": "f", "content": "ok"})).await,
        ToolOutcome::Output(_)
    ));
}

#[tokio::test]
async fn hard_links_are_refused() {
    let e = env();
    std::fs::hard_link(e.outside.join("secret.txt"), e.ws_dir.join("hard.txt")).unwrap();
    failed(&e.read.call(json!({"path": "hard.txt"})).await, "hard link");
    failed(
        &e.write
            .call(json!({"path": "hard.txt", "content": "pwned"}))
            .await,
        "hard link",
    );
    assert_eq!(
        std::fs::read_to_string(e.outside.join("secret.txt")).unwrap(),
        "top secret"
    );
}

#[tokio::test]
async fn oversized_and_non_text_files_are_refused() {
    let e = env();
    std::fs::write(e.ws_dir.join("big.txt"), vec![b'a'; 2048]).unwrap();
    failed(
        &e.read.call(json!({"path": "big.txt"})).await,
        "over the 1024-byte limit",
    );
    let big = "b".repeat(1025);
    failed(
        &e.write
            .call(json!({"path": "new.txt", "content": big}))
            .await,
        "over the 1024-byte limit",
    );
    assert!(!e.ws_dir.join("new.txt").exists());
    std::fs::write(e.ws_dir.join("bin"), [0xff, 0xfe, 0x00]).unwrap();
    failed(&e.read.call(json!({"path": "bin"})).await, "UTF-8");
    failed(
        &e.read.call(json!({"path": "missing.txt"})).await,
        "opening",
    );
    std::fs::create_dir(e.ws_dir.join("d")).unwrap();
    failed(
        &e.read.call(json!({"path": "d"})).await,
        "not a regular file",
    );
    failed(
        &e.read.call(json!({"path": "bin/x"})).await,
        "not a directory",
    );
}

#[tokio::test]
async fn fifo_is_refused_without_blocking() {
    let e = env();
    nix::unistd::mkfifo(
        &e.ws_dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        e.read.call(json!({"path": "fifo"})),
    )
    .await
    .unwrap();
    failed(&r, "not a regular file");
}

#[tokio::test]
async fn memory_notes_are_per_user_and_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FileMemoryStore::new(tmp.path().join("mem"), 64));
    let alice = MemoryTool::new(store.clone(), "telegram:alice");
    let bob = MemoryTool::new(store, "../bob");
    assert_eq!(
        alice.call(json!({"action": "recall"})).await,
        ToolOutcome::Output(String::new())
    );
    assert_eq!(
        alice
            .call(json!({"action": "remember", "note": "likes tea"}))
            .await,
        ToolOutcome::Output("noted".into())
    );
    bob.call(json!({"action": "remember", "note": "likes coffee"}))
        .await;
    assert_eq!(
        alice.call(json!({"action": "recall"})).await,
        ToolOutcome::Output("likes tea\n".into())
    );
    assert_eq!(
        bob.call(json!({"action": "recall"})).await,
        ToolOutcome::Output("likes coffee\n".into())
    );
    failed(
        &alice
            .call(json!({"action": "remember", "note": "x".repeat(100)}))
            .await,
        "exceed",
    );
    failed(
        &alice.call(json!({"action": "explode"})).await,
        "recall, remember or forget",
    );
    alice.call(json!({"action": "forget"})).await;
    assert_eq!(
        alice.call(json!({"action": "recall"})).await,
        ToolOutcome::Output(String::new())
    );
    // User ids never become paths outside the store directory.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

/// A file some program reads and acts on implicitly is not written: the tool asks
/// for the owner's approval, bound to the path and the content's hash.
#[tokio::test]
async fn execution_configuring_files_are_asked_not_written() {
    let e = env();
    for path in [
        ".git/config",
        "./.git/hooks/pre-commit",
        ".sqliterc",
        "x/.local/lib/python3.11/site-packages/zz.pth",
        "sitecustomize.py",
    ] {
        let out = e
            .write
            .call(json!({"path": path, "content": "[core]\n\tfsmonitor = ./x\n"}))
            .await;
        let ToolOutcome::NeedsApproval(req) = out else {
            panic!("{path}: {out:?}");
        };
        assert_eq!(req.tool, "write_file");
        assert!(
            req.command
                .starts_with(&format!("write_file {path} (24 bytes, sha256 "))
        );
        assert_eq!(req.write.as_ref().unwrap().path, path);
    }
    assert!(!e.ws_dir.join(".git").exists());
    assert!(!e.ws_dir.join(".sqliterc").exists());
    assert!(!e.ws_dir.join("x").exists());
    // An ordinary dotfile is written as before.
    assert!(matches!(
        e.write
            .call(json!({"path": ".editorconfig", "content": "root = true\n"}))
            .await,
        ToolOutcome::Output(_)
    ));
}
