//! `lxr exec NAME [-t|-T] [--env K=V]… [--cwd DIR] -- CMD…`: join every namespace of the
//! container's init (through its pidfd, atomically), become the container's root, run the
//! command and pass its exit code through. The command is connected to the user's stdio
//! through a pty or pipes ([`crate::relay`]), never given the user's own descriptors.

use std::ffi::CString;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::container::{check_name, State};
use crate::error::{Context, Error, Result};
use crate::paths::Paths;
use crate::relay::{self, Streams};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Extra environment, KEY=VALUE.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Give the command a terminal (the default when stdin, stdout or stderr is one).
    #[arg(short = 't', long = "force-interactive", visible_alias = "tty")]
    tty: bool,
    /// Never give the command a terminal: connect it through pipes.
    #[arg(short = 'T', long = "force-noninteractive", conflicts_with = "tty")]
    no_tty: bool,
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
    // lxr exec goes into the container's namespaces itself: it keeps nothing it was started
    // with but its stdio.
    crate::fds::keep_only(&[]);
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
    // From the join on, lxr (and the command until it execs) holds the user's descriptors
    // inside the container's namespaces: not dumpable, nothing there may look at them.
    crate::fds::not_dumpable()?;
    setns(&pidfd, flags).ctx(|| format!("join the namespaces of {}", a.name))?;
    crate::userns::become_root()?;
    let mut env = vec![
        "container=lxc".to_string(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "HOME=/root".into(),
        format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
        ),
    ];
    env.extend(a.env.iter().cloned());
    let (argv, envp) = (cstrings(&a.cmd)?, cstrings(&env)?);
    // A pty comes from the container's own devpts (we are in its mount namespace now).
    let streams = Streams::new(relay::mode(a.tty, a.no_tty), std::path::Path::new("/"))?;
    // SAFETY: lxr is single-threaded; the child execs or _exits.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            if let Err(e) = streams.into_child() {
                eprintln!("lxr: {e}");
                // SAFETY: end the child.
                unsafe { libc::_exit(126) }
            }
            if nix::unistd::chdir(a.cwd.as_str()).is_err() {
                let _ = nix::unistd::chdir("/");
            }
            if let Err(e) =
                crate::launch::seccomp::install().and_then(|()| crate::launch::before_exec())
            {
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
            let relayed = cgroups::process::Pidfd::open(child.as_raw() as u32)
                .map_err(|e| Error::Os {
                    what: "open the command's pidfd".into(),
                    source: e,
                })
                .and_then(|fd| streams.relay(&fd));
            let code = wait(child);
            relayed?;
            code
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
