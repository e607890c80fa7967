//! Handing the live FUSE connection from one daemon generation to the next.
//!
//! The `/dev/fuse` fd *is* the mount's connection: while any process holds it, the mount
//! stays (same device number) and requests queue up. Three ways it reaches a new generation:
//!
//! * **Live upgrade** (SIGUSR1): the daemon execs the binary now on disk at the path it was
//!   started from, with the fd (and the locked pidfile's fd) left open across the exec and
//!   named in the environment ([`FUSE_FD_ENV`], [`PIDFILE_FD_ENV`]).
//! * **Supervisor** (`--supervise`, [`crate::supervisor`]): a small parent mounts and holds
//!   the fd, and starts serving children with it ([`SUPERVISED_ENV`]); one that dies is
//!   replaced.
//! * **systemd's fd store**: the daemon stores the fd (`FDSTORE=1`, name `fuse`); after a
//!   crash systemd passes it back (`LISTEN_FDS`).
//!
//! Whatever the way, the successor asks the kernel to resend the requests its predecessor had
//! read but not answered (`FUSE_NOTIFY_RESEND`, Linux ≥ 6.9), so a reader blocked in the
//! kernel gets its answer from the successor. Where the kernel cannot resend, a live upgrade
//! drains the requests in flight before the exec, and every way passes the request journal
//! ([`crate::journal`]: a memfd, `journal` in systemd's fd store) from which the successor
//! of a crashed server replays what it had not answered. The first two ways also pass the
//! SIGUSR2 switch's memfd ([`crate::switch`]), so virtualisation stays as the admin left it.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::stat::{major, minor};

use crate::journal::{FDSTORE_NAME as JOURNAL_FDSTORE_NAME, JOURNAL_FD_ENV};

/// The FUSE connection's fd, for a successor.
pub const FUSE_FD_ENV: &str = "LXCFS_FUSE_FD";
/// The locked pidfile's fd, for a successor (the lock is never dropped across an upgrade).
pub const PIDFILE_FD_ENV: &str = "LXCFS_PIDFILE_FD";
/// Set for a server started by the supervisor: it owns neither the mount nor the pidfile.
pub const SUPERVISED_ENV: &str = "LXCFS_SUPERVISED";
/// How many generations have served this mount (1 = the one that mounted it).
pub const GENERATION_ENV: &str = "LXCFS_GENERATION";
/// The name of the fd in systemd's fd store.
pub const FDSTORE_NAME: &str = "fuse";

/// What a daemon generation got from its predecessor.
#[derive(Debug)]
pub struct Inherited {
    /// The live `/dev/fuse` connection.
    pub fuse: File,
    /// The pidfile, still locked.
    pub pidfile: Option<File>,
    /// The request journal (`crate::journal`), if the predecessor kept one.
    pub journal: Option<File>,
    /// This generation's number.
    pub generation: u64,
    /// Where it came from, for the log.
    pub from: &'static str,
}

/// The environment of this start: supervised or not, and any inherited connection (from a
/// predecessor's exec, the supervisor, or systemd's fd store). Consumes the variables, so
/// processes the daemon starts do not see them. Call while single-threaded.
pub fn take() -> Result<(bool, Option<Inherited>), String> {
    let supervised = std::env::var_os(SUPERVISED_ENV).is_some();
    let generation = std::env::var(GENERATION_ENV)
        .ok()
        .and_then(|g| g.parse::<u64>().ok())
        .unwrap_or(1);
    let fuse_fd = std::env::var(FUSE_FD_ENV).ok();
    let pid_fd = std::env::var(PIDFILE_FD_ENV).ok();
    let journal_fd = std::env::var(JOURNAL_FD_ENV).ok();
    for v in [
        SUPERVISED_ENV,
        GENERATION_ENV,
        FUSE_FD_ENV,
        PIDFILE_FD_ENV,
        JOURNAL_FD_ENV,
    ] {
        std::env::remove_var(v);
    }
    let mut systemd = sdnotify::listen_fds();
    if let Some(fd) = fuse_fd {
        let fuse = adopt_fd(&fd, FUSE_FD_ENV)?;
        check_fuse(&fuse)?;
        let pidfile = pid_fd.map(|p| adopt_fd(&p, PIDFILE_FD_ENV)).transpose()?;
        // A bad journal only costs the replay after a crash.
        let journal = journal_fd.and_then(|j| {
            adopt_fd(&j, JOURNAL_FD_ENV)
                .map_err(|e| tracing::warn!("{e}; no request journal"))
                .ok()
        });
        let from = if supervised {
            "supervisor"
        } else {
            "predecessor"
        };
        return Ok((
            supervised,
            Some(Inherited {
                fuse,
                pidfile,
                journal,
                generation,
                from,
            }),
        ));
    }
    let journal = systemd
        .iter()
        .position(|(name, _)| name == JOURNAL_FDSTORE_NAME)
        .map(|i| File::from(systemd.swap_remove(i).1));
    for (name, fd) in systemd {
        if name == FDSTORE_NAME {
            let fuse = File::from(fd);
            check_fuse(&fuse)?;
            return Ok((
                supervised,
                Some(Inherited {
                    fuse,
                    pidfile: None,
                    journal,
                    generation: 2,
                    from: "systemd's fd store",
                }),
            ));
        }
    }
    Ok((supervised, None))
}

/// The SIGUSR2 switch a predecessor or the supervisor shares with us, if any. Consumes the
/// variable; call while single-threaded. A bad value only costs the inherited state.
pub fn take_switch() -> Option<File> {
    let value = std::env::var(crate::switch::SWITCH_FD_ENV).ok()?;
    std::env::remove_var(crate::switch::SWITCH_FD_ENV);
    match adopt_fd(&value, crate::switch::SWITCH_FD_ENV) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("{e}; starting with virtualisation on");
            None
        }
    }
}

fn adopt_fd(value: &str, var: &str) -> Result<File, String> {
    let fd: RawFd = value
        .parse()
        .map_err(|_| format!("{var}={value}: not a file descriptor number"))?;
    // F_GETFD tells whether the number is an open fd at all before we own it.
    fcntl(
        // SAFETY: only borrowed for this call; ownership is taken below once it is known open.
        unsafe { BorrowedFd::borrow_raw(fd) },
        FcntlArg::F_GETFD,
    )
    .map_err(|e| format!("{var}={fd}: {e}"))?;
    // SAFETY: the predecessor left this fd open for us and nothing else in this process
    // owns it (the variable is consumed).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    Ok(File::from(owned))
}

/// Refuse an fd that is not a `/dev/fuse` connection (character device 10:229).
fn check_fuse(f: &File) -> Result<(), String> {
    let md = f.metadata().map_err(|e| format!("inherited fd: {e}"))?;
    let rdev = md.rdev();
    if !md.file_type().is_char_device() || (major(rdev), minor(rdev)) != (10, 229) {
        return Err("the inherited fd is not a /dev/fuse connection".into());
    }
    Ok(())
}

/// The binary to exec for an upgrade: the path this process was started from, as it is on
/// disk *now* (a package upgrade replaces the file; `/proc/self/exe` would still be the old).
pub fn own_path() -> Option<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let s = exe.as_os_str().as_bytes();
    Some(match s.strip_suffix(b" (deleted)") {
        Some(p) => PathBuf::from(std::ffi::OsStr::from_bytes(p)),
        None => exe,
    })
}

/// Check that `exe` is an lxcfs that runs (`exe --version`) before betting the live
/// connection on it: a successor that cannot even start would take the mount down with it
/// (unless a supervisor or systemd's fd store holds the connection too).
pub fn preflight(exe: &Path) -> Result<(), String> {
    let mut child = std::process::Command::new(exe)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{} does not run: {e}", exe.display()))?;
    let t = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if t.elapsed() < std::time::Duration::from_secs(5) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} --version did not finish", exe.display()));
            }
        }
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    if !status.success() || !out.starts_with("lxcfs") {
        return Err(format!(
            "{} --version: {status}, {:?}: not an lxcfs binary",
            exe.display(),
            out.trim()
        ));
    }
    Ok(())
}

/// What a generation hands to its successor, besides the connection.
#[derive(Debug, Clone, Copy)]
pub struct Handed<'a> {
    /// The locked pidfile (none for a supervised server).
    pub pidfile: Option<BorrowedFd<'a>>,
    /// The SIGUSR2 switch's memfd.
    pub switch: Option<BorrowedFd<'a>>,
    /// The request journal's memfd.
    pub journal: Option<BorrowedFd<'a>>,
    /// The io_uring buffers' memfd (`crate::fuse_adapter::uring`), if serving over io_uring.
    pub uring: Option<BorrowedFd<'a>>,
}

/// Exec `exe` with this process's arguments, handing over `fuse` and the rest (`handed`).
/// Returns only on failure (the fds are then close-on-exec again and the caller keeps
/// serving).
pub fn exec_successor(
    exe: &Path,
    fuse: BorrowedFd<'_>,
    handed: Handed<'_>,
    supervised: bool,
    generation: u64,
) -> std::io::Error {
    let Handed {
        pidfile,
        switch,
        journal,
        uring,
    } = handed;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let keep = |fd: BorrowedFd<'_>, on: bool| {
        let flags = if on {
            FdFlag::empty()
        } else {
            FdFlag::FD_CLOEXEC
        };
        fcntl(fd, FcntlArg::F_SETFD(flags)).map(|_| ())
    };
    let fds: Vec<BorrowedFd<'_>> = std::iter::once(fuse)
        .chain(pidfile)
        .chain(switch)
        .chain(journal)
        .chain(uring)
        .collect();
    for fd in &fds {
        if let Err(e) = keep(*fd, true) {
            return std::io::Error::from(e);
        }
    }
    let number = |fd: BorrowedFd<'_>| fd.as_raw_fd().to_string();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args)
        .env(FUSE_FD_ENV, number(fuse))
        .env(GENERATION_ENV, (generation + 1).to_string());
    if let Some(p) = pidfile {
        cmd.env(PIDFILE_FD_ENV, number(p));
    }
    if let Some(v) = switch {
        cmd.env(crate::switch::SWITCH_FD_ENV, number(v));
    }
    if let Some(j) = journal {
        cmd.env(JOURNAL_FD_ENV, number(j));
    }
    if let Some(u) = uring {
        cmd.env(crate::fuse_adapter::uring::URING_FD_ENV, number(u));
    }
    if supervised {
        cmd.env(SUPERVISED_ENV, "1");
    }
    let err = std::os::unix::process::CommandExt::exec(&mut cmd);
    for fd in &fds {
        let _ = keep(*fd, false);
    }
    err
}
