//! Starting a container. Three processes:
//!
//! * the **monitor** ([`monitor`], forked from `lxr`, detached with `setsid`) stays on the
//!   host: it makes the cgroups, starts the intermediate child in them where the kernel allows
//!   it ([`clone`]: `clone3(CLONE_INTO_CGROUP)`, else cgmanager moves the child), writes the
//!   user namespace's maps, waits for the boot ([`boot`]), records the state, serves the
//!   console, and reaps and cleans up after init;
//! * the **intermediate** child (`child.rs`) enters a new user namespace (mapped by the monitor
//!   through newuidmap/newgidmap), unshares mount/uts/ipc/net/cgroup/pid namespaces, enters the
//!   rootfs, becomes root there, forks init and exits;
//! * **init** is PID 1 of the new pid namespace: it builds the mounts ([`mounts`]), the
//!   console ([`console`]), the hostname and loopback, drops dangerous capabilities from its
//!   bounding set, installs the seccomp deny-list ([`seccomp`]), pivots into the rootfs and
//!   execs `/sbin/init`. Any error before the exec, or an init that dies while booting, is
//!   sent back and the launch fails; nothing of a half-built container keeps running.

pub mod boot;
mod child;
pub mod clone;
pub mod console;
pub mod disks;
pub mod monitor;
pub mod mounts;
pub mod seccomp;

use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

use crate::channel::{self, Msg};
use crate::container::State;
use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;

/// Capabilities dropped from the container's bounding set (as LXC's common.conf does).
pub(crate) const DROP_CAPS: &[caps::Capability] = &[
    caps::Capability::CAP_SYS_MODULE,
    caps::Capability::CAP_SYS_RAWIO,
    caps::Capability::CAP_SYS_TIME,
    caps::Capability::CAP_MAC_OVERRIDE,
    caps::Capability::CAP_MAC_ADMIN,
];

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Container name (also its hostname).
    pub name: String,
    /// Root filesystem (owned by the container's root): a directory, or for an overlay the
    /// mount point of [`Spec::overlay`].
    pub rootfs: PathBuf,
    /// The overlay's layers, when the container's storage is an overlay
    /// ([`crate::storage::overlay`]).
    pub overlay: Option<crate::storage::overlay::Layers>,
    /// Id maps.
    pub maps: IdMaps,
    /// The container's runtime state directory.
    pub state_dir: PathBuf,
    /// lxcfs mount to bind files from, if one is mounted.
    pub lxcfs: Option<PathBuf>,
    /// The container's settings (`limits.*`).
    pub keys: std::collections::BTreeMap<String, String>,
    /// The container lock's fd, inherited by the monitor, which closes it once the start is
    /// done (see [`crate::lock::Lock`]).
    pub lock_fd: Option<std::os::fd::RawFd>,
    /// What the monitor runs after the init's last end (not a reboot) and its cleanup, with
    /// the user's paths and the container's name: the deletion of an ephemeral container
    /// (given by the lifecycle, which this module does not depend on).
    pub at_end: Option<AtEnd>,
}

/// See [`Spec::at_end`].
pub type AtEnd = (crate::paths::Paths, fn(&crate::paths::Paths, &str));

/// Start the container; returns once its init runs (or the launch failed). The calling
/// process must be single-threaded.
pub fn start(spec: &Spec) -> Result<State> {
    std::fs::create_dir_all(&spec.state_dir)
        .ctx(|| format!("create {}", spec.state_dir.display()))?;
    let (report, monitor_end) = channel::pair()?;
    // SAFETY: single-threaded caller (documented); the child runs the monitor and _exits.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(report);
            let _ = nix::unistd::setsid();
            // Detach from the caller's terminal and pipes: `lxr launch` must be able to return
            // (a caller reading its output waits for every holder of the pipe to close it),
            // and nothing of the caller's may reach the container. The monitor keeps only
            // its end of the channel and the container's lock.
            detach_stdio(&spec.state_dir.join("monitor.log"));
            let mut keep = vec![monitor_end.raw_fd()];
            keep.extend(spec.lock_fd);
            crate::fds::keep_only(&keep);
            let code = monitor::monitor(spec, monitor_end);
            exit_forked(code)
        }
        ForkResult::Parent { child } => {
            drop(monitor_end);
            // One message: Started, or Failed with why.
            let msg = report.recv();
            if let Ok(Some((Msg::Started(pid), _))) = msg {
                return State::load(&spec.state_dir).and_then(|s| {
                    s.ok_or_else(|| Error::Setup(format!("no state after start (pid {pid})")))
                });
            }
            // Reap the monitor (it exits after a failed start).
            let _ = waitpid(child, None);
            Err(match msg {
                Ok(Some((Msg::Failed(why), _))) => Error::from_child(&why),
                Ok(Some((m, _))) => Error::Setup(format!("the monitor said {m:?}")),
                Ok(None) => Error::Setup("the monitor died".into()),
                Err(e) => e,
            })
        }
    }
}

/// stdin from /dev/null, stdout and stderr to `log`.
fn detach_stdio(log: &Path) {
    let null = std::fs::File::open("/dev/null");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log);
    if let (Ok(null), Ok(out)) = (null, out) {
        // Each on its own: one failing must not keep the others on the caller's.
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&out);
        let _ = nix::unistd::dup2_stderr(&out);
    }
}

pub use crate::userns::exit_forked;

/// The last step before a program of the container's runs (its init, `lxr exec`'s command):
/// no descriptor above stdio crosses the exec ([`crate::fds::seal`]), and the program starts
/// with the usual 022 umask rather than lxr's own 077.
pub fn before_exec() -> Result<()> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    crate::fds::seal()
}
