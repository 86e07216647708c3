//! Lexical classification of path arguments (no file system access): root, system trees, home,
//! the workspace top, devices, credential files. Unknown parts (`$X`, `$(..)`) are kept as text
//! starting with `$`, so `$HOME` is still recognised while `$X` is [`PathKind::Unknown`].

/// Top-level directories whose contents belong to the system.
const SYSTEM_TOP: &[&str] = &[
    "bin", "boot", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "var", "sys", "proc",
    "root", "dev",
];
/// Other top-level directories: deleting them whole is blocked, their contents are "outside".
const OTHER_TOP: &[&str] = &[
    "home",
    "opt",
    "srv",
    "mnt",
    "media",
    "snap",
    "run",
    "nix",
    "lost+found",
    "cdrom",
    "Users",
    "Applications",
    "System",
    "Library",
    "private",
    "Volumes",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// `/`, `//`, `/.`, `/*`, `/tmp/..`
    Root,
    /// `/etc`, `/usr/lib/x`, `/e*`: a system tree or a glob/unknown at the top level.
    System,
    /// `/home`, `/opt`, `/home/user` (a whole user's home): deleting it is destructive.
    TopLevel,
    /// `~`, `~/`, `~/*`, `$HOME`
    Home,
    /// Something inside home: `~/x`.
    InHome,
    /// `.`, `./`, `*`, `./*`, `$PWD`
    WorkspaceTop,
    /// `..`, `../..`, `../x` — above the workspace.
    Parent,
    /// `/dev/sda`, `/dev/nvme0n1`, `/dev/mem`...: raw disks and memory.
    BlockDevice,
    /// `/dev/tcp/host/port`
    NetDevice,
    /// `/dev/null`, `/dev/stdout`, `/dev/fd/1`...
    SafeDevice,
    /// `/tmp/x`, `/var/tmp/x`
    Tmp,
    /// Any other absolute path.
    Outside,
    /// A relative path inside the workspace.
    Relative,
    /// Starts with an unknown expansion.
    Unknown,
}

impl PathKind {
    /// Deleting/overwriting this recursively is destructive.
    pub fn is_destructive_tree(self) -> bool {
        matches!(
            self,
            PathKind::Root
                | PathKind::System
                | PathKind::TopLevel
                | PathKind::Home
                | PathKind::WorkspaceTop
                | PathKind::Parent
        )
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn is_unknown_component(c: &str) -> bool {
    c.starts_with('$') || c.contains("$(") || c.contains('`')
}

/// Lexically normalise `/`-separated components (`.` dropped, `..` pops, empty dropped).
/// Leading `..` of a relative path are kept.
fn normalize(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if matches!(out.last(), Some(l) if *l != "..") {
                    out.pop();
                } else if !path.starts_with('/') {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Split a home prefix (`~`, `~user`, `$HOME`, `${HOME}`) off; returns the rest.
fn home_rest(text: &str) -> Option<&str> {
    if let Some(r) = text.strip_prefix("$HOME")
        && (r.is_empty() || r.starts_with('/'))
    {
        return Some(r);
    }
    if let Some(r) = text.strip_prefix('~') {
        let end = r.find('/').unwrap_or(r.len());
        return Some(&r[end..]);
    }
    None
}

pub(crate) fn classify(text: &str) -> PathKind {
    if let Some(rest) = home_rest(text) {
        let comps = normalize(rest);
        return match comps.as_slice() {
            [] => PathKind::Home,
            [c] if has_glob(c) || is_unknown_component(c) => PathKind::Home,
            [first, ..] if *first == ".." => PathKind::TopLevel,
            _ => PathKind::InHome,
        };
    }
    let text = match text.strip_prefix("$PWD") {
        Some(r) if r.is_empty() || r.starts_with('/') => {
            return classify_relative(&format!(".{r}"));
        }
        _ => text,
    };
    if is_unknown_component(text) {
        return PathKind::Unknown;
    }
    if !text.starts_with('/') {
        return classify_relative(text);
    }
    let comps = normalize(text);
    let Some(first) = comps.first() else {
        return PathKind::Root;
    };
    if comps.len() == 1 && (*first == "*" || *first == ".*") {
        return PathKind::Root;
    }
    if has_glob(first) || is_unknown_component(first) {
        return PathKind::System;
    }
    match *first {
        "dev" => classify_dev(&comps[1..]),
        "tmp" => {
            if comps.len() == 1 {
                PathKind::TopLevel
            } else {
                PathKind::Tmp
            }
        }
        "var" if comps.get(1) == Some(&"tmp") && comps.len() > 2 => PathKind::Tmp,
        "root" => {
            if comps.len() == 1
                || (comps.len() == 2 && (has_glob(comps[1]) || is_unknown_component(comps[1])))
            {
                PathKind::Home
            } else {
                PathKind::System
            }
        }
        f if SYSTEM_TOP.contains(&f) => PathKind::System,
        "home" | "Users" => match comps.len() {
            1 => PathKind::TopLevel,
            2 => PathKind::TopLevel,
            3 if has_glob(comps[2]) || is_unknown_component(comps[2]) => PathKind::TopLevel,
            _ => PathKind::Outside,
        },
        f if OTHER_TOP.contains(&f) && comps.len() == 1 => PathKind::TopLevel,
        _ if comps.len() == 1 => PathKind::TopLevel,
        _ => PathKind::Outside,
    }
}

fn classify_relative(text: &str) -> PathKind {
    let comps = normalize(text);
    match comps.first() {
        None => PathKind::WorkspaceTop,
        Some(&"..") => PathKind::Parent,
        Some(c)
            if comps.len() == 1 && (has_glob(c) && c.trim_matches(['*', '?', '.']).is_empty()) =>
        {
            PathKind::WorkspaceTop
        }
        Some(c) if is_unknown_component(c) => PathKind::Unknown,
        _ => PathKind::Relative,
    }
}

fn classify_dev(rest: &[&str]) -> PathKind {
    let Some(name) = rest.first() else {
        return PathKind::System;
    };
    const SAFE: &[&str] = &[
        "null", "zero", "stdout", "stderr", "stdin", "tty", "fd", "random", "urandom", "full",
        "shm", "pts", "ptmx",
    ];
    const DISK_PREFIX: &[&str] = &[
        "sd", "nvme", "vd", "hd", "xvd", "mmcblk", "dm-", "md", "loop", "sr", "nbd", "disk",
        "mapper", "mem", "kmem", "port", "rbd", "zd", "ram", "mtd", "ubi", "bcache", "fb", "cpu",
        "sg", "st", "block",
    ];
    if matches!(*name, "tcp" | "udp") {
        return PathKind::NetDevice;
    }
    if SAFE.contains(name) {
        return if *name == "shm" && rest.len() == 1 {
            PathKind::TopLevel
        } else {
            PathKind::SafeDevice
        };
    }
    if DISK_PREFIX.iter().any(|p| name.starts_with(p))
        || has_glob(name)
        || is_unknown_component(name)
    {
        return PathKind::BlockDevice;
    }
    PathKind::System
}

/// Files holding secrets or shell history, relative to a home directory.
const HOME_SECRETS: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".sh_history",
    ".history",
    ".python_history",
    ".node_repl_history",
    ".psql_history",
    ".mysql_history",
    ".sqlite_history",
    ".lesshst",
    ".netrc",
    ".git-credentials",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".aws/credentials",
    ".aws/config",
    ".docker/config.json",
    ".kube/config",
    ".config/gh/hosts.yml",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".vault-token",
    ".azure/accessTokens.json",
    ".config/gcloud/credentials.db",
];
const HOME_SECRET_DIRS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".password-store",
    ".local/share/keyrings",
];

/// Is this path (or `@path`, `key=path`) a credential or history file?
pub(crate) fn is_credential(text: &str) -> bool {
    candidates(text).any(credential_path)
}

fn candidates(text: &str) -> impl Iterator<Item = &str> {
    let after_at = text.rfind('@').map(|i| &text[i + 1..]);
    let after_eq = text.find('=').map(|i| &text[i + 1..]);
    std::iter::once(text)
        .chain(after_at)
        .chain(after_eq)
        .map(|t| t.trim_start_matches('@'))
}

fn credential_path(text: &str) -> bool {
    if text.contains("$HISTFILE") || text.contains("${HISTFILE") {
        return true;
    }
    let home_rel: Option<String> = if let Some(r) = home_rest(text) {
        Some(r.trim_start_matches('/').to_string())
    } else if text.starts_with('/') {
        let comps = normalize(text);
        match comps.as_slice() {
            ["etc", f]
                if matches!(
                    *f,
                    "shadow" | "gshadow" | "shadow-" | "gshadow-" | "sudoers" | "master.passwd"
                ) =>
            {
                return true;
            }
            ["etc", "ssh", f] if f.starts_with("ssh_host_") && !f.ends_with(".pub") => return true,
            ["proc", _, "environ"] | ["proc", _, "mem"] => return true,
            ["root", rest @ ..] => Some(rest.join("/")),
            ["home" | "Users", _, rest @ ..] => Some(rest.join("/")),
            _ => None,
        }
    } else {
        None
    };
    let Some(rel) = home_rel else {
        return false;
    };
    let comps = normalize(&rel);
    let rel = comps.join("/");
    if comps.len() == 1 && has_glob(comps[0]) {
        return false; // `~/*` is a deletion matter, not a credential read
    }
    if HOME_SECRETS.iter().any(|s| rel == *s) || rel.ends_with("_history") {
        return true;
    }
    if let Some(first) = comps.first() {
        // a secret directory itself or anything in it (except public keys)
        for d in HOME_SECRET_DIRS {
            if rel == *d || (rel.starts_with(d) && rel.as_bytes().get(d.len()) == Some(&b'/')) {
                let last = comps.last().copied().unwrap_or_default();
                let public = last.ends_with(".pub")
                    || last == "known_hosts"
                    || last == "config" && *first == ".ssh";
                return !public;
            }
        }
    }
    false
}

/// A dotenv file: `.env`, `.env.local`, `config/.env.production` (not `.env.example`).
pub(crate) fn is_dotenv(text: &str) -> bool {
    candidates(text).any(|t| {
        let base = t.rsplit('/').next().unwrap_or(t);
        (base == ".env" || base.starts_with(".env."))
            && !matches!(
                base,
                ".env.example" | ".env.sample" | ".env.template" | ".env.dist" | ".env.defaults"
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathKind::*;

    #[test]
    fn classification() {
        let cases = [
            ("/", Root),
            ("//", Root),
            ("/.", Root),
            ("/*", Root),
            ("/tmp/..", Root),
            ("/./", Root),
            ("/etc", System),
            ("/etc/passwd", System),
            ("/usr/local/lib", System),
            ("/e*", System),
            ("/$X", System),
            ("/home", TopLevel),
            ("/home/alice", TopLevel),
            ("/home/alice/p/x", Outside),
            ("/opt", TopLevel),
            ("/opt/app", Outside),
            ("~", Home),
            ("~/", Home),
            ("~/*", Home),
            ("$HOME", Home),
            ("$HOME/", Home),
            ("~/x", InHome),
            ("~root", Home),
            (".", WorkspaceTop),
            ("./", WorkspaceTop),
            ("*", WorkspaceTop),
            ("./*", WorkspaceTop),
            (".*", WorkspaceTop),
            ("$PWD", WorkspaceTop),
            ("$PWD/src", Relative),
            ("..", Parent),
            ("../..", Parent),
            ("a/../..", Parent),
            ("target", Relative),
            ("./target", Relative),
            ("build/x.o", Relative),
            ("*.o", Relative),
            ("/dev/sda", BlockDevice),
            ("/dev/nvme0n1p1", BlockDevice),
            ("/dev/mem", BlockDevice),
            ("/dev/null", SafeDevice),
            ("/dev/tcp/1.2.3.4/80", NetDevice),
            ("/tmp/x", Tmp),
            ("/var/tmp/x", Tmp),
            ("/root", Home),
            ("/root/.bashrc", System),
            ("$X", Unknown),
            ("$(pwd)", Unknown),
        ];
        for (p, k) in cases {
            assert_eq!(classify(p), k, "{p}");
        }
    }

    #[test]
    fn credentials() {
        for p in [
            "~/.ssh/id_rsa",
            "~/.ssh/id_*",
            "~/.ssh",
            "$HOME/.aws/credentials",
            "/etc/shadow",
            "/home/bob/.bash_history",
            "~/.netrc",
            "@~/.git-credentials",
            "f=@/root/.ssh/id_ed25519",
            "$HISTFILE",
            "/proc/self/environ",
        ] {
            assert!(is_credential(p), "{p}");
        }
        for p in [
            "~/.ssh/id_rsa.pub",
            "~/.ssh/known_hosts",
            "/etc/passwd",
            "README.md",
            "~/*",
            "~/.bashrc",
        ] {
            assert!(!is_credential(p), "{p}");
        }
        assert!(is_dotenv(".env"));
        assert!(is_dotenv("app/.env.local"));
        assert!(is_dotenv("file=@.env"));
        assert!(!is_dotenv(".env.example"));
        assert!(!is_dotenv("venv"));
    }
}
