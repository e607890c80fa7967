//! Deleting: the rootfs belongs to the container's root, so it is removed from inside a user
//! namespace; then the directories and the lock file.

use std::time::Duration;

use super::{Containers, Halt};
use crate::container::State;
use crate::error::{Error, Result};
use crate::idmap::IdMaps;
use crate::lock::Lock;

impl Containers {
    /// Delete `name`; a running container only with `force` (stopped with SIGKILL first).
    pub fn delete(&self, name: &str, force: bool) -> Result<()> {
        // Before the lock, which makes lxr's directories (checked again under it).
        self.existing(name)?;
        // Waits for a create or start in progress (e.g. the monitor of a killed `lxr launch`).
        let _lock = Lock::container(&self.paths, name)?;
        self.existing(name)?;
        if State::load(&self.paths.state(name))?.is_some() {
            if !force {
                return Err(Error::Usage(format!(
                    "{name} is running: stop it first, or use delete --force"
                )));
            }
            // Deleted here, not by its monitor (which would wait for the lock held here).
            self.keep_across_stop(name);
            self.halt(
                name,
                Halt {
                    force: true,
                    timeout: Duration::from_secs(10),
                },
            )?;
        }
        State::reap_stale(&self.paths.state(name), &self.cgm)?;
        self.remove_tree(name, &IdMaps::for_current_user()?)?;
        let _ = std::fs::remove_file(Lock::container_path(&self.paths, name));
        Ok(())
    }
}
