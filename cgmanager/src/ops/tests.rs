//! The permission core end to end on a fixture tree (a fake v1 memory hierarchy in a temporary
//! directory, `cgroups::fixture`): what the checks of [`crate::access`], [`crate::target`] and
//! [`crate::manager`] let a caller do through the operations, on any host, as any user. The
//! callers are built by hand; the tree belongs to whoever runs the tests ("me"), and "alice" is
//! someone else.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cgroups::fixture::Fixture;
use cgroups::process::IdMap;
use cgroups::{Cgroup, Layout, ProcCgroups, Version};

use crate::caller::{Caller, HostNs};
use crate::errors::Kind;
use crate::manager::{Config, Manager};
use crate::ops::Existed;
use crate::policy::Policy;

/// A host with one v1 hierarchy (memory) in a fixture; callers sit in `/user`.
struct Host {
    fx: Fixture,
    mgr: Manager,
    me: u32,
    my_gid: u32,
}

const LIMIT: &str = "memory.limit_in_bytes";

impl Host {
    fn new(max_depth: usize) -> Host {
        let fx = Fixture::new();
        fx.write_hybrid_mountinfo(&["memory"]);
        fx.write_file(
            &format!("proc/{}/cgroup", std::process::id()),
            "4:memory:/\n0::/\n",
        );
        let user = fx.v1_cgroup("memory", "user");
        let a = fx.v1_cgroup("memory", "user/a");
        fx.write(&a, LIMIT, "536870912\n");
        fx.write(&a, "memory.secret", "42\n");
        fx.write(&a, "tasks", "");
        fx.write(&a, "release_agent", "");
        fx.write(&a, "devices.allow", "");
        chmod(&a.file("memory.secret"), 0o600);
        let inner = fx.v1_cgroup("memory", "user/locked/inner");
        fx.write(&inner, LIMIT, "1\n");
        chmod(&fx.v1_cgroup("memory", "user/locked").dir(), 0o700);
        fx.write(&fx.v1_cgroup("memory", "other"), LIMIT, "7\n");
        chmod(&user.dir(), 0o755);
        let layout = Layout::detect(&fx.proc_root()).unwrap();
        let host = HostNs {
            proc_root: fx.proc_root(),
            pidns: 1,
            userns: 1,
        };
        let config = Config {
            max_depth,
            ..Config::default()
        };
        let mgr = Manager::new(host, layout, config, Policy::default()).unwrap();
        Host {
            fx,
            mgr,
            me: nix::unistd::getuid().as_raw(),
            my_gid: nix::unistd::getgid().as_raw(),
        }
    }

    /// A caller in `/user` with these ids, without root's privileges (whatever the uid).
    fn caller(&self, uid: u32, gid: u32) -> Caller {
        plain_caller(uid, gid, "4:memory:/user\n0::/\n")
    }

    /// The owner of the tree.
    fn owner(&self) -> Caller {
        self.caller(self.me, self.my_gid)
    }

    /// Someone who owns nothing here.
    fn alice(&self) -> Caller {
        self.caller(self.me.wrapping_add(1), self.my_gid.wrapping_add(1))
    }

    fn cg(&self, rel: &str) -> Cgroup {
        Cgroup::new(Version::V1, self.fx.v1_root("memory"), rel).unwrap()
    }
}

/// A caller with these ids and cgroups (`/proc/<pid>/cgroup` text), in the daemon's
/// namespaces, without root's privileges (whatever the uid).
fn plain_caller(uid: u32, gid: u32, cgroups: &str) -> Caller {
    Caller {
        pid: 4242,
        uid,
        gid,
        groups: Vec::new(),
        uid_map: IdMap::identity(),
        gid_map: IdMap::identity(),
        host_root: false,
        ns_root: false,
        same_pidns: true,
        cgroups: ProcCgroups::parse(Path::new("cgroup"), cgroups).unwrap(),
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn kind<T: std::fmt::Debug>(r: crate::errors::Result<T>) -> Kind {
    r.unwrap_err().kind()
}

#[test]
fn paths_resolve_below_the_callers_cgroup_only() {
    let h = Host::new(16);
    let alice = h.alice();
    let get = |cg: &str| h.mgr.get_value(&alice, "memory", cg, LIMIT);
    assert_eq!(get("a").unwrap(), "536870912");
    assert_eq!(get("/user/a").unwrap(), "536870912");
    assert_eq!(kind(get("/other")), Kind::OutsideSubtree);
    assert_eq!(kind(get("../other")), Kind::OutsideSubtree);
    assert_eq!(kind(get("/")), Kind::OutsideSubtree);
    assert_eq!(kind(get("nosuch")), Kind::NotFound);
    assert_eq!(
        kind(h.mgr.get_value(&alice, "cpu", "a", LIMIT)),
        Kind::NoSuchController
    );
    assert_eq!(
        kind(h.mgr.get_value(&alice, "memory", "a", "../x")),
        Kind::InvalidArgument
    );
}

#[test]
fn search_permission_is_needed_on_every_directory_down() {
    let h = Host::new(16);
    let get = |c: &Caller| h.mgr.get_value(c, "memory", "locked/inner", LIMIT);
    let e = get(&h.alice()).unwrap_err();
    assert_eq!(e.kind(), Kind::PermissionDenied);
    assert!(e.message().contains("may not search"), "{e}");
    assert_eq!(get(&h.owner()).unwrap(), "1");
}

#[test]
fn files_are_read_and_written_with_the_callers_mode_bits() {
    let h = Host::new(16);
    let (alice, owner) = (h.alice(), h.owner());
    assert_eq!(
        kind(h.mgr.get_value(&alice, "memory", "a", "memory.secret")),
        Kind::PermissionDenied
    );
    assert_eq!(
        h.mgr
            .get_value(&owner, "memory", "a", "memory.secret")
            .unwrap(),
        "42"
    );
    assert_eq!(
        kind(h.mgr.set_value(&alice, "memory", "a", LIMIT, "1")),
        Kind::PermissionDenied
    );
    h.mgr
        .set_value(&owner, "memory", "a", LIMIT, "268435456")
        .unwrap();
    // One write at offset 0, as to cgroupfs (a regular file keeps what was past it).
    let written = std::fs::read_to_string(h.cg("user/a").file(LIMIT)).unwrap();
    assert_eq!(written.trim_end(), "268435456");
    // Someone in the file's group gets the group's bits.
    let mut staff = h.alice();
    staff.groups = vec![h.my_gid];
    chmod(&h.cg("user/a").file("memory.secret"), 0o640);
    assert_eq!(
        h.mgr
            .get_value(&staff, "memory", "a", "memory.secret")
            .unwrap(),
        "42"
    );
}

#[test]
fn set_value_never_writes_protected_files() {
    let h = Host::new(16);
    let owner = h.owner();
    for key in [
        "tasks",
        "cgroup.procs",
        "cgroup.threads",
        "release_agent",
        "notify_on_release",
    ] {
        assert_eq!(
            kind(h.mgr.set_value(&owner, "memory", "a", key, "1")),
            Kind::ProtectedFile,
            "{key}"
        );
    }
    // The device lists take CAP_SYS_ADMIN on the host, whoever owns them.
    assert_eq!(
        kind(
            h.mgr
                .set_value(&owner, "memory", "a", "devices.allow", "a *:* rwm")
        ),
        Kind::PermissionDenied
    );
    let big = "1".repeat(64 * 1024 + 1);
    assert_eq!(
        kind(h.mgr.set_value(&owner, "memory", "a", LIMIT, &big)),
        Kind::InvalidArgument
    );
}

#[test]
fn chmod_takes_ownership_and_permission_bits_only() {
    let h = Host::new(16);
    let (alice, owner) = (h.alice(), h.owner());
    assert_eq!(
        kind(h.mgr.chmod(&alice, "memory", "a", LIMIT, 0o600)),
        Kind::PermissionDenied
    );
    let perm = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    h.mgr.chmod(&owner, "memory", "a", LIMIT, 0o600).unwrap();
    assert_eq!(perm(&h.cg("user/a").file(LIMIT)), 0o600);
    h.mgr.chmod(&owner, "memory", "a", "", 0o750).unwrap();
    assert_eq!(perm(&h.cg("user/a").dir()), 0o750);
    assert_eq!(
        kind(h.mgr.chmod(&owner, "memory", "a", "", 0o4755)),
        Kind::InvalidArgument
    );
}

#[test]
fn create_needs_write_on_the_parent_and_stays_within_the_depth() {
    let h = Host::new(4);
    let (alice, owner) = (h.alice(), h.owner());
    assert_eq!(
        h.mgr.create(&owner, "memory", "a/b/c").unwrap(),
        Existed(false)
    );
    assert!(h.cg("user/a/b/c").dir().is_dir());
    assert_eq!(
        h.mgr.create(&owner, "memory", "a/b").unwrap(),
        Existed(true)
    );
    assert_eq!(
        kind(h.mgr.create(&alice, "memory", "a/x")),
        Kind::PermissionDenied
    );
    assert!(!h.cg("user/a/x").dir().exists());
    // user/a/b/c/d is 5 levels deep.
    assert_eq!(
        kind(h.mgr.create(&owner, "memory", "a/b/c/d")),
        Kind::LimitExceeded
    );
}

#[test]
fn remove_never_takes_the_callers_own_cgroup() {
    let h = Host::new(16);
    let owner = h.owner();
    assert_eq!(
        kind(h.mgr.remove(&owner, "memory", "", false)),
        Kind::OutsideSubtree
    );
    assert_eq!(
        kind(h.mgr.remove(&owner, "memory", "/user", false)),
        Kind::OutsideSubtree
    );
    assert_eq!(
        h.mgr.remove(&owner, "memory", "gone", false).unwrap(),
        Existed(false)
    );
    h.mgr.create(&owner, "memory", "empty").unwrap();
    assert_eq!(
        kind(h.mgr.remove(&h.alice(), "memory", "empty", false)),
        Kind::PermissionDenied
    );
    assert_eq!(
        h.mgr.remove(&owner, "memory", "empty", false).unwrap(),
        Existed(true)
    );
    assert!(!h.cg("user/empty").dir().exists());
}

#[test]
fn list_keys_tells_ids_as_the_callers_namespace_maps_them() {
    let h = Host::new(16);
    let mut c = h.owner();
    // The caller's namespace maps our uid to its 0, and no gid of ours.
    c.uid_map = IdMap::parse(Path::new("uid_map"), &format!("0 {} 1\n", h.me)).unwrap();
    c.gid_map = IdMap::parse(Path::new("gid_map"), "0 4000000000 1\n").unwrap();
    let keys = h.mgr.list_keys(&c, "memory", "a").unwrap();
    let k = keys.iter().find(|k| k.0 == LIMIT).unwrap();
    assert_eq!((k.1, k.2), (0, u32::MAX));
    assert_eq!(k.3, libc::S_IFREG | 0o644);
    let mut children = h.mgr.list_children(&c, "memory", "").unwrap();
    children.sort();
    assert_eq!(children, ["a", "locked"]);
}

/// A pure cgroup v2 host in a fixture: the root enables `cpu memory pids` (`io` exists but is
/// not enabled), the daemon was started in `/svc` (a service's cgroup), and the delegation
/// point `/svc/users/<uid>` exists with the files the kernel would give it. `leaf`: the daemon
/// has moved into `/svc/daemon` ([`Manager::take_leaf`]).
struct V2 {
    fx: Fixture,
    mgr: Manager,
}

const USER: u32 = 40123;

impl V2 {
    fn new(policy: &str, root_enables: &str, leaf: bool) -> V2 {
        let fx = Fixture::new();
        fx.write_unified_mountinfo(&["cpu", "io", "memory", "pids"]);
        fx.write_file(&format!("proc/{}/cgroup", std::process::id()), "0::/svc\n");
        let root = fx.v2_cgroup("");
        fx.write(&root, "cgroup.subtree_control", root_enables);
        let svc = fx.v2_cgroup("svc");
        fx.write(&svc, "cgroup.controllers", root_enables);
        fx.write(&svc, "cgroup.subtree_control", "");
        let daemon = fx.v2_cgroup("svc/daemon");
        fx.write(&daemon, "cgroup.procs", "");
        let users = fx.v2_cgroup("svc/users");
        fx.write(&users, "cgroup.subtree_control", "");
        let d = fx.v2_cgroup(&format!("svc/users/{USER}"));
        for (f, v) in [
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
            // Empty: what a write leaves is then exactly what was written.
            ("memory.max", ""),
            ("pids.max", ""),
            ("cgroup.max.depth", ""),
            ("cgroup.max.descendants", ""),
        ] {
            fx.write(&d, f, v);
        }
        let layout = Layout::detect(&fx.proc_root()).unwrap();
        let host = HostNs {
            proc_root: fx.proc_root(),
            pidns: 1,
            userns: 1,
        };
        let policy = Policy::parse(policy).unwrap();
        let mut mgr = Manager::new(host, layout, Config::default(), policy).unwrap();
        if leaf {
            mgr.leaf = Some(daemon);
        }
        V2 { fx, mgr }
    }

    fn user(&self) -> Caller {
        plain_caller(USER, USER, "0::/elsewhere\n")
    }

    fn read(&self, rel: &str, file: &str) -> String {
        std::fs::read_to_string(self.fx.v2_cgroup(rel).file(file)).unwrap()
    }

    fn delegate(&self) -> crate::errors::Result<Vec<crate::ops::Delegation>> {
        self.mgr.delegate(&self.user(), "unified")
    }

    /// Delegate is refused for a controller the cgroups above do not offer, saying `parts`.
    fn refused_saying(&self, parts: &[&str]) {
        let e = self.delegate().unwrap_err();
        assert_eq!(e.kind(), Kind::NoSuchController, "{e}");
        for part in parts {
            assert!(e.message().contains(part), "{part:?} in {e}");
        }
    }
}

fn rule(controllers: &str, extra: &str) -> String {
    format!(
        "[[delegate]]\nusers = [\"{USER}\"]\ncontrollers = [{controllers}]\n\
         path = \"%D/users/%U\"\n{extra}"
    )
}

const LIMITS: &str = "memory_max = \"1G\"\npids_max = 100\n";

/// Memory and pids delegated, with limits for both, the root enabling cpu, memory and pids.
fn memory_and_pids(leaf: bool) -> V2 {
    V2::new(
        &rule("\"memory\", \"pids\"", LIMITS),
        "cpu memory pids",
        leaf,
    )
}

#[test]
fn v2_delegation_enables_its_controllers_on_the_way_down() {
    let h = memory_and_pids(true);
    let d = format!("svc/users/{USER}");
    let got = h.delegate().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, format!("/{d}"));
    // Below the root and from the daemon's own cgroup (which it has left) down: not the root
    // (the service manager's). In the delegation point too, so that the cgroup a user enters
    // below it (`cgm enter memory work $$`) has memory.max (found in the v2 guest, issue 18).
    assert_eq!(h.read("", "cgroup.subtree_control"), "cpu memory pids");
    assert_eq!(h.read("svc", "cgroup.subtree_control"), "+memory +pids");
    assert_eq!(
        h.read("svc/users", "cgroup.subtree_control"),
        "+memory +pids"
    );
    assert_eq!(h.read(&d, "cgroup.subtree_control"), "+memory +pids");
    // The policy's limits are set, as root.
    assert_eq!(h.read(&d, "memory.max"), "1073741824");
    assert_eq!(h.read(&d, "pids.max"), "100");
    assert_eq!(h.read(&d, "cgroup.max.depth"), "10");
    assert_eq!(h.read(&d, "cgroup.max.descendants"), "1024");
    let owner = |rel: &str| std::fs::metadata(h.fx.v2_cgroup(rel).dir()).unwrap().uid();
    assert_eq!(owner(&d), USER);
    // Asked again (the kernel now shows the controllers as enabled): nothing more is written,
    // and the answer is the same.
    for rel in ["svc", "svc/users"] {
        h.fx.write(
            &h.fx.v2_cgroup(rel),
            "cgroup.subtree_control",
            "memory pids",
        );
    }
    h.fx.write(&h.fx.v2_cgroup(&d), "cgroup.subtree_control", "memory pids");
    assert_eq!(h.delegate().unwrap(), got);
    assert_eq!(h.read("svc", "cgroup.subtree_control"), "memory pids");
    assert_eq!(h.read("svc/users", "cgroup.subtree_control"), "memory pids");
    assert_eq!(h.read(&d, "cgroup.subtree_control"), "memory pids");
}

/// The README's `cgm setvalue memory '' memory.limit_in_bytes 512M` on a pure v2 host writes
/// memory.max (`-1` as `max`), and GetValue of the v1 name reads memory.max, `max` as v1's
/// number (found in the v2 guest, issue 18). Other v1 names are not translated.
#[test]
fn v2_memory_limit_in_bytes_is_memory_max() {
    let h = memory_and_pids(true);
    h.delegate().unwrap();
    let d = format!("svc/users/{USER}");
    let work = h.fx.v2_cgroup(&format!("{d}/work"));
    h.fx.write(&work, "memory.max", "max\n");
    std::os::unix::fs::chown(work.file("memory.max"), Some(USER), Some(USER)).unwrap();
    let me = plain_caller(USER, USER, &format!("0::/{d}/work\n"));
    let get = || h.mgr.get_value(&me, "memory", "", "memory.limit_in_bytes");
    assert_eq!(get().unwrap(), "9223372036854771712");
    h.mgr
        .set_value(&me, "memory", "", "memory.limit_in_bytes", "512M")
        .unwrap();
    assert_eq!(h.read(&format!("{d}/work"), "memory.max"), "512M");
    assert_eq!(get().unwrap(), "512M");
    // (A fixture file is not truncated by the write, as a cgroup file needs not be.)
    h.fx.write(&work, "memory.max", "");
    h.mgr
        .set_value(&me, "memory", "", "memory.limit_in_bytes", "-1")
        .unwrap();
    assert_eq!(h.read(&format!("{d}/work"), "memory.max"), "max");
    let e = h
        .mgr
        .set_value(&me, "memory", "", "memory.memsw.limit_in_bytes", "1G")
        .unwrap_err();
    assert_eq!(e.kind(), Kind::NotFound, "{e}");
}

#[test]
fn v2_delegation_of_all_gets_every_controller_the_daemon_has() {
    let h = V2::new(&rule("\"all\"", ""), "cpu memory pids", true);
    h.delegate().unwrap();
    // io is on the host but the root does not enable it: not the daemon's to give.
    assert_eq!(
        h.read("svc", "cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
    assert_eq!(
        h.read("svc/users", "cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
    // No memory_max in the policy: the ceiling stays as it was.
    assert_eq!(h.read(&format!("svc/users/{USER}"), "memory.max"), "");
}

#[test]
fn v2_delegation_below_a_daemon_that_did_not_leave_its_cgroup_is_refused() {
    let h = memory_and_pids(false);
    h.refused_saying(&[
        "memory pids",
        "runs in /svc itself",
        "Delegate=yes",
        "/svc/daemon",
    ]);
    // Refused before anything was touched.
    assert_eq!(h.read("svc", "cgroup.subtree_control"), "");
    assert_eq!(h.read("svc/users", "cgroup.subtree_control"), "");
    let d = format!("svc/users/{USER}");
    assert_eq!(h.read(&d, "memory.max"), "");
    let owner = std::fs::metadata(h.fx.v2_cgroup(&d).dir()).unwrap().uid();
    assert_ne!(owner, USER);
}

#[test]
fn v2_limits_whose_controller_is_not_offered_are_refused_not_skipped() {
    // The root enables no memory: the policy's memory_max could not be set.
    let h = V2::new(&rule("\"pids\"", LIMITS), "cpu pids", true);
    h.refused_saying(&[
        "delegates memory at",
        "/ does not enable it",
        "service manager",
    ]);
    assert_eq!(h.read("svc", "cgroup.subtree_control"), "");
    assert_eq!(h.read(&format!("svc/users/{USER}"), "pids.max"), "");
}

#[test]
fn v2_delegation_made_on_the_way_is_removed_again_when_it_fails() {
    // A path not made yet: the fixture's new directories have no control files, so enabling
    // fails as a kernel refusal would, and what this call made goes again.
    let policy = format!(
        "[[delegate]]\nusers = [\"{USER}\"]\ncontrollers = [\"memory\"]\npath = \"%D/new/%U\"\n"
    );
    let h = V2::new(&policy, "cpu memory pids", true);
    let e = h.delegate().unwrap_err();
    assert!(e.message().contains("cgroup.subtree_control"), "{e}");
    assert!(!h.fx.v2_root().join("svc/new").exists());
}

#[test]
fn a_delegation_point_never_holds_the_daemon() {
    for (path, leaf) in [
        ("%D", true),
        ("%D/daemon", true),
        ("%D", false),
        ("/", false),
    ] {
        let policy = format!("[[delegate]]\nusers = [\"{USER}\"]\npath = \"{path}\"\n");
        let h = V2::new(&policy, "cpu memory pids", leaf);
        let e = h.delegate().unwrap_err();
        assert_eq!(e.kind(), Kind::NotDelegated, "{path}: {e}");
        assert!(e.message().contains("would hold the daemon"), "{e}");
    }
}

/// The daemon moves itself into `<its cgroup>/daemon` only where that cgroup is delegated to
/// it (`trusted.delegate`, as systemd marks a unit with `Delegate=yes`).
#[test]
fn the_daemon_takes_a_leaf_only_where_its_cgroup_is_delegated() {
    let mut h = V2::new("", "cpu memory pids", false);
    let svc = h.fx.v2_cgroup("svc");
    h.mgr.take_leaf().unwrap();
    assert!(h.mgr.leaf.is_none());
    assert_eq!(h.read("svc/daemon", "cgroup.procs"), "");
    set_xattr(&svc.dir(), "trusted.delegate", b"1");
    assert!(svc.is_delegated());
    h.mgr.take_leaf().unwrap();
    assert_eq!(h.mgr.leaf.as_ref().unwrap().abs_path(), "/svc/daemon");
    assert_eq!(
        h.read("svc/daemon", "cgroup.procs"),
        std::process::id().to_string()
    );
    // %D is still the cgroup it was started in.
    let own = h.mgr.cgroup_of(&h.mgr.own, h.mgr.layout.unified().unwrap());
    assert_eq!(own.unwrap().abs_path(), "/svc");
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated and `value` is valid for its length.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// A controller enabled in `cgroup.subtree_control` through the daemon leaves its new files in
/// the children to the caller, as the kernel does for the writer (found in the v2 guest, issue
/// 18: lxr's `cpuset.cpus` was root's); files that were there keep their owner.
#[test]
fn v2_files_a_subtree_control_write_makes_are_the_callers() {
    let h = memory_and_pids(true);
    h.delegate().unwrap();
    let d = format!("svc/users/{USER}");
    let child = h.fx.v2_cgroup(&format!("{d}/lxr"));
    h.fx.write(&child, "cgroup.procs", "");
    let owner = |f: &str| std::fs::metadata(child.file(f)).unwrap().uid();
    let before = owner("cgroup.procs");
    super::value::as_writer(&h.fx.v2_cgroup(&d), USER, USER, || {
        // What the kernel does when memory is enabled: memory.max appears in every child.
        h.fx.write(&child, "memory.max", "max\n");
        Ok(())
    })
    .unwrap();
    assert_eq!(owner("memory.max"), USER);
    assert_eq!(owner("cgroup.procs"), before);
    // A refused write hands nothing over and says why.
    let e = super::value::as_writer(&h.fx.v2_cgroup(&d), USER, USER, || {
        Err(crate::errors::Error::new(Kind::Busy, "held"))
    })
    .unwrap_err();
    assert_eq!(e.kind(), Kind::Busy);
}
