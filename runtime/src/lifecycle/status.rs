//! What a container is and does: its settings, whether it runs, how its last run ended, and
//! its usage from its cgroups, its interfaces and addresses — for `info` (one) and `list` (all).

use super::Containers;
use crate::container::{Config, State};
use crate::error::{Context, Result};

/// A container's usage, read from its cgroups (absent where it has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory in use, bytes.
    pub memory: Option<u64>,
    /// Processes (tasks).
    pub processes: Option<u64>,
    /// Frozen by the freezer.
    pub frozen: Option<bool>,
}

/// One container.
#[derive(Debug, Clone)]
pub struct Status {
    /// Its name.
    pub name: String,
    /// Its image and settings (profiles applied).
    pub config: Config,
    /// Its runtime state, when it runs.
    pub running: Option<State>,
    /// How its init last ended ("halted (…)", "exited with status 1", …), if it ever did.
    pub last_exit: Option<String>,
    /// Its usage, when it runs.
    pub usage: Usage,
    /// Its interfaces other than `lo`, when it runs.
    pub ifaces: Vec<crate::net::addrs::Iface>,
}

impl Containers {
    /// The status of `name`; `full` reads every usage figure (`info`), else memory and the
    /// freezer only.
    pub fn status(&self, name: &str, full: bool) -> Result<Status> {
        self.existing(name)?;
        let config = Config::load(&self.paths.container(name).join("config.yaml"))?;
        let config = self.expand(&config).unwrap_or(config);
        Ok(self.status_of(name, config, full))
    }

    fn status_of(&self, name: &str, config: Config, full: bool) -> Status {
        let state_dir = self.paths.state(name);
        let running = State::load(&state_dir).ok().flatten();
        let mut usage = Usage::default();
        let ifaces = running
            .as_ref()
            .map(|s| crate::net::addrs::of(s.init_pid))
            .unwrap_or_default();
        if let Some(s) = &running {
            let get = |c: &str, v1: &str, v2: &str| self.cgm.get(&s.cgroup, c, v1, v2);
            usage.memory = get("memory", "memory.usage_in_bytes", "memory.current")
                .and_then(|v| v.trim().parse().ok());
            // Frozen or not is the state `list` shows (FROZEN), so always read.
            usage.frozen = self.freezer(s);
            if full {
                usage.processes =
                    get("pids", "pids.current", "pids.current").and_then(|v| v.trim().parse().ok());
            }
        }
        Status {
            name: name.to_string(),
            config,
            running,
            last_exit: crate::launch::monitor::last_exit(&state_dir).map(|l| l.trim().to_string()),
            usage,
            ifaces,
        }
    }

    /// Whether the freezer holds the container (or is taking it: v1's `FREEZING`); `None`
    /// without a freezer.
    fn freezer(&self, s: &State) -> Option<bool> {
        self.cgm
            .get(&s.cgroup, "freezer", "freezer.state", "cgroup.freeze")
            .map(|f| matches!(f.trim(), "FROZEN" | "FREEZING" | "1"))
    }

    /// Whether the container is frozen (no freezer: no).
    pub(crate) fn frozen(&self, s: &State) -> bool {
        self.freezer(s).unwrap_or(false)
    }

    /// An ephemeral container whose monitor was killed after its init ended: its stale state
    /// is reaped and it is deleted now (if its lock is free; else the next command will).
    fn reaped_ephemeral(&self, name: &str) -> bool {
        let stale = State::reap_stale(&self.paths.state(name), &self.cgm).unwrap_or(false);
        stale
            && self
                .reap_ephemeral(name, std::time::Duration::ZERO)
                .unwrap_or(false)
    }

    /// Every container, sorted by name (memory use and the freezer only).
    pub fn list(&self) -> Result<Vec<Status>> {
        let dir = self.paths.data.join("containers");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", dir.display())),
        };
        // Only directories with a container's name: a stray file, or a hidden work directory
        // (`.something`) is no container, and `stop --all` must not trip over it.
        let mut out: Vec<Status> = rd
            .flatten()
            .filter(|e| {
                e.file_type().is_ok_and(|t| t.is_dir())
                    && crate::container::check_name(&e.file_name().to_string_lossy()).is_ok()
            })
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let config = Config::load(&e.path().join("config.yaml")).unwrap_or_default();
                if config.ephemeral && self.reaped_ephemeral(&name) {
                    return None;
                }
                let config = self.expand(&config).unwrap_or(config);
                Some(self.status_of(&name, config, false))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
