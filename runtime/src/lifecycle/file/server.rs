//! The helper's side of `lxr file`: it holds the container's root (`root`: its `/` once the
//! helper joined a running container's namespaces, or a stopped container's rootfs opened by
//! lxr) and nothing of the user's, and answers [`Req`]s one by one. It never copies data: a
//! file it opens or creates is handed to lxr as a descriptor, lxr reads or writes it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use super::at::{self, BENEATH, IN_ROOT};
use super::wire::{self, At, Entry, Kind, Meta, Rep, Req};
use crate::beneath::Dir;
use crate::channel::End;
use crate::error::{Error, Result};

/// Answer lxr's requests until it closes the channel.
pub fn serve(root: &Dir, chan: &End) -> Result<()> {
    while let Some(req) = wire::next_request(chan)? {
        if let Err(e) = answer(root, chan, &req) {
            wire::reply(chan, &Rep::Err(e.to_string()), &[])?;
        }
    }
    Ok(())
}

/// `at` as the user may read it.
fn show(at: &At) -> String {
    let mut s = at.top.clone();
    for n in &at.rel {
        if !s.ends_with('/') {
            s.push('/');
        }
        s.push_str(&String::from_utf8_lossy(n));
    }
    s
}

/// Open `at` with `flags`: its top in the container's root, the rest beneath, no symlink.
fn open(root: &Dir, at: &At, flags: OFlag, mode: u32) -> Result<OwnedFd> {
    let top = at::below_root(&at.top)?;
    let what = show(at);
    if at.rel.is_empty() {
        return at::openat2(root, top.as_bytes(), flags, mode, IN_ROOT)
            .map_err(|e| at::err(&what, e));
    }
    let dir = at::openat2(
        root,
        top.as_bytes(),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        0,
        IN_ROOT,
    )
    .map_err(|e| at::err(&at.top, e))?;
    at::openat2(&dir, &at::join(&at.rel)?, flags, mode, BENEATH).map_err(|e| at::err(&what, e))
}

/// The directory `at` is in, and its name there.
fn parent(root: &Dir, at: &At) -> Result<(OwnedFd, Vec<u8>)> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    if let Some((last, up)) = at.rel.split_last() {
        at::check_name(last)?;
        let dir = open(
            root,
            &At {
                top: at.top.clone(),
                rel: up.to_vec(),
            },
            flags,
            0,
        )?;
        return Ok((dir, last.clone()));
    }
    let (dir, name) = at::split(&at.top)
        .ok_or_else(|| Error::Usage(format!("{}: not a path to a file", at.top)))?;
    Ok((open(root, &At::top(&dir), flags, 0)?, name.into_bytes()))
}

fn own(fd: impl AsFd, uid: u32, gid: u32, mode: u32, what: &str) -> Result<()> {
    // chown first: it clears set-id bits a mode may ask for.
    nix::unistd::fchown(
        fd.as_fd(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )
    .map_err(|e| ids_error(what, uid, gid, e))?;
    nix::sys::stat::fchmod(fd.as_fd(), nix::sys::stat::Mode::from_bits_retain(mode))
        .map_err(|e| at::err(&format!("chmod {what}"), e))
}

fn ids_error(what: &str, uid: u32, gid: u32, e: Errno) -> Error {
    if e == Errno::EINVAL {
        return Error::Usage(format!(
            "chown {what} to {uid}:{gid}: not an id of the container (it maps 0-65535)"
        ));
    }
    at::err(&format!("chown {what}"), e)
}

fn answer(root: &Dir, chan: &End, req: &Req) -> Result<()> {
    match req {
        Req::Stat { at, follow } => {
            let flags = if *follow {
                OFlag::O_PATH
            } else {
                OFlag::O_PATH | OFlag::O_NOFOLLOW
            };
            let st = match open(root, at, flags, 0) {
                Ok(fd) => Some(at::meta(&at::fstat(&fd, &show(at))?)),
                Err(Error::Usage(m)) if m.ends_with("no such file or directory") => None,
                Err(e) => return Err(e),
            };
            wire::reply(chan, &Rep::Stat(st), &[])
        }
        Req::Create { at, uid, gid, mode } => {
            let what = show(at);
            let fd = open(root, at, at::WRITE_NEW, 0o600)?;
            let st = at::fstat(&fd, &what)?;
            if at::meta(&st).kind != Kind::File {
                return Err(Error::Usage(format!("{what} is not a regular file")));
            }
            own(&fd, *uid, *gid, *mode, &what)?;
            let m = at::meta(&at::fstat(&fd, &what)?);
            wire::reply(chan, &Rep::Fd(m), &[fd.as_raw_fd()])
        }
        Req::Mkdir {
            at,
            uid,
            gid,
            mode,
            exist_ok,
        } => {
            let what = show(at);
            let (dir, name) = parent(root, at)?;
            let c = std::ffi::CString::new(name.clone())
                .map_err(|_| Error::Usage("a NUL in a path".into()))?;
            match nix::sys::stat::mkdirat(
                &dir,
                c.as_c_str(),
                nix::sys::stat::Mode::from_bits_retain(0o700),
            ) {
                Ok(()) => {}
                Err(Errno::EEXIST) if *exist_ok => {
                    // A directory there, as the container sees it, will do (a symlink to one
                    // included: resolved in the container's root).
                    open(root, at, OFlag::O_PATH | OFlag::O_DIRECTORY, 0).map_err(|_| {
                        Error::Usage(format!("{what} exists and is not a directory"))
                    })?;
                    return wire::reply(chan, &Rep::Ok, &[]);
                }
                Err(e) => return Err(at::err(&format!("mkdir {what}"), e)),
            }
            let fd = at::openat2(
                &dir,
                &name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                0,
                BENEATH,
            )
            .map_err(|e| at::err(&what, e))?;
            own(&fd, *uid, *gid, *mode, &what)?;
            wire::reply(chan, &Rep::Ok, &[])
        }
        Req::Symlink {
            at,
            target,
            uid,
            gid,
        } => {
            let what = show(at);
            let (dir, name) = parent(root, at)?;
            let c = std::ffi::CString::new(name.clone())
                .map_err(|_| Error::Usage("a NUL in a path".into()))?;
            match at::symlinkat(target, &dir, &name) {
                Err(Errno::EEXIST) => {
                    // Only a symlink is replaced (unlinkat never follows one).
                    let st =
                        nix::sys::stat::fstatat(&dir, c.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                            .map_err(|e| at::err(&what, e))?;
                    if at::meta(&st).kind != Kind::Symlink {
                        return Err(Error::Usage(format!("{what} exists")));
                    }
                    nix::unistd::unlinkat(&dir, c.as_c_str(), UnlinkatFlags::NoRemoveDir)
                        .map_err(|e| at::err(&what, e))?;
                    at::symlinkat(target, &dir, &name).map_err(|e| at::err(&what, e))?;
                }
                r => r.map_err(|e| at::err(&what, e))?,
            }
            nix::unistd::fchownat(
                &dir,
                c.as_c_str(),
                Some(Uid::from_raw(*uid)),
                Some(Gid::from_raw(*gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| ids_error(&what, *uid, *gid, e))?;
            wire::reply(chan, &Rep::Ok, &[])
        }
        Req::Open { at } => {
            let what = show(at);
            // Looked at before it is opened: a FIFO or a device is never opened at all.
            let path = open(root, at, OFlag::O_PATH, 0)?;
            let st = at::fstat(&path, &what)?;
            check_regular(&st, &what)?;
            let fd = open(
                root,
                at,
                OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
                0,
            )?;
            let st2 = at::fstat(&fd, &what)?;
            if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) {
                return Err(Error::Usage(format!("{what} changed while it was opened")));
            }
            wire::reply(chan, &Rep::Fd(at::meta(&st2)), &[fd.as_raw_fd()])
        }
        Req::List { at } => list(root, chan, at),
        Req::Delete { at, recursive } => {
            let what = show(at);
            let (dir, name) = parent(root, at)?;
            remove(&dir, &name, *recursive, &what)?;
            wire::reply(chan, &Rep::Ok, &[])
        }
    }
}

fn check_regular(st: &nix::sys::stat::FileStat, what: &str) -> Result<()> {
    match at::meta(st).kind {
        Kind::File => Ok(()),
        Kind::Dir => Err(Error::Usage(format!("{what} is a directory (-r)"))),
        _ => Err(Error::Usage(format!(
            "{what} is not a regular file (a FIFO, socket or device): not read"
        ))),
    }
}

/// Entries go in parts well below the channel's 64 KiB a message.
const PART: usize = 16 << 10;

/// Filesystems a walk does not descend into (`statfs` magic numbers): the kernel's views
/// (`/proc`, `/sys`, cgroups, `/dev/pts`, `/dev/mqueue`, debug, trace, security, bpf) are not
/// files to copy — endless, or not readable — and a FUSE mount (lxcfs, or one of the
/// container's own) may never answer. Asked for by name they are listed as any directory.
const NOT_WALKED: [(i64, &str); 10] = [
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x1cd1, "devpts"),
    (0x1980_0202, "mqueue"),
    (0x6573_5546, "fuse"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0xcafe_4a11, "bpf"),
];

fn list(root: &Dir, chan: &End, at: &At) -> Result<()> {
    let what = show(at);
    let fd = open(root, at, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
    if !at.rel.is_empty() {
        let fs =
            nix::sys::statfs::fstatfs(&fd).map_err(|e| at::err(&format!("statfs {what}"), e))?;
        // The width of the magic's type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let magic = fs.filesystem_type().0 as i64;
        if let Some((_, name)) = NOT_WALKED.iter().find(|(m, _)| *m == magic) {
            return Err(Error::Usage(format!(
                "{what}: a {name} filesystem, not walked"
            )));
        }
    }
    let dup = fd.try_clone().map_err(|e| Error::Os {
        what: format!("dup {what}"),
        source: e,
    })?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| at::err(&what, e))?;
    let (mut part, mut size) = (Vec::new(), 0);
    for e in d.iter() {
        let e = e.map_err(|e| at::err(&format!("list {what}"), e))?;
        let name = e.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let Ok(st) = nix::sys::stat::fstatat(&fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            // Gone meanwhile.
            continue;
        };
        let meta: Meta = at::meta(&st);
        let target = if meta.kind == Kind::Symlink {
            nix::fcntl::readlinkat(&fd, name)
                .ok()
                .map(|t| t.as_bytes().to_vec())
        } else {
            None
        };
        // JSON spells a byte as up to 4 characters.
        size += 4 * (bytes.len() + target.as_ref().map_or(0, Vec::len)) + 100;
        part.push(Entry {
            name: bytes.to_vec(),
            meta,
            target,
        });
        if size > PART {
            wire::reply(chan, &Rep::Entries(std::mem::take(&mut part)), &[])?;
            size = 0;
        }
    }
    if !part.is_empty() {
        wire::reply(chan, &Rep::Entries(part), &[])?;
    }
    wire::reply(chan, &Rep::Ok, &[])
}

/// Remove `name` in `dir` (a directory only when empty, or with all it holds if
/// `recursive`), never following a symlink.
fn remove(dir: &OwnedFd, name: &[u8], recursive: bool, what: &str) -> Result<()> {
    let c = std::ffi::CString::new(name.to_vec())
        .map_err(|_| Error::Usage("a NUL in a path".into()))?;
    match nix::unistd::unlinkat(dir, c.as_c_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(at::err(&format!("remove {what}"), e)),
    }
    if recursive {
        let sub = at::openat2(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            0,
            BENEATH,
        )
        .map_err(|e| at::err(what, e))?;
        let dup = sub.try_clone().map_err(|e| Error::Os {
            what: format!("dup {what}"),
            source: e,
        })?;
        let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| at::err(what, e))?;
        let names: Vec<Vec<u8>> = d
            .iter()
            .flatten()
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect();
        for n in names {
            let w = format!("{what}/{}", String::from_utf8_lossy(&n));
            remove(&sub, &n, true, &w)?;
        }
    }
    nix::unistd::unlinkat(dir, c.as_c_str(), UnlinkatFlags::RemoveDir).map_err(|e| {
        if e == Errno::ENOTEMPTY {
            Error::Usage(format!(
                "{what} is a directory that is not empty (--force removes it all)"
            ))
        } else {
            at::err(&format!("remove {what}"), e)
        }
    })
}
