//! A handle on one cgroup directory: its hierarchy, its path inside it, and a walk up to
//! the hierarchy's root (for limits that are the minimum over ancestors).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::{Hierarchy, Version};
use crate::parse;

/// One cgroup: a directory below a mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cgroup {
    /// v1 or v2 (decides which file names and formats apply).
    pub version: Version,
    /// The mount point of the hierarchy (the top of the walk up).
    pub mount_point: PathBuf,
    /// The path below the mount point, without a leading `/` (empty for the root).
    pub rel: String,
}

impl Cgroup {
    /// A cgroup given its path relative to a mount point (`/` or empty for the root).
    pub fn new(version: Version, mount_point: impl Into<PathBuf>, rel: &str) -> Result<Cgroup> {
        let rel = rel.trim_matches('/');
        if rel.split('/').any(|c| c == ".." || c == ".") {
            return Err(Error::OutsideHierarchy(rel.to_string()));
        }
        Ok(Cgroup {
            version,
            mount_point: mount_point.into(),
            rel: rel.to_string(),
        })
    }

    /// Resolve a `/proc/<pid>/cgroup` path against a hierarchy, honouring the mount's root
    /// (a hierarchy mounted from a sub-cgroup only shows that subtree).
    pub fn in_hierarchy(h: &Hierarchy, path: &str) -> Result<Cgroup> {
        let root = h.mount_root.trim_end_matches('/');
        let rel = if root.is_empty() {
            path
        } else if path == root {
            ""
        } else {
            path.strip_prefix(root)
                .filter(|r| r.starts_with('/'))
                .ok_or_else(|| Error::OutsideHierarchy(path.to_string()))?
        };
        Cgroup::new(h.version, &h.mount_point, rel)
    }

    /// The directory of this cgroup.
    pub fn dir(&self) -> PathBuf {
        if self.rel.is_empty() {
            self.mount_point.clone()
        } else {
            self.mount_point.join(&self.rel)
        }
    }

    /// The path of a file in this cgroup.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// True for the root of the hierarchy.
    pub fn is_root(&self) -> bool {
        self.rel.is_empty()
    }

    /// The parent cgroup, or `None` at the root.
    pub fn parent(&self) -> Option<Cgroup> {
        if self.rel.is_empty() {
            return None;
        }
        let rel = match self.rel.rfind('/') {
            Some(i) => self.rel[..i].to_string(),
            None => String::new(),
        };
        Some(Cgroup {
            version: self.version,
            mount_point: self.mount_point.clone(),
            rel,
        })
    }

    /// This cgroup, then each ancestor up to and including the root.
    pub fn self_and_ancestors(&self) -> impl Iterator<Item = Cgroup> {
        std::iter::successors(Some(self.clone()), Cgroup::parent)
    }

    /// The cgroup that has `file` for this one: itself, or the nearest ancestor below the root
    /// that has it; `None` when only the root has it, or nothing does. On cgroup v2 a
    /// controller's files exist only in cgroups whose parent enables the controller
    /// (`cgroup.subtree_control`); a cgroup without them is charged to, and limited by, the
    /// nearest ancestor that has them.
    pub fn nearest_with(&self, file: &str) -> Option<Cgroup> {
        self.self_and_ancestors()
            .take_while(|c| !c.is_root())
            .find(|c| c.file(file).exists())
    }

    /// Read a file of this cgroup as a string.
    pub fn read(&self, name: &str) -> Result<String> {
        parse::read_to_string(&self.file(name))
    }

    /// Read a file of this cgroup; `Ok(None)` if it does not exist.
    pub fn read_opt(&self, name: &str) -> Result<Option<String>> {
        match self.read(name) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Read a file holding one unsigned integer.
    pub fn read_u64(&self, name: &str) -> Result<u64> {
        let path = self.file(name);
        parse::parse_u64(&path, &parse::read_to_string(&path)?)
    }

    /// Read a file holding one unsigned integer; `Ok(None)` if the file does not exist.
    pub fn read_u64_opt(&self, name: &str) -> Result<Option<u64>> {
        let path = self.file(name);
        match self.read_opt(name)? {
            Some(t) => parse::parse_u64(&path, &t).map(Some),
            None => Ok(None),
        }
    }

    /// Read a `max`-or-number file; outer `None` if the file does not exist.
    pub fn read_max_opt(&self, name: &str) -> Result<Option<Option<u64>>> {
        let path = self.file(name);
        match self.read_opt(name)? {
            Some(t) => parse::parse_max_or_u64(&path, &t).map(Some),
            None => Ok(None),
        }
    }

    /// The path used in messages.
    pub fn display_path(&self) -> &Path {
        self.mount_point.as_path()
    }
}

impl crate::layout::Layout {
    /// The cgroup of a process for `controller`, given its parsed `/proc/<pid>/cgroup`.
    pub fn cgroup_for(
        &self,
        controller: &str,
        procs: &crate::proc_cgroup::ProcCgroups,
    ) -> Result<Cgroup> {
        let h = self
            .hierarchy_for(controller)
            .ok_or_else(|| crate::error::Error::NoController(controller.into()))?;
        let path = match h.version {
            Version::V1 => procs.v1_path(controller),
            Version::V2 => procs.unified_path(),
        }
        .ok_or_else(|| crate::error::Error::NoController(controller.into()))?;
        Cgroup::in_hierarchy(h, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_up() {
        let c = Cgroup::new(Version::V1, "/sys/fs/cgroup/memory", "/a/b/c").unwrap();
        let all: Vec<String> = c.self_and_ancestors().map(|c| c.rel).collect();
        assert_eq!(all, vec!["a/b/c", "a/b", "a", ""]);
        assert_eq!(c.dir(), Path::new("/sys/fs/cgroup/memory/a/b/c"));
        assert_eq!(
            c.parent()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .dir(),
            Path::new("/sys/fs/cgroup/memory")
        );
    }

    #[test]
    fn nearest_with_skips_cgroups_without_the_file_and_the_root() {
        let fx = crate::fixture::Fixture::new();
        let top = fx.v2_cgroup("a");
        let leaf = fx.v2_cgroup("a/b/c");
        fx.write(&fx.v2_cgroup(""), "memory.stat", "");
        assert_eq!(
            leaf.nearest_with("memory.current"),
            None,
            "the root does not count"
        );
        fx.write(&top, "memory.current", "1\n");
        assert_eq!(leaf.nearest_with("memory.current"), Some(top.clone()));
        fx.write(&leaf, "memory.current", "1\n");
        assert_eq!(leaf.nearest_with("memory.current"), Some(leaf));
        assert_eq!(top.parent().unwrap().nearest_with("memory.stat"), None);
    }

    #[test]
    fn escapes_are_refused() {
        assert!(Cgroup::new(Version::V2, "/x", "/../..").is_err());
        assert!(Cgroup::new(Version::V2, "/x", "/a/./b").is_err());
    }

    #[test]
    fn mount_root_is_honoured() {
        let h = Hierarchy {
            version: Version::V2,
            mount_point: "/sys/fs/cgroup".into(),
            mount_root: "/lxc/c1".into(),
            controllers: vec![],
        };
        assert_eq!(Cgroup::in_hierarchy(&h, "/lxc/c1/sub").unwrap().rel, "sub");
        assert_eq!(Cgroup::in_hierarchy(&h, "/lxc/c1").unwrap().rel, "");
        assert!(Cgroup::in_hierarchy(&h, "/lxc/c10").is_err());
        assert!(Cgroup::in_hierarchy(&h, "/other").is_err());
    }
}
