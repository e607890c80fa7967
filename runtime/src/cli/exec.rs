//! `lxr exec NAME [--env K=V]… [--cwd DIR] -- CMD…`: join every namespace of the container's
//! init (through its pidfd, atomically), become the container's root, run the command and pass
//! its exit code through.

use std::ffi::CString;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::container::{check_name, State};
use crate::error::{Context, Error, Result};
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Extra environment, KEY=VALUE.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Give the command a terminal (the default when standard input is one).
    #[arg(short = 't', long = "tty")]
    tty: bool,
    /// Working directory inside the container.
    #[arg(long, default_value = "/root")]
    cwd: String,
    /// The command.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| Error::Usage(format!("NUL in {s:?}"))))
        .collect()
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    check_name(&a.name)?;
    let Some(s) = State::load(&paths.state(&a.name))? else {
        return Err(Error::Usage(format!(
            "{} is not running (lxr start {})",
            a.name, a.name
        )));
    };
    if !s.cgroup.cgroups.is_empty() {
        // Join the container's cgroup first, while still the user (the daemon checks that).
        crate::cgroup::enter(&a.name, std::process::id())?;
    }
    let pidfd = cgroups::process::Pidfd::open(s.init_pid).map_err(|e| Error::Os {
        what: format!("open the init of {}", a.name),
        source: e,
    })?;
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    setns(&pidfd, flags).ctx(|| format!("join the namespaces of {}", a.name))?;
    crate::userns::become_root()?;
    let mut env = vec![
        "container=lxr".to_string(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "HOME=/root".into(),
        format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
        ),
    ];
    env.extend(a.env.iter().cloned());
    let (argv, envp) = (cstrings(&a.cmd)?, cstrings(&env)?);
    // A terminal from the container's own devpts (we are in its mount namespace now).
    let pty = if a.tty || super::term::stdin_is_tty() {
        Some(crate::launch::console::open_pty(std::path::Path::new("/"))?)
    } else {
        None
    };
    // SAFETY: lxr is single-threaded; the child execs or _exits.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            if let Some((master, slave)) = pty {
                drop(master);
                if let Err(e) = take_tty(&slave) {
                    eprintln!("lxr: {e}");
                    // SAFETY: end the child.
                    unsafe { libc::_exit(126) }
                }
            }
            if nix::unistd::chdir(a.cwd.as_str()).is_err() {
                let _ = nix::unistd::chdir("/");
            }
            if let Err(e) = crate::launch::seccomp::install() {
                eprintln!("lxr: {e}");
                // SAFETY: end the child; nothing runs unfiltered.
                unsafe { libc::_exit(126) }
            }
            let e = nix::unistd::execvpe(&argv[0], &argv, &envp);
            eprintln!(
                "lxr: exec {}: {}",
                a.cmd[0],
                e.map(|_| ()).err().map(|e| e.desc()).unwrap_or("")
            );
            // SAFETY: end the child after a failed exec.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            if let Some((master, _)) = pty {
                relay(master)?;
            }
            wait(child)
        }
    }
}

/// The command's exit code (128 + signal if killed).
fn wait(child: nix::unistd::Pid) -> Result<i32> {
    Ok(match waitpid(child, None).ctx(|| "wait".into())? {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    })
}

/// In the child: a new session with the pty as controlling terminal and stdio.
fn take_tty(slave: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave)
        .ctx(|| format!("open {}", slave.display()))?;
    // SAFETY: TIOCSCTTY takes an int; dup2 onto our standard descriptors.
    unsafe {
        if libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) != 0 {
            return Err(Error::Os {
                what: "set the controlling terminal".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        for t in 0..3 {
            libc::dup2(fd.as_raw_fd(), t);
        }
    }
    Ok(())
}

/// In lxr: the user's terminal (raw, same size) ↔ the pty, until the command's side closes.
/// One thread with poll(2): after joining a pid namespace, lxr may not start threads.
fn relay(master: std::os::fd::OwnedFd) -> Result<()> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let _raw = super::term::raw()?;
    // SAFETY: TIOCGWINSZ fills the winsize we own; TIOCSWINSZ reads it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
    let mut m = std::fs::File::from(master);
    let mut out = std::io::stdout();
    let mut stdin_open = true;
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: m.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Os {
                what: "poll".into(),
                source: e,
            });
        }
        if fds[0].revents != 0 {
            // EIO (or 0) once the last holder of the terminal's other side is gone.
            match m.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                _ => return Ok(()),
            }
        }
        if fds[1].revents != 0 {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = m.write_all(&buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
    }
}
