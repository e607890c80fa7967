//! The `-l/--enable-loadavg` sampler: a background thread that, every 5 s, counts the threads
//! of each sampled cpu cgroup (and its sub-cgroups) that are running or in uninterruptible
//! sleep, and folds the count into the kernel's exponential load averages (same fixed-point
//! constants as the kernel). The daemon starts it; `render::loadavg` only reads its table.
//! A cgroup is sampled from its first read on, until it is gone (as lxcfs does). It used to be
//! dropped after a minute unread, so that a container read less often — `uptime` now and then,
//! a monitor polling every few minutes — always saw `0.00 0.00 0.00` (the v2 guest showed it:
//! its readers were that slow under TCG).
//!
//! At scale the cost is the count. lxcfs reads `/proc/<pid>/task/*/status` for every thread
//! of every container every 5 s (and froze past ~250 containers, #504). Here one taskstats
//! `CGROUPSTATS` netlink call per cgroup lets the kernel count (`cgroupstats`); where that
//! is not available (cgroup2, no `CAP_NET_ADMIN`) each thread's `/proc/<tid>/stat` is read
//! instead. The table is locked only to list the targets and to store the results, never
//! across the counting.

mod cgroupstats;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cgroups::Cgroup;

use cgroupstats::CgroupStats;

/// Bits of fraction in a load average (the kernel's `FSHIFT`).
pub const FSHIFT: u32 = 11;
/// 1.0 in fixed point.
pub const FIXED_1: u64 = 1 << FSHIFT;
const EXP: [u64; 3] = [1884, 2014, 2037];
const INTERVAL: Duration = Duration::from_secs(5);
/// How deep below the container's cgroup tasks are counted.
const MAX_DEPTH: usize = 16;

/// What the sampler knows of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loads {
    /// The 1, 5 and 15 minute averages, fixed point ([`FSHIFT`] bits of fraction).
    pub avenrun: [u64; 3],
    /// Running or uninterruptible threads at the last sample.
    pub running: u64,
}

struct Shared {
    proc_root: PathBuf,
    entries: Mutex<HashMap<Cgroup, Loads>>,
    stop: AtomicBool,
    wake: Condvar,
    wake_lock: Mutex<()>,
}

/// The sampler thread and its table.
pub struct Sampler {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The kernel's `calc_load`.
fn calc_load(load: u64, exp: u64, active: u64) -> u64 {
    let mut newload = load * exp + active * (FIXED_1 - exp);
    if active >= load {
        newload += FIXED_1 - 1;
    }
    newload / FIXED_1
}

/// Visit every directory of a cgroup subtree (`MAX_DEPTH` deep), each open; `false` when the
/// cgroup itself is gone. A cgroupfs directory's link count is 2 plus its subdirectories, so
/// a leaf (nearly every container) costs no listing.
pub fn walk(cg: &Cgroup, mut visit: impl FnMut(&Cgroup, &std::fs::File)) -> bool {
    let mut stack = vec![(cg.dir(), 0usize)];
    let mut first = true;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(fd) = std::fs::File::open(&dir) else {
            if first {
                return false;
            }
            continue;
        };
        first = false;
        if depth < MAX_DEPTH && fd.metadata().is_ok_and(|m| m.nlink() > 2) {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push((e.path(), depth + 1));
                    }
                }
            }
        }
        let here = Cgroup {
            rel: String::new(),
            mount_point: dir,
            version: cg.version,
        };
        visit(&here, &fd);
    }
    true
}

/// Threads of a cgroup subtree that are running or in uninterruptible sleep; `None` when the
/// cgroup is gone. Through taskstats when `stats` is given and the kernel answers for the
/// directory (one open, one netlink round trip per cgroup), else through `/proc` per thread.
fn sample(proc_root: &Path, cg: &Cgroup, stats: &mut Option<CgroupStats>) -> Option<u64> {
    let mut running = 0;
    let exists = walk(cg, |dir, fd| {
        if let Some(s) = stats.as_mut() {
            match s.counts(fd) {
                Ok(c) => {
                    running += c.active();
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    tracing::warn!("taskstats refused ({e}); counting tasks through /proc");
                    *stats = None;
                }
                // Not a v1 cgroupfs directory (cgroup2, a test fixture), or it just went.
                Err(_) => {}
            }
        }
        for tid in cgroups::pids::tasks(dir).unwrap_or_default() {
            let Ok(stat) = std::fs::read_to_string(proc_root.join(tid.to_string()).join("stat"))
            else {
                continue;
            };
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_ascii_whitespace().next());
            if matches!(state, Some("R") | Some("D")) {
                running += 1;
            }
        }
    });
    exists.then_some(running)
}

impl Sampler {
    /// Start the sampling thread, reading tasks' states below `proc_root`.
    pub fn start(proc_root: &Path) -> Sampler {
        let shared = Arc::new(Shared {
            proc_root: proc_root.to_path_buf(),
            entries: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
            wake_lock: Mutex::new(()),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("loadavg".into())
            .spawn(move || run(&s2))
            .ok();
        if thread.is_none() {
            tracing::error!("could not start the loadavg thread; /proc/loadavg will not change");
        }
        Sampler {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// The loads of `cg`, which is sampled from now on (until it is gone). A first read counts
    /// its running threads at once.
    pub fn loads(&self, cg: &Cgroup) -> Loads {
        let mut entries = self
            .shared
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *entries.entry(cg.clone()).or_insert_with(|| {
            // Through /proc: the netlink socket is the sampler thread's.
            let running = sample(&self.shared.proc_root, cg, &mut None).unwrap_or(0);
            Loads {
                avenrun: [0; 3],
                running,
            }
        })
    }

    /// Stop and join the thread.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _g = self
                .shared
                .wake_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared) {
    let mut stats = match CgroupStats::open() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::info!("taskstats unavailable ({e}); counting tasks through /proc");
            None
        }
    };
    loop {
        {
            let g = shared.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let _ = shared.wake.wait_timeout(g, INTERVAL);
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Sample outside the table lock: reading many /proc files must not block readers.
        let targets: Vec<Cgroup> = {
            let entries = shared.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.keys().cloned().collect()
        };
        let samples: Vec<(Cgroup, Option<u64>)> = targets
            .into_iter()
            .map(|cg| {
                let s = sample(&shared.proc_root, &cg, &mut stats);
                (cg, s)
            })
            .collect();
        let mut entries = shared.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (cg, running) in samples {
            let Some(running) = running else {
                entries.remove(&cg); // the cgroup is gone
                continue;
            };
            if let Some(e) = entries.get_mut(&cg) {
                for (a, exp) in e.avenrun.iter_mut().zip(EXP) {
                    *a = calc_load(*a, exp, running * FIXED_1);
                }
                e.running = running;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_fixed_point() {
        let mut a = 0;
        for _ in 0..12 {
            a = calc_load(a, EXP[0], 2 * FIXED_1);
        }
        // After a minute of 2 runnable tasks the 1-minute average is ~2·(1−1/e) ≈ 1.26.
        let v = a as f64 / FIXED_1 as f64;
        assert!((1.2..1.35).contains(&v), "{v}");
        assert_eq!(calc_load(0, EXP[0], 0), 0, "idle stays idle");
    }
}
