//! `copy SRC[/SNAP] DST`: a new stopped container with the source's own layer (an overlay's
//! upper layer over the same image, or a full copy), config and, unless `instance_only`
//! (or a snapshot is the source), its snapshots. The copy gets fresh identity: the image's
//! create templates are rendered again for its name where the image is known, and an existing
//! `/etc/hostname` names the copy. Made under both containers' locks; a failed copy is
//! removed entirely.

use super::snapshot::copy_file;
use super::Containers;
use crate::container::{check_name, State};
use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::image::{self, Store};
use crate::lock::Lock;
use crate::storage::{Backend, Record};

impl Containers {
    /// Copy `src` (or its snapshot `snap`) to the new container `dst`.
    pub fn copy(
        &self,
        src: &str,
        snap: Option<&str>,
        dst: &str,
        instance_only: bool,
    ) -> Result<()> {
        check_name(src)?;
        check_name(dst)?;
        if src == dst {
            return Err(Error::Usage(format!("{src} cannot be copied onto itself")));
        }
        let _src_lock = Lock::container(&self.paths, src)?;
        let _dst_lock = Lock::container(&self.paths, dst)?;
        self.existing(src)?;
        let to = self.paths.container(dst);
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(Error::Usage(format!(
                "container {dst} already exists (lxr delete {dst} first, or pick another name)"
            )));
        }
        let from = match snap {
            Some(s) => self.snapshot_dir(src, s)?,
            None => self.paths.container(src),
        };
        // A running source is frozen while its layer is read (see snapshot.rs).
        let running = snap.is_none() && State::load(&self.paths.state(src))?.is_some();
        // Not killed while the source is frozen (see crate::deferred); a signal that came
        // meanwhile ends lxr after the thaw, before the copy is renamed into place.
        let held = running.then(crate::deferred::Deferred::hold);
        let thaw = if running {
            self.freeze_for(src)?
        } else {
            false
        };
        let maps = IdMaps::for_current_user()?;
        // Made under a hidden name, renamed into place once whole (see `partial_container`).
        let partial = match self.partial_container(&maps, dst) {
            Ok(p) => p,
            Err(e) => {
                if thaw {
                    let _ = self.freeze(src, false);
                }
                return Err(e);
            }
        };
        let copied = self.copy_into(&maps, src, snap, &from, &partial, instance_only);
        let thawed = if thaw {
            self.freeze(src, false)
        } else {
            Ok(())
        };
        drop(held);
        let made = copied
            .and_then(|record| {
                std::fs::rename(&partial, &to)
                    .ctx(|| format!("rename into {}", to.display()))
                    .map(|()| record)
            })
            .and_then(|record| self.fresh_identity(&record, dst));
        if made.is_err() {
            // The partial copy, or the renamed one whose identity failed.
            let _ = self.remove_tree(dst, &maps);
        }
        made.and(thawed)
    }

    fn copy_into(
        &self,
        maps: &IdMaps,
        src: &str,
        snap: Option<&str>,
        from: &std::path::Path,
        to: &std::path::Path,
        instance_only: bool,
    ) -> Result<Record> {
        let record = Record::load(from)?;
        self.copy_layer(maps, &record, from, to)?;
        if record.backend == Backend::Overlay {
            crate::storage::overlay::reset_work(maps, to)?;
            mkdir_root(maps, to, "rootfs")?;
        }
        copy_file(&from.join("config.yaml"), &to.join("config.yaml"))?;
        record.save(to)?;
        if snap.is_none() && !instance_only {
            let snaps = self.snapshot_list(src)?;
            if !snaps.is_empty() {
                let dir = to.join("snapshots");
                std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
            }
            for s in snaps {
                let sf = self.snapshot_dir(src, &s.name)?;
                let st = to.join("snapshots").join(&s.name);
                std::fs::create_dir(&st).ctx(|| format!("create {}", st.display()))?;
                let r = Record::load(&sf)?;
                self.copy_layer(maps, &r, &sf, &st)?;
                for f in ["config.yaml", "storage.json", "snapshot.json"] {
                    if sf.join(f).is_file() {
                        copy_file(&sf.join(f), &st.join(f))?;
                    }
                }
            }
        }
        Ok(record)
    }

    /// The copy's own name where the image put the old one: the image's create templates
    /// again (an overlay knows its image), and `/etc/hostname` if the rootfs has one.
    fn fresh_identity(&self, record: &Record, dst: &str) -> Result<()> {
        let store = Store::new(self.paths.data.join("images"));
        let templates = match &record.image {
            Some(fp) if crate::image::store::is_fingerprint(fp) && store.image(fp).is_dir() => {
                Some(image::templates_of(&store, fp)?)
            }
            _ => None,
        };
        self.with_rootfs(dst, None, |root| {
            if let Some((meta, t)) = &templates {
                image::template::apply_create(t.as_ref(), meta, root, dst)?;
            }
            let etc = match root.kind("etc")? {
                Some(crate::beneath::Kind::Dir) => root.open_dir("etc")?,
                _ => return Ok(()),
            };
            if etc.kind("hostname")? == Some(crate::beneath::Kind::File) {
                etc.replace("hostname", format!("{dst}\n").as_bytes(), 0o644)?;
            }
            Ok(())
        })
    }
}

/// Make `name` in the user's directory `dir`, the container root's, 0755.
pub(super) fn mkdir_root(maps: &IdMaps, dir: &std::path::Path, name: &str) -> Result<()> {
    let parent = crate::beneath::Dir::open(dir)?;
    crate::userns::run_as_root(maps, crate::idmap::Ids::WithUser, || {
        parent.mkdir(name, 0o755)?;
        parent.chown(name, 0, 0)?;
        parent.chmod(name, 0o755)
    })
}
