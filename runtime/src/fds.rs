//! File descriptors that must never reach a container. `lxr` may be started by anything with
//! anything open — a shell's redirections, an IDE's sockets, a directory fd that container root
//! could walk through `/proc/1/fd/N` (runc's CVE-2024-21626) — and everything lxr forks would
//! inherit them. Three rules, each applied in one place:
//!
//! * [`cloexec_inherited`] at the start of `lxr`: every inherited descriptor above stdio is
//!   close-on-exec, so no program lxr runs (helpers included) receives it;
//! * [`keep_only`] at the start of a forked process that outlives `lxr` (the monitor): what it
//!   does not need is closed, so neither it nor anything it forks holds it;
//! * [`seal`] immediately before every exec into a container (its init, `lxr exec`): whatever
//!   is open above stdio — inherited, or opened by lxr itself — is close-on-exec.
//!
//! [`not_dumpable`] closes the window between `setns` and exec, when a process that holds the
//! user's descriptors already lives in the container's namespaces.

use std::os::fd::RawFd;

use crate::error::{Error, Result};

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

fn close_range(first: u32, last: u32, flags: libc::c_uint) -> std::io::Result<()> {
    // SAFETY: close_range takes plain integers; it only closes or flags descriptors of this
    // process, which every caller here means to.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The descriptors open in this process (from `/proc/self/fd`), for kernels without
/// `close_range` (before 5.9) or its `CLOEXEC` flag (before 5.11).
fn open_fds() -> Vec<RawFd> {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// Mark every descriptor from `first` on close-on-exec.
fn cloexec_from(first: RawFd) -> Result<()> {
    let first = u32::try_from(first).map_err(|_| Error::Setup("bad descriptor".into()))?;
    if close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC).is_ok() {
        return Ok(());
    }
    for fd in open_fds().into_iter().filter(|fd| *fd >= first as RawFd) {
        // SAFETY: F_SETFD on a descriptor number; an already closed one just fails (EBADF).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// At the start of `lxr`: nothing it was started with (above stdio) survives an exec.
pub fn cloexec_inherited() -> Result<()> {
    cloexec_from(3)
}

/// Immediately before an exec into a container: every descriptor above stdio is closed by
/// the exec. (If the exec fails, the caller can still report through its pipes.)
pub fn seal() -> Result<()> {
    cloexec_from(3)
}

/// Close every descriptor above stdio except `keep`.
pub fn keep_only(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: u32 = 3;
    let mut ok = true;
    for k in &keep {
        let k = *k as u32;
        if k > first {
            ok &= close_range(first, k - 1, 0).is_ok();
        }
        first = k + 1;
    }
    ok &= close_range(first, u32::MAX, 0).is_ok();
    if !ok {
        for fd in open_fds() {
            if fd > 2 && !keep.contains(&fd) {
                // SAFETY: closing a descriptor number of this process that nothing here uses.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// Make this process non-dumpable: until it execs, neither ptrace nor `/proc/<pid>/fd` reach it
/// from inside a user namespace it joins (its memory belongs to the user namespace it was
/// started in, where container root has no capabilities).
pub fn not_dumpable() -> Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer; no pointers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(Error::Os {
            what: "make lxr non-dumpable".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn flags(fd: RawFd) -> libc::c_int {
        // SAFETY: F_GETFD on a descriptor number.
        unsafe { libc::fcntl(fd, libc::F_GETFD) }
    }

    /// In a forked child: an inherited descriptor without CLOEXEC gets it; keep_only closes
    /// all but the kept one.
    #[test]
    fn inherited_descriptors_are_sealed_and_closed() {
        let dir = std::fs::File::open("/").unwrap();
        // SAFETY: dup of a valid descriptor; the copy has no CLOEXEC, as an inherited one.
        let leaked = unsafe { libc::dup(dir.as_raw_fd()) };
        let kept = std::fs::File::open("/").unwrap();
        // SAFETY: the child only makes plain calls and _exits.
        match unsafe { libc::fork() } {
            0 => {
                let before = flags(leaked) & libc::FD_CLOEXEC == 0;
                let sealed = seal().is_ok() && flags(leaked) & libc::FD_CLOEXEC != 0;
                keep_only(&[kept.as_raw_fd()]);
                let closed = flags(leaked) == -1 && flags(dir.as_raw_fd()) == -1;
                let still = flags(kept.as_raw_fd()) != -1 && flags(1) != -1;
                let good = before && sealed && closed && still;
                // SAFETY: end the child.
                unsafe { libc::_exit(if good { 0 } else { 1 }) }
            }
            pid => {
                let mut st = 0;
                // SAFETY: waiting for our child.
                unsafe { libc::waitpid(pid, &mut st, 0) };
                // SAFETY: closing our own dup.
                unsafe { libc::close(leaked) };
                assert!(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0);
            }
        }
    }
}
