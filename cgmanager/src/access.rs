//! The permission checks the kernel would make if the caller did the operation itself. The
//! daemon acts as root, so every one of them is redone here explicitly (CVE-2015-1344's
//! lesson): discretionary access on files and directories (owner, every group, other), the
//! privilege of a container's root over files its namespace maps, ownership for chmod/chown,
//! and who may move which process.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use crate::caller::{Caller, Victim};

/// Read permission.
pub const R: u32 = 4;
/// Write permission.
pub const W: u32 = 2;
/// Execute / search permission.
pub const X: u32 = 1;

/// Would the kernel let the caller access the inode with `want` (a mask of [`R`], [`W`], [`X`])?
pub fn may_access(c: &Caller, md: &Metadata, want: u32) -> bool {
    if c.host_root || ns_capable_over(c, md) {
        // CAP_DAC_OVERRIDE: everything except executing a file with no x bit at all.
        return want & X == 0 || md.is_dir() || md.mode() & 0o111 != 0;
    }
    let mode = md.mode();
    let bits = if c.uid == md.uid() {
        (mode >> 6) & 7
    } else if c.in_group(md.gid()) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & want == want
}

/// Would the kernel let the caller chmod the inode (owner, or CAP_FOWNER over it)?
pub fn may_own(c: &Caller, md: &Metadata) -> bool {
    c.host_root || c.uid == md.uid() || ns_capable_over(c, md)
}

/// May the caller move the victim? Itself; any process for host root; a process with the
/// caller's uid as real or saved uid (the kernel's v1 rule); for a container's root, a process
/// whose uid its namespace maps.
pub fn may_move(c: &Caller, v: &Victim) -> bool {
    let [ruid, _euid, suid, _] = v.status.uids;
    c.pid == v.pid
        || c.host_root
        || c.uid == ruid
        || c.uid == suid
        || (c.ns_root && c.uid_map.to_inside(ruid).is_some())
}

/// Root of a user namespace has capabilities over inodes whose owner and group it maps.
fn ns_capable_over(c: &Caller, md: &Metadata) -> bool {
    c.ns_root && c.uid_map.to_inside(md.uid()).is_some() && c.gid_map.to_inside(md.gid()).is_some()
}
