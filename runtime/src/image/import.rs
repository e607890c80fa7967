//! `image import` and `image delete` on the store. An import fingerprints the file(s), then
//! in a partial directory `.partial-<fingerprint>` (the user's):
//!
//! 0. copies them into `export/` (kept for `image export`, [`super::original`]) and
//!    fingerprints the copies again: the steps below read the copies;
//! 1. makes `unpack/`, owned by the container's root ([`Ids::WithUser`], lxr's own code);
//! 2. lists, checks and extracts the image into it as the container's root of a namespace
//!    mapping nothing of the user's ([`Ids::Container`]; [`super::scan`], [`super::unpack`]);
//! 3. checks the layout — `metadata.yaml` a regular file, `rootfs/` a non-empty directory,
//!    `templates/` a directory if present, none a symlink — and moves `rootfs/` and
//!    `templates/` up, keeps a copy of `metadata.yaml` of the user's, and removes the rest
//!    (whatever else the archive held, e.g. an `image.json` of its own) ([`Ids::WithUser`],
//!    through descriptors, never following a symlink);
//! 4. reads the metadata, writes lxr's `image.json` and renames the directory into place.
//!
//! Anything that fails removes what was unpacked; a killed import's leftovers are removed by
//! the next one (both hold the store's lock).

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::beneath::{Dir, Kind};
use crate::error::{Context, Error, Result};
use crate::idmap::{IdMaps, Ids};
use crate::userns::{remove_as_root, run_as_root};

use super::original;
use super::scan::{Part, Space, Summary, METADATA_MAX};
use super::store::{check_alias, check_metadata, fingerprint, read_metadata, Record, Store};
use super::unpack::{extract, format_of, scan};

/// An image may unpack to at most this much unless `--max-size` (or `LXR_IMAGE_MAX_SIZE`)
/// says otherwise.
pub const DEFAULT_MAX_SIZE: u64 = 8 << 30;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// A new image.
    New(String),
    /// The same fingerprint was already in the store (aliases were still added).
    Existing(String),
}

/// Import a unified tarball (`rootfs` None) or a split image (metadata tarball + rootfs),
/// refusing one that unpacks to more than `max_size` bytes.
pub fn import(
    store: &Store,
    maps: &IdMaps,
    file: &Path,
    rootfs: Option<&Path>,
    aliases: &[String],
    max_size: u64,
) -> Result<Imported> {
    import_with(store, maps, file, rootfs, aliases, max_size, false)
}

/// [`import`] of a unified tarball lxr made itself in the store's directory (`publish`): it is
/// moved, not copied, to where the store keeps imported files.
pub fn import_own(
    store: &Store,
    maps: &IdMaps,
    file: &Path,
    aliases: &[String],
    max_size: u64,
) -> Result<Imported> {
    import_with(store, maps, file, None, aliases, max_size, true)
}

fn import_with(
    store: &Store,
    maps: &IdMaps,
    file: &Path,
    rootfs: Option<&Path>,
    aliases: &[String],
    max_size: u64,
    take: bool,
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
            (&mut meta_file, &file_name, take.then_some(file)),
            rootfs_file.as_mut().map(|f| (f, rootfs_name.as_str())),
            max_size,
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
    meta: (&mut File, &str, Option<&Path>),
    rootfs: Option<(&mut File, &str)>,
    max_size: u64,
) -> Result<()> {
    let partial = store.partial(fp);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&partial)
        .ctx(|| format!("create {}", partial.display()))?;
    let result = (|| {
        // The files are copied first, and the copies fingerprinted again and unpacked: what
        // is kept for `image export` is exactly what was unpacked and fingerprinted.
        let keep = partial.join(original::DIR);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&keep)
            .ctx(|| format!("create {}", keep.display()))?;
        // `take`: a file of lxr's own, moved rather than copied.
        let (meta_file, meta_name, take) = meta;
        let meta_format =
            format_of(meta_file, meta_name).map_err(|e| not_an_image(meta_name, e))?;
        let mut rootfs = rootfs;
        let rootfs_format = match rootfs.as_mut() {
            Some((f, n)) => Some(format_of(f, n).map_err(|e| not_an_image(n, e))?),
            None => None,
        };
        let names = original::names(fp, meta_format, rootfs_format);
        let mut meta_copy = match take {
            Some(path) => original::take(path, &keep.join(&names[0]))?,
            None => original::copy(meta_file, meta_name, &keep.join(&names[0]))?,
        };
        let mut rootfs_copy = match (rootfs, names.get(1)) {
            (Some((f, n)), Some(to)) => Some((original::copy(f, n, &keep.join(to))?, n)),
            _ => None,
        };
        let (again, _) = {
            let mut files = vec![(&mut meta_copy, meta_name)];
            if let Some((f, n)) = rootfs_copy.as_mut() {
                files.push((f, *n));
            }
            fingerprint(&mut files)?
        };
        if again != fp {
            return Err(Error::Usage(format!(
                "{meta_name} changed while it was imported: import it again"
            )));
        }
        let meta = (&mut meta_copy, meta_name);
        let rootfs = rootfs_copy.as_mut().map(|(f, n)| (f, *n));
        let pdir = Dir::open(&partial)?;
        run_as_root(maps, Ids::WithUser, || {
            pdir.mkdir("unpack", 0o700)?;
            pdir.chown("unpack", 0, 0)
        })?;
        let udir = pdir.open_dir("unpack")?;
        run_as_root(maps, Ids::Container, || {
            unpack_as_container_root(&udir, meta, rootfs, max_size)
        })?;
        run_as_root(maps, Ids::WithUser, || settle(&pdir, &partial))?;
        let m = read_metadata(&pdir)?;
        let record = Record {
            fingerprint: fp.to_string(),
            architecture: crate::text::line(&m.architecture),
            creation_date: m.creation_date,
            description: crate::text::line(&m.property("description").unwrap_or_default()),
            size,
            imported_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            files: names,
        };
        let json = serde_json::to_string_pretty(&record)
            .map_err(|e| Error::Host(format!("encode image record: {e}")))?;
        pdir.replace("image.json", json.as_bytes(), 0o600)?;
        let dest = store.image(fp);
        std::fs::rename(&partial, &dest).ctx(|| format!("rename to {}", dest.display()))
    })();
    if result.is_err() {
        let _ = remove_as_root(maps, &partial);
    }
    result
}

/// Step 2, in the container's namespace: list and check both files, then extract them into
/// `udir` (and `udir/rootfs` for a split image).
fn unpack_as_container_root(
    udir: &Dir,
    (meta_file, meta_name): (&mut File, &str),
    rootfs: Option<(&mut File, &str)>,
    max_size: u64,
) -> Result<()> {
    let meta_part = if rootfs.is_some() {
        Part::Metadata
    } else {
        Part::Unified
    };
    let mut meta_sum = Summary::default();
    scan(meta_file, meta_name, meta_part, &mut meta_sum)?;
    let mut root_sum = Summary::default();
    let mut rootfs = rootfs;
    if let Some((f, name)) = rootfs.as_mut() {
        scan(f, name, Part::Rootfs, &mut root_sum)?;
    }
    let total = Summary {
        bytes: meta_sum.bytes.saturating_add(root_sum.bytes),
        entries: meta_sum.entries.saturating_add(root_sum.entries),
        ..Summary::default()
    };
    let space = Space::of(udir, max_size)?;
    total.check(&space)?;
    // Whatever the listing said, no single file outgrows the room there is.
    let cap = space
        .max_bytes
        .min(space.free_bytes.saturating_sub(space.reserve));
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_FSIZE, cap, cap)
        .ctx(|| "limit the file size".into())?;
    udir.chdir()?;
    extract(meta_file, meta_name, meta_part, &meta_sum.devices)?;
    if let Some((f, name)) = rootfs {
        udir.mkdir("rootfs", 0o755)?.chdir()?;
        extract(f, name, Part::Rootfs, &root_sum.devices)?;
    }
    Ok(())
}

/// Step 3, as root of a namespace mapping the container's ids and the user's: check what
/// was unpacked and put it in place.
fn settle(pdir: &Dir, partial: &Path) -> Result<()> {
    let u = pdir.open_dir("unpack")?;
    let refuse = |what: &str| Err(Error::Usage(format!("image refused: {what}")));
    match u.kind("metadata.yaml")? {
        Some(Kind::File) => {}
        None => {
            return refuse("it has no metadata.yaml: not an LXD/Incus image");
        }
        Some(_) => return refuse("metadata.yaml is not a regular file"),
    }
    match u.kind("rootfs")? {
        Some(Kind::Dir) => {}
        None => return refuse("it has no rootfs/: for a split image give the rootfs file as well"),
        Some(_) => return refuse("rootfs is not a directory (a symlink?)"),
    }
    let templates = match u.kind("templates")? {
        None => false,
        Some(Kind::Dir) => true,
        Some(_) => return refuse("templates is not a directory (a symlink?)"),
    };
    let text = u.read("metadata.yaml", METADATA_MAX)?;
    check_metadata(&String::from_utf8_lossy(&text))?;
    if u.open_dir("rootfs")?.entries()?.is_empty() {
        return refuse("its rootfs/ is empty: for a split image give the rootfs file as well");
    }
    pdir.write("metadata.yaml", &text, 0o600)?;
    // The user's own file (id 65536 here).
    pdir.chown(
        "metadata.yaml",
        crate::idmap::CONTAINER_IDS,
        crate::idmap::CONTAINER_IDS,
    )?;
    u.rename("rootfs", pdir, "rootfs")?;
    if templates {
        u.rename("templates", pdir, "templates")?;
    }
    drop(u);
    let rest = partial.join("unpack");
    std::fs::remove_dir_all(&rest).ctx(|| format!("remove {}", rest.display()))
}

/// A file whose format is no image's, said as the command line says every such refusal
/// (`cannot import FILE: WHY`; failures of the unpacking helper get the same prefix there).
fn not_an_image(name: &str, e: Error) -> Error {
    match e {
        Error::Usage(why) => Error::Usage(format!("cannot import {name}: {why}")),
        e => e,
    }
}

/// Delete an image (by fingerprint) and every alias that names it.
pub fn delete(store: &Store, maps: &IdMaps, fp: &str) -> Result<()> {
    let _lock = store.lock()?;
    // Overlays of the image read its rootfs at every start: it stays while they exist.
    let image = store.image(fp);
    if let Some(containers) = image.parent().and_then(|p| p.parent()) {
        let users = crate::storage::users_of(&containers.join("containers"), fp);
        if !users.is_empty() {
            return Err(Error::Usage(format!(
                "image {} is the base of container(s) {}: delete them first (or `lxr copy` them \
                 with LXR_STORAGE=copy)",
                &fp[..fp.len().min(12)],
                users.join(", ")
            )));
        }
    }
    let mut table = store.aliases()?;
    let before = table.len();
    table.retain(|_, v| v != fp);
    if table.len() != before {
        store.save_aliases(&table)?;
    }
    remove_as_root(maps, &store.image(fp))
}
