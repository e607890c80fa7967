//! The copy backend, and the tree copy every backend uses: `cp --archive` (owners, modes,
//! set-id bits, xattrs, hard links, symlinks as symlinks) from a directory lxr opened into a
//! new one, run as root of a user namespace ([`run_as_root`]) so that the copy's files keep
//! the container's owners. A container's rootfs is a full copy of its image
//! (`--reflink=auto`: shared blocks where the filesystem happens to allow it).

use std::process::{Command, Stdio};

use crate::beneath::Dir;
use crate::error::{Context, Error, Result};
use crate::idmap::{IdMaps, Ids};
use crate::userns::run_as_root;

/// How `cp` shares blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocks {
    /// `--reflink=auto`.
    Auto,
    /// `--reflink=always`: fail rather than copy data.
    Always,
}

/// Copy the contents of `src` into the empty directory `dest`, as root of a namespace mapping
/// `ids` (the container's only, for an image's or a container's tree; with the user's too for
/// an overlay's upper layer, whose whiteouts are the user's).
pub fn tree(maps: &IdMaps, ids: Ids, src: &Dir, dest: &Dir, blocks: Blocks) -> Result<()> {
    run_as_root(maps, ids, || tree_here(src, dest, blocks))
}

/// [`tree`] in a process that already is root of the namespace.
pub fn tree_here(src: &Dir, dest: &Dir, blocks: Blocks) -> Result<()> {
    // Into the working directory, from `src` as cp's own inherited descriptor (`/.`: its
    // contents, not the magic link itself).
    src.inheritable()?;
    dest.chdir()?;
    let reflink = match blocks {
        Blocks::Auto => "--reflink=auto",
        Blocks::Always => "--reflink=always",
    };
    let out = Command::new("cp")
        .args(["--archive", reflink, "--no-target-directory"])
        .arg(src.proc_path().join("."))
        .arg(".")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ctx(|| "run cp".into())?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "copying {} failed ({}): {}",
            src.name().display(),
            out.status,
            crate::text::clean(String::from_utf8_lossy(&out.stderr).trim(), true)
        )));
    }
    Ok(())
}
