//! Running code as root of a new user namespace that maps the user's subordinate ids: fork,
//! `unshare(CLONE_NEWUSER)` in the child, the parent writes the maps with the setuid helpers,
//! then the child becomes uid/gid 0 there. Used to unpack images (files get mapped owners)
//! and to remove container trees, and as the first step of a launch.

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Uid};

use crate::channel::{self, End, Msg};
use crate::error::{Context, Error, Result};
use crate::idmap::{IdMaps, Ids};

/// In a forked child: enter a new user namespace, have the parent map it, become root there.
/// [`Msg::Unshared`] is sent after unshare; [`Msg::Go`] is waited for before setuid.
pub fn child_enter(chan: &End) -> Result<()> {
    child_mapped(chan)?;
    become_root()
}

/// [`child_enter`] without the last step: the namespace is mapped, and this process, with every
/// capability in it, still has the user's credentials — it can still open the user's private
/// directories, which root of the namespace cannot.
pub fn child_mapped(chan: &End) -> Result<()> {
    unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare(CLONE_NEWUSER)".into())?;
    chan.send(&Msg::Unshared)?;
    if !chan.expect(&Msg::Go)? {
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
    run_in_userns(maps, ids, true, f)
}

/// [`run_as_root`] without the last step: `f` runs with every capability in the mapped
/// namespace but still with the user's own uid and gid ([`child_mapped`]), so it can still
/// reach the user's private directories by path (to open an overlay's layers before it
/// mounts them as the container's root, see [`crate::storage::overlay`]), and may call
/// [`become_root`] itself afterwards.
pub fn run_mapped<F>(maps: &IdMaps, ids: Ids, f: F) -> Result<()>
where
    F: FnOnce() -> Result<()>,
{
    run_in_userns(maps, ids, false, f)
}

fn run_in_userns<F>(maps: &IdMaps, ids: Ids, root: bool, f: F) -> Result<()>
where
    F: FnOnce() -> Result<()>,
{
    let (parent, child_end) = channel::pair()?;
    // SAFETY: the caller is single-threaded (documented); the child only runs our code and
    // exits with _exit.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(parent);
            // Die with lxr: a half-built or half-removed tree must not keep changing behind
            // a `lxr delete` that cleans up after a killed `lxr launch`.
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if nix::unistd::getppid().as_raw() == 1 {
                // The parent is already gone; end at once.
                exit_forked(1)
            }
            // What the child makes is the container's content: the usual modes, not lxr's 077.
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            // The programs it runs read hostile archives: a new session (no controlling
            // terminal to type into) and nothing to read from the user's terminal.
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(&null);
            }
            let entered = if root {
                child_enter(&child_end)
            } else {
                child_mapped(&child_end)
            };
            let code = match entered.and_then(|()| f()) {
                Ok(()) => 0,
                Err(e) => {
                    child_end.fail(&e);
                    1
                }
            };
            exit_forked(code)
        }
        ForkResult::Parent { child } => {
            drop(child_end);
            let pid = child.as_raw() as u32;
            let mapped = match parent.expect(&Msg::Unshared) {
                Ok(true) => maps.apply(pid, ids),
                Ok(false) => Err(Error::Setup(
                    "the child could not create a user namespace".into(),
                )),
                Err(e) => Err(e),
            };
            let mapped = mapped.and_then(|()| parent.send(&Msg::Go));
            if mapped.is_err() {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            }
            // Until the child is gone: its error, if it had one.
            let mut failed = None;
            while let Ok(Some((m, _))) = parent.recv() {
                if let Msg::Failed(why) = m {
                    failed.get_or_insert(why);
                }
            }
            let status = waitpid(child, None).ctx(|| "waitpid".into())?;
            mapped?;
            if let Some(why) = failed {
                return Err(Error::from_child(&why));
            }
            match status {
                WaitStatus::Exited(_, 0) => Ok(()),
                other => Err(Error::Setup(format!("the helper process ended: {other:?}"))),
            }
        }
    }
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

/// The end of a forked process that did not exec (the monitor, the intermediate, a failed
/// init or command, a helper): `_exit`, so neither the parent's atexit handlers nor its
/// buffered stdio run a second time in the copy.
pub fn exit_forked(code: i32) -> ! {
    // SAFETY: _exit takes an integer and ends the process; it has no precondition (it is
    // unsafe only as a foreign function, and std and nix have no safe `_exit`).
    unsafe { libc::_exit(code) }
}
