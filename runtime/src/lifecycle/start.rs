//! Starting a created container: the checks, then [`crate::launch::start`] with its spec.

use super::Containers;
use crate::container::{Config, State};
use crate::error::{Error, Result};
use crate::idmap::IdMaps;
use crate::launch::{self, Spec};
use crate::lock::Lock;

impl Containers {
    /// Start `name`; returns once its init runs (and, for systemd, reported ready).
    pub fn start(&self, name: &str) -> Result<State> {
        // Before the lock, which makes lxr's directories: a name that is no container leaves
        // nothing behind.
        self.existing(name)?;
        let lock = Lock::container(&self.paths, name)?;
        self.start_locked(name, &lock)
    }

    /// Start `name`; the caller holds its [`Lock`], which the monitor keeps until the start is
    /// over.
    pub(super) fn start_locked(&self, name: &str, lock: &Lock) -> Result<State> {
        let dir = self.paths.container(name);
        if !dir.join("rootfs").is_dir() {
            return Err(Error::NotFound(format!(
                "no container {name} (lxr list shows them)"
            )));
        }
        self.paths.ensure()?;
        let state_dir = self.paths.state(name);
        let reaped = State::reap_stale(&state_dir, &self.cgm)?;
        let cfg = Config::load(&dir.join("config.yaml"))?;
        if reaped && cfg.ephemeral && !state_dir.join(super::ephemeral::KEEP).exists() {
            // Its monitor was killed: nobody deleted it when it stopped.
            self.delete_stopped(name)?;
            return Err(Error::NotFound(format!(
                "{name} was ephemeral and has stopped: it is deleted now"
            )));
        }
        if let Some(s) = State::load(&state_dir)? {
            return Err(Error::Usage(format!(
                "{name} is already running (pid {})",
                s.init_pid
            )));
        }
        // The effective configuration (profiles, then the container's own); disk sources must
        // still be the user's (checked again, on the descriptor bound, by the start itself).
        let cfg = self.expand(&Config::load(&dir.join("config.yaml"))?)?;
        for d in crate::container::devices::disks(&cfg.devices)? {
            d.open_source()?;
        }
        // $LXR_LXCFS overrides where lxcfs is looked for (tests mount one elsewhere).
        let lxcfs = std::env::var_os("LXR_LXCFS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(crate::LXCFS_MOUNT));
        let spec = Spec {
            name: name.to_string(),
            rootfs: dir.join("rootfs"),
            overlay: self.overlay_layers(&dir)?,
            maps: IdMaps::for_current_user()?,
            state_dir,
            lxcfs: launch::mounts::lxcfs_mounted(&lxcfs).then_some(lxcfs),
            keys: cfg.flat(),
            lock_fd: Some(lock.raw_fd()),
            at_end: cfg.ephemeral.then(|| {
                (
                    self.paths.clone(),
                    super::ephemeral::at_end as fn(&crate::paths::Paths, &str),
                )
            }),
        };
        self.clear_keep(name);
        launch::start(&spec)
    }
}
