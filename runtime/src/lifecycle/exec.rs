//! Running a command in a running container. lxr never enters it: a helper forked from lxr,
//! holding nothing of the user's (stdio `/dev/null`, no other descriptor but its channel), is
//! moved into the container's cgroups by cgmanager, joins every namespace of the init
//! (through its pidfd, atomically), becomes the container's root, makes the command's stdio
//! there (a pty of the container's devpts, or pipes) and forks the command. lxr relays between
//! the user's stdio and the command's ([`crate::relay`]); no container process ever holds a
//! descriptor of the user's, not even between a fork and a dup2. The command's exit code (128
//! + signal) is returned.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::Containers;
use crate::channel::{self, End, Msg};
use crate::container::State;
use crate::error::{Context, Error, Result};
use crate::relay;

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
    /// Run `what` in `name` and return its exit code. lxr stays on the host: a helper it forks
    /// — which keeps nothing of lxr's but a channel, its stdio `/dev/null` — is moved into the
    /// container's cgroups, joins its namespaces, becomes its root, makes the command's stdio
    /// there and forks the command; lxr relays between the user's stdio and the command's.
    /// Call it from a single-threaded process.
    pub fn exec(&self, name: &str, what: &Exec) -> Result<i32> {
        self.existing(name)?;
        // Nothing lxr was started with but its stdio lives on: what the helper could inherit,
        // lxr does not hold in the first place.
        crate::fds::keep_only(&[]);
        let Some(s) = State::load(&self.paths.state(name))? else {
            return Err(Error::Usage(format!(
                "{name} is not running (lxr start {name})"
            )));
        };
        let init = cgroups::process::Pidfd::open(s.init_pid).map_err(|e| Error::Os {
            what: format!("open the init of {name}"),
            source: e,
        })?;
        let (chan, helper_end) = channel::pair()?;
        // SAFETY: lxr is single-threaded here (documented); the helper _exits.
        let helper = match unsafe { fork() }.ctx(|| "fork".into())? {
            ForkResult::Child => {
                drop(chan);
                let code = match helper(&init, name, what, &helper_end) {
                    Ok(()) => 0,
                    Err(e) => {
                        helper_end.fail(&e);
                        1
                    }
                };
                crate::launch::exit_forked(code)
            }
            ForkResult::Parent { child } => child,
        };
        drop((helper_end, init));
        let result = self.relay_for(name, &s, helper, what, &chan);
        if result.is_err() {
            let _ = nix::sys::signal::kill(helper, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = waitpid(helper, None);
        result
    }

    /// lxr's side: the helper into the cgroups, the go, then its messages and the relay.
    fn relay_for(
        &self,
        name: &str,
        s: &State,
        helper: Pid,
        what: &Exec,
        chan: &End,
    ) -> Result<i32> {
        if !s.cgroup.cgroups.is_empty() {
            // Still the user's process: the daemon lets the user move it into the container.
            self.cgm.enter(name, helper.as_raw() as u32)?;
        }
        chan.send(&Msg::Go)?;
        let mut ends = None;
        loop {
            match chan.recv()? {
                None => return Err(Error::Setup("lxr exec's helper died".into())),
                Some((Msg::Failed(why), _)) => return Err(Error::from_child(&why)),
                Some((Msg::Stdio, fds)) => ends = Some(relay::Ends::from_fds(what.mode, fds)?),
                Some((Msg::Init(pid), _)) => {
                    let ends = ends
                        .take()
                        .ok_or_else(|| Error::Setup("the command has no stdio".into()))?;
                    // The helper reaps the command only after this go: until then the pid is
                    // the command's, even if it has already exited.
                    let command = cgroups::process::Pidfd::open(pid).map_err(|e| Error::Os {
                        what: "open the command's pidfd".into(),
                        source: e,
                    })?;
                    chan.send(&Msg::Go)?;
                    ends.relay(&command)?;
                }
                Some((Msg::Exited(code), _)) => return Ok(code),
                Some((m, _)) => return Err(Error::Setup(format!("lxr exec's helper said {m:?}"))),
            }
        }
    }
}

/// The helper, forked from lxr: it gives up everything of lxr's, waits to be moved into the
/// container's cgroups, joins the namespaces behind `init`, forks the command and reports its
/// stdio, its pid and its end.
fn helper(init: &cgroups::process::Pidfd, name: &str, a: &Exec, chan: &End) -> Result<()> {
    // Nothing of the user's comes along: stdio is the host's /dev/null, every other
    // descriptor but the channel and the init's pidfd is closed.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx(|| "open /dev/null".into())?;
    crate::fds::onto_stdio(&null, &null, &null).ctx(|| "dup2 onto stdio".into())?;
    drop(null);
    crate::fds::keep_only(&[chan.raw_fd(), init.as_fd().as_raw_fd()]);
    // In the container's namespaces, not dumpable: nothing there may look at this process.
    crate::fds::not_dumpable()?;
    if !chan.expect(&Msg::Go)? {
        return Err(Error::Setup("lxr went away".into()));
    }
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    setns(init, flags).ctx(|| format!("join the namespaces of {name}"))?;
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
    // A pty comes from the container's own devpts (the helper is in its mount namespace now).
    let (ends, command_ends) = relay::make(a.mode, std::path::Path::new("/"))?;
    chan.send_with(&Msg::Stdio, &ends.fds())?;
    drop(ends);
    // SAFETY: the helper is single-threaded; the child execs or _exits.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            if let Err(e) = command_ends.into_stdio() {
                chan.fail(&e);
                crate::launch::exit_forked(126)
            }
            if nix::unistd::chdir(a.cwd.as_str()).is_err() {
                let _ = nix::unistd::chdir("/");
            }
            if let Err(e) =
                crate::launch::seccomp::install().and_then(|()| crate::launch::before_exec())
            {
                chan.fail(&e);
                // Nothing runs unfiltered.
                crate::launch::exit_forked(126)
            }
            let e = nix::unistd::execvpe(&argv[0], &argv, &envp);
            // On the command's stderr, where the user sees it.
            eprintln!(
                "lxr: exec {}: {}",
                a.cmd[0],
                e.map(|_| ()).err().map(|e| e.desc()).unwrap_or("")
            );
            crate::launch::exit_forked(127)
        }
        ForkResult::Parent { child } => {
            drop(command_ends);
            chan.send(&Msg::Init(child.as_raw() as u32))?;
            // lxr opens the command's pidfd before the pid may be reaped (and reused).
            let _ = chan.expect(&Msg::Go);
            let code = wait(child)?;
            chan.send(&Msg::Exited(code))
        }
    }
}

/// The command's exit code (128 + signal if killed).
fn wait(child: Pid) -> Result<i32> {
    Ok(match waitpid(child, None).ctx(|| "wait".into())? {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    })
}
