//! The seccomp deny-list every container process runs under, LXC's `common.seccomp`: no
//! `kexec_load`/`kexec_file_load`, `open_by_handle_at` (the "shocker" escape), module loading
//! or removal, and no forced unmounts (`umount2(…, MNT_FORCE)`); each fails with EPERM. The
//! kernel keyring is not namespaced — every container of a user would share its keys, and
//! fill the user's key quota — so `keyctl`, `add_key` and `request_key` fail with ENOSYS (what
//! Proxmox's containers and LXD's recommended `security.syscalls.deny` do): programs then run
//! as on a kernel without keyrings, systemd included.
//! Everything else is allowed. Rules exist for x86-64 (x32 numbers masked onto it) and i386
//! (32-bit binaries in a container); other architectures pass unfiltered.

use crate::error::{Error, Result};

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG1: u32 = 16 + 8;
const MNT_FORCE: u32 = 1;
/// Clears the x32 ABI bit, so x32 calls meet the x86-64 rules.
const X32_MASK: u32 = !0x4000_0000;

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// ((denied syscall, errno)…, umount2) per architecture.
type Rules = (&'static [(u32, u32)], u32);

/// kexec_load, kexec_file_load, open_by_handle_at, init_module, finit_module, delete_module;
/// add_key, request_key, keyctl.
const X86_64: Rules = (
    &[
        (246, EPERM),
        (320, EPERM),
        (304, EPERM),
        (175, EPERM),
        (313, EPERM),
        (176, EPERM),
        (248, ENOSYS),
        (249, ENOSYS),
        (250, ENOSYS),
    ],
    166,
);
/// kexec_load, open_by_handle_at, init_module, finit_module, delete_module; add_key,
/// request_key, keyctl.
const I386: Rules = (
    &[
        (283, EPERM),
        (342, EPERM),
        (128, EPERM),
        (350, EPERM),
        (129, EPERM),
        (286, ENOSYS),
        (287, ENOSYS),
        (288, ENOSYS),
    ],
    52,
);

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: usize, jf: usize) -> Result<libc::sock_filter> {
    let off = |v: usize| u8::try_from(v).map_err(|_| Error::Setup("seccomp jump too far".into()));
    Ok(libc::sock_filter {
        code: code as u16,
        jt: off(jt)?,
        jf: off(jf)?,
        k,
    })
}

/// One architecture's block: load the number, deny the listed ones and forced unmounts.
fn block(denied: &[(u32, u32)], umount2: u32) -> Result<Vec<libc::sock_filter>> {
    use libc::{
        BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W,
    };
    let mut b = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_NR),
        stmt(BPF_ALU | BPF_AND | BPF_K, X32_MASK),
    ];
    for (nr, errno) in denied {
        // Equal: fall through to this call's return; else skip it.
        b.push(jump(BPF_JMP | BPF_JEQ | BPF_K, *nr, 0, 1)?);
        b.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ERRNO | errno));
    }
    b.push(jump(BPF_JMP | BPF_JEQ | BPF_K, umount2, 0, 2)?);
    b.push(stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARG1));
    b.push(jump(BPF_JMP | BPF_JSET | BPF_K, MNT_FORCE, 1, 0)?);
    b.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
    b.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ERRNO | EPERM));
    Ok(b)
}

/// The whole filter program.
pub fn program() -> Result<Vec<libc::sock_filter>> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let b64 = block(X86_64.0, X86_64.1)?;
    let b32 = block(I386.0, I386.1)?;
    let mut p = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 2, 0)?,
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, b64.len() + 1, 0)?,
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    p.extend(b64);
    p.extend(b32);
    Ok(p)
}

/// Install the filter on this thread (and everything it execs or forks). Needs
/// `CAP_SYS_ADMIN` in the current user namespace, which the container's root has, so
/// `no_new_privs` stays off and setuid programs inside keep working.
pub fn install() -> Result<()> {
    let mut prog = program()?;
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(Error::Os {
            what: "install the seccomp filter".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_stay_inside_the_program() {
        let p = program().unwrap();
        for (i, ins) in p.iter().enumerate() {
            let is_jump = u32::from(ins.code) & 0x07 == libc::BPF_JMP;
            if is_jump {
                assert!(i + 1 + usize::from(ins.jt) < p.len(), "jt at {i}");
                assert!(i + 1 + usize::from(ins.jf) < p.len(), "jf at {i}");
            }
        }
        // Every path ends in a return.
        assert_eq!(u32::from(p.last().unwrap().code) & 0x07, libc::BPF_RET);
    }

    /// Run the filter in a forked child and see that a denied call fails with EPERM while
    /// an allowed one works.
    #[test]
    fn denies_what_it_lists() {
        use nix::errno::Errno;
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        // SAFETY: the test process forks a child that only makes plain calls and _exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                // Unprivileged filter install needs no_new_privs in the test (no userns here).
                let _ = nix::sys::prctl::set_no_new_privs();
                let ok = install().is_ok();
                // SAFETY: delete_module with a C string literal naming no module (nix's
                // wrapper needs its `kmod` feature, which the workspace does not enable).
                let r1 = Errno::result(unsafe {
                    libc::syscall(libc::SYS_delete_module, c"nonexistent".as_ptr(), 0)
                });
                // MNT_FORCE on a path that is no mount.
                let r2 = nix::mount::umount2("/nonexistent", nix::mount::MntFlags::MNT_FORCE);
                // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0): no
                // pointers (nix has no keyctl).
                let r3 = Errno::result(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) });
                let allowed = nix::unistd::getpid().as_raw() > 0;
                let good = ok
                    && r1 == Err(Errno::EPERM)
                    && r2 == Err(Errno::EPERM)
                    && r3 == Err(Errno::ENOSYS)
                    && allowed;
                crate::launch::exit_forked(if good { 0 } else { 1 })
            }
            ForkResult::Parent { child } => {
                let st = waitpid(child, None).unwrap();
                assert_eq!(st, WaitStatus::Exited(child, 0));
            }
        }
    }
}
