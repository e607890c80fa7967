//! The stack's process. The monitor spawns it outside the container (as the user, in the host's
//! namespaces; it joins the container's user and network namespaces itself) once the init's
//! network namespace exists, and waits until it has configured `eth0` before the init execs.
//!
//! It never outlives the container: it is the monitor's child with `PR_SET_PDEATHSIG`
//! (SIGKILL) — so a `kill -9` of the monitor takes it along — in a process group of its own,
//! which the monitor kills when the init ends. A helper that dies is restarted (at most
//! [`MAX_RESTARTS`] times a minute) with the proxy devices of the moment.
//!
//! It gets nothing of the monitor's but stdio (the monitor's log), the readiness pipe (3) and
//! the container's user and network namespaces (4, 5; the intermediate process sent them, as the
//! init cannot be opened through `/proc` before it execs): every other descriptor is
//! close-on-exec in the child before it execs.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::proxy::Proxy;
use super::{pasta, slirp, Backend, NetState, Plan};
use crate::error::{Context, Error, Result};

/// How long a helper may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Restarts allowed within a minute before the monitor gives up on the network.
pub const MAX_RESTARTS: usize = 5;

/// A running stack.
#[derive(Debug)]
pub struct Helper {
    backend: Backend,
    program: PathBuf,
    host_loopback: bool,
    ipv6: bool,
    /// The container's user and network namespaces.
    ns: (OwnedFd, OwnedFd),
    state_dir: PathBuf,
    pid: Option<Pid>,
    restarts: u32,
    recent: VecDeque<Instant>,
}

impl Helper {
    /// Start the stack of `plan` in the namespaces `ns` (user, net) with `proxies`; `None`
    /// for no network.
    pub fn start(
        plan: &Plan,
        ns: (OwnedFd, OwnedFd),
        state_dir: &Path,
        proxies: &[Proxy],
    ) -> Result<Option<Helper>> {
        let Plan::Stack {
            backend,
            program,
            host_loopback,
            ipv6,
        } = plan
        else {
            return Ok(None);
        };
        let mut h = Helper {
            backend: *backend,
            program: program.clone(),
            host_loopback: *host_loopback,
            ipv6: *ipv6,
            ns,
            state_dir: state_dir.to_path_buf(),
            pid: None,
            restarts: 0,
            recent: VecDeque::new(),
        };
        h.spawn(proxies)?;
        Ok(Some(h))
    }

    /// Whether `pid` is this helper.
    pub fn is(&self, pid: Pid) -> bool {
        self.pid == Some(pid)
    }

    /// The slirp4netns API socket, if that is the backend.
    pub fn api_socket(state_dir: &Path) -> PathBuf {
        state_dir.join(slirp::API_SOCKET)
    }

    /// For `state.json`.
    pub fn state(&self) -> NetState {
        NetState {
            backend: self.backend,
            helper_pid: self.pid.map(|p| p.as_raw() as u32).unwrap_or(0),
            restarts: self.restarts,
        }
    }

    fn spawn(&mut self, proxies: &[Proxy]) -> Result<()> {
        for p in proxies {
            match self.backend {
                Backend::Slirp4netns => slirp::check(p, self.host_loopback)?,
                Backend::Pasta => pasta::check(p)?,
            }
            p.check_free()?;
        }
        let api = Self::api_socket(&self.state_dir);
        let pid_file = self.state_dir.join(pasta::PID_FILE);
        let _ = std::fs::remove_file(&api);
        let _ = std::fs::remove_file(&pid_file);
        let args = match self.backend {
            Backend::Slirp4netns => slirp::args(self.host_loopback, self.ipv6, &api),
            Backend::Pasta => pasta::args(self.host_loopback, proxies, &pid_file),
        };
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&args)
            .stdin(std::process::Stdio::null())
            .process_group(0);
        let parent = nix::unistd::getpid();
        // Descriptors 3 (slirp4netns's ready pipe), 4 (the user namespace), 5 (the network
        // namespace): the programs name them /proc/self/fd/4 and /proc/self/fd/5.
        let pass = [
            ready_w.as_raw_fd(),
            self.ns.0.as_raw_fd(),
            self.ns.1.as_raw_fd(),
        ];
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid,
        // close_range, fcntl, dup2): no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The monitor died before the death signal was armed.
                if libc::getppid() != parent.as_raw() {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                // Out of the way of 3–5 first, then onto them (dup2 clears close-on-exec).
                let mut high = [0; 3];
                for (h, fd) in high.iter_mut().zip(pass) {
                    *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 16);
                    if *h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                crate::fds::cloexec_above_stdio_raw();
                for (target, h) in (3..).zip(high) {
                    if libc::dup2(h, target) != target {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .ctx(|| format!("start {}", self.program.display()))?;
        let pid = Pid::from_raw(child.id() as i32);
        // Reaped by the monitor's wait for any child (`Child` would reap it otherwise).
        drop(child);
        drop(ready_w);
        self.pid = Some(pid);
        let ready = match self.backend {
            Backend::Slirp4netns => wait_pipe(&ready_r, pid),
            Backend::Pasta => wait_file(&pid_file, pid),
        };
        if let Err(e) = ready {
            self.kill();
            return Err(Error::Setup(format!(
                "the network ({}): {e}; its messages are in monitor.log (network.mode=none \
                 starts the container without a network)",
                self.backend.name()
            )));
        }
        if self.backend == Backend::Slirp4netns {
            for p in proxies {
                if let Err(e) = slirp::add(&api, p) {
                    self.kill();
                    return Err(e);
                }
            }
        }
        eprintln!("network up: {} (pid {pid})", self.backend.name());
        Ok(())
    }

    /// The helper died (the monitor reaped `status`): start it again, unless it died too
    /// often. Returns false when the monitor gives up.
    pub fn died(&mut self, status: &WaitStatus, proxies: &[Proxy]) -> bool {
        self.pid = None;
        eprintln!("network helper {} ended: {status:?}", self.backend.name());
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_RESTARTS {
            eprintln!("network helper died {MAX_RESTARTS} times within a minute: not restarted");
            return false;
        }
        self.recent.push_back(now);
        self.restarts += 1;
        match self.spawn(proxies) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("network helper restart failed: {e}");
                // Try once more at the next death report… which will not come: give up now.
                false
            }
        }
    }

    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            // Its process group: slirp4netns's and pasta's own children too.
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }

    /// Stop it (with the container).
    pub fn stop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(Self::api_socket(&self.state_dir));
        let _ = std::fs::remove_file(self.state_dir.join(pasta::PID_FILE));
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}

fn exited(pid: Pid) -> Option<WaitStatus> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(s) => Some(s),
        Err(_) => Some(WaitStatus::StillAlive),
    }
}

/// slirp4netns writes "1" to the ready pipe once `eth0` is configured.
fn wait_pipe(r: &OwnedFd, pid: Pid) -> std::result::Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("not ready after {READY_TIMEOUT:?}"));
        }
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(format!("poll: {e}")),
            Ok(_) => {}
        }
        let mut b = [0u8; 1];
        let mut f = std::fs::File::from(r.try_clone().map_err(|e| e.to_string())?);
        return match f.read(&mut b) {
            Ok(1) => Ok(()),
            _ => Err(match exited(pid) {
                Some(s) => format!("it ended ({s:?})"),
                None => "it closed its ready pipe".into(),
            }),
        };
    }
}

/// pasta writes its pid file once the namespace is configured.
fn wait_file(f: &Path, pid: Pid) -> std::result::Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if std::fs::read_to_string(f).is_ok_and(|s| !s.trim().is_empty()) {
            return Ok(());
        }
        if let Some(s) = exited(pid) {
            return Err(format!("it ended ({s:?})"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("not ready after {READY_TIMEOUT:?}"))
}
