//! Disk devices at start: each source (a directory or file of the user's) is opened by
//! descriptor in the container's new mount namespace while the process still has the user's
//! credentials, and checked to be the user's ([`Disk::open_source`]); then, as the container's
//! root, the target is found or made inside the rootfs without following any symlink
//! ([`Dir`]: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`), and the source's descriptor is
//! bind-mounted on the target's descriptor. A symlink the container's root planted at the
//! target (`/mnt/data -> /etc`, `-> ../../..`) makes the start fail; it never redirects the
//! mount. The bind is `nosuid,nodev` (and read-only with `readonly=true`).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::FsFlags;

use crate::beneath::{Dir, Kind};
use crate::container::devices::{self, Devices, Disk};
use crate::error::{Error, Result};

/// A disk whose source is open.
pub struct Opened {
    disk: Disk,
    source: OwnedFd,
    is_dir: bool,
}

/// The devices of a start's flat keys (`devices.<name>.<option>`, see
/// [`crate::container::Config::flat`]).
fn from_keys(keys: &BTreeMap<String, String>) -> Devices {
    let mut out = Devices::new();
    for (k, v) in keys {
        let Some(rest) = k.strip_prefix(crate::net::proxy::PREFIX) else {
            continue;
        };
        // Device names have no dots: the first one ends the name.
        if let Some((dev, opt)) = rest.split_once('.') {
            out.entry(dev.to_string())
                .or_default()
                .insert(opt.to_string(), v.to_string());
        }
    }
    out
}

/// Open every disk device's source (as the user, in the container's mount namespace).
pub fn open_all(keys: &BTreeMap<String, String>) -> Result<Vec<Opened>> {
    devices::disks(&from_keys(keys))?
        .into_iter()
        .map(|disk| {
            let source = disk.open_source()?;
            let is_dir = Disk::source_is_dir(&source);
            Ok(Opened {
                disk,
                source,
                is_dir,
            })
        })
        .collect()
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Bind every opened disk into the rootfs, the working directory (as the container's root,
/// before its init runs).
pub fn bind_all(opened: &[Opened]) -> Result<()> {
    if opened.is_empty() {
        return Ok(());
    }
    // Mount points made here are the container's, searchable as any directory of its
    // (the intermediate still has lxr's 077; init sets 022 itself).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let root = Dir::open(Path::new("."));
    let r = root.and_then(|root| opened.iter().try_for_each(|o| bind_one(&root, o)));
    nix::sys::stat::umask(old);
    r
}

fn bind_one(root: &Dir, o: &Opened) -> Result<()> {
    let d = &o.disk;
    let fail = |why: String| {
        Error::Setup(format!(
            "disk device {}: /{}: {why}",
            d.name,
            d.path.display()
        ))
    };
    let leaf = d
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| fail("no name".into()))?;
    let parent = match d.path.parent().filter(|p| p.components().next().is_some()) {
        Some(p) => root.mkdir_all(p, 0o755).map_err(|e| fail(e.to_string()))?,
        None => Dir::open(Path::new("."))?,
    };
    match (parent.kind(&leaf)?, o.is_dir) {
        (None, true) => drop(parent.mkdir(&leaf, 0o755)?),
        (None, false) => parent.write(&leaf, b"", 0o644)?,
        (Some(Kind::Dir), true) | (Some(Kind::File), false) => {}
        (Some(Kind::Symlink), _) => {
            return Err(fail(
                "is a symlink in the container: refusing to mount through it".into(),
            ))
        }
        (Some(_), true) => return Err(fail("is not a directory (the source is one)".into())),
        (Some(_), false) => return Err(fail("is not a regular file (the source is one)".into())),
    }
    let target = parent.open_path(&leaf)?;
    mount(
        Some(&fd_path(&o.source)),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| fail(format!("bind {}: {e}", d.source.display())))?;
    // The bind's own flags: what the host mount has locked (kept, or the kernel refuses the
    // remount), plus nosuid and nodev, plus read-only when asked.
    let bound = parent.open_path(&leaf)?;
    let vfs = nix::sys::statvfs::fstatvfs(&bound).map_err(|e| fail(format!("statvfs: {e}")))?;
    let f = vfs.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if f.contains(FsFlags::ST_NOEXEC) {
        flags |= MsFlags::MS_NOEXEC;
    }
    if d.readonly || f.contains(FsFlags::ST_RDONLY) {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(
        None::<&str>,
        &fd_path(&bound),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(|e| {
        fail(format!(
            "remount ({}): {e}",
            if d.readonly {
                "read-only"
            } else {
                "nosuid,nodev"
            }
        ))
    })
}
