//! Every change to a cgroup, and every check before one, opens what it touches the same way:
//! from the hierarchy's mount (opened once, `O_PATH`) with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`.
//! A symlink or a mount planted in a delegated tree (its owner may make both) cannot lead a
//! root daemon anywhere else: the open fails with [`Error::Escape`], and the operation works
//! on the descriptor it got (`mkdirat`, `unlinkat`, `fchownat`, a write to the opened file),
//! never on a path that could be swapped in between.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};

/// The hierarchy mounts, opened once and kept: every request resolves from them. A hierarchy
/// remounted while the process runs is not followed (restart it).
fn mount_fd(mount_point: &Path) -> Result<Arc<OwnedFd>> {
    static MOUNTS: OnceLock<Mutex<HashMap<PathBuf, Arc<OwnedFd>>>> = OnceLock::new();
    let mounts = MOUNTS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut m = mounts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(fd) = m.get(mount_point) {
        return Ok(fd.clone());
    }
    let fd = nix::fcntl::open(
        mount_point,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        path: mount_point.to_path_buf(),
        source: e.into(),
    })?;
    let fd = Arc::new(fd);
    m.insert(mount_point.to_path_buf(), fd.clone());
    Ok(fd)
}

/// Open the cgroup's directory (`file` = `None`) or one of its files with `flags`
/// (`O_CLOEXEC` added; `O_DIRECTORY` for the directory).
pub fn open(cg: &Cgroup, file: Option<&str>, flags: OFlag) -> Result<OwnedFd> {
    let path = match file {
        Some(f) => cg.file(f),
        None => cg.dir(),
    };
    let mut rel = if cg.rel.is_empty() {
        ".".to_string()
    } else {
        cg.rel.clone()
    };
    if let Some(f) = file {
        if f.is_empty() || f.contains('/') || f == "." || f == ".." {
            return Err(Error::Escape { path });
        }
        rel = format!("{rel}/{f}");
    }
    let dir_flag = if file.is_none() {
        OFlag::O_DIRECTORY
    } else {
        OFlag::empty()
    };
    let mount = mount_fd(&cg.mount_point)?;
    let how = OpenHow::new()
        // No O_NOFOLLOW: with O_PATH it would hand out the symlink itself, while
        // RESOLVE_NO_SYMLINKS refuses a symlink in any position, the last included.
        .flags(flags | OFlag::O_CLOEXEC | dir_flag)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    openat2(mount.as_fd(), rel.as_str(), how).map_err(|e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::EXDEV => Error::Escape { path },
        // A file where a directory was expected on the way is as missing as nothing there.
        nix::errno::Errno::ENOTDIR => Error::Io {
            path,
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        },
        e => Error::Io {
            path,
            source: e.into(),
        },
    })
}

/// The metadata of the cgroup's directory or one of its files, opened beneath.
pub fn stat(cg: &Cgroup, file: Option<&str>) -> Result<std::fs::Metadata> {
    let path = match file {
        Some(f) => cg.file(f),
        None => cg.dir(),
    };
    let fd = open(cg, file, OFlag::O_PATH)?;
    std::fs::File::from(fd)
        .metadata()
        .map_err(|source| Error::Io { path, source })
}

/// The parent's directory (opened beneath) and this cgroup's name in it.
pub(crate) fn parent_of(cg: &Cgroup) -> Result<(OwnedFd, String)> {
    let (Some(parent), Some(name)) = (cg.parent(), cg.rel.rsplit('/').next()) else {
        return Err(Error::OutsideHierarchy(cg.abs_path()));
    };
    if cg.rel.is_empty() {
        return Err(Error::OutsideHierarchy(cg.abs_path()));
    }
    Ok((open(&parent, None, OFlag::O_PATH)?, name.to_string()))
}

/// `/proc/self/fd/N` of an `O_PATH` descriptor: the one way to chmod what it names (the
/// kernel's fchmodat takes no `AT_EMPTY_PATH` before Linux 6.6).
pub(crate) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Version;

    #[test]
    fn symlinks_and_mounts_on_the_way_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/memory.max"), "max\n").unwrap();
        std::fs::create_dir(root.join("outside")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("memory.max", root.join("a/b/alias")).unwrap();
        let cg = |rel: &str| Cgroup::new(Version::V1, root, rel).unwrap();
        assert!(open(&cg("a/b"), None, OFlag::O_PATH).is_ok());
        assert!(stat(&cg("a/b"), Some("memory.max")).unwrap().is_file());
        assert!(matches!(
            open(&cg("a/link"), None, OFlag::O_PATH),
            Err(Error::Escape { .. })
        ));
        assert!(matches!(
            open(&cg("a/b"), Some("alias"), OFlag::O_RDONLY),
            Err(Error::Escape { .. })
        ));
        assert!(matches!(
            open(&cg("a/b"), Some("../b/memory.max"), OFlag::O_RDONLY),
            Err(Error::Escape { .. })
        ));
        let missing = open(&cg("a/nothing"), None, OFlag::O_PATH).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        let through_file = open(&cg("a/b/memory.max/x"), None, OFlag::O_PATH).unwrap_err();
        assert!(through_file.is_not_found(), "{through_file}");
    }
}
