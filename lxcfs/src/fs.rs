//! The filesystem, independent of any FUSE crate: inode table, attributes, directory
//! listings, open files and reads at any offset. The FUSE adapter (`fuse_adapter`) only
//! translates requests into calls on [`Lxcfs`] and answers with their results or errnos.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;

use crate::error::{FsError, FsResult};
use crate::options::Options;
use crate::render::Renderer;
use crate::tree::{Node, Tree, VFile, ROOT_INO};

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
    /// Size in bytes (0 for generated files, like procfs).
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

/// Who sent a request: the kernel-supplied pid (thread id, in the daemon's pid namespace),
/// uid and gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Thread id of the caller (0 if not visible from the daemon's pid namespace).
    pub pid: u32,
    /// fsuid of the caller.
    pub uid: u32,
    /// fsgid of the caller.
    pub gid: u32,
}

/// One open file.
#[derive(Debug)]
enum Handle {
    /// Generated content: rendered at open, re-rendered on every read at offset 0, served from
    /// the last rendering at other offsets (so `lseek(0)` + `read` refreshes, like procfs).
    Virtual { file: VFile, content: Mutex<Vec<u8>> },
    /// A host sysfs file read through.
    Sys(std::fs::File),
}

/// How long the kernel may cache lookups and attributes of the fixed layout.
const FIXED_TTL: Duration = Duration::from_secs(3600);
/// Same for passed-through sysfs entries (cpus can go on/offline).
const SYS_TTL: Duration = Duration::from_millis(500);

/// The lxcfs filesystem.
pub struct Lxcfs {
    opts: Options,
    tree: Tree,
    renderer: Renderer,
    handles: DashMap<u64, Handle>,
    next_fh: AtomicU64,
    started: i64,
}

impl Lxcfs {
    /// Set the filesystem up for the host it runs on.
    pub fn new(opts: Options) -> FsResult<Lxcfs> {
        let psi = opts.proc_root.join("pressure").is_dir();
        let renderer = Renderer::new(&opts)?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(Lxcfs { tree: Tree::new(psi), renderer, handles: DashMap::new(), next_fh: AtomicU64::new(1), started, opts })
    }

    /// The options the filesystem runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The renderer (for tests and the benchmark's direct calls).
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// How long the kernel may cache the entry and attributes of `ino`.
    pub fn ttl(&self, ino: u64) -> Duration {
        match self.tree.node(ino) {
            Some(Node::Sys(_)) => SYS_TTL,
            _ => FIXED_TTL,
        }
    }

    /// Look `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<Attr> {
        if let Some((ino, _)) = self.tree.fixed_lookup(parent, name) {
            return self.getattr(ino);
        }
        match self.tree.node(parent) {
            Some(Node::Sys(dir)) => {
                if name.as_bytes().contains(&b'/') || name == ".." || name == "." {
                    return Err(FsError::new(libc::EINVAL, "bad name"));
                }
                let rel = dir.join(name);
                let meta = std::fs::symlink_metadata(self.opts.sys_cpu_root.join(&rel))
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
        match self.tree.node(ino) {
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
                let host = f.host_path(&self.opts.proc_root, &self.opts.sys_cpu_root);
                let meta = std::fs::metadata(&host).map_err(|e| FsError::io(format!("stat {}", host.display()), &e))?;
                let mut a = attr_from_meta(ino, &meta, 0o555);
                a.size = 0;
                a.mtime = self.started;
                Ok(a)
            }
            Some(Node::Sys(rel)) => {
                let p = self.opts.sys_cpu_root.join(&rel);
                let meta = std::fs::symlink_metadata(&p).map_err(|e| FsError::io(format!("stat {}", p.display()), &e))?;
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
                    kind: if matches!(node, Node::File(_)) { Kind::File } else { Kind::Dir },
                })
                .collect());
        }
        match self.tree.node(ino) {
            Some(Node::Sys(dir)) => {
                let p = self.opts.sys_cpu_root.join(&dir);
                let rd = std::fs::read_dir(&p).map_err(|e| FsError::io(format!("readdir {}", p.display()), &e))?;
                let mut out = Vec::new();
                for ent in rd {
                    let ent = ent.map_err(|e| FsError::io(format!("readdir {}", p.display()), &e))?;
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
        match self.tree.node(ino) {
            Some(Node::Sys(rel)) => {
                let p = self.opts.sys_cpu_root.join(&rel);
                std::fs::read_link(&p)
                    .map(PathBuf::into_os_string)
                    .map_err(|e| FsError::io(format!("readlink {}", p.display()), &e))
            }
            _ => Err(FsError::new(libc::EINVAL, "not a symlink")),
        }
    }

    /// Open `ino` for reading; returns a handle. Writes are refused with `EACCES`.
    pub fn open(&self, caller: Caller, ino: u64, flags: i32) -> FsResult<u64> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            return Err(FsError::new(libc::EACCES, "lxcfs files are read-only"));
        }
        let handle = match self.tree.node(ino) {
            Some(Node::File(f)) => {
                let content = self.renderer.render(f, caller)?;
                Handle::Virtual { file: f, content: Mutex::new(content) }
            }
            Some(Node::Sys(rel)) => {
                let p = self.opts.sys_cpu_root.join(&rel);
                let file = std::fs::File::open(&p).map_err(|e| FsError::io(format!("open {}", p.display()), &e))?;
                Handle::Sys(file)
            }
            Some(Node::Dir) => return Err(FsError::new(libc::EISDIR, "is a directory")),
            None => return Err(FsError::new(libc::ENOENT, format!("stale inode {ino}"))),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.insert(fh, handle);
        Ok(fh)
    }

    /// Read up to `size` bytes at `offset` of an open file. Past the end: 0 bytes.
    pub fn read(&self, caller: Caller, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let h = self.handles.get(&fh).ok_or_else(|| FsError::new(libc::EBADF, format!("unknown handle {fh}")))?;
        match &*h {
            Handle::Virtual { file, content } => {
                if offset == 0 {
                    let fresh = self.renderer.render(*file, caller)?;
                    let mut c = content.lock().unwrap_or_else(|e| e.into_inner());
                    *c = fresh;
                    return Ok(slice_at(&c, 0, size));
                }
                let c = content.lock().unwrap_or_else(|e| e.into_inner());
                Ok(slice_at(&c, offset, size))
            }
            Handle::Sys(file) => {
                let mut buf = vec![0u8; size as usize];
                let n = file.read_at(&mut buf, offset).map_err(|e| FsError::io("read sysfs", &e))?;
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

    /// Stop background work (the loadavg sampler).
    pub fn shutdown(&self) {
        self.renderer.shutdown();
    }
}

fn slice_at(content: &[u8], offset: u64, size: u32) -> Vec<u8> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(content.len());
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
    let perm = if kind == Kind::Symlink { 0o777 } else { meta.mode() & 0o7777 & mask & !0o222 };
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
