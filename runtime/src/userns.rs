//! Running code as root of a new user namespace that maps the user's subordinate ids: fork,
//! `unshare(CLONE_NEWUSER)` in the child, the parent writes the maps with the setuid helpers,
//! then the child becomes uid/gid 0 there. Used to unpack images (files get mapped owners)
//! and to remove container trees, and as the first step of a launch.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Uid};

use crate::error::{Context, Error, Result};
use crate::idmap::{IdMaps, Ids};

/// A pipe used to step the parent and child through the handshake. After the fork each side
/// closes the end it does not use ([`Sync::close_read`], [`Sync::close_write`]), so a side
/// that dies is seen by the other as end-of-file instead of a wait forever.
pub struct Sync {
    r: Option<std::fs::File>,
    w: Option<std::fs::File>,
}

impl Sync {
    /// A new pipe (close-on-exec).
    pub fn new() -> Result<Sync> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
        Ok(Sync {
            r: Some(std::fs::File::from(r)),
            w: Some(std::fs::File::from(w)),
        })
    }

    /// Send one byte.
    pub fn signal(&mut self) -> std::io::Result<()> {
        match &mut self.w {
            Some(w) => w.write_all(b"1"),
            None => Err(std::io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    /// Wait for one byte; false on EOF (the other side died).
    pub fn wait(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.as_mut().map(|r| r.read(&mut b)), Some(Ok(1)))
    }

    /// This side only writes.
    pub fn close_read(&mut self) {
        self.r = None;
    }

    /// This side only reads.
    pub fn close_write(&mut self) {
        self.w = None;
    }
}

/// In a forked child: enter a new user namespace, have the parent map it, become root there.
/// `ready` is signalled after unshare; `go` is waited for before setuid.
pub fn child_enter(ready: &mut Sync, go: &mut Sync) -> Result<()> {
    child_mapped(ready, go)?;
    become_root()
}

/// [`child_enter`] without the last step: the namespace is mapped, and this process, with every
/// capability in it, still has the user's credentials — it can still open the user's private
/// directories, which root of the namespace cannot.
pub fn child_mapped(ready: &mut Sync, go: &mut Sync) -> Result<()> {
    ready.close_read();
    go.close_write();
    unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare(CLONE_NEWUSER)".into())?;
    ready.signal().ctx(|| "signal parent".into())?;
    if !go.wait() {
        return Err(Error::Setup(
            "the parent did not map the user namespace".into(),
        ));
    }
    Ok(())
}

/// setresgid/setresuid(0) and an empty group list, inside a mapped user namespace.
pub fn become_root() -> Result<()> {
    nix::unistd::setgroups(&[]).ctx(|| "setgroups([])".into())?;
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .ctx(|| "setresgid(0)".into())?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .ctx(|| "setresuid(0)".into())?;
    Ok(())
}

/// Run `f` as root of a new user namespace mapping `ids` (see [`Ids`]), in a forked child.
/// Paths outside what root there owns — the user's data directory is private to the user —
/// are reached through descriptors the caller opened before ([`crate::beneath::Dir`]), which
/// the child inherits. An error of `f` comes back as this call's error. The calling process
/// must be single-threaded (it forks).
pub fn run_as_root<F>(maps: &IdMaps, ids: Ids, f: F) -> Result<()>
where
    F: FnOnce() -> Result<()>,
{
    let (mut ready, mut go) = (Sync::new()?, Sync::new()?);
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    // SAFETY: the caller is single-threaded (documented); the child only runs our code and
    // exits with _exit.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(err_r);
            // Die with lxr: a half-built or half-removed tree must not keep changing behind
            // a `lxr delete` that cleans up after a killed `lxr launch`.
            // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            if nix::unistd::getppid().as_raw() == 1 {
                // SAFETY: the parent is already gone; end at once.
                unsafe { libc::_exit(1) }
            }
            // What the child makes is the container's content: the usual modes, not lxr's 077.
            // SAFETY: umask has no preconditions.
            unsafe { libc::umask(0o022) };
            // The programs it runs read hostile archives: a new session (no controlling
            // terminal to type into) and nothing to read from the user's terminal.
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::File::open("/dev/null") {
                // SAFETY: dup2 onto this process's stdin.
                unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) };
            }
            let r = child_enter(&mut ready, &mut go).and_then(|()| f());
            let code = match r {
                Ok(()) => 0,
                Err(e) => {
                    let _ = std::fs::File::from(err_w).write_all(e.to_string().as_bytes());
                    1
                }
            };
            // SAFETY: ends the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(err_w);
            ready.close_write();
            go.close_read();
            let pid = child.as_raw() as u32;
            let mapped = if ready.wait() {
                maps.apply(pid, ids)
            } else {
                Err(Error::Setup(
                    "the child could not create a user namespace".into(),
                ))
            };
            if mapped.is_ok() {
                let _ = go.signal();
            } else {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            }
            let status = waitpid(child, None).ctx(|| "waitpid".into())?;
            mapped?;
            let msg = read_all(err_r);
            if !msg.is_empty() {
                return Err(Error::from_child(&msg));
            }
            match status {
                WaitStatus::Exited(_, 0) => Ok(()),
                other => Err(Error::Setup(format!("the helper process ended: {other:?}"))),
            }
        }
    }
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut s);
    s
}

/// Remove `path` (a tree with files owned by the container's ids, in a directory of the
/// user's) as root of a namespace that maps both. A missing path is not an error. The
/// removal never follows a symlink (`std::fs::remove_dir_all` works on descriptors).
pub fn remove_as_root(maps: &IdMaps, path: &std::path::Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    run_as_root(maps, Ids::WithUser, || {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("remove {}", path.display()))
            }
            _ => Ok(()),
        }
    })
}
