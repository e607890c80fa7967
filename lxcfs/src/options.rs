//! What the daemon was asked to do: the lxcfs 5.x feature switches, independent of how they
//! were spelled on the command line.

use std::path::PathBuf;

use crate::kernel::Compat;

/// Feature switches and paths of one daemon instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-l/--enable-loadavg`: virtualise `/proc/loadavg` (background sampler).
    pub loadavg: bool,
    /// `-u/--disable-swap` inverted: show swap in meminfo/swaps.
    pub swap: bool,
    /// `--enable-cfs`: derive the visible CPU count from the CFS quota too.
    pub cfs: bool,
    /// How long a container's rendering of a file is reused by its other readers, ms
    /// (`--cache-ms`; 0 renders every read).
    pub cache_ms: u64,
    /// Where procfs is (`/proc`; a fixture dir in tests).
    pub proc_root: PathBuf,
    /// Where the sysfs cpu directory is (`/sys/devices/system/cpu`).
    pub sys_cpu_root: PathBuf,
    /// Which newer kernel features may be used (all, unless a test turns some off).
    pub compat: Compat,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            loadavg: false,
            swap: true,
            cfs: false,
            cache_ms: 20,
            proc_root: PathBuf::from("/proc"),
            sys_cpu_root: PathBuf::from("/sys/devices/system/cpu"),
            compat: Compat::default(),
        }
    }
}
