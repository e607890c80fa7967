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
    /// Extra environment, KEY=VALUE (over the defaults: `PATH`, `HOME`, `USER`, `LANG`,
    /// `TERM`).
    pub env: Vec<String>,
    /// Working directory inside the container; `None`: the user's home (`/root` for root),
    /// `/` if that does not exist. A given directory that does not exist (or cannot be
    /// entered by the user) is an error, as in Incus.
    pub cwd: Option<String>,
    /// The container's uid to run as (0: root).
    pub user: u32,
    /// The container's gid to run as (0).
    pub group: u32,
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
            self.existing(name)?;
            return Err(Error::Usage(format!(
                "{name} is not running (lxr start {name})"
            )));
        };
        // Its helper would freeze on entering the cgroups, and lxr would wait for it forever
        // (with the signals it passes on blocked, not even a Ctrl-C would end that).
        if self.frozen(&s) {
            return Err(Error::Usage(format!(
                "{name} is frozen (lxr unfreeze {name})"
            )));
        }
        let init = cgroups::process::Pidfd::open(s.init_pid).map_err(|e| Error::Os {
            what: format!("open the init of {name}"),
            source: e,
        })?;
        let (chan, helper_end) = channel::pair()?;
        let signals = relay::Signals::block(what.mode)?;
        // SAFETY: lxr is single-threaded here (documented); the helper _exits.
        let helper = match unsafe { fork() }.ctx(|| "fork".into())? {
            ForkResult::Child => {
                signals.restore_in_child();
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
        let result = self.relay_for(name, &s, helper, what, &chan, &signals);
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
        signals: &relay::Signals,
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
                Some((Msg::Failed(why), _)) => return Err(helper_error(&why)),
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
                    ends.relay(&command, signals)?;
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
    crate::fds::null_stdio()?;
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
    let env = environment(a, &passwd_entry(a.user));
    let home = env
        .iter()
        .find_map(|e| e.strip_prefix("HOME="))
        .unwrap_or("/")
        .to_string();
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
            // The filter first: installing one needs root's capabilities, which `--user`
            // gives up.
            if let Err(e) = crate::launch::seccomp::install()
                .and_then(|()| become_user(a))
                .and_then(|()| die_with_the_helper())
                .and_then(|()| enter_cwd(a, &home))
                .and_then(|()| crate::launch::before_exec())
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

/// What a helper that enters a running container reported: the container is set up already,
/// so not "container setup failed" but the helper's own words.
pub(super) fn helper_error(why: &str) -> Error {
    match Error::from_child(why) {
        Error::Setup(m) => Error::Usage(m),
        e => e,
    }
}

/// The defaults Incus gives a command, then the user's `--env` over them: `PATH`, `LANG`
/// (`C.UTF-8`), `TERM` (lxr's, `xterm` without one), `HOME` and `USER` (from the container's
/// `/etc/passwd` entry of the uid; `/root` and `root` for root without one).
fn environment(a: &Exec, pw: &Option<(String, String)>) -> Vec<String> {
    let mut env = vec![
        "container=lxc".to_string(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "LANG=C.UTF-8".into(),
        format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
        ),
    ];
    match (pw, a.user) {
        (Some((name, home)), _) => {
            env.push(format!("HOME={home}"));
            env.push(format!("USER={name}"));
        }
        (None, 0) => env.extend(["HOME=/root".to_string(), "USER=root".into()]),
        (None, _) => {}
    }
    for e in &a.env {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(e.clone());
    }
    env
}

/// The container's `/etc/passwd` entry of `uid`: its name and home. The file is the
/// container's (its root writes it): read only if it is a regular file, at most 1 MiB, and
/// only ever parsed.
fn passwd_entry(uid: u32) -> Option<(String, String)> {
    parse_passwd(&read_small("/etc/passwd", 1 << 20)?, uid)
}

/// The name and home of `uid` in passwd `text`.
fn parse_passwd(text: &str, uid: u32) -> Option<(String, String)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        // A NUL would make the environment unusable: such an entry counts as none.
        (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid) && !l.contains('\0'))
            .then(|| (f[0].to_string(), f[5].to_string()))
    })
}

/// A regular file of the container, up to `limit` bytes (a FIFO does not block: `O_NONBLOCK`).
fn read_small(path: &str, limit: u64) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut out = String::new();
    f.take(limit).read_to_string(&mut out).ok()?;
    Some(out)
}

/// Become `--user`/`--group` (no supplementary groups), in the command's process. An id the
/// container's user namespace does not map is refused by the kernel (`EINVAL`).
fn become_user(a: &Exec) -> Result<()> {
    if a.user == 0 && a.group == 0 {
        return Ok(());
    }
    let unmapped = |what: &'static str, id: u32| {
        move |e: nix::Error| {
            if e == nix::errno::Errno::EINVAL {
                Error::Usage(format!(
                    "{what} {id} does not exist in the container (it maps ids 0-65535)"
                ))
            } else {
                Error::from_nix(&format!("become {what} {id}"), e)
            }
        }
    };
    let (u, g) = (
        nix::unistd::Uid::from_raw(a.user),
        nix::unistd::Gid::from_raw(a.group),
    );
    if a.mode == relay::Mode::Pty {
        // The command's terminal is its own, as after a login (the pty was opened as root).
        // Best effort: an unmapped id fails just below, with its message.
        let _ = nix::unistd::fchown(std::io::stdin().as_fd(), Some(u), Some(g));
    }
    nix::unistd::setgroups(&[]).map_err(|e| Error::from_nix("setgroups", e))?;
    nix::unistd::setresgid(g, g, g).map_err(unmapped("group", a.group))?;
    nix::unistd::setresuid(u, u, u).map_err(unmapped("user", a.user))
}

/// The command dies with its helper. The helper lives until the command ends, unless lxr
/// kills it (its relay failed): the command would then run on in the container with nobody
/// relaying. After [`become_user`], which clears the setting; not across a set-id program's
/// exec (the kernel clears it then).
fn die_with_the_helper() -> Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| Error::from_nix("PR_SET_PDEATHSIG", e))?;
    // The helper is outside the container's pid namespace, where getppid() says 0; a reaper
    // inside means it is already gone.
    if nix::unistd::getppid().as_raw() != 0 {
        return Err(Error::Setup("lxr exec's helper is gone".into()));
    }
    Ok(())
}

/// `--cwd` (which must exist), else the home directory, else `/`. Resolved in the
/// container's mount namespace, as the command's user: a symlink there leads where it leads
/// in the container, never out of it.
fn enter_cwd(a: &Exec, home: &str) -> Result<()> {
    match &a.cwd {
        Some(dir) => nix::unistd::chdir(dir.as_str()).map_err(|e| {
            Error::Usage(format!(
                "--cwd {dir}: cannot enter that directory in the container: {}",
                e.desc()
            ))
        }),
        None => {
            if nix::unistd::chdir(home).is_err() {
                let _ = nix::unistd::chdir("/");
            }
            Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn exec(user: u32, env: &[&str]) -> Exec {
        Exec {
            cmd: vec!["true".into()],
            env: env.iter().map(|e| e.to_string()).collect(),
            cwd: None,
            user,
            group: 0,
            mode: relay::Mode::Pipes,
        }
    }

    #[test]
    fn the_environment_is_incus_defaults_under_the_users_env() {
        let pw = "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\nbad:x:7:7::/a\0b:/bin/sh\n";
        assert_eq!(parse_passwd(pw, 1000), Some(("u".into(), "/home/u".into())));
        assert_eq!(parse_passwd(pw, 7), None);
        assert_eq!(parse_passwd(pw, 5), None);
        let env = environment(
            &exec(1000, &["LANG=de_DE.UTF-8", "X=1"]),
            &parse_passwd(pw, 1000),
        );
        for want in [
            "HOME=/home/u",
            "USER=u",
            "LANG=de_DE.UTF-8",
            "X=1",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ] {
            assert!(env.iter().any(|e| e == want), "{want}: {env:?}");
        }
        assert_eq!(env.iter().filter(|e| e.starts_with("LANG=")).count(), 1);
        // Root without an entry: /root; another uid without one: no HOME at all.
        let env = environment(&exec(0, &[]), &None);
        assert!(env.iter().any(|e| e == "HOME=/root") && env.iter().any(|e| e == "USER=root"));
        let env = environment(&exec(5, &[]), &None);
        assert!(!env.iter().any(|e| e.starts_with("HOME=")));
    }
}
