//! The overlay backend: `containers/<name>/rootfs` is, inside the container's mount namespace,
//! an overlayfs of the image's rootfs (lower, never written) and `containers/<name>/upper`
//! (with `work/` beside it). Mounted in the container's user namespace with `userxattr`
//! (Linux ≥ 5.11): overlay keeps its own bookkeeping (opaque directories) in `user.overlay.*`
//! xattrs, whiteouts are 0/0 character devices, `redirect_dir=nofollow` and no `metacopy` or
//! `index`, so renaming a directory that came from the image fails with `EXDEV` and `mv` falls
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
use nix::sys::stat::Mode;

use crate::beneath::{Dir, Kind};
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
        crate::mountns::private_mounts()?;
        let prepared = prepare(layers, target)?;
        become_root()?;
        prepared.mount()?;
        let root = Dir::open(Path::new("."))?;
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

/// Where the merged view's `/sbin/init` points (its link text), read on the host from the
/// layers — the monitor and `stop` need it before the overlay exists, or from outside it: a
/// systemd init halts on SIGRTMIN+3, others on SIGUSR1. Resolved as overlay does: each name
/// in the topmost layer that has it, a whiteout hiding the layers below, a directory merged
/// with the same directory below unless opaque, symlinks on the way followed (inside the
/// view, at most 8). Every step is beneath a layer's directory without following a symlink
/// on the host ([`Dir`]). None if it is not a link or cannot be read.
pub fn sbin_init_link(layers: &Layers) -> Option<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some((upper, _)) = &layers.upper {
        roots.push(upper.clone());
    }
    roots.extend(layers.lowers.iter().cloned());
    resolve_link(&roots, vec!["sbin".into(), "init".into()], 0)
}

/// Whether overlay takes directory `d` as opaque (`user.overlay.opaque` = `y`).
fn opaque(d: &Dir) -> bool {
    let Ok(path) = CString::new(d.proc_path().as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut v = [0u8; 4];
    // SAFETY: a NUL-terminated path, an attribute name literal and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"user.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n >= 1 && v[0] == b'y'
}

fn resolve_link(roots: &[PathBuf], comps: Vec<String>, depth: u32) -> Option<PathBuf> {
    use std::path::Component;
    let mut dirs: Vec<Dir> = roots.iter().filter_map(|r| Dir::open(r).ok()).collect();
    let mut here: Vec<String> = Vec::new();
    for (i, name) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let (j, kind) = dirs
            .iter()
            .enumerate()
            .find_map(|(j, d)| d.kind(name).ok().flatten().map(|k| (j, k)))?;
        match kind {
            Kind::Symlink => {
                let target = dirs[j].read_link(name).ok()?;
                if last {
                    return Some(target);
                }
                if depth >= 8 {
                    return None;
                }
                let mut next = if target.is_absolute() {
                    Vec::new()
                } else {
                    here.clone()
                };
                for c in target.components() {
                    match c {
                        Component::Normal(x) => next.push(x.to_string_lossy().to_string()),
                        Component::ParentDir => {
                            next.pop();
                        }
                        _ => {}
                    }
                }
                next.extend(comps[i + 1..].iter().cloned());
                return resolve_link(roots, next, depth + 1);
            }
            Kind::Dir if !last => {
                let top = dirs[j].open_dir(name).ok()?;
                let mut merged = Vec::new();
                let mut stop = opaque(&top);
                merged.push(top);
                for d in &dirs[j + 1..] {
                    if stop {
                        break;
                    }
                    match d.kind(name) {
                        Ok(Some(Kind::Dir)) => {
                            let nd = d.open_dir(name).ok()?;
                            stop = opaque(&nd);
                            merged.push(nd);
                        }
                        Ok(None) => {}
                        // A whiteout or a file hides what is below.
                        _ => break,
                    }
                }
                dirs = merged;
                here.push(name.clone());
            }
            // A whiteout (a 0/0 device), a file, or a directory at the end.
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layers(d: &Path) -> Layers {
        for l in ["upper", "lower", "work"] {
            std::fs::create_dir_all(d.join(l)).unwrap();
        }
        Layers::of_container(d, d.join("lower"))
    }

    /// A non-merged systemd image whose container wrote a file into `/sbin`: the upper layer
    /// has a `sbin/` without `init`, which is still the image's. Taken as "not systemd", the
    /// stop sent SIGUSR1 and waited out its timeout.
    #[test]
    fn sbin_init_is_read_through_the_layers() {
        let d = tempfile::tempdir().unwrap();
        let l = layers(d.path());
        std::fs::create_dir_all(d.path().join("lower/sbin")).unwrap();
        symlink("/lib/systemd/systemd", d.path().join("lower/sbin/init")).unwrap();
        assert_eq!(
            sbin_init_link(&l).unwrap(),
            Path::new("/lib/systemd/systemd")
        );
        std::fs::create_dir_all(d.path().join("upper/sbin")).unwrap();
        std::fs::write(d.path().join("upper/sbin/other"), "").unwrap();
        assert_eq!(
            sbin_init_link(&l).unwrap(),
            Path::new("/lib/systemd/systemd")
        );
        // The container's own init wins.
        symlink("/bin/busybox", d.path().join("upper/sbin/init")).unwrap();
        assert_eq!(sbin_init_link(&l).unwrap(), Path::new("/bin/busybox"));
    }

    /// Merged /usr: `/sbin -> usr/sbin` in the image, `usr/sbin/init` in either layer; a
    /// replaced `/sbin` link in the upper layer is followed inside the view, never on the host.
    #[test]
    fn links_on_the_way_resolve_inside_the_view() {
        let d = tempfile::tempdir().unwrap();
        let l = layers(d.path());
        std::fs::create_dir_all(d.path().join("lower/usr/sbin")).unwrap();
        symlink("usr/sbin", d.path().join("lower/sbin")).unwrap();
        symlink(
            "../lib/systemd/systemd",
            d.path().join("lower/usr/sbin/init"),
        )
        .unwrap();
        assert_eq!(
            sbin_init_link(&l).unwrap(),
            Path::new("../lib/systemd/systemd")
        );
        std::fs::create_dir_all(d.path().join("upper/usr/sbin")).unwrap();
        assert_eq!(
            sbin_init_link(&l).unwrap(),
            Path::new("../lib/systemd/systemd")
        );
        std::fs::create_dir_all(d.path().join("host/sbin")).unwrap();
        symlink("/bin/sh", d.path().join("host/sbin/init")).unwrap();
        symlink(d.path().join("host/sbin"), d.path().join("upper/sbin")).unwrap();
        assert_eq!(sbin_init_link(&l), None, "resolved from the view's root");
        std::fs::remove_file(d.path().join("upper/sbin")).unwrap();
        symlink("/usr/sbin", d.path().join("upper/sbin")).unwrap();
        assert_eq!(
            sbin_init_link(&l).unwrap(),
            Path::new("../lib/systemd/systemd")
        );
    }
}
