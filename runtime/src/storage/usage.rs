//! Disk use of a container's own layer (an overlay's upper layer, a copy's whole rootfs, a
//! snapshot): the blocks of every file below it, each hard-linked inode once. Counted as root
//! of the container's user namespace (the tree's directories are the container's, some
//! private to its users), in a forked child that sends the total back through a pipe; symlinks
//! are never followed and the walk stays on one filesystem.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::beneath::Dir;
use crate::error::{Context, Result};
use crate::idmap::{IdMaps, Ids};
use crate::userns::run_as_root;

/// Bytes on disk below `dir`.
pub fn disk_use(maps: &IdMaps, dir: &Dir) -> Result<u64> {
    let (mut rx, mut tx) = std::io::pipe().ctx(|| "pipe".into())?;
    run_as_root(maps, Ids::Container, || {
        let total = walk(&dir.proc_path());
        tx.write_all(&total.to_le_bytes())
            .ctx(|| "send the size".into())
    })?;
    drop(tx);
    let mut b = [0u8; 8];
    rx.read_exact(&mut b).ctx(|| "read the size".into())?;
    Ok(u64::from_le_bytes(b))
}

/// The blocks below `root` (what cannot be read is not counted).
fn walk(root: &Path) -> u64 {
    // `root` is a `/proc/self/fd/N` link: followed (its own lstat is proc's).
    let Ok(top) = std::fs::metadata(root) else {
        return 0;
    };
    let dev = top.dev();
    let mut seen = HashSet::new();
    let mut total = top.blocks() * 512;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.dev() != dev {
                continue;
            }
            if md.nlink() > 1 && !md.is_dir() && !seen.insert(md.ino()) {
                continue;
            }
            total += md.blocks() * 512;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// `12.3MiB`-style sizes for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}
