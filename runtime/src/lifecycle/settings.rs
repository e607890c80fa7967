//! A container's settings (`config.yaml` keys); `limits.*` changes reach a running container's
//! cgroups at once.

use std::collections::BTreeMap;

use super::Containers;
use crate::container::{check_key, Config, State};
use crate::error::{Error, Result};

/// A file and the value that lifts a limit: (v1 file, value), (v2 file, value).
type Lift = ((&'static str, &'static str), (&'static str, &'static str));

/// The controller and the values that lift each limit.
fn lifted(key: &str) -> Option<(&'static str, Lift)> {
    match key {
        "limits.memory" => Some((
            "memory",
            (("memory.limit_in_bytes", "-1"), ("memory.max", "max")),
        )),
        "limits.processes" => Some(("pids", (("pids.max", "max"), ("pids.max", "max")))),
        "limits.cpu.allowance" => Some(("cpu", (("cpu.cfs_quota_us", "-1"), ("cpu.max", "max")))),
        _ => None,
    }
}

impl Containers {
    fn config_file(&self, name: &str) -> Result<std::path::PathBuf> {
        self.existing(name)?;
        Ok(self.paths.container(name).join("config.yaml"))
    }

    /// The image and every key.
    pub fn config(&self, name: &str) -> Result<Config> {
        Config::load(&self.config_file(name)?)
    }

    /// One key's value.
    pub fn config_get(&self, name: &str, key: &str) -> Result<String> {
        self.config(name)?
            .keys
            .get(key)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("{name} has no {key}")))
    }

    /// Set a key; a limit is applied to the running container first (a value the kernel
    /// refuses is not saved).
    pub fn config_set(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let file = self.config_file(name)?;
        let mut cfg = Config::load(&file)?;
        check_key(key, value)?;
        if key.starts_with("limits.") {
            if let Some(s) = State::load(&self.paths.state(name))? {
                let one: BTreeMap<String, String> =
                    [(key.to_string(), value.to_string())].into_iter().collect();
                self.cgm.apply(&s.cgroup, &one)?;
            }
        }
        cfg.keys.insert(key.to_string(), value.to_string());
        cfg.save(&file)
    }

    /// Remove a key; a limit is lifted on the running container.
    pub fn config_unset(&self, name: &str, key: &str) -> Result<()> {
        let file = self.config_file(name)?;
        let mut cfg = Config::load(&file)?;
        if cfg.keys.remove(key).is_none() {
            return Err(Error::NotFound(format!("{name} has no {key}")));
        }
        if let (Some(s), Some((c, (v1, v2)))) = (State::load(&self.paths.state(name))?, lifted(key))
        {
            self.cgm.set(&s.cgroup, c, v1, v2)?;
        }
        cfg.save(&file)
    }
}
