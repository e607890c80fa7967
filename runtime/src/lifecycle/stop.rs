//! Stopping: the init's own halt signal (SIGRTMIN+3 for systemd, SIGUSR1 for busybox init),
//! then, after a timeout (at once with `--force`), the kill: cgroup2's `cgroup.kill` where the
//! container has a cgroup2 cgroup and the kernel the file (5.14), which kills the whole tree
//! with no race against forks; else SIGKILL to the init, whose pid namespace the kernel then
//! empties. Then the monitor removes the cgroups and the state. Restart is stop then start
//! under the container's lock.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::Containers;
use crate::container::State;
use crate::error::{Error, Result};
use crate::launch::boot::InitKind;
use crate::lock::Lock;

/// How to stop.
#[derive(Debug, Clone, Copy)]
pub struct Halt {
    /// SIGKILL at once.
    pub force: bool,
    /// How long a clean halt may take before SIGKILL; [`Halt::FOREVER`] waits as long as it
    /// takes (`stop --timeout -1`).
    pub timeout: Duration,
}

impl Halt {
    /// No timeout: wait for the clean halt however long it takes.
    pub const FOREVER: Duration = Duration::MAX;
}

/// The signal that halts the container's init.
fn halt_signal(kind: InitKind) -> libc::c_int {
    match kind {
        InitKind::Systemd => libc::SIGRTMIN() + 3,
        InitKind::Other => libc::SIGUSR1,
    }
}

/// Wait up to `timeout` for the process to exit; [`Halt::FOREVER`] for as long as it takes (a
/// single poll is bounded to ~24 days, and a signal could end it early).
fn wait_exit(p: &cgroups::process::Pidfd, timeout: Duration) -> bool {
    if timeout != Halt::FOREVER {
        return p.wait_exit(timeout);
    }
    loop {
        if p.wait_exit(timeout) {
            return true;
        }
        if !p.alive() {
            return true;
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) -> Result<()> {
    let fd = cgroups::process::Pidfd::open(pid).map_err(|e| Error::Os {
        what: format!("open pid {pid}"),
        source: e,
    })?;
    fd.send_signal(sig).map_err(|e| Error::Os {
        what: format!("signal {pid}"),
        source: e,
    })?;
    Ok(())
}

impl Containers {
    /// Stop `name`; returns when its init is gone and its monitor has cleaned up (and, for an
    /// ephemeral container, when it is deleted).
    pub fn stop(&self, name: &str, how: Halt) -> Result<()> {
        // `no container X` and `X is not running` are two answers, the same for every verb.
        self.existing(name)?;
        self.halt(name, how)?;
        // The monitor deletes an ephemeral container; one that was killed did not.
        self.reap_ephemeral(name, crate::lock::WAIT)?;
        Ok(())
    }

    /// Stop `name`, nothing more: callers that hold its lock (`delete`, `restart`,
    /// `publish --force`).
    pub(super) fn halt(&self, name: &str, how: Halt) -> Result<()> {
        crate::container::check_name(name)?;
        let dir = self.paths.state(name);
        let Some(s) = State::load(&dir)? else {
            State::reap_stale(&dir, &self.cgm)?;
            return Err(Error::Usage(format!("{name} is not running")));
        };
        let sig = halt_signal(self.init_kind(name));
        // Tell the monitor this exit is a stop, so a SIGHUP-style end is not taken for a reboot.
        let _ = std::fs::write(dir.join("stopping"), b"");
        let init = cgroups::process::Pidfd::open(s.init_pid).map_err(|e| Error::Os {
            what: format!("open pid {}", s.init_pid),
            source: e,
        })?;
        let monitor = s
            .monitor_alive()
            .then(|| cgroups::process::Pidfd::open(s.monitor_pid).ok())
            .flatten();
        self.thaw_for_stop(&s)?;
        if !how.force {
            signal(s.init_pid, sig)?;
        }
        if how.force || !wait_exit(&init, how.timeout) {
            self.kill(&s)?;
            if !init.wait_exit(Duration::from_secs(10)) {
                return Err(Error::Setup(format!("{name} did not stop")));
            }
        }
        // The monitor then removes the cgroups and the state, and exits: wait for that too, so
        // nothing of the container is left when stop returns.
        if let Some(m) = monitor {
            m.wait_exit(Duration::from_secs(5));
        }
        // A monitor that was killed cleaned nothing up: do it here.
        State::reap_stale(&dir, &self.cgm)?;
        Ok(())
    }

    /// The forceful part of a stop: `cgroup.kill` (see the module), else SIGKILL to the init.
    fn kill(&self, s: &State) -> Result<()> {
        match self.cgm.kill(&s.cgroup) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            // cgmanager gone, or the write refused: the signal still works.
            Err(e) => tracing::debug!("cgroup.kill failed ({e}); SIGKILL to the init"),
        }
        tracing::debug!("SIGKILL to the init, pid {}", s.init_pid);
        signal(s.init_pid, Signal::SIGKILL as libc::c_int)
    }

    /// Stop `name`, then start it again.
    pub fn restart(&self, name: &str, how: Halt) -> Result<State> {
        // Before the lock, which makes lxr's directories.
        self.existing(name)?;
        let lock = Lock::container(&self.paths, name)?;
        // Not an ephemeral container's end: it starts again.
        self.keep_across_stop(name);
        self.halt(name, how)?;
        self.start_locked(name, &lock)
    }
}
