//! A container's root filesystem as lxr's other steps need it: made at create in the data
//! directory's storage backend ([`crate::storage`]), entered while the container is stopped
//! ([`Containers::with_rootfs`]), its own layer (an overlay's `upper/`, a copy's `rootfs/`)
//! copied for snapshots and copies, and measured for `info`.

use std::path::Path;

use super::Containers;
use crate::beneath::Dir;
use crate::container::State;
use crate::error::{Context, Error, Result};
use crate::idmap::{IdMaps, Ids};
use crate::image::{self, Source, Store};
use crate::storage::copy::{self, Blocks};
use crate::storage::overlay::{self, Layers};
use crate::storage::{self, Backend, Record};
use crate::userns::{become_root, remove_as_root, run_as_root, run_mapped};

/// The directory of a container's (or snapshot's) own layer: `upper` for an overlay, else
/// `rootfs`.
pub(crate) fn layer_name(r: &Record) -> &'static str {
    match r.backend {
        Backend::Overlay => "upper",
        Backend::Reflink | Backend::Copy => "rootfs",
    }
}

impl Containers {
    /// Make the rootfs of the new container in `dir` from `source`, in the data directory's
    /// backend, and record which.
    pub(super) fn make_rootfs(
        &self,
        store: &Store,
        source: &Source,
        maps: &IdMaps,
        dir: &Path,
        name: &str,
    ) -> Result<()> {
        let backend = storage::backend_for_new(&self.paths, maps)?;
        if backend != Backend::Overlay {
            let blocks = match backend {
                Backend::Reflink => Blocks::Always,
                _ => Blocks::Auto,
            };
            image::create_rootfs(store, source, maps, &dir.join("rootfs"), name, blocks)?;
            return Record {
                backend,
                image: None,
            }
            .save(dir);
        }
        let img = match source {
            Source::Builtin(b) => {
                self.ensure_builtin(store, maps, b)?;
                b.to_string()
            }
            Source::Stored(fp) => fp.clone(),
        };
        let lower = storage::lower_of(&self.paths, &img)?;
        {
            // Under the store's lock until the record names the image: an `image delete`
            // meanwhile either ran before (the image is gone: refused here) or sees this
            // container among the image's users.
            let _store = store.lock()?;
            if !lower.is_dir() {
                return Err(Error::NotFound(format!(
                    "image {} was deleted meanwhile",
                    img.get(..12).unwrap_or(&img)
                )));
            }
            overlay::create(maps, dir, &lower)?;
            Record {
                backend,
                image: Some(img),
            }
            .save(dir)?;
        }
        // The image's create templates (hostname, hosts) land in the upper layer, written
        // through the mounted overlay as the container's root.
        if let Source::Stored(fp) = source {
            let (meta, templates) = image::templates_of(store, fp)?;
            overlay::enter(
                maps,
                &Layers::of_container(dir, lower),
                &dir.join("rootfs"),
                |root| image::template::apply_create(templates.as_ref(), &meta, root, name),
            )?;
        }
        Ok(())
    }

    /// The shared rootfs of a built-in image (the lower layer of its overlays), built once
    /// under the image store's lock into a partial directory renamed into place.
    fn ensure_builtin(&self, store: &Store, maps: &IdMaps, name: &'static str) -> Result<()> {
        let done = storage::builtin_dir(&self.paths, name);
        if done.join("rootfs").is_dir() {
            return Ok(());
        }
        let _lock = store.lock()?;
        if done.join("rootfs").is_dir() {
            return Ok(());
        }
        let partial = store.partial(&format!("builtin-{name}"));
        remove_as_root(maps, &partial)?;
        std::fs::create_dir(&partial).ctx(|| format!("create {}", partial.display()))?;
        let built = image::create_rootfs(
            store,
            &Source::Builtin(name),
            maps,
            &partial.join("rootfs"),
            name,
            Blocks::Auto,
        )
        .and_then(|()| {
            std::fs::rename(&partial, &done).ctx(|| format!("rename {}", done.display()))
        });
        if built.is_err() {
            let _ = remove_as_root(maps, &partial);
        }
        built
    }

    /// The init of `name` (what `stop` signals), read from its rootfs or its overlay's layers.
    pub(crate) fn init_kind(&self, name: &str) -> crate::launch::boot::InitKind {
        let dir = self.paths.container(name);
        let layers = self.overlay_layers(&dir).ok().flatten();
        crate::launch::boot::init_kind_of(&dir.join("rootfs"), layers.as_ref())
    }

    /// The overlay layers of the container in `dir`, if it is an overlay.
    pub(crate) fn overlay_layers(&self, dir: &Path) -> Result<Option<Layers>> {
        let r = Record::load(dir)?;
        if r.backend != Backend::Overlay {
            return Ok(None);
        }
        Ok(Some(Layers::of_container(dir, r.lower(&self.paths)?)))
    }

    /// Run `f` in a forked child that is root of a user namespace mapping only the container's
    /// ids (`Ids::Container`), with `root` a `crate::beneath::Dir` open on the root directory of
    /// the *stopped* container's root filesystem (or of its snapshot `snap`), as the container
    /// will see it at its next start (for overlay: mounted in a private mount namespace of the
    /// child). Writes through `root` land in the container; a snapshot is mounted read-only.
    /// Errors (clearly) if the container is running and no snapshot is asked for: callers go through a running container's
    /// own namespaces instead. The caller holds the container's lock (`crate::lock::Lock`).
    pub(crate) fn with_rootfs<F>(&self, name: &str, snap: Option<&str>, f: F) -> Result<()>
    where
        F: FnOnce(&Dir) -> Result<()>,
    {
        // A snapshot's layers are its own, read-only, whatever the container does meanwhile.
        if snap.is_none() && State::load(&self.paths.state(name))?.is_some() {
            return Err(Error::Usage(format!(
                "{name} is running: its files are reached through its own namespaces (lxr exec), \
                 or stop it first"
            )));
        }
        let dir = self.paths.container(name);
        let maps = IdMaps::for_current_user()?;
        let (rec_dir, layer_dir) = match snap {
            None => (dir.clone(), dir.clone()),
            Some(s) => {
                let sd = self.snapshot_dir(name, s)?;
                (sd.clone(), sd)
            }
        };
        let record = Record::load(&rec_dir)?;
        if record.backend == Backend::Overlay {
            let lower = record.lower(&self.paths)?;
            let layers = match snap {
                None => Layers::of_container(&dir, lower),
                Some(_) => Layers {
                    lowers: vec![layer_dir.join("upper"), lower],
                    upper: None,
                },
            };
            return overlay::enter(&maps, &layers, &dir.join("rootfs"), f);
        }
        let rootfs = layer_dir.join("rootfs");
        let read_only = snap.is_some();
        run_mapped(&maps, Ids::Container, || {
            if read_only {
                read_only_bind(&rootfs)?;
            }
            let root = Dir::open(&rootfs)?;
            become_root()?;
            f(&root)
        })
    }

    /// Copy the own layer of the container or snapshot in `from` (recorded as `record`) into
    /// `to` (a new directory of the user's; the layer directory is made in it).
    pub(super) fn copy_layer(
        &self,
        maps: &IdMaps,
        record: &Record,
        from: &Path,
        to: &Path,
    ) -> Result<()> {
        let layer = layer_name(record);
        let src = Dir::open(&from.join(layer))?;
        let parent = Dir::open(to)?;
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::symlink_metadata(from.join(layer))
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o755)
        };
        run_as_root(maps, Ids::WithUser, || {
            parent.mkdir(layer, mode)?;
            parent.chown(layer, 0, 0)?;
            parent.chmod(layer, mode)
        })?;
        let dest = parent.open_dir(layer)?;
        // Every file of a layer is the container's (overlay too works as its root): the copy
        // runs in a namespace that maps nothing of the user's.
        copy::tree(maps, Ids::Container, &src, &dest, Blocks::Auto)
    }

    /// The storage of `name` and the disk use of its own layer, for `info`.
    pub fn storage(&self, name: &str) -> Result<(Record, Option<u64>)> {
        self.existing(name)?;
        let dir = self.paths.container(name);
        let record = Record::load(&dir)?;
        let used = IdMaps::for_current_user()
            .and_then(|maps| {
                let layer = Dir::open(&dir.join(layer_name(&record)))?;
                storage::usage::disk_use(&maps, &layer)
            })
            .ok();
        Ok((record, used))
    }
}

/// Bind `rootfs` on itself read-only (in a private mount namespace of this process).
fn read_only_bind(rootfs: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    crate::mountns::private_mounts()?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind {}", rootfs.display()))?;
    mount(
        None::<&str>,
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .ctx(|| format!("remount {} read-only", rootfs.display()))
}
