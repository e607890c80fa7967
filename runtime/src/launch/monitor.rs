//! The monitor: the process that stays on the host for a container's lifetime, as the user. It
//! makes the container's cgroups (and gives them to the container's root), writes the user
//! namespace's maps, waits for the init to boot ([`super::boot`]), serves the console,
//! records the state, and — as the init's parent (a child subreaper: the intermediate process
//! exits as soon as it has forked init, so that no lxr process stays in the container's
//! cgroup) — reaps it, starts it again after a `reboot` inside, and cleans up after it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::boot::{self, Booted, InitKind, Notify};
use super::clone::{self, Forked};
use super::{child, console, Spec};
use crate::cgroup::Entry;
use crate::channel::{self, End, Msg};
use crate::container::State;
use crate::error::{Error, Result};
use crate::net::helper::Helper;

/// What is recorded of the init's end, for `info`.
pub const LAST_EXIT: &str = "last-exit";

/// How an init ended, in words.
fn ended(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, c) => format!("exited with status {c}"),
        // What the kernel does to a pid namespace's init that calls reboot(2).
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGINT, _) => {
            "halted (halt or poweroff, SIGINT)".into()
        }
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGHUP, _) => {
            "rebooted (reboot, SIGHUP)".into()
        }
        WaitStatus::Signaled(_, s, _) => format!("was killed by {s}"),
        other => format!("ended ({other:?})"),
    }
}

/// The monitor's life: returns its exit code. `report` gets [`Msg::Started`] once the (first) start
/// is done, or `err <why>`.
pub fn monitor(spec: &Spec, report: End) -> i32 {
    // The init's parent exits right after forking it: the init becomes this process's child.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut report = Some(report);
    // SAFETY: the lock's fd was inherited from `lxr` through the fork; this process owns its
    // copy and nothing else here uses the number.
    let mut lock = spec
        .lock_fd
        .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    loop {
        let lock_fd = lock.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let started = run(spec, lock_fd);
        // Started or failed: either way the start is over, other lxr commands may go on.
        lock = None;
        match started {
            Ok(Running {
                mut state,
                init,
                console,
                mut net,
            }) => {
                if let Some(r) = report.take() {
                    let _ = r.send(&Msg::Started(state.init_pid));
                }
                let status = wait_init(spec, init, &mut net, &mut state);
                if let Some(mut h) = net.take() {
                    h.stop();
                }
                drop(console);
                if let Ok(st) = &status {
                    let _ = std::fs::write(spec.state_dir.join(LAST_EXIT), ended(st));
                    eprintln!("init {}", ended(st));
                }
                // `reboot` inside a pid namespace ends its init with SIGHUP (halt and poweroff
                // with SIGINT): a reboot starts the container again, anything else stops it.
                let rebooted = matches!(
                    status,
                    Ok(WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGHUP, _))
                ) && !spec.state_dir.join("stopping").exists();
                if rebooted {
                    // The next boot gets fresh cgroups, as a start does: the old ones are the
                    // old init's, the container root's, shaped by it (on cgroup v2 a systemd
                    // enabled controllers in the top cgroup, which the kernel then refuses to
                    // put the new init in, and removed the exec leaf it found empty; found by
                    // the v2 suite, issue 18).
                    if let Err(e) = crate::cgroup::remove(&state.cgroup) {
                        let _ = std::fs::write(spec.state_dir.join("cleanup-error"), e.to_string());
                    }
                    let _ = State::clear(&spec.state_dir);
                    continue;
                }
                if let Err(e) = crate::cgroup::remove(&state.cgroup) {
                    let _ = std::fs::write(spec.state_dir.join("cleanup-error"), e.to_string());
                }
                let _ = State::clear(&spec.state_dir);
                let _ = std::fs::remove_file(spec.state_dir.join("stopping"));
                if let Some((paths, at_end)) = &spec.at_end {
                    at_end(paths, &spec.name);
                }
                return match status {
                    Ok(WaitStatus::Exited(_, c)) => c,
                    _ => 0,
                };
            }
            Err(e) => {
                eprintln!("start failed: {e}");
                if let Some(r) = report.take() {
                    r.fail(&e);
                }
                let _ = State::clear(&spec.state_dir);
                return 1;
            }
        }
    }
}

/// A container whose init runs.
struct Running {
    state: State,
    init: Pid,
    /// Holds the console's peer open while the init lives (see [`console::Console`]).
    console: Option<console::Console>,
    /// The network stack, if it has one.
    net: Option<Helper>,
}

/// The proxy devices of the moment (`config.yaml` may have changed since the start).
fn proxies_now(spec: &Spec) -> Vec<crate::net::proxy::Proxy> {
    // `<data>/containers/<name>/rootfs`: the profiles are in `<data>/profiles`.
    let dir = spec.rootfs.parent();
    let data = dir.and_then(|d| d.parent()).and_then(|d| d.parent());
    let keys = dir
        .zip(data)
        .and_then(|(d, data)| {
            let c = crate::container::Config::load(&d.join("config.yaml")).ok()?;
            let ps = crate::container::profile::Profiles::new(data);
            Some(c.expanded(&ps.load_all(&c.profiles).ok()?).flat())
        })
        .unwrap_or_else(|| spec.keys.clone());
    crate::net::proxy::all(&keys)
}

/// Wait for the init to end; a network helper that dies meanwhile is restarted.
fn wait_init(
    spec: &Spec,
    init: Pid,
    net: &mut Option<Helper>,
    state: &mut State,
) -> nix::Result<WaitStatus> {
    loop {
        // Any child: the init, the helper, or an orphan of the helper's (this is a subreaper).
        match waitpid(Pid::from_raw(-1), None) {
            Ok(st) if st.pid() == Some(init) => return Ok(st),
            Ok(st) => {
                let Some(h) = net.as_mut() else { continue };
                if !st.pid().is_some_and(|p| h.is(p)) {
                    continue;
                }
                if !h.died(&st, &proxies_now(spec)) {
                    *net = None;
                    state.net = None;
                } else {
                    state.net = Some(h.state());
                }
                if let Err(e) = state.save(&spec.state_dir) {
                    eprintln!("save the state: {e}");
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            // No child left but the init was not seen: it was reaped elsewhere.
            Err(e) => return waitpid(init, None).or(Err(e)),
        }
    }
}

/// One start: the intermediate child, then init, then the wait for its boot.
fn run(spec: &Spec, lock_fd: Option<std::os::fd::RawFd>) -> Result<Running> {
    let (chan, child_end) = channel::pair()?;
    let notify = match boot::init_kind_of(&spec.rootfs, spec.overlay.as_ref()) {
        InitKind::Systemd => Some(Notify::create(&spec.state_dir)?),
        InitKind::Other => None,
    };
    let notify_path = notify.as_ref().map(|n| n.path.clone());
    let plan = crate::net::plan(&spec.keys)?;
    if let crate::net::Plan::None(Some(why)) = &plan {
        eprintln!("network: {why}");
    }
    let resolv = plan.resolv_conf();
    let mut net: Option<Helper> = None;
    // The cgroups first, so that where the kernel allows it the intermediate child starts in
    // them (`clone3(CLONE_INTO_CGROUP)`, see [`super::clone`]) rather than being moved there.
    let prepared = crate::cgroup::prepare(&spec.name, &spec.keys)?;
    let target = prepared.clone_target();
    // SAFETY: the child execs or _exits. clone3 is tried only while the monitor is
    // single-threaded (its first boot); after a reboot the console threads of the earlier boot
    // run, which hold no locks the child needs across a plain fork.
    let forked = unsafe { clone::fork_into(target.as_ref().map(AsFd::as_fd)) };
    drop(target);
    let forked = match forked {
        Ok(f) => f,
        Err(e) => {
            prepared.abandon();
            return Err(e);
        }
    };
    match forked {
        Forked::Child => {
            drop(chan);
            // The monitor's cgmanager connection is not the child's to use or close.
            std::mem::forget(prepared);
            // The intermediate child must not keep the container lock.
            if let Some(fd) = lock_fd {
                let _ = nix::unistd::close(fd);
            }
            // Die with the monitor: without it nobody maps or confines this container.
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            let code =
                child::intermediate(spec, &child_end, notify_path.as_deref(), resolv.as_deref());
            super::exit_forked(code)
        }
        Forked::Parent { child, entry } => {
            drop(child_end);
            let fail = |e: Error| {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
                e
            };
            match chan.expect(&Msg::Unshared) {
                Ok(true) => {}
                Ok(false) => {
                    prepared.abandon();
                    return Err(fail(Error::Setup(
                        "could not create a user namespace (are unprivileged user namespaces \
                         enabled?)"
                            .into(),
                    )));
                }
                Err(e) => {
                    prepared.abandon();
                    return Err(fail(e));
                }
            }
            let pid = child.as_raw() as u32;
            // The id-map helpers run while cgmanager moves the child (when the kernel did not
            // start it in its cgroup), whose cgroup.procs write waits on the kernel for
            // milliseconds. The child is still the user's (not yet root of its namespace): the
            // daemon may move it, and everything it forks stays in the container's cgroup.
            let maps = spec.maps.start_apply(pid);
            let entered = match entry {
                Entry::Clone3 => Ok(prepared.cloned_in()),
                Entry::Cgmanager => {
                    let t = std::time::Instant::now();
                    let r = prepared.enter(pid);
                    // What clone3 saves, where it applies (bench/v2-cycle.sh reads this).
                    tracing::debug!("cgmanager moved pid {pid} in {:?}", t.elapsed());
                    r
                }
            };
            let mapped = maps.wait();
            let placement = entered.map_err(fail)?;
            let fail = |e: Error| {
                let _ = crate::cgroup::remove(&placement);
                fail(e)
            };
            mapped.map_err(fail)?;
            // The cgroups become the container root's, for an init that manages its own.
            crate::cgroup::hand_over(&placement, &spec.maps).map_err(fail)?;
            chan.send(&Msg::Go).map_err(fail)?;
            // Until the intermediate has exited and init has exec'd (or died): init's pid, its
            // console, and the first error of either.
            let (mut init_pid, mut console_fds, mut err) = (None, None, None);
            let spec_proxies = crate::net::proxy::all(&spec.keys);
            while let Some((m, fds)) = chan.recv().map_err(fail)? {
                match m {
                    Msg::Init(p) => {
                        init_pid = Some(p);
                        let mut ns = fds.into_iter();
                        // The init's network namespace exists: attach the stack to it while
                        // the init mounts, and let it exec once eth0 is up.
                        // (An init that waits for NetUp always gets it or Failed.)
                        if resolv.is_some() {
                            let started = match (ns.next(), ns.next()) {
                                (Some(user), Some(netns)) => Helper::start(
                                    &plan,
                                    (user, netns),
                                    &spec.state_dir,
                                    &spec_proxies,
                                ),
                                _ => Err(Error::Setup(
                                    "the network: the container's namespaces did not arrive".into(),
                                )),
                            };
                            match started {
                                Ok(h) => {
                                    net = h;
                                    // An init that already failed has closed its end: its
                                    // own error (read below) is the one to report.
                                    let _ = chan.send(&Msg::NetUp);
                                }
                                Err(e) => {
                                    let _ = chan.send(&Msg::Failed(e.to_string()));
                                    err.get_or_insert(e.to_string());
                                }
                            }
                        }
                    }
                    Msg::Console => {
                        let mut fds = fds.into_iter();
                        if let (Some(master), Some(peer)) = (fds.next(), fds.next()) {
                            console_fds = Some((master, peer));
                        }
                    }
                    Msg::Failed(why) => {
                        err.get_or_insert(why);
                    }
                    _ => {}
                }
            }
            // The intermediate exits once init is forked; init is this process's child now.
            // (From here on `child` is reaped: its pid is never signalled again.)
            let _ = waitpid(child, None);
            let fail = |e: Error| {
                let _ = crate::cgroup::remove(&placement);
                e
            };
            if let Some(err) = err {
                if let Some(p) = init_pid {
                    let _ = waitpid(Pid::from_raw(p as i32), None);
                }
                return Err(fail(Error::from_child(&err)));
            }
            let init_pid =
                init_pid.ok_or_else(|| fail(Error::Setup("init did not start".into())))?;
            let init = Pid::from_raw(init_pid as i32);
            let console_log = spec.state_dir.join("console.log");
            let console = console_fds.map(|(master, peer)| {
                console::serve(
                    master,
                    peer,
                    console::Log::new(console_log.clone(), console::log_size(&spec.keys)),
                    spec.state_dir.join("console.sock"),
                )
            });
            let pidfd = cgroups::process::Pidfd::open(init_pid).map_err(|e| Error::Os {
                what: "open the init".into(),
                source: e,
            });
            let booted = match &pidfd {
                Ok(fd) => boot::wait(fd, notify.as_ref()),
                Err(_) => Booted::Died,
            };
            if booted == Booted::Died {
                let status = waitpid(init, None).map(|s| ended(&s)).unwrap_or_default();
                // What it printed last reaches the log through the console thread.
                std::thread::sleep(std::time::Duration::from_millis(100));
                drop(console);
                let tail = boot::console_tail(&console_log, 15);
                let _ = std::fs::write(spec.state_dir.join(LAST_EXIT), &status);
                return Err(fail(Error::Setup(format!(
                    "the container's init {status} while booting; its last console lines:\n{tail}"
                ))));
            }
            if booted == Booted::NotYet {
                eprintln!(
                    "{} has not reported ready after {:?}; it keeps booting",
                    spec.name,
                    boot::READY_TIMEOUT
                );
            }
            drop(notify);
            let state = State {
                name: spec.name.clone(),
                init_pid,
                monitor_pid: std::process::id(),
                cgroup: placement.clone(),
                lxcfs: spec.lxcfs.is_some(),
                net: net.as_ref().map(Helper::state),
                started: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            };
            state.save(&spec.state_dir).map_err(fail)?;
            Ok(Running {
                state,
                init,
                console,
                net,
            })
        }
    }
}

/// Where the init's end is recorded.
pub fn last_exit(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join(LAST_EXIT)).ok()
}
