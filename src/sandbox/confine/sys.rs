//! The few raw system calls that nix does not wrap. Each unsafe block is the smallest
//! possible and says why it is sound.

use nix::errno::Errno;

/// `struct mount_attr` for mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// mount_setattr(2): add `set` flags to the mount at `path` (and its submounts when `recursive`).
#[allow(unsafe_code)]
pub fn mount_setattr(path: &std::ffi::CStr, set: u64, recursive: bool) -> Result<(), Errno> {
    let mut attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is a valid NUL-terminated string and `attr` a properly sized,
    // initialised struct that outlives the call; the kernel only reads both.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the kernel's ABI, 0 if none.
#[allow(unsafe_code)]
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the call reads
    // and writes no memory; it only returns a number or an error.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(rc).unwrap_or(0)
}

/// close_range(first, ~0, 0): closes every descriptor from `first` up.
#[allow(unsafe_code)]
pub fn close_from(first: u32) -> Result<(), Errno> {
    // SAFETY: closing descriptors touches no memory; callers own every fd >= `first`
    // (this runs in the freshly exec'd single-threaded helper or a forked child).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    Errno::result(rc).map(drop)
}

/// close_range(first, ~0, CLOSE_RANGE_CLOEXEC): marks every descriptor from `first` up
/// close-on-exec, so no child process can inherit it.
#[allow(unsafe_code)]
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: setting a descriptor flag touches no memory and keeps every fd open.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    Errno::result(rc).map(drop)
}

/// Drops every capability (see [`crate::privs::drop_all_capabilities`]).
pub fn drop_all_capabilities() -> Result<(), Errno> {
    crate::privs::drop_all_capabilities()
}

/// fork(2) in the single-threaded helper.
#[allow(unsafe_code)]
pub fn fork() -> Result<nix::unistd::ForkResult, Errno> {
    // SAFETY: only called from the helper process, which was freshly exec'd and never
    // starts a thread, so the child cannot inherit a lock held by another thread.
    unsafe { nix::unistd::fork() }
}

/// open_tree(path, OPEN_TREE_CLONE|AT_RECURSIVE): a detached copy of the mount tree at
/// `path`, as a descriptor that can later be attached with [`move_mount_fd`] even from
/// another mount namespace. Needs CAP_SYS_ADMIN (taken while the helper is still root).
#[allow(unsafe_code)]
pub fn open_tree_clone(path: &std::ffi::CStr) -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE;
    // SAFETY: `path` is a valid NUL-terminated string; the call reads it and returns a new fd.
    let rc = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(rc)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH): attaches a detached tree.
#[allow(unsafe_code)]
pub fn move_mount_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    target: &std::ffi::CStr,
) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    // SAFETY: both strings are valid and NUL-terminated, `fd` is a live descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop)
}
