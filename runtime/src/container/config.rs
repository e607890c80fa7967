//! `config.yaml`: the container's image and its `key: value` settings (LXD's flat keys such as
//! `limits.memory`). Written as plain YAML mapping lines.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Context, Error, Result};

/// The key that bounds a container's `console.log` (a size, as `limits.memory` takes it).
pub const LOG_SIZE_KEY: &str = "console.log.size";

/// A container's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Image it was created from.
    pub image: String,
    /// Deleted when it stops (`launch --ephemeral`); kept across a reboot inside.
    pub ephemeral: bool,
    /// Settings (`limits.memory: 256MiB`, …).
    pub keys: BTreeMap<String, String>,
}

/// Check a setting before it is saved: `limits.*` as [`crate::limits`] reads them,
/// `network.*` as [`crate::net`] does, `console.log.size` as a size, `devices.*` only through
/// `config device`; other keys are kept as given.
pub fn check_key(key: &str, value: &str) -> Result<()> {
    if key == "ephemeral" {
        return Err(Error::Usage(
            "ephemeral is chosen at creation (`lxr launch --ephemeral`), not a config key".into(),
        ));
    }
    if key.starts_with("limits.") {
        // limits.cpu needs the available CPUs to check a count; any list will do here.
        crate::limits::writes(key, value, "0-4095")?;
    } else if key.starts_with("network.") {
        crate::net::check_key(key, value)?;
    } else if key.starts_with(crate::net::proxy::PREFIX) {
        return Err(Error::Usage(format!(
            "{key}: devices are changed with `lxr config device add|remove`"
        )));
    } else if key == LOG_SIZE_KEY {
        crate::limits::parse_bytes(value).map_err(|e| Error::Usage(format!("{key}: {e}")))?;
    }
    if key.contains(['\n', ':', '"']) || value.contains(['\n', '"']) {
        return Err(Error::Usage(format!(
            "{key:?}: keys may not contain newlines, ':' or '\"', values no newlines or '\"'"
        )));
    }
    Ok(())
}

impl Config {
    /// Read `config.yaml`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).ctx(|| format!("read {}", path.display()))?;
        Config::parse(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
    }

    /// Parse `key: value` lines (`#` comments, blank lines ignored).
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
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
                c.image = v.to_string();
            } else if k == "ephemeral" {
                c.ephemeral = v == "true";
            } else {
                c.keys.insert(k.to_string(), v.to_string());
            }
        }
        Ok(c)
    }

    /// Write `config.yaml`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut s = format!("image: {}\n", self.image);
        if self.ephemeral {
            s.push_str("ephemeral: true\n");
        }
        for (k, v) in &self.keys {
            s.push_str(&format!("{k}: \"{v}\"\n"));
        }
        std::fs::write(path, s).ctx(|| format!("write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut c = Config {
            image: "busybox".into(),
            ..Default::default()
        };
        c.keys.insert("limits.memory".into(), "256MiB".into());
        c.ephemeral = true;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.yaml");
        c.save(&p).unwrap();
        assert_eq!(Config::load(&p).unwrap(), c);
        assert!(Config::parse("nonsense").is_err());
    }
}
