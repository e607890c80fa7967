//! Remove-on-empty: cgroups marked by RemoveOnEmpty or Prune are removed once they have no
//! processes and no children. cgroup v1's release agent belongs to the host and v2 has none, so
//! the daemon watches — at a cost that follows what *changes*, not how many cgroups are marked
//! (trying `rmdir` on every marked cgroup every second made each tick O(marked)):
//!
//! * v2: `cgroup.events` of each marked cgroup is watched with inotify (the kernel notifies
//!   when `populated` flips);
//! * v1 has no such file: each process in a marked cgroup is watched through a pidfd, which
//!   becomes readable when it exits;
//! * a removal (by the watch, or by the daemon's Remove and Prune) rechecks the parent, a move
//!   by the daemon rechecks the cgroup the process left;
//! * what the kernel does not report — on v1 a process moved out by someone else, a child
//!   cgroup removed directly — is found by a sweep over all marked cgroups every [`SWEEP`].
//!
//! Only marked cgroups that something happened to are rechecked.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cgroups::{Cgroup, Version};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// How often every marked cgroup is tried, for what the kernel does not report.
pub const SWEEP: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Mark {
    /// v1: processes watched through a pidfd.
    pids: HashSet<u32>,
    /// v2: the inotify watch on `cgroup.events`.
    wd: Option<WatchDescriptor>,
}

#[derive(Default)]
struct State {
    marked: BTreeMap<Cgroup, Mark>,
    /// Marked cgroups to try now.
    dirty: BTreeSet<Cgroup>,
    inotify: Option<Inotify>,
    wds: HashMap<WatchDescriptor, Cgroup>,
}

/// The set of cgroups to remove once empty, and what tells the daemon they changed.
#[derive(Default)]
pub struct Watch {
    state: Mutex<State>,
    wake: Notify,
    /// rmdir attempts so far (for the log and the tests' accounting).
    tries: std::sync::atomic::AtomicU64,
}

impl Watch {
    /// An empty watch.
    pub fn new() -> Arc<Watch> {
        Arc::new(Watch::default())
    }

    /// Remove `cg` once it is empty (now, if it already is).
    pub fn mark(self: &Arc<Self>, cg: Cgroup) {
        if let Ok(mut st) = self.state.lock() {
            st.marked.entry(cg.clone()).or_default();
            st.dirty.insert(cg);
        }
        self.check(self.clone());
    }

    /// Something happened to `cg` (a child was removed, a process moved out): if it is
    /// marked, try it.
    pub fn changed(self: &Arc<Self>, cg: &Cgroup) {
        let hit = match self.state.lock() {
            Ok(mut st) if st.marked.contains_key(cg) => st.dirty.insert(cg.clone()),
            _ => false,
        };
        if hit {
            self.wake.notify_one();
        }
    }

    /// How many cgroups are waiting to be removed.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.marked.len()).unwrap_or(0)
    }

    /// Is nothing waiting?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Try every dirty cgroup now (deepest first, so that a parent follows its children),
    /// and watch those still busy.
    fn check(&self, me: Arc<Watch>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        while let Some(cg) = st.dirty.iter().max_by_key(|c| c.depth()).cloned() {
            st.dirty.remove(&cg);
            self.try_remove(&mut st, &me, cg);
        }
    }

    fn try_remove(&self, st: &mut State, me: &Arc<Watch>, cg: Cgroup) {
        if !st.marked.contains_key(&cg) {
            return;
        }
        self.tries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let gone = match cg.remove() {
            Ok(()) => {
                tracing::info!("removed empty {}", cg.dir().display());
                true
            }
            Err(e) if e.errno() == libc::EBUSY || e.errno() == libc::ENOTEMPTY => {
                self.arm(st, me, &cg);
                false
            }
            Err(e) => {
                if !e.is_not_found() {
                    tracing::warn!("no longer watching {}: {e}", cg.dir().display());
                }
                true
            }
        };
        if gone {
            if let Some(m) = st.marked.remove(&cg) {
                if let (Some(wd), Some(i)) = (m.wd, st.inotify.as_ref()) {
                    st.wds.remove(&wd);
                    let _ = i.rm_watch(wd);
                }
            }
            if let Some(p) = cg.parent() {
                if st.marked.contains_key(&p) {
                    st.dirty.insert(p);
                }
            }
        }
    }

    /// Watch a busy marked cgroup for the change that may empty it.
    fn arm(&self, st: &mut State, me: &Arc<Watch>, cg: &Cgroup) {
        match cg.version {
            Version::V2 => {
                if st.marked.get(cg).is_some_and(|m| m.wd.is_some()) {
                    return;
                }
                if st.inotify.is_none() {
                    st.inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                        .map_err(|e| {
                            tracing::warn!("inotify: {e}; marked v2 cgroups wait for the sweep")
                        })
                        .ok();
                    // The task waits on the new descriptor from its next round.
                    self.wake.notify_one();
                }
                let wd = st.inotify.as_ref().and_then(|i| {
                    i.add_watch(&cg.file("cgroup.events"), AddWatchFlags::IN_MODIFY)
                        .ok()
                });
                if let Some(wd) = wd {
                    st.wds.insert(wd, cg.clone());
                    if let Some(m) = st.marked.get_mut(cg) {
                        m.wd = Some(wd);
                    }
                }
            }
            Version::V1 => {
                // Without a runtime (tests of the core) nothing is armed: the sweep or an
                // explicit recheck finds the change.
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let Ok(pids) = cg.procs() else { return };
                for pid in pids {
                    let new = st.marked.get_mut(cg).is_some_and(|m| m.pids.insert(pid));
                    if !new {
                        continue;
                    }
                    let Ok(fd) = cgroups::process::Pidfd::open(pid) else {
                        // Already gone: look again at once.
                        st.dirty.insert(cg.clone());
                        continue;
                    };
                    let (me, cg) = (me.clone(), cg.clone());
                    let Ok(fd) = fd.as_fd().try_clone_to_owned() else {
                        continue;
                    };
                    rt.spawn(async move {
                        // SAFETY: the AsyncFd owns the descriptor and keeps it open until it is
                        // dropped, so the registration never outlives it.
                        if let Ok(afd) = unsafe { AsyncFd::register(fd) } {
                            let _ = afd.readable().await;
                        }
                        me.exited(&cg, pid);
                    });
                }
            }
        }
    }

    /// A watched process of `cg` exited.
    fn exited(&self, cg: &Cgroup, pid: u32) {
        if let Ok(mut st) = self.state.lock() {
            if let Some(m) = st.marked.get_mut(cg) {
                m.pids.remove(&pid);
                st.dirty.insert(cg.clone());
            }
        }
        self.wake.notify_one();
    }

    /// inotify reported changes: the cgroups whose `cgroup.events` changed are dirty.
    fn events(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let Some(i) = st.inotify.as_ref() else {
            return;
        };
        let events = i.read_events().unwrap_or_default();
        for e in events {
            if let Some(cg) = st.wds.get(&e.wd).cloned() {
                st.dirty.insert(cg);
            }
        }
    }

    /// Every marked cgroup is dirty (the sweep).
    fn sweep(&self) {
        if let Ok(mut st) = self.state.lock() {
            let all: Vec<Cgroup> = st.marked.keys().cloned().collect();
            st.dirty.extend(all);
        }
    }

    /// rmdir attempts so far.
    pub fn tries(&self) -> u64 {
        self.tries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The daemon's task: recheck what changed, sweep every [`SWEEP`].
    pub async fn run(self: Arc<Self>) {
        let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + SWEEP, SWEEP);
        loop {
            // A duplicate of the inotify descriptor (same open file, so the same readiness),
            // owned by this wait's registration.
            let inotify = self
                .state
                .lock()
                .ok()
                .and_then(|s| s.inotify.as_ref().map(|i| i.as_fd().try_clone_to_owned()));
            let readable = async {
                let Some(Ok(fd)) = inotify else {
                    return std::future::pending::<()>().await;
                };
                // SAFETY: the AsyncFd owns the descriptor and keeps it open until it is dropped,
                // so the registration never outlives it.
                let afd = unsafe { AsyncFd::register(fd) };
                match afd {
                    Ok(afd) => {
                        let _ = afd.readable().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sweep.tick() => self.sweep(),
                _ = readable => self.events(),
            }
            // rmdir and reading cgroup.procs wait in cgroupfs: off the async threads, as calls.
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.check(me.clone())).await;
        }
    }
}
