//! Create: `mkdir -p` below the caller's cgroup; what the daemon makes on someone's behalf
//! belongs to them (directory and files), as if they had made it themselves.

use cgroups::{Cgroup, Hierarchy};

use crate::access::{R, W, X};
use crate::caller::Caller;
use crate::errors::{from_cgroups, Error, Kind, Result};
use crate::manager::Manager;
use crate::ops::Existed;

impl Manager {
    /// Create: whether the cgroup existed in every hierarchy (else it was created somewhere).
    pub fn create(&self, c: &Caller, controller: &str, cgroup: &str) -> Result<Existed> {
        let existed = self.each(controller, |h| self.create_in(c, h, cgroup))?;
        Ok(Existed(existed.iter().all(|e| *e)))
    }

    fn create_in(&self, c: &Caller, h: &Hierarchy, cgroup: &str) -> Result<bool> {
        let base = self.base(c, h)?;
        let cg = self.resolve(c, &base, cgroup)?;
        if cg.depth() > self.config.max_depth {
            return Err(Error::new(
                Kind::LimitExceeded,
                format!(
                    "{} would be {} levels deep (limit {})",
                    cg.abs_path(),
                    cg.depth(),
                    self.config.max_depth
                ),
            ));
        }
        let bound = self.bound_for(c, &base, &cg);
        let missing = self.missing_below(&bound, &cg)?;
        if missing.is_empty() {
            self.need(c, &cg, None, R | X, "open")?;
            return Ok(true);
        }
        self.check_quota(c, h, &cg, missing.len())?;
        self.make(c, &missing)?;
        Ok(false)
    }

    /// The cgroups from `cg` up to (not including) `base` that do not exist, top first.
    pub(crate) fn missing_below(&self, base: &Cgroup, cg: &Cgroup) -> Result<Vec<Cgroup>> {
        let mut missing: Vec<Cgroup> = Vec::new();
        for d in cg
            .self_and_ancestors()
            .take_while(|d| d != base && d.is_within(base))
        {
            match crate::target::stat_beneath(&d, None) {
                Ok(md) if md.is_dir() => break,
                Ok(_) => {
                    return Err(Error::new(
                        Kind::InvalidArgument,
                        format!("{} exists and is not a cgroup", d.abs_path()),
                    ))
                }
                Err(e) if e.is(Kind::NotFound) => missing.push(d),
                Err(e) => return Err(e),
            }
        }
        missing.reverse();
        Ok(missing)
    }

    /// mkdir each cgroup (top first) where the caller may write the parent, and give it to
    /// the caller. On failure, what this call made is removed again.
    pub(crate) fn make(&self, c: &Caller, cgs: &[Cgroup]) -> Result<()> {
        let mut made: Vec<&Cgroup> = Vec::new();
        let result = (|| {
            for m in cgs {
                if let Some(parent) = m.parent() {
                    self.need(c, &parent, None, W | X, "create cgroups in")?;
                }
                if m.create(0o755).map_err(|e| from_cgroups(&e))? {
                    made.push(m);
                    m.inherit_cpuset().map_err(|e| from_cgroups(&e))?;
                    if !c.host_root {
                        m.chown_all(c.uid, c.gid).map_err(|e| from_cgroups(&e))?;
                    }
                    tracing::info!(uid = c.uid, "created {}", m.dir().display());
                }
            }
            Ok(())
        })();
        if result.is_err() {
            for m in made.iter().rev() {
                let _ = m.remove();
            }
        }
        result
    }
}
