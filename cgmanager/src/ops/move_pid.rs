//! MovePid / MovePidAbs: the daemon writes the pid as root, so it first makes every check the
//! kernel would have made for the caller: who may move whom, that the process is already in
//! the caller's subtree, and write access to the destination.

use std::io::Write;

use nix::fcntl::OFlag;

use crate::access::{may_move, W, X};
use crate::caller::{Caller, Victim};
use crate::errors::{from_io, Error, Kind, Result};
use crate::manager::Manager;
use crate::target;

impl Manager {
    /// Move process `pid` (host pid; its whole thread group) into `cgroup`.
    pub fn move_pid(
        &self,
        c: &Caller,
        controller: &str,
        cgroup: &str,
        pid: u32,
        abs: bool,
    ) -> Result<()> {
        let v = Victim::load(&self.host, pid)?;
        if !may_move(c, &crate::access::Task::of(&v)) {
            return Err(Error::new(
                Kind::PermissionDenied,
                format!(
                    "uid {} may not move process {pid} (uid {})",
                    c.uid, v.status.uids[0]
                ),
            ));
        }
        self.each(controller, |h| {
            let base = if abs {
                self.abs_base(c, h)?
            } else {
                self.base(c, h)?
            };
            let from = self.cgroup_of(&v.cgroups, h)?;
            let bound = self.bound_for(c, &base, &from);
            if !from.is_within(&bound) {
                return Err(Error::new(
                    Kind::OutsideSubtree,
                    format!(
                        "process {pid} is in {}, not below your cgroup {}",
                        from.abs_path(),
                        base.abs_path()
                    ),
                ));
            }
            let cg = self.resolve(c, &base, cgroup)?;
            self.check_not_over(c, h, &cg)?;
            self.need(c, &cg, None, X, "enter")?;
            self.need(c, &cg, Some("cgroup.procs"), W, "move processes into")?;
            self.write_pid(&v, &cg)?;
            // The cgroup it left may now be empty (v1 reports no such change).
            self.watch.changed(&from);
            Ok(())
        })
        .map(|_| ())
    }

    /// Write a pinned process's pid into a cgroup's `cgroup.procs`.
    pub(crate) fn write_pid(&self, v: &Victim, cg: &cgroups::Cgroup) -> Result<()> {
        let fd = target::open_beneath(cg, Some("cgroup.procs"), OFlag::O_WRONLY)?;
        if !v.alive() {
            return Err(Error::new(
                Kind::NoSuchProcess,
                format!("process {} exited", v.pid),
            ));
        }
        let what = format!("move {} into {}", v.pid, cg.abs_path());
        std::fs::File::from(fd)
            .write_all(v.pid.to_string().as_bytes())
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EBUSY) => Error::new(
                    Kind::Busy,
                    format!(
                    "{what}: cgroup v2 keeps processes in leaves only (it has child cgroups with \
                     controllers enabled); use a leaf cgroup"
                ),
                ),
                _ => from_io(&e, &what),
            })?;
        tracing::info!("{what}");
        Ok(())
    }
}
