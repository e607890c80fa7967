//! A container init's cgroups, read on every rendering (a moved init shows at once) through a
//! descriptor of its `/proc/<pid>/cgroup` that each serving thread keeps: a `pread` from
//! offset 0 regenerates the text, and when the text is what it was the last time, the parsed
//! [`ProcCgroups`] is reused — no path walk, open, close or parse per rendering.
//!
//! The descriptor is bound to the process, not to its number: once the init is reaped a read
//! fails (ESRCH) even if the number is reused, and the entry is dropped and read afresh by
//! number (the caller resolution has validated that number for this request). Only procfs
//! descriptors are kept (test fixtures are regular files, read afresh).

use std::cell::RefCell;
use std::fs::File;
use std::path::Path;

use cgroups::ProcCgroups;

use crate::error::{FsError, FsResult};
use crate::render::host;

/// Inits remembered per thread; beyond, the oldest is dropped.
const MAX_KEPT: usize = 32;

struct Kept {
    pid: u32,
    file: File,
    text: Vec<u8>,
    parsed: ProcCgroups,
}

thread_local! {
    static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// The cgroups of process `pid` (a container's init), as `ProcCgroups::read` gives them.
pub(super) fn proc_cgroups(proc_root: &Path, pid: u32) -> FsResult<ProcCgroups> {
    if let Some(cg) = KEPT.with(|k| {
        k.try_borrow_mut()
            .ok()
            .and_then(|mut k| reread(&mut k, pid))
    }) {
        return Ok(cg);
    }
    let path = proc_root.join(pid.to_string()).join("cgroup");
    let file = File::open(&path).map_err(|e| gone_or(pid, &path, &e))?;
    let text = host::pread_with(&file, <[u8]>::to_vec)
        .ok_or_else(|| FsError::new(libc::ESRCH, format!("process {pid} is gone")))?;
    let parsed = parse(&path, &text)?;
    if host::is_pseudo(&file) {
        KEPT.with(|k| {
            if let Ok(mut k) = k.try_borrow_mut() {
                if k.len() >= MAX_KEPT {
                    k.remove(0);
                }
                k.push(Kept {
                    pid,
                    file,
                    text,
                    parsed: parsed.clone(),
                });
            }
        });
    }
    Ok(parsed)
}

/// The kept entry's cgroups, re-read; `None` (and the entry dropped) if there is none or
/// its process is gone or its text does not parse.
fn reread(kept: &mut Vec<Kept>, pid: u32) -> Option<ProcCgroups> {
    let i = kept.iter().position(|k| k.pid == pid)?;
    let k = &mut kept[i];
    let fresh = host::pread_with(&k.file, |b| {
        if b.is_empty() {
            // A reaped task's file reads ESRCH; be as strict about an empty text.
            None
        } else if b == k.text.as_slice() {
            Some(None)
        } else {
            Some(Some(b.to_vec()))
        }
    })
    .flatten();
    match fresh {
        Some(None) => Some(k.parsed.clone()),
        Some(Some(text)) => match parse(Path::new("/proc/<init>/cgroup"), &text) {
            Ok(parsed) => {
                k.text = text;
                k.parsed = parsed.clone();
                Some(parsed)
            }
            Err(_) => {
                kept.remove(i);
                None
            }
        },
        None => {
            kept.remove(i);
            None
        }
    }
}

fn parse(path: &Path, text: &[u8]) -> FsResult<ProcCgroups> {
    let text = std::str::from_utf8(text)
        .map_err(|_| FsError::new(libc::EIO, format!("{}: not UTF-8", path.display())))?;
    Ok(ProcCgroups::parse(path, text)?)
}

fn gone_or(pid: u32, path: &Path, e: &std::io::Error) -> FsError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => {
            FsError::new(libc::ESRCH, format!("process {pid} is gone"))
        }
        _ => FsError::io(format!("read {}", path.display()), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child moved to another cgroup shows at once through the kept descriptor, and a
    /// reaped child's entry reads as gone, never as its last cgroups.
    #[test]
    fn kept_init_cgroups_follow_the_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let proc_root = Path::new("/proc");
        let a = proc_cgroups(proc_root, pid).unwrap();
        assert_eq!(a, ProcCgroups::read(proc_root, pid).unwrap());
        assert_eq!(proc_cgroups(proc_root, pid).unwrap(), a, "kept, same text");
        KEPT.with(|k| assert!(k.borrow().iter().any(|e| e.pid == pid)));
        child.kill().unwrap();
        child.wait().unwrap();
        let e = proc_cgroups(proc_root, pid).unwrap_err();
        assert_eq!(e.errno, libc::ESRCH, "{e}");
        KEPT.with(|k| assert!(!k.borrow().iter().any(|e| e.pid == pid)));
    }
}
