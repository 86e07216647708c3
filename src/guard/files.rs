//! Files that configure execution: which workspace writes a person must see.
//!
//! The rule: a file is **execution-configuring** when a program reads and acts on it
//! implicitly, without the file being named on its command line (found by its place:
//! HOME, the working directory, a repository's `.git`, a Python site directory), and
//! what it says can make that program run code. `git status` runs `core.fsmonitor`
//! from `.git/config`; `python3 -m json.tool` imports every `*.pth` of its site
//! directories; `sqlite3` runs `.sqliterc`; `bash -i` sources `.bashrc`. Writing such a
//! file turns a trusted or approved command into arbitrary code the approval never
//! showed, so a write of one is judged `Ask` ([`classify_write`]), by the file tools and
//! by command redirections alike.
//!
//! Ordinary project files are not in the list even when a program finds them by name
//! (`Makefile`, `package.json`, `setup.py`, `conftest.py`, `build.rs`): running `make`,
//! `npm test` or `pytest` *is* running the project's code, and the command that does so
//! is what the owner judges. `.editorconfig` and `.gitignore` configure no execution.
//!
//! Matching is per path component, ASCII case-insensitive (`.GIT/config` is a different
//! file on the appliance's case-sensitive disk, but the same one on a case-folding
//! directory, and an extra approval costs little). Look-alike names in other scripts
//! (`.gіt` with a Cyrillic `і`) are ordinary names: no program reads them. A path the
//! classifier cannot read plainly (absolute, `..`, NUL, empty) is `Ask` too; the file
//! tools refuse those anyway.

/// How a write to a workspace path is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteClass {
    /// An ordinary file: the write needs no one's look.
    Ordinary,
    /// A file some program reads and acts on implicitly; the reason says which.
    ExecConfig(&'static str),
    /// Not a plain relative path; judged as a person's matter.
    Unclear(&'static str),
}

/// Directories whose every file configures execution, at any depth.
const EXEC_DIRS: &[(&str, &str)] = &[
    (
        ".git",
        "a git repository's own files (config, hooks, info/attributes) can make git run programs",
    ),
    (
        ".config",
        "per-user configuration (XDG_CONFIG_HOME) that programs load at start",
    ),
    (
        ".local",
        "per-user data, including Python's user site-packages and their .pth files",
    ),
];

/// Start-up and configuration files read from HOME or the working directory.
const STARTUP_FILES: &[&str] = &[
    // shells
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".kshrc",
    ".mkshrc",
    ".inputrc",
    // git (a `.git` file is a gitdir pointer; the rest select drivers and hooks)
    ".git",
    ".gitconfig",
    ".gitattributes",
    ".gitmodules",
    // package managers and interpreters
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pypirc",
    ".pdbrc",
    ".irbrc",
    ".pryrc",
    ".gemrc",
    ".perldb",
    ".rprofile",
    // database and network clients
    ".sqliterc",
    ".psqlrc",
    ".my.cnf",
    ".netrc",
    ".curlrc",
    ".wgetrc",
    // editors, debuggers, pagers, multiplexers
    ".vimrc",
    ".exrc",
    ".nanorc",
    ".gdbinit",
    ".lldbinit",
    ".lesskey",
    ".tmux.conf",
    ".screenrc",
    ".mailcap",
    ".envrc",
];

/// File-name prefixes of start-up files (`.pythonrc`, `.pythonrc.py`).
const STARTUP_PREFIXES: &[&str] = &[".pythonrc"];

/// Python files imported implicitly at interpreter start.
const PYTHON_STARTUP: &[&str] = &["sitecustomize.py", "usercustomize.py"];

/// Judges a write of `path` (relative to the workspace). Pure: no file system access.
pub fn classify_write(path: &str) -> WriteClass {
    if path.is_empty() {
        return WriteClass::Unclear("an empty path");
    }
    if path.contains('\0') {
        return WriteClass::Unclear("a path with a NUL byte");
    }
    if path.starts_with('/') {
        return WriteClass::Unclear("an absolute path");
    }
    let parts: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_ascii_lowercase)
        .collect();
    if parts.iter().any(|c| c == "..") {
        return WriteClass::Unclear("a path with `..`");
    }
    let Some((name, dirs)) = parts.split_last() else {
        return WriteClass::Unclear("a path naming the workspace itself");
    };
    if let Some((_, why)) = EXEC_DIRS
        .iter()
        .find(|(dir, _)| dirs.iter().any(|d| d == dir))
    {
        return WriteClass::ExecConfig(why);
    }
    if STARTUP_FILES.contains(&name.as_str())
        || STARTUP_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return WriteClass::ExecConfig(
            "a start-up or configuration file programs read from HOME or the working directory",
        );
    }
    if name.ends_with(".pth") || PYTHON_STARTUP.contains(&name.as_str()) {
        return WriteClass::ExecConfig("Python runs it at interpreter start from a site directory");
    }
    WriteClass::Ordinary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(path: &str) -> &'static str {
        match classify_write(path) {
            WriteClass::Ordinary => "ordinary",
            WriteClass::ExecConfig(_) => "exec",
            WriteClass::Unclear(_) => "unclear",
        }
    }

    #[test]
    fn table() {
        let table: &[(&str, &str)] = &[
            // ordinary project files
            ("notes.txt", "ordinary"),
            ("src/main.rs", "ordinary"),
            ("Makefile", "ordinary"),
            ("GNUmakefile", "ordinary"),
            ("package.json", "ordinary"),
            ("conftest.py", "ordinary"),
            (".editorconfig", "ordinary"),
            (".gitignore", "ordinary"),
            (".env", "ordinary"),
            ("docs/.bashrc.md", "ordinary"),
            ("x.pth.txt", "ordinary"),
            ("git/config", "ordinary"),
            ("my.git/config", "ordinary"),
            ("config/.configure", "ordinary"),
            // look-alikes in other scripts are just names
            (".g\u{0456}t/config", "ordinary"),
            ("\u{FF0E}bashrc", "ordinary"),
            (".bashrc\u{200B}", "ordinary"),
            // git
            (".git/config", "exec"),
            ("./.git/config", "exec"),
            (".//.git///config", "exec"),
            (".git/hooks/pre-commit", "exec"),
            (".git/info/attributes", "exec"),
            ("sub/repo/.git/config", "exec"),
            (".git", "exec"),
            (".GIT/config", "exec"),
            (".Git/hooks/post-checkout", "exec"),
            (".gitattributes", "exec"),
            ("vendor/lib/.gitmodules", "exec"),
            (".gitconfig", "exec"),
            // shells and clients, at any depth
            (".bashrc", "exec"),
            ("a/b/.profile", "exec"),
            (".sqliterc", "exec"),
            (".SQLITERC", "exec"),
            (".psqlrc", "exec"),
            (".my.cnf", "exec"),
            (".npmrc", "exec"),
            (".curlrc", "exec"),
            (".pythonrc", "exec"),
            (".pythonrc.py", "exec"),
            (".inputrc", "exec"),
            // XDG and Python
            (".config/git/config", "exec"),
            (".config/autostart/x.desktop", "exec"),
            (".local/lib/python3.11/site-packages/zz.pth", "exec"),
            ("x/.local/lib/python3.11/site-packages/zz.pth", "exec"),
            ("venv/lib/python3.11/site-packages/zz.pth", "exec"),
            ("zz.pth", "exec"),
            ("ZZ.PTH", "exec"),
            ("sitecustomize.py", "exec"),
            ("lib/usercustomize.py", "exec"),
            // not plain paths
            ("", "unclear"),
            (".", "unclear"),
            ("./", "unclear"),
            ("/etc/passwd", "unclear"),
            ("/workspace/.git/config", "unclear"),
            ("a/../.git/hooks/pre-commit", "unclear"),
            ("../notes.txt", "unclear"),
            ("a\0b", "unclear"),
        ];
        for (path, want) in table {
            assert_eq!(class(path), *want, "{path:?}");
        }
    }

    #[test]
    fn every_exec_verdict_says_why() {
        for p in [".git/config", ".bashrc", "a.pth", ".config/x", ".local/x"] {
            match classify_write(p) {
                WriteClass::ExecConfig(why) => assert!(!why.is_empty()),
                other => panic!("{p}: {other:?}"),
            }
        }
    }
}
