//! A fake host for the renderers' tests (and the view layer's and the filesystem's): procfs
//! files (from `tests/fixtures/host/`, a 4-CPU host with no swap), a sysfs cpu dir and cgroup
//! hierarchies, all in a temp dir.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use cgroups::fixture::Fixture;
use cgroups::{ProcCgroups, Version};

use super::{Ctx, View};
use crate::caller::{Caller, Scope};
use crate::error::FsResult;
use crate::options::Options;

/// Host pid of the fake container's init.
pub const INIT: u32 = 4242;

pub struct Host {
    pub fx: Fixture,
    pub meminfo: String,
    version: Version,
}

const V1: [&str; 6] = ["cpu", "cpuacct", "cpuset", "memory", "blkio", "pids"];

impl Host {
    fn base(swap_kb: u64) -> Host {
        let fx = Fixture::new();
        let mut meminfo = include_str!("../../tests/fixtures/host/meminfo").to_string();
        if swap_kb > 0 {
            meminfo = meminfo
                .replace(
                    "SwapTotal:             0 kB",
                    &format!("SwapTotal:       {swap_kb:>8} kB"),
                )
                .replace(
                    "SwapFree:              0 kB",
                    &format!("SwapFree:        {swap_kb:>8} kB"),
                );
        }
        fx.write_file("proc/meminfo", &meminfo);
        fx.write_file(
            "proc/cpuinfo",
            include_str!("../../tests/fixtures/host/cpuinfo"),
        );
        fx.write_file("proc/stat", include_str!("../../tests/fixtures/host/stat"));
        fx.write_file(
            "proc/diskstats",
            include_str!("../../tests/fixtures/host/diskstats"),
        );
        fx.write_file(
            "proc/uptime",
            include_str!("../../tests/fixtures/host/uptime"),
        );
        fx.write_file(
            "proc/loadavg",
            include_str!("../../tests/fixtures/host/loadavg"),
        );
        fx.write_file(
            "proc/slabinfo",
            include_str!("../../tests/fixtures/host/slabinfo"),
        );
        fx.write_file(
            "proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        );
        for r in ["cpu", "io", "memory"] {
            fx.write_file(&format!("proc/pressure/{r}"), "some avg10=1.00 avg60=1.00 avg300=1.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        }
        fx.write_file("proc/self/ns/pid", "");
        // Started 1000 s after boot (CLK_TCK 100): field 22 of /proc/<pid>/stat.
        fx.write_file(
            &format!("proc/{INIT}/stat"),
            &format!("{INIT} (init) S 0 {INIT} {INIT} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100000 0 0\n"),
        );
        fx.write_file("sys/devices/system/cpu/online", "0-3\n");
        Host {
            fx,
            meminfo,
            version: Version::V1,
        }
    }

    /// v1 controllers plus an (empty) cgroup2 mount.
    pub fn hybrid() -> Host {
        Self::hybrid_with_swap(0)
    }

    pub fn hybrid_with_swap(swap_kb: u64) -> Host {
        let h = Self::base(swap_kb);
        h.fx.write_hybrid_mountinfo(&V1);
        let root = h.fx.v1_cgroup("cpuset", "");
        h.fx.write(&root, "cpuset.cpus", "0-3\n");
        let cpu = h.fx.v1_cgroup("cpu", "");
        h.fx.write(&cpu, "cpu.cfs_quota_us", "-1\n");
        h.fx.write(&cpu, "cpu.cfs_period_us", "100000\n");
        h
    }

    /// Pure cgroup2 with the given controllers enabled at the root.
    pub fn unified(controllers: &[&str]) -> Host {
        let mut h = Self::base(0);
        h.fx.write_unified_mountinfo(controllers);
        h.fx.write(&h.fx.v2_cgroup(""), "cpuset.cpus.effective", "0-3\n");
        h.version = Version::V2;
        h
    }

    pub fn opts(&self) -> Options {
        Options {
            proc_root: self.fx.proc_root(),
            sys_cpu_root: self.fx.root().join("sys/devices/system/cpu"),
            ..Options::default()
        }
    }

    /// Make the fake container's init `secs_ago` seconds old (its start time, field 22 of
    /// `/proc/<pid>/stat`, against the real machine's uptime, which the renderers use).
    pub fn init_started(&self, secs_ago: f64) {
        let up: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_ascii_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            up > secs_ago + 1.0,
            "the machine is up {up} s: too young to place an init {secs_ago} s in the past"
        );
        let ticks = ((up - secs_ago) * 100.0) as u64; // CLK_TCK is 100 on Linux
        self.fx.write_file(
            &format!("proc/{INIT}/stat"),
            &format!("{INIT} (init) S 0 {INIT} {INIT} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {ticks} 0 0\n"),
        );
    }

    /// `/proc/<pid>/cgroup` of a process in `rel` in every hierarchy.
    fn proc_cgroup(&self, rel: &str) -> String {
        match self.version {
            Version::V1 => {
                let mut t = String::new();
                for (i, c) in V1.iter().enumerate() {
                    t.push_str(&format!("{}:{c}:/{rel}\n", i + 1));
                }
                t + &format!("0::/{rel}\n")
            }
            Version::V2 => format!("0::/{rel}\n"),
        }
    }

    /// The view of a container whose init sits in `rel` in every hierarchy.
    pub fn view(&self, rel: &str) -> View {
        let text = self.proc_cgroup(rel);
        let cgroups = ProcCgroups::parse(std::path::Path::new("cgroup"), &text).unwrap();
        View {
            scope: Scope::Container { init: INIT },
            cgroups: std::sync::Arc::new(cgroups),
        }
    }

    /// What `render` (a renderer of this module's siblings) says for a container in `rel`,
    /// with the options changed by `tweak`.
    pub fn try_render_with(
        &self,
        render: impl FnOnce(&Ctx, &View) -> FsResult<String>,
        rel: &str,
        tweak: impl FnOnce(&mut Options),
    ) -> FsResult<String> {
        let mut o = self.opts();
        tweak(&mut o);
        render(&Ctx::new(&o)?, &self.view(rel))
    }

    pub fn try_render(
        &self,
        render: impl FnOnce(&Ctx, &View) -> FsResult<String>,
        rel: &str,
    ) -> FsResult<String> {
        self.try_render_with(render, rel, |_| {})
    }

    pub fn render(
        &self,
        render: impl FnOnce(&Ctx, &View) -> FsResult<String>,
        rel: &str,
    ) -> String {
        self.try_render(render, rel).unwrap()
    }

    pub fn render_with(
        &self,
        render: impl FnOnce(&Ctx, &View) -> FsResult<String>,
        rel: &str,
        tweak: impl FnOnce(&mut Options),
    ) -> String {
        self.try_render_with(render, rel, tweak).unwrap()
    }

    /// A caller in the daemon's pid namespace (so it gets its own cgroups' view) whose
    /// cgroups are `rel` in every hierarchy.
    pub fn host_caller(&self, rel: &str) -> Caller {
        let pid = 777;
        let dir = self.fx.proc_root().join(pid.to_string());
        std::fs::create_dir_all(dir.join("ns")).unwrap();
        let _ = std::fs::hard_link(self.fx.proc_root().join("self/ns/pid"), dir.join("ns/pid"));
        std::fs::write(dir.join("cgroup"), self.proc_cgroup(rel)).unwrap();
        Caller {
            pid,
            uid: 0,
            gid: 0,
        }
    }
}
