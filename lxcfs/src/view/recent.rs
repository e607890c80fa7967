//! A very short-lived memory of what each container's files said (default 20 ms,
//! `--cache-ms`, 0 disables).
//!
//! Rendering a file costs several cgroup and procfs reads (~60 µs for meminfo); a FUSE round
//! trip costs about as much. Under load — many processes of one container reading the same
//! file, the pattern behind lxcfs's "high CPU with many containers" reports (#446, #655) —
//! readers within the window share one rendering. 20 ms is far below any tool's sampling
//! interval (top: 1–3 s), and a container's view never leaks to another: the key is the
//! container's init, which the caller resolution has already validated. Host-namespace
//! callers (each process its own view) are never cached.
//!
//! The bound on staleness: a rendering is stamped with the instant *before* its init's
//! cgroups were read, not when it was finished, and handed out only while younger than the
//! window. So a read that starts more than the window after a change (a limit written, the
//! init moved to another cgroup) never gets a rendering made before it, however long that
//! rendering took; and a slow rendering that finishes late never replaces a fresher one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::tree::VFile;

/// Entries beyond this trigger a sweep of expired ones.
const SWEEP_AT: usize = 4096;

/// When a rendering started (before its cgroups were read), and its bytes.
type Entry = (Instant, Arc<[u8]>);

/// Recent renderings keyed by (file, container init pid).
pub struct Recent {
    ttl: Duration,
    map: DashMap<(VFile, u32), Entry>,
}

impl Recent {
    /// A memory of `ttl` (zero: remember nothing).
    pub fn new(ttl: Duration) -> Recent {
        Recent {
            ttl,
            map: DashMap::new(),
        }
    }

    /// A rendering of `file` for `init` younger than the window.
    pub fn get(&self, file: VFile, init: u32) -> Option<Arc<[u8]>> {
        if self.ttl.is_zero() {
            return None;
        }
        let e = self.map.get(&(file, init))?;
        (e.0.elapsed() < self.ttl).then(|| e.1.clone())
    }

    /// Remember a rendering whose inputs were read from `started` on. A rendering that is
    /// already too old, or older than the one remembered, is not kept.
    pub fn put(&self, file: VFile, init: u32, started: Instant, bytes: Arc<[u8]>) {
        if self.ttl.is_zero() || started.elapsed() >= self.ttl {
            return;
        }
        if self.map.len() >= SWEEP_AT {
            let ttl = self.ttl;
            self.map.retain(|_, v| v.0.elapsed() < ttl);
        }
        self.map
            .entry((file, init))
            .and_modify(|e| {
                if e.0 < started {
                    *e = (started, bytes.clone());
                }
            })
            .or_insert((started, bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_can_be_off() {
        let r = Recent::new(Duration::from_millis(30));
        r.put(VFile::Meminfo, 7, Instant::now(), Arc::from(&b"a"[..]));
        assert_eq!(r.get(VFile::Meminfo, 7).as_deref(), Some(&b"a"[..]));
        assert!(r.get(VFile::Stat, 7).is_none());
        assert!(r.get(VFile::Meminfo, 8).is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(r.get(VFile::Meminfo, 7).is_none());
        let off = Recent::new(Duration::ZERO);
        off.put(VFile::Meminfo, 7, Instant::now(), Arc::from(&b"a"[..]));
        assert!(off.get(VFile::Meminfo, 7).is_none());
    }

    /// A rendering's age counts from its start: one that took longer than the window is
    /// never shared, and one that started earlier never replaces a later one.
    #[test]
    fn age_counts_from_the_start_of_the_rendering() {
        let ttl = Duration::from_secs(10);
        let r = Recent::new(ttl);
        let now = Instant::now();
        let long_ago = now
            .checked_sub(ttl)
            .expect("the monotonic clock (time since boot) is older than 10 s");
        r.put(VFile::Meminfo, 7, long_ago, Arc::from(&b"slow"[..]));
        assert!(
            r.get(VFile::Meminfo, 7).is_none(),
            "a rendering that started a window ago is stale however recently it finished"
        );
        let earlier = now - Duration::from_secs(1);
        r.put(VFile::Meminfo, 7, now, Arc::from(&b"fresh"[..]));
        r.put(VFile::Meminfo, 7, earlier, Arc::from(&b"older"[..]));
        assert_eq!(r.get(VFile::Meminfo, 7).as_deref(), Some(&b"fresh"[..]));
        let later = now + Duration::from_millis(1);
        r.put(VFile::Meminfo, 7, later, Arc::from(&b"newer"[..]));
        assert_eq!(r.get(VFile::Meminfo, 7).as_deref(), Some(&b"newer"[..]));
    }
}
