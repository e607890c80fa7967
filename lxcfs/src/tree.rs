//! The shape of the mount: lxcfs 5.x's layout, as a table of inodes.
//!
//! ```text
//! /proc/{cpuinfo,diskstats,loadavg,meminfo,slabinfo,stat,swaps,uptime}
//! /proc/pressure/{cpu,io,memory}          (only when the host has PSI)
//! /sys/devices/system/cpu/                (host sysfs passed through, `online` virtualised)
//! ```
//!
//! Virtual nodes have fixed inode numbers; a passed-through sysfs entry's number is a hash of
//! its path. Numbers must mean the same thing to every generation of the daemon: after a live
//! upgrade or a crash the kernel still holds the predecessor's inodes, so a successor that
//! meets a number it has not handed out finds its path by hashing the (small, finite) cpu
//! tree ([`Tree::learn_sys`]).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Inode of the mount's root.
pub const ROOT_INO: u64 = 1;
const PROC_INO: u64 = 2;
const SYS_INO: u64 = 3;
const SYS_DEVICES_INO: u64 = 4;
const SYS_SYSTEM_INO: u64 = 5;
/// Inode of `sys/devices/system/cpu` (the passed-through directory).
pub const SYS_CPU_INO: u64 = 6;
const PRESSURE_INO: u64 = 7;
/// First inode number handed to passed-through sysfs entries.
pub const FIRST_DYNAMIC_INO: u64 = 1024;

/// A file whose content is computed per container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VFile {
    /// `/proc/cpuinfo`
    Cpuinfo,
    /// `/proc/diskstats`
    Diskstats,
    /// `/proc/loadavg`
    Loadavg,
    /// `/proc/meminfo`
    Meminfo,
    /// `/proc/slabinfo`
    Slabinfo,
    /// `/proc/stat`
    Stat,
    /// `/proc/swaps`
    Swaps,
    /// `/proc/uptime`
    Uptime,
    /// `/proc/pressure/<resource>`
    Pressure(Psi),
    /// `/sys/devices/system/cpu/online`
    CpuOnline,
}

/// A PSI resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Psi {
    /// cpu
    Cpu,
    /// io
    Io,
    /// memory
    Memory,
}

impl Psi {
    /// The file name under `/proc/pressure`, also the cgroup file prefix (`cpu.pressure`).
    pub fn name(self) -> &'static str {
        match self {
            Psi::Cpu => "cpu",
            Psi::Io => "io",
            Psi::Memory => "memory",
        }
    }
}

const PROC_FILES: [(&str, VFile); 8] = [
    ("cpuinfo", VFile::Cpuinfo),
    ("diskstats", VFile::Diskstats),
    ("loadavg", VFile::Loadavg),
    ("meminfo", VFile::Meminfo),
    ("slabinfo", VFile::Slabinfo),
    ("stat", VFile::Stat),
    ("swaps", VFile::Swaps),
    ("uptime", VFile::Uptime),
];
const PSI_FILES: [(&str, VFile); 3] = [
    ("cpu", VFile::Pressure(Psi::Cpu)),
    ("io", VFile::Pressure(Psi::Io)),
    ("memory", VFile::Pressure(Psi::Memory)),
];

impl VFile {
    fn ino(self) -> u64 {
        match self {
            VFile::Cpuinfo => 10,
            VFile::Diskstats => 11,
            VFile::Loadavg => 12,
            VFile::Meminfo => 13,
            VFile::Slabinfo => 14,
            VFile::Stat => 15,
            VFile::Swaps => 16,
            VFile::Uptime => 17,
            VFile::Pressure(Psi::Cpu) => 20,
            VFile::Pressure(Psi::Io) => 21,
            VFile::Pressure(Psi::Memory) => 22,
            VFile::CpuOnline => 30,
        }
    }

    /// The host file this one stands in for, relative to procfs / the sysfs cpu dir; its
    /// owner and mode are copied (minus write bits).
    pub fn host_path(self, proc_root: &Path, sys_cpu_root: &Path) -> PathBuf {
        match self {
            VFile::CpuOnline => sys_cpu_root.join("online"),
            VFile::Pressure(p) => proc_root.join("pressure").join(p.name()),
            other => {
                let name = PROC_FILES
                    .iter()
                    .find(|(_, f)| *f == other)
                    .map(|(n, _)| *n)
                    .unwrap_or("");
                proc_root.join(name)
            }
        }
    }
}

/// What an inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A fixed directory of the layout.
    Dir,
    /// A virtual file.
    File(VFile),
    /// An entry of the host's `/sys/devices/system/cpu`, by path relative to it (empty for
    /// the directory itself).
    Sys(PathBuf),
}

/// The inode table.
#[derive(Debug)]
pub struct Tree {
    psi: bool,
    sys: RwLock<SysInodes>,
}

#[derive(Debug, Default)]
struct SysInodes {
    by_path: HashMap<PathBuf, u64>,
    by_ino: HashMap<u64, PathBuf>,
}

/// The hashed inode of a sysfs path: FNV-1a of its bytes, folded above the fixed numbers.
/// Collisions (about 2^-62 per pair) are resolved by probing upwards, in lookup order.
fn sys_hash(rel: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rel.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    FIRST_DYNAMIC_INO + h % (u64::MAX / 2)
}

impl Tree {
    /// A tree; `psi` says whether `/proc/pressure` exists on the host.
    pub fn new(psi: bool) -> Tree {
        Tree {
            psi,
            sys: RwLock::new(SysInodes::default()),
        }
    }

    /// What `ino` is.
    pub fn node(&self, ino: u64) -> Option<Node> {
        match ino {
            ROOT_INO | PROC_INO | SYS_INO | SYS_DEVICES_INO | SYS_SYSTEM_INO => Some(Node::Dir),
            PRESSURE_INO if self.psi => Some(Node::Dir),
            SYS_CPU_INO => Some(Node::Sys(PathBuf::new())),
            i if i >= FIRST_DYNAMIC_INO => {
                let sys = self.sys.read().unwrap_or_else(|e| e.into_inner());
                sys.by_ino.get(&i).cloned().map(Node::Sys)
            }
            i => self.all_files().find(|f| f.ino() == i).map(Node::File),
        }
    }

    /// Every generated file of the layout.
    pub(crate) fn all_files(&self) -> impl Iterator<Item = VFile> + '_ {
        let psi = if self.psi { &PSI_FILES[..] } else { &[][..] };
        PROC_FILES
            .iter()
            .chain(psi)
            .map(|(_, f)| *f)
            .chain([VFile::CpuOnline])
    }

    /// Children of a fixed directory: `(name, ino, node)`. `None` for other inodes.
    pub fn fixed_children(&self, ino: u64) -> Option<Vec<(&'static str, u64, Node)>> {
        let files = |list: &[(&'static str, VFile)]| {
            list.iter()
                .map(|(n, f)| (*n, f.ino(), Node::File(*f)))
                .collect::<Vec<_>>()
        };
        Some(match ino {
            ROOT_INO => vec![("proc", PROC_INO, Node::Dir), ("sys", SYS_INO, Node::Dir)],
            PROC_INO => {
                let mut v = files(&PROC_FILES);
                if self.psi {
                    v.push(("pressure", PRESSURE_INO, Node::Dir));
                }
                v
            }
            PRESSURE_INO if self.psi => files(&PSI_FILES),
            SYS_INO => vec![("devices", SYS_DEVICES_INO, Node::Dir)],
            SYS_DEVICES_INO => vec![("system", SYS_SYSTEM_INO, Node::Dir)],
            SYS_SYSTEM_INO => vec![("cpu", SYS_CPU_INO, Node::Sys(PathBuf::new()))],
            _ => return None,
        })
    }

    /// The parent inode of a directory (for `..`).
    pub fn parent_of(&self, ino: u64) -> u64 {
        match ino {
            PROC_INO | SYS_INO => ROOT_INO,
            PRESSURE_INO => PROC_INO,
            SYS_DEVICES_INO => SYS_INO,
            SYS_SYSTEM_INO => SYS_DEVICES_INO,
            SYS_CPU_INO => SYS_SYSTEM_INO,
            i => match self.node(i) {
                Some(Node::Sys(p)) => match p.parent() {
                    Some(pp) if !pp.as_os_str().is_empty() => self.sys_ino(pp),
                    _ => SYS_CPU_INO,
                },
                _ => ROOT_INO,
            },
        }
    }

    /// The inode of a child of a fixed directory, or of `online` in the cpu directory.
    pub fn fixed_lookup(&self, parent: u64, name: &OsStr) -> Option<(u64, Node)> {
        if parent == SYS_CPU_INO && name == "online" {
            return Some((VFile::CpuOnline.ino(), Node::File(VFile::CpuOnline)));
        }
        self.fixed_children(parent)?
            .into_iter()
            .find(|(n, _, _)| OsStr::new(n) == name)
            .map(|(_, i, node)| (i, node))
    }

    /// The inode of a passed-through sysfs entry (recorded, so [`Tree::node`] knows it).
    pub fn sys_ino(&self, rel: &Path) -> u64 {
        if rel.as_os_str().is_empty() {
            return SYS_CPU_INO;
        }
        if let Some(i) = self
            .sys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_path
            .get(rel)
        {
            return *i;
        }
        let mut sys = self.sys.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = sys.by_path.get(rel) {
            return *i;
        }
        let mut ino = sys_hash(rel);
        while sys.by_ino.contains_key(&ino) {
            ino = ino.wrapping_add(1).max(FIRST_DYNAMIC_INO);
        }
        sys.by_ino.insert(ino, rel.to_path_buf());
        sys.by_path.insert(rel.to_path_buf(), ino);
        ino
    }

    /// Record every entry below `root` (the host's cpu directory), a few levels deep, so a
    /// hashed inode handed out by a predecessor resolves. Returns whether `wanted` is known now.
    pub fn learn_sys(&self, root: &Path, wanted: u64) -> bool {
        fn walk(t: &Tree, root: &Path, rel: &Path, depth: usize) {
            let Ok(rd) = std::fs::read_dir(root.join(rel)) else {
                return;
            };
            for e in rd.flatten() {
                let child = rel.join(e.file_name());
                t.sys_ino(&child);
                let is_dir = e.file_type().map(|k| k.is_dir()).unwrap_or(false);
                if is_dir && depth > 1 {
                    walk(t, root, &child, depth - 1);
                }
            }
        }
        walk(self, root, Path::new(""), 4);
        self.node(wanted).is_some()
    }

    /// The inode of a virtual file.
    pub fn file_ino(f: VFile) -> u64 {
        f.ino()
    }

    /// Every name a fixed directory lists; `..`'s target included for convenience.
    pub fn names(&self, ino: u64) -> Vec<OsString> {
        self.fixed_children(ino)
            .map(|v| v.into_iter().map(|(n, _, _)| OsString::from(n)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_lxcfs() {
        let t = Tree::new(true);
        let proc = t.fixed_lookup(ROOT_INO, OsStr::new("proc")).unwrap().0;
        let names = t.names(proc);
        for n in [
            "cpuinfo",
            "diskstats",
            "loadavg",
            "meminfo",
            "slabinfo",
            "stat",
            "swaps",
            "uptime",
            "pressure",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing");
        }
        let no_psi = Tree::new(false);
        assert!(no_psi.fixed_lookup(proc, OsStr::new("pressure")).is_none());
        assert!(no_psi.node(PRESSURE_INO).is_none());
    }

    #[test]
    fn sys_inodes_are_stable() {
        let t = Tree::new(false);
        let a = t.sys_ino(Path::new("cpu0"));
        let b = t.sys_ino(Path::new("cpu0/topology"));
        assert_eq!(a, t.sys_ino(Path::new("cpu0")));
        assert_ne!(a, b);
        assert_eq!(t.node(b), Some(Node::Sys(PathBuf::from("cpu0/topology"))));
        assert_eq!(t.parent_of(b), a);
        assert_eq!(t.parent_of(a), SYS_CPU_INO);
        assert_eq!(
            t.fixed_lookup(SYS_CPU_INO, OsStr::new("online")).unwrap().1,
            Node::File(VFile::CpuOnline)
        );
    }

    #[test]
    fn a_successor_resolves_its_predecessors_sys_inodes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("cpu1/topology")).unwrap();
        std::fs::write(d.path().join("cpu1/topology/core_id"), "1\n").unwrap();
        let old = Tree::new(false);
        let ino = old.sys_ino(Path::new("cpu1/topology/core_id"));
        let new = Tree::new(false);
        assert_eq!(new.node(ino), None);
        assert!(new.learn_sys(d.path(), ino));
        assert_eq!(
            new.node(ino),
            Some(Node::Sys(PathBuf::from("cpu1/topology/core_id")))
        );
        assert!(!new.learn_sys(d.path(), ino + 1));
    }
}
