//! `openat2` and friends for `lxr file`, on both sides: in the container every path is
//! resolved in its root (`RESOLVE_IN_ROOT`: a symlink leads where it leads *in the container*,
//! never out of it) and below a walk's top no symlink is followed at all; on the host, a
//! pulled tree is written beneath its destination, no symlink followed.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode};

use super::wire::{Kind, Meta};
use crate::error::{Error, Result};

/// The user's path `p` as a relative path below the container's root (`.` for `/`).
pub fn below_root(p: &str) -> Result<String> {
    if !p.starts_with('/') {
        return Err(Error::Usage(format!(
            "{p:?}: a path in a container is absolute (NAME/PATH: lxr file push f c1/root/f)"
        )));
    }
    let t = p.trim_start_matches('/').trim_end_matches('/');
    Ok(if t.is_empty() { ".".into() } else { t.into() })
}

/// `p` split into its directory and its last name (`None` for `/` or a last `.`/`..`).
pub fn split(p: &str) -> Option<(String, String)> {
    let t = p.trim_end_matches('/');
    let (dir, name) = t.rsplit_once('/')?;
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    Some((
        if dir.is_empty() {
            "/".into()
        } else {
            dir.into()
        },
        name.into(),
    ))
}

/// One plain name (as readdir gives: no `/`, not `.` or `..`, not empty).
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::Usage(format!(
            "{:?} is not a file name",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// `names` joined with `/`.
pub fn join(names: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for n in names {
        check_name(n)?;
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(n);
    }
    Ok(out)
}

fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::Usage("a NUL in a path".into()))
}

/// Why `what` failed, in words.
pub fn err(what: &str, e: Errno) -> Error {
    match e {
        Errno::ELOOP | Errno::EXDEV => Error::Usage(format!(
            "{what}: refused, a symlink (or a path leaving the container) is in the way"
        )),
        Errno::ENOENT => Error::Usage(format!("{what}: no such file or directory")),
        _ => Error::Os {
            what: what.into(),
            source: e.into(),
        },
    }
}

/// Open `path` under `dir` with `resolve`.
pub fn openat2(
    dir: impl AsFd,
    path: &[u8],
    flags: OFlag,
    mode: u32,
    resolve: ResolveFlag,
) -> std::result::Result<OwnedFd, Errno> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let mut how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    if flags.contains(OFlag::O_CREAT) {
        how = how.mode(Mode::from_bits_retain(mode));
    }
    loop {
        match nix::fcntl::openat2(dir.as_fd(), c.as_c_str(), how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// How a regular file is opened to be written, on either side: created or truncated, never a
/// controlling terminal, and O_NONBLOCK so that a FIFO planted at the name does not block.
pub const WRITE_NEW: OFlag = OFlag::O_WRONLY
    .union(OFlag::O_CREAT)
    .union(OFlag::O_TRUNC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

/// In the container's root: symlinks followed inside it, magic links never.
pub const IN_ROOT: ResolveFlag =
    ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS);
/// Beneath a directory, no symlink followed.
pub const BENEATH: ResolveFlag = ResolveFlag::RESOLVE_BENEATH
    .union(ResolveFlag::RESOLVE_NO_SYMLINKS)
    .union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// The kind and mode bits of a stat.
pub fn meta(st: &FileStat) -> Meta {
    Meta {
        kind: match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        },
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    }
}

/// fstat.
pub fn fstat(fd: impl AsFd, what: &str) -> Result<FileStat> {
    nix::sys::stat::fstat(fd.as_fd()).map_err(|e| err(&format!("stat {what}"), e))
}

/// A host path as bytes.
pub fn bytes(p: &std::path::Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// `symlinkat(target, dir, name)`.
pub fn symlinkat(target: &[u8], dir: impl AsFd, name: &[u8]) -> std::result::Result<(), Errno> {
    let (t, n) = (
        cstring(target).map_err(|_| Errno::EINVAL)?,
        cstring(name).map_err(|_| Errno::EINVAL)?,
    );
    // SAFETY: two valid NUL-terminated strings and a descriptor borrowed for the call.
    let r = unsafe {
        libc::symlinkat(
            t.as_ptr(),
            std::os::fd::AsRawFd::as_raw_fd(&dir.as_fd()),
            n.as_ptr(),
        )
    };
    Errno::result(r).map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn container_paths_are_absolute_and_split_into_a_directory_and_a_name() {
        assert_eq!(below_root("/").unwrap(), ".");
        assert_eq!(below_root("//etc//").unwrap(), "etc");
        assert_eq!(below_root("/a/b").unwrap(), "a/b");
        assert!(below_root("etc/x").is_err() && below_root("").is_err());
        assert_eq!(split("/a/b/"), Some(("/a".into(), "b".into())));
        assert_eq!(split("/a"), Some(("/".into(), "a".into())));
        assert_eq!(split("/"), None);
        assert_eq!(split("/a/.."), None);
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(join(&[b"a".to_vec(), b"b".to_vec()]).unwrap(), b"a/b");
        assert!(join(&[b"a".to_vec(), b"..".to_vec()]).is_err());
    }

    #[test]
    fn in_root_resolution_keeps_absolute_and_climbing_links_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "inside").unwrap();
        std::fs::write(t.path().join("outside"), "outside").unwrap();
        std::os::unix::fs::symlink("/", root.join("x")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc", root.join("magic")).unwrap();
        let r = crate::beneath::Dir::open(&root).unwrap();
        let read = |p: &str, how: ResolveFlag| {
            openat2(&r, p.as_bytes(), OFlag::O_RDONLY, 0, how).map(|fd| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).unwrap();
                s
            })
        };
        assert_eq!(read("x/etc/hostname", IN_ROOT).unwrap(), "inside");
        // `../../../../outside` climbs to the root and stops: `<root>/outside`, absent.
        assert_eq!(read("up", IN_ROOT), Err(Errno::ENOENT));
        assert!(read("magic/hostname", IN_ROOT).is_err());
        // Beneath: no symlink at all.
        assert_eq!(read("x/etc/hostname", BENEATH), Err(Errno::ELOOP));
        assert_eq!(read("etc/hostname", BENEATH).unwrap(), "inside");
    }
}
