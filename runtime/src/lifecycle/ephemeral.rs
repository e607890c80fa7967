//! Ephemeral containers (`launch --ephemeral`, `init --ephemeral`): deleted when they stop —
//! by `lxr stop`, a `poweroff`/`halt` inside, an init that dies or is killed — but kept across
//! a `reboot` inside, as Incus does. The flag is `ephemeral: true` in `config.yaml`.
//!
//! Who deletes: the monitor, which sees every end of the init, once it has cleaned up the
//! cgroups and the network ([`crate::launch::monitor`]); `lxr stop` too, after the monitor has
//! gone (so a stop returns with the container gone, even when the monitor was killed); and
//! `lxr list`/`lxr start` when they find the stale state of a killed monitor. Each deletes
//! under the container's lock and only what is still there and not running, so whichever comes
//! first wins and the others find nothing to do. A command that stops the container to use it
//! again — `restart`, `publish --force`, `delete --force` (which deletes it itself) — first
//! writes [`KEEP`] in its runtime directory; the next start removes it.

use std::time::Duration;

use super::Containers;
use crate::container::{Config, State};
use crate::error::Result;
use crate::idmap::IdMaps;
use crate::lock::Lock;

/// The marker (in the container's runtime directory) that tells the deleters that this stop
/// is not the container's end.
pub const KEEP: &str = "keep";

impl Containers {
    /// Whether `name` is an ephemeral container (false if it has no readable config).
    pub fn is_ephemeral(&self, name: &str) -> bool {
        Config::load(&self.paths.container(name).join("config.yaml")).is_ok_and(|c| c.ephemeral)
    }

    /// Mark the coming stop of `name` as not its end (see the module).
    pub(super) fn keep_across_stop(&self, name: &str) {
        let dir = self.paths.state(name);
        if dir.is_dir() {
            let _ = std::fs::write(dir.join(KEEP), b"");
        }
    }

    /// A start clears what an earlier stop marked.
    pub(super) fn clear_keep(&self, name: &str) {
        let _ = std::fs::remove_file(self.paths.state(name).join(KEEP));
    }

    /// Delete `name` if it is ephemeral, stopped, and its stop was its end (no [`KEEP`]),
    /// taking its lock within `wait`. Returns whether it deleted it.
    pub fn reap_ephemeral(&self, name: &str, wait: Duration) -> Result<bool> {
        // Cheap checks first, without the lock: a restart holds it while it waits for the
        // monitor, which must not wait for the lock in turn.
        if !self.is_ephemeral(name) || self.paths.state(name).join(KEEP).exists() {
            return Ok(false);
        }
        let _lock = Lock::container_wait(&self.paths, name, wait)?;
        if !self.is_ephemeral(name)
            || self.paths.state(name).join(KEEP).exists()
            || State::load(&self.paths.state(name))?.is_some()
        {
            return Ok(false);
        }
        self.delete_stopped(name)?;
        Ok(true)
    }

    /// Remove a stopped container's trees and its lock file; the caller holds the lock.
    pub(super) fn delete_stopped(&self, name: &str) -> Result<()> {
        tracing::debug!("deleting the ephemeral container {name}");
        self.remove_tree(name, &IdMaps::for_current_user()?)?;
        let _ = std::fs::remove_file(Lock::container_path(&self.paths, name));
        Ok(())
    }
}

/// The monitor's last step for an ephemeral container ([`crate::launch::Spec::at_end`]): its
/// end is its deletion (unless a restart, a publish or a delete stopped it). Runs in the
/// monitor, whose log (stderr) gets the warning if the deletion fails.
pub(super) fn at_end(paths: &crate::paths::Paths, name: &str) {
    let c = Containers::new(paths.clone());
    match c.reap_ephemeral(name, crate::lock::WAIT) {
        Ok(true) => tracing::info!("ephemeral {name}: deleted"),
        Ok(false) => {}
        Err(e) => tracing::warn!("ephemeral {name}: could not delete it: {e}"),
    }
}
