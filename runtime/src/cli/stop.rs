//! `lxr stop [--force] [--timeout N] NAME`: the init's own halt signal (SIGRTMIN+3 for systemd,
//! SIGUSR1 for busybox), then SIGKILL after the timeout.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::container::{check_name, State};
use crate::error::{Error, Result};
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    pub(crate) name: String,
    /// Kill at once.
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Seconds to wait for a clean halt before killing.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
}

/// The signal that halts the container's init: SIGRTMIN+3 for systemd, SIGUSR1 for busybox.
fn halt_signal(rootfs: &std::path::Path) -> libc::c_int {
    match crate::launch::boot::init_kind(rootfs) {
        crate::launch::boot::InitKind::Systemd => libc::SIGRTMIN() + 3,
        crate::launch::boot::InitKind::Other => libc::SIGUSR1,
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

/// Stop `name`; returns when its init is gone.
pub fn stop(paths: &Paths, name: &str, force: bool, timeout: Duration) -> Result<()> {
    check_name(name)?;
    let dir = paths.state(name);
    let Some(s) = State::load(&dir)? else {
        State::reap_stale(&dir)?;
        return Err(Error::Usage(format!("{name} is not running")));
    };
    let sig = if force {
        Signal::SIGKILL as libc::c_int
    } else {
        halt_signal(&paths.container(name).join("rootfs"))
    };
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
    signal(s.init_pid, sig)?;
    if !init.wait_exit(timeout) {
        if force {
            return Err(Error::Setup(format!("{name} did not stop")));
        }
        signal(s.init_pid, Signal::SIGKILL as libc::c_int)?;
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
    State::reap_stale(&dir)?;
    Ok(())
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    stop(paths, &a.name, a.force, Duration::from_secs(a.timeout))?;
    Ok(0)
}
