//! The user's image store, `<data>/images`: one directory per imported image named by its
//! fingerprint (`metadata.yaml`, `templates/`, `rootfs/` owned by the container's root,
//! lxr's own `image.json`, and `export/` with the imported file(s) as they were), plus `aliases.json` (alias → fingerprint). An import unpacks into
//! `.partial-<fingerprint>` and renames it into place, so a killed import leaves nothing
//! that looks like an image.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::beneath::Dir;
use crate::error::{Context, Error, Result};
use crate::lock::Lock;

use super::metadata::Metadata;

/// What lxr records about an imported image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// sha256 of the unified tarball, or of metadata tarball ‖ rootfs.
    pub fingerprint: String,
    /// From `metadata.yaml`.
    pub architecture: String,
    /// From `metadata.yaml` (unix time).
    pub creation_date: i64,
    /// `properties.description`, if any.
    pub description: String,
    /// Bytes of the imported file(s).
    pub size: u64,
    /// Unix time of the import.
    pub imported_at: u64,
    /// The imported file(s), kept in `export/` under the names `image export` writes
    /// ([`super::original`]); empty for images imported before lxr kept them.
    #[serde(default)]
    pub files: Vec<String>,
}

/// An image named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A built-in image, made on the fly.
    Builtin(&'static str),
    /// An imported image: its fingerprint.
    Stored(String),
}

/// The image store.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store at `dir` (`<data>/images`).
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    /// An image's directory.
    pub fn image(&self, fingerprint: &str) -> PathBuf {
        self.dir.join(fingerprint)
    }

    /// Where an import of `fingerprint` unpacks before it is complete.
    pub fn partial(&self, fingerprint: &str) -> PathBuf {
        self.dir.join(format!(".partial-{fingerprint}"))
    }

    fn aliases_file(&self) -> PathBuf {
        self.dir.join("aliases.json")
    }

    /// Alias → fingerprint.
    pub fn aliases(&self) -> Result<BTreeMap<String, String>> {
        let path = self.aliases_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
        }
    }

    /// Replace the alias table (written to a temporary file, then renamed).
    pub fn save_aliases(&self, aliases: &BTreeMap<String, String>) -> Result<()> {
        let path = self.aliases_file();
        let tmp = self.dir.join(".aliases.json.tmp");
        let text = serde_json::to_string_pretty(aliases)
            .map_err(|e| Error::Host(format!("encode aliases: {e}")))?;
        std::fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).ctx(|| format!("rename {}", path.display()))
    }

    /// The record of an imported image (its strings cleaned for printing, whatever wrote it).
    pub fn record(&self, fingerprint: &str) -> Result<Record> {
        let dir = Dir::open(&self.image(fingerprint))?;
        let text = dir.read_text("image.json", 1 << 20)?;
        let mut r: Record = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}/image.json: {e}", dir.name().display())))?;
        r.description = crate::text::line(&r.description);
        r.architecture = crate::text::line(&r.architecture);
        Ok(r)
    }

    /// Every imported image, oldest import first.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = self
            .fingerprints()?
            .iter()
            .filter_map(|fp| self.record(fp).ok())
            .collect();
        out.sort_by_key(|r| r.imported_at);
        Ok(out)
    }

    fn fingerprints(&self) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", self.dir.display())),
        };
        Ok(rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| is_fingerprint(n))
            .collect())
    }

    /// Take the store's lock (one import or delete at a time), waiting for another lxr.
    pub fn lock(&self) -> Result<Lock> {
        Lock::take(&self.dir.join(".lock"), crate::lock::WAIT, || {
            "another lxr is importing or deleting an image (try again)".into()
        })
    }

    /// Unpack directories of imports that never finished (a killed `image import`). Only
    /// meaningful under [`Store::lock`]: then no import is running.
    pub fn stale_partials(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".partial-"))
            .map(|e| e.path())
            .collect()
    }

    /// Resolve a built-in name, an alias or a unique fingerprint prefix.
    pub fn resolve(&self, name: &str) -> Result<Source> {
        if let Some(b) = super::BUILTIN.iter().find(|b| **b == name) {
            return Ok(Source::Builtin(b));
        }
        if let Some(fp) = self.aliases()?.get(name) {
            return Ok(Source::Stored(fp.clone()));
        }
        let hits: Vec<String> = if name.len() >= 4 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            let name = name.to_ascii_lowercase();
            self.fingerprints()?
                .into_iter()
                .filter(|fp| fp.starts_with(&name))
                .collect()
        } else {
            Vec::new()
        };
        match hits.as_slice() {
            [fp] => Ok(Source::Stored(fp.clone())),
            [] => Err(Error::NotFound(format!(
                "no image {name:?}: `lxr image list` shows the imported ones (built-in: {})",
                super::BUILTIN.join(", ")
            ))),
            _ => Err(Error::Usage(format!(
                "{name:?} matches {} images: give more of the fingerprint",
                hits.len()
            ))),
        }
    }
}

/// Whether `name` looks like a sha256 fingerprint.
pub fn is_fingerprint(name: &str) -> bool {
    name.len() == 64
        && name
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// LXD's fingerprint: the sha256 of the files, one after the other.
pub fn fingerprint(files: &mut [(&mut File, &str)]) -> Result<(String, u64)> {
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for (file, name) in files.iter_mut() {
        loop {
            let n = file.read(&mut buf).ctx(|| format!("read {name}"))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            size += n as u64;
        }
        std::io::Seek::rewind(*file).ctx(|| format!("rewind {name}"))?;
    }
    let hex = hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((hex, size))
}

/// Check an alias name: what LXD accepts, minus what would confuse a shell or a path.
pub fn check_alias(alias: &str) -> Result<()> {
    let ok = !alias.is_empty()
        && alias.len() <= 128
        && !alias.starts_with(['-', '.', '/'])
        && !alias.contains("..")
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c));
    if !ok {
        return Err(Error::Usage(format!(
            "bad alias {alias:?}: use letters, digits and - _ . / : (not first), at most 128"
        )));
    }
    if super::BUILTIN.contains(&alias) {
        return Err(Error::Usage(format!(
            "{alias:?} is a built-in image name: pick another alias"
        )));
    }
    Ok(())
}

/// Read and check the metadata of an image directory (its `metadata.yaml`, a regular file of
/// at most 1 MiB, never through a symlink).
pub fn read_metadata(dir: &Dir) -> Result<Metadata> {
    let text = dir
        .read_text("metadata.yaml", super::scan::METADATA_MAX)
        .map_err(|e| {
            Error::Usage(format!(
                "the image has no readable metadata.yaml ({e}): not an LXD/Incus image"
            ))
        })?;
    check_metadata(&text)
}

/// Parse `metadata.yaml` and check the image runs here.
pub fn check_metadata(text: &str) -> Result<Metadata> {
    let m = Metadata::parse(text).map_err(Error::Usage)?;
    if !m.runs_here() {
        return Err(Error::Usage(format!(
            "the image is for {}, this machine is {}",
            crate::text::line(&m.architecture),
            std::env::consts::ARCH
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_prefixes_resolve() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path().to_path_buf());
        let a = "ab".repeat(32);
        let b = format!("abcd{}", "0".repeat(60));
        for fp in [&a, &b] {
            std::fs::create_dir(s.image(fp)).unwrap();
        }
        s.save_aliases(&BTreeMap::from([("deb".to_string(), a.clone())]))
            .unwrap();
        assert_eq!(s.resolve("busybox").unwrap(), Source::Builtin("busybox"));
        assert_eq!(s.resolve("deb").unwrap(), Source::Stored(a.clone()));
        assert_eq!(s.resolve("abab").unwrap(), Source::Stored(a));
        assert!(matches!(s.resolve("abcd"), Ok(Source::Stored(x)) if x == b));
        assert!(matches!(s.resolve("ab"), Err(Error::NotFound(_))));
        std::fs::create_dir(s.image(&format!("abcd{}", "1".repeat(60)))).unwrap();
        assert!(matches!(s.resolve("abcd"), Err(Error::Usage(_))));
    }

    #[test]
    fn fingerprint_of_split_images_is_over_both_files() {
        let d = tempfile::tempdir().unwrap();
        let (p1, p2) = (d.path().join("m"), d.path().join("r"));
        std::fs::write(&p1, b"abc").unwrap();
        std::fs::write(&p2, b"").unwrap();
        let (mut f1, mut f2) = (File::open(&p1).unwrap(), File::open(&p2).unwrap());
        let (fp, size) = fingerprint(&mut [(&mut f1, "m"), (&mut f2, "r")]).unwrap();
        // sha256("abc")
        assert_eq!(
            fp,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);
    }

    #[test]
    fn alias_names_are_checked() {
        assert!(check_alias("debian/12").is_ok());
        for bad in ["", "-x", "../x", "a b", "busybox", ".hidden"] {
            assert!(check_alias(bad).is_err(), "{bad}");
        }
    }
}
