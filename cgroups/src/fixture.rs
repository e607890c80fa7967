//! Fake cgroup and procfs trees in a temporary directory, shaped like the real mounts
//! (firecracker jailer's `MockCgroupFs` idea): every parser and renderer test runs against
//! one, on any host, as any user.
//!
//! Layout under the fixture root:
//! `sys/fs/cgroup/<controller>/…` (v1), `sys/fs/cgroup/unified/…` (v2),
//! `proc/self/mountinfo`, `proc/<pid>/{cgroup,stat,status}`, `proc/{meminfo,stat,…}`.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::cgroup::Cgroup;
use crate::layout::Version;

/// A fake host root. Dropping it removes the tree.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// A new, empty fixture root.
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("fixture: create temp dir"),
        }
    }

    /// The fixture root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The fake procfs root.
    pub fn proc_root(&self) -> PathBuf {
        self.root().join("proc")
    }

    /// The mount point of a fake v1 hierarchy.
    pub fn v1_root(&self, controller: &str) -> PathBuf {
        self.root().join("sys/fs/cgroup").join(controller)
    }

    /// The mount point of the fake cgroup2 hierarchy.
    pub fn v2_root(&self) -> PathBuf {
        self.root().join("sys/fs/cgroup/unified")
    }

    /// Create (if needed) and return a v1 cgroup.
    pub fn v1_cgroup(&self, controller: &str, rel: &str) -> Cgroup {
        let cg =
            Cgroup::new(Version::V1, self.v1_root(controller), rel).expect("fixture: cgroup path");
        std::fs::create_dir_all(cg.dir()).expect("fixture: mkdir");
        cg
    }

    /// Create (if needed) and return a v2 cgroup.
    pub fn v2_cgroup(&self, rel: &str) -> Cgroup {
        let cg = Cgroup::new(Version::V2, self.v2_root(), rel).expect("fixture: cgroup path");
        std::fs::create_dir_all(cg.dir()).expect("fixture: mkdir");
        cg
    }

    /// Write a file of a cgroup.
    pub fn write(&self, cg: &Cgroup, name: &str, content: &str) {
        std::fs::write(cg.file(name), content).expect("fixture: write cgroup file");
    }

    /// Write any file below the root (parents created).
    pub fn write_file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.root().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("fixture: mkdir");
        }
        std::fs::write(&p, content).expect("fixture: write file");
        p
    }

    /// `proc/self/mountinfo` for a hybrid host whose hierarchies are this fixture's.
    pub fn write_hybrid_mountinfo(&self, v1_controllers: &[&str]) {
        let mut s = String::new();
        for (i, c) in v1_controllers.iter().enumerate() {
            let mp = self.v1_root(c);
            std::fs::create_dir_all(&mp).expect("fixture: mkdir");
            s.push_str(&format!(
                "{} 31 0:{} / {} rw,relatime - cgroup cgroup rw,{}\n",
                32 + i,
                29 + i,
                mp.display(),
                c
            ));
        }
        std::fs::create_dir_all(self.v2_root()).expect("fixture: mkdir");
        s.push_str(&format!(
            "41 31 0:38 / {} rw,relatime - cgroup2 cgroup2 rw\n",
            self.v2_root().display()
        ));
        self.write_file("proc/self/mountinfo", &s);
    }

    /// `proc/self/mountinfo` for a pure cgroup2 host, with `controllers` enabled at the root.
    pub fn write_unified_mountinfo(&self, controllers: &[&str]) {
        std::fs::create_dir_all(self.v2_root()).expect("fixture: mkdir");
        let s = format!(
            "30 23 0:26 / {} rw - cgroup2 cgroup2 rw,nsdelegate\n",
            self.v2_root().display()
        );
        self.write_file("proc/self/mountinfo", &s);
        std::fs::write(
            self.v2_root().join("cgroup.controllers"),
            controllers.join(" ") + "\n",
        )
        .expect("fixture: write cgroup.controllers");
    }

    /// A realistic v1 `memory.stat` with the given hierarchical limits; sizes in bytes:
    /// cache 64 MiB, rss 32 MiB, rss_huge 2 MiB, mapped 3 MiB, shmem 1 MiB.
    pub fn v1_memory_stat(&self, limit: u64, memsw_limit: u64) -> String {
        let m = 1u64 << 20;
        format!(
            "cache 0\nrss 0\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\nwriteback 0\nswap 0\n\
             pgpgin 0\npgpgout 0\npgfault 0\npgmajfault 0\ninactive_anon 0\nactive_anon 0\n\
             inactive_file 0\nactive_file 0\nunevictable 0\n\
             hierarchical_memory_limit {limit}\nhierarchical_memsw_limit {memsw_limit}\n\
             total_cache {}\ntotal_rss {}\ntotal_rss_huge {}\ntotal_shmem {}\ntotal_mapped_file {}\n\
             total_dirty {}\ntotal_writeback 0\ntotal_swap 0\ntotal_pgpgin 1\ntotal_pgpgout 1\n\
             total_pgfault 1\ntotal_pgmajfault 0\ntotal_inactive_anon {}\ntotal_active_anon {}\n\
             total_inactive_file {}\ntotal_active_file {}\ntotal_unevictable 0\n",
            64 * m,
            32 * m,
            2 * m,
            m,
            3 * m,
            m / 4,
            20 * m,
            13 * m,
            40 * m,
            24 * m,
        )
    }
}
