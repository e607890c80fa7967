//! Paths resolved beneath a directory, never through a symlink. Everything lxr reads or writes
//! on behalf of an image — its `metadata.yaml`, `templates/`, `rootfs/`, the record lxr keeps
//! beside them, a template's target in a new container — goes through a [`Dir`]: a descriptor
//! of the directory plus `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS)`, so a symlink planted anywhere on the way (by an image, or by a
//! container's root) makes the operation fail instead of reaching the user's files. Files are
//! only read when regular (a FIFO would block lxr, a device is never an image's data) and up
//! to a stated size.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FchmodatFlags, Mode};
use nix::unistd::UnlinkatFlags;

use crate::error::{Context, Error, Result};

/// A directory every path of which is resolved beneath it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only.
    name: PathBuf,
}

/// What a directory entry is (not following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{:?} has a NUL byte", p.display())))
}

/// A relative path of plain components (no `..`, not absolute, not empty).
fn check_rel(rel: &Path) -> Result<()> {
    let plain = rel.components().next().is_some()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if plain {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{:?} is not a path inside the directory (absolute, empty or with ..)",
            rel.display()
        )))
    }
}

/// One plain name (no `/`).
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::Usage(format!("{name:?} is not a file name")));
    }
    Ok(())
}

impl Dir {
    /// The directory at `path` (a path lxr chose, e.g. its data directory). The last
    /// component must not be a symlink.
    pub fn open(path: &Path) -> Result<Dir> {
        let c = cstr(path)?;
        let fd = nix::fcntl::open(
            c.as_c_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", path.display()))?;
        Ok(Dir {
            fd,
            name: path.to_path_buf(),
        })
    }

    /// The path this directory was opened as (for messages).
    pub fn name(&self) -> &Path {
        &self.name
    }

    fn what(&self, rel: &Path) -> String {
        self.name.join(rel).display().to_string()
    }

    fn os(&self, op: &str, rel: &Path, e: Errno) -> Error {
        if e == Errno::ELOOP || e == Errno::EXDEV {
            return Error::Usage(format!(
                "{op} {}: refused, a symlink (or a path leaving the directory) is in the way",
                self.what(rel)
            ));
        }
        Error::Os {
            what: format!("{op} {}", self.what(rel)),
            source: e.into(),
        }
    }

    /// openat2 beneath this directory.
    fn openat2(&self, rel: &Path, flags: OFlag, mode: u32) -> Result<OwnedFd> {
        self.openat2_resolving(
            rel,
            flags,
            mode,
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        )
    }

    fn openat2_resolving(
        &self,
        rel: &Path,
        flags: OFlag,
        mode: u32,
        resolve: ResolveFlag,
    ) -> Result<OwnedFd> {
        check_rel(rel)?;
        let c = cstr(rel)?;
        // A mode only with O_CREAT (the kernel refuses one otherwise).
        let mode = if flags.contains(OFlag::O_CREAT) {
            Mode::from_bits_retain(mode)
        } else {
            Mode::empty()
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(resolve);
        nix::fcntl::openat2(&self.fd, c.as_c_str(), how).map_err(|e| self.os("open", rel, e))
    }

    /// The directory `rel` below this one.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Dir> {
        let rel = rel.as_ref();
        let fd = self.openat2(rel, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)?;
        Ok(Dir {
            fd,
            name: self.name.join(rel),
        })
    }

    /// The directory `rel` as the container would see it with this directory as its `/`:
    /// symlinks on the way are followed but never lead out (`RESOLVE_IN_ROOT`), so a
    /// merged-`/usr` image's `sbin -> usr/sbin` resolves and a planted `sbin -> /etc` of the
    /// host lands on the image's own `/etc`.
    pub fn open_dir_in_root(&self, rel: impl AsRef<Path>) -> Result<Dir> {
        let rel = rel.as_ref();
        let fd = self.openat2_resolving(
            rel,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            0,
            ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        )?;
        Ok(Dir {
            fd,
            name: self.name.join(rel),
        })
    }

    /// An `O_PATH` descriptor of `rel` (a file or a directory), for a mount to name by
    /// `/proc/self/fd/N`.
    pub fn open_path(&self, rel: impl AsRef<Path>) -> Result<OwnedFd> {
        self.openat2(rel.as_ref(), OFlag::O_PATH, 0)
    }

    /// What `rel` is, without following a symlink; `None` if it does not exist.
    pub fn kind(&self, rel: impl AsRef<Path>) -> Result<Option<Kind>> {
        let rel = rel.as_ref();
        check_rel(rel)?;
        let (parent, name) = self.parent_of(rel)?;
        let c = cstr(Path::new(&name))?;
        let st = match nix::sys::stat::fstatat(
            &parent.fd,
            c.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("stat {}", self.what(rel))),
        };
        Ok(Some(match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }))
    }

    /// The parent directory of `rel` (opened beneath) and its last name.
    fn parent_of(&self, rel: &Path) -> Result<(Dir, String)> {
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| Error::Usage(format!("{:?} has no file name", rel.display())))?;
        let parent = match rel.parent() {
            Some(p) if p.components().next().is_some() => self.open_dir(p)?,
            _ => self.dup()?,
        };
        Ok((parent, name))
    }

    fn dup(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().map_err(|e| Error::Os {
            what: format!("dup {}", self.name.display()),
            source: e,
        })?;
        Ok(Dir {
            fd,
            name: self.name.clone(),
        })
    }

    /// The target of the symlink `rel` (its directories resolved beneath, none a symlink).
    pub fn read_link(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = rel.as_ref();
        check_rel(rel)?;
        let (parent, name) = self.parent_of(rel)?;
        let c = cstr(Path::new(&name))?;
        nix::fcntl::readlinkat(&parent.fd, c.as_c_str())
            .map(PathBuf::from)
            .map_err(|e| self.os("readlink", rel, e))
    }

    /// The metadata of the open file `f` (`rel`), which must be a regular file.
    fn regular(&self, f: &std::fs::File, rel: &Path) -> Result<std::fs::Metadata> {
        let md = f.metadata().map_err(|e| Error::Os {
            what: format!("stat {}", self.what(rel)),
            source: e,
        })?;
        if !md.is_file() {
            return Err(Error::Usage(format!(
                "{} is not a regular file",
                self.what(rel)
            )));
        }
        Ok(md)
    }

    /// Read the regular file `rel`, refusing anything else and anything over `limit` bytes.
    pub fn read(&self, rel: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>> {
        let rel = rel.as_ref();
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
        let fd = self.openat2(
            rel,
            OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            0,
        )?;
        let f = std::fs::File::from(fd);
        let md = self.regular(&f, rel)?;
        if md.len() > limit {
            return Err(Error::Usage(format!(
                "{} is {} bytes, more than the {limit} allowed",
                self.what(rel),
                md.len()
            )));
        }
        let mut out = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::Os {
                what: format!("read {}", self.what(rel)),
                source: e,
            })?;
        if out.len() as u64 > limit {
            return Err(Error::Usage(format!(
                "{} grew past the {limit} bytes allowed",
                self.what(rel)
            )));
        }
        Ok(out)
    }

    /// Read `rel` as UTF-8 text (see [`Dir::read`]).
    pub fn read_text(&self, rel: impl AsRef<Path>, limit: u64) -> Result<String> {
        let rel = rel.as_ref();
        String::from_utf8(self.read(rel, limit)?)
            .map_err(|_| Error::Usage(format!("{} is not UTF-8 text", self.what(rel))))
    }

    /// Write `data` to the regular file `rel` (created with `mode`, or truncated), never
    /// through a symlink.
    pub fn write(&self, rel: impl AsRef<Path>, data: &[u8], mode: u32) -> Result<()> {
        let rel = rel.as_ref();
        let fd = self.openat2(
            rel,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            mode,
        )?;
        let mut f = std::fs::File::from(fd);
        self.regular(&f, rel)?;
        f.write_all(data).map_err(|e| Error::Os {
            what: format!("write {}", self.what(rel)),
            source: e,
        })
    }

    /// Replace the file `name` (in this directory) with `data` atomically: a new file, then a
    /// rename over the old entry (which replaces a symlink rather than following it).
    pub fn replace(&self, name: &str, data: &[u8], mode: u32) -> Result<()> {
        check_name(name)?;
        let tmp = format!(".{name}.tmp-{}", std::process::id());
        let _ = self.unlink(&tmp);
        let fd = self.openat2(
            Path::new(&tmp),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            mode,
        )?;
        let written = std::fs::File::from(fd)
            .write_all(data)
            .map_err(|e| Error::Os {
                what: format!("write {}", self.what(Path::new(&tmp))),
                source: e,
            });
        let renamed = written.and_then(|()| self.rename(&tmp, self, name));
        if renamed.is_err() {
            let _ = self.unlink(&tmp);
        }
        renamed
    }

    /// Remove the file (or symlink) `name` in this directory.
    pub fn unlink(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let c = cstr(Path::new(name))?;
        nix::unistd::unlinkat(&self.fd, c.as_c_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| self.os("remove", Path::new(name), e))
    }

    /// Make the directory `name` in this directory (fails if anything has that name).
    pub fn mkdir(&self, name: &str, mode: u32) -> Result<Dir> {
        check_name(name)?;
        let c = cstr(Path::new(name))?;
        nix::sys::stat::mkdirat(&self.fd, c.as_c_str(), Mode::from_bits_retain(mode))
            .map_err(|e| self.os("mkdir", Path::new(name), e))?;
        self.open_dir(name)
    }

    /// The directory `rel`, made with `mode` where missing (each component beneath, none a
    /// symlink).
    pub fn mkdir_all(&self, rel: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let rel = rel.as_ref();
        check_rel(rel)?;
        let mut dir = self.dup()?;
        for c in rel.components() {
            let Component::Normal(part) = c else { continue };
            let part = part.to_string_lossy().to_string();
            dir = match dir.kind(&part)? {
                None => dir.mkdir(&part, mode)?,
                Some(Kind::Dir) => dir.open_dir(&part)?,
                Some(Kind::Symlink) => {
                    return Err(Error::Usage(format!(
                        "{} is a symlink: refused",
                        dir.what(Path::new(&part))
                    )))
                }
                Some(_) => {
                    return Err(Error::Usage(format!(
                        "{} is not a directory",
                        dir.what(Path::new(&part))
                    )))
                }
            };
        }
        Ok(dir)
    }

    /// Rename `from` (in this directory) to `to` in `to_dir`; an existing `to` is replaced.
    pub fn rename(&self, from: &str, to_dir: &Dir, to: &str) -> Result<()> {
        check_name(from)?;
        check_name(to)?;
        let (f, t) = (cstr(Path::new(from))?, cstr(Path::new(to))?);
        // Symlinks are renamed, not followed.
        nix::fcntl::renameat(&self.fd, f.as_c_str(), &to_dir.fd, t.as_c_str())
            .map_err(|e| self.os("rename", Path::new(from), e))
    }

    /// Change the owner of `name` in this directory (not following a symlink).
    pub fn chown(&self, name: &str, uid: u32, gid: u32) -> Result<()> {
        let c = cstr(Path::new(name))?;
        nix::unistd::fchownat(
            &self.fd,
            c.as_c_str(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.os("chown", Path::new(name), e))
    }

    /// Change the mode of `name` in this directory (which must not be a symlink).
    pub fn chmod(&self, name: &str, mode: u32) -> Result<()> {
        if self.kind(name)? == Some(Kind::Symlink) {
            return Err(Error::Usage(format!(
                "{} is a symlink",
                self.what(Path::new(name))
            )));
        }
        let c = cstr(Path::new(name))?;
        nix::sys::stat::fchmodat(
            &self.fd,
            c.as_c_str(),
            Mode::from_bits_retain(mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| self.os("chmod", Path::new(name), e))
    }

    /// Clear the set-user-id and set-group-id bits of the regular file `name` if `owner` owns
    /// it; whether it had them. The file is pinned by a descriptor before it is looked at, so
    /// a symlink swapped in meanwhile is never followed.
    pub fn clear_setid(&self, name: &str, owner: u32) -> Result<bool> {
        check_name(name)?;
        let fd = self.openat2(Path::new(name), OFlag::O_PATH, 0)?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::Os {
            what: format!("stat {}", self.what(Path::new(name))),
            source: e.into(),
        })?;
        let setid = st.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != owner || !setid {
            return Ok(false);
        }
        // chmod through the descriptor's magic link: the inode pinned above, whatever the name
        // now points to.
        let proc = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        std::fs::set_permissions(
            &proc,
            std::os::unix::fs::PermissionsExt::from_mode(st.st_mode & 0o777),
        )
        .map_err(|e| Error::Os {
            what: format!("chmod {}", self.what(Path::new(name))),
            source: e,
        })?;
        Ok(true)
    }

    /// Names in this directory (not `.`/`..`).
    pub fn entries(&self) -> Result<Vec<String>> {
        let fd = self.openat2(Path::new("."), OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
        // `/proc/self/fd/N` of a descriptor we hold: read_dir needs a path.
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let rd = std::fs::read_dir(&path).map_err(|e| Error::Os {
            what: format!("list {}", self.name.display()),
            source: e,
        })?;
        Ok(rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect())
    }

    /// `/proc/self/fd/N`: a path to this directory for a program that wants one, valid while
    /// this `Dir` lives (and in a child that inherits the descriptor).
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Make this process's working directory this one.
    pub fn chdir(&self) -> Result<()> {
        nix::unistd::fchdir(&self.fd).ctx(|| format!("chdir {}", self.name.display()))
    }

    /// Keep the descriptor across an exec (for a child that uses [`Dir::proc_path`]).
    pub fn inheritable(&self) -> Result<()> {
        nix::fcntl::fcntl(
            &self.fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map(drop)
        .ctx(|| format!("pass {}", self.name.display()))
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("in")).unwrap();
        std::fs::create_dir(t.path().join("outside")).unwrap();
        std::fs::write(t.path().join("outside/secret"), "key").unwrap();
        let d = Dir::open(&t.path().join("in")).unwrap();
        (t, d)
    }

    #[test]
    fn symlinks_and_dotdot_are_never_followed() {
        let (t, d) = setup();
        let out = t.path().join("outside");
        std::os::unix::fs::symlink(&out, t.path().join("in/link")).unwrap();
        std::os::unix::fs::symlink("../outside/secret", t.path().join("in/rel")).unwrap();
        assert!(d.read("link/secret", 100).is_err());
        assert!(d.read("rel", 100).is_err());
        assert!(d.read("../outside/secret", 100).is_err());
        assert!(d.read("/etc/passwd", 100).is_err());
        assert!(d.write("link/new", b"x", 0o600).is_err());
        assert!(d.write("rel", b"x", 0o600).is_err());
        assert!(d.mkdir_all("link/sub", 0o700).is_err());
        assert!(!out.join("new").exists() && !out.join("sub").exists());
        assert_eq!(std::fs::read(out.join("secret")).unwrap(), b"key");
        assert_eq!(d.kind("link").unwrap(), Some(Kind::Symlink));
        assert_eq!(d.kind("nothing").unwrap(), None);
        // Replacing a symlink replaces the link, the target stays.
        d.replace("rel", b"mine", 0o600).unwrap();
        assert_eq!(d.kind("rel").unwrap(), Some(Kind::File));
        assert_eq!(std::fs::read(out.join("secret")).unwrap(), b"key");
    }

    #[test]
    fn in_root_links_resolve_inside_the_directory() {
        let (t, d) = setup();
        std::fs::create_dir_all(t.path().join("in/usr/sbin")).unwrap();
        std::fs::write(t.path().join("in/usr/sbin/f"), "inside").unwrap();
        std::os::unix::fs::symlink("/usr/sbin", t.path().join("in/sbin")).unwrap();
        std::os::unix::fs::symlink("/../../outside", t.path().join("in/up")).unwrap();
        let sbin = d.open_dir_in_root("sbin").unwrap();
        assert_eq!(sbin.read("f", 100).unwrap(), b"inside");
        // `..` above the directory stays at it: `/../../outside` is `<in>/outside`, absent.
        assert!(d.open_dir_in_root("up").is_err());
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let (t, d) = setup();
        std::fs::write(t.path().join("in/big"), vec![b'a'; 2000]).unwrap();
        assert!(d.read("big", 1000).is_err());
        assert_eq!(d.read("big", 2000).unwrap().len(), 2000);
        nix::unistd::mkfifo(&t.path().join("in/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A FIFO is refused at once (no writer would ever come).
        assert!(d.read("fifo", 100).is_err());
        assert!(d.read("", 100).is_err());
    }

    #[test]
    fn directories_are_made_beneath() {
        let (t, d) = setup();
        let sub = d.mkdir_all("a/b/c", 0o755).unwrap();
        sub.write("f", b"x", 0o644).unwrap();
        assert_eq!(std::fs::read(t.path().join("in/a/b/c/f")).unwrap(), b"x");
        assert!(d.mkdir("a", 0o755).is_err());
        assert_eq!(
            d.entries().unwrap().into_iter().collect::<Vec<_>>(),
            vec!["a".to_string()]
        );
    }
}
