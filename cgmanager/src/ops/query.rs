//! Read-only operations: where a process is, file values, tasks, children, keys, hierarchies.

use std::io::Read;

use nix::fcntl::OFlag;

use crate::access::{R, X};
use crate::caller::{Caller, Victim};
use crate::controllers::hierarchy_name;
use crate::errors::{from_cgroups, from_io, Error, Kind, Result};
use crate::manager::Manager;
use crate::target;

/// Process or thread ids in the daemon's pid namespace (GetTasks, GetProcs), sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pids(pub Vec<u32>);

/// A file of a cgroup as ListKeys tells it, CGManager's tuple: (name, uid, gid, mode), ids as
/// the caller's user namespace sees them (unmapped ones as 4294967295, like CGManager), mode the
/// whole `st_mode` (33188 for 0644).
pub type Key = (String, u32, u32, u32);

/// Largest value GetValue returns (cgroup files are far smaller; this bounds a hostile tree).
const MAX_VALUE: u64 = 1 << 20;

impl Manager {
    /// GetPidCgroup (`abs` = false: relative to the caller's cgroup, `/` if the same) and
    /// GetPidCgroupAbs (`abs` = true: from the hierarchy root). `pid` is a host pid.
    pub fn get_pid_cgroup(
        &self,
        c: &Caller,
        controller: &str,
        pid: u32,
        abs: bool,
    ) -> Result<String> {
        let h = self.one(controller)?;
        // A thread id names the thread's own cgroups (v1 threads may sit apart from their
        // process), as CGManager read /proc/<tid>/cgroup.
        let v = Victim::load_task(&self.host, pid)?;
        let vcg = self.cgroup_of(&v.cgroups, h)?;
        let base = if abs {
            self.abs_base(c, h)?
        } else {
            self.base(c, h)?
        };
        if !vcg.is_within(&base) {
            return Err(Error::new(
                Kind::OutsideSubtree,
                format!(
                    "process {pid} is in {}, not below your cgroup {}",
                    vcg.abs_path(),
                    base.abs_path()
                ),
            ));
        }
        if abs {
            return Ok(vcg.abs_path());
        }
        let rel = vcg.rel.strip_prefix(&base.rel).unwrap_or(&vcg.rel);
        let rel = rel.trim_start_matches('/');
        Ok(if rel.is_empty() {
            "/".into()
        } else {
            rel.to_string()
        })
    }

    /// GetValue: the content of a cgroup file (one trailing newline removed).
    pub fn get_value(
        &self,
        c: &Caller,
        controller: &str,
        cgroup: &str,
        key: &str,
    ) -> Result<String> {
        target::check_key(key)?;
        let h = self.one(controller)?;
        // v1's memory.limit_in_bytes read on cgroup2 is memory.max, its `max` v1's number.
        let alias = super::value::v2_alias(key, "")
            .filter(|_| h.version == cgroups::Version::V2)
            .map(|(k, _)| k);
        let key = alias.unwrap_or(key);
        let base = self.base(c, h)?;
        let cg = self.resolve(c, &base, cgroup)?;
        self.need(c, &cg, None, R | X, "read")?;
        let f = self.open_checked(c, &cg, key, OFlag::O_RDONLY, R, "read")?;
        let mut buf = Vec::new();
        f.take(MAX_VALUE)
            .read_to_end(&mut buf)
            .map_err(|e| from_io(&e, &format!("read {}/{key}", cg.abs_path())))?;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if alias.is_some() && buf == b"max" {
            return Ok(super::value::V1_NO_MEMORY_LIMIT.to_owned());
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// GetTasks / GetTasksRecursive (`threads`: thread ids, as CGManager read v1's `tasks`) and
    /// GetProcs / GetProcsRecursive (process ids): host ids in the cgroup (and below).
    pub fn get_tasks(
        &self,
        c: &Caller,
        controller: &str,
        cgroup: &str,
        recursive: bool,
        threads: bool,
    ) -> Result<Pids> {
        let run = |h: &cgroups::Hierarchy| -> Result<Vec<u32>> {
            let base = self.base(c, h)?;
            let cg = self.resolve(c, &base, cgroup)?;
            self.need(c, &cg, None, R | X, "list")?;
            match (recursive, threads) {
                (false, false) => cg.procs(),
                (true, false) => cg.procs_recursive(),
                (false, true) => cg.threads(),
                (true, true) => cg.threads_recursive(),
            }
            .map_err(|e| from_cgroups(&e))
        };
        let mut all: Vec<u32> = if recursive {
            self.each(controller, &run)?.into_iter().flatten().collect()
        } else {
            run(self.one(controller)?)?
        };
        all.sort_unstable();
        all.dedup();
        Ok(Pids(all))
    }

    /// ListChildren: names of the child cgroups.
    pub fn list_children(&self, c: &Caller, controller: &str, cgroup: &str) -> Result<Vec<String>> {
        let h = self.one(controller)?;
        let base = self.base(c, h)?;
        let cg = self.resolve(c, &base, cgroup)?;
        self.need(c, &cg, None, R | X, "list")?;
        cg.children().map_err(|e| from_cgroups(&e))
    }

    /// ListKeys: every file of the cgroup.
    pub fn list_keys(&self, c: &Caller, controller: &str, cgroup: &str) -> Result<Vec<Key>> {
        let h = self.one(controller)?;
        let base = self.base(c, h)?;
        let cg = self.resolve(c, &base, cgroup)?;
        self.need(c, &cg, None, R | X, "list")?;
        let keys = cg.keys().map_err(|e| from_cgroups(&e))?;
        Ok(keys
            .into_iter()
            .map(|k| {
                let uid = c.uid_map.to_inside(k.uid).unwrap_or(u32::MAX);
                let gid = c.gid_map.to_inside(k.gid).unwrap_or(u32::MAX);
                (k.name, uid, gid, libc::S_IFREG | k.mode)
            })
            .collect())
    }

    /// ListControllers: one name per hierarchy, as CGManager listed what is mounted, and the
    /// controllers enabled in a cgroup2 hierarchy that no v1 hierarchy has (on a hybrid host,
    /// e.g. `hugetlb`; on a pure v2 host, all of them), which methods accept by name too.
    pub fn list_controllers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.layout.hierarchies.iter().map(hierarchy_name).collect();
        let v1: Vec<&String> = self
            .layout
            .hierarchies
            .iter()
            .filter(|h| h.version == cgroups::Version::V1)
            .flat_map(|h| h.controllers.iter())
            .collect();
        for h in self
            .layout
            .hierarchies
            .iter()
            .filter(|h| h.version == cgroups::Version::V2)
        {
            for c in &h.controllers {
                if !v1.contains(&c) && !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        out
    }
}
