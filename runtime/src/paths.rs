//! Where lxr keeps things: `$XDG_DATA_HOME/lxr` (default `~/.local/share/lxr`) for images and
//! containers, `$XDG_RUNTIME_DIR/lxr` (or `<data>/run` when there is no runtime directory) for
//! the state of running containers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// The user's lxr directories.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `…/lxr`: `images/`, `containers/`.
    pub data: PathBuf,
    /// Runtime state of running containers.
    pub run: PathBuf,
}

impl Paths {
    /// From the environment (`XDG_DATA_HOME`, `HOME`, `XDG_RUNTIME_DIR`).
    pub fn from_env() -> Result<Paths> {
        let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Error::Host("neither XDG_DATA_HOME nor HOME is set".into()))?;
                PathBuf::from(home).join(".local/share")
            }
        }
        .join("lxr");
        let run = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(r) if Path::new(&r).is_dir() => PathBuf::from(r).join("lxr"),
            _ => data.join("run"),
        };
        Ok(Paths { data, run })
    }

    /// Paths below an explicit root (tests).
    pub fn under(root: &Path) -> Paths {
        Paths {
            data: root.join("data"),
            run: root.join("run"),
        }
    }

    /// Create the directories. The data tree must be searchable by the containers' mapped root
    /// (it is not the user's uid), so it is 0711; runtime state stays private.
    pub fn ensure(&self) -> Result<()> {
        for (d, mode) in [
            (self.data.clone(), 0o711),
            (self.data.join("containers"), 0o711),
            (self.data.join("images"), 0o711),
            (self.run.clone(), 0o700),
        ] {
            std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
                .ctx(|| format!("chmod {}", d.display()))?;
        }
        // The directories above data (e.g. ~/.local/share) need search permission too.
        for a in self.data.ancestors().skip(1) {
            let Ok(md) = std::fs::metadata(a) else { break };
            if md.permissions().mode() & 0o001 == 0 {
                return Err(Error::Host(format!(
                    "{} is not searchable by others (mode {:o}); the containers' root user must \
                     reach {}: chmod o+x {}",
                    a.display(),
                    md.permissions().mode() & 0o7777,
                    self.data.display(),
                    a.display()
                )));
            }
            if a == Path::new("/") {
                break;
            }
        }
        Ok(())
    }

    /// A container's directory.
    pub fn container(&self, name: &str) -> PathBuf {
        self.data.join("containers").join(name)
    }

    /// A running container's state directory.
    pub fn state(&self, name: &str) -> PathBuf {
        self.run.join(name)
    }
}
