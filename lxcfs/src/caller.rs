//! Who is asking: the [`Caller`] of a request (pid, uid, gid, as the kernel sent them) and
//! its [`Scope`] — the init (reaper) of the caller's pid namespace, whose cgroups define the
//! container's view, or the caller itself in the daemon's own pid namespace.
//!
//! One `ioctl(NS_GET_TGID_FROM_PIDNS, 1)` on `/proc/<pid>/ns/pid` gives the host pid of the
//! namespace's init (Linux ≥ 6.11; lxcfs forks, `setns()`es and passes credentials over a
//! socket for the same answer, at 2.6–4 ms per miss). Older kernels (or a test that turns the
//! ioctl off, `crate::kernel`) fall back to two ways in turn:
//!
//! 1. walking the caller's ancestors until one is pid 1 of the caller's namespace — cheap,
//!    and enough for every process the container's init started;
//! 2. when a parent leaves the namespace first — the caller joined it with `setns()`
//!    (`nsenter`, `lxr exec`), so its parent lives outside — scanning `/proc` for the process
//!    in that namespace whose last `NSpid` is 1. One `stat` of `/proc/<pid>/ns/pid` per host
//!    process, and `status` only for the namespace's own: ~5 µs per process here (14–18 ms
//!    for 3,000 processes with the init listed last), paid once per namespace, since the
//!    answer is cached — and only when the namespace's first reader entered by `setns()`.
//!    (lxcfs's way, a helper forked into the namespace, costs 2.6–4 ms whatever the host
//!    runs, but forks the multi-threaded daemon.) No race can give a wrong init: the init
//!    exists before any other process of its namespace (a `setns()`ed caller could only fork
//!    into it while it lived), and a namespace never gets a second pid 1; the answer is then
//!    checked like any other (below).
//!
//! Answers are cached per pid-namespace inode and validated with a pidfd on every hit:
//! namespace inode numbers are recycled, but a live pidfd proves the cached init is still the
//! same process.
//!
//! Each cached pidfd is an open file (and pins its dead namespace in the kernel), so an entry
//! must go when its container does, not when the cache is full: thousands of short-lived
//! containers would otherwise use up the daemon's open files and new containers would get
//! `EMFILE`. A reaper thread waits on every cached pidfd with epoll (a pidfd becomes readable
//! when its process exits) and drops the entry at once; a sweep every few seconds catches
//! anything the epoll could not watch. If a pidfd cannot be opened at all (out of files),
//! the answer is still given, only not cached.
//!
//! An entry also holds files the container's renderings read every time ([`Held`]): the
//! init's `/proc/<pid>/cgroup` (read on every rendering, so a moved init shows at once) and
//! the container's cgroup files (`cgroups::kept`); their opens and closes were a fifth of a
//! rendering's CPU time. A procfs descriptor names its process, not the pid — once that
//! process is gone it reads `ESRCH`, never another process's cgroups — and all of them go
//! with the entry when the reaper drops it, so the descriptor count follows the containers.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cgroups::process::Pidfd;
use dashmap::DashMap;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::error::{FsError, FsResult};

/// `_IOR(NSIO = 0xb7, 0x7, int)`: translate a pid of the target pid namespace into the
/// caller's, for the thread-group leader.
const NS_GET_TGID_FROM_PIDNS: libc::c_ulong = 0x8004_b707;
/// Prune dead cache entries at once when the cache grows past this (a backstop: the reaper
/// normally keeps only live namespaces).
const CACHE_PRUNE_AT: usize = 1024;
/// How often the reaper wakes without an event (to notice the resolver is gone).
const REAPER_TICK: u16 = 1000;
/// How often the reaper sweeps the whole cache for entries it was not told about.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

type Cache = DashMap<u64, CachedInit>;

/// Who sent a request: the kernel-supplied pid (thread id, in the daemon's pid namespace),
/// uid and gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Thread id of the caller (0 if not visible from the daemon's pid namespace).
    pub pid: u32,
    /// fsuid of the caller.
    pub uid: u32,
    /// fsgid of the caller.
    pub gid: u32,
}

/// Whose cgroups a read is answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller shares the daemon's pid namespace: it gets its own cgroups' view.
    Host {
        /// The caller's pid.
        pid: u32,
    },
    /// The caller is in a container: the view of the container's init.
    Container {
        /// Host pid of the namespace's init.
        init: u32,
    },
}

impl Scope {
    /// The pid whose cgroups define the view.
    pub fn pid(self) -> u32 {
        match self {
            Scope::Host { pid } => pid,
            Scope::Container { init } => init,
        }
    }
}

/// A [`Scope`] and, for a cached container init, the files held for it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Whose cgroups.
    pub scope: Scope,
    /// What the cache holds open for a container's init (`None`: open files by path).
    pub held: Option<Arc<Held>>,
}

/// Files held open for a cached container init, as long as it is cached.
#[derive(Debug, Default)]
pub struct Held {
    /// `/proc/<init>/cgroup` (`None` if it could not be opened).
    pub proc_cgroup: Option<File>,
    /// The container's cgroup files.
    pub cgroup_files: Arc<cgroups::kept::Kept>,
}

struct CachedInit {
    init: u32,
    pidfd: Pidfd,
    held: Arc<Held>,
}

/// Maps callers to scopes, with the per-namespace cache.
pub struct CallerResolver {
    proc_root: PathBuf,
    own_pidns: u64,
    cache: Arc<Cache>,
    /// Watches the cached inits' pidfds (see the module doc); `None` if it could not start.
    epoll: Option<Arc<Epoll>>,
    /// Whether to try `NS_GET_TGID_FROM_PIDNS` (off once the kernel said it lacks it, or
    /// when a test turned it off).
    tgid_ioctl: AtomicBool,
}

impl CallerResolver {
    /// A resolver reading `proc_root` (normally `/proc`); `tgid_ioctl` false makes it use the
    /// fallbacks of kernels before 6.11 (see the module doc).
    pub fn new(proc_root: &Path, tgid_ioctl: bool) -> FsResult<CallerResolver> {
        let own = proc_root.join("self/ns/pid");
        let own_pidns = std::fs::metadata(&own)
            .map_err(|e| FsError::io(format!("stat {}", own.display()), &e))?
            .ino();
        // Every container's cached init is held by a pidfd: refuse clearly, up front, on a
        // kernel without them rather than fail every container's read.
        if let Err(e) = Pidfd::open(std::process::id()) {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                return Err(FsError::new(
                    libc::ENOSYS,
                    "this kernel has no pidfd_open: lxcfs needs Linux 5.3 or later",
                ));
            }
        }
        let cache = Arc::new(Cache::new());
        let epoll = start_reaper(Arc::downgrade(&cache));
        Ok(CallerResolver {
            proc_root: proc_root.to_path_buf(),
            own_pidns,
            cache,
            epoll,
            tgid_ioctl: AtomicBool::new(tgid_ioctl),
        })
    }

    /// The scope of the process (or thread) `pid`.
    pub fn resolve(&self, pid: u32) -> FsResult<Scope> {
        self.resolve_held(pid).map(|r| r.scope)
    }

    /// The scope of the process (or thread) `pid`, with what the cache holds for it.
    pub fn resolve_held(&self, pid: u32) -> FsResult<Resolved> {
        let plain = |scope| Resolved { scope, held: None };
        if pid == 0 {
            return Err(FsError::new(
                libc::EACCES,
                "caller is not visible from the daemon's pid namespace",
            ));
        }
        let ns_path = self.proc_root.join(pid.to_string()).join("ns/pid");
        let ns = pidns_ino(&ns_path).map_err(|e| gone(pid, &e))?;
        if ns == self.own_pidns {
            return Ok(plain(Scope::Host { pid }));
        }
        // A shared lock: two readers of one container must not queue on its entry.
        if let Some(hit) = self.cache.get(&ns) {
            if hit.pidfd.alive() {
                return Ok(Resolved {
                    scope: Scope::Container { init: hit.init },
                    held: Some(Arc::clone(&hit.held)),
                });
            }
        }
        let init = self.find_init(pid, ns, &ns_path)?;
        let pidfd = match Pidfd::open(init) {
            Ok(p) => p,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                // Out of files: answer from the fresh lookup, just do not remember it.
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot cache container inits ({e}); serving uncached ({} cached)",
                        self.cache.len()
                    );
                }
                return Ok(plain(Scope::Container { init }));
            }
            Err(e) => return Err(gone(init, &e)),
        };
        // Opened before the check below: a pidfd still alive after it proves that the process
        // this names is the one checked (its pid cannot have been reused while it lived).
        let held = Arc::new(Held {
            proc_cgroup: File::open(self.proc_root.join(init.to_string()).join("cgroup")).ok(),
            cgroup_files: Arc::default(),
        });
        // The init may have died and its pid been reused between the lookup and the pidfd:
        // only keep the pidfd if the process now under that pid is still the namespace's
        // pid 1 (and, with the pidfd still alive after the check, the one it names).
        if !self.is_init_of(init, ns) || !pidfd.alive() {
            return Err(FsError::new(
                libc::ESRCH,
                format!("init of pid {pid}'s namespace changed during lookup"),
            ));
        }
        if self.cache.len() >= CACHE_PRUNE_AT {
            self.prune();
        }
        self.cache.insert(
            ns,
            CachedInit {
                init,
                pidfd,
                held: Arc::clone(&held),
            },
        );
        self.watch(ns);
        Ok(Resolved {
            scope: Scope::Container { init },
            held: Some(held),
        })
    }

    /// Have the reaper drop `ns`'s entry when its init exits. Registered after the insert,
    /// so an init that is already gone still fires (epoll reports a ready fd at once).
    fn watch(&self, ns: u64) {
        let Some(epoll) = &self.epoll else {
            return;
        };
        let Some(entry) = self.cache.get(&ns) else {
            return;
        };
        let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, ns);
        match epoll.add(&entry.pidfd, ev) {
            // EEXIST: a concurrent resolve of the same namespace registered this one already.
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => tracing::debug!("cannot watch the init of namespace {ns}: {e}"),
        }
    }

    fn find_init(&self, pid: u32, ns: u64, ns_path: &Path) -> FsResult<u32> {
        if self.tgid_ioctl.load(Ordering::Relaxed) {
            let f = File::open(ns_path).map_err(|e| gone(pid, &e))?;
            // SAFETY: NS_GET_TGID_FROM_PIDNS takes an integer argument by value and returns a
            // pid or -1; the fd is valid for the duration of the call.
            let r = unsafe {
                libc::ioctl(f.as_raw_fd(), NS_GET_TGID_FROM_PIDNS as _, 1 as libc::c_int)
            };
            if r > 0 {
                return Ok(r as u32);
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                // Not an ioctl this kernel knows (before 6.11): do not ask again. Said once,
                // by the thread that turns it off (concurrent first readers all get ENOTTY;
                // the v2 guest on 6.1 logged it twice).
                Some(libc::ENOTTY) => {
                    if self.tgid_ioctl.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            "no NS_GET_TGID_FROM_PIDNS (Linux < 6.11): finding container \
                             inits through /proc"
                        );
                    }
                }
                Some(libc::EINVAL) | Some(libc::ENOSYS) => {}
                _ => return Err(gone(pid, &err)),
            }
        }
        match self.walk_to_init(pid, ns) {
            Ok(init) => Ok(init),
            Err(_) => self.scan_for_init(pid, ns),
        }
    }

    /// The pid namespace (inode) of `pid`, if it is there to ask.
    fn pidns_of(&self, pid: u32) -> Option<u64> {
        pidns_ino(&self.proc_root.join(pid.to_string()).join("ns/pid")).ok()
    }

    /// Is `pid` the live init (pid 1) of namespace `ns`? (A zombie init is not: its namespace
    /// is dead, no process can join it, and its last members are being killed.)
    fn is_init_of(&self, pid: u32, ns: u64) -> bool {
        self.pidns_of(pid) == Some(ns)
            && cgroups::process::Status::read(&self.proc_root, pid)
                .is_ok_and(|s| s.pid_inside() == 1 && s.state != Some('Z'))
    }

    /// First fallback for kernels without the ioctl: follow parents while they stay in the
    /// namespace, until one is its pid 1. Fails for a caller that joined the namespace with
    /// `setns()` (its parent is outside).
    fn walk_to_init(&self, pid: u32, ns: u64) -> FsResult<u32> {
        let mut cur = pid;
        for _ in 0..4096 {
            let status = cgroups::process::Status::read(&self.proc_root, cur)
                .map_err(|e| gone(cur, &std::io::Error::from_raw_os_error(e.errno())))?;
            if status.pid_inside() == 1 {
                return Ok(cur);
            }
            let ppid = status.ppid.unwrap_or(0);
            if ppid == 0 || self.pidns_of(ppid) != Some(ns) {
                break;
            }
            cur = ppid;
        }
        Err(FsError::new(
            libc::ESRCH,
            format!("no init found above pid {pid} in its pid namespace"),
        ))
    }

    /// Second fallback: the process of namespace `ns` whose pid there is 1, from a scan of
    /// every process (see the module doc for its cost and why no race misleads it).
    fn scan_for_init(&self, pid: u32, ns: u64) -> FsResult<u32> {
        let dir = std::fs::read_dir(&self.proc_root)
            .map_err(|e| FsError::io(format!("list {}", self.proc_root.display()), &e))?;
        let init = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|&p| self.is_init_of(p, ns));
        match init {
            Some(init) => {
                tracing::debug!("pid {pid}: namespace init {init} found by a /proc scan");
                Ok(init)
            }
            // The namespace is gone (its init exited), or the caller was never in one that
            // had an init visible from here.
            None => Err(FsError::new(
                libc::ESRCH,
                format!("no init found for pid {pid}'s pid namespace"),
            )),
        }
    }

    /// Drop cache entries whose init is gone.
    pub fn prune(&self) {
        prune(&self.cache);
    }

    /// Number of cached namespaces.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// The inode of the pid namespace `/proc/<pid>/ns/pid` names. From the link's text,
/// `pid:[4026531836]` (the namespace's inode number, as `stat` of the link's target gives it):
/// `readlink` costs a third of the `stat`, which follows the link into nsfs, and this is done
/// for every request. Anything else (a fixture's plain file) is `stat`ed.
fn pidns_ino(path: &Path) -> std::io::Result<u64> {
    if let Ok(target) = std::fs::read_link(path) {
        let ino = target
            .to_str()
            .and_then(|t| t.strip_prefix("pid:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(ino) = ino {
            return Ok(ino);
        }
    }
    std::fs::metadata(path).map(|m| m.ino())
}

/// Drop the entries whose init has exited (a zombie init counts as exited: its namespace is
/// dead, no new process can join it).
fn prune(cache: &Cache) {
    cache.retain(|_, v| !v.pidfd.wait_exit(Duration::ZERO));
}

/// Start the reaper thread; the epoll it waits on, or `None` (then only the size-triggered
/// prune in `resolve` bounds the cache).
fn start_reaper(cache: Weak<Cache>) -> Option<Arc<Epoll>> {
    let epoll = match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            tracing::warn!("epoll_create: {e}; dead containers are forgotten late");
            return None;
        }
    };
    let watched = epoll.clone();
    match std::thread::Builder::new()
        .name("init-reaper".into())
        .spawn(move || reap(&watched, &cache))
    {
        Ok(_) => Some(epoll),
        Err(e) => {
            tracing::warn!("cannot start the init reaper: {e}; dead containers are forgotten late");
            None
        }
    }
}

/// Drop each namespace's entry as soon as its init's pidfd becomes readable, and sweep the
/// whole cache every [`SWEEP_EVERY`]; return once the resolver is gone.
fn reap(epoll: &Epoll, cache: &Weak<Cache>) {
    let mut events = [EpollEvent::empty(); 64];
    let mut swept = Instant::now();
    loop {
        let n = match epoll.wait(&mut events, EpollTimeout::from(REAPER_TICK)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => {
                tracing::warn!("init reaper: epoll_wait: {e}; stopping it");
                return;
            }
        };
        let Some(cache) = cache.upgrade() else {
            return;
        };
        for ev in &events[..n] {
            // Only if the entry *now* under this namespace is the one that exited: the
            // namespace inode may have been recycled and cached afresh meanwhile.
            cache.remove_if(&ev.data(), |_, v| v.pidfd.wait_exit(Duration::ZERO));
        }
        if swept.elapsed() >= SWEEP_EVERY {
            prune(&cache);
            swept = Instant::now();
        }
    }
}

fn gone(pid: u32, e: &std::io::Error) -> FsError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => {
            FsError::new(libc::ESRCH, format!("process {pid} is gone"))
        }
        _ => FsError::io(format!("inspect process {pid}"), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_host_scope() {
        let r = CallerResolver::new(Path::new("/proc"), true).unwrap();
        let me = std::process::id();
        assert_eq!(r.resolve(me).unwrap(), Scope::Host { pid: me });
        assert_eq!(r.resolve(0).unwrap_err().errno, libc::EACCES);
        assert_eq!(r.resolve(u32::MAX / 2).unwrap_err().errno, libc::ESRCH);
    }

    fn children_of(pid: u32) -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// A real pid namespace: `unshare -fp sh` (returned with its init `sh` and the `sleep`
    /// below it, pid 2).
    fn pid_namespace() -> (std::process::Child, u32, u32) {
        let unshare = std::process::Command::new("unshare")
            .args([
                "--fork",
                "--pid",
                "--kill-child",
                "sh",
                "-c",
                "sleep 30 & wait",
            ])
            .spawn()
            .unwrap();
        let up = unshare.id();
        for _ in 0..200 {
            if let Some(&sh) = children_of(up).first() {
                if let Some(&sleep) = children_of(sh).first() {
                    return (unshare, sh, sleep);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut unshare = unshare;
        let _ = unshare.kill();
        let _ = unshare.wait();
        panic!("no namespace init below unshare {up}");
    }

    /// A real pid namespace: `unshare -fp sh` is its init, the `sleep` below it is pid 2.
    #[test]
    fn resolves_real_pid_namespace_init() {
        let (mut unshare, sh, sleep) = pid_namespace();
        let r = CallerResolver::new(Path::new("/proc"), true).unwrap();
        assert_eq!(r.resolve(sleep).unwrap(), Scope::Container { init: sh });
        assert_eq!(r.resolve(sh).unwrap(), Scope::Container { init: sh });
        assert_eq!(r.cached(), 1);
        let ns = std::fs::metadata(format!("/proc/{sleep}/ns/pid"))
            .unwrap()
            .ino();
        assert_eq!(
            pidns_ino(Path::new(&format!("/proc/{sleep}/ns/pid"))).unwrap(),
            ns,
            "the link's text names the inode stat gives"
        );
        assert_eq!(
            r.walk_to_init(sleep, ns).unwrap(),
            sh,
            "fallback agrees with the ioctl"
        );
        let held = r
            .resolve_held(sleep)
            .unwrap()
            .held
            .expect("held for a cached init");
        let held = held.proc_cgroup.as_ref().expect("its /proc/<pid>/cgroup");
        let text = |f: &File| {
            let mut b = vec![0u8; 4096];
            std::os::unix::fs::FileExt::read_at(f, &mut b, 0).map(|n| b.truncate(n))?;
            Ok::<_, std::io::Error>(b)
        };
        assert_eq!(
            text(held).unwrap(),
            std::fs::read(format!("/proc/{sh}/cgroup")).unwrap()
        );
        // The namespace's init, started by the `unshare` we spawned.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sh as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = unshare.wait();
        assert_eq!(
            text(held).unwrap_err().raw_os_error(),
            Some(libc::ESRCH),
            "a held descriptor of a gone init reads ESRCH, never a reused pid's cgroups"
        );
        // No prune call: the reaper saw the pidfd become readable and dropped the entry.
        let t = Instant::now();
        while r.cached() > 0 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(r.cached(), 0, "dead init dropped by the reaper");
    }

    /// A process that joined the namespace with `setns()` (`nsenter -p`, as `lxr exec` does):
    /// its parent is outside, so the parent walk fails; without the ioctl (kernels before
    /// 6.11) the /proc scan must find the init all the same.
    #[test]
    fn resolves_a_setns_caller_without_the_ioctl() {
        let (mut unshare, sh, _) = pid_namespace();
        let mut nsenter = std::process::Command::new("nsenter")
            .args(["-t", &sh.to_string(), "-p", "--", "sleep", "30"])
            .spawn()
            .unwrap();
        let mut joined = None;
        for _ in 0..200 {
            if let Some(&c) = children_of(nsenter.id()).first() {
                joined = Some(c);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let joined = joined.expect("nsenter's child");
        let ns = std::fs::metadata(format!("/proc/{joined}/ns/pid"))
            .unwrap()
            .ino();
        let old = CallerResolver::new(Path::new("/proc"), false).unwrap();
        assert!(
            old.walk_to_init(joined, ns).is_err(),
            "its parent (nsenter) is outside the namespace"
        );
        assert_eq!(old.scan_for_init(joined, ns).unwrap(), sh);
        assert_eq!(old.resolve(joined).unwrap(), Scope::Container { init: sh });
        assert_eq!(old.cached(), 1);
        let new = CallerResolver::new(Path::new("/proc"), true).unwrap();
        assert_eq!(
            new.resolve(joined).unwrap(),
            Scope::Container { init: sh },
            "the ioctl agrees"
        );
        // The namespace's init (started with --kill-child by the `unshare` this test started)
        // dies, and every process in its namespace with it; nsenter, still there, reaps its
        // child.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(unshare.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = unshare.wait();
        let _ = nsenter.wait();
        // The namespace is gone: nothing to find.
        let t = Instant::now();
        while old.scan_for_init(joined, ns).is_ok() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            old.scan_for_init(joined, ns).unwrap_err().errno,
            libc::ESRCH
        );
    }
}
