//! `rename OLD NEW`: a stopped container's directory renamed (its snapshots, layers and
//! records move with it), under both names' locks; and `rename NAME/SNAP NAME/NEW` for a
//! snapshot ([`Containers::snapshot_rename`]). Running containers are refused, as by Incus:
//! their state, cgroups and hostname carry the old name.

use super::Containers;
use crate::container::{check_name, State};
use crate::error::{Context, Error, Result};
use crate::lock::Lock;

impl Containers {
    /// Rename stopped container `old` to `new`.
    pub fn rename(&self, old: &str, new: &str) -> Result<()> {
        check_name(old)?;
        check_name(new)?;
        if old == new {
            return Ok(());
        }
        let _old_lock = Lock::container(&self.paths, old)?;
        let _new_lock = Lock::container(&self.paths, new)?;
        self.existing(old)?;
        let state = self.paths.state(old);
        State::reap_stale(&state, &self.cgm)?;
        if State::load(&state)?.is_some() {
            return Err(Error::Usage(format!(
                "{old} is running: stop it first (a running container cannot be renamed)"
            )));
        }
        let (from, to) = (self.paths.container(old), self.paths.container(new));
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(Error::Usage(format!("container {new} already exists")));
        }
        std::fs::rename(&from, &to).ctx(|| format!("rename {} to {new}", from.display()))?;
        // The old name's runtime leftovers (last exit, console log) go with it.
        let _ = std::fs::rename(&state, self.paths.state(new));
        Ok(())
    }
}
