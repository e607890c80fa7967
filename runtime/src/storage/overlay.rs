//! The overlay backend: `containers/<name>/rootfs` is, inside the container's mount namespace,
//! an overlayfs of the image's rootfs (lower, never written) and `containers/<name>/upper`
//! (with `work/` beside it). Mounted in the container's user namespace with `userxattr`
//! (Linux ≥ 5.11): overlay keeps its own bookkeeping (opaque directories) in `user.overlay.*`
//! xattrs, whiteouts are 0/0 character devices, and `redirect_dir`, `metacopy` and `index` are
//! off, so renaming a directory that came from the image fails with `EXDEV` and `mv` falls
//! back to a copy, as in any unprivileged overlay.
//!
//! Credentials: overlay acts on its layers with the credentials of whoever mounted it. The
//! layers and the mount point are opened while the process still has the user's uid (they lie
//! below the user's private data directory, which the container's root cannot search), then
//! the process becomes the container's root and mounts (the new mount API: `fsopen`,
//! `fsconfig` naming the layers as `/proc/self/fd/N` — so a data directory path with `,` or
//! `:` cannot inject options —, `fsmount`, `move_mount` onto the mount point). So overlay
//! works on the layers as the container's root: every file it makes (copy-ups, whiteouts,
//! its work directory) is the container's, and it can reach nothing the container's root could
//! not — no file of the user's. (Mounted with the user's own uid, overlay's `work/work`,
//! mode 000 and the user's, is out of reach of capabilities that hold only over the
//! container's ids: the mount fails with `EACCES`.)

use std::ffi::CString;
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

/// An overlay about to be mounted: its layers and its mount point opened (by the user, who
/// can reach them), to be mounted once the process is the container's root
/// ([`Prepared::mount`]).
#[derive(Debug)]
pub struct Prepared {
    lowers: Vec<OwnedFd>,
    upper: Option<(OwnedFd, OwnedFd)>,
    target: OwnedFd,
}

/// Open the layers of `layers` and the mount point `target`, still with the user's uid (see
/// the module doc).
pub fn prepare(layers: &Layers, target: &Path) -> Result<Prepared> {
    Ok(Prepared {
        lowers: layers
            .lowers
            .iter()
            .map(|p| open_path(p))
            .collect::<Result<Vec<_>>>()?,
        upper: match &layers.upper {
            Some((u, w)) => Some((open_path(u)?, open_path(w)?)),
            None => None,
        },
        target: open_path(target)?,
    })
}

fn os(what: &str) -> Error {
    Error::Os {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Usage(format!("{s:?} has a NUL byte")))
}

// The new mount API (Linux 5.2), which libc and nix do not wrap.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

impl Prepared {
    /// Mount the overlay on the mount point and make its root this process's working
    /// directory. Call as root of the container's user namespace, in a mount namespace of its
    /// own: overlay then acts on its layers with the container's root's credentials.
    pub fn mount(self) -> Result<()> {
        // SAFETY: fsopen takes a NUL-terminated name and flags; returns a new fd or -1.
        let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
        if fs < 0 {
            return Err(os("fsopen(overlay)"));
        }
        // SAFETY: a descriptor fsopen just returned, owned from here on.
        let fs = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fs as i32) };
        let set = |key: &str, value: Option<&str>| -> Result<()> {
            let k = cstring(key)?;
            let v = value.map(cstring).transpose()?;
            let (cmd, vp) = match &v {
                Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
                None => (FSCONFIG_SET_FLAG, std::ptr::null()),
            };
            // SAFETY: fsconfig on our fs context fd with NUL-terminated key and value (or a
            // null value for a flag), aux 0.
            let rc = unsafe {
                libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, k.as_ptr(), vp, 0)
            };
            if rc < 0 {
                return Err(os(&format!("overlay option {key}")));
            }
            Ok(())
        };
        let lowerdir = self
            .lowers
            .iter()
            .map(fd_path)
            .collect::<Vec<_>>()
            .join(":");
        set("lowerdir", Some(&lowerdir))?;
        if let Some((u, w)) = &self.upper {
            set("upperdir", Some(&fd_path(u)))?;
            set("workdir", Some(&fd_path(w)))?;
        }
        set("userxattr", None)?;
        // SAFETY: as above, a command without key or value.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        if rc < 0 {
            return Err(os("create the overlay"));
        }
        let attrs = if self.upper.is_none() {
            MOUNT_ATTR_RDONLY
        } else {
            0
        };
        // SAFETY: fsmount of a created context; returns a new fd or -1.
        let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
        if m < 0 {
            return Err(os("fsmount(overlay)"));
        }
        // SAFETY: a descriptor fsmount just returned, owned from here on.
        let m = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(m as i32) };
        // SAFETY: move_mount from our mount fd onto our mount point fd, empty paths.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                m.as_raw_fd(),
                c"".as_ptr(),
                self.target.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        if rc < 0 {
            return Err(os("attach the overlay"));
        }
        nix::unistd::fchdir(&m).ctx(|| "chdir into the overlay".into())
    }
}

/// Run `f` as root of a new user namespace mapping only the container's ids, with the overlay
/// of `layers` mounted on `target` in a private mount namespace (gone when `f` returns) and
/// `f`'s argument open on its root.
pub fn enter<F>(maps: &IdMaps, layers: &Layers, target: &Path, f: F) -> Result<()>
where
    F: FnOnce(&Dir) -> Result<()>,
{
    run_mapped(maps, Ids::Container, || {
        private_mounts()?;
        let prepared = prepare(layers, target)?;
        become_root()?;
        prepared.mount()?;
        let root = Dir::open(Path::new("."))?;
        f(&root)
    })
}

/// A mount namespace of this process's own, nothing propagating back.
fn private_mounts() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare(CLONE_NEWNS)".into())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| "make / private".into())
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
/// scratch directory laid out as a container's, which it removes.
pub fn probe(data: &Path, maps: &IdMaps) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = data.join(format!(".storage-probe-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .ctx(|| format!("create {}", dir.display()))?;
    let result = (|| {
        let top = Dir::open(&dir)?;
        run_as_root(maps, Ids::WithUser, || {
            for d in ["lower", "upper", "work", "merged"] {
                top.mkdir(d, 0o755)?;
                top.chown(d, 0, 0)?;
            }
            let lower = top.open_dir("lower")?;
            lower.write("file", b"x", 0o644)?;
            lower.chown("file", 0, 0)
        })?;
        let layers = Layers {
            lowers: vec![dir.join("lower")],
            upper: Some((dir.join("upper"), dir.join("work"))),
        };
        enter(maps, &layers, &dir.join("merged"), |root| {
            root.unlink("file")
        })?;
        use std::os::unix::fs::FileTypeExt;
        let wh = std::fs::symlink_metadata(dir.join("upper/file"))
            .ctx(|| "the probe's whiteout".into())?;
        if !wh.file_type().is_char_device() {
            return Err(Error::Setup("the overlay made no whiteout".into()));
        }
        Ok(())
    })();
    let _ = crate::userns::remove_as_root(maps, &dir);
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
