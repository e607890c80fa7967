//! The permission checks the kernel would make if the caller did the operation itself. The
//! daemon acts as root, so every one of them is redone here explicitly (CVE-2015-1344's
//! lesson): discretionary access on files and directories (owner, every group, other), the
//! privilege of a container's root over files its namespace maps, ownership for chmod/chown,
//! and who may move which process.
//!
//! The checks take plain descriptions — the caller ([`Caller`]), an inode ([`Inode`], from a
//! `stat`), a process ([`Task`], from its status) — and decide; they touch nothing.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use crate::caller::Caller;

/// Read permission.
pub const R: u32 = 4;
/// Write permission.
pub const W: u32 = 2;
/// Execute / search permission.
pub const X: u32 = 1;

/// What a check needs of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inode {
    /// Owner (host uid).
    pub uid: u32,
    /// Group (host gid).
    pub gid: u32,
    /// The whole `st_mode`: file type and permission bits.
    pub mode: u32,
}

impl Inode {
    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

impl From<&Metadata> for Inode {
    fn from(md: &Metadata) -> Inode {
        Inode {
            uid: md.uid(),
            gid: md.gid(),
            mode: md.mode(),
        }
    }
}

/// What a check needs of a process to be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// Host pid.
    pub pid: u32,
    /// Real uid (host).
    pub ruid: u32,
    /// Saved uid (host).
    pub suid: u32,
}

impl Task {
    /// What the permission checks need of a process the daemon read.
    pub fn of(v: &crate::caller::Victim) -> Task {
        let [ruid, _euid, suid, _fsuid] = v.status.uids;
        Task {
            pid: v.pid,
            ruid,
            suid,
        }
    }
}

/// Would the kernel let the caller access the inode with `want` (a mask of [`R`], [`W`], [`X`])?
pub fn may_access(c: &Caller, inode: &Inode, want: u32) -> bool {
    if c.host_root || ns_capable_over(c, inode) {
        // CAP_DAC_OVERRIDE: everything except executing a file with no x bit at all.
        return want & X == 0 || inode.is_dir() || inode.mode & 0o111 != 0;
    }
    // One class applies — owner, else group, else other — even where another would allow more.
    let bits = if c.uid == inode.uid {
        (inode.mode >> 6) & 7
    } else if c.in_group(inode.gid) {
        (inode.mode >> 3) & 7
    } else {
        inode.mode & 7
    };
    bits & want == want
}

/// Would the kernel let the caller chmod the inode (owner, or CAP_FOWNER over it)?
pub fn may_own(c: &Caller, inode: &Inode) -> bool {
    c.host_root || c.uid == inode.uid || ns_capable_over(c, inode)
}

/// May the caller move the process? Itself; any process for host root; a process with the
/// caller's uid as real or saved uid (the kernel's v1 rule); for a container's root, a process
/// whose uid its namespace maps.
pub fn may_move(c: &Caller, t: &Task) -> bool {
    c.pid == t.pid
        || c.host_root
        || c.uid == t.ruid
        || c.uid == t.suid
        || (c.ns_root && c.uid_map.to_inside(t.ruid).is_some())
}

/// Root of a user namespace has capabilities over inodes whose owner and group it maps.
fn ns_capable_over(c: &Caller, inode: &Inode) -> bool {
    c.ns_root
        && c.uid_map.to_inside(inode.uid).is_some()
        && c.gid_map.to_inside(inode.gid).is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use cgroups::process::IdMap;
    use cgroups::ProcCgroups;

    use super::*;

    const ALICE: u32 = 1000;
    const BOB: u32 = 1001;
    const STAFF: u32 = 50;
    /// A container of alice's: its ids 0–65535 are host ids 100000–165535.
    const SUB: u32 = 100_000;

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller {
            pid: 4242,
            uid,
            gid,
            groups: groups.to_vec(),
            uid_map: IdMap::identity(),
            gid_map: IdMap::identity(),
            host_root: uid == 0,
            ns_root: false,
            same_pidns: true,
            cgroups: ProcCgroups::default(),
        }
    }

    fn map(text: &str) -> IdMap {
        IdMap::parse(Path::new("uid_map"), text).unwrap()
    }

    /// Root of alice's container, as the daemon sees it: host uid 100000.
    fn container_root() -> Caller {
        Caller {
            uid_map: map("0 100000 65536\n"),
            gid_map: map("0 100000 65536\n"),
            host_root: false,
            ns_root: true,
            same_pidns: false,
            ..user(SUB, SUB, &[])
        }
    }

    fn file(uid: u32, gid: u32, perm: u32) -> Inode {
        Inode {
            uid,
            gid,
            mode: libc::S_IFREG | perm,
        }
    }

    fn dir(uid: u32, gid: u32, perm: u32) -> Inode {
        Inode {
            uid,
            gid,
            mode: libc::S_IFDIR | perm,
        }
    }

    fn task(pid: u32, ruid: u32, suid: u32) -> Task {
        Task { pid, ruid, suid }
    }

    #[test]
    fn owner_group_other_one_class_applies() {
        let alice = user(ALICE, ALICE, &[]);
        assert!(may_access(&alice, &file(ALICE, 0, 0o600), R | W));
        assert!(!may_access(&alice, &file(ALICE, 0, 0o400), W));
        // The owner class applies to the owner even when group and other would allow more.
        assert!(!may_access(&alice, &file(ALICE, 0, 0o066), R));
        assert!(!may_access(&alice, &file(BOB, ALICE, 0o607), R));
        // Other, for someone neither owner nor in the group.
        assert!(may_access(&alice, &file(BOB, BOB, 0o604), R));
        assert!(!may_access(&alice, &file(BOB, BOB, 0o640), R));
    }

    #[test]
    fn every_group_counts_primary_and_supplementary() {
        let alice = user(ALICE, ALICE, &[STAFF]);
        assert!(may_access(&alice, &file(0, ALICE, 0o060), R | W));
        assert!(may_access(&alice, &file(0, STAFF, 0o060), R | W));
        assert!(!may_access(&alice, &file(0, STAFF, 0o040), W));
        // Not a member: other bits.
        assert!(!may_access(&alice, &file(0, BOB, 0o060), R));
        assert!(!may_access(&user(BOB, BOB, &[]), &file(0, STAFF, 0o060), R));
    }

    #[test]
    fn every_wanted_bit_is_needed() {
        let alice = user(ALICE, ALICE, &[]);
        assert!(may_access(&alice, &dir(ALICE, 0, 0o500), R | X));
        assert!(!may_access(&alice, &dir(ALICE, 0, 0o400), R | X));
        assert!(!may_access(&alice, &dir(ALICE, 0, 0o100), R | X));
        assert!(!may_access(&alice, &dir(ALICE, 0, 0o500), W | X));
        // Nothing wanted, nothing needed.
        assert!(may_access(&alice, &file(BOB, BOB, 0), 0));
    }

    #[test]
    fn host_root_overrides_except_executing_a_file_nobody_may() {
        let root = user(0, 0, &[]);
        assert!(may_access(&root, &file(ALICE, ALICE, 0), R | W));
        assert!(may_access(&root, &dir(ALICE, ALICE, 0), R | W | X));
        assert!(!may_access(&root, &file(ALICE, ALICE, 0o644), X));
        assert!(may_access(&root, &file(ALICE, ALICE, 0o700), X));
        assert!(may_own(&root, &file(ALICE, ALICE, 0o644)));
    }

    #[test]
    fn container_root_has_privilege_only_over_what_its_namespace_maps() {
        let croot = container_root();
        // Owner and group both mapped (its own subordinate ids).
        assert!(may_access(&croot, &file(SUB + 5, SUB + 5, 0), R | W));
        assert!(may_own(&croot, &file(SUB + 5, SUB + 5, 0)));
        // Owner mapped, group not: no override — the mode bits decide (other here).
        assert!(!may_access(&croot, &file(SUB + 5, 0, 0o660), R));
        assert!(may_access(&croot, &file(SUB + 5, 0, 0o664), R));
        assert!(!may_own(&croot, &file(SUB + 5, 0, 0o777)));
        // Host files are not its own.
        assert!(!may_access(&croot, &file(0, 0, 0o600), R));
        assert!(!may_own(&croot, &file(ALICE, ALICE, 0o777)));
        // Its own host uid is in its map too, and it owns what it owns.
        assert!(may_own(&croot, &file(SUB, 0, 0o600)));
    }

    #[test]
    fn a_plain_user_owns_only_its_own() {
        let alice = user(ALICE, ALICE, &[STAFF]);
        assert!(may_own(&alice, &file(ALICE, 0, 0)));
        // Group membership or write access does not make an owner (chmod(2)).
        assert!(!may_own(&alice, &file(BOB, STAFF, 0o777)));
    }

    #[test]
    fn who_may_move_whom() {
        let alice = user(ALICE, ALICE, &[]);
        // Itself, whatever its ids.
        assert!(may_move(&alice, &task(alice.pid, 0, 0)));
        // A process whose real or saved uid is alice's (the kernel's v1 rule).
        assert!(may_move(&alice, &task(7, ALICE, BOB)));
        assert!(may_move(&alice, &task(7, BOB, ALICE)));
        // Effective uid alone is not enough, and others' processes are not hers.
        assert!(!may_move(&alice, &task(7, BOB, BOB)));
        assert!(!may_move(&alice, &task(7, 0, 0)));
        // Host root moves anyone.
        assert!(may_move(&user(0, 0, &[]), &task(7, BOB, BOB)));
        // A container's root: processes whose uid its namespace maps, no others.
        let croot = container_root();
        assert!(may_move(&croot, &task(7, SUB + 33, SUB + 33)));
        assert!(!may_move(&croot, &task(7, ALICE, ALICE)));
        assert!(!may_move(&croot, &task(7, 0, 0)));
    }

    #[test]
    fn inode_from_metadata_keeps_type_and_bits() {
        let t = tempfile::tempdir().unwrap();
        let md = std::fs::metadata(t.path()).unwrap();
        let i = Inode::from(&md);
        assert!(i.is_dir());
        assert_eq!((i.uid, i.gid), (md.uid(), md.gid()));
        assert_eq!(i.mode & 0o7777, md.mode() & 0o7777);
    }
}
