//! Which cgroup hierarchies the host has and where they are mounted, read from
//! `/proc/self/mountinfo`: legacy (v1 only), hybrid (v1 controllers plus a cgroup2 mount) or
//! unified (cgroup2 only).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::parse::read_to_string;

/// The cgroup version of one hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// cgroup v1 (one hierarchy per controller set).
    V1,
    /// cgroup v2 (the unified hierarchy).
    V2,
}

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 mount (systemd's "hybrid").
    Hybrid,
    /// Only cgroup2.
    Unified,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 or v2.
    pub version: Version,
    /// Where it is mounted (first mount seen wins).
    pub mount_point: PathBuf,
    /// The cgroup the mount shows as its root (mountinfo field 4; `/` unless mounted inside a
    /// cgroup namespace or bind-mounted from a sub-cgroup).
    pub mount_root: String,
    /// v1: the controllers (and `name=…`) of the hierarchy. v2: the controllers enabled at its
    /// root (`cgroup.controllers`), filled by [`Layout::detect`].
    pub controllers: Vec<String>,
}

/// All cgroup hierarchies of the host, as seen from one mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Legacy, hybrid or unified.
    pub mode: Mode,
    /// Every distinct hierarchy, v1 ones first in mountinfo order, the v2 one last.
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Detect the layout from `<proc_root>/self/mountinfo` (`proc_root` is `/proc` on a real
    /// host, a fixture directory in tests). For the v2 hierarchy the enabled controllers are
    /// read from its `cgroup.controllers`.
    pub fn detect(proc_root: &Path) -> Result<Layout> {
        let path = proc_root.join("self/mountinfo");
        let text = read_to_string(&path)?;
        let mut layout = Self::from_mountinfo(&path, &text)?;
        for h in layout
            .hierarchies
            .iter_mut()
            .filter(|h| h.version == Version::V2)
        {
            let f = h.mount_point.join("cgroup.controllers");
            if let Ok(t) = std::fs::read_to_string(&f) {
                h.controllers = t.split_ascii_whitespace().map(str::to_string).collect();
            }
        }
        Ok(layout)
    }

    /// Parse mountinfo text. Fails if a cgroup line is malformed or there is no cgroup mount.
    pub fn from_mountinfo(path: &Path, text: &str) -> Result<Layout> {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for m in crate::mountinfo::parse(path, text)? {
            let version = match m.fstype.as_str() {
                "cgroup" => Version::V1,
                "cgroup2" => Version::V2,
                _ => continue,
            };
            let (mount_root, mount_point) = (m.root, m.mount_point);
            let controllers: Vec<String> = match version {
                Version::V1 => m
                    .super_options
                    .split(',')
                    .filter(|o| is_v1_controller_option(o))
                    .map(str::to_string)
                    .collect(),
                Version::V2 => Vec::new(),
            };
            // The same hierarchy can be mounted twice (bind mounts); keep the first.
            let dup = hierarchies.iter().any(|h| {
                h.version == version && (version == Version::V2 || h.controllers == controllers)
            });
            if dup || (version == Version::V1 && controllers.is_empty()) {
                continue;
            }
            hierarchies.push(Hierarchy {
                version,
                mount_point,
                mount_root,
                controllers,
            });
        }
        hierarchies.sort_by_key(|h| h.version == Version::V2);
        let v1 = hierarchies.iter().any(|h| h.version == Version::V1);
        let v2 = hierarchies.iter().any(|h| h.version == Version::V2);
        let mode = match (v1, v2) {
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::Legacy,
            (false, true) => Mode::Unified,
            (false, false) => return Err(Error::parse(path, "no cgroup or cgroup2 mount")),
        };
        Ok(Layout { mode, hierarchies })
    }

    /// The hierarchy that carries `controller`: a v1 hierarchy listing it, else the v2 one if
    /// the controller is enabled there (or, for the pseudo-controller `"unified"`, the v2 one).
    pub fn hierarchy_for(&self, controller: &str) -> Option<&Hierarchy> {
        let v1 = self
            .hierarchies
            .iter()
            .find(|h| h.version == Version::V1 && h.controllers.iter().any(|c| c == controller));
        v1.or_else(|| {
            self.unified().filter(|h| {
                controller == "unified"
                    || (self.mode == Mode::Unified && is_v2_implicit(controller))
                    || h.controllers.iter().any(|c| c == v2_name(controller))
            })
        })
    }

    /// The cgroup2 hierarchy, if mounted.
    pub fn unified(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.version == Version::V2)
    }
}

/// The v2 name of a controller: v1's `blkio` is v2's `io`, and `cpuacct`'s accounting is in
/// v2's `cpu`.
pub fn v2_name(controller: &str) -> &str {
    match controller {
        "blkio" => "io",
        "cpuacct" => "cpu",
        c => c,
    }
}

/// Files every v2 cgroup has without enabling a controller (PSI, `cpu.stat`).
fn is_v2_implicit(controller: &str) -> bool {
    matches!(controller, "cpuacct" | "pressure")
}

fn is_v1_controller_option(opt: &str) -> bool {
    if opt.starts_with("name=") {
        return true;
    }
    !matches!(
        opt,
        "rw" | "ro" | "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode" | "favordynmods"
    ) && !opt.starts_with("release_agent=")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_is_detected() {
        let l = Layout::from_mountinfo(Path::new("mi"), HYBRID).unwrap();
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(
            l.hierarchy_for("memory").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            l.hierarchy_for("name=systemd").unwrap().version,
            Version::V1
        );
        assert!(
            l.hierarchy_for("blkio").is_none(),
            "io not enabled on the v2 root"
        );
        assert_eq!(l.hierarchy_for("unified").unwrap().version, Version::V2);
    }

    #[test]
    fn unified_and_legacy() {
        let u = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let mut l = Layout::from_mountinfo(Path::new("mi"), u).unwrap();
        assert_eq!(l.mode, Mode::Unified);
        l.hierarchies[0].controllers = vec!["memory".into(), "io".into(), "cpu".into()];
        assert_eq!(l.hierarchy_for("blkio").unwrap().version, Version::V2);
        assert_eq!(l.hierarchy_for("cpuacct").unwrap().version, Version::V2);
        assert!(l.hierarchy_for("cpuset").is_none());

        let legacy = "32 31 0:29 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let l = Layout::from_mountinfo(Path::new("mi"), legacy).unwrap();
        assert_eq!(l.mode, Mode::Legacy);
        assert_eq!(
            l.hierarchy_for("cpuacct").unwrap().controllers,
            vec!["cpu", "cpuacct"]
        );
    }

    #[test]
    fn malformed_mountinfo_is_an_error() {
        assert!(Layout::from_mountinfo(Path::new("mi"), "garbage line\n").is_err());
        assert!(Layout::from_mountinfo(Path::new("mi"), "1 2 3 - cgroup\n").is_err());
        assert!(
            Layout::from_mountinfo(Path::new("mi"), "31 23 0:28 / /x rw - tmpfs tmpfs rw\n")
                .is_err()
        );
    }

    #[test]
    fn escaped_mount_points() {
        let t = "32 31 0:29 / /my\\040cg rw - cgroup cgroup rw,memory\n";
        let l = Layout::from_mountinfo(Path::new("mi"), t).unwrap();
        assert_eq!(l.hierarchies[0].mount_point, Path::new("/my cg"));
    }
}
