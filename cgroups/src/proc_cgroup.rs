//! `/proc/<pid>/cgroup`: which cgroup a process is in, per hierarchy.
//!
//! The kernel prints paths relative to the *reader's* cgroup namespace root, so a process
//! outside the reader's namespace shows up as `/../..`. Such paths are kept verbatim here and
//! refused when resolved against a hierarchy ([`crate::Cgroup::in_hierarchy`]).

use std::path::Path;

use crate::error::{Error, Result};
use crate::parse::read_to_string;

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroupLine {
    /// Hierarchy id (0 for cgroup2).
    pub id: u32,
    /// Controllers of a v1 hierarchy (`name=…` included); empty for cgroup2.
    pub controllers: Vec<String>,
    /// The cgroup path, starting with `/`.
    pub path: String,
}

/// A parsed `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcCgroups {
    /// The lines in file order.
    pub lines: Vec<ProcCgroupLine>,
}

impl ProcCgroups {
    /// Read `<proc_root>/<pid>/cgroup`.
    pub fn read(proc_root: &Path, pid: u32) -> Result<ProcCgroups> {
        let path = proc_root.join(pid.to_string()).join("cgroup");
        let text = read_to_string(&path)?;
        Self::parse(&path, &text)
    }

    /// Parse the text of a `/proc/<pid>/cgroup` file.
    pub fn parse(path: &Path, text: &str) -> Result<ProcCgroups> {
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let mut it = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(cg)) = (it.next(), it.next(), it.next()) else {
                return Err(Error::parse(
                    path,
                    format!("line {}: expected id:controllers:path", n + 1),
                ));
            };
            let id = id.parse::<u32>().map_err(|_| {
                Error::parse(path, format!("line {}: bad hierarchy id {id:?}", n + 1))
            })?;
            if !cg.starts_with('/') {
                return Err(Error::parse(
                    path,
                    format!("line {}: path {cg:?} is not absolute", n + 1),
                ));
            }
            let controllers = if ctrls.is_empty() {
                Vec::new()
            } else {
                ctrls.split(',').map(str::to_string).collect()
            };
            lines.push(ProcCgroupLine {
                id,
                controllers,
                path: cg.to_string(),
            });
        }
        Ok(ProcCgroups { lines })
    }

    /// The path of the v1 hierarchy that carries `controller`.
    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.id != 0 && l.controllers.iter().any(|c| c == controller))
            .map(|l| l.path.as_str())
    }

    /// The cgroup2 path (the `0::` line).
    pub fn unified_path(&self) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.id == 0 && l.controllers.is_empty())
            .map(|l| l.path.as_str())
    }

    /// Strip a trailing `/init.scope` from every path: systemd moves a container's init
    /// into `<container>/init.scope`, but the container's limits live one level up.
    pub fn prune_init_scope(mut self) -> Self {
        for l in &mut self.lines {
            if let Some(p) = l.path.strip_suffix("/init.scope") {
                l.path = if p.is_empty() {
                    "/".to_string()
                } else {
                    p.to_string()
                };
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_file() {
        let t =
            "9:name=systemd:/\n4:memory:/lxc/c1/init.scope\n2:cpu,cpuacct:/lxc/c1\n0::/lxc/c1\n";
        let p = ProcCgroups::parse(Path::new("cg"), t)
            .unwrap()
            .prune_init_scope();
        assert_eq!(p.v1_path("memory"), Some("/lxc/c1"));
        assert_eq!(p.v1_path("cpuacct"), Some("/lxc/c1"));
        assert_eq!(p.v1_path("name=systemd"), Some("/"));
        assert_eq!(p.unified_path(), Some("/lxc/c1"));
        assert_eq!(p.v1_path("blkio"), None);
    }

    #[test]
    fn paths_with_colons_survive() {
        let p = ProcCgroups::parse(Path::new("cg"), "0::/a:b\n").unwrap();
        assert_eq!(p.unified_path(), Some("/a:b"));
    }

    #[test]
    fn malformed_is_an_error() {
        for bad in ["x:memory:/\n", "4:memory\n", "4:memory:relative\n"] {
            assert!(ProcCgroups::parse(Path::new("cg"), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn init_scope_at_root() {
        let p = ProcCgroups::parse(Path::new("cg"), "0::/init.scope\n")
            .unwrap()
            .prune_init_scope();
        assert_eq!(p.unified_path(), Some("/"));
    }
}
