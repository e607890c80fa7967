//! Turning a `cgroup` (and `key`) argument into a directory the caller may act on.
//!
//! Two layers: the string is checked component by component (no `..`, `.`, control
//! characters, oversized names) and confined below a base cgroup component-wise (`/a` never
//! admits `/a2`); then the directory is opened through [`cgroups::beneath`] (`openat2(RESOLVE_BENEATH
//! | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)` from the hierarchy's mount) — the same way
//! `cgroups::manage` opens what it changes — so a symlink or a mount planted in the tree
//! cannot lead the daemon anywhere else, for the checks or for the change.

use std::fs::Metadata;
use std::os::fd::OwnedFd;

use cgroups::Cgroup;
use nix::fcntl::OFlag;

use crate::errors::{from_cgroups, Error, Kind, Result};

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
/// and return its metadata ([`cgroups::beneath`], as every change of `cgroups::manage`
/// opens what it changes). Missing → `NotFound`; a symlink or mount on the way →
/// `OutsideSubtree`.
pub fn stat_beneath(cg: &Cgroup, file: Option<&str>) -> Result<Metadata> {
    cgroups::beneath::stat(cg, file).map_err(|e| from_cgroups(&e))
}

/// Open a cgroup directory or file beneath its hierarchy's mount with `flags`.
pub fn open_beneath(cg: &Cgroup, file: Option<&str>, flags: OFlag) -> Result<OwnedFd> {
    cgroups::beneath::open(cg, file, flags).map_err(|e| from_cgroups(&e))
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
