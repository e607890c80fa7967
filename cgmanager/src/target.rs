//! Turning a `cgroup` (and `key`) argument into a directory the caller may act on.
//!
//! Two layers: the string is checked component by component (no `..`, `.`, control
//! characters, oversized names) and confined below a base cgroup component-wise (`/a` never
//! admits `/a2`); then the directory is opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)` from the hierarchy's mount, so a symlink or a mount
//! planted in the tree cannot lead the daemon anywhere else.

use std::fs::Metadata;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cgroups::Cgroup;
use dashmap::DashMap;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::errors::{from_errno, Error, Kind, Result};

/// Longest cgroup path argument accepted (the kernel's PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Longest single name (the kernel's NAME_MAX).
pub const MAX_NAME: usize = 255;

/// Check a cgroup path argument and return its components (empty for "" or "/").
pub fn components(arg: &str) -> Result<Vec<&str>> {
    if arg.len() > MAX_PATH {
        return Err(Error::new(
            Kind::InvalidArgument,
            format!("cgroup path is {} bytes long (limit {MAX_PATH})", arg.len()),
        ));
    }
    let mut out = Vec::new();
    for c in arg.split('/').filter(|c| !c.is_empty()) {
        if c == ".." || c == "." {
            return Err(Error::new(
                Kind::OutsideSubtree,
                format!("cgroup path {arg:?} contains {c:?}; give a path below your cgroup"),
            ));
        }
        check_name(c, "cgroup name")?;
        out.push(c);
    }
    Ok(out)
}

/// Check a file name argument (`key`, chmod's `file`): one name, no `/`.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::new(Kind::InvalidArgument, "empty file name"));
    }
    if key.contains('/') || key.contains('\\') || key == "." || key == ".." {
        return Err(Error::new(
            Kind::InvalidArgument,
            format!("{key:?} is not a file name of a cgroup (no '/', '\\', '.' or '..')"),
        ));
    }
    check_name(key, "file name")
}

fn check_name(name: &str, what: &str) -> Result<()> {
    if name.len() > MAX_NAME {
        return Err(Error::new(
            Kind::InvalidArgument,
            format!("{what} is {} bytes long (limit {MAX_NAME})", name.len()),
        ));
    }
    if name.chars().any(|ch| ch.is_control()) {
        return Err(Error::new(
            Kind::InvalidArgument,
            format!("{what} {name:?} contains control characters"),
        ));
    }
    Ok(())
}

/// Resolve `arg` against `base`: relative paths are below it; absolute ones start at the
/// hierarchy root and must still be `base` or below it.
pub fn resolve(base: &Cgroup, arg: &str) -> Result<Cgroup> {
    let comps = components(arg)?;
    let bad = |e: cgroups::Error| Error::new(Kind::InvalidArgument, e.to_string());
    let cg = if arg.starts_with('/') {
        let root = Cgroup::new(base.version, &base.mount_point, "").map_err(bad)?;
        root.descendant(&comps.join("/")).map_err(bad)?
    } else {
        base.descendant(&comps.join("/")).map_err(bad)?
    };
    if !cg.is_within(base) {
        return Err(Error::new(
            Kind::OutsideSubtree,
            format!(
                "{} is not below your cgroup {}",
                cg.abs_path(),
                base.abs_path()
            ),
        ));
    }
    Ok(cg)
}

/// Open a cgroup directory (or a file in it) without following symlinks or crossing mounts,
/// and return its metadata. Missing → `NotFound`; a symlink or mount on the way →
/// `OutsideSubtree`.
pub fn stat_beneath(cg: &Cgroup, file: Option<&str>) -> Result<Metadata> {
    let fd = open_beneath(cg, file, OFlag::O_PATH)?;
    std::fs::File::from(fd)
        .metadata()
        .map_err(|e| crate::errors::from_io(&e, "stat"))
}

/// The hierarchy mounts, opened once (`O_PATH`) and kept: every request resolves from them.
/// A hierarchy remounted while the daemon runs is not followed (restart the daemon).
fn mount_fd(mount_point: &Path) -> Result<Arc<OwnedFd>> {
    static MOUNTS: OnceLock<DashMap<PathBuf, Arc<OwnedFd>>> = OnceLock::new();
    let mounts = MOUNTS.get_or_init(DashMap::new);
    if let Some(fd) = mounts.get(mount_point) {
        return Ok(fd.clone());
    }
    let fd = nix::fcntl::open(
        mount_point,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| from_errno(e as i32, &format!("open {}", mount_point.display())))?;
    let fd = Arc::new(fd);
    mounts.insert(mount_point.to_path_buf(), fd.clone());
    Ok(fd)
}

/// Open a cgroup directory or file beneath its hierarchy's mount with `flags`.
pub fn open_beneath(cg: &Cgroup, file: Option<&str>, flags: OFlag) -> Result<OwnedFd> {
    let what = match file {
        Some(f) => format!("{}/{f}", cg.abs_path().trim_end_matches('/')),
        None => cg.abs_path(),
    };
    let mount = mount_fd(&cg.mount_point)?;
    let mut rel = if cg.rel.is_empty() {
        ".".to_string()
    } else {
        cg.rel.clone()
    };
    if let Some(f) = file {
        rel = format!("{rel}/{f}");
    }
    let dir_flag = if file.is_none() {
        OFlag::O_DIRECTORY
    } else {
        OFlag::empty()
    };
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
    openat2(&*mount, rel.as_str(), how).map_err(|e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::EXDEV => Error::new(
            Kind::OutsideSubtree,
            format!("{what}: a symlink or another mount is in the way; refusing to follow it"),
        ),
        nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => {
            Error::new(Kind::NotFound, format!("{what} does not exist"))
        }
        e => from_errno(e as i32, &what),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgroups::Version;

    fn base() -> Cgroup {
        Cgroup::new(Version::V1, "/m", "a/b").unwrap()
    }

    #[test]
    fn relative_and_absolute_are_confined() {
        assert_eq!(resolve(&base(), "").unwrap().rel, "a/b");
        assert_eq!(resolve(&base(), "c/d").unwrap().rel, "a/b/c/d");
        assert_eq!(resolve(&base(), "c//d/").unwrap().rel, "a/b/c/d");
        assert_eq!(resolve(&base(), "/a/b/c").unwrap().rel, "a/b/c");
        assert_eq!(resolve(&base(), "/a/b").unwrap().rel, "a/b");
        assert!(matches!(
            resolve(&base(), "/a/b2"),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            resolve(&base(), "/a"),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            resolve(&base(), "/"),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            resolve(&base(), "../b2"),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            resolve(&base(), "c/../../x"),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            resolve(&base(), "./c"),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            resolve(&base(), "c\nd"),
            Err(e) if e.is(Kind::InvalidArgument)
        ));
        assert!(matches!(
            resolve(&base(), &"x".repeat(300)),
            Err(e) if e.is(Kind::InvalidArgument)
        ));
        assert!(matches!(
            resolve(&base(), &"x/".repeat(3000)),
            Err(e) if e.is(Kind::InvalidArgument)
        ));
        // Names that merely contain dots are names.
        assert_eq!(resolve(&base(), "c..d").unwrap().rel, "a/b/c..d");
    }

    #[test]
    fn keys() {
        assert!(check_key("memory.max").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a\\b", "a\0b"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn symlinks_and_mounts_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::fs::write(t.path().join("real/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("link")).unwrap();
        std::os::unix::fs::symlink("real", t.path().join("rel")).unwrap();
        let cg = |r: &str| Cgroup::new(Version::V1, t.path(), r).unwrap();
        assert!(stat_beneath(&cg("real"), Some("f")).is_ok());
        assert!(matches!(
            stat_beneath(&cg("link"), None),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            stat_beneath(&cg("rel"), Some("f")),
            Err(e) if e.is(Kind::OutsideSubtree)
        ));
        assert!(matches!(
            stat_beneath(&cg("none"), None),
            Err(e) if e.is(Kind::NotFound)
        ));
        assert!(matches!(
            stat_beneath(&cg("real"), Some("g")),
            Err(e) if e.is(Kind::NotFound)
        ));
    }
}
