//! Starting a container. Three processes:
//!
//! * the **monitor** (forked from `lxr`, detached with `setsid`) stays on the host: it writes
//!   the user namespace's maps, records the state, logs the console, and cleans up when the
//!   container's init exits;
//! * the **intermediate** child enters a new user namespace (mapped by the monitor through
//!   newuidmap/newgidmap), becomes root there, unshares mount/uts/ipc/net/cgroup/pid
//!   namespaces, forks init and waits for it;
//! * **init** is PID 1 of the new pid namespace: it builds the mounts ([`mounts`]), the
//!   console ([`console`]), the hostname and loopback, drops dangerous capabilities from its
//!   bounding set, installs the seccomp deny-list ([`seccomp`]), pivots into the rootfs and execs `/sbin/init`. Any error before the exec is
//!   sent back and the launch fails; nothing of a half-built container keeps running.

pub mod console;
pub mod mounts;
pub mod seccomp;

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::container::State;
use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::userns::{become_root, child_mapped, Sync};

/// Capabilities dropped from the container's bounding set (as LXC's common.conf does).
const DROP_CAPS: &[u32] = &[
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    25, // CAP_SYS_TIME
    32, // CAP_MAC_OVERRIDE
    33, // CAP_MAC_ADMIN
];

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Container name (also its hostname).
    pub name: String,
    /// Root filesystem (owned by the container's root).
    pub rootfs: PathBuf,
    /// Id maps.
    pub maps: IdMaps,
    /// The container's runtime state directory.
    pub state_dir: PathBuf,
    /// lxcfs mount to bind files from, if one is mounted.
    pub lxcfs: Option<PathBuf>,
    /// The container's settings (`limits.*`).
    pub keys: std::collections::BTreeMap<String, String>,
    /// The container lock's fd, inherited by the monitor, which closes it once the start is
    /// done (see [`crate::container::Lock`]).
    pub lock_fd: Option<std::os::fd::RawFd>,
}

fn os(what: &str) -> Error {
    Error::Os {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

/// Start the container; returns once its init runs (or the launch failed). The calling
/// process must be single-threaded.
pub fn start(spec: &Spec) -> Result<State> {
    std::fs::create_dir_all(&spec.state_dir)
        .ctx(|| format!("create {}", spec.state_dir.display()))?;
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    // SAFETY: single-threaded caller (documented); the child runs the monitor and _exits.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(report_r);
            let _ = nix::unistd::setsid();
            // Detach from the caller's terminal and pipes: `lxr launch` must be able to return
            // (a caller reading its output waits for every holder of the pipe to close it),
            // and nothing of the caller's may reach the container. The monitor keeps only
            // its report pipe and the container's lock.
            detach_stdio(&spec.state_dir.join("monitor.log"));
            let mut keep = vec![report_w.as_raw_fd()];
            keep.extend(spec.lock_fd);
            crate::fds::keep_only(&keep);
            let code = monitor(spec, report_w);
            // SAFETY: end the forked monitor without the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(report_w);
            // One line, not to EOF: the container's processes inherit the pipe's write end.
            let mut msg = String::new();
            let _ = std::io::BufRead::read_line(
                &mut std::io::BufReader::new(std::fs::File::from(report_r)),
                &mut msg,
            );
            let msg = msg.trim();
            if let Some(rest) = msg.strip_prefix("ok ") {
                let _ = child;
                return State::load(&spec.state_dir).and_then(|s| {
                    s.ok_or_else(|| Error::Setup(format!("no state after start ({rest})")))
                });
            }
            // Reap the monitor (it exits after a failed start).
            let _ = waitpid(child, None);
            Err(Error::from_child(msg.strip_prefix("err ").unwrap_or(
                if msg.is_empty() {
                    "the monitor died"
                } else {
                    msg
                },
            )))
        }
    }
}

/// stdin from /dev/null, stdout and stderr to `log`.
fn detach_stdio(log: &Path) {
    use std::os::fd::AsRawFd;
    let null = std::fs::File::open("/dev/null");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log);
    if let (Ok(null), Ok(out)) = (null, out) {
        // SAFETY: dup2 onto this process's standard descriptors.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(out.as_raw_fd(), 1);
            libc::dup2(out.as_raw_fd(), 2);
        }
    }
}

/// The monitor: returns its exit code.
fn monitor(spec: &Spec, report: OwnedFd) -> i32 {
    let mut report = Some(std::fs::File::from(report));
    // SAFETY: the lock's fd was inherited from `lxr` through the fork; this process owns its
    // copy and nothing else here uses the number.
    let mut lock = spec
        .lock_fd
        .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    let console_log = spec.state_dir.join("console.log");
    loop {
        let lock_fd = lock.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let started = run_monitor(spec, &console_log, lock_fd);
        // Started or failed: either way the start is over, other lxr commands may go on.
        lock = None;
        match started {
            Ok((state, child)) => {
                if let Some(mut r) = report.take() {
                    let _ = writeln!(r, "ok {}", state.init_pid);
                }
                let status = waitpid(child, None);
                // `reboot` inside a pid namespace ends its init with SIGHUP (halt and poweroff
                // with SIGINT): a reboot starts the container again, anything else stops it.
                let rebooted = matches!(status, Ok(WaitStatus::Exited(_, c)) if c == 128 + libc::SIGHUP)
                    && !spec.state_dir.join("stopping").exists();
                if rebooted {
                    let _ = State::clear(&spec.state_dir);
                    continue;
                }
                if let Err(e) = crate::cgroup::remove(&state.cgroup) {
                    let _ = std::fs::write(spec.state_dir.join("cleanup-error"), e.to_string());
                }
                let _ = State::clear(&spec.state_dir);
                let _ = std::fs::remove_file(spec.state_dir.join("stopping"));
                return match status {
                    Ok(WaitStatus::Exited(_, c)) => c,
                    _ => 0,
                };
            }
            Err(e) => {
                if let Some(mut r) = report.take() {
                    let _ = writeln!(r, "err {e}");
                }
                let _ = State::clear(&spec.state_dir);
                return 1;
            }
        }
    }
}

fn run_monitor(
    spec: &Spec,
    console_log: &Path,
    lock_fd: Option<std::os::fd::RawFd>,
) -> Result<(State, Pid)> {
    let (mut ready, mut go) = (Sync::new()?, Sync::new()?);
    let (pid_r, pid_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    let (con_mon, con_init) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair".into())?;
    // SAFETY: the monitor is single-threaded until the console thread starts below.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop((pid_r, err_r, con_mon));
            // The intermediate child lives as long as the container: it must not keep the
            // container lock.
            if let Some(fd) = lock_fd {
                let _ = nix::unistd::close(fd);
            }
            // Die with the monitor: without it nobody maps, confines or reaps this container.
            // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            let code = intermediate(spec, &mut ready, &mut go, pid_w, err_w, con_init);
            // SAFETY: end the forked child.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop((pid_w, err_w, con_init));
            ready.close_write();
            go.close_read();
            let fail = |e: Error| {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
                e
            };
            // The cgroups are made while the child creates its user namespace.
            let prepared = crate::cgroup::prepare(&spec.name, &spec.keys).map_err(fail)?;
            if !ready.wait() {
                prepared.abandon();
                return Err(fail(Error::Setup(
                    "could not create a user namespace (are unprivileged user namespaces enabled?)"
                        .into(),
                )));
            }
            let pid = child.as_raw() as u32;
            // The id-map helpers run while cgmanager moves the child, whose first cgroup.procs
            // write waits on the kernel for milliseconds. The child is still the user's (not
            // yet root of its namespace): the daemon may move it, and everything it forks stays
            // in the container's cgroup.
            let maps = spec.maps.start_apply(pid);
            let entered = prepared.enter(pid);
            let mapped = maps.wait();
            let placement = entered.map_err(fail)?;
            let fail = |e: Error| {
                let _ = crate::cgroup::remove(&placement);
                fail(e)
            };
            mapped.map_err(fail)?;
            go.signal()
                .ctx(|| "signal the child".into())
                .map_err(fail)?;
            let mut pid_buf = String::new();
            let _ = std::fs::File::from(pid_r).read_to_string(&mut pid_buf);
            let mut err = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut err);
            if !err.is_empty() {
                return Err(fail(Error::from_child(&err)));
            }
            let init_pid: u32 = pid_buf
                .trim()
                .parse()
                .map_err(|_| fail(Error::Setup("init did not start".into())))?;
            if let Ok(Some(master)) = console::recv_fd(&con_mon) {
                console::serve(
                    master,
                    console::Log::new(console_log.to_path_buf(), console::log_size(&spec.keys)),
                    spec.state_dir.join("console.sock"),
                );
            }
            let state = State {
                name: spec.name.clone(),
                init_pid,
                monitor_pid: std::process::id(),
                cgroup: placement.clone(),
                lxcfs: spec.lxcfs.is_some(),
                started: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            };
            state.save(&spec.state_dir).map_err(fail)?;
            Ok((state, child))
        }
    }
}

/// The intermediate child: user namespace, the other namespaces, then fork init.
fn intermediate(
    spec: &Spec,
    ready: &mut Sync,
    go: &mut Sync,
    pid_w: OwnedFd,
    err_w: OwnedFd,
    con: OwnedFd,
) -> i32 {
    let fail = |e: Error, err_w: &OwnedFd| {
        let _ = nix::unistd::write(err_w, e.to_string().as_bytes());
        1
    };
    if let Err(e) = child_mapped(ready, go) {
        return fail(e, &err_w);
    }
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP
        | CloneFlags::CLONE_NEWPID;
    if let Err(e) = unshare(flags).ctx(|| "unshare namespaces".into()) {
        return fail(e, &err_w);
    }
    // Still with the user's credentials: the rootfs is reached through the user's private
    // directories, which the container's root cannot search. From here on the container's
    // processes work relative to the rootfs mount (their working directory).
    if let Err(e) = mounts::enter_rootfs(&spec.rootfs).and_then(|()| become_root()) {
        return fail(e, &err_w);
    }
    // SAFETY: single-threaded; the child becomes the container's init and execs or _exits.
    match unsafe { fork() } {
        Err(e) => fail(Error::from_nix("fork init", e), &err_w),
        Ok(ForkResult::Child) => {
            drop(pid_w);
            let e = init(spec, &con)
                .err()
                .unwrap_or_else(|| Error::Setup("exec returned".into()));
            let _ = nix::unistd::write(&err_w, e.to_string().as_bytes());
            // SAFETY: end the failed init.
            unsafe { libc::_exit(1) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop((err_w, con));
            let _ = nix::unistd::write(&pid_w, child.as_raw().to_string().as_bytes());
            drop(pid_w);
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => c,
                Ok(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
                _ => 1,
            }
        }
    }
}

/// PID 1 of the container: everything up to exec of `/sbin/init`. Its working directory is
/// the rootfs mount ([`mounts::enter_rootfs`]).
fn init(spec: &Spec, con: &OwnedFd) -> Result<()> {
    let root = Path::new(".");
    mounts::setup(root, spec.lxcfs.as_deref())?;
    let (master, pts) = console::open_pty(root)?;
    mounts::bind_console(root, &pts)?;
    console::send_fd(con, master.as_raw_fd())?;
    drop(master);
    nix::unistd::sethostname(&spec.name).ctx(|| "sethostname".into())?;
    loopback_up()?;
    mounts::pivot(root)?;
    console::take_console()?;
    for cap in DROP_CAPS {
        // SAFETY: PR_CAPBSET_DROP takes a capability number; no pointers.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(os("drop a capability from the bounding set"));
        }
    }
    seccomp::install()?;
    let prog = CString::new("/sbin/init").map_err(|_| Error::Setup("init path".into()))?;
    let env: Vec<CString> = [
        "container=lxr",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=linux",
        "HOME=/root",
    ]
    .iter()
    .filter_map(|e| CString::new(*e).ok())
    .collect();
    before_exec()?;
    nix::unistd::execve(&prog, std::slice::from_ref(&prog), &env)
        .ctx(|| "exec /sbin/init".into())?;
    Ok(())
}

/// The last step before a program of the container's runs (its init, `lxr exec`'s command):
/// no descriptor above stdio crosses the exec ([`crate::fds::seal`]), and the program starts
/// with the usual 022 umask rather than lxr's own 077.
pub fn before_exec() -> Result<()> {
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    crate::fds::seal()
}

/// Bring up `lo` in the container's network namespace.
fn loopback_up() -> Result<()> {
    let sock = nix::sys::socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "socket for lo".into())?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(os("read lo's flags"));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(os("bring lo up"));
        }
    }
    Ok(())
}
