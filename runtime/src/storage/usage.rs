//! Disk use of a container's own layer (an overlay's upper layer, a copy's whole rootfs, a
//! snapshot): the blocks of every file below it, each hard-linked inode once. Counted as root
//! of the container's user namespace (the tree's directories are the container's, some
//! private to its users), in a forked child that sends the total back through a pipe; by
//! descriptor, symlinks never followed, on one filesystem.

use std::collections::HashSet;
use std::io::{Read, Write};

use nix::fcntl::AtFlags;
use nix::sys::stat::{fstat, fstatat};

use crate::beneath::Dir;
use crate::error::{Context, Result};
use crate::idmap::{IdMaps, Ids};
use crate::userns::run_as_root;

/// Bytes on disk below `dir`.
pub fn disk_use(maps: &IdMaps, dir: &Dir) -> Result<u64> {
    let (mut rx, mut tx) = std::io::pipe().ctx(|| "pipe".into())?;
    run_as_root(maps, Ids::Container, || {
        let total = walk(dir);
        tx.write_all(&total.to_le_bytes())
            .ctx(|| "send the size".into())
    })?;
    drop(tx);
    let mut b = [0u8; 8];
    rx.read_exact(&mut b).ctx(|| "read the size".into())?;
    Ok(u64::from_le_bytes(b))
}

/// The blocks below `top` (what cannot be read is not counted). By descriptor, never by
/// path: a running container may swap a directory of its layer for a symlink to `/` while
/// `lxr info` counts, and a walk by path would then count (and take the time of) the host's
/// whole filesystem. Each entry is looked at with `AT_SYMLINK_NOFOLLOW` and a directory
/// opened beneath its parent without symlinks; one descriptor per level is held, so a
/// nesting deeper than the descriptor limit is counted only down to it.
fn walk(top: &Dir) -> u64 {
    let Ok(st) = fstat(top) else {
        return 0;
    };
    let dev = st.st_dev;
    let mut seen = HashSet::new();
    let mut total = blocks(&st);
    let mut stack: Vec<(Dir, Vec<String>)> = Vec::new();
    if let Ok(names) = top.entries() {
        if let Ok(d) = top.open_dir(".") {
            stack.push((d, names));
        }
    }
    while let Some((d, names)) = stack.last_mut() {
        let Some(name) = names.pop() else {
            stack.pop();
            continue;
        };
        let Ok(st) = fstatat(&*d, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        if st.st_dev != dev {
            continue;
        }
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if st.st_nlink > 1 && !is_dir && !seen.insert(st.st_ino) {
            continue;
        }
        total += blocks(&st);
        if is_dir {
            if let Ok(sub) = d.open_dir(&name) {
                if let Ok(names) = sub.entries() {
                    stack.push((sub, names));
                }
            }
        }
    }
    total
}

fn blocks(st: &libc::stat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0) * 512
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlink to `/` in the layer (what a running container can swap in for a directory)
    /// is not followed: the count is the tree's own, each hard-linked file once.
    #[test]
    fn a_planted_symlink_to_the_root_is_not_walked() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), vec![1u8; 1 << 20]).unwrap();
        std::fs::hard_link(d.join("a/b/f"), d.join("a/g")).unwrap();
        std::os::unix::fs::symlink("/", d.join("a/root")).unwrap();
        std::os::unix::fs::symlink("/", d.join("root")).unwrap();
        let n = walk(&Dir::open(d).unwrap());
        assert!((1 << 20..4 << 20).contains(&n), "{n}");
    }
}
