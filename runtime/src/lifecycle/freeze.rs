//! Freezing and thawing: the cgroup freezer (v1 `freezer.state`, v2 `cgroup.freeze`).

use std::time::{Duration, Instant};

use super::Containers;
use crate::container::State;
use crate::error::{Error, Result};

/// How long `freeze` waits for the last process to be frozen.
const FREEZE_WAIT: Duration = Duration::from_secs(30);

impl Containers {
    /// Freeze (`true`) or thaw a running container; a freeze returns once every process is
    /// frozen.
    pub fn freeze(&self, name: &str, frozen: bool) -> Result<()> {
        self.existing(name)?;
        let Some(s) = State::load(&self.paths.state(name))? else {
            return Err(Error::Usage(format!("{name} is not running")));
        };
        if !self.set_freezer(&s, frozen)? {
            return Err(Error::Host(format!(
                "{name} has no freezer cgroup ({}); ask the admin to delegate the freezer (v1) \
                 or cgroup2 hierarchy",
                s.cgroup.unconfined.as_deref().unwrap_or("not delegated")
            )));
        }
        if !frozen {
            return Ok(());
        }
        // The kernel freezes task by task (v1 says FREEZING meanwhile, v2's cgroup.events
        // says `frozen 0`): return once every process is frozen, as LXD does.
        let deadline = Instant::now() + FREEZE_WAIT;
        loop {
            let v1 = self
                .cgm
                .get(&s.cgroup, "freezer", "freezer.state", "cgroup.events");
            let done = v1
                .as_deref()
                .is_some_and(|v| v.trim() == "FROZEN" || v.lines().any(|l| l.trim() == "frozen 1"));
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Host(format!(
                    "{name} did not finish freezing within {FREEZE_WAIT:?} (freezer: {})",
                    v1.unwrap_or_default().trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Write the freezer's state; `false` if the container has no freezer.
    fn set_freezer(&self, s: &State, frozen: bool) -> Result<bool> {
        let (v1, v2) = if frozen {
            (("freezer.state", "FROZEN"), ("cgroup.freeze", "1"))
        } else {
            (("freezer.state", "THAWED"), ("cgroup.freeze", "0"))
        };
        self.cgm.set(&s.cgroup, "freezer", v1, v2)
    }

    /// Thaw a container about to be stopped, if it is frozen: its init cannot take the halt
    /// signal frozen, and on cgroup v1 not even SIGKILL (a stop waited out its timeout, then
    /// failed with "did not stop" and left the container frozen).
    pub(super) fn thaw_for_stop(&self, s: &State) -> Result<()> {
        let frozen = crate::cgroup::frozen_here(&s.cgroup).unwrap_or_else(|| self.frozen(s));
        if frozen {
            tracing::debug!("thawing the frozen container to stop it");
            self.set_freezer(s, false)?;
        }
        Ok(())
    }
}
