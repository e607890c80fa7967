//! Where lxr keeps things: `$XDG_DATA_HOME/lxr` (default `~/.local/share/lxr`) for images and
//! containers, `$XDG_RUNTIME_DIR/lxr` (or `<data>/run` when there is no runtime directory) for
//! the state of running containers. All of it is private to the user (0700 directories,
//! files made under umask 077).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::beneath::{Dir, Kind};
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
        let p = Paths { data, run };
        p.check_existing()?;
        Ok(p)
    }

    /// The data and runtime directories, where they exist, must be the user's own: a
    /// directory another user made (in a shared place like `/tmp`) could hold planted
    /// containers, states naming other processes, or images.
    fn check_existing(&self) -> Result<()> {
        for d in [&self.data, &self.run] {
            own_dir(d)?;
        }
        Ok(())
    }

    /// Paths below an explicit root (tests).
    pub fn under(root: &Path) -> Paths {
        Paths {
            data: root.join("data"),
            run: root.join("run"),
        }
    }

    /// Create the directories, private to the user (0700, as LXD keeps its containers out of
    /// reach): other users must not read a container's files, write into its rootfs, plant
    /// files in an image or hold a lock. Directories lxr finds there already must be the
    /// user's own (a data directory in a shared place like `/tmp` could have been made by
    /// someone else) and are made private again if an older lxr left them searchable.
    /// The containers' root never walks these paths: lxr opens what it needs first.
    pub fn ensure(&self) -> Result<()> {
        let upgrade =
            own_dir(&self.data)?.is_some_and(|md| md.permissions().mode() & 0o7777 != 0o700);
        for d in [
            self.data.clone(),
            self.data.join("containers"),
            self.data.join("images"),
            self.run.clone(),
        ] {
            match std::fs::DirBuilder::new().mode(0o700).create(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&d)
                        .ctx(|| format!("create {}", d.display()))?;
                }
                Err(e) => return Err(e).ctx(|| format!("create {}", d.display())),
            }
            let md =
                own_dir(&d)?.ok_or_else(|| Error::Host(format!("{} vanished", d.display())))?;
            if md.permissions().mode() & 0o7777 != 0o700 {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                    .ctx(|| format!("chmod {}", d.display()))?;
            }
        }
        if upgrade {
            let n = strip_setid(&self.data, nix::unistd::getuid().as_raw());
            if n > 0 {
                eprintln!(
                    "lxr: removed the setuid/setgid bits of {n} file(s) of yours under {} \
                     (images unpacked by an older lxr could hand out your uid)",
                    self.data.display()
                );
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

/// The metadata of `d` if it exists — which it may only as a directory of the user's own.
fn own_dir(d: &Path) -> Result<Option<std::fs::Metadata>> {
    let md = match std::fs::symlink_metadata(d) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("stat {}", d.display())),
    };
    if !md.is_dir() || md.uid() != nix::unistd::getuid().as_raw() {
        return Err(Error::Host(format!(
            "{} is not a directory of yours (owner uid {}): refusing to use it; remove it or \
             point XDG_DATA_HOME/XDG_RUNTIME_DIR elsewhere",
            d.display(),
            md.uid()
        )));
    }
    Ok(Some(md))
}

/// Before lxr unpacked images as a container root that maps nothing of the user's, an archive
/// could make files of the user's own uid, set-id included. Their set-id bits go when an older
/// data directory is first made private; returns how many files were changed. Everything is
/// resolved beneath the data directory without following a symlink (running containers may
/// be changing their rootfs meanwhile); directories the user cannot read are skipped (nobody
/// else can reach them).
fn strip_setid(dir: &Path, me: u32) -> usize {
    fn walk(d: &Dir, me: u32) -> usize {
        let Ok(names) = d.entries() else { return 0 };
        let mut n = 0;
        for name in names {
            match d.kind(&name) {
                Ok(Some(Kind::Dir)) => {
                    if let Ok(sub) = d.open_dir(&name) {
                        n += walk(&sub, me);
                    }
                }
                Ok(Some(Kind::File)) if d.clear_setid(&name, me).unwrap_or(false) => n += 1,
                _ => {}
            }
        }
        n
    }
    Dir::open(dir).map(|d| walk(&d, me)).unwrap_or(0)
}
