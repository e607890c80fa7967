//! Entering a running container: join every namespace of its init (through its pidfd,
//! atomically) after cgmanager moved this process into its cgroups, become the container's
//! root, and run a command there, connected to this process's stdio through a pty or pipes
//! ([`crate::relay`]) — never given the user's own descriptors. The command's exit code (128 +
//! signal) is returned.

use std::ffi::CString;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::Containers;
use crate::container::{check_name, State};
use crate::error::{Context, Error, Result};
use crate::relay::{self, Streams};

/// A command to run in a container.
#[derive(Debug, Clone)]
pub struct Exec {
    /// The program and its arguments.
    pub cmd: Vec<String>,
    /// Extra environment, KEY=VALUE.
    pub env: Vec<String>,
    /// Working directory inside the container (`/` if it does not exist).
    pub cwd: String,
    /// How its stdio is connected.
    pub mode: relay::Mode,
}

fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| Error::Usage(format!("NUL in {s:?}"))))
        .collect()
}

impl Containers {
    /// Run `what` in `name` and return its exit code. This process joins the container for
    /// good (it ends when the command does): call it last, from a single-threaded process.
    pub fn exec(&self, name: &str, what: &Exec) -> Result<i32> {
        check_name(name)?;
        // lxr exec goes into the container's namespaces itself: it keeps nothing it was
        // started with but its stdio.
        crate::fds::keep_only(&[]);
        let Some(s) = State::load(&self.paths.state(name))? else {
            return Err(Error::Usage(format!(
                "{name} is not running (lxr start {name})"
            )));
        };
        if !s.cgroup.cgroups.is_empty() {
            // Join the container's cgroup first, while still the user (the daemon checks that).
            self.cgm.enter(name, std::process::id())?;
        }
        let pidfd = cgroups::process::Pidfd::open(s.init_pid).map_err(|e| Error::Os {
            what: format!("open the init of {name}"),
            source: e,
        })?;
        enter_and_run(&pidfd, name, what)
    }
}

/// Join the namespaces behind `pidfd`, become root there, fork and relay the command.
fn enter_and_run(pidfd: &cgroups::process::Pidfd, name: &str, a: &Exec) -> Result<i32> {
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
    setns(pidfd, flags).ctx(|| format!("join the namespaces of {name}"))?;
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
    let streams = Streams::new(a.mode, std::path::Path::new("/"))?;
    // SAFETY: lxr is single-threaded; the child execs or _exits.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            if let Err(e) = streams.into_child() {
                eprintln!("lxr: {e}");
                crate::launch::exit_forked(126)
            }
            if nix::unistd::chdir(a.cwd.as_str()).is_err() {
                let _ = nix::unistd::chdir("/");
            }
            if let Err(e) =
                crate::launch::seccomp::install().and_then(|()| crate::launch::before_exec())
            {
                eprintln!("lxr: {e}");
                // Nothing runs unfiltered.
                crate::launch::exit_forked(126)
            }
            let e = nix::unistd::execvpe(&argv[0], &argv, &envp);
            eprintln!(
                "lxr: exec {}: {}",
                a.cmd[0],
                e.map(|_| ()).err().map(|e| e.desc()).unwrap_or("")
            );
            crate::launch::exit_forked(127)
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
