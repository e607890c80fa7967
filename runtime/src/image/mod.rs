//! Images: the built-in `busybox` image made from the host's busybox-static so everything
//! works offline, and LXD/Incus images imported into the user's store (unified or split
//! tarballs, squashfs rootfs). A container's rootfs is made from either as root of a user
//! namespace that maps only the container's ids: the image's content never meets a process
//! that could touch the user's files. Paths are reached through descriptors lxr opened
//! before ([`crate::beneath::Dir`]), since the user's directories are private to the user.

pub mod busybox;
pub mod import;
pub mod metadata;
pub mod original;
pub mod pack;
pub mod scan;
pub mod store;
pub mod template;
pub mod unpack;

use crate::beneath::{Dir, Kind};
use crate::error::{Error, Result};
use crate::idmap::{IdMaps, Ids};
use crate::storage::copy::{tree_here, Blocks};
use crate::userns::run_as_root;
use std::path::Path;

pub use store::{Source, Store};

/// Names of the built-in images.
pub const BUILTIN: &[&str] = &["busybox"];

/// Make a container's rootfs at `rootfs` (which must not exist; its parent is the user's)
/// from `source`, for the container `name`: build the built-in image, or copy an imported one
/// (owners, modes, setuid bits and hard links kept; blocks shared as `blocks` says) and render
/// its `create` templates.
pub fn create_rootfs(
    store: &Store,
    source: &Source,
    maps: &IdMaps,
    rootfs: &Path,
    name: &str,
    blocks: Blocks,
) -> Result<()> {
    let parent = Dir::open(rootfs.parent().unwrap_or(Path::new(".")))?;
    let leaf = rootfs
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| Error::Usage(format!("{} has no name", rootfs.display())))?;
    // The directory itself belongs to the container's root; making it takes both ids.
    run_as_root(maps, Ids::WithUser, || {
        parent.mkdir(&leaf, 0o755)?;
        parent.chown(&leaf, 0, 0)?;
        parent.chmod(&leaf, 0o755)
    })?;
    let dest = parent.open_dir(&leaf)?;
    match source {
        Source::Builtin(_) => run_as_root(maps, Ids::Container, || {
            busybox::build(&dest.proc_path(), Path::new(busybox::HOST_BUSYBOX))
        }),
        Source::Stored(fp) => {
            let image = Dir::open(&store.image(fp))?;
            let src = image.open_dir("rootfs")?;
            let (meta, templates) = templates_of(store, fp)?;
            run_as_root(maps, Ids::Container, || {
                tree_here(&src, &dest, blocks)?;
                template::apply_create(templates.as_ref(), &meta, &dest, name)
            })
        }
    }
}

/// An imported image's metadata and its `templates/` directory, if it has one (opened now,
/// for a process that will no longer be able to reach the user's store by path).
pub fn templates_of(store: &Store, fp: &str) -> Result<(metadata::Metadata, Option<Dir>)> {
    let image = Dir::open(&store.image(fp))?;
    let meta = store::read_metadata(&image)?;
    let templates = match image.kind("templates")? {
        Some(Kind::Dir) => Some(image.open_dir("templates")?),
        _ => None,
    };
    Ok((meta, templates))
}
