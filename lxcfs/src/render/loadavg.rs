//! `/proc/loadavg` per container (`-l/--enable-loadavg`): a background thread samples every
//! container that has been read in the last minute, every 5 s, counting the threads of its
//! cpu cgroup (and sub-cgroups) that are running or in uninterruptible sleep, and folds the
//! count into the kernel's exponential averages (same fixed-point constants as the kernel).
//! The last field is the newest pid as seen *inside* the container (lxcfs printed the host
//! pid), found when the file is read rather than at every refresh. A container is dropped
//! from sampling when unread for a minute or gone.
//!
//! At scale the cost is the count. lxcfs reads `/proc/<pid>/task/*/status` for every thread
//! of every container every 5 s (and froze past ~250 containers, #504). Here one taskstats
//! `CGROUPSTATS` netlink call per cgroup lets the kernel count ([`super::cgroupstats`]);
//! where that is not available (cgroup2, no `CAP_NET_ADMIN`) each thread's `/proc/<tid>/stat`
//! is read instead. The table is locked only to list the targets and to store the results,
//! never across the counting.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cgroups::Cgroup;

use super::cgroupstats::CgroupStats;
use super::{host, Ctx, View};
use crate::error::FsResult;
use crate::tree::VFile;

const FSHIFT: u32 = 11;
const FIXED_1: u64 = 1 << FSHIFT;
const EXP: [u64; 3] = [1884, 2014, 2037];
const INTERVAL: Duration = Duration::from_secs(5);
const IDLE_DROP: Duration = Duration::from_secs(60);
/// How deep below the container's cgroup tasks are counted.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone)]
struct Entry {
    avenrun: [u64; 3],
    running: u64,
    last_read: Instant,
}

struct Shared {
    proc_root: PathBuf,
    entries: Mutex<HashMap<Cgroup, Entry>>,
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

fn fmt_load(x: u64) -> String {
    let int = x >> FSHIFT;
    let frac = ((x & (FIXED_1 - 1)) * 100) >> FSHIFT;
    format!("{int}.{frac:02}")
}

/// Visit every directory of a cgroup subtree (`MAX_DEPTH` deep), each open; `false` when the
/// cgroup itself is gone. A cgroupfs directory's link count is 2 plus its subdirectories, so
/// a leaf (nearly every container) costs no listing.
fn walk(cg: &Cgroup, mut visit: impl FnMut(&Path, &std::fs::File)) -> bool {
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
        visit(&dir, &fd);
    }
    true
}

fn dir_cgroup(cg: &Cgroup, dir: &Path) -> Cgroup {
    Cgroup {
        rel: String::new(),
        mount_point: dir.to_path_buf(),
        version: cg.version,
    }
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
        for tid in cgroups::pids::tasks(&dir_cgroup(cg, dir)).unwrap_or_default() {
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

/// Threads of a cgroup subtree right now, and the newest (highest) host tid among them.
/// Read when the file is read, not at every refresh: the task lists are the per-thread cost.
fn threads(cg: &Cgroup) -> (u64, u32) {
    let (mut n, mut newest) = (0, 0);
    walk(cg, |dir, _| {
        for t in cgroups::pids::tasks(&dir_cgroup(cg, dir)).unwrap_or_default() {
            n += 1;
            newest = newest.max(t);
        }
    });
    (n, newest)
}

/// A host pid as seen in its innermost pid namespace (`NSpid`'s last field).
fn pid_in_container(proc_root: &Path, pid: u32) -> u32 {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|v| v.split_ascii_whitespace().last()?.parse().ok())
        })
        .unwrap_or(0)
}

impl Sampler {
    /// Start the sampling thread.
    pub fn start(ctx: &Ctx) -> Sampler {
        let shared = Arc::new(Shared {
            proc_root: ctx.opts.proc_root.clone(),
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

    /// Render `/proc/loadavg` for a view.
    pub fn render(&self, ctx: &Ctx, view: &View) -> FsResult<String> {
        let Some(cg) = view.cgroup(ctx, "cpu")? else {
            return host::read(ctx, VFile::Loadavg);
        };
        let mut entries = self
            .shared
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let e = entries.entry(cg.clone()).or_insert_with(|| {
            // A first read counts through /proc: the netlink socket is the sampler's.
            let running = sample(&self.shared.proc_root, &cg, &mut None).unwrap_or(0);
            Entry {
                avenrun: [0; 3],
                running,
                last_read: Instant::now(),
            }
        });
        e.last_read = Instant::now();
        let e = e.clone();
        drop(entries);
        let (total, newest) = threads(&cg);
        let last = pid_in_container(&self.shared.proc_root, newest);
        Ok(format!(
            "{} {} {} {}/{} {}\n",
            fmt_load(e.avenrun[0]),
            fmt_load(e.avenrun[1]),
            fmt_load(e.avenrun[2]),
            e.running,
            total.max(1),
            last
        ))
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
            let mut entries = shared.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.retain(|_, e| e.last_read.elapsed() < IDLE_DROP);
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
        let s = fmt_load(a);
        let v: f64 = s.parse().unwrap();
        assert!((1.2..1.35).contains(&v), "{s}");
        assert_eq!(fmt_load(0), "0.00");
        assert_eq!(fmt_load(FIXED_1 + FIXED_1 / 2), "1.50");
    }

    #[test]
    fn counts_tasks_of_a_fixture_cgroup() {
        let h = crate::render::testing::Host::hybrid();
        let cg = h.fx.v1_cgroup("cpu", "c");
        h.fx.write(&cg, "tasks", "100\n101\n");
        let sub = h.fx.v1_cgroup("cpu", "c/sub");
        h.fx.write(&sub, "tasks", "102\n");
        for (tid, st) in [(100, "R"), (101, "S"), (102, "D")] {
            h.fx.write_file(
                &format!("proc/{tid}/stat"),
                &format!("{tid} (x y) {st} 1 1\n"),
            );
        }
        h.fx.write_file("proc/102/status", "Name:\tx\nNSpid:\t102\t7\n");
        let out = h.render_with(VFile::Loadavg, "c", |o| o.loadavg = true);
        assert_eq!(out, "0.00 0.00 0.00 2/3 7\n");
        assert_eq!(
            h.render(VFile::Loadavg, "c"),
            "0.50 0.40 0.30 2/150 9999\n",
            "without -l: host"
        );
    }
}
