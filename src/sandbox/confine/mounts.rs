//! The sandbox's filesystem view, built in the private mount namespace:
//!
//! ```text
//! /            tmpfs, read-only once built
//! /usr         read-only bind of the host's      (/bin /sbin /lib /lib64: symlinks or binds as on the host)
//! /etc         generated passwd/group/hosts/hostname/nsswitch.conf, copies of a few small
//!              files (ld.so.cache, localtime, ...), read-only binds of a few dirs (alternatives, ssl)
//! /dev         tmpfs with null zero full random urandom bound from the host, fd links, /dev/shm
//! /proc        fresh procfs of the new pid namespace
//! /tmp         private tmpfs
//! /sandbox-home
//!              HOME: an empty private tmpfs (0700), new for every run, gone after it
//! /workspace   the workspace, read-write (the only host directory that is)
//! ```
//! No /home, /root, /run, /var, /srv, /opt, /mnt, /sys: none of the appliance's state.
//! HOME is never the workspace: files the agent writes there (`.bashrc`, `.sqliterc`,
//! `.local/lib/python3*/site-packages/*.pth`, `.gitconfig`) are not startup files of
//! the command's user.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, pivot_root, sethostname};

use crate::sandbox::error::ConfineError;

use super::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Where the new root is assembled: the host's /tmp, covered only in our mount namespace.
const STAGING: &str = "/tmp";
/// Where the workspace appears inside the sandbox.
pub const WORKSPACE: &str = "/workspace";
/// The command's HOME: an empty tmpfs of its own run, outside the workspace.
pub const HOME: &str = "/sandbox-home";
/// Hostname inside the sandbox.
pub const HOSTNAME: &str = "sandbox";

/// Host system directories, bound read-only (or recreated as the same symlink).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
/// /etc entries programs need; everything else (shadow, the appliance's config) is absent.
const ETC_ENTRIES: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "timezone",
    "protocols",
    "services",
    "mime.types",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
];
/// Only with the network switch on.
const ETC_NETWORK_ENTRIES: &[&str] = &["resolv.conf"];
/// Device nodes bound from the host.
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// What the root needs from the spec.
#[derive(Debug)]
pub struct RootPlan {
    pub workspace: OwnedFd,
    pub tmp_size_bytes: u64,
    pub allow_network: bool,
    pub uid: u32,
    pub gid: u32,
}

/// Builds the whole view and pivots into it. Runs in the sandbox init (pid 1).
pub fn build_root(plan: RootPlan) -> Result<(), ConfineError> {
    make_private()?;
    mount_tmpfs(
        Path::new(STAGING),
        "mode=0755,size=4m,nr_inodes=4096",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )?;
    bind_system_dirs()?;
    populate_etc(&plan)?;
    populate_dev()?;
    mount_proc()?;
    mount_private_tmp(plan.tmp_size_bytes)?;
    mount_private_home(&plan)?;
    mount_workspace(&plan.workspace)?;
    drop(plan.workspace);
    pivot()?;
    seal_root()
}

/// The hostname of the new uts namespace.
pub fn set_hostname() -> Result<(), ConfineError> {
    sethostname(HOSTNAME).map_err(ConfineError::SetHostname)
}

fn staged(path: &str) -> PathBuf {
    Path::new(STAGING).join(path.trim_start_matches('/'))
}

fn mount_err(target: &Path) -> impl FnOnce(nix::Error) -> ConfineError + '_ {
    move |source| ConfineError::Mount {
        target: target.to_path_buf(),
        source,
    }
}

fn prep_err(path: &Path) -> impl FnOnce(std::io::Error) -> ConfineError + '_ {
    move |source| ConfineError::PrepareRoot {
        path: path.to_path_buf(),
        source,
    }
}

fn setattr(path: &Path, set: u64, recursive: bool) -> Result<(), ConfineError> {
    let c = cstring(path)?;
    sys::mount_setattr(&c, set, recursive).map_err(mount_err(path))
}

/// Mount events never propagate between the sandbox and the host.
fn make_private() -> Result<(), ConfineError> {
    let root = Path::new("/");
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(mount_err(root))
}

fn mount_tmpfs(target: &Path, options: &str, flags: MsFlags) -> Result<(), ConfineError> {
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options)).map_err(mount_err(target))
}

fn bind(source: &Path, target: &Path) -> Result<(), ConfineError> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(mount_err(target))
}

fn bind_read_only(source: &Path, target: &Path) -> Result<(), ConfineError> {
    bind(source, target)?;
    setattr(
        target,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        true,
    )
}

/// /usr and friends: a symlink stays the same symlink (merged /usr), a directory is bound read-only.
fn bind_system_dirs() -> Result<(), ConfineError> {
    for dir in SYSTEM_DIRS {
        let host = Path::new(dir);
        let Ok(meta) = fs::symlink_metadata(host) else {
            continue;
        };
        let target = staged(dir);
        if meta.file_type().is_symlink() {
            let link = fs::read_link(host).map_err(prep_err(host))?;
            symlink(&link, &target).map_err(prep_err(&target))?;
        } else if meta.is_dir() {
            fs::create_dir_all(&target).map_err(prep_err(&target))?;
            bind_read_only(host, &target)?;
        }
    }
    Ok(())
}

/// A minimal /etc: generated identity files plus read-only binds of what programs read.
fn populate_etc(plan: &RootPlan) -> Result<(), ConfineError> {
    let etc = staged("/etc");
    fs::create_dir_all(&etc).map_err(prep_err(&etc))?;
    for (name, content) in generated_etc(plan.uid, plan.gid) {
        let path = etc.join(name);
        fs::write(&path, content).map_err(prep_err(&path))?;
    }
    let network: &[&str] = if plan.allow_network {
        ETC_NETWORK_ENTRIES
    } else {
        &[]
    };
    for name in ETC_ENTRIES.iter().chain(network) {
        let host = Path::new("/etc").join(name);
        let target = etc.join(name);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            continue;
        };
        let Ok(resolved) = host.canonicalize() else {
            continue;
        };
        if meta.file_type().is_symlink()
            && (resolved.starts_with("/usr") || resolved.starts_with("/etc"))
        {
            // e.g. localtime -> /usr/share/zoneinfo/..: the same link resolves inside too.
            let link = fs::read_link(&host).map_err(prep_err(&host))?;
            symlink(&link, &target).map_err(prep_err(&target))?;
        } else if resolved.is_dir() {
            fs::create_dir_all(&target).map_err(prep_err(&target))?;
            bind_read_only(&resolved, &target)?;
        } else {
            // Small files are copied into the (soon read-only) root: a copy is cheaper
            // than a bind mount, and a link leading elsewhere (resolv.conf -> /run/..)
            // becomes its content.
            fs::copy(&resolved, &target).map_err(prep_err(&target))?;
        }
    }
    Ok(())
}

/// passwd/group naming only the sandbox user, and no shadow at all.
fn generated_etc(uid: u32, gid: u32) -> Vec<(&'static str, String)> {
    let mut passwd = format!("sandbox:x:{uid}:{gid}:cowork sandbox:{HOME}:/bin/sh\n");
    let mut group = format!("sandbox:x:{gid}:\n");
    if uid != 65534 {
        passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    }
    if gid != 65534 {
        group.push_str("nogroup:x:65534:\n");
    }
    vec![
        ("passwd", passwd),
        ("group", group),
        ("hostname", format!("{HOSTNAME}\n")),
        ("hosts", format!("127.0.0.1 localhost {HOSTNAME}\n::1 localhost ip6-localhost\n")),
        ("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nservices: files\nprotocols: files\n".into()),
    ]
}

/// A tty-less /dev: five nodes bound from the host, fd symlinks, a private /dev/shm.
fn populate_dev() -> Result<(), ConfineError> {
    let dev = staged("/dev");
    fs::create_dir_all(&dev).map_err(prep_err(&dev))?;
    mount_tmpfs(
        &dev,
        "mode=0755,size=64k,nr_inodes=64",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
    )?;
    for node in DEV_NODES {
        let host = Path::new("/dev").join(node);
        let target = dev.join(node);
        fs::File::create(&target).map_err(prep_err(&target))?;
        bind(&host, &target)?;
        setattr(&target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false)?;
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = dev.join(name);
        symlink(to, &link).map_err(prep_err(&link))?;
    }
    let shm = dev.join("shm");
    fs::create_dir(&shm).map_err(prep_err(&shm))?;
    mount_tmpfs(
        &shm,
        "mode=1777,size=16m",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )?;
    setattr(&dev, MOUNT_ATTR_RDONLY, false)
}

/// A fresh procfs: it shows only the sandbox's own pid namespace.
fn mount_proc() -> Result<(), ConfineError> {
    let proc_dir = staged("/proc");
    fs::create_dir_all(&proc_dir).map_err(prep_err(&proc_dir))?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(mount_err(&proc_dir))
}

fn mount_private_tmp(size: u64) -> Result<(), ConfineError> {
    let tmp = staged("/tmp");
    fs::create_dir_all(&tmp).map_err(prep_err(&tmp))?;
    mount_tmpfs(
        &tmp,
        &format!("mode=1777,size={size}"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

/// HOME: empty, owned by the sandbox user, private to this run (it lives in this mount
/// namespace only and vanishes with it).
fn mount_private_home(plan: &RootPlan) -> Result<(), ConfineError> {
    let home = staged(HOME);
    fs::create_dir_all(&home).map_err(prep_err(&home))?;
    mount_tmpfs(
        &home,
        &format!(
            "mode=0700,uid={},gid={},size={}",
            plan.uid, plan.gid, plan.tmp_size_bytes
        ),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

/// The workspace: a detached mount tree cloned with open_tree while the helper was still
/// privileged (so the host path's parents need not be searchable by the sandbox user,
/// and a bind across mount namespaces, which the kernel refuses, is not needed).
fn mount_workspace(tree: &OwnedFd) -> Result<(), ConfineError> {
    let target = staged(WORKSPACE);
    fs::create_dir_all(&target).map_err(prep_err(&target))?;
    let c = cstring(&target)?;
    sys::move_mount_fd(tree.as_fd(), &c).map_err(mount_err(&target))?;
    setattr(&target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true)
}

/// Clones the workspace's mount tree (call while privileged, before unshare).
pub fn clone_workspace_tree(path: &Path) -> Result<OwnedFd, ConfineError> {
    let c = cstring(path)?;
    sys::open_tree_clone(&c).map_err(mount_err(path))
}

fn cstring(path: &Path) -> Result<CString, ConfineError> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| ConfineError::PrepareRoot {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// pivot_root(".", ".") then detach the old root: the host tree is gone from this namespace.
fn pivot() -> Result<(), ConfineError> {
    chdir(STAGING).map_err(ConfineError::PivotRoot)?;
    pivot_root(".", ".").map_err(ConfineError::PivotRoot)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(ConfineError::PivotRoot)?;
    chdir("/").map_err(ConfineError::PivotRoot)
}

/// The root tmpfs (with /etc's generated files) becomes read-only.
fn seal_root() -> Result<(), ConfineError> {
    setattr(
        Path::new("/"),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwd_names_only_the_sandbox_user() {
        let files = generated_etc(65534, 65534);
        let passwd = &files
            .iter()
            .find(|(n, _)| *n == "passwd")
            .expect("passwd")
            .1;
        assert_eq!(passwd.lines().count(), 1);
        assert!(passwd.starts_with("sandbox:x:65534:65534:"));
        assert!(!files.iter().any(|(n, _)| *n == "shadow"));
        let files = generated_etc(1000, 1000);
        let passwd = &files
            .iter()
            .find(|(n, _)| *n == "passwd")
            .expect("passwd")
            .1;
        assert!(passwd.contains("nobody:x:65534"));
    }

    #[test]
    fn etc_list_has_no_secrets() {
        for bad in ["shadow", "gshadow", "sudoers", "ssh", "cowork"] {
            assert!(!ETC_ENTRIES.contains(&bad));
        }
    }
}
