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

use std::os::fd::{AsFd, RawFd};

use crate::error::{Error, Result};

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

fn close_range(first: u32, last: u32, flags: libc::c_uint) -> std::io::Result<()> {
    // SAFETY: close_range takes plain integers; it only closes or flags descriptors of this
    // process, which every caller here means to (nix has no close_range).
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
        // SAFETY: F_SETFD on a bare descriptor number (nix's fcntl wants a borrowed fd, which
        // only an unsafe `borrow_raw` could make of it); it only sets a flag, and an already
        // closed number just fails (EBADF).
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

/// Between fork and exec of a helper (async-signal-safe: no allocation, unlike [`seal`]'s
/// fallback): every descriptor above stdio is closed by the exec. Without `close_range`'s
/// flag (before 5.11) the first 4096 numbers are flagged one by one.
pub fn cloexec_above_stdio_raw() {
    if close_range(3, u32::MAX, CLOSE_RANGE_CLOEXEC).is_err() {
        for fd in 3..4096 {
            // SAFETY: F_SETFD on a bare number only sets a flag; a closed one fails (EBADF).
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// Descriptors a library keeps open for the whole process, learnt by [`process_wide`].
static PROCESS_WIDE: std::sync::OnceLock<Vec<RawFd>> = std::sync::OnceLock::new();

/// Learn which descriptors `first_use` leaves open for good, the first time only: tokio's
/// first runtime makes a socket pair for signals that every later runtime of the process
/// needs. [`keep_only`] keeps them, or a forked monitor could never build a runtime again
/// (`lxr restart` talked to cgmanager, then forked the monitor, whose runtime failed with
/// EINVAL). Call it while single-threaded, as lxr is: the difference of two listings is
/// exact only then.
pub fn process_wide(first_use: impl FnOnce()) {
    PROCESS_WIDE.get_or_init(|| {
        let before = open_fds();
        first_use();
        open_fds()
            .into_iter()
            .filter(|fd| !before.contains(fd))
            .collect()
    });
}

/// Close every descriptor above stdio except `keep` (and the [`process_wide`] ones, which
/// only a library of lxr's own opened, close-on-exec).
pub fn keep_only(keep: &[RawFd]) {
    let wide = PROCESS_WIDE.get().map_or(&[][..], Vec::as_slice);
    let mut keep: Vec<RawFd> = keep
        .iter()
        .chain(wide)
        .copied()
        .filter(|fd| *fd > 2)
        .collect();
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
                // A descriptor number of this process that nothing here uses (the caller
                // keeps only `keep`); one already gone just fails.
                let _ = nix::unistd::close(fd);
            }
        }
    }
}

/// This process's stdin, stdout and stderr become copies of these descriptors.
pub fn onto_stdio(stdin: impl AsFd, stdout: impl AsFd, stderr: impl AsFd) -> nix::Result<()> {
    nix::unistd::dup2_stdin(stdin)?;
    nix::unistd::dup2_stdout(stdout)?;
    nix::unistd::dup2_stderr(stderr)
}

/// Stdin, stdout and stderr onto the host's `/dev/null`: a forked helper keeps nothing of the
/// user's terminal or pipes.
pub fn null_stdio() -> crate::error::Result<()> {
    use crate::error::Context;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx(|| "open /dev/null".into())?;
    onto_stdio(&null, &null, &null).ctx(|| "dup2 onto stdio".into())
}

/// Whether poll reported anything for `p` (bits nix does not name count too).
pub fn ready(p: &nix::poll::PollFd<'_>) -> bool {
    p.revents().is_none_or(|r| !r.is_empty())
}

/// Make this process non-dumpable: until it execs, neither ptrace nor `/proc/<pid>/fd` reach it
/// from inside a user namespace it joins (its memory belongs to the user namespace it was
/// started in, where container root has no capabilities).
pub fn not_dumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::Os {
        what: "make lxr non-dumpable".into(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    use std::os::fd::AsRawFd;

    /// Whether `fd` is close-on-exec, as the kernel reports it (`/proc/self/fdinfo`); `None`
    /// when it is not open.
    fn cloexec(fd: RawFd) -> Option<bool> {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
        let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
        Some(flags & libc::O_CLOEXEC as u32 != 0)
    }

    /// In a forked child: an inherited descriptor without CLOEXEC gets it; keep_only closes
    /// all but the kept one.
    #[test]
    fn inherited_descriptors_are_sealed_and_closed() {
        let dir = std::fs::File::open("/").unwrap();
        // The copy has no CLOEXEC, as an inherited one.
        let leaked = nix::unistd::dup(&dir).unwrap();
        let (leaked_fd, dir_fd) = (leaked.as_raw_fd(), dir.as_raw_fd());
        let kept = std::fs::File::open("/").unwrap();
        // SAFETY: the child only makes plain calls and _exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let before = cloexec(leaked_fd) == Some(false);
                let sealed = seal().is_ok() && cloexec(leaked_fd) == Some(true);
                keep_only(&[kept.as_raw_fd()]);
                let closed = cloexec(leaked_fd).is_none() && cloexec(dir_fd).is_none();
                let still = cloexec(kept.as_raw_fd()).is_some() && cloexec(1).is_some();
                let good = before && sealed && closed && still;
                crate::launch::exit_forked(if good { 0 } else { 1 })
            }
            ForkResult::Parent { child } => {
                let st = waitpid(child, None).unwrap();
                drop(leaked);
                assert_eq!(st, WaitStatus::Exited(child, 0));
            }
        }
    }

    /// `lxr restart` talked to cgmanager (a tokio runtime) and then forked the monitor, whose
    /// `keep_only` closed the socket pair tokio keeps for signals process-wide; the monitor's
    /// own runtime then failed ("tokio: Invalid argument") and the container started without
    /// its cgroups.
    #[test]
    fn a_runtime_works_in_a_child_that_closed_what_its_parent_runtime_opened() {
        let rt = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        };
        process_wide(|| drop(rt()));
        let parent = rt().unwrap();
        parent.block_on(async { tokio::task::yield_now().await });
        drop(parent);
        // SAFETY: the child only makes plain calls and _exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                keep_only(&[]);
                let good = rt()
                    .is_ok_and(|rt| rt.block_on(async { tokio::net::UnixStream::pair().is_ok() }));
                crate::launch::exit_forked(if good { 0 } else { 1 })
            }
            ForkResult::Parent { child } => {
                let st = waitpid(child, None).unwrap();
                assert_eq!(st, WaitStatus::Exited(child, 0));
            }
        }
    }
}
