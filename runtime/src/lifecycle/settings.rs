//! A container's settings (`config.yaml` keys, checked against [`crate::container::schema`]);
//! `limits.*` changes of the effective configuration (profiles, then the container's own keys)
//! reach a running container's cgroups at once. `config edit` replaces the whole file.

use std::collections::BTreeMap;

use super::{Applied, Containers};
use crate::container::profile::Profiles;
use crate::container::{schema, Config, ImageRef, State};
use crate::error::{Error, Result};
use crate::lock::Lock;

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

/// `KEY=VALUE` arguments (or one `KEY VALUE` pair) as pairs.
pub fn pairs(args: &[String]) -> Result<Vec<(String, String)>> {
    if args.len() == 2 && !args[0].contains('=') {
        return Ok(vec![(args[0].clone(), args[1].clone())]);
    }
    if args.is_empty() {
        return Err(Error::Usage("expected KEY VALUE or KEY=VALUE…".into()));
    }
    args.iter()
        .map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{a:?}: expected KEY=VALUE (or a single KEY VALUE pair)"
                    ))
                })
        })
        .collect()
}

impl Containers {
    pub(super) fn config_file(&self, name: &str) -> Result<std::path::PathBuf> {
        self.existing(name)?;
        Ok(self.paths.container(name).join("config.yaml"))
    }

    /// Held while a container's `config.yaml` is read, changed and written back, so two
    /// commands changing it at once do not lose one's change (`<container>/.config.lock`).
    pub(super) fn config_lock(&self, name: &str) -> Result<Lock> {
        self.existing(name)?;
        Lock::take(
            &self.paths.container(name).join(".config.lock"),
            crate::lock::WAIT,
            || format!("another lxr is changing {name}'s configuration (try again)"),
        )
    }

    /// The profiles store.
    pub fn profiles(&self) -> Profiles {
        Profiles::new(&self.paths.data)
    }

    /// How to show a container's image: its alias while the alias still names it, else the
    /// fingerprint and description ([`ImageRef::describe`]).
    pub fn image_label(&self, image: &ImageRef) -> String {
        let aliases = crate::image::Store::new(self.paths.data.join("images"))
            .aliases()
            .unwrap_or_default();
        image.describe(&aliases)
    }

    /// The image, profiles, keys and devices as `config.yaml` holds them.
    pub fn config(&self, name: &str) -> Result<Config> {
        Config::load(&self.config_file(name)?)
    }

    /// The configuration in effect: the profiles' keys and devices, then the container's own.
    pub fn config_expanded(&self, name: &str) -> Result<Config> {
        self.expand(&self.config(name)?)
    }

    pub(super) fn expand(&self, cfg: &Config) -> Result<Config> {
        Ok(cfg.expanded(&self.profiles().load_all(&cfg.profiles)?))
    }

    /// One key's value (of the effective configuration, as Incus's `config get --expanded`
    /// when `expanded`); empty when it is not set.
    pub fn config_get(&self, name: &str, key: &str, expanded: bool) -> Result<String> {
        let cfg = if expanded {
            self.config_expanded(name)?
        } else {
            self.config(name)?
        };
        Ok(cfg.keys.get(key).cloned().unwrap_or_default())
    }

    /// Set keys; limits are applied to the running container first (a value the kernel refuses
    /// is not saved). Every pair is checked before anything changes.
    pub fn config_set(&self, name: &str, pairs: &[(String, String)]) -> Result<()> {
        for (k, v) in pairs {
            schema::check(k, v)?;
        }
        let _lock = self.config_lock(name)?;
        let file = self.config_file(name)?;
        let mut cfg = Config::load(&file)?;
        let before = self.expand(&cfg)?;
        for (k, v) in pairs {
            cfg.keys.insert(k.clone(), v.clone());
        }
        self.apply_live(name, &before, &self.expand(&cfg)?)?;
        cfg.save(&file)
    }

    /// Remove keys (each must be set, as Incus: "Can't unset key …"); a limit no profile sets
    /// either is lifted live.
    pub fn config_unset(&self, name: &str, keys: &[String]) -> Result<()> {
        let _lock = self.config_lock(name)?;
        let file = self.config_file(name)?;
        let mut cfg = Config::load(&file)?;
        let before = self.expand(&cfg)?;
        for key in keys {
            if key.starts_with(schema::VOLATILE) {
                return Err(Error::Usage(format!(
                    "{key}: volatile.* keys are lxr's own, read-only"
                )));
            }
            if cfg.keys.remove(key).is_none() {
                return Err(Error::Usage(format!(
                    "can't unset key '{key}', it's not currently set"
                )));
            }
        }
        self.apply_live(name, &before, &self.expand(&cfg)?)?;
        cfg.save(&file)
    }

    /// Replace the configuration with `yaml` (as `config show` prints it), checked; limits
    /// applied live; devices changed on a running container take effect at its next start.
    pub fn config_edit(&self, name: &str, yaml: &str) -> Result<Applied> {
        let _lock = self.config_lock(name)?;
        let file = self.config_file(name)?;
        let cur = Config::load(&file)?;
        let new = Config::from_user(yaml, &cur)?;
        let before = self.expand(&cur)?;
        let after = self.expand(&new)?;
        for d in crate::container::devices::disks(&after.devices)? {
            d.open_source()?;
        }
        self.apply_live(name, &before, &after)?;
        new.save(&file)?;
        let running = State::load(&self.paths.state(name))?.is_some();
        Ok(if running && before.devices != after.devices {
            Applied::AtNextStart
        } else {
            Applied::Live
        })
    }

    /// Apply the `limits.*` differences between two effective configurations to `name` if it
    /// runs: changed values set, removed ones lifted.
    pub(super) fn apply_live(&self, name: &str, before: &Config, after: &Config) -> Result<()> {
        let Some(s) = State::load(&self.paths.state(name))? else {
            return Ok(());
        };
        let changed: BTreeMap<String, String> = after
            .keys
            .iter()
            .filter(|(k, v)| k.starts_with("limits.") && before.keys.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !changed.is_empty() {
            self.cgm.apply(&s.cgroup, &changed)?;
        }
        for k in before.keys.keys().filter(|k| !after.keys.contains_key(*k)) {
            if let Some((c, (v1, v2))) = lifted(k) {
                self.cgm.set(&s.cgroup, c, v1, v2)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_takes_both_forms() {
        let s = |v: &[&str]| pairs(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["limits.memory", "1G"]).unwrap(),
            vec![("limits.memory".into(), "1G".into())]
        );
        assert_eq!(s(&["a=1", "b=x=y"]).unwrap().len(), 2);
        assert_eq!(s(&["user.a=b", "user.c=d"]).unwrap()[1].1, "d");
        assert!(s(&["a"]).is_err());
        assert!(s(&["a=1", "b"]).is_err());
        assert!(s(&[]).is_err());
    }
}
