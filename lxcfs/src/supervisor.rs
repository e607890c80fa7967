//! `lxcfs --supervise`: for hosts without systemd's fd store. The supervisor mounts, holds the
//! `/dev/fuse` connection and the pidfile, and runs the serving daemon as its child (the same
//! binary, from its path on disk, with the connection inherited). When the child dies — a
//! crash, `kill -9`, an OOM kill — the mount stays and requests wait in the kernel; the
//! supervisor starts a new child, which asks the kernel to resend what the dead one had read.
//! A child that dies is restarted at once; if the new one dies young too, the delay grows
//! (100 ms, doubling to 10 s), so a broken binary does not spin. On kernels without
//! `FUSE_NOTIFY_RESEND` (before 6.9) the new child replays instead the requests the dead one
//! recorded in the journal ([`crate::journal`]), which the supervisor holds for it.
//!
//! Signals to the supervisor (the pid in the pidfile): SIGUSR1 is passed to the child, which
//! upgrades itself in place; SIGUSR2 toggles virtualisation — the switch is a memfd every
//! child inherits ([`crate::switch`]), so the running child follows at once and a restarted
//! one starts in the same state; SIGTERM/SIGINT/SIGQUIT stop the child and unmount; SIGHUP is
//! logged and ignored; SIGPIPE is ignored. Any signal that ends the *child* (SIGTERM sent to
//! it directly included) is a death like any other: a new child serves.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

use crate::cli::Cli;
use crate::error::StartError;
use crate::fuse_adapter::uring::{self, Mode as IoUringMode};
use crate::fuse_adapter::{prepare_mountpoint, HeldMount};
use crate::handover::{self, FUSE_FD_ENV, GENERATION_ENV, SUPERVISED_ENV};
use crate::journal::{Journal, JOURNAL_FD_ENV};
use crate::pidfile::PidFile;
use crate::switch::{Virtualisation, SWITCH_FD_ENV};

/// The first restart delay after a child that died young.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest restart delay.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// A child that served this long is "healthy": the next restart is immediate.
const HEALTHY: Duration = Duration::from_secs(5);

/// The delay before the next start, given the last one and how long the child lived.
pub fn next_delay(last: Option<Duration>, lived: Duration) -> Option<Duration> {
    if lived >= HEALTHY {
        return None;
    }
    Some(match last {
        None => Duration::ZERO,
        Some(d) if d.is_zero() => FIRST_DELAY,
        Some(d) => (d * 2).min(MAX_DELAY),
    })
}

/// Run the supervisor until SIGTERM, SIGINT or SIGQUIT.
pub fn run(cli: &Cli, signals: &SigSet) -> Result<(), StartError> {
    let exe = handover::own_path()
        .ok_or_else(|| StartError::new("cannot tell where the lxcfs binary is (/proc/self/exe)"))?;
    prepare_mountpoint(&cli.mountpoint)?;
    let _pid = PidFile::lock(&cli.pidfile)?;
    let mount = HeldMount::mount(&cli.mountpoint)
        .map_err(|e| StartError::new(format!("cannot mount {}: {e}", cli.mountpoint.display())))?;
    let fuse = mount.fuse_fd();
    let virt = Virtualisation::shared();
    // Held here, so that it outlives the children that write it.
    let journal = Journal::new();
    // The ring buffers of `--io-uring=on` children, held here for the same reason: a child's
    // successor answers what the killed one's entries hold (crate::fuse_adapter::uring).
    let uring = (cli.io_uring == IoUringMode::On)
        .then(|| {
            uring::empty_memfd()
                .map_err(|e| tracing::warn!("io_uring buffers: {e}"))
                .ok()
        })
        .flatten();
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--supervise")
        .collect();
    tracing::info!(
        "supervising {} (pid {}); serving with {}",
        cli.mountpoint.display(),
        std::process::id(),
        exe.display()
    );
    let mut delay: Option<Duration> = None;
    let mut generation = 0u64;
    let mut restarts = 0u64;
    let mut wait_for: Option<Duration> = None;
    loop {
        if let Some(d) = wait_for.take() {
            // Sleep, but keep handling signals (and stop on a stop signal) while waiting.
            let until = Instant::now() + d;
            let mut stop = false;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                if let Some(sig) = timed_wait(signals, left) {
                    if on_signal(sig, None, &virt) {
                        stop = true;
                        break;
                    }
                }
            }
            if stop {
                break;
            }
        }
        generation += 1;
        let shared = Shared {
            switch: virt.fd().map(|f| f.as_raw_fd()),
            journal: journal.as_ref().map(|j| j.fd().as_raw_fd()),
            uring: uring.as_ref().map(|u| u.as_raw_fd()),
        };
        let mut child = match start(&exe, &args, fuse, shared, generation) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot start {}: {e}", exe.display());
                delay = next_delay(delay, Duration::ZERO);
                wait_for = delay;
                continue;
            }
        };
        let started = Instant::now();
        let stop = loop {
            if let Some(sig) = timed_wait(signals, Duration::from_millis(500)) {
                if on_signal(sig, Some(&child), &virt) {
                    break true;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let lived = started.elapsed();
                restarts += 1;
                delay = next_delay(delay, lived);
                tracing::warn!(
                    "server (generation {generation}) exited after {lived:.1?}: {status}; restart {restarts} in {:?}",
                    delay.unwrap_or_default()
                );
                wait_for = delay;
                break false;
            }
        };
        if stop {
            stop_child(&mut child);
            break;
        }
    }
    tracing::info!("unmounting {}", cli.mountpoint.display());
    mount
        .unmount()
        .map_err(|e| StartError::new(format!("unmount {}: {e}", cli.mountpoint.display())))
}

/// Act on a signal the supervisor received while `child` (if any) serves; true to stop.
fn on_signal(sig: Signal, child: Option<&Child>, virt: &Virtualisation) -> bool {
    match sig {
        Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
            tracing::info!("{sig}: stopping");
            true
        }
        Signal::SIGUSR1 => {
            if let Some(c) = child {
                // Our own child, not yet reaped, so its pid is not reused.
                let _ = signal_child(c, Signal::SIGUSR1);
            } else {
                tracing::info!(
                    "SIGUSR1: no server running; the next one starts from the binary on disk"
                );
            }
            false
        }
        Signal::SIGUSR2 => {
            // The child reads the same memfd: no need to tell it.
            Virtualisation::log_toggled(virt.toggle());
            false
        }
        Signal::SIGHUP => {
            tracing::info!("SIGHUP: ignored (SIGUSR1 upgrades the server, SIGTERM stops)");
            false
        }
        _ => false,
    }
}

/// The memfds every child shares with the supervisor.
#[derive(Debug, Clone, Copy)]
struct Shared {
    /// The SIGUSR2 switch.
    switch: Option<i32>,
    /// The request journal.
    journal: Option<i32>,
    /// The io_uring buffers (`--io-uring=on`).
    uring: Option<i32>,
}

fn start(
    exe: &Path,
    args: &[std::ffi::OsString],
    fuse: i32,
    shared: Shared,
    generation: u64,
) -> std::io::Result<Child> {
    let Shared {
        switch,
        journal,
        uring,
    } = shared;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(FUSE_FD_ENV, fuse.to_string())
        .env(SUPERVISED_ENV, "1")
        .env(GENERATION_ENV, generation.to_string());
    if let Some(v) = switch {
        cmd.env(SWITCH_FD_ENV, v.to_string());
    }
    if let Some(j) = journal {
        cmd.env(JOURNAL_FD_ENV, j.to_string());
    }
    if let Some(u) = uring {
        cmd.env(uring::URING_FD_ENV, u.to_string());
    }
    // SAFETY: between fork and exec only async-signal-safe calls: fcntl on fd numbers.
    unsafe {
        cmd.pre_exec(move || {
            for fd in std::iter::once(fuse)
                .chain(switch)
                .chain(journal)
                .chain(uring)
            {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Send `sig` to our own child (not yet reaped, so its pid cannot have been reused).
fn signal_child(child: &Child, sig: Signal) -> nix::Result<()> {
    let pid = i32::try_from(child.id()).map_err(|_| nix::errno::Errno::ESRCH)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
}

fn stop_child(child: &mut Child) {
    let _ = signal_child(child, Signal::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Wait up to `d` for one of `signals` (blocked); `None` on timeout.
fn timed_wait(signals: &SigSet, d: Duration) -> Option<Signal> {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    };
    // SAFETY: sigtimedwait reads the set and the timeout and writes nothing we pass (info
    // is null).
    let r = unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), &ts) };
    if r <= 0 {
        return None;
    }
    Signal::try_from(r).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn young_deaths_back_off_and_healthy_runs_reset() {
        let ms = Duration::from_millis;
        let young = ms(50);
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..9 {
            d = next_delay(d, young);
            seen.push(d.unwrap());
        }
        assert_eq!(seen[0], Duration::ZERO);
        assert_eq!(seen[1], ms(100));
        assert_eq!(seen[2], ms(200));
        assert_eq!(seen[4], ms(800));
        assert_eq!(*seen.last().unwrap(), MAX_DELAY);
        assert_eq!(next_delay(d, HEALTHY), None);
    }
}
