//! cgmanager on pure cgroup v2 with systemd as PID 1 (issue 18), in the guest of
//! `scripts/vm.sh`, one boot per Debian 12 kernel (6.1 has no `SO_PEERPIDFD`: every call below
//! goes through the daemon's pin-by-pid path there; 6.12 has it).
//!
//! The admin installs `systemd/cgmanager.service` (`Delegate=yes`) and starts it with
//! systemctl ([`vm::ADMIN_SETUP`]); then the ordinary user `lxrtest1`, in a login session of its
//! own (`user.slice/…/session-N.scope`), runs exactly the top README's three lines and gets a
//! delegated cgroup with its controllers, a memory limit on its own cgroup, and pids.max. The
//! kernel's v2 delegation rules are checked to hold around it: the user's own first move out of
//! its session into the delegation is refused by the kernel (the common-ancestor rule) while
//! cgmanager's `enter` does it; after that the user moves its processes within the subtree
//! itself; and with `nsdelegate` (the guest mounts cgroup2 with it) a process in a cgroup
//! namespace cannot move anything out of its namespace's root, which it could without one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::vm::{self, GuestOutput, Kernel};

/// What lxrtest1 does, as `key=value` facts. The README's three lines are the lines between
/// `# README` and `# /README`, copied from README.md (a test below checks they still are).
const USER_SCRIPT: &str = r#"
# A README line that fails is named.
trap 'echo "readme_failed=$BASH_COMMAND"' ERR
# README
cgm delegate memory                                 # → memory /users/alice (created, chowned, capped)
cgm enter memory work $$                            # the daemon moves this shell in
cgm setvalue memory '' memory.limit_in_bytes 512M   # '' = my own cgroup, now mine to limit
# /README
trap - ERR
echo "delegate=$(cgm delegate memory 2>&1)"
echo "self=$(cat /proc/$$/cgroup)"
echo "point_owner=$(stat -c %U "$D")"
echo "point_controllers=$(cat "$D/cgroup.controllers")"
echo "point_subtree=$(cat "$D/cgroup.subtree_control")"
echo "work_controllers=$(cat "$D/work/cgroup.controllers")"
echo "work_memory_max=$(cat "$D/work/memory.max")"
echo "getvalue_v1=$(cgm getvalue memory '' memory.limit_in_bytes 2>&1)"
cgm setvalue pids '' pids.max 77
echo "pids_setvalue=$? pids_max=$(cat "$D/work/pids.max")"
cgm setvalue memory '' memory.max 300M
echo "memory_setvalue=$? memory_max=$(cat "$D/work/memory.max")"
echo "bus_getvalue=$(cgm --bus getvalue memory '' pids.max 2>&1)"
echo "bus_delegate=$(cgm --bus delegate memory 2>&1)"
# Inside its subtree the user now moves its own processes itself (common ancestor: the
# delegation point, whose cgroup.procs is the user's).
mkdir "$D/work2" && echo $$ >"$D/work2/cgroup.procs"
echo "own_move=$? self2=$(cat /proc/$$/cgroup)"
# nsdelegate: from a cgroup namespace rooted at work2, work is outside; the same move without
# the namespace works (so the refusal is the namespace's, not a permission's).
unshare -U -r -C --fork bash -c "echo \$\$ >$D/work/cgroup.procs" 2>/tmp/ns.err
echo "ns_escape=$? $(tr -d '\n' </tmp/ns.err)"
unshare -U -r --fork bash -c "echo \$\$ >$D/work/cgroup.procs" 2>/tmp/nons.err
echo "no_ns_move=$? $(tr -d '\n' </tmp/nons.err)"
echo "ns_view=$(unshare -U -r -C --fork cat /proc/self/cgroup)"
"#;

/// The first move, before `cgm enter`: the user writes its session shell's pid into a cgroup of
/// its delegation itself.
const FIRST_MOVE: &str = r#"
echo "first_session=$(cat /proc/$$/cgroup)"
cgm delegate memory >/dev/null
mkdir "$D/direct" && echo "mkdir_direct=0"
echo $$ >"$D/direct/cgroup.procs" 2>/tmp/first.err
echo "first_move=$? $(tr -d '\n' </tmp/first.err)"
echo "after_first=$(cat /proc/$$/cgroup)"
rmdir "$D/direct"
"#;

fn script() -> String {
    format!(
        r#"{}
echo "mount_options=$(findmnt -no OPTIONS /sys/fs/cgroup)"
echo "daemon_cgroup=$(cat /proc/$(systemctl show -P MainPID cgmanager)/cgroup)"
cat >/tmp/first.sh <<'SCRIPT'
{FIRST_MOVE}
SCRIPT
cat >/tmp/user.sh <<'SCRIPT'
{USER_SCRIPT}
SCRIPT
chmod 644 /tmp/first.sh /tmp/user.sh
as_user 'bash /tmp/first.sh'
as_user 'bash /tmp/user.sh'
echo "journal_errors=$(journalctl -u cgmanager -p warning --no-pager -q | wc -l)"
journalctl -u cgmanager --no-pager -q >$LXR_OUT/cgmanager.log
"#,
        vm::ADMIN_SETUP
    )
}

fn check(out: &GuestOutput) {
    out.assert_success();
    let f = |k: &str| out.fact(k);
    assert_eq!(f("admin_setup"), "ok", "{out}");
    let mount = f("mount_options");
    assert!(
        mount.split(',').any(|o| o == "nsdelegate"),
        "the guest's cgroup2 is mounted with nsdelegate: {out}"
    );
    assert_eq!(
        f("daemon_cgroup"),
        "0::/system.slice/cgmanager.service/daemon",
        "the daemon left its Delegate=yes cgroup for its leaf: {out}"
    );

    // The kernel refuses the user's own first move out of its session.
    let session = f("first_session");
    assert!(
        session.starts_with("0::/user.slice/user-") && session.contains("/session-"),
        "lxrtest1 runs in a login session: {out}"
    );
    assert_eq!(f("mkdir_direct"), "0", "{out}");
    let first = f("first_move");
    assert!(
        first.starts_with("1 ") && first.contains("Permission denied"),
        "the kernel refuses the first move (common ancestor: not the user's): {out}"
    );
    assert_eq!(f("after_first"), session, "{out}");

    // The README's three lines work.
    assert!(
        !out.facts().contains_key("readme_failed"),
        "the README's lines: {out}"
    );
    let point = "/system.slice/cgmanager.service/users/lxrtest1";
    assert_eq!(f("delegate"), format!("unified {point}"), "{out}");
    assert_eq!(
        f("self"),
        format!("0::{point}/work"),
        "cgm enter moved the shell: {out}"
    );
    assert_eq!(f("point_owner"), "lxrtest1", "{out}");
    for c in ["cpuset", "cpu", "io", "memory", "pids"] {
        for k in ["point_controllers", "point_subtree", "work_controllers"] {
            assert!(
                f(k).split(' ').any(|x| x == c),
                "{k} lacks {c}: the user's cgroups get the controllers: {out}"
            );
        }
    }
    assert_eq!(
        f("work_memory_max"),
        "536870912",
        "the README's 512M: {out}"
    );
    assert_eq!(f("getvalue_v1"), "536870912", "{out}");
    assert_eq!(f("pids_setvalue"), "0 pids_max=77", "{out}");
    assert_eq!(f("memory_setvalue"), "0 memory_max=314572800", "{out}");
    assert_eq!(
        f("bus_getvalue"),
        "77",
        "the same through the system bus: {out}"
    );
    assert_eq!(f("bus_delegate"), format!("unified {point}"), "{out}");

    // Within the subtree the kernel lets the user move its processes itself.
    assert_eq!(f("own_move"), format!("0 self2=0::{point}/work2"), "{out}");
    // nsdelegate: no escape from a cgroup namespace, which the same user could do without one.
    let escape = f("ns_escape");
    assert!(
        escape.starts_with("1 ") && escape.contains("No such file or directory"),
        "nsdelegate refuses a move out of the cgroup namespace (ENOENT): {out}"
    );
    assert_eq!(f("no_ns_move"), "0 ", "{out}");
    assert_eq!(f("ns_view"), "0::/", "{out}");
    assert_eq!(
        f("journal_errors"),
        "0",
        "no warning or error from cgmanager: {}\n{out}",
        std::fs::read_to_string(out.file("cgmanager.log")).unwrap_or_default()
    );
}

#[test]
fn v2_6_1_cgmanager_delegates_from_a_systemd_unit_without_so_peerpidfd() {
    let out = vm::run(Kernel::V6_1, &script());
    check(&out);
}

#[test]
fn v2_6_12_cgmanager_delegates_from_a_systemd_unit() {
    let out = vm::run(Kernel::V6_12, &script());
    check(&out);
}

/// The lines the guest runs are the README's, character for character.
#[test]
fn the_guest_runs_the_readmes_three_lines() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let ours = USER_SCRIPT
        .split("# README\n")
        .nth(1)
        .unwrap()
        .split("# /README")
        .next()
        .unwrap();
    assert_eq!(ours.lines().count(), 3);
    for line in ours.lines() {
        assert!(
            readme.lines().any(|l| l.trim() == line.trim()),
            "README.md no longer has {line:?}"
        );
    }
}
