//! Cgroup files held open between reads, for a daemon that reads the same few files of the same
//! cgroups on every request (lxcfs renders `/proc/meminfo` from `memory.stat` and
//! `memory.usage_in_bytes` on every read with `--cache-ms 0`: their `open` and `close` were a
//! fifth of the daemon's CPU time). A [`Kept`] set holds one container's files; while a thread
//! runs [`with`] a set, `parse::read_to_string` reads a cgroupfs file through the
//! set's descriptor of it, with `pread` from offset 0 (a kernfs seq_file regenerates its text
//! on a read at 0, under its own lock, so threads may share the descriptor).
//!
//! The set lives as long as its owner keeps it — lxcfs keeps it with the container's cached
//! init, so the descriptors go when the container does and the daemon's descriptor count comes
//! back down (no thread-local cache that only its thread could empty).
//!
//! A descriptor follows its node, a path does not: a cgroup renamed away and another made under
//! its old name must not be read through the old descriptor. So each directory is held as an
//! `O_PATH` descriptor, its files are opened beneath it, and the path is checked to still name
//! that directory (same inode; kernfs never reuses one) once per [`with`] — once per rendering.
//! A removed cgroup's files read `ENODEV`: the directory is dropped and the read falls back to
//! the path, whose error is the one reported.
//!
//! Only files on cgroupfs are kept (a fixture tree's regular file may be replaced by a
//! rename), and not `cgroup.procs`, `tasks` or `cgroup.threads`, whose text is one record per
//! process. Every other cgroup file is a single record, so a read that returns less than it
//! asked for has reached the end: one `pread` per file instead of two.
//!
//! At most [`MAX_DIRS`] directories a set (least recently used out first) and, in the whole
//! process, [`MAX_TOTAL`] descriptors or a quarter of its open-file limit, whichever is less:
//! beyond, files are opened for each read as before. Held descriptors pin their mount: a plain
//! `umount` of a cgroup hierarchy is refused (`EBUSY`) while a container using it is served.

use std::cell::RefCell;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Directories kept per set (a rendering reads a cgroup, and for some limits its ancestors,
/// in up to four hierarchies).
pub const MAX_DIRS: usize = 32;
/// Descriptors (directories and files) kept by all sets together, at most.
pub const MAX_TOTAL: usize = 4096;
/// Files whose text is one record per process: a short read is not their end.
const MULTI_RECORD: [&str; 3] = ["cgroup.procs", "tasks", "cgroup.threads"];
/// `CGROUP_SUPER_MAGIC` (v1) and `CGROUP2_SUPER_MAGIC`.
const CGROUPFS: [i64; 2] = [0x0027_e0eb, 0x6367_7270];

static TOTAL: AtomicUsize = AtomicUsize::new(0);
static EPOCH: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The set this thread reads through, and the epoch of its current [`with`].
    static CURRENT: RefCell<Option<(Arc<Kept>, u64)>> = const { RefCell::new(None) };
}

/// Descriptors kept by all sets (for tests and accounting).
pub fn total() -> usize {
    TOTAL.load(Ordering::Relaxed)
}

/// The process-wide cap: a quarter of the open-file limit when first needed (the daemon has
/// raised it by then), at most [`MAX_TOTAL`].
fn cap() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        usize::try_from(limit / 4)
            .unwrap_or(MAX_TOTAL)
            .min(MAX_TOTAL)
    })
}

/// One owner's kept cgroup files (a container's, in lxcfs).
#[derive(Default)]
pub struct Kept {
    dirs: Mutex<Dirs>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.dirs.lock().map(|d| d.list.len()).unwrap_or(0);
        write!(f, "Kept({n} directories)")
    }
}

#[derive(Default)]
struct Dirs {
    list: Vec<Dir>,
    tick: u64,
    /// The hierarchies' mount points the directories are checked from (a few; never
    /// dropped before the set).
    roots: Vec<Root>,
}

/// A hierarchy's mount point, held `O_PATH`: a directory's path is checked by a walk from
/// here (its components below the mount only: a walk from `/` through `sys`, `fs`, `cgroup`
/// and the hierarchy took more than half as long again, and every reader shares those
/// dentries).
struct Root {
    path: PathBuf,
    dev: u64,
    fd: OwnedFd,
}

impl Drop for Root {
    fn drop(&mut self) {
        TOTAL.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Dir {
    path: PathBuf,
    ino: u64,
    dev: u64,
    fd: OwnedFd,
    /// The mount point it is checked from (an index into `Dirs::roots`), and its path from
    /// there (`.` for the mount point itself, which no rename can move).
    root: usize,
    rel: CString,
    files: Vec<(OsString, Arc<File>)>,
    /// The epoch in which the path was last seen to name this directory.
    checked: u64,
    used: u64,
}

impl Drop for Dir {
    fn drop(&mut self) {
        TOTAL.fetch_sub(1 + self.files.len(), Ordering::Relaxed);
    }
}

/// Run `f` with cgroup files read through `kept` in this thread; each directory's path is
/// checked (once) to still name the directory it holds.
pub fn with<R>(kept: &Arc<Kept>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<(Arc<Kept>, u64)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            let _ = CURRENT.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    *c = prev;
                }
            });
        }
    }
    let epoch = EPOCH.fetch_add(1, Ordering::Relaxed);
    let prev = CURRENT.with(|c| c.replace(Some((Arc::clone(kept), epoch))));
    let _restore = Restore(prev);
    f()
}

/// Take a slot for one more descriptor, if the process is under its cap.
fn take_slot() -> bool {
    let cap = cap();
    TOTAL
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < cap).then_some(n + 1)
        })
        .is_ok()
}

/// What `read_file` makes of the current set's descriptor of `path` (a single-record file:
/// the reader may stop at a short read); `None` when it is not kept (no set, not cgroupfs, a
/// per-process file, out of slots) or the read failed: the caller then reads the path afresh
/// and reports its error.
pub(crate) fn read<R>(
    path: &Path,
    read_file: impl FnOnce(&File) -> std::io::Result<R>,
) -> Option<R> {
    let (kept, epoch) = CURRENT.with(|c| c.borrow().clone())?;
    let name = path.file_name()?;
    let dir = path.parent()?;
    if MULTI_RECORD.iter().any(|m| OsStr::new(m) == name) {
        return None;
    }
    let (file, ino) = kept.file(dir, name, epoch)?;
    match read_file(&file) {
        Ok(r) => Some(r),
        Err(e) => {
            kept.forget(dir, ino, name, e.raw_os_error() == Some(libc::ENODEV));
            None
        }
    }
}

impl Kept {
    /// An empty set.
    pub fn new() -> Kept {
        Kept::default()
    }

    /// Number of directories held.
    pub fn dirs(&self) -> usize {
        self.dirs.lock().map(|d| d.list.len()).unwrap_or(0)
    }

    /// The descriptor of `dir/name` (and the directory's inode), opened if need be.
    fn file(&self, dir: &Path, name: &OsStr, epoch: u64) -> Option<(Arc<File>, u64)> {
        let mut dirs = self.dirs.lock().ok()?;
        dirs.tick += 1;
        let tick = dirs.tick;
        let d = match dirs.list.iter().position(|d| d.path == dir) {
            Some(i) if dirs.still_named(i, epoch) => i,
            Some(i) => {
                dirs.list.swap_remove(i);
                dirs.open_dir(dir, epoch)?
            }
            None => dirs.open_dir(dir, epoch)?,
        };
        let entry = &mut dirs.list[d];
        entry.used = tick;
        let f = match entry.files.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                let f = open_beneath(&entry.fd, name)?;
                entry.files.push((name.to_os_string(), Arc::new(f)));
                entry.files.len() - 1
            }
        };
        Some((Arc::clone(&entry.files[f].1), entry.ino))
    }

    /// A read through `dir/name` failed: drop the directory (`gone`: the cgroup or its
    /// controller's files went away) or the file.
    fn forget(&self, dir: &Path, ino: u64, name: &OsStr, gone: bool) {
        let Ok(mut dirs) = self.dirs.lock() else {
            return;
        };
        let Some(i) = dirs.list.iter().position(|d| d.path == dir && d.ino == ino) else {
            return;
        };
        if gone {
            dirs.list.swap_remove(i);
        } else if let Some(f) = dirs.list[i].files.iter().position(|(n, _)| n == name) {
            dirs.list[i].files.swap_remove(f);
            TOTAL.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Dirs {
    /// Does directory `i`'s path still name it? Checked once per epoch.
    fn still_named(&mut self, i: usize, epoch: u64) -> bool {
        let d = &self.list[i];
        if d.checked == epoch {
            return true;
        }
        let named = d.rel.as_bytes() == b"."
            || self.roots.get(d.root).is_some_and(|r| {
                // SAFETY: all-zero is a valid `stat`.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: `r.fd` is an open directory, `d.rel` NUL-terminated, `st` writable.
                let rc = unsafe {
                    libc::fstatat(
                        r.fd.as_raw_fd(),
                        d.rel.as_ptr(),
                        &mut st,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                rc == 0 && st.st_ino == d.ino && st.st_dev == d.dev
            });
        if named {
            self.list[i].checked = epoch;
        }
        named
    }

    /// The index of the mount point `dir` (on device `dev`) is below, held if it was not.
    fn root_of(&mut self, dir: &Path, dev: u64) -> Option<usize> {
        let mut root = dir;
        while let Some(parent) = root.parent() {
            match std::fs::symlink_metadata(parent) {
                Ok(m) if m.dev() == dev => root = parent,
                _ => break,
            }
        }
        if let Some(i) = self
            .roots
            .iter()
            .position(|r| r.path == root && r.dev == dev)
        {
            return Some(i);
        }
        if !take_slot() {
            return None;
        }
        let Some((fd, _, root_dev)) = open_dir(root) else {
            TOTAL.fetch_sub(1, Ordering::Relaxed);
            return None;
        };
        self.roots.push(Root {
            path: root.to_path_buf(),
            dev: root_dev,
            fd,
        });
        (root_dev == dev).then_some(self.roots.len() - 1)
    }

    /// Open and remember `dir` (evicting the least recently used directory when full); its
    /// index, or `None` if it is not kept.
    fn open_dir(&mut self, dir: &Path, epoch: u64) -> Option<usize> {
        if self.list.len() >= MAX_DIRS {
            let lru = (0..self.list.len()).min_by_key(|&i| self.list[i].used)?;
            self.list.swap_remove(lru);
        }
        if !take_slot() {
            return None;
        }
        let Some((fd, ino, dev)) = open_dir(dir) else {
            TOTAL.fetch_sub(1, Ordering::Relaxed);
            return None;
        };
        let placed = self.root_of(dir, dev).and_then(|root| {
            let rel = dir.strip_prefix(&self.roots[root].path).ok()?;
            let rel = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            Some((root, CString::new(rel.as_os_str().as_bytes()).ok()?))
        });
        let Some((root, rel)) = placed else {
            drop(fd);
            TOTAL.fetch_sub(1, Ordering::Relaxed);
            return None;
        };
        self.list.push(Dir {
            path: dir.to_path_buf(),
            ino,
            dev,
            fd,
            root,
            rel,
            files: Vec::new(),
            checked: epoch,
            used: self.tick,
        });
        Some(self.list.len() - 1)
    }
}

/// `dir` opened `O_PATH`, with its inode and device, if it is a cgroupfs directory.
fn open_dir(dir: &Path) -> Option<(OwnedFd, u64, u64)> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path; the result is checked before use.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid value of these plain C structs; `fd` is open.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `sfs` is writable.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut sfs) } != 0
        || !CGROUPFS.contains(&(sfs.f_type as i64))
    {
        return None;
    }
    // SAFETY: all-zero is a valid `stat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    Some((fd, st.st_ino, st.st_dev))
}

/// File `name` of the directory `dir` (no symlink followed), if a slot is free.
fn open_beneath(dir: &OwnedFd, name: &OsStr) -> Option<File> {
    let c = CString::new(name.as_bytes()).ok()?;
    if !take_slot() {
        return None;
    }
    // SAFETY: `dir` is an open directory descriptor and `c` a NUL-terminated name.
    let raw = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if raw < 0 {
        TOTAL.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    // SAFETY: `raw` is a descriptor we just opened and own.
    Some(unsafe { File::from_raw_fd(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kept reads against this host's own v1 cgroup: fresh text, a rename and a new cgroup
    /// under the old name, a removed cgroup, and the descriptors gone with the set. Skipped
    /// where no writable cgroupfs is mounted.
    #[test]
    fn kept_files_follow_the_path_not_the_descriptor() {
        let _serial = serial();
        let Some(parent) = own_cgroup_dir() else {
            eprintln!("no writable cgroupfs here: skipped");
            return;
        };
        let uniq = format!("kept-{}", std::process::id());
        let a = parent.join(&uniq);
        let b = parent.join(format!("{uniq}-renamed"));
        let renamed_twice = parent.join(format!("{uniq}-again"));
        let _guard = Rmdirs(vec![a.clone(), b.clone(), renamed_twice.clone()]);
        std::fs::create_dir(&a).unwrap();
        let file = "notify_on_release";
        let kept = Arc::new(Kept::new());
        let pread = |f: &File| {
            let mut b = vec![0u8; 4096];
            let n = std::os::unix::fs::FileExt::read_at(f, &mut b, 0)?;
            b.truncate(n);
            Ok(b)
        };
        let text = |p: &Path| with(&kept, || read(p, pread));

        assert!(read(&a.join(file), pread).is_none(), "no set, nothing kept");
        let before = total();
        assert_eq!(text(&a.join(file)).unwrap(), b"0\n");
        assert_eq!(
            total(),
            before + 3,
            "the mount point, the directory and its file"
        );
        std::fs::write(a.join(file), "1").unwrap();
        assert_eq!(text(&a.join(file)).unwrap(), b"1\n", "regenerated");

        // Renamed away, and a new cgroup under the old name: the path's, not the old node's.
        std::fs::rename(&a, &b).unwrap();
        std::fs::create_dir(&a).unwrap();
        assert_eq!(text(&a.join(file)).unwrap(), b"0\n", "the new cgroup's");
        assert_eq!(text(&b.join(file)).unwrap(), b"1\n", "the renamed one's");
        assert_eq!(kept.dirs(), 2);
        // Renamed away and back: the same directory under the same name again.
        std::fs::rename(&b, &renamed_twice).unwrap();
        assert!(
            text(&b.join(file)).is_none(),
            "gone from the path: falls back"
        );
        std::fs::rename(&renamed_twice, &b).unwrap();
        assert_eq!(text(&b.join(file)).unwrap(), b"1\n");

        // Removed: not read through the old descriptor (the caller reads the path: ENOENT).
        std::fs::remove_dir(&a).unwrap();
        assert!(text(&a.join(file)).is_none(), "a removed cgroup falls back");
        assert_eq!(kept.dirs(), 1);
        // Files of one record per process are never kept.
        assert!(text(&b.join("cgroup.procs")).is_none());
        // The descriptors go with the set.
        drop(kept);
        assert_eq!(total(), before);
    }

    /// A container moving its init through more cgroups than a set keeps (root in a
    /// delegated subtree can make as many as it likes): the set stays at [`MAX_DIRS`]
    /// directories, and every descriptor goes with it.
    #[test]
    fn a_set_keeps_at_most_max_dirs_however_many_cgroups_are_read() {
        let _serial = serial();
        let Some(parent) = own_cgroup_dir() else {
            eprintln!("no writable cgroupfs here: skipped");
            return;
        };
        let dirs: Vec<PathBuf> = (0..MAX_DIRS + 8)
            .map(|i| parent.join(format!("kept-many-{}-{i}", std::process::id())))
            .collect();
        let _guard = Rmdirs(dirs.clone());
        let kept = Arc::new(Kept::new());
        let before = total();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
            let read = with(&kept, || {
                read(&d.join("notify_on_release"), |f| {
                    let mut b = [0u8; 8];
                    std::os::unix::fs::FileExt::read_at(f, &mut b, 0)
                })
            });
            assert!(read.is_some(), "{}", d.display());
            assert!(kept.dirs() <= MAX_DIRS);
        }
        assert_eq!(kept.dirs(), MAX_DIRS);
        drop(kept);
        assert_eq!(total(), before, "every descriptor closed with the set");
    }

    /// The tests count the process-wide descriptors: one at a time.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    struct Rmdirs(Vec<PathBuf>);
    impl Drop for Rmdirs {
        fn drop(&mut self) {
            for d in &self.0 {
                let _ = std::fs::remove_dir(d);
            }
        }
    }

    /// This process's cgroup in a v1 hierarchy we may create cgroups in.
    fn own_cgroup_dir() -> Option<PathBuf> {
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        ["memory", "pids", "cpu,cpuacct", "devices"]
            .iter()
            .find_map(|ctrl| {
                let line = text.lines().find(|l| l.split(':').nth(1) == Some(ctrl))?;
                let rel = line.splitn(3, ':').nth(2)?;
                let dir = Path::new("/sys/fs/cgroup")
                    .join(ctrl)
                    .join(rel.trim_start_matches('/'));
                let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
                // SAFETY: `access` with a NUL-terminated path.
                (unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0).then_some(dir)
            })
    }
}
