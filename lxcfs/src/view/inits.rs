//! A container init's cgroups, read on every rendering (a moved init shows at once), parsed
//! once per distinct text: each serving thread remembers the last texts of
//! `/proc/<pid>/cgroup` it parsed and their [`ProcCgroups`] (`/init.scope` pruned, shared), and
//! reuses the parse when the text read now is byte-for-byte one of them (parsing was a tenth
//! of a meminfo rendering, and cloning the parse a score of allocations).
//!
//! The file is read from the descriptor the caller resolver's cache holds for a cached init
//! (it goes when the init does), else opened by path for this one read: a descriptor kept
//! here would outlive its container until the thread that opened it served again (and the
//! daemon's descriptor count must go back down when containers go).

use std::cell::RefCell;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use cgroups::ProcCgroups;

use crate::error::{FsError, FsResult};
use crate::render::host;

/// Texts remembered per thread; beyond, the oldest is dropped.
const MAX_KEPT: usize = 16;

thread_local! {
    static PARSED: RefCell<Vec<(Vec<u8>, Arc<ProcCgroups>)>> = const { RefCell::new(Vec::new()) };
}

/// The cgroups of process `pid`, as `ProcCgroups::read` gives them with `/init.scope` pruned
/// (ESRCH if it is gone), read from `held` (its `/proc/<pid>/cgroup`, open) if given.
pub(super) fn proc_cgroups(
    proc_root: &Path,
    pid: u32,
    held: Option<&File>,
) -> FsResult<Arc<ProcCgroups>> {
    let path = proc_root.join(pid.to_string()).join("cgroup");
    let gone = || FsError::new(libc::ESRCH, format!("process {pid} is gone"));
    let opened;
    let file = match held {
        Some(f) => f,
        None => {
            opened = File::open(&path).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ESRCH) => gone(),
                _ => FsError::io(format!("read {}", path.display()), &e),
            })?;
            &opened
        }
    };
    host::pread_with(file, true, |text| {
        PARSED.with(|memo| {
            let Ok(mut memo) = memo.try_borrow_mut() else {
                return parse(&path, text);
            };
            if let Some((_, parsed)) = memo.iter().find(|(t, _)| t.as_slice() == text) {
                return Ok(Arc::clone(parsed));
            }
            let parsed = parse(&path, text)?;
            if memo.len() >= MAX_KEPT {
                memo.remove(0);
            }
            memo.push((text.to_vec(), Arc::clone(&parsed)));
            Ok(parsed)
        })
    })
    .ok_or_else(gone)?
}

fn parse(path: &Path, text: &[u8]) -> FsResult<Arc<ProcCgroups>> {
    let text = std::str::from_utf8(text)
        .map_err(|_| FsError::new(libc::EIO, format!("{}: not UTF-8", path.display())))?;
    Ok(Arc::new(ProcCgroups::parse(path, text)?.prune_init_scope()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remembered parse is the parse of the text read now; a gone process is ESRCH.
    #[test]
    fn remembered_parses_are_of_the_current_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("7")).unwrap();
        let file = dir.path().join("7/cgroup");
        std::fs::write(&file, "4:memory:/a\n0::/a\n").unwrap();
        let a = proc_cgroups(dir.path(), 7, None).unwrap();
        assert_eq!(a.v1_path("memory"), Some("/a"));
        assert_eq!(proc_cgroups(dir.path(), 7, None).unwrap(), a, "remembered");
        std::fs::write(&file, "4:memory:/b\n0::/b\n").unwrap();
        let b = proc_cgroups(dir.path(), 7, None).unwrap();
        assert_eq!(
            b.v1_path("memory"),
            Some("/b"),
            "moved: the new text is parsed"
        );
        assert_eq!(
            *b,
            ProcCgroups::read(dir.path(), 7).unwrap().prune_init_scope()
        );
        assert_eq!(
            proc_cgroups(dir.path(), 8, None).unwrap_err().errno,
            libc::ESRCH
        );
    }
}
