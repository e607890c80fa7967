//! A stopped container's root filesystem, reached from the host (stub of the storage work:
//! replaced at merge by the overlay-aware implementation).

use super::Containers;
use crate::container::State;
use crate::error::{Error, Result};
use crate::idmap::{IdMaps, Ids};

impl Containers {
    /// Run `f` in a forked child that is root of a user namespace mapping only the container's ids,
    /// with `root` a Dir open on the stopped container's root filesystem (or of snapshot `snap`).
    /// Errors if the container is running.
    pub(crate) fn with_rootfs<F>(&self, name: &str, snap: Option<&str>, f: F) -> Result<()>
    where
        F: FnOnce(&crate::beneath::Dir) -> Result<()>,
    {
        self.existing(name)?;
        if let Some(s) = snap {
            return Err(Error::Usage(format!(
                "{name}/{s}: lxr has no snapshots yet"
            )));
        }
        if State::load(&self.paths.state(name))?.is_some() {
            return Err(Error::Usage(format!("{name} is running")));
        }
        let root = crate::beneath::Dir::open(&self.paths.container(name).join("rootfs"))?;
        crate::userns::run_as_root(&IdMaps::for_current_user()?, Ids::Container, || f(&root))
    }
}
