//! lxr's launch → exec → stop in the pure cgroup v2 guest (issue 18), on Debian 12's 6.1 and
//! 6.12: our cgmanager (as root, started from the run unit's delegated cgroup) delegates the
//! cgroup2 hierarchy to lxrtest1, who runs lxr
//!
//! * from a shell inside that delegation (`cgm enter unified shell $$`): the monitor starts the
//!   container's first process in its cgroup with `clone3(CLONE_INTO_CGROUP)` (`lxr info`, the
//!   monitor's debug log), `lxr exec` runs in the container, and `stop --force` of a container
//!   full of a fork flood writes `cgroup.kill`: the cgroup is removed and no process of the
//!   container's pid namespace is left;
//! * the same with both features turned off (`LXR_TEST_WITHOUT`): cgmanager moves the first
//!   process, SIGKILL to the init stops it, nothing is left;
//! * from outside the delegation (the run unit's cgroup, root's): the kernel refuses the clone
//!   (EACCES, the common-ancestor rule), the start falls back to cgmanager by itself, and a
//!   plain `lxr stop` halts busybox's init cleanly (no kill at all).
//!
//! One container, made once and started three times (creating one costs seconds under TCG).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use e2e::vm::{self, Kernel};

/// The guest's side: `key=value` facts on stdout.
const CYCLE: &str = r#"
set -u
export PATH=/lxr/bin:$PATH
# The run unit's cgroup is delegated (Delegate=yes): this script moves to a leaf of it, so that
# cgmanager (which moves itself to `daemon`) can enable controllers there for the delegation.
SELF=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir -p $SELF/script && echo $$ >$SELF/script/cgroup.procs
mkdir -p /run/cgmanager /etc/cgmanager
cat >/etc/cgmanager/delegation.conf <<'EOF'
[[delegate]]
users = ["lxrtest1"]
controllers = ["all"]
path = "%D/users/%u"
EOF
cgmanager --socket /run/cgmanager/sock --no-bus --policy /etc/cgmanager/delegation.conf \
    >$LXR_OUT/cgmanager.log 2>&1 &
for _ in $(seq 200); do [ -S /run/cgmanager/sock ] && break; sleep 0.05; done
U() { setpriv --reuid=lxrtest1 --regid=lxrtest1 --init-groups env -i HOME=/home/lxrtest1 \
      PATH=/lxr/bin:/usr/bin:/bin:/usr/sbin:/sbin LXR_LXCFS=/nonexistent "$@"; }
# lxrtest1's lxr from a shell in its delegation.
IN() { U sh -c 'cgm delegate unified >/dev/null && cgm enter unified shell $$ >/dev/null && exec "$@"' sh "$@"; }
DELEG=$(U cgm delegate unified | awk '{print $2}')
echo "delegation=$DELEG"
LOGS=/home/lxrtest1/.local/share/lxr/run
pidns() { readlink /proc/$1/ns/pid; }
left_in_ns() { n=0; for p in /proc/[0-9]*; do [ "$(readlink $p/ns/pid 2>/dev/null)" = "$1" ] && n=$((n+1)); done; echo $n; }
flood() {
    [ -d /sys/fs/cgroup$DELEG/lxr/c ] || { echo "$1_flood=0"; return; }
    U lxr exec c -- sh -c '(for w in 1 2 3 4; do (for j in $(seq 50); do sleep 120 & done; wait) & done; wait) </dev/null >/dev/null 2>&1 &'
    for _ in $(seq 400); do
        n=$(cat $(find /sys/fs/cgroup$DELEG/lxr/c -name cgroup.procs) | wc -l)
        [ "$n" -ge 150 ] && break; sleep 0.05
    done
    echo "$1_flood=$n"
}
# One container, c, made once (`launch`) and started again for each case (`start`): what the
# cases differ in is the start and the stop, and a container's creation costs seconds here.
cycle() { # tag, launch|start, runner (IN or U), env...
    tag=$1 verb=$2 run=$3; shift 3
    [ -f $LOGS/c/monitor.log ] && : >$LOGS/c/monitor.log
    t0=$EPOCHREALTIME
    if [ $verb = launch ]; then set -- "$@" lxr launch busybox c; else set -- "$@" lxr start c; fi
    $run env LXR_LOG=debug "$@" >/dev/null 2>$LXR_OUT/$tag.start.err || { echo "${tag}_start=failed"; cat $LXR_OUT/$tag.start.err >&2; return; }
    echo "${tag}_${verb}_s=$(awk -v a=$EPOCHREALTIME -v b=$t0 'BEGIN {printf "%.2f", a - b}')"
    echo "${tag}_entry=$(U lxr info c | sed -n 's/^Cgroup entry: //p')"
    init=$(U lxr info c | sed -n 's/^PID: //p')
    echo "${tag}_init_cgroup=$(sed -n 's/^0:://p' /proc/$init/cgroup)"
    echo "${tag}_clone3_log=$(grep -c 'clone3(CLONE_INTO_CGROUP): pid' $LOGS/c/monitor.log)"
    echo "${tag}_refused_log=$(grep -o 'clone3(CLONE_INTO_CGROUP) refused ([A-Z0-9]*' $LOGS/c/monitor.log | head -1)"
    echo "${tag}_exec=$(U lxr exec c -- cat /proc/1/comm | tr -d '\r')"
    pidns $init >$LXR_OUT/$tag.ns
}
finish() { # tag, stop|force|delete, env...
    tag=$1 how=$2; shift 2
    ns=$(cat $LXR_OUT/$tag.ns)
    t0=$EPOCHREALTIME
    case $how in
        stop) U env LXR_LOG=debug "$@" lxr stop c 2>$LXR_OUT/$tag.stop.err ;;
        force) U env LXR_LOG=debug "$@" lxr stop --force c 2>$LXR_OUT/$tag.stop.err ;;
        delete) U env LXR_LOG=debug "$@" lxr delete --force c 2>$LXR_OUT/$tag.stop.err ;;
    esac
    echo "${tag}_stop_status=$?"
    echo "${tag}_${how}_s=$(awk -v a=$EPOCHREALTIME -v b=$t0 'BEGIN {printf "%.2f", a - b}')"
    echo "${tag}_cgroup_kill=$(grep -c 'cgroup.kill written' $LXR_OUT/$tag.stop.err)"
    echo "${tag}_sigkill=$(grep -c 'SIGKILL to the init' $LXR_OUT/$tag.stop.err)"
    echo "${tag}_cgroup_left=$([ -e /sys/fs/cgroup$DELEG/lxr/c ] && echo yes || echo no)"
    echo "${tag}_procs_left=$(left_in_ns $ns)"
}
NO=LXR_TEST_WITHOUT=clone_into_cgroup,cgroup_kill
cycle c1 launch IN
flood c1
finish c1 force
cycle c2 start IN $NO
flood c2
finish c2 force $NO
cycle c3 start U
finish c3 stop
U lxr delete c >/dev/null
echo "cgroups_after=$(find /sys/fs/cgroup$DELEG/lxr -mindepth 1 -type d | wc -l)"
echo done=1
"#;

fn cycle(kernel: Kernel) {
    let t0 = std::time::Instant::now();
    // Three starts and two floods under TCG: ~2-4 min on a busy machine, more than vm::run's
    // default 300 s allows with a slow boot.
    let out = vm::Guest::new(kernel)
        .timeout(std::time::Duration::from_secs(420))
        .run(CYCLE);
    eprintln!("{kernel}: guest run {:?}", t0.elapsed());
    for l in out.stdout.lines().filter(|l| l.contains("_s=")) {
        eprintln!("{kernel}: {l}");
    }
    out.assert_success();
    let facts: BTreeMap<&str, &str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .collect();
    let fact = |k: &str| *facts.get(k).unwrap_or_else(|| panic!("no {k}: {out}"));
    assert_eq!(fact("done"), "1", "{out}");
    let deleg = fact("delegation");

    // From the delegation: clone3, exec, cgroup.kill, nothing left.
    assert_eq!(fact("c1_entry"), "clone3 (CLONE_INTO_CGROUP)", "{out}");
    assert_eq!(fact("c1_clone3_log"), "1", "{out}");
    assert_eq!(fact("c1_init_cgroup"), format!("{deleg}/lxr/c"), "{out}");
    assert_eq!(fact("c1_exec"), "init", "{out}");
    for c in ["c1", "c2"] {
        let n: u32 = fact(&format!("{c}_flood")).parse().unwrap();
        assert!(n >= 150, "{c}: a flood of {n}: {out}");
    }
    assert_eq!(fact("c1_stop_status"), "0", "{out}");
    assert_eq!(fact("c1_cgroup_kill"), "1", "{out}");
    assert_eq!(fact("c1_sigkill"), "0", "{out}");

    // The forced fallbacks: cgmanager's move, SIGKILL.
    assert_eq!(fact("c2_entry"), "moved by cgmanager", "{out}");
    assert_eq!(fact("c2_clone3_log"), "0", "{out}");
    assert_eq!(fact("c2_init_cgroup"), format!("{deleg}/lxr/c"), "{out}");
    assert_eq!(fact("c2_exec"), "init", "{out}");
    assert_eq!(fact("c2_stop_status"), "0", "{out}");
    assert_eq!(fact("c2_cgroup_kill"), "0", "{out}");
    assert_eq!(fact("c2_sigkill"), "1", "{out}");

    // From outside the delegation: the kernel refuses, cgmanager moves; the clean halt kills
    // nothing. (`delete --force` of a running container: `lxr_clone3.rs` on the host.)
    assert_eq!(fact("c3_entry"), "moved by cgmanager", "{out}");
    assert_eq!(
        fact("c3_refused_log"),
        "clone3(CLONE_INTO_CGROUP) refused (EACCES",
        "the kernel's common-ancestor rule: {out}"
    );
    assert_eq!(fact("c3_init_cgroup"), format!("{deleg}/lxr/c"), "{out}");
    assert_eq!(fact("c3_exec"), "init", "{out}");
    assert_eq!(fact("c3_stop_status"), "0", "{out}");
    assert_eq!(fact("c3_cgroup_kill"), "0", "a clean halt: {out}");
    assert_eq!(fact("c3_sigkill"), "0", "a clean halt: {out}");

    for c in ["c1", "c2", "c3"] {
        assert_eq!(fact(&format!("{c}_cgroup_left")), "no", "{c}: {out}");
        assert_eq!(fact(&format!("{c}_procs_left")), "0", "{c}: {out}");
    }
    assert_eq!(fact("cgroups_after"), "0", "{out}");
}

#[test]
fn guest_6_1_lxr_cycle_clone3_and_cgroup_kill() {
    cycle(Kernel::V6_1);
}

#[test]
fn guest_6_12_lxr_cycle_clone3_and_cgroup_kill() {
    cycle(Kernel::V6_12);
}
