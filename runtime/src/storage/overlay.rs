//! The overlay backend: `containers/<name>/rootfs` is, inside the container's mount namespace,
//! an overlayfs of the image's rootfs (lower, never written) and `containers/<name>/upper`
//! (with `work/` beside it). Mounted in the container's user namespace with `userxattr`
//! (Linux ≥ 5.11): overlay keeps its own bookkeeping (opaque directories) in `user.overlay.*`
//! xattrs, whiteouts are 0/0 character devices, and `redirect_dir`, `metacopy` and `index` are
//! off, so renaming a directory that came from the image fails with `EXDEV` and `mv` falls
//! back to a copy, as in any unprivileged overlay.
//!
//! Credentials: the mount is made by a process of the user namespace that has every
//! capability there but still the user's own uid (before it becomes the container's root), so
//! it can name the layers by path below the user's private data directory; overlay then acts
//! on the layers with those credentials. Every file of the layers belongs to the container's
//! ids, over which those capabilities hold; the only files of the user's own uid overlay makes
//! are whiteouts (0/0 devices) and its work files. The layers are opened first and named to
//! the kernel as `/proc/self/fd/N`, so a data directory path with `,` or `:` cannot inject
//! mount options.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;

use crate::beneath::Dir;
use crate::error::{Context, Error, Result};
use crate::idmap::{IdMaps, Ids};
use crate::userns::{become_root, run_as_root, run_mapped};

/// The layers of one overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// Lower layers, topmost first (a container: its image; a snapshot mounted read-only:
    /// the snapshot's upper, then the image).
    pub lowers: Vec<PathBuf>,
    /// The upper and work directories; none mounts the overlay read-only.
    pub upper: Option<(PathBuf, PathBuf)>,
}

impl Layers {
    /// The layers of a container in `dir` over image rootfs `lower`.
    pub fn of_container(dir: &Path, lower: PathBuf) -> Layers {
        Layers {
            lowers: vec![lower],
            upper: Some((dir.join("upper"), dir.join("work"))),
        }
    }
}

fn open_path(p: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", p.display()))
}

/// Mount the overlay of `layers` on `target`. Call in a mount namespace of the container's
/// user namespace with the user's uid and every capability there (see the module doc).
pub fn mount_on(layers: &Layers, target: &Path) -> Result<()> {
    let fd_path = |fd: &OwnedFd| format!("/proc/self/fd/{}", fd.as_raw_fd());
    let lowers = layers
        .lowers
        .iter()
        .map(|p| open_path(p))
        .collect::<Result<Vec<_>>>()?;
    let lowerdir = lowers.iter().map(fd_path).collect::<Vec<_>>().join(":");
    let mut opts = format!("lowerdir={lowerdir}");
    let mut held = Vec::new();
    let mut flags = MsFlags::empty();
    match &layers.upper {
        Some((upper, work)) => {
            let (u, w) = (open_path(upper)?, open_path(work)?);
            opts.push_str(&format!(",upperdir={},workdir={}", fd_path(&u), fd_path(&w)));
            held.push(u);
            held.push(w);
        }
        None => flags |= MsFlags::MS_RDONLY,
    }
    opts.push_str(",userxattr");
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    )
    .ctx(|| format!("mount the overlay on {}", target.display()))?;
    drop(held);
    Ok(())
}

/// Run `f` as root of a new user namespace mapping only the container's ids, with the overlay
/// of `layers` mounted on `target` in a private mount namespace (gone when `f` returns) and
/// `f`'s argument open on its root.
pub fn enter<F>(maps: &IdMaps, layers: &Layers, target: &Path, f: F) -> Result<()>
where
    F: FnOnce(&Dir) -> Result<()>,
{
    run_mapped(maps, Ids::Container, || {
        unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare(CLONE_NEWNS)".into())?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx(|| "make / private".into())?;
        mount_on(layers, target)?;
        let root = Dir::open(target)?;
        become_root()?;
        f(&root)
    })
}

/// Make the layers of a new container in `dir` (the user's): `upper/` with the mode of the
/// image's root directory, `work/`, and `rootfs/` (the mount point), all the container root's.
pub fn create(maps: &IdMaps, dir: &Path, lower: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(lower)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o755);
    let parent = Dir::open(dir)?;
    run_as_root(maps, Ids::WithUser, || {
        for (name, mode) in [("rootfs", 0o755), ("upper", mode), ("work", 0o700)] {
            parent.mkdir(name, mode)?;
            parent.chown(name, 0, 0)?;
            parent.chmod(name, mode)?;
        }
        Ok(())
    })
}

/// Empty the work directory of the container in `dir` (before an upper layer is replaced:
/// overlay requires an empty one, and nothing in it outlives a mount).
pub fn reset_work(maps: &IdMaps, dir: &Path) -> Result<()> {
    crate::userns::remove_as_root(maps, &dir.join("work"))?;
    let parent = Dir::open(dir)?;
    run_as_root(maps, Ids::WithUser, || {
        parent.mkdir("work", 0o700)?;
        parent.chown("work", 0, 0)?;
        parent.chmod("work", 0o700)
    })
}

/// Can this user mount an overlay with `userxattr` in a user namespace in `data`, and does
/// it behave (a file of the lower layer deleted through it leaves a whiteout)? Works in a
/// scratch directory that it removes.
pub fn probe(data: &Path, maps: &IdMaps) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = data.join(format!(".storage-probe-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .ctx(|| format!("create {}", dir.display()))?;
    let result = (|| {
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir(dir.join(d)).ctx(|| format!("create {d}"))?;
        }
        std::fs::write(dir.join("lower/file"), b"x").ctx(|| "write the probe file".into())?;
        let layers = Layers {
            lowers: vec![dir.join("lower")],
            upper: Some((dir.join("upper"), dir.join("work"))),
        };
        let merged = dir.join("merged");
        run_mapped(maps, Ids::Container, || {
            unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare(CLONE_NEWNS)".into())?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .ctx(|| "make / private".into())?;
            mount_on(&layers, &merged)?;
            std::fs::remove_file(merged.join("file")).ctx(|| "remove through the overlay".into())
        })?;
        use std::os::unix::fs::FileTypeExt;
        let wh = std::fs::symlink_metadata(dir.join("upper/file"))
            .ctx(|| "the probe's whiteout".into())?;
        if !wh.file_type().is_char_device() {
            return Err(Error::Setup("the overlay made no whiteout".into()));
        }
        Ok(())
    })();
    // The work directory holds a 000 directory of overlay's: removed as root of a namespace.
    let _ = crate::userns::remove_as_root(maps, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Which directory holds the container's `/sbin/init` as the overlay will show it, for the
/// monitor, which reads it on the host before the overlay exists: the upper layer if it has
/// its own `/sbin` (changed or replaced), else the image.
pub fn init_view(layers: &Layers) -> PathBuf {
    if let Some((upper, _)) = &layers.upper {
        if std::fs::symlink_metadata(upper.join("sbin")).is_ok() {
            return upper.clone();
        }
    }
    layers.lowers.first().cloned().unwrap_or_default()
}
