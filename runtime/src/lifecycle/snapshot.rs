//! Snapshots: `containers/<name>/snapshots/<snap>/` holds a copy of the container's own layer
//! (an overlay's `upper/` — cheap, the image is shared — or a copy's whole `rootfs/`), the
//! `config.yaml` and `storage.json` it was taken with, and `snapshot.json` (when). A snapshot
//! is made in `snapshots/.partial-<snap>` and renamed into place, so a failed or killed one
//! leaves nothing that looks like a snapshot.
//!
//! A running container is frozen (the cgroup freezer, as `lxr freeze`) while its layer is
//! copied and thawed afterwards, also on failure (unless it was frozen before). Reading an
//! overlay's upper layer behind its mount is safe: overlay forbids *changing* a layer behind
//! a mounted overlay, and the copy only reads; writes the frozen processes made are in the
//! page cache of the upper layer's own files, which the copy reads. A restore of a running
//! container stops it, restores and starts it again, as Incus does.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::rootfs::layer_name;
use super::{Containers, Halt};
use crate::beneath::Dir;
use crate::container::State;
use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::idmap::Ids;
use crate::lock::Lock;
use crate::storage::{self, overlay, Backend, Record};
use crate::userns::{remove_as_root, run_as_root};

/// Longest snapshot name.
pub const MAX_SNAP_NAME: usize = 63;

/// One snapshot, for `snapshot list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its name.
    pub name: String,
    /// When it was taken (unix time).
    pub taken_at: u64,
    /// Disk use of its layer, bytes (none if it could not be measured).
    pub size: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    taken_at: u64,
    /// Nanoseconds within the second: snapshots taken in one second keep their order.
    #[serde(default)]
    nanos: u32,
}

/// Check a snapshot name: 1-63 letters, digits, `-`, `_`, `.`, not starting with `.` or `-`
/// (no `/`, no `..`, nothing hidden: lxr's partial directories start with `.`).
pub fn check_snap_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SNAP_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid snapshot name {:?}: use 1-{MAX_SNAP_NAME} letters, digits, '-', '_' and \
             '.', not starting with '.' or '-'",
            crate::text::line(name)
        )))
    }
}

fn now() -> (u64, u32) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs(), d.subsec_nanos()))
        .unwrap_or((0, 0))
}

impl Containers {
    /// `containers/<name>/snapshots/<snap>`, which must exist.
    pub(super) fn snapshot_dir(&self, name: &str, snap: &str) -> Result<PathBuf> {
        check_snap_name(snap)?;
        let d = self.paths.container(name).join("snapshots").join(snap);
        if !d.join("storage.json").is_file() && !d.join("snapshot.json").is_file() {
            return Err(Error::NotFound(format!(
                "{name} has no snapshot {snap} (lxr snapshot list {name} shows them)"
            )));
        }
        Ok(d)
    }

    /// The snapshot names of `name`, sorted by name (cheap: no sizes; for `list`'s snapshot
    /// count and `info`).
    pub fn snapshot_names(&self, name: &str) -> Vec<String> {
        let dir = self.paths.container(name).join("snapshots");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| check_snap_name(n).is_ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Take a snapshot of `name` called `snap` (default: `snapN`, one more than the highest
    /// such name, as Incus); returns its name. An existing snapshot of that name is an error,
    /// or with `reuse` (Incus's `--reuse`) replaced once the new one is complete.
    pub fn snapshot_create(&self, name: &str, snap: Option<&str>, reuse: bool) -> Result<String> {
        crate::container::check_name(name)?;
        let _lock = Lock::container(&self.paths, name)?;
        self.existing(name)?;
        let existing = self.snapshot_names(name);
        let snap = match snap {
            Some(s) => {
                check_snap_name(s)?;
                s.to_string()
            }
            None => {
                let next = existing
                    .iter()
                    .filter_map(|n| n.strip_prefix("snap")?.parse::<u64>().ok())
                    .max()
                    .map_or(0, |n| n + 1);
                format!("snap{next}")
            }
        };
        if existing.contains(&snap) && !reuse {
            return Err(Error::Usage(format!(
                "{name} already has a snapshot {snap} (lxr snapshot delete {name} {snap} first, \
                 or --reuse)"
            )));
        }
        let running = State::load(&self.paths.state(name))?.is_some();
        // Not killed while the container is frozen (see crate::deferred).
        let held = running.then(crate::deferred::Deferred::hold);
        let thaw = if running {
            self.freeze_for(name)?
        } else {
            false
        };
        let made = self.snapshot_take(name, &snap);
        // Thawed whatever the copy did; the copy's error first.
        let thawed = if thaw {
            self.freeze(name, false)
        } else {
            Ok(())
        };
        drop(held);
        made.and(thawed).map(|()| snap)
    }

    /// Freeze a running `name` for a consistent copy; whether it must be thawed after (not if
    /// it was frozen already).
    pub(super) fn freeze_for(&self, name: &str) -> Result<bool> {
        if self.status(name, true)?.usage.frozen == Some(true) {
            return Ok(false);
        }
        self.freeze(name, true).map_err(|e| {
            Error::Usage(format!(
                "{name} runs and cannot be frozen for a consistent copy ({e}): stop it first"
            ))
        })?;
        Ok(true)
    }

    fn snapshot_take(&self, name: &str, snap: &str) -> Result<()> {
        let dir = self.paths.container(name);
        let snaps = dir.join("snapshots");
        match std::fs::create_dir(&snaps) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).ctx(|| format!("create {}", snaps.display()))
            }
            _ => {}
        }
        let maps = IdMaps::for_current_user()?;
        let partial = snaps.join(format!(".partial-{snap}"));
        remove_as_root(&maps, &partial)?;
        std::fs::create_dir(&partial).ctx(|| format!("create {}", partial.display()))?;
        let result = (|| {
            let record = Record::load(&dir)?;
            self.copy_layer(&maps, &record, &dir, &partial)?;
            copy_file(&dir.join("config.yaml"), &partial.join("config.yaml"))?;
            record.save(&partial)?;
            let (taken_at, nanos) = now();
            let meta = serde_json::to_string(&Meta { taken_at, nanos })
                .map_err(|e| Error::Host(format!("encode snapshot.json: {e}")))?;
            storage::write_atomic(&partial.join("snapshot.json"), meta.as_bytes())?;
            // A snapshot replaced (--reuse) goes aside first, and only once the new one is
            // complete: one of the two is always there.
            let done = snaps.join(snap);
            let old = snaps.join(format!(".old-{snap}"));
            if std::fs::symlink_metadata(&done).is_ok() {
                remove_as_root(&maps, &old)?;
                std::fs::rename(&done, &old).ctx(|| format!("move {} aside", done.display()))?;
            }
            std::fs::rename(&partial, &done).ctx(|| format!("rename {}", partial.display()))?;
            remove_as_root(&maps, &old)
        })();
        if result.is_err() {
            let _ = remove_as_root(&maps, &partial);
        }
        result
    }

    /// The snapshots of `name`, oldest first, with their disk use.
    pub fn snapshot_list(&self, name: &str) -> Result<Vec<Snapshot>> {
        self.existing(name)?;
        let maps = IdMaps::for_current_user()?;
        let mut out = Vec::new();
        for n in self.snapshot_names(name) {
            let Ok(d) = self.snapshot_dir(name, &n) else {
                continue;
            };
            let (taken_at, nanos) = std::fs::read_to_string(d.join("snapshot.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Meta>(&t).ok())
                .map_or((0, 0), |m| (m.taken_at, m.nanos));
            let size = Record::load(&d)
                .and_then(|r| crate::beneath::Dir::open(&d.join(layer_name(&r))))
                .and_then(|l| storage::usage::disk_use(&maps, &l))
                .ok();
            out.push((
                nanos,
                Snapshot {
                    name: n,
                    taken_at,
                    size,
                },
            ));
        }
        out.sort_by(|(an, a), (bn, b)| (a.taken_at, an, &a.name).cmp(&(b.taken_at, bn, &b.name)));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// Delete snapshot `snap` of `name`.
    pub fn snapshot_delete(&self, name: &str, snap: &str) -> Result<()> {
        crate::container::check_name(name)?;
        let _lock = Lock::container(&self.paths, name)?;
        self.existing(name)?;
        let d = self.snapshot_dir(name, snap)?;
        let maps = IdMaps::for_current_user()?;
        // Out of sight first, as a container's delete: an interrupted removal leaves a hidden
        // directory (gone with the next snapshot of that name, or the container), not half a
        // snapshot that lists and restores.
        let gone = d.with_file_name(format!(".partial-{snap}"));
        remove_as_root(&maps, &gone)?;
        match std::fs::rename(&d, &gone) {
            Ok(()) => remove_as_root(&maps, &gone),
            Err(_) => remove_as_root(&maps, &d),
        }
    }

    /// Rename snapshot `snap` of `name` to `new`.
    pub fn snapshot_rename(&self, name: &str, snap: &str, new: &str) -> Result<()> {
        crate::container::check_name(name)?;
        check_snap_name(new)?;
        let _lock = Lock::container(&self.paths, name)?;
        self.existing(name)?;
        let d = self.snapshot_dir(name, snap)?;
        let to = d.with_file_name(new);
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(Error::Usage(format!("{name} already has a snapshot {new}")));
        }
        std::fs::rename(&d, &to).ctx(|| format!("rename {}", d.display()))
    }

    /// Restore `name` to its snapshot `snap` (its files and its config). A running container
    /// is stopped, restored and started again.
    pub fn snapshot_restore(&self, name: &str, snap: &str) -> Result<()> {
        crate::container::check_name(name)?;
        let lock = Lock::container(&self.paths, name)?;
        self.existing(name)?;
        let sd = self.snapshot_dir(name, snap)?;
        let running = State::load(&self.paths.state(name))?.is_some();
        if running {
            self.stop(
                name,
                Halt {
                    force: false,
                    timeout: Duration::from_secs(30),
                },
            )?;
        }
        let restored = self.restore_from(name, &sd);
        if running {
            // Started again also when the restore failed (it changed nothing then).
            let started = self.start_locked(name, &lock);
            return restored.and(started.map(drop));
        }
        restored
    }

    /// Replace the layer and config of stopped `name` by those of snapshot directory `sd`:
    /// the copy is made beside the layer first, then swapped in by renames.
    fn restore_from(&self, name: &str, sd: &std::path::Path) -> Result<()> {
        let dir = self.paths.container(name);
        let maps = IdMaps::for_current_user()?;
        let snap_rec = Record::load(sd)?;
        let cur = Record::load(&dir)?;
        if snap_rec != cur {
            return Err(Error::Usage(format!(
                "the snapshot is stored as {} but {name} as {}: lxr cannot restore across storage \
                 backends",
                snap_rec.describe(),
                cur.describe()
            )));
        }
        let layer = layer_name(&cur);
        let staging = dir.join(".restore");
        remove_as_root(&maps, &staging)?;
        std::fs::create_dir(&staging).ctx(|| format!("create {}", staging.display()))?;
        let result = (|| {
            self.copy_layer(&maps, &snap_rec, sd, &staging)?;
            copy_file(&sd.join("config.yaml"), &staging.join("config.yaml"))?;
            // Swap: the old layer into staging, the new one into place, then the config.
            // Moving a directory to another parent rewrites its `..`, which takes the
            // container's root (the layers are its): done as root of a namespace mapping
            // both, by names in directories opened here (a rename follows no symlink).
            let (d, st) = (Dir::open(&dir)?, Dir::open(&staging)?);
            run_as_root(&maps, Ids::WithUser, || {
                d.rename(layer, &st, "old")?;
                if let Err(e) = st.rename(layer, &d, layer) {
                    let _ = st.rename("old", &d, layer);
                    return Err(e);
                }
                Ok(())
            })?;
            std::fs::rename(staging.join("config.yaml"), dir.join("config.yaml"))
                .ctx(|| "restore config.yaml".into())?;
            if cur.backend == Backend::Overlay {
                overlay::reset_work(&maps, &dir)?;
            }
            Ok(())
        })();
        remove_as_root(&maps, &staging)?;
        result
    }
}

/// Copy a small file of lxr's (a config) byte for byte.
pub(super) fn copy_file(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let data = std::fs::read(from).ctx(|| format!("read {}", from.display()))?;
    storage::write_atomic(to, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names() {
        for ok in ["snap0", "before-upgrade", "v1.2_x"] {
            assert!(check_snap_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".",
            "../x",
            "a/b",
            ".partial-x",
            "-a",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(check_snap_name(bad).is_err(), "{bad}");
        }
    }
}
