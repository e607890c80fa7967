//! Making a container: its directory, `config.yaml` and a rootfs from an image; `launch` is
//! create then start under one lock.

use super::Containers;
use crate::container::{check_key, check_name, Config, State};
use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::image;
use crate::lock::Lock;
use crate::userns::remove_as_root;

impl Containers {
    /// Create `name` from `image_name` with settings `keys` (`KEY=VALUE`), without starting it
    /// (`lxr init`); an `ephemeral` one is deleted when it stops after a start.
    pub fn create(
        &self,
        image_name: &str,
        name: &str,
        keys: &[String],
        ephemeral: bool,
    ) -> Result<()> {
        check_name(name)?;
        let _lock = Lock::container(&self.paths, name)?;
        self.create_locked(image_name, name, keys, ephemeral)
    }

    /// Create `name` and start it; the container stays (stopped) if the start fails.
    pub fn launch(
        &self,
        image_name: &str,
        name: &str,
        keys: &[String],
        ephemeral: bool,
    ) -> Result<State> {
        check_name(name)?;
        let lock = Lock::container(&self.paths, name)?;
        self.create_locked(image_name, name, keys, ephemeral)?;
        self.start_locked(name, &lock).map_err(|e| {
            Error::from_child(&format!(
                "{e} (the container was created; fix the problem and run `lxr start {name}`, or \
                 `lxr delete {name}`)"
            ))
        })
    }

    fn create_locked(
        &self,
        image_name: &str,
        name: &str,
        keys: &[String],
        ephemeral: bool,
    ) -> Result<()> {
        let store = image::Store::new(self.paths.data.join("images"));
        let source = store.resolve(image_name)?;
        let mut cfg = Config {
            image: image_name.to_string(),
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
        self.paths.ensure()?;
        let dir = self.paths.container(name);
        if dir.exists() {
            return Err(Error::Usage(format!(
                "container {name} already exists (lxr delete {name} first, or pick another name)"
            )));
        }
        let maps = IdMaps::for_current_user()?;
        std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
        let result = (|| {
            cfg.save(&dir.join("config.yaml"))?;
            self.make_rootfs(&store, &source, &maps, &dir, name)
        })();
        if result.is_err() {
            let _ = self.remove_tree(name, &maps);
        }
        result
    }

    /// Remove a container's directory tree (its layers and snapshots belong to the container's
    /// root, some files of an overlay's to the user: removed from inside a namespace that maps
    /// both) and its runtime directory.
    pub(super) fn remove_tree(&self, name: &str, maps: &IdMaps) -> Result<()> {
        let dir = self.paths.container(name);
        remove_as_root(maps, &dir)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("remove {}", dir.display())),
        }
        let _ = std::fs::remove_dir_all(self.paths.state(name));
        Ok(())
    }
}
