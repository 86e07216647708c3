//! Seccomp: a deny-list in default-allow mode, so general programs run; denied calls
//! fail with EPERM (not a kill) so programs fail cleanly. clone3 gets ENOSYS instead:
//! its flags live in memory seccomp cannot read, and libc then falls back to clone,
//! whose flags we can check.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

use crate::sandbox::error::ConfineError;
use crate::sandbox::report::SeccompReport;

/// Which arguments a deny rule looks at.
#[derive(Debug, Clone, Copy)]
enum Args {
    /// Every call.
    Any,
    /// Arg 0 has any of these bits set (clone flags).
    Arg0AnyBit(&'static [u64]),
    /// Arg 0 equals one of these (socket domain).
    Arg0In(&'static [u64]),
    /// Arg 1 equals one of these (ioctl request).
    Arg1In(&'static [u64]),
}

/// One deny rule and why it exists.
#[derive(Debug, Clone, Copy)]
struct Deny {
    nr: libc::c_long,
    args: Args,
    #[allow(dead_code)] // read by people and by the table test
    reason: &'static str,
}

const fn deny(nr: libc::c_long, reason: &'static str) -> Deny {
    Deny {
        nr,
        args: Args::Any,
        reason,
    }
}

const CLONE_NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];
const INET_DOMAINS: &[u64] = &[libc::AF_INET as u64, libc::AF_INET6 as u64];
const RAW_DOMAINS: &[u64] = &[libc::AF_PACKET as u64];
#[allow(clippy::unnecessary_cast)] // c_ulong is u64 here, not on every target
const TTY_INJECT: &[u64] = &[libc::TIOCSTI as u64, libc::TIOCLINUX as u64];

/// The deny-list, common to every run.
const DENY: &[Deny] = &[
    deny(libc::SYS_ptrace, "inspect or hijack other processes"),
    deny(libc::SYS_process_vm_readv, "read another process's memory"),
    deny(
        libc::SYS_process_vm_writev,
        "write another process's memory",
    ),
    deny(libc::SYS_process_madvise, "act on another process's memory"),
    deny(
        libc::SYS_pidfd_getfd,
        "steal a descriptor from another process",
    ),
    deny(
        libc::SYS_kcmp,
        "compare kernel objects of other processes (info leak)",
    ),
    deny(libc::SYS_mount, "change the filesystem view"),
    deny(libc::SYS_umount2, "uncover what the sandbox mounts hide"),
    deny(libc::SYS_pivot_root, "change the filesystem root"),
    deny(libc::SYS_chroot, "change the filesystem root"),
    deny(libc::SYS_open_tree, "new mount API: clone mounts"),
    deny(libc::SYS_move_mount, "new mount API: attach mounts"),
    deny(libc::SYS_fsopen, "new mount API: create filesystems"),
    deny(libc::SYS_fsconfig, "new mount API: configure filesystems"),
    deny(libc::SYS_fsmount, "new mount API: mount filesystems"),
    deny(libc::SYS_fspick, "new mount API: reconfigure mounts"),
    deny(
        libc::SYS_mount_setattr,
        "change mount flags (e.g. read-only)",
    ),
    deny(
        libc::SYS_unshare,
        "new namespaces: user-ns kernel attack surface, escaping limits",
    ),
    deny(libc::SYS_setns, "join other namespaces"),
    Deny {
        nr: libc::SYS_clone,
        args: Args::Arg0AnyBit(CLONE_NS_FLAGS),
        reason: "clone into new namespaces (same as unshare)",
    },
    deny(
        libc::SYS_keyctl,
        "kernel keyrings are shared per uid, not per sandbox",
    ),
    deny(
        libc::SYS_add_key,
        "kernel keyrings are shared per uid, not per sandbox",
    ),
    deny(
        libc::SYS_request_key,
        "kernel keyrings are shared per uid, not per sandbox",
    ),
    deny(libc::SYS_bpf, "eBPF verifier attack surface"),
    deny(
        libc::SYS_perf_event_open,
        "performance counters: side channels, attack surface",
    ),
    deny(
        libc::SYS_userfaultfd,
        "exploit primitive for widening kernel race windows",
    ),
    deny(
        libc::SYS_io_uring_setup,
        "io_uring: bypasses seccomp per-call checks, frequent kernel bugs",
    ),
    deny(
        libc::SYS_io_uring_enter,
        "io_uring: bypasses seccomp per-call checks, frequent kernel bugs",
    ),
    deny(
        libc::SYS_io_uring_register,
        "io_uring: bypasses seccomp per-call checks, frequent kernel bugs",
    ),
    deny(libc::SYS_kexec_load, "replace the running kernel"),
    deny(libc::SYS_kexec_file_load, "replace the running kernel"),
    deny(libc::SYS_init_module, "load kernel code"),
    deny(libc::SYS_finit_module, "load kernel code"),
    deny(libc::SYS_delete_module, "unload kernel code"),
    deny(libc::SYS_reboot, "reboot the host"),
    deny(libc::SYS_swapon, "host swap configuration"),
    deny(libc::SYS_swapoff, "host swap configuration"),
    deny(libc::SYS_acct, "host process accounting"),
    deny(libc::SYS_quotactl, "host disk quotas"),
    deny(libc::SYS_quotactl_fd, "host disk quotas"),
    deny(
        libc::SYS_open_by_handle_at,
        "open files by handle, bypassing path checks (shocker)",
    ),
    deny(
        libc::SYS_name_to_handle_at,
        "obtain file handles for open_by_handle_at",
    ),
    Deny {
        nr: libc::SYS_ioctl,
        args: Args::Arg1In(TTY_INJECT),
        reason: "inject input into a terminal (TIOCSTI, TIOCLINUX)",
    },
    Deny {
        nr: libc::SYS_socket,
        args: Args::Arg0In(RAW_DOMAINS),
        reason: "raw link-layer sockets",
    },
    deny(libc::SYS_syslog, "read or clear the kernel log"),
    deny(libc::SYS_settimeofday, "set the host clock"),
    deny(libc::SYS_clock_settime, "set the host clock"),
    deny(
        libc::SYS_fanotify_init,
        "watch filesystem activity of the host",
    ),
    #[cfg(target_arch = "x86_64")]
    deny(libc::SYS_iopl, "raw port I/O"),
    #[cfg(target_arch = "x86_64")]
    deny(libc::SYS_ioperm, "raw port I/O"),
    #[cfg(target_arch = "x86_64")]
    deny(
        libc::SYS_modify_ldt,
        "legacy segment tables: old kernel attack surface",
    ),
    #[cfg(target_arch = "x86_64")]
    deny(libc::SYS_uselib, "obsolete library loader"),
];

/// Only when the network switch is off.
const DENY_NETWORK: Deny = Deny {
    nr: libc::SYS_socket,
    args: Args::Arg0In(INET_DOMAINS),
    reason: "no network: IPv4/IPv6 sockets (the net namespace is empty anyway)",
};

/// clone3 -> ENOSYS: its flags live in memory seccomp cannot read; ENOSYS makes libc
/// fall back to clone, whose flags the main rules check. seccompiler has one match
/// action per filter, so these three instructions are spliced in right after its
/// architecture check (all its jumps are relative and stay valid).
fn with_clone3_enosys(program: BpfProgram) -> Result<BpfProgram, ConfineError> {
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JMP_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let arch_check_ok = program.len() > 3
        && program[0].code == BPF_LD_W_ABS
        && program[0].k == 4 // offsetof(struct seccomp_data, arch)
        && program[1].code == BPF_JMP_JEQ_K
        && program[2].code == BPF_RET_K;
    if !arch_check_ok {
        return Err(sc_err("unexpected seccompiler program layout"));
    }
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let mut out = Vec::with_capacity(program.len() + 3);
    out.extend_from_slice(&program[..3]);
    out.push(insn(BPF_LD_W_ABS, 0, 0, 0)); // offsetof(struct seccomp_data, nr)
    out.push(insn(BPF_JMP_JEQ_K, 0, 1, libc::SYS_clone3 as u32));
    out.push(insn(
        BPF_RET_K,
        0,
        0,
        SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    ));
    out.extend_from_slice(&program[3..]);
    Ok(out)
}

fn sc_err(e: impl std::fmt::Display) -> ConfineError {
    ConfineError::Seccomp(e.to_string())
}

fn cond(
    index: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompRule, ConfineError> {
    let c = SeccompCondition::new(index, len, op, value).map_err(sc_err)?;
    SeccompRule::new(vec![c]).map_err(sc_err)
}

fn rules_for(args: Args) -> Result<Vec<SeccompRule>, ConfineError> {
    use SeccompCmpArgLen::{Dword, Qword};
    match args {
        Args::Any => Ok(Vec::new()), // empty chain = match on the syscall number alone
        Args::Arg0AnyBit(bits) => bits
            .iter()
            .map(|&b| cond(0, Qword, SeccompCmpOp::MaskedEq(b), b))
            .collect(),
        Args::Arg0In(values) => values
            .iter()
            .map(|&v| cond(0, Dword, SeccompCmpOp::Eq, v))
            .collect(),
        Args::Arg1In(values) => values
            .iter()
            .map(|&v| cond(1, Dword, SeccompCmpOp::Eq, v))
            .collect(),
    }
}

fn deny_list(allow_network: bool) -> Vec<Deny> {
    let mut list: Vec<Deny> = DENY.to_vec();
    if !allow_network {
        list.push(DENY_NETWORK);
    }
    list
}

fn compile(list: &[Deny], action: SeccompAction) -> Result<BpfProgram, ConfineError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(sc_err)?;
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for d in list {
        let mut rules = rules_for(d.args)?;
        let entry = map.entry(d.nr).or_default();
        // Two arg-conditional rules for the same call merge; an unconditional one wins.
        if rules.is_empty() {
            entry.clear();
        } else {
            entry.append(&mut rules);
        }
    }
    let filter = SeccompFilter::new(map, SeccompAction::Allow, action, arch).map_err(sc_err)?;
    filter.try_into().map_err(sc_err)
}

/// Installs the filters on the calling process (inherited by every child).
pub fn install(allow_network: bool) -> Result<SeccompReport, ConfineError> {
    let list = deny_list(allow_network);
    let program = with_clone3_enosys(compile(&list, SeccompAction::Errno(libc::EPERM as u32))?)?;
    // One filter, not two: each attached filter costs a BPF JIT compile.
    seccompiler::apply_filter(&program).map_err(sc_err)?;
    let mut numbers: Vec<libc::c_long> = list.iter().map(|d| d.nr).collect();
    numbers.push(libc::SYS_clone3);
    numbers.sort_unstable();
    numbers.dedup();
    Ok(SeccompReport {
        enabled: true,
        denied_syscalls: numbers.len(),
        inet_allowed: allow_network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_a_reason() {
        for d in deny_list(false) {
            assert!(d.reason.len() > 8, "syscall {} lacks a reason", d.nr);
        }
    }

    #[test]
    fn filters_compile_for_both_network_modes() {
        for net in [false, true] {
            let prog = compile(&deny_list(net), SeccompAction::Errno(libc::EPERM as u32))
                .expect("compile");
            assert!(!prog.is_empty());
        }
    }

    #[test]
    fn clone3_is_spliced_after_the_arch_check() {
        let base =
            compile(&deny_list(false), SeccompAction::Errno(libc::EPERM as u32)).expect("compile");
        let prog = with_clone3_enosys(base.clone()).expect("splice");
        assert_eq!(prog.len(), base.len() + 3);
        assert_eq!(prog[4].k, libc::SYS_clone3 as u32);
        assert_eq!(prog[5].k, 0x0005_0000 | libc::ENOSYS as u32);
        assert_eq!(&prog[6..], &base[3..]);
    }

    #[test]
    fn socket_rules_merge() {
        let list = deny_list(false);
        let sockets = list.iter().filter(|d| d.nr == libc::SYS_socket).count();
        assert_eq!(sockets, 2, "raw + inet rules");
        let net_on = deny_list(true);
        assert_eq!(
            net_on.iter().filter(|d| d.nr == libc::SYS_socket).count(),
            1
        );
    }
}
