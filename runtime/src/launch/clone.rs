//! Starting the container's first process directly in its cgroup: `clone3(CLONE_INTO_CGROUP)`
//! (Linux 5.7, cgroup v2). A process moved into a cgroup after it started (cgmanager's
//! `MovePid`, a `cgroup.procs` write) makes the kernel take the cgroup threadgroup lock for
//! writing, which waits for an RCU grace period; a process born there costs a fork.
//!
//! The kernel checks the clone like a move made by the caller (`cgroup_css_set_fork` →
//! `cgroup_attach_permissions`): write access to the destination's `cgroup.procs` **and** to
//! the `cgroup.procs` of the common ancestor of the caller's cgroup and the destination, both
//! visible from the caller's cgroup namespace. So it works where the monitor already lives in
//! the user's delegated subtree (lxr started from a shell `cgm enter`ed there, or from a
//! user manager's subtree the delegation is part of), or for root; an `lxr` in an ordinary login
//! session (`user-1000.slice/session-2.scope`, root's) gets `EACCES`, and its container is
//! entered through cgmanager as before. [`fork_into`] tries, and falls back to a plain fork on
//! any refusal (logged at debug): `ENOSYS` (no clone3, < 5.3), `E2BIG`/`EINVAL` (no
//! `CLONE_INTO_CGROUP`, < 5.7), `EACCES`/`ENOENT` (the permission rule above), `EBADF` (not a
//! cgroup2 directory), `EBUSY`/`EOPNOTSUPP` (a destination that may not hold processes).
//!
//! The clone is a raw system call: glibc (2.36 in Debian 12) has no wrapper, and its
//! `pidfd_spawn` with a cgroup (2.39) execs. The child goes on like a child of `fork(2)`, except
//! that glibc's atfork handlers did not run: so it is used only from a single-threaded process
//! (no lock can be held by a thread that does not exist in the child), and the child's glibc
//! thread descriptor keeps its parent's tid, which glibc ≥ 2.34 never uses for the calling
//! thread itself (`raise`/`abort` ask `gettid`).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::unistd::{fork, ForkResult, Pid};

use crate::cgroup::Entry;
use crate::error::{Error, Result};

/// `CLONE_INTO_CGROUP` (include/uapi/linux/sched.h; libc does not export it for every target).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3` with `CLONE_INTO_CGROUP` into the cgroup2 directory `cgroup` (an `O_PATH` fd is
/// enough), fork-like (no new stack, SIGCHLD at exit). Ok(None) in the child.
///
/// # Safety
///
/// As for `fork(2)` from a single-threaded process: the caller must have no other threads (the
/// child gets a copy of memory in which no other thread may hold a lock), and the child must
/// only `_exit` or exec in the end, never return into code that expects to be the parent.
pub unsafe fn clone_into(cgroup: BorrowedFd<'_>) -> std::io::Result<Option<Pid>> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 reads `args` (ours, of the size passed); with no stack given the child
    // continues here on a copy of this stack, as after fork — the caller's contract above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        0 => Ok(None),
        p if p > 0 => Ok(Some(Pid::from_raw(p as i32))),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// How many threads this process has (`/proc/self/task`); 0 if that cannot be read.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// What [`fork_into`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// This is the child.
    Child,
    /// This is the parent of `child`, which started in the cgroup ([`Entry::Clone3`]) or where
    /// the parent is, to be moved ([`Entry::Cgmanager`]).
    Parent {
        /// The child.
        child: Pid,
        /// How it is to get into its cgroup.
        entry: Entry,
    },
}

/// Fork, into `cgroup` if given and the kernel allows it (see the module), else a plain fork.
///
/// # Safety
///
/// As for `fork(2)`: the child must only `_exit` or exec in the end. `clone3` is tried only
/// when this process is single-threaded.
pub unsafe fn fork_into(cgroup: Option<BorrowedFd<'_>>) -> Result<Forked> {
    if let Some(cg) = cgroup {
        let n = threads();
        if n == 1 {
            // SAFETY: single-threaded (checked just above); the caller's contract for the child.
            match unsafe { clone_into(cg) } {
                Ok(None) => return Ok(Forked::Child),
                Ok(Some(child)) => {
                    tracing::debug!("clone3(CLONE_INTO_CGROUP): pid {child} started in its cgroup");
                    return Ok(Forked::Parent {
                        child,
                        entry: Entry::Clone3,
                    });
                }
                Err(e) => tracing::debug!(
                    "clone3(CLONE_INTO_CGROUP) refused ({}: {e}); cgmanager moves the container \
                     into its cgroup",
                    errno_name(&e)
                ),
            }
        } else {
            tracing::debug!(
                "no clone3(CLONE_INTO_CGROUP) from a process with {n} threads; cgmanager moves \
                 the container into its cgroup"
            );
        }
    }
    // SAFETY: the caller's contract (the child only _exits or execs in the end).
    match unsafe { fork() }.map_err(|e| Error::from_nix("fork", e))? {
        ForkResult::Child => Ok(Forked::Child),
        ForkResult::Parent { child } => Ok(Forked::Parent {
            child,
            entry: Entry::Cgmanager,
        }),
    }
}

/// The errno's symbolic name, for the log.
fn errno_name(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    //! On the host's real cgroup2 hierarchy (`/sys/fs/cgroup/unified` on this project's hybrid
    //! hosts, `/sys/fs/cgroup` on pure v2 ones), below the test's own cgroup; as root.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::chown;
    use std::path::{Path, PathBuf};

    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;

    use super::*;

    /// A scratch cgroup below our own in the cgroup2 hierarchy, removed (with what is left
    /// below it, its processes killed) when dropped.
    pub(crate) struct Scratch {
        pub(crate) dir: PathBuf,
        pub(crate) rel: String,
        pids: Vec<Pid>,
    }

    pub(crate) fn v2_mount() -> PathBuf {
        let l = cgroups::layout::Layout::detect(Path::new("/proc")).unwrap();
        let h = l.unified().expect("a cgroup2 hierarchy");
        assert_eq!(h.mount_root, "/", "the cgroup2 mount shows its root");
        h.mount_point.clone()
    }

    pub(crate) fn own_v2() -> String {
        std::fs::read_to_string("/proc/self/cgroup")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            .unwrap()
    }

    impl Scratch {
        pub(crate) fn new(what: &str) -> Scratch {
            assert!(nix::unistd::geteuid().is_root(), "these tests run as root");
            let own = own_v2();
            let rel = format!(
                "{}/lxr-{what}-{}-{}",
                own.trim_end_matches('/'),
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos()
            );
            let dir = v2_mount().join(rel.trim_start_matches('/'));
            std::fs::create_dir(&dir).unwrap();
            Scratch {
                dir,
                rel,
                pids: Vec::new(),
            }
        }

        pub(crate) fn mkdir(&self, rel: &str) -> PathBuf {
            let d = self.dir.join(rel);
            std::fs::create_dir_all(&d).unwrap();
            d
        }

        pub(crate) fn adopt(&mut self, pid: Pid) {
            self.pids.push(pid);
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            for p in &self.pids {
                let _ = kill(*p, Signal::SIGKILL);
                let _ = waitpid(*p, None);
            }
            let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
            let mut dirs: Vec<PathBuf> = walk(&self.dir);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                for _ in 0..200 {
                    if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = vec![d.to_path_buf()];
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.extend(walk(&e.path()));
                }
            }
        }
        out
    }

    fn open_path(dir: &Path) -> OwnedFd {
        nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap()
    }

    pub(crate) fn cgroup_of(pid: Pid) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            .unwrap()
    }

    /// A child that waits to be killed.
    fn park() -> ! {
        loop {
            // SAFETY: pause takes nothing; the child only waits for its SIGKILL.
            unsafe { libc::pause() };
        }
    }

    /// clone3 as root places the child in the cgroup from its first instruction: no move.
    #[test]
    fn clone3_starts_the_child_in_the_cgroup() {
        let mut s = Scratch::new("clone3");
        let ct = s.mkdir("ct");
        let fd = open_path(&ct);
        // SAFETY: the child only pauses until it is killed.
        match unsafe { clone_into(fd.as_fd()) }.unwrap() {
            None => park(),
            Some(child) => {
                s.adopt(child);
                assert_eq!(cgroup_of(child), format!("{}/ct", s.rel));
                let procs = std::fs::read_to_string(ct.join("cgroup.procs")).unwrap();
                assert_eq!(procs.trim(), child.to_string());
            }
        }
    }

    /// A non-cgroup directory is refused (EBADF), and fork_into falls back to a plain fork in
    /// the caller's cgroup, saying so.
    #[test]
    fn a_refused_clone3_falls_back_to_a_plain_fork() {
        let not_a_cgroup = tempfile::tempdir().unwrap();
        let fd = open_path(not_a_cgroup.path());
        // SAFETY: the child _exits at once.
        let e = match unsafe { clone_into(fd.as_fd()) } {
            Ok(None) => crate::launch::exit_forked(0),
            Ok(Some(p)) => panic!("clone3 into a tmpfs directory made {p}"),
            Err(e) => e,
        };
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        // The test harness runs tests on threads, so fork_into never tries clone3 here; the
        // fallback it takes is the same either way.
        // SAFETY: the child _exits at once.
        match unsafe { fork_into(Some(fd.as_fd())) }.unwrap() {
            Forked::Child => crate::launch::exit_forked(0),
            Forked::Parent { child, entry } => {
                assert_eq!(entry, Entry::Cgmanager);
                waitpid(child, None).unwrap();
            }
        }
    }

    /// The kernel's rule lxr's design follows: an unprivileged caller may clone into a cgroup
    /// it owns only if it also owns the common ancestor of its own cgroup and the destination.
    /// From outside its delegation (a root-owned cgroup, as a login session's scope) that is
    /// EACCES; from a cgroup inside the delegation it works, with no move by anyone.
    #[test]
    fn an_unprivileged_clone3_needs_the_common_ancestor() {
        let mut s = Scratch::new("perm");
        let uid = 65534; // nobody
        let outside = s.mkdir("outside");
        let deleg = s.mkdir("deleg");
        // Delegated as cgmanager's Delegate does: the directory and the delegation files.
        for f in [
            "",
            "cgroup.procs",
            "cgroup.threads",
            "cgroup.subtree_control",
        ] {
            chown(deleg.join(f), Some(uid), Some(uid)).unwrap();
        }
        let monitor = s.mkdir("deleg/monitor");
        let ct = s.mkdir("deleg/lxr/ct");
        for d in [&monitor, &ct, &deleg.join("lxr")] {
            for f in ["", "cgroup.procs"] {
                chown(d.join(f), Some(uid), Some(uid)).unwrap();
            }
        }
        for (from, want) in [(&outside, Some(libc::EACCES)), (&monitor, None)] {
            let (r, w) = nix::unistd::pipe().unwrap();
            // SAFETY: the child makes system calls only and _exits.
            match unsafe { fork() }.unwrap() {
                ForkResult::Child => {
                    drop(r);
                    std::fs::write(from.join("cgroup.procs"), "0").unwrap();
                    nix::unistd::setgroups(&[]).unwrap();
                    nix::unistd::setresgid(uid.into(), uid.into(), uid.into()).unwrap();
                    nix::unistd::setresuid(uid.into(), uid.into(), uid.into()).unwrap();
                    let fd = open_path(&ct);
                    // SAFETY: single-threaded child; the grandchild pauses until killed.
                    let code = match unsafe { clone_into(fd.as_fd()) } {
                        Ok(None) => {
                            // The parent reads the pipe to its end.
                            drop(w);
                            park()
                        }
                        Ok(Some(p)) => {
                            let _ = nix::unistd::write(&w, p.to_string().as_bytes());
                            0
                        }
                        Err(e) => e.raw_os_error().unwrap_or(255),
                    };
                    crate::launch::exit_forked(code)
                }
                ForkResult::Parent { child } => {
                    drop(w);
                    let st = waitpid(child, None).unwrap();
                    let mut buf = String::new();
                    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut buf).unwrap();
                    let grandchild = buf.parse::<i32>().ok().map(Pid::from_raw);
                    if let Some(g) = grandchild {
                        s.pids.push(g);
                    }
                    match want {
                        Some(errno) => {
                            assert_eq!(
                                st,
                                nix::sys::wait::WaitStatus::Exited(child, errno),
                                "from {}",
                                from.display()
                            );
                            assert!(grandchild.is_none());
                        }
                        None => {
                            assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
                            let g = grandchild.expect("a grandchild");
                            assert_eq!(cgroup_of(g), format!("{}/deleg/lxr/ct", s.rel));
                        }
                    }
                }
            }
        }
    }
}
