//! `config.yaml`: a container's image, profiles, settings and devices, read and written with
//! serde (any key or value — newlines, `:`, quotes — round-trips), replaced atomically (a
//! temporary file renamed over it, so a crash leaves the old or the new file, never half of
//! one). The hand-written format of older lxr (`image: busybox` then `key: "value"` lines, proxy
//! devices as `devices.<name>.*` keys) is still read, and converted at the next write.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::devices::{self, Devices};
use super::schema;
use crate::error::{Context, Error, Result};

/// The key that bounds a container's `console.log` (a size, as `limits.memory` takes it).
pub const LOG_SIZE_KEY: &str = "console.log.size";

/// Largest `config.yaml` lxr reads (a runaway `user.*` value must not eat the memory).
const MAX_SIZE: u64 = 4 << 20;

/// The image a container was made from, as it was then: an alias may later move to another
/// image or be deleted, the fingerprint and properties stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// sha256 of the image; empty for a built-in image (and for containers of an older lxr,
    /// which recorded the name only).
    #[serde(default)]
    pub fingerprint: String,
    /// The name it was launched by (alias or built-in name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// From the image's `metadata.yaml`: `os`, `release`, `architecture`, `description`…
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

impl ImageRef {
    /// How to show it: the alias while it still names this image (`aliases`: alias →
    /// fingerprint), else the short fingerprint and the description (or os and release).
    pub fn describe(&self, aliases: &BTreeMap<String, String>) -> String {
        let alias_holds = |a: &String| {
            self.fingerprint.is_empty() || aliases.get(a).is_some_and(|fp| *fp == self.fingerprint)
        };
        if let Some(a) = self.alias.as_ref().filter(|a| alias_holds(a)) {
            return crate::text::line(a);
        }
        let short: String = self.fingerprint.chars().take(12).collect();
        let what = self.properties.get("description").cloned().or_else(|| {
            let os = self.properties.get("os")?;
            Some(match self.properties.get("release") {
                Some(r) => format!("{os} {r}"),
                None => os.clone(),
            })
        });
        crate::text::line(&match what {
            Some(w) => format!("{short} ({w})"),
            None => short,
        })
    }
}

/// A container's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Image it was created from.
    #[serde(default)]
    pub image: ImageRef,
    /// Deleted when it stops (`launch --ephemeral`).
    #[serde(default)]
    pub ephemeral: bool,
    /// Profiles applied in order; then the container's own keys and devices win.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Settings (`limits.memory: 256MiB`, …): `config:` in the file, as Incus shows it.
    #[serde(default, rename = "config", alias = "keys")]
    pub keys: BTreeMap<String, String>,
    /// Devices: name → `type: proxy|disk` and its options.
    #[serde(default)]
    pub devices: Devices,
}

/// Check a setting before it is saved (see [`schema::check`]).
pub fn check_key(key: &str, value: &str) -> Result<()> {
    schema::check(key, value)
}

impl Config {
    /// Read `config.yaml`.
    pub fn load(path: &Path) -> Result<Config> {
        let f = std::fs::File::open(path).ctx(|| format!("read {}", path.display()))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_SIZE + 1), &mut text)
            .ctx(|| format!("read {}", path.display()))?;
        if text.len() as u64 > MAX_SIZE {
            return Err(Error::Usage(format!(
                "{}: larger than {MAX_SIZE} bytes",
                path.display()
            )));
        }
        Config::parse(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
    }

    /// Parse a `config.yaml` of either format.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        if is_old_format(text) {
            return parse_old(text);
        }
        let c: Config =
            serde_yaml_ng::from_str(text).map_err(|e| crate::text::line(&e.to_string()))?;
        Ok(c)
    }

    /// Parse YAML a user wrote (`config edit`) and check every key and device; `volatile.*`
    /// keys must be as in `current`.
    pub fn from_user(text: &str, current: &Config) -> Result<Config> {
        let c: Config = serde_yaml_ng::from_str(text).map_err(|e| {
            Error::Usage(format!(
                "invalid YAML: {}",
                crate::text::line(&e.to_string())
            ))
        })?;
        for (k, v) in &c.keys {
            if k.starts_with(schema::VOLATILE) {
                if current.keys.get(k) != Some(v) {
                    return Err(Error::Usage(format!(
                        "{k}: volatile.* keys are lxr's own, read-only"
                    )));
                }
            } else {
                schema::check(k, v)?;
            }
        }
        for k in current.keys.keys() {
            if k.starts_with(schema::VOLATILE) && !c.keys.contains_key(k) {
                return Err(Error::Usage(format!(
                    "{k}: volatile.* keys are lxr's own, read-only"
                )));
            }
        }
        if c.image != current.image {
            return Err(Error::Usage(
                "image: the image a container was made from cannot be changed".into(),
            ));
        }
        for p in &c.profiles {
            super::profile::check_name(p)?;
        }
        devices::check_all(&c.devices)?;
        Ok(c)
    }

    /// As YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml_ng::to_string(self).map_err(|e| Error::Host(format!("encode config: {e}")))
    }

    /// Write `config.yaml`: a temporary file beside it, flushed, renamed over it.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_yaml()?.as_bytes())
    }

    /// The keys with the devices flattened into `devices.<name>.<option>` keys: the form the
    /// network code ([`crate::net::proxy::all`]) and the start read.
    pub fn flat(&self) -> BTreeMap<String, String> {
        let mut k = self.keys.clone();
        for (dev, opts) in &self.devices {
            for (o, v) in opts {
                k.insert(format!("{}{dev}.{o}", crate::net::proxy::PREFIX), v.clone());
            }
        }
        k
    }

    /// This configuration with `profiles` (name, profile) applied under it: each profile's
    /// keys and devices in order, then the container's own.
    pub fn expanded(&self, profiles: &[super::profile::Profile]) -> Config {
        let mut out = Config {
            image: self.image.clone(),
            ephemeral: self.ephemeral,
            profiles: self.profiles.clone(),
            ..Default::default()
        };
        for p in profiles {
            out.keys.extend(p.config.clone());
            out.devices.extend(p.devices.clone());
        }
        out.keys.extend(self.keys.clone());
        out.devices.extend(self.devices.clone());
        out
    }
}

/// Write `data` to `path` atomically (temporary file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).ctx(|| format!("rename {}", path.display()))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The old format starts with `image: <name>` on one line (the new one has `image:` followed
/// by an indented mapping).
fn is_old_format(text: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("image:")
            .map(str::trim)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('{'))
    })
}

/// Old lxr's `key: "value"` lines (its own writer's output: values were never escaped).
fn parse_old(text: &str) -> std::result::Result<Config, String> {
    let mut c = Config::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected `key: value`", i + 1))?;
        let (k, v) = (k.trim(), v.trim().trim_matches('"'));
        if k == "image" {
            c.image = ImageRef {
                alias: Some(v.to_string()),
                ..Default::default()
            };
        } else if let Some(rest) = k.strip_prefix(crate::net::proxy::PREFIX) {
            // Proxy devices lived in the keys as `devices.<name>.<option>`.
            if let Some((dev, opt)) = rest.rsplit_once('.') {
                c.devices
                    .entry(dev.to_string())
                    .or_default()
                    .insert(opt.to_string(), v.to_string());
            }
        } else {
            c.keys.insert(k.to_string(), v.to_string());
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.yaml");
        (t, p)
    }

    #[test]
    fn round_trip() {
        let mut c = Config {
            image: ImageRef {
                fingerprint: "ab".repeat(32),
                alias: Some("debian".into()),
                properties: [("os".to_string(), "Debian".to_string())].into(),
            },
            profiles: vec!["default".into()],
            ..Default::default()
        };
        c.keys.insert("limits.memory".into(), "256MiB".into());
        let (_t, p) = tmp();
        c.save(&p).unwrap();
        assert_eq!(Config::load(&p).unwrap(), c);
        assert!(Config::parse("nonsense").is_err());
    }

    #[test]
    fn config_set_newline_value_makes_container_unusable() {
        let mut c = Config::default();
        c.keys.insert("user.note".into(), "a\nb".into());
        c.keys
            .insert("user.q".into(), "say \"hi\"\\n: 'x' #no".into());
        let (_t, p) = tmp();
        c.save(&p).unwrap();
        assert_eq!(Config::load(&p).unwrap(), c);
    }

    #[test]
    fn keys_with_colon_are_mangled() {
        let mut c = Config::default();
        c.keys.insert("user.a:b".into(), "c:d".into());
        let (_t, p) = tmp();
        c.save(&p).unwrap();
        assert_eq!(
            Config::load(&p).unwrap().keys.get("user.a:b").unwrap(),
            "c:d"
        );
    }

    #[test]
    fn old_format_is_read_and_converted() {
        let old = "image: busybox\nlimits.memory: \"128MiB\"\ndevices.web.type: \"proxy\"\n\
                   devices.web.listen: \"tcp:127.0.0.1:8080\"\n\
                   devices.web.connect: \"tcp:127.0.0.1:80\"\n";
        let c = Config::parse(old).unwrap();
        assert_eq!(c.image.alias.as_deref(), Some("busybox"));
        assert_eq!(c.keys.get("limits.memory").unwrap(), "128MiB");
        assert_eq!(c.devices["web"]["listen"], "tcp:127.0.0.1:8080");
        assert_eq!(
            c.flat().get("devices.web.connect").unwrap(),
            "tcp:127.0.0.1:80"
        );
        let (_t, p) = tmp();
        c.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!is_old_format(&text), "{text}");
        assert_eq!(Config::load(&p).unwrap(), c);
    }

    #[test]
    fn image_shows_alias_only_while_it_holds() {
        let fp = "cd".repeat(32);
        let i = ImageRef {
            fingerprint: fp.clone(),
            alias: Some("deb".into()),
            properties: [("description".to_string(), "Debian 12".to_string())].into(),
        };
        let mut aliases = BTreeMap::from([("deb".to_string(), fp)]);
        assert_eq!(i.describe(&aliases), "deb");
        aliases.insert("deb".into(), "ef".repeat(32));
        assert_eq!(i.describe(&aliases), "cdcdcdcdcdcd (Debian 12)");
        aliases.clear();
        assert_eq!(i.describe(&aliases), "cdcdcdcdcdcd (Debian 12)");
    }

    #[test]
    fn edits_are_checked() {
        let cur = Config {
            keys: [("volatile.x".to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        let ok = "config:\n  limits.memory: 1GiB\n  volatile.x: '1'\n";
        assert!(Config::from_user(ok, &cur).is_ok());
        for bad in [
            "config:\n  limits.memory: lots\n  volatile.x: '1'\n",
            "config:\n  limts.memory: 1G\n  volatile.x: '1'\n",
            "config:\n  volatile.x: '2'\n",
            "config: {}\n",
            "bogus: 1\n",
            "config:\n  volatile.x: '1'\nimage:\n  fingerprint: ab\n",
            "config:\n  volatile.x: '1'\ndevices:\n  d:\n    type: disk\n    source: rel\n    path: /x\n",
        ] {
            assert!(Config::from_user(bad, &cur).is_err(), "{bad}");
        }
    }
}
