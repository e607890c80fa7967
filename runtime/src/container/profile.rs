//! Profiles, as Incus has them: named sets of keys and devices applied to containers under their
//! own (`<data>/profiles/<name>.yaml`, `config:` and `devices:`). A `default` profile always
//! exists (made empty on first use) and is given to new containers unless `launch -p` or
//! `--no-profiles` says otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::devices::{self, Devices};
use super::schema;
use crate::error::{Context, Error, Result};

/// The profile every container gets unless told otherwise.
pub const DEFAULT: &str = "default";

/// One profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Keys, as a container's.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Devices, as a container's.
    #[serde(default)]
    pub devices: Devices,
}

impl Profile {
    /// Parse YAML a user wrote and check every key and device.
    pub fn from_user(text: &str) -> Result<Profile> {
        let p: Profile = serde_yaml_ng::from_str(text).map_err(|e| {
            Error::Usage(format!(
                "invalid YAML: {}",
                crate::text::line(&e.to_string())
            ))
        })?;
        p.check()?;
        Ok(p)
    }

    /// Check every key and device (no `volatile.*` in a profile).
    pub fn check(&self) -> Result<()> {
        for (k, v) in &self.config {
            schema::check(k, v)?;
        }
        devices::check_all(&self.devices)
    }

    /// As YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml_ng::to_string(self).map_err(|e| Error::Host(format!("encode profile: {e}")))
    }
}

/// A profile name: as a container's (letters, digits, `-`), which keeps it a plain file name.
pub fn check_name(name: &str) -> Result<()> {
    super::check_name(name).map_err(|_| {
        Error::Usage(format!(
            "invalid profile name {name:?}: use 1-{} letters, digits and '-', starting with a \
             letter",
            super::MAX_NAME
        ))
    })
}

/// The profiles directory, `<data>/profiles`.
#[derive(Debug, Clone)]
pub struct Profiles {
    dir: PathBuf,
}

impl Profiles {
    /// The profiles below the data directory `data`.
    pub fn new(data: &Path) -> Profiles {
        Profiles {
            dir: data.join("profiles"),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.yaml"))
    }

    /// Whether `name` exists (`default` always does).
    pub fn exists(&self, name: &str) -> bool {
        name == DEFAULT || self.file(name).is_file()
    }

    /// Read a profile; `default` reads as empty until it is first written.
    pub fn load(&self, name: &str) -> Result<Profile> {
        check_name(name)?;
        let path = self.file(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == DEFAULT => {
                return Ok(Profile::default())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "no profile {name} (lxr profile list shows them)"
                )))
            }
            Err(e) => return Err(e).ctx(|| format!("read {}", path.display())),
        };
        serde_yaml_ng::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{}: {}",
                path.display(),
                crate::text::line(&e.to_string())
            ))
        })
    }

    /// The profiles `names`, in order (each must exist).
    pub fn load_all(&self, names: &[String]) -> Result<Vec<Profile>> {
        names.iter().map(|n| self.load(n)).collect()
    }

    /// Write a profile (atomically; the directory made private where missing).
    pub fn save(&self, name: &str, p: &Profile) -> Result<()> {
        check_name(name)?;
        match std::fs::create_dir(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx(|| format!("create {}", self.dir.display())),
        }
        super::config::write_atomic(&self.file(name), p.to_yaml()?.as_bytes())
    }

    /// Remove a profile's file.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let f = self.file(name);
        std::fs::remove_file(&f).ctx(|| format!("remove {}", f.display()))
    }

    /// Every profile name, sorted (`default` included).
    pub fn names(&self) -> Result<Vec<String>> {
        let mut out = vec![DEFAULT.to_string()];
        match std::fs::read_dir(&self.dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().to_string();
                    if let Some(n) = n.strip_suffix(".yaml") {
                        if check_name(n).is_ok() && n != DEFAULT {
                            out.push(n.to_string());
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("read {}", self.dir.display())),
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_exists_and_others_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let ps = Profiles::new(t.path());
        assert_eq!(ps.load(DEFAULT).unwrap(), Profile::default());
        assert!(ps.load("web").is_err());
        let p = Profile {
            description: "web".into(),
            config: [("limits.memory".to_string(), "1GiB".to_string())].into(),
            ..Default::default()
        };
        ps.save("web", &p).unwrap();
        assert_eq!(ps.load("web").unwrap(), p);
        assert_eq!(ps.names().unwrap(), vec!["default", "web"]);
        assert!(ps.save("../x", &p).is_err());
        assert!(Profile::from_user("config:\n  limits.memory: lots\n").is_err());
        assert!(Profile::from_user("config:\n  volatile.x: '1'\n").is_err());
    }
}
