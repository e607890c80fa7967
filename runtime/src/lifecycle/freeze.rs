//! Freezing and thawing: the cgroup freezer (v1 `freezer.state`, v2 `cgroup.freeze`).

use super::Containers;
use crate::container::{check_name, State};
use crate::error::{Error, Result};

impl Containers {
    /// Freeze (`true`) or thaw a running container.
    pub fn freeze(&self, name: &str, frozen: bool) -> Result<()> {
        check_name(name)?;
        let Some(s) = State::load(&self.paths.state(name))? else {
            return Err(Error::Usage(format!("{name} is not running")));
        };
        let (v1, v2) = if frozen {
            (("freezer.state", "FROZEN"), ("cgroup.freeze", "1"))
        } else {
            (("freezer.state", "THAWED"), ("cgroup.freeze", "0"))
        };
        if !self.cgm.set(&s.cgroup, "freezer", v1, v2)? {
            return Err(Error::Host(format!(
                "{name} has no freezer cgroup ({}); ask the admin to delegate the freezer (v1) \
                 or cgroup2 hierarchy",
                s.cgroup.unconfined.as_deref().unwrap_or("not delegated")
            )));
        }
        Ok(())
    }
}
