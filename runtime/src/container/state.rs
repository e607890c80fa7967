//! `state.json` of a running container, written by its monitor and removed when its init
//! exits. A state whose init is gone (the monitor was killed) reads as stopped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// A running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Its name.
    pub name: String,
    /// Host pid of its init.
    pub init_pid: u32,
    /// Host pid of its monitor.
    pub monitor_pid: u32,
    /// Unix time it started.
    pub started: u64,
    /// Its cgroups (or why it has none).
    #[serde(default)]
    pub cgroup: crate::cgroup::Placement,
    /// Whether lxcfs's files are bound in.
    #[serde(default)]
    pub lxcfs: bool,
    /// Its network stack, if it has one.
    #[serde(default)]
    pub net: Option<crate::net::NetState>,
}

impl State {
    /// Read the state in `dir`; `None` if there is none or its init no longer runs.
    pub fn load(dir: &Path) -> Result<Option<State>> {
        Ok(Self::load_raw(dir)?.filter(State::init_alive))
    }

    /// After a monitor died (`kill -9`) its container's state and cgroups stay behind:
    /// when neither the init nor the monitor runs any more, remove them (over `cgm`). Returns
    /// true if something stale was cleaned up.
    pub fn reap_stale(dir: &Path, cgm: &crate::cgroup::Cgm) -> Result<bool> {
        let Some(s) = Self::load_raw(dir)? else {
            return Ok(false);
        };
        if s.init_alive() || s.monitor_alive() {
            return Ok(false);
        }
        cgm.remove(&s.cgroup)?;
        State::clear(dir)?;
        let _ = std::fs::remove_file(dir.join("stopping"));
        Ok(true)
    }

    /// Is the recorded monitor still a running lxr process (an exited one waiting to be
    /// reaped by whoever adopted it does not count)?
    pub fn monitor_alive(&self) -> bool {
        cgroups::process::Status::read(Path::new("/proc"), self.monitor_pid)
            .is_ok_and(|st| st.name == "lxr" && st.state != Some('Z'))
    }

    fn load_raw(dir: &Path) -> Result<Option<State>> {
        let p = dir.join("state.json");
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("read {}", p.display())),
        };
        let s: State = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?;
        Ok(Some(s))
    }

    /// Write it (atomically: a reader never sees half a file).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join("state.json.tmp");
        let text = serde_json::to_string(self).map_err(|e| Error::Setup(e.to_string()))?;
        std::fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join("state.json")).ctx(|| "rename state".into())
    }

    /// Remove the state (the container stopped).
    pub fn clear(dir: &Path) -> Result<()> {
        match std::fs::remove_file(dir.join("state.json")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| "remove state".into()),
        }
    }

    /// Is the recorded init still the init of a pid namespace (not a reused pid)?
    pub fn init_alive(&self) -> bool {
        cgroups::process::Status::read(Path::new("/proc"), self.init_pid)
            .is_ok_and(|st| st.nspid.len() >= 2 && st.pid_inside() == 1 && st.state != Some('Z'))
    }
}
