//! Where a container's root filesystem lives on disk, and how it is made, snapshotted, copied
//! and entered. Three backends, one module each:
//!
//! * [`overlay`]: the image's unpacked rootfs (`images/<fp>/rootfs`, never written) is the
//!   lower layer of an overlayfs whose upper layer is the container's own
//!   `containers/<name>/upper` (with `work/` beside it). It is mounted inside the container's
//!   user namespace (`userxattr`) when the container starts, on `containers/<name>/rootfs`,
//!   which on the host stays an empty mount point. Creating a container copies nothing;
//!   a snapshot or a copy is a copy of the upper layer only.
//! * [`reflink`]: a full tree per container, but its files share their blocks with the image
//!   (`cp --reflink=always`, FICLONE) where the data directory's filesystem can (btrfs, xfs).
//! * [`copy`]: a full copy of the image per container (what lxr always did): the fallback.
//!
//! The backend is chosen once per data directory, at first use, by trying (not by the
//! filesystem's name): can this user mount an overlay with `userxattr` in a user namespace
//! here, and does FICLONE work between two files here? The answer is kept in
//! `<data>/storage.json`; `LXR_STORAGE=overlay|reflink|copy` overrides it for new containers
//! (tests, benchmarks). Each container records its own backend and the image it overlays in
//! `containers/<name>/storage.json` (a container without one is a full copy, as lxr made them
//! before), so changing the default never changes existing containers.

pub mod copy;
pub mod overlay;
pub mod reflink;
pub mod usage;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::paths::Paths;

/// How a container's rootfs is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An overlay of the image ([`overlay`]).
    Overlay,
    /// A reflinked copy of the image ([`reflink`]).
    Reflink,
    /// A full copy ([`copy`]).
    Copy,
}

impl Backend {
    /// Its name (`overlay`, `reflink`, `copy`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Overlay => "overlay",
            Backend::Reflink => "reflink",
            Backend::Copy => "copy",
        }
    }

    fn parse(s: &str) -> Result<Backend> {
        match s {
            "overlay" => Ok(Backend::Overlay),
            "reflink" => Ok(Backend::Reflink),
            "copy" => Ok(Backend::Copy),
            other => Err(Error::Usage(format!(
                "LXR_STORAGE={other:?}: expected overlay, reflink or copy"
            ))),
        }
    }
}

/// The data directory's choice, `<data>/storage.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Choice {
    backend: Backend,
}

/// What a container (or one of its snapshots) records about its storage,
/// `containers/<name>/storage.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its backend.
    pub backend: Backend,
    /// For an overlay: the lower layer, an image fingerprint or a built-in image's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Record {
    /// The record in directory `dir`; none there means a full copy (containers made before
    /// lxr had storage backends).
    pub fn load(dir: &Path) -> Result<Record> {
        let path = dir.join("storage.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record {
                backend: Backend::Copy,
                image: None,
            }),
            Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
        }
    }

    /// Write it into `dir` (a temporary file renamed into place).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Host(format!("encode storage.json: {e}")))?;
        write_atomic(&dir.join("storage.json"), text.as_bytes())
    }

    /// The lower layer of an overlay: the image's rootfs.
    pub fn lower(&self, paths: &Paths) -> Result<PathBuf> {
        let img = self.image.as_deref().ok_or_else(|| {
            Error::Usage("storage.json: an overlay without its image".to_string())
        })?;
        lower_of(paths, img)
    }

    /// How `info` shows it: `overlay (image 0123456789ab)`, `copy`.
    pub fn describe(&self) -> String {
        match (&self.backend, &self.image) {
            (Backend::Overlay, Some(img)) => {
                format!("overlay (image {})", img.get(..12).unwrap_or(img))
            }
            (b, _) => b.name().to_string(),
        }
    }
}

/// The directory of a built-in image's shared rootfs below `<data>/images` (not a fingerprint,
/// so the image store never lists it).
pub fn builtin_dir(paths: &Paths, name: &str) -> PathBuf {
    paths.data.join("images").join(format!(".builtin-{name}"))
}

/// The rootfs an overlay of image `img` (fingerprint or built-in name) has as lower layer.
/// Storage sits below the image store (which uses it to copy trees and to ask who overlays an
/// image), so it tells the two kinds of name apart by their shape rather than by asking it: a
/// fingerprint is 64 lowercase hex digits, a built-in name a short lowercase word; anything
/// else (`../..`) is refused.
pub fn lower_of(paths: &Paths, img: &str) -> Result<PathBuf> {
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if img.len() == 64 && img.chars().all(hex) {
        return Ok(paths.data.join("images").join(img).join("rootfs"));
    }
    if (1..=32).contains(&img.len()) && img.chars().all(|c| c.is_ascii_lowercase()) {
        return Ok(builtin_dir(paths, img).join("rootfs"));
    }
    Err(Error::Usage(format!(
        "storage.json names image {img:?}, which is neither a fingerprint nor a built-in image"
    )))
}

/// Write `data` to `path` through a temporary file renamed into place.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename {}", path.display()))
}

/// The backend for a new container in this data directory: `LXR_STORAGE` if set, else the
/// recorded choice, else what the probes find (then recorded).
pub fn backend_for_new(paths: &Paths, maps: &IdMaps) -> Result<Backend> {
    if let Some(v) = std::env::var_os("LXR_STORAGE").filter(|v| !v.is_empty()) {
        let b = Backend::parse(&v.to_string_lossy())?;
        // Built-in images are built, not copied: without this, a forced reflink on a
        // filesystem without reflinks would quietly make full trees.
        if b == Backend::Reflink {
            reflink::probe(&paths.data).map_err(|e| {
                Error::Usage(format!(
                    "LXR_STORAGE=reflink: {} has no reflinks ({e})",
                    paths.data.display()
                ))
            })?;
        }
        return Ok(b);
    }
    let file = paths.data.join("storage.json");
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(c) = serde_json::from_str::<Choice>(&text) {
            return Ok(c.backend);
        }
    }
    let backend = probe(paths, maps);
    tracing::info!(backend = backend.name(), "storage backend chosen");
    let text = serde_json::to_string_pretty(&Choice { backend })
        .map_err(|e| Error::Host(format!("encode storage.json: {e}")))?;
    write_atomic(&file, text.as_bytes())?;
    Ok(backend)
}

/// Try the backends, best first.
fn probe(paths: &Paths, maps: &IdMaps) -> Backend {
    match overlay::probe(&paths.data, maps) {
        Ok(()) => return Backend::Overlay,
        Err(e) => tracing::info!("overlay storage unavailable: {e}"),
    }
    match reflink::probe(&paths.data) {
        Ok(()) => return Backend::Reflink,
        Err(e) => tracing::info!("reflink storage unavailable: {e}"),
    }
    Backend::Copy
}

/// The containers (in `containers`, `<data>/containers`) whose overlays have `img` as lower
/// layer.
pub fn users_of(containers: &Path, img: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(containers) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter(|e| {
            Record::load(&e.path())
                .is_ok_and(|r| r.backend == Backend::Overlay && r.image.as_deref() == Some(img))
        })
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_default_to_copy() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Record::load(d.path()).unwrap().backend, Backend::Copy);
        let r = Record {
            backend: Backend::Overlay,
            image: Some("ab".repeat(32)),
        };
        r.save(d.path()).unwrap();
        assert_eq!(Record::load(d.path()).unwrap(), r);
        assert_eq!(r.describe(), "overlay (image abababababab)");
        assert!(Backend::parse("zfs").is_err());
    }

    #[test]
    fn a_lower_layer_is_only_an_image_of_the_store() {
        let p = Paths::under(Path::new("/x"));
        for bad in [
            "../../etc",
            "",
            "Busybox",
            "a/b",
            &"ab".repeat(33),
            &"AB".repeat(32),
        ] {
            assert!(lower_of(&p, bad).is_err(), "{bad}");
        }
        assert!(lower_of(&p, &"ab".repeat(32))
            .unwrap()
            .ends_with(format!("images/{}/rootfs", "ab".repeat(32))));
        assert!(lower_of(&p, "busybox")
            .unwrap()
            .ends_with(".builtin-busybox/rootfs"));
    }
}
