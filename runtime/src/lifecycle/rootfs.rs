//! A stopped container's root filesystem, handed to code that runs as the container's root.
//!
//! STUB for the s21-images branch: the storage branch owns this file and replaces it at
//! merge (overlay/reflink storage, snapshots). Same signature.

use super::Containers;
use crate::beneath::Dir;
use crate::container::State;
use crate::error::{Error, Result};
use crate::idmap::{IdMaps, Ids};
use crate::userns::run_as_root;

impl Containers {
    /// Run `f` in a forked child that is root of a user namespace mapping only the container's
    /// ids, with `root` a Dir open on the stopped container's root filesystem (or of snapshot
    /// `snap`). Errors if the container is running.
    pub(crate) fn with_rootfs<F>(&self, name: &str, snap: Option<&str>, f: F) -> Result<()>
    where
        F: FnOnce(&Dir) -> Result<()>,
    {
        self.existing(name)?;
        if let Some(s) = snap {
            return Err(Error::Usage(format!(
                "{name}/{s}: this lxr has no snapshots"
            )));
        }
        if State::load(&self.paths.state(name))?.is_some() {
            return Err(Error::Usage(format!("{name} is running: stop it first")));
        }
        let root = Dir::open(&self.paths.container(name).join("rootfs"))?;
        let maps = IdMaps::for_current_user()?;
        run_as_root(&maps, Ids::Container, || f(&root))
    }
}
