//! The host's copy of a file: the fallback when a controller is missing, and the source of
//! every line a renderer does not virtualise.
//!
//! Every rendering reads one or two host files (`/proc/meminfo`, `/proc/stat`, …). Each
//! serving thread keeps its own descriptor of each such procfs/sysfs file open and reads it
//! with `pread` from offset 0: a seq_file regenerates its text on a read at offset 0, so the
//! content is as fresh as a new open's, without the path walk, `open` and `close` of every
//! rendering. Per thread, so no two reads ever share a descriptor's seq_file position. Only
//! procfs and sysfs files are kept (a regular file may be replaced by a rename, and the old
//! descriptor would read the old file); a read that fails drops the descriptor and falls back
//! to a fresh open, whose error is the one reported.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::Ctx;
use crate::error::{FsError, FsResult};
use crate::tree::VFile;

/// At most this many descriptors per thread (the host files are about a dozen).
const MAX_OPEN: usize = 32;
/// The host files whose text is one record per CPU, disk, swap area or cache: a read shorter
/// than asked for is not their end. Every other host file is one record (`single_open`, a
/// sysfs attribute), read in one `pread`.
const MULTI_RECORD: [&str; 4] = ["cpuinfo", "diskstats", "swaps", "slabinfo"];

/// A path, and its descriptor when it is a procfs/sysfs file (`None`: read it afresh).
type Entry = (PathBuf, Option<File>);

thread_local! {
    static OPEN: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// The host's version of `file`.
pub fn read(ctx: &Ctx, file: VFile) -> FsResult<String> {
    read_path(&file.host_path(&ctx.opts.proc_root, &ctx.opts.sys_cpu_root))
}

/// Read a host file as text.
pub fn read_path(path: &Path) -> FsResult<String> {
    if let Some(text) = read_kept(path) {
        return Ok(text);
    }
    cgroups::parse::read_to_string(path).map_err(FsError::from)
}

/// Whether `f` is on procfs or sysfs (whose files regenerate on a read at offset 0).
pub(crate) fn is_pseudo(f: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero statfs is a valid value of that plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `f` is an open descriptor and `st` a valid, writable statfs.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type, libc::PROC_SUPER_MAGIC | libc::SYSFS_MAGIC)
}

/// The file's text through this thread's kept descriptor; `None` when it is not kept (not a
/// procfs/sysfs file, too many kept, it could not be opened or read, or not UTF-8): the
/// caller then reads it afresh.
fn read_kept(path: &Path) -> Option<String> {
    OPEN.with(|open| {
        let mut open = open.try_borrow_mut().ok()?;
        let i = match open.iter().position(|(p, _)| p == path) {
            Some(i) => i,
            None => {
                if open.len() >= MAX_OPEN {
                    return None;
                }
                let f = File::open(path).ok()?;
                let keep = is_pseudo(&f).then_some(f);
                open.push((path.to_path_buf(), keep));
                open.len() - 1
            }
        };
        let f = open[i].1.as_ref()?;
        let single = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !MULTI_RECORD.contains(&n));
        match pread_all(f, single) {
            Some(text) => Some(text),
            None => {
                open.swap_remove(i);
                None
            }
        }
    })
}

/// The whole file from offset 0, in one `pread` when it fits this thread's buffer.
fn pread_all(f: &File, single: bool) -> Option<String> {
    pread_with(f, single, |b| {
        std::str::from_utf8(b).ok().map(str::to_owned)
    })
    .flatten()
}

/// `g` of the whole file read from offset 0 into this thread's buffer; `None` if a read
/// failed (`single`: see `cgroups::parse::pread_whole`).
pub(crate) fn pread_with<R>(f: &File, single: bool, g: impl FnOnce(&[u8]) -> R) -> Option<R> {
    cgroups::parse::pread_whole(f, single, g).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept descriptor reads what the file says now, not what it said when it was opened.
    #[test]
    fn kept_procfs_reads_are_fresh() {
        let p = Path::new("/proc/uptime");
        let a = read_path(p).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = read_path(p).unwrap();
        assert_ne!(a, b, "uptime (1/100 s) advanced: the text was regenerated");
        OPEN.with(|o| assert!(o.borrow().iter().any(|(q, f)| q == p && f.is_some())));
    }

    /// Regular files (the test fixtures) are read afresh, so a replaced file shows.
    #[test]
    fn regular_files_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meminfo");
        std::fs::write(&p, "a\n").unwrap();
        assert_eq!(read_path(&p).unwrap(), "a\n");
        let q = dir.path().join("new");
        std::fs::write(&q, "b\n").unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert_eq!(read_path(&p).unwrap(), "b\n");
    }
}
