//! `image import` and `image delete` on the store: fingerprint the file(s), unpack them as
//! root of the user's container namespace into a partial directory, check `metadata.yaml`,
//! record, rename into place, add aliases. Anything that fails removes what was unpacked; a
//! killed import's leftovers are removed by the next one (both hold the store's lock).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::userns::{remove_as_root, run_as_root};

use super::store::{check_alias, fingerprint, read_metadata, Record, Store};
use super::unpack::extract;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// A new image.
    New(String),
    /// The same fingerprint was already in the store (aliases were still added).
    Existing(String),
}

/// Import a unified tarball (`rootfs` None) or a split image (metadata tarball + rootfs).
pub fn import(
    store: &Store,
    maps: &IdMaps,
    file: &Path,
    rootfs: Option<&Path>,
    aliases: &[String],
) -> Result<Imported> {
    for a in aliases {
        check_alias(a)?;
    }
    let _lock = store.lock()?;
    for stale in store.stale_partials() {
        remove_as_root(maps, &stale)?;
    }
    let open = |p: &Path| File::open(p).ctx(|| format!("open {}", p.display()));
    let mut meta_file = open(file)?;
    let mut rootfs_file = rootfs.map(open).transpose()?;
    let file_name = file.display().to_string();
    let rootfs_name = rootfs.map(|p| p.display().to_string()).unwrap_or_default();
    let (fp, size) = {
        let mut files = vec![(&mut meta_file, file_name.as_str())];
        if let Some(f) = rootfs_file.as_mut() {
            files.push((f, rootfs_name.as_str()));
        }
        fingerprint(&mut files)?
    };
    let mut table = store.aliases()?;
    for a in aliases {
        if let Some(other) = table.get(a).filter(|other| **other != fp) {
            return Err(Error::Usage(format!(
                "alias {a} already names image {}: `lxr image alias delete {a}` first",
                &other[..12.min(other.len())]
            )));
        }
    }
    let existed = store.image(&fp).exists();
    if !existed {
        unpack(
            store,
            maps,
            &fp,
            size,
            (&mut meta_file, &file_name),
            rootfs_file.as_mut().map(|f| (f, rootfs_name.as_str())),
        )?;
    }
    for a in aliases {
        table.insert(a.clone(), fp.clone());
    }
    if !aliases.is_empty() {
        store.save_aliases(&table)?;
    }
    Ok(if existed {
        Imported::Existing(fp)
    } else {
        Imported::New(fp)
    })
}

fn unpack(
    store: &Store,
    maps: &IdMaps,
    fp: &str,
    size: u64,
    meta: (&mut File, &str),
    rootfs: Option<(&mut File, &str)>,
) -> Result<()> {
    let partial = store.partial(fp);
    std::fs::create_dir(&partial).ctx(|| format!("create {}", partial.display()))?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o711))
        .ctx(|| format!("chmod {}", partial.display()))?;
    let result = (|| {
        let (meta_file, meta_name) = meta;
        let code = run_as_root(maps, || {
            extract(meta_file, meta_name, &partial, true)?;
            if let Some((rootfs_file, rootfs_name)) = rootfs {
                let dir = partial.join("rootfs");
                std::fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                    .ctx(|| format!("chmod {}", dir.display()))?;
                extract(rootfs_file, rootfs_name, &dir, false)?;
            }
            Ok(())
        })?;
        if code != 0 {
            return Err(Error::Setup(format!("unpacking failed ({code})")));
        }
        let m = read_metadata(&partial)?;
        let record = Record {
            fingerprint: fp.to_string(),
            architecture: m.architecture.clone(),
            creation_date: m.creation_date,
            description: m.property("description").unwrap_or_default(),
            size,
            imported_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let json = serde_json::to_string_pretty(&record)
            .map_err(|e| Error::Host(format!("encode image record: {e}")))?;
        let path = partial.join("image.json");
        std::fs::write(&path, json).ctx(|| format!("write {}", path.display()))?;
        let dest = store.image(fp);
        std::fs::rename(&partial, &dest).ctx(|| format!("rename to {}", dest.display()))
    })();
    if result.is_err() {
        let _ = remove_as_root(maps, &partial);
    }
    result
}

/// Delete an image (by fingerprint) and every alias that names it.
pub fn delete(store: &Store, maps: &IdMaps, fp: &str) -> Result<()> {
    let _lock = store.lock()?;
    let mut table = store.aliases()?;
    let before = table.len();
    table.retain(|_, v| v != fp);
    if table.len() != before {
        store.save_aliases(&table)?;
    }
    remove_as_root(maps, &store.image(fp))
}
