//! The command line, compatible with lxcfs 5.x: `lxcfs [options] <mountpoint>`.

use std::path::PathBuf;

use clap::Parser;

use crate::fuse_adapter::uring::Mode as IoUring;
use crate::options::Options;

/// Per-container /proc and /sys/devices/system/cpu over FUSE (lxcfs 5.x compatible).
#[derive(Debug, Parser)]
#[command(name = "lxcfs", version, about)]
pub struct Cli {
    /// Virtualise /proc/loadavg (background sampler).
    #[arg(short = 'l', long = "enable-loadavg")]
    pub enable_loadavg: bool,
    /// Show no swap in meminfo and swaps.
    #[arg(short = 'u', long = "disable-swap")]
    pub disable_swap: bool,
    /// Limit the visible CPUs to the CFS quota too.
    #[arg(long = "enable-cfs")]
    pub enable_cfs: bool,
    /// Accepted for compatibility: pidfds are always used.
    #[arg(long = "enable-pidfd")]
    pub enable_pidfd: bool,
    /// Pidfile, locked while the daemon runs.
    #[arg(short = 'p', long = "pidfile", default_value = "/run/lxcfs.pid")]
    pub pidfile: PathBuf,
    /// Accepted for compatibility: the daemon always stays in the foreground.
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// Debug logging.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// Accepted for compatibility (lxcfs's legacy single-thread flag), ignored.
    #[arg(short = 's')]
    pub single: bool,
    /// FUSE mount options; lxcfs's own (allow_other, direct_io, entry/attr timeouts,
    /// nonempty) are always set and dropped here.
    #[arg(short = 'o')]
    pub mount_opts: Option<String>,
    /// How long one container's rendering of a file is shared by its readers, in ms (0: render
    /// every read).
    #[arg(long = "cache-ms", default_value_t = 20)]
    pub cache_ms: u64,
    /// Supervisor mode (for hosts without systemd's fd store): hold the mount and restart the
    /// serving daemon, with backoff, whenever it dies; no read fails meanwhile.
    #[arg(long)]
    pub supervise: bool,
    /// Classic worker threads reading /dev/fuse (default: max(2, CPUs); 1 over io_uring,
    /// whose rings have a thread per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Transport: FUSE over io_uring (one queue per CPU, Linux ≥ 6.14) or the classic
    /// `/dev/fuse` loop. `auto`: io_uring where the host has set
    /// /sys/module/fuse/parameters/enable_uring to Y, except with --supervise or under
    /// systemd's fd store (a crash could leave a reader stuck: see the README); `on` fails
    /// to start if the knob is not Y.
    #[arg(long = "io-uring", value_enum, default_value_t = IoUring::Auto)]
    pub io_uring: IoUring,
    /// Where to mount (normally /var/lib/lxcfs).
    pub mountpoint: PathBuf,
}

impl Cli {
    /// The feature switches (and the test-only kernel switches, `crate::kernel`).
    pub fn options(&self) -> Options {
        Options {
            loadavg: self.enable_loadavg,
            swap: !self.disable_swap,
            cfs: self.enable_cfs,
            cache_ms: self.cache_ms,
            compat: crate::kernel::Compat::from_env(),
            ..Options::default()
        }
    }

    /// `-o` options that are not lxcfs's own (which are always on, or meaningless here).
    pub fn extra_mount_opts(&self) -> Vec<String> {
        self.mount_opts
            .iter()
            .flat_map(|o| o.split(','))
            .filter(|o| !o.is_empty())
            .filter(|o| {
                !matches!(*o, "allow_other" | "direct_io" | "nonempty")
                    && !o.starts_with("entry_timeout")
                    && !o.starts_with("attr_timeout")
            })
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lxcfs_command_lines_parse() {
        let c = Cli::try_parse_from([
            "lxcfs",
            "-l",
            "-u",
            "--enable-cfs",
            "--enable-pidfd",
            "-f",
            "-s",
            "/var/lib/lxcfs",
        ])
        .unwrap();
        let o = c.options();
        assert!(o.loadavg && !o.swap && o.cfs);
        assert_eq!(c.pidfile, PathBuf::from("/run/lxcfs.pid"));
        let c = Cli::try_parse_from([
            "lxcfs",
            "-p",
            "/tmp/x.pid",
            "-o",
            "allow_other,direct_io,entry_timeout=0.5,ro",
            "/mnt",
        ])
        .unwrap();
        assert_eq!(c.extra_mount_opts(), ["ro"]);
        assert_eq!(c.io_uring, IoUring::Auto);
        let c = Cli::try_parse_from(["lxcfs", "--io-uring=on", "/mnt"]).unwrap();
        assert_eq!(c.io_uring, IoUring::On);
        assert!(Cli::try_parse_from(["lxcfs", "--io-uring=maybe", "/mnt"]).is_err());
        assert!(
            Cli::try_parse_from(["lxcfs"]).is_err(),
            "mountpoint is required"
        );
        assert!(
            Cli::try_parse_from(["lxcfs", "a", "b"]).is_err(),
            "exactly one mountpoint"
        );
    }
}
