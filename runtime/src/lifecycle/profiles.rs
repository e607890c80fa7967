//! Profiles ([`crate::container::profile`]): create, list, show, edit, copy, delete, set, get,
//! unset, and `assign` to a container. A change to a profile reaches the running containers
//! that use it as a change of their own keys would (limits at once).

use super::Containers;
use crate::container::profile::{check_name, Profile, DEFAULT};
use crate::container::{devices, schema, Config};
use crate::error::{Error, Result};

impl Containers {
    /// Every profile, with the containers using it.
    pub fn profile_list(&self) -> Result<Vec<(String, Vec<String>)>> {
        let all = self.configs()?;
        Ok(self
            .profiles()
            .names()?
            .into_iter()
            .map(|p| {
                let users = all
                    .iter()
                    .filter(|(_, c)| c.profiles.contains(&p))
                    .map(|(n, _)| n.clone())
                    .collect();
                (p, users)
            })
            .collect())
    }

    /// One profile.
    pub fn profile(&self, name: &str) -> Result<Profile> {
        self.profiles().load(name)
    }

    /// Make an empty profile.
    pub fn profile_create(&self, name: &str) -> Result<()> {
        check_name(name)?;
        if self.profiles().exists(name) {
            return Err(Error::Usage(format!("profile {name} already exists")));
        }
        self.paths.ensure()?;
        self.profiles().save(name, &Profile::default())
    }

    /// Copy profile `from` to a new `to`.
    pub fn profile_copy(&self, from: &str, to: &str) -> Result<()> {
        let p = self.profile(from)?;
        check_name(to)?;
        if self.profiles().exists(to) {
            return Err(Error::Usage(format!("profile {to} already exists")));
        }
        self.paths.ensure()?;
        self.profiles().save(to, &p)
    }

    /// Rename a profile (not `default`); the containers using it follow.
    pub fn profile_rename(&self, from: &str, to: &str) -> Result<()> {
        if from == DEFAULT {
            return Err(Error::Usage("the default profile cannot be renamed".into()));
        }
        let p = self.profile(from)?;
        check_name(to)?;
        if self.profiles().exists(to) {
            return Err(Error::Usage(format!("profile {to} already exists")));
        }
        self.profiles().save(to, &p)?;
        for (n, c) in self.configs()? {
            if c.profiles.iter().any(|x| x == from) {
                let _lock = self.config_lock(&n)?;
                // Read again under the lock: what another command saved meanwhile stays.
                let file = self.paths.container(&n).join("config.yaml");
                let mut c = Config::load(&file)?;
                for x in c.profiles.iter_mut().filter(|x| *x == from) {
                    *x = to.to_string();
                }
                c.save(&file)?;
            }
        }
        self.profiles().remove(from)
    }

    /// Delete a profile: not `default`, not while a container uses it.
    pub fn profile_delete(&self, name: &str) -> Result<()> {
        if name == DEFAULT {
            return Err(Error::Usage("the default profile cannot be deleted".into()));
        }
        self.profile(name)?;
        let users = self.profile_users(name)?;
        if !users.is_empty() {
            return Err(Error::Usage(format!(
                "profile {name} is used by {} (lxr profile assign them other profiles first)",
                users.join(", ")
            )));
        }
        self.profiles().remove(name)
    }

    /// One key of a profile; empty when it is not set.
    pub fn profile_get(&self, name: &str, key: &str) -> Result<String> {
        Ok(self
            .profile(name)?
            .config
            .get(key)
            .cloned()
            .unwrap_or_default())
    }

    /// Set keys of a profile (checked; applied live to the running containers using it —
    /// where that fails, the container and why are returned, the profile is saved).
    pub fn profile_set(
        &self,
        name: &str,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, Error)>> {
        for (k, v) in pairs {
            schema::check(k, v)?;
        }
        let mut p = self.profile(name)?;
        for (k, v) in pairs {
            p.config.insert(k.clone(), v.clone());
        }
        self.profile_replace(name, &p)
    }

    /// Remove keys of a profile (each must be set); as [`Containers::profile_set`].
    pub fn profile_unset(&self, name: &str, keys: &[String]) -> Result<Vec<(String, Error)>> {
        let mut p = self.profile(name)?;
        for k in keys {
            if p.config.remove(k).is_none() {
                return Err(Error::Usage(format!(
                    "can't unset key '{k}', it's not currently set"
                )));
            }
        }
        self.profile_replace(name, &p)
    }

    /// Replace a profile with `yaml` (`profile show`'s form), checked; as
    /// [`Containers::profile_set`].
    pub fn profile_edit(&self, name: &str, yaml: &str) -> Result<Vec<(String, Error)>> {
        check_name(name)?;
        self.profile(name)?;
        self.profile_replace(name, &Profile::from_user(yaml)?)
    }

    /// Save `new` as profile `name` and bring its running users' limits in line. A user whose
    /// cgroup refuses (or that has none: unconfined) is returned with the error; it gets the
    /// profile at its next start.
    fn profile_replace(&self, name: &str, new: &Profile) -> Result<Vec<(String, Error)>> {
        new.check()?;
        for d in devices::disks(&new.devices)? {
            d.open_source()?;
        }
        let users: Vec<(String, Config)> = self
            .configs()?
            .into_iter()
            .filter(|(_, c)| c.profiles.iter().any(|p| p == name))
            .collect();
        let before: Vec<Config> = users
            .iter()
            .map(|(_, c)| self.expand(c))
            .collect::<Result<_>>()?;
        self.paths.ensure()?;
        self.profiles().save(name, new)?;
        let mut failed = Vec::new();
        for ((n, c), b) in users.iter().zip(&before) {
            if let Err(e) = self
                .expand(c)
                .and_then(|after| self.apply_live(n, b, &after))
            {
                failed.push((n.clone(), e));
            }
        }
        Ok(failed)
    }

    /// Add device `dev` to a profile (checked as a container's; its users get it at their
    /// next start).
    pub fn profile_device_add(
        &self,
        name: &str,
        dev: &str,
        kind: &str,
        args: &[String],
    ) -> Result<()> {
        let mut p = self.profile(name)?;
        let opts = devices::options(kind, args)?;
        devices::check(dev, &opts)?;
        if p.devices.contains_key(dev) {
            return Err(Error::Usage(format!(
                "profile {name} already has a device {dev}"
            )));
        }
        if kind == "disk" {
            devices::disk(dev, &opts)?.open_source()?;
        }
        p.devices.insert(dev.to_string(), opts);
        self.paths.ensure()?;
        self.profiles().save(name, &p)
    }

    /// Remove device `dev` from a profile.
    pub fn profile_device_remove(&self, name: &str, dev: &str) -> Result<()> {
        let mut p = self.profile(name)?;
        if p.devices.remove(dev).is_none() {
            return Err(Error::NotFound(format!(
                "profile {name} has no device {dev}"
            )));
        }
        self.profiles().save(name, &p)
    }

    /// Give `container` these profiles, in order (an empty list removes them all).
    pub fn profile_assign(&self, container: &str, profiles: &[String]) -> Result<()> {
        self.change_profiles(container, |_| Ok(profiles.to_vec()))
    }

    /// Append `profile` to `container`'s profiles (Incus's `profile add`).
    pub fn profile_add(&self, container: &str, profile: &str) -> Result<()> {
        self.change_profiles(container, |cur| {
            if cur.iter().any(|p| p == profile) {
                return Err(Error::Usage(format!(
                    "{container} already has profile {profile}"
                )));
            }
            let mut l = cur.to_vec();
            l.push(profile.to_string());
            Ok(l)
        })
    }

    /// Take `profile` from `container`'s profiles (Incus's `profile remove`).
    pub fn profile_remove(&self, container: &str, profile: &str) -> Result<()> {
        self.change_profiles(container, |cur| {
            if !cur.iter().any(|p| p == profile) {
                return Err(Error::Usage(format!(
                    "{container} does not have profile {profile}"
                )));
            }
            Ok(cur.iter().filter(|p| *p != profile).cloned().collect())
        })
    }

    /// Replace `container`'s profile list by `change(current)` under its config lock: every
    /// profile must exist and its disks be the user's; limits follow live.
    fn change_profiles(
        &self,
        container: &str,
        change: impl FnOnce(&[String]) -> Result<Vec<String>>,
    ) -> Result<()> {
        let _lock = self.config_lock(container)?;
        let file = self.config_file(container)?;
        let mut cfg = Config::load(&file)?;
        let profiles = change(&cfg.profiles)?;
        for (i, p) in profiles.iter().enumerate() {
            check_name(p)?;
            if profiles[..i].contains(p) {
                return Err(Error::Usage(format!("profile {p} given twice")));
            }
        }
        let before = self.expand(&cfg)?;
        cfg.profiles = profiles;
        let after = self.expand(&cfg)?;
        for d in devices::disks(&after.devices)? {
            d.open_source()?;
        }
        self.apply_live(container, &before, &after)?;
        cfg.save(&file)
    }

    fn profile_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .configs()?
            .into_iter()
            .filter(|(_, c)| c.profiles.iter().any(|p| p == name))
            .map(|(n, _)| n)
            .collect())
    }

    /// Every container's own configuration (unreadable ones skipped), by name.
    fn configs(&self) -> Result<Vec<(String, Config)>> {
        let dir = self.paths.data.join("containers");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Os {
                    what: format!("read {}", dir.display()),
                    source: e,
                })
            }
        };
        let mut out: Vec<(String, Config)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                crate::container::check_name(&name).ok()?;
                Some((name, Config::load(&e.path().join("config.yaml")).ok()?))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
