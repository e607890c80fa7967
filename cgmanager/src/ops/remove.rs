//! Remove, RemoveOnEmpty and Prune. Removal needs write access to the parent, like rmdir; the
//! caller's own cgroup and its ancestors are never removable through the daemon. Cgroups
//! marked remove-on-empty are watched by the daemon ([`super::watch`]) and removed once they
//! have no processes and no children.

use cgroups::{Cgroup, Hierarchy};

use crate::access::{W, X};
use crate::caller::Caller;
use crate::errors::{from_cgroups, Error, Kind, Result};
use crate::manager::Manager;
use crate::ops::Existed;

impl Manager {
    /// Remove: whether the cgroup existed (and is gone).
    pub fn remove(
        &self,
        c: &Caller,
        controller: &str,
        cgroup: &str,
        recursive: bool,
    ) -> Result<Existed> {
        let existed = self.each(controller, |h| {
            let Some(cg) = self.removable(c, h, cgroup)? else {
                return Ok(false);
            };
            let r = if recursive {
                cg.remove_recursive().map(|_| ())
            } else {
                cg.remove()
            };
            r.map_err(|e| match e.errno() {
                libc::EBUSY | libc::ENOTEMPTY => Error::new(
                    Kind::Busy,
                    format!(
                        "{} has processes or child cgroups{}",
                        cg.abs_path(),
                        if recursive {
                            ""
                        } else {
                            " (use recursive remove or Prune)"
                        }
                    ),
                ),
                _ => from_cgroups(&e),
            })?;
            tracing::info!(uid = c.uid, "removed {}", cg.dir().display());
            if let Some(p) = cg.parent() {
                self.watch.changed(&p);
            }
            Ok(true)
        })?;
        Ok(Existed(existed.iter().any(|e| *e)))
    }

    /// RemoveOnEmpty: remove the cgroup once it has no processes and no children.
    pub fn remove_on_empty(&self, c: &Caller, controller: &str, cgroup: &str) -> Result<()> {
        self.each(controller, |h| {
            let cg = self
                .removable(c, h, cgroup)?
                .ok_or_else(|| Error::new(Kind::NotFound, format!("{cgroup} does not exist")))?;
            self.watch.mark(cg);
            Ok(())
        })?;
        Ok(())
    }

    /// Prune: remove every empty cgroup of the subtree now (deepest first), mark the rest
    /// remove-on-empty. Never kills anything.
    pub fn prune(&self, c: &Caller, controller: &str, cgroup: &str) -> Result<()> {
        self.each(controller, |h| {
            let cg = self
                .removable(c, h, cgroup)?
                .ok_or_else(|| Error::new(Kind::NotFound, format!("{cgroup} does not exist")))?;
            self.prune_tree(&cg)
        })
        .map(|_| ())
    }

    fn prune_tree(&self, cg: &Cgroup) -> Result<()> {
        for child in cg.children().map_err(|e| from_cgroups(&e))? {
            let child = cg.descendant(&child).map_err(|e| from_cgroups(&e))?;
            self.prune_tree(&child)?;
        }
        match cg.remove() {
            Ok(()) => {
                if let Some(p) = cg.parent() {
                    self.watch.changed(&p);
                }
                Ok(())
            }
            Err(e) if e.errno() == libc::EBUSY || e.errno() == libc::ENOTEMPTY => {
                self.watch.mark(cg.clone());
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(from_cgroups(&e)),
        }
    }

    /// A cgroup strictly below the caller's whose parent the caller may write; `None` if it
    /// does not exist.
    fn removable(&self, c: &Caller, h: &Hierarchy, cgroup: &str) -> Result<Option<Cgroup>> {
        let base = self.base(c, h)?;
        let cg = self.resolve(c, &base, cgroup)?;
        let bound = self.bound_for(c, &base, &cg);
        let Some(parent) = cg.parent().filter(|_| cg != bound) else {
            return Err(Error::new(
                Kind::OutsideSubtree,
                format!(
                "{} is your own cgroup or delegation point; only cgroups below it can be removed",
                cg.abs_path()
            ),
            ));
        };
        match crate::target::stat_beneath(&cg, None) {
            Err(e) if e.is(Kind::NotFound) => return Ok(None),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        self.need(c, &parent, None, W | X, "remove cgroups from")?;
        Ok(Some(cg))
    }

    /// How many cgroups are waiting to be removed once empty.
    pub fn watched(&self) -> usize {
        self.watch.len()
    }
}
