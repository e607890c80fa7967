//! The filesystem, independent of any FUSE crate: attributes, directory listings, the
//! permission rule, open files and reads at any offset, over the layout of `crate::tree`
//! and the renderings of `crate::view`. The FUSE adapter (`fuse_adapter`) only translates
//! requests into calls on [`Lxcfs`] and answers with their results or errnos.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;

use crate::caller::Caller;
use crate::error::{FsError, FsResult};
use crate::options::Options;
use crate::tree::{Node, Tree, VFile, FIRST_DYNAMIC_INO, ROOT_INO};
use crate::view::Views;

/// Kind of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file.
    File,
    /// Symbolic link (passed-through sysfs links).
    Symlink,
}

/// Attributes of an inode, as the kernel needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// File type.
    pub kind: Kind,
    /// Permission bits (no type bits), never looser than the host file's.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (an upper bound for generated files, see `advertised_size`).
    pub size: u64,
    /// Link count.
    pub nlink: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// Name.
    pub name: OsString,
    /// File type.
    pub kind: Kind,
}

/// One open file.
#[derive(Debug)]
enum Handle {
    /// Generated content: rendered on every read at offset 0 (so `lseek(0)` + `read`
    /// refreshes, like procfs), served from that rendering at other offsets; a first read at
    /// an offset > 0 renders too. Not rendered at open: `cat` would pay for it twice.
    Virtual {
        file: VFile,
        content: Mutex<Option<Vec<u8>>>,
    },
    /// A host sysfs file read through.
    Sys(std::fs::File),
}

/// How long the kernel may cache lookups and attributes of the fixed layout.
const FIXED_TTL: Duration = Duration::from_secs(3600);
/// Same for passed-through sysfs entries (cpus can go on/offline) and for the attributes of
/// generated files (their advertised size, see [`advertised_size`]).
const SYS_TTL: Duration = Duration::from_millis(500);

/// Largest chunk read from a passed-through sysfs file per request.
const SYS_READ_MAX: usize = 64 * 1024;

/// The first handle number: the clock in nanoseconds, so a successor's handles never collide
/// with the ones its predecessor gave out (those stay valid, see [`Lxcfs::read_inode`]).
fn first_handle() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2))
        .unwrap_or(1)
        .max(1)
}

/// The lxcfs filesystem.
pub struct Lxcfs {
    tree: Tree,
    views: Views,
    handles: DashMap<u64, Handle>,
    next_fh: AtomicU64,
    started: i64,
}

impl Lxcfs {
    /// The filesystem of the host `views` were made for, its files rendered by `views`.
    pub fn new(views: Views) -> Lxcfs {
        let psi = views.options().proc_root.join("pressure").is_dir();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Lxcfs {
            tree: Tree::new(psi),
            views,
            handles: DashMap::new(),
            next_fh: AtomicU64::new(first_handle()),
            started,
        }
    }

    /// The options the filesystem runs with.
    pub fn options(&self) -> &Options {
        self.views.options()
    }

    /// The views the files are rendered from (for tests and the benchmark's direct calls).
    pub fn views(&self) -> &Views {
        &self.views
    }

    /// What `ino` is. A passed-through sysfs inode this daemon has not handed out was handed
    /// out by its predecessor (live upgrade, crash): learn the cpu tree and look again.
    fn node(&self, ino: u64) -> Option<Node> {
        self.tree.node(ino).or_else(|| {
            (ino >= FIRST_DYNAMIC_INO && self.tree.learn_sys(&self.options().sys_cpu_root, ino))
                .then(|| self.tree.node(ino))
                .flatten()
        })
    }

    /// How long the kernel may cache the entry and attributes of `ino`.
    pub fn ttl(&self, ino: u64) -> Duration {
        match self.node(ino) {
            Some(Node::Sys(_)) | Some(Node::File(_)) => SYS_TTL,
            _ => FIXED_TTL,
        }
    }

    /// Look `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<Attr> {
        if let Some((ino, _)) = self.tree.fixed_lookup(parent, name) {
            return self.getattr(ino);
        }
        match self.node(parent) {
            Some(Node::Sys(dir)) => {
                if name.as_bytes().contains(&b'/') || name == ".." || name == "." {
                    return Err(FsError::new(libc::EINVAL, "bad name"));
                }
                let rel = dir.join(name);
                let meta = std::fs::symlink_metadata(self.options().sys_cpu_root.join(&rel))
                    .map_err(|e| FsError::io(format!("lookup {}", rel.display()), &e))?;
                let ino = self.tree.sys_ino(&rel);
                Ok(attr_from_meta(ino, &meta, 0o7777))
            }
            Some(_) => Err(FsError::not_found(name.to_string_lossy())),
            None => Err(FsError::new(libc::ENOENT, format!("stale inode {parent}"))),
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        match self.node(ino) {
            Some(Node::Dir) => Ok(Attr {
                ino,
                kind: Kind::Dir,
                perm: 0o555,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 2,
                mtime: self.started,
            }),
            Some(Node::File(f)) => {
                let host = f.host_path(&self.options().proc_root, &self.options().sys_cpu_root);
                let meta = std::fs::metadata(&host)
                    .map_err(|e| FsError::io(format!("stat {}", host.display()), &e))?;
                let mut a = attr_from_meta(ino, &meta, 0o555);
                a.size = advertised_size(&host);
                a.mtime = self.started;
                Ok(a)
            }
            Some(Node::Sys(rel)) => {
                let p = self.options().sys_cpu_root.join(&rel);
                let meta = std::fs::symlink_metadata(&p)
                    .map_err(|e| FsError::io(format!("stat {}", p.display()), &e))?;
                Ok(attr_from_meta(ino, &meta, 0o7777))
            }
            None => Err(FsError::new(libc::ENOENT, format!("stale inode {ino}"))),
        }
    }

    /// The entries of directory `ino`, without `.` and `..` (the adapter adds those).
    pub fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        if let Some(children) = self.tree.fixed_children(ino) {
            return Ok(children
                .into_iter()
                .map(|(n, i, node)| DirEntry {
                    ino: i,
                    name: n.into(),
                    kind: if matches!(node, Node::File(_)) {
                        Kind::File
                    } else {
                        Kind::Dir
                    },
                })
                .collect());
        }
        match self.node(ino) {
            Some(Node::Sys(dir)) => {
                let p = self.options().sys_cpu_root.join(&dir);
                let rd = std::fs::read_dir(&p)
                    .map_err(|e| FsError::io(format!("readdir {}", p.display()), &e))?;
                let mut out = Vec::new();
                for ent in rd {
                    let ent =
                        ent.map_err(|e| FsError::io(format!("readdir {}", p.display()), &e))?;
                    let name = ent.file_name();
                    let kind = match ent.file_type() {
                        Ok(t) if t.is_dir() => Kind::Dir,
                        Ok(t) if t.is_symlink() => Kind::Symlink,
                        _ => Kind::File,
                    };
                    let rel = dir.join(&name);
                    let ino = if dir.as_os_str().is_empty() && name == "online" {
                        Tree::file_ino(VFile::CpuOnline)
                    } else {
                        self.tree.sys_ino(&rel)
                    };
                    out.push(DirEntry { ino, name, kind });
                }
                Ok(out)
            }
            Some(_) => Err(FsError::new(libc::ENOTDIR, "not a directory")),
            None => Err(FsError::new(libc::ENOENT, format!("stale inode {ino}"))),
        }
    }

    /// The parent of directory `ino` (for `..`).
    pub fn parent_of(&self, ino: u64) -> u64 {
        if ino == ROOT_INO {
            ROOT_INO
        } else {
            self.tree.parent_of(ino)
        }
    }

    /// The target of a passed-through symlink.
    pub fn readlink(&self, ino: u64) -> FsResult<OsString> {
        match self.node(ino) {
            Some(Node::Sys(rel)) => {
                let p = self.options().sys_cpu_root.join(&rel);
                std::fs::read_link(&p)
                    .map(PathBuf::into_os_string)
                    .map_err(|e| FsError::io(format!("readlink {}", p.display()), &e))
            }
            _ => Err(FsError::new(libc::EINVAL, "not a symlink")),
        }
    }

    /// Whether `caller` may access `ino` as `mask` (`R_OK`, `W_OK`, `X_OK` bits) asks, by
    /// the permission rule (`permits`); writes are `EROFS`.
    pub fn access(&self, caller: Caller, ino: u64, mask: u32) -> FsResult<()> {
        if mask & libc::W_OK as u32 != 0 {
            return Err(FsError::new(libc::EROFS, "lxcfs is mounted read-only"));
        }
        let a = self.getattr(ino)?;
        if !permits(caller, &a, mask) {
            return Err(FsError::new(
                libc::EACCES,
                format!("uid {} may not access inode {ino} as {mask:o}", caller.uid),
            ));
        }
        Ok(())
    }

    /// Open `ino` for reading; returns a handle. Writes are refused with `EACCES`. A
    /// generated file is refused to readers its host file refuses: the mount uses
    /// `default_permissions`, so the kernel checks first, but if it is mounted without,
    /// this still holds.
    pub fn open(&self, caller: Caller, ino: u64, flags: i32) -> FsResult<u64> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            return Err(FsError::new(libc::EACCES, "lxcfs files are read-only"));
        }
        // Root may read anything: its opens cost no stat of the host file.
        if let Some(Node::File(f)) = self.node(ino).filter(|_| caller.uid != 0) {
            let host = f.host_path(&self.options().proc_root, &self.options().sys_cpu_root);
            let meta = std::fs::metadata(&host)
                .map_err(|e| FsError::io(format!("stat {}", host.display()), &e))?;
            if !permits(
                caller,
                &attr_from_meta(ino, &meta, 0o555),
                libc::R_OK as u32,
            ) {
                return Err(FsError::new(
                    libc::EACCES,
                    format!("uid {} may not read {}", caller.uid, host.display()),
                ));
            }
        }
        let handle = self.handle_for(ino)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.insert(fh, handle);
        Ok(fh)
    }

    fn handle_for(&self, ino: u64) -> FsResult<Handle> {
        Ok(match self.node(ino) {
            Some(Node::File(file)) => Handle::Virtual {
                file,
                content: Mutex::new(None),
            },
            Some(Node::Sys(rel)) => {
                let p = self.options().sys_cpu_root.join(&rel);
                let file = std::fs::File::open(&p)
                    .map_err(|e| FsError::io(format!("open {}", p.display()), &e))?;
                Handle::Sys(file)
            }
            Some(Node::Dir) => return Err(FsError::new(libc::EISDIR, "is a directory")),
            None => return Err(FsError::new(libc::ENOENT, format!("stale inode {ino}"))),
        })
    }

    /// [`Lxcfs::read`], for a FUSE read that names the inode too: a handle this daemon never
    /// gave out was opened through its predecessor (live upgrade, crash), so it is made
    /// again from the inode (the open's permission check was the predecessor's).
    pub fn read_inode(
        &self,
        caller: Caller,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> FsResult<Vec<u8>> {
        match self.read(caller, fh, offset, size) {
            Err(e) if e.errno == libc::EBADF => {
                let h = self.handle_for(ino)?;
                self.handles.entry(fh).or_insert(h);
                self.read(caller, fh, offset, size)
            }
            r => r,
        }
    }

    /// Read up to `size` bytes at `offset` of an open file. Past the end: 0 bytes.
    pub fn read(&self, caller: Caller, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let h = self
            .handles
            .get(&fh)
            .ok_or_else(|| FsError::new(libc::EBADF, format!("unknown handle {fh}")))?;
        match &*h {
            Handle::Virtual { file, content } => {
                let mut c = content.lock().unwrap_or_else(|e| e.into_inner());
                let bytes = match &mut *c {
                    Some(bytes) if offset > 0 => bytes,
                    slot => slot.insert(self.views.render(*file, caller)?),
                };
                Ok(slice_at(bytes, offset, size))
            }
            Handle::Sys(file) => {
                // Short reads are fine; sysfs attributes are at most a page anyway.
                let mut buf = vec![0u8; (size as usize).min(SYS_READ_MAX)];
                let n = file
                    .read_at(&mut buf, offset)
                    .map_err(|e| FsError::io("read sysfs", &e))?;
                buf.truncate(n);
                Ok(buf)
            }
        }
    }

    /// Forget an open file.
    pub fn release(&self, fh: u64) {
        self.handles.remove(&fh);
    }

    /// Number of open handles (tests check nothing leaks).
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }
}

/// The permission rule, the kernel's for `default_permissions` (one place for both `open`
/// and `access`): root may do anything; anyone else gets the owner's, the group's or the
/// others' bits of the file's attributes — which are never looser than the host file's —
/// and must hold every bit of `mask` (`R_OK`, `W_OK`, `X_OK`).
fn permits(caller: Caller, a: &Attr, mask: u32) -> bool {
    if caller.uid == 0 {
        return true;
    }
    let shift = if caller.uid == a.uid {
        6
    } else if caller.gid == a.gid {
        3
    } else {
        0
    };
    let granted = (a.perm >> shift) & 0o7;
    mask & !granted & 0o7 == 0
}

/// The size `stat` reports for a generated file. `read()` ignores it (direct I/O), but
/// `sendfile()`/`splice()` (busybox `cat`) go through the page cache and stop at `st_size`: a
/// size of 0, as procfs reports, would make them read nothing. So report more than any
/// container's rendering can be (a container's file is never much longer than the host's);
/// the kernel trims the size to the real length after the first short read, and the short
/// attribute timeout restores it for the next reader (lxcfs reports the host's length).
fn advertised_size(host: &std::path::Path) -> u64 {
    let len = std::fs::read(host).map_or(0, |b| b.len() as u64);
    len + len / 2 + 4096
}

fn slice_at(content: &[u8], offset: u64, size: u32) -> Vec<u8> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(content.len());
    let end = start.saturating_add(size as usize).min(content.len());
    content[start..end].to_vec()
}

/// Attributes from host metadata with write bits removed (the mount is read-only) and the
/// permission bits limited by `mask`.
fn attr_from_meta(ino: u64, meta: &std::fs::Metadata, mask: u32) -> Attr {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::File
    };
    let perm = if kind == Kind::Symlink {
        0o777
    } else {
        meta.mode() & 0o7777 & mask & !0o222
    };
    Attr {
        ino,
        kind,
        perm,
        uid: meta.uid(),
        gid: meta.gid(),
        size: if kind == Kind::File { meta.size() } else { 0 },
        nlink: meta.nlink().try_into().unwrap_or(1),
        mtime: meta.mtime(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::Host;
    use crate::switch::Virtualisation;

    fn container() -> (Host, Lxcfs, Caller) {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("memory", "c");
        h.fx.write(
            &cg,
            "memory.stat",
            &h.fx.v1_memory_stat(256 << 20, 9223372036854771712),
        );
        h.fx.write(&cg, "memory.usage_in_bytes", "1048576\n");
        let caller = h.host_caller("c");
        let views = Views::new(
            &h.opts(),
            std::sync::Arc::new(Virtualisation::private()),
            None,
        )
        .unwrap();
        (h, Lxcfs::new(views), caller)
    }

    #[test]
    fn a_handle_opened_by_a_predecessor_still_reads() {
        let (_h, fs, caller) = container();
        let ino = ino_of(&fs, "proc/meminfo");
        let fh = fs.open(caller, ino, libc::O_RDONLY).unwrap();
        let mine = fs.read(caller, fh, 0, 1 << 20).unwrap();
        // A successor never gave this number out; the kernel still sends it with the inode.
        let (_h2, successor, caller2) = container();
        assert_eq!(
            successor.read(caller2, fh, 0, 100).unwrap_err().errno,
            libc::EBADF
        );
        let again = successor.read_inode(caller2, ino, fh, 0, 1 << 20).unwrap();
        assert_eq!(again, mine);
        assert_eq!(successor.open_handles(), 1);
        successor.release(fh);
        assert_eq!(successor.open_handles(), 0);
    }

    fn ino_of(fs: &Lxcfs, path: &str) -> u64 {
        path.split('/').fold(ROOT_INO, |dir, name| {
            fs.lookup(dir, OsStr::new(name)).unwrap().ino
        })
    }

    #[test]
    fn reads_at_any_offset_behave_like_a_regular_file() {
        let (_h, fs, caller) = container();
        let ino = ino_of(&fs, "proc/meminfo");
        let fh = fs.open(caller, ino, libc::O_RDONLY).unwrap();
        let whole = fs.read(caller, fh, 0, 1 << 20).unwrap();
        assert!(String::from_utf8_lossy(&whole).starts_with("MemTotal:         262144 kB\n"));
        assert_eq!(fs.read(caller, fh, 7, 5).unwrap(), whole[7..12]);
        assert_eq!(fs.read(caller, fh, whole.len() as u64, 10).unwrap(), b"");
        assert_eq!(
            fs.read(caller, fh, u64::MAX, 10).unwrap(),
            b"",
            "past the end is EOF, not EINVAL"
        );
        // A fresh handle whose first read is not at 0 still gets content.
        let fh2 = fs.open(caller, ino, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(caller, fh2, 100, 20).unwrap(), whole[100..120]);
        // Byte by byte reassembles the file.
        let fh3 = fs.open(caller, ino, libc::O_RDONLY).unwrap();
        let mut bytes = Vec::new();
        while let Some(b) = fs
            .read(caller, fh3, bytes.len() as u64, 1)
            .unwrap()
            .first()
            .copied()
        {
            bytes.push(b);
        }
        assert_eq!(bytes, whole);
        for fh in [fh, fh2, fh3] {
            fs.release(fh);
        }
        assert_eq!(fs.open_handles(), 0);
    }

    #[test]
    fn writes_are_refused() {
        let (_h, fs, caller) = container();
        let ino = ino_of(&fs, "proc/meminfo");
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
            assert_eq!(fs.open(caller, ino, flags).unwrap_err().errno, libc::EACCES);
        }
        let dir = ino_of(&fs, "proc");
        assert_eq!(
            fs.open(caller, dir, libc::O_RDONLY).unwrap_err().errno,
            libc::EISDIR
        );
    }

    #[test]
    fn permissions_never_looser_than_the_host() {
        let (h, fs, _) = container();
        let slab = h.fx.proc_root().join("slabinfo");
        std::fs::set_permissions(&slab, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .unwrap();
        let ino = ino_of(&fs, "proc/slabinfo");
        assert_eq!(fs.getattr(ino).unwrap().perm, 0o400);
        let nobody = Caller {
            pid: 777,
            uid: 65534,
            gid: 65534,
        };
        assert_eq!(
            fs.open(nobody, ino, libc::O_RDONLY).unwrap_err().errno,
            libc::EACCES
        );
        let mem = ino_of(&fs, "proc/meminfo");
        assert_eq!(fs.getattr(mem).unwrap().perm & 0o222, 0, "no write bits");
        assert!(fs.open(nobody, mem, libc::O_RDONLY).is_ok());
        // access(2) follows the same rule, and nothing is writable, not even for root.
        let (r, w) = (libc::R_OK as u32, libc::W_OK as u32);
        let root = Caller {
            uid: 0,
            gid: 0,
            ..nobody
        };
        let group = Caller { uid: 1, ..root };
        assert_eq!(fs.access(nobody, ino, r).unwrap_err().errno, libc::EACCES);
        assert!(fs.access(root, ino, r).is_ok());
        std::fs::set_permissions(&slab, std::os::unix::fs::PermissionsExt::from_mode(0o440))
            .unwrap();
        assert!(fs.access(group, ino, r).is_ok(), "the group's bits");
        assert!(fs.open(group, ino, libc::O_RDONLY).is_ok());
        assert!(fs.access(nobody, mem, r).is_ok());
        assert_eq!(fs.access(root, mem, w).unwrap_err().errno, libc::EROFS);
    }

    #[test]
    fn layout_and_sys_passthrough() {
        let (h, fs, caller) = container();
        h.fx.write_file("sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
        let names: Vec<_> = fs
            .readdir(ino_of(&fs, "proc"))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.iter().any(|n| n == "pressure"));
        let cpu = ino_of(&fs, "sys/devices/system/cpu");
        let entries = fs.readdir(cpu).unwrap();
        assert_eq!(
            entries.iter().filter(|e| e.name == "online").count(),
            1,
            "online listed once"
        );
        let core = ino_of(&fs, "sys/devices/system/cpu/cpu0/topology/core_id");
        let fh = fs.open(caller, core, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(caller, fh, 0, 100).unwrap(), b"0\n");
        assert_eq!(
            fs.parent_of(ino_of(&fs, "sys/devices/system/cpu/cpu0")),
            cpu
        );
        assert_eq!(
            fs.lookup(cpu, OsStr::new("nope")).unwrap_err().errno,
            libc::ENOENT
        );
        assert_eq!(
            fs.lookup(cpu, OsStr::new("..")).unwrap_err().errno,
            libc::EINVAL
        );
    }

    #[test]
    fn switched_off_every_file_is_the_hosts_copy() {
        let (h, fs, caller) = container();
        let ino = ino_of(&fs, "proc/meminfo");
        let fh = fs.open(caller, ino, libc::O_RDONLY).unwrap();
        let virtualised = fs.read(caller, fh, 0, 1 << 20).unwrap();
        let host = std::fs::read(h.fx.proc_root().join("meminfo")).unwrap();
        assert_ne!(virtualised, host);
        fs.views().switch().set(false);
        assert_eq!(fs.read(caller, fh, 0, 1 << 20).unwrap(), host);
        fs.views().switch().set(true);
        assert_eq!(fs.read(caller, fh, 0, 1 << 20).unwrap(), virtualised);
        fs.release(fh);
    }

    #[test]
    fn a_reader_that_is_gone_gets_esrch_and_the_fs_keeps_serving() {
        let (_h, fs, caller) = container();
        let ino = ino_of(&fs, "proc/meminfo");
        let ghost = Caller {
            pid: 999_999,
            ..caller
        };
        let fh = fs.open(ghost, ino, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(ghost, fh, 0, 4096).unwrap_err().errno, libc::ESRCH);
        assert!(!fs.read(caller, fh, 0, 4096).unwrap().is_empty());
    }
}
