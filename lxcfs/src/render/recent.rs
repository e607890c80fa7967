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

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::tree::VFile;

/// Entries beyond this trigger a sweep of expired ones.
const SWEEP_AT: usize = 4096;

/// When a rendering was made, and its bytes.
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

    /// Remember a fresh rendering.
    pub fn put(&self, file: VFile, init: u32, bytes: Arc<[u8]>) {
        if self.ttl.is_zero() {
            return;
        }
        if self.map.len() >= SWEEP_AT {
            let ttl = self.ttl;
            self.map.retain(|_, v| v.0.elapsed() < ttl);
        }
        self.map.insert((file, init), (Instant::now(), bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_can_be_off() {
        let r = Recent::new(Duration::from_millis(30));
        r.put(VFile::Meminfo, 7, Arc::from(&b"a"[..]));
        assert_eq!(r.get(VFile::Meminfo, 7).as_deref(), Some(&b"a"[..]));
        assert!(r.get(VFile::Stat, 7).is_none());
        assert!(r.get(VFile::Meminfo, 8).is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(r.get(VFile::Meminfo, 7).is_none());
        let off = Recent::new(Duration::ZERO);
        off.put(VFile::Meminfo, 7, Arc::from(&b"a"[..]));
        assert!(off.get(VFile::Meminfo, 7).is_none());
    }
}
