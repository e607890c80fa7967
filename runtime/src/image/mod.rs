//! Images: the built-in `busybox` image made from the host's busybox-static so everything
//! works offline, and LXD/Incus images imported into the user's store (unified or split
//! tarballs, squashfs rootfs). A container's rootfs is made from either, as root of the
//! user's container namespace.

pub mod busybox;
pub mod import;
pub mod metadata;
pub mod store;
pub mod template;
pub mod unpack;

use std::path::Path;
use std::process::Command;

use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::userns::run_as_root;

pub use store::{Source, Store};

/// Names of the built-in images.
pub const BUILTIN: &[&str] = &["busybox"];

/// Make a container's rootfs at `rootfs` (which must not exist) from `source`, for the
/// container `name`: build the built-in image, or copy an imported one (owners, modes,
/// setuid bits and hard links kept) and render its `create` templates.
pub fn create_rootfs(
    store: &Store,
    source: &Source,
    maps: &IdMaps,
    rootfs: &Path,
    name: &str,
) -> Result<()> {
    let code = match source {
        Source::Builtin(_) => run_as_root(maps, || {
            busybox::build(rootfs, Path::new(busybox::HOST_BUSYBOX))
        })?,
        Source::Stored(fp) => {
            let dir = store.image(fp);
            let meta = store::read_metadata(&dir)?;
            run_as_root(maps, || {
                let status = Command::new("cp")
                    .args(["--archive", "--reflink=auto", "--no-target-directory"])
                    .arg(dir.join("rootfs"))
                    .arg(rootfs)
                    .status()
                    .ctx(|| "run cp".into())?;
                if !status.success() {
                    return Err(Error::Setup(format!(
                        "copying the image's rootfs failed ({status})"
                    )));
                }
                template::apply_create(&dir, &meta, rootfs, name)
            })?
        }
    };
    if code != 0 {
        return Err(Error::Setup(format!("making the rootfs failed ({code})")));
    }
    Ok(())
}
