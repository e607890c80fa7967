//! Making a container: its directory, `config.yaml` and a rootfs from an image; `launch` is
//! create then start under one lock.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Containers;
use crate::container::profile::DEFAULT;
use crate::container::{check_key, check_name, devices, Config, ImageRef, State};
use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::image::{self, Source, Store};
use crate::lock::Lock;
use crate::userns::remove_as_root;

/// The image as a container records it: fingerprint, the alias it was named by, properties.
fn image_ref(store: &Store, name: &str, source: &Source) -> Result<ImageRef> {
    Ok(match source {
        Source::Builtin(b) => ImageRef {
            fingerprint: String::new(),
            alias: Some(b.to_string()),
            properties: BTreeMap::from([
                ("os".to_string(), "busybox".to_string()),
                ("description".to_string(), format!("{b} (built-in)")),
            ]),
        },
        Source::Stored(fp) => {
            let meta = image::store::read_metadata(&crate::beneath::Dir::open(&store.image(fp))?)?;
            let mut properties: BTreeMap<String, String> = meta
                .properties
                .keys()
                .filter_map(|k| Some((k.clone(), meta.property(k)?)))
                .collect();
            properties
                .entry("architecture".into())
                .or_insert(meta.architecture.clone());
            let alias = store.aliases()?.get(name).is_some_and(|a| a == fp);
            ImageRef {
                fingerprint: fp.clone(),
                alias: alias.then(|| name.to_string()),
                properties,
            }
        }
    })
}

/// The prefix of a container being made (`containers/.partial-<name>`).
const PARTIAL: &str = ".partial-";

impl Containers {
    /// Create `name` from `image_name` without starting it (`lxr init`): settings `keys`
    /// (`KEY=VALUE`), `profiles` in order (`None`: the `default` profile); an `ephemeral` one is
    /// deleted when it stops after a start.
    pub fn create(
        &self,
        image_name: &str,
        name: &str,
        keys: &[String],
        profiles: Option<&[String]>,
        ephemeral: bool,
    ) -> Result<()> {
        self.create_held(image_name, name, keys, profiles, ephemeral)
            .map(drop)
    }

    /// Create `name` (as [`Containers::create`]) and start it; the container stays (stopped)
    /// if the start fails.
    pub fn launch(
        &self,
        image_name: &str,
        name: &str,
        keys: &[String],
        profiles: Option<&[String]>,
        ephemeral: bool,
    ) -> Result<State> {
        let lock = self.create_held(image_name, name, keys, profiles, ephemeral)?;
        self.start_locked(name, &lock).map_err(|e| {
            Error::from_child(&format!(
                "{e} (the container was created; fix the problem and run `lxr start {name}`, or \
                 `lxr delete {name}`)"
            ))
        })
    }

    /// [`Containers::create`], the container's lock still held (for `launch` to start it).
    fn create_held(
        &self,
        image_name: &str,
        name: &str,
        keys: &[String],
        profiles: Option<&[String]>,
        ephemeral: bool,
    ) -> Result<Lock> {
        check_name(name)?;
        let cfg = self.new_config(keys, profiles, ephemeral)?;
        let lock = Lock::container(&self.paths, name)?;
        self.create_locked(image_name, name, cfg)?;
        Ok(lock)
    }

    /// A new container's configuration from `-c KEY=VALUE` and `-p` arguments, every key,
    /// profile and device source checked — before anything (a directory, a lock) is made.
    fn new_config(
        &self,
        keys: &[String],
        profiles: Option<&[String]>,
        ephemeral: bool,
    ) -> Result<Config> {
        let mut cfg = Config {
            profiles: profiles
                .map(<[String]>::to_vec)
                .unwrap_or_else(|| vec![DEFAULT.to_string()]),
            ephemeral,
            ..Default::default()
        };
        for kv in keys {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("-c {kv}: expected KEY=VALUE")))?;
            check_key(k, v)?;
            cfg.keys.insert(k.to_string(), v.to_string());
        }
        for (i, p) in cfg.profiles.iter().enumerate() {
            if cfg.profiles[..i].contains(p) {
                return Err(Error::Usage(format!("profile {p} given twice")));
            }
        }
        let expanded = self.expand(&cfg)?;
        for d in devices::disks(&expanded.devices)? {
            d.open_source()?;
        }
        Ok(cfg)
    }

    /// Create the container from the checked `cfg` (see [`Containers::new_config`]).
    fn create_locked(&self, image_name: &str, name: &str, mut cfg: Config) -> Result<()> {
        let store = image::Store::new(self.paths.data.join("images"));
        let source = store.resolve(image_name)?;
        cfg.image = image_ref(&store, image_name, &source)?;
        self.paths.ensure()?;
        let dir = self.paths.container(name);
        if dir.exists() {
            return Err(Error::Usage(format!(
                "container {name} already exists (lxr delete {name} first, or pick another name)"
            )));
        }
        let maps = IdMaps::for_current_user()?;
        let partial = self.partial_container(&maps, name)?;
        let result = (|| {
            cfg.save(&partial.join("config.yaml"))?;
            self.make_rootfs(&store, &source, &maps, &partial, name)?;
            std::fs::rename(&partial, &dir).ctx(|| format!("rename into {}", dir.display()))
        })();
        if result.is_err() {
            let _ = self.remove_tree(name, &maps);
        }
        result
    }

    /// A new, empty `containers/.partial-<name>`, where a new container is made before it is
    /// renamed into place: a create or copy interrupted by Ctrl-C or a kill leaves no half
    /// container behind (one with its config but half a rootfs looked whole to `list` and
    /// `start`; one without a config was listed with no image). What interrupted creates left
    /// is removed first, under the locks of their names. The caller holds `name`'s lock.
    pub(super) fn partial_container(&self, maps: &IdMaps, name: &str) -> Result<PathBuf> {
        let containers = self.paths.data.join("containers");
        let stale = std::fs::read_dir(&containers)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_prefix(PARTIAL)
                            .filter(|o| check_name(o).is_ok())
                            .map(str::to_string)
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for other in stale {
            // `name`'s own lock is ours; another name's, if its create still runs, is not.
            let _held = if other == name {
                None
            } else {
                match Lock::container_wait(&self.paths, &other, std::time::Duration::ZERO) {
                    Ok(l) => Some(l),
                    Err(_) => continue,
                }
            };
            remove_all(maps, &containers.join(format!("{PARTIAL}{other}")))?;
        }
        let partial = containers.join(format!("{PARTIAL}{name}"));
        std::fs::create_dir(&partial).ctx(|| format!("create {}", partial.display()))?;
        Ok(partial)
    }

    /// Remove a container's directory tree (its layers and snapshots belong to the container's
    /// root, some files of an overlay's to the user: removed from inside a namespace that maps
    /// both) and its runtime directory.
    ///
    /// The tree is first renamed out of sight (to the `.partial-<name>` a create would use, also
    /// removed here if a failed create left it): a delete interrupted halfway leaves a hidden
    /// directory the next create sweeps, not a container without its config.
    pub(super) fn remove_tree(&self, name: &str, maps: &IdMaps) -> Result<()> {
        let dir = self.paths.container(name);
        let gone = self
            .paths
            .data
            .join("containers")
            .join(format!("{PARTIAL}{name}"));
        remove_all(maps, &gone)?;
        match std::fs::rename(&dir, &gone) {
            Ok(()) => remove_all(maps, &gone)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Removed where it is, then.
            Err(_) => remove_all(maps, &dir)?,
        }
        let _ = std::fs::remove_dir_all(self.paths.state(name));
        Ok(())
    }
}

/// Remove `path` and everything below it (files of the container's root and of the user's).
fn remove_all(maps: &IdMaps, path: &std::path::Path) -> Result<()> {
    remove_as_root(maps, path)?;
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}
