#!/usr/bin/env bash
# Benchmark (issue 18): the cycle start → exec true → stop --force of a busybox container in the
# pure cgroup v2 guest (scripts/vm.sh, Debian 12 on 6.1 and 6.12, TCG), for
#   lxr (clone3)    — lxr as lxrtest1 from a cgroup inside its cgmanager delegation: the monitor
#                     starts the container in its cgroup with clone3(CLONE_INTO_CGROUP), the
#                     stop kills with cgroup.kill;
#   lxr (fallback)  — the same with LXR_TEST_WITHOUT=clone_into_cgroup,cgroup_kill: cgmanager
#                     moves the container's first process (a cgroup.procs write), the stop
#                     SIGKILLs the init;
#   LXC 5.0         — Debian's lxc-start -d / lxc-attach -- true / lxc-stop -k on the same
#                     rootfs (lxr's busybox image, bound where LXC's container root can reach
#                     it), unprivileged as the same user, started from the same cgroup inside
#                     the same delegation (LXC makes its own lxc.monitor/lxc.payload cgroups
#                     there): like for like, both with a cgroup.
# Neither uses lxcfs. One warm-up round, then N interleaved rounds; medians per step and per
# cycle, and ratios. Release binaries are shared in as /lxr/bin.
#
# Usage: sudo bench/v2-cycle.sh     (N=10, KERNELS="6.1 6.12" by default)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
KERNELS=${KERNELS:-"6.1 6.12"}

cargo build --release -p lxr -p cgmanager
BIN=$(mktemp -d /tmp/lxr-v2bench-bin.XXXXXX)
OUT=$(mktemp -d /tmp/lxr-v2bench-out.XXXXXX)
trap 'rm -rf "$BIN" "$OUT"' EXIT
chmod 755 "$BIN"
cp target/release/lxr target/release/cgmanager target/release/cgm "$BIN/"
# The guest's part is the end of this file.
sed -n '/^# --- guest ---$/,$p' "$0" >"$OUT/guest.sh"
for k in $KERNELS; do
    echo "== kernel $k (N=$N)"
    bash scripts/vm.sh run --kernel "$k" --bin "$BIN" --results "$OUT" --timeout 1500 -- \
        env N="$N" bash /lxr/out/guest.sh
done
exit 0

# --- guest ---
set -euo pipefail
export PATH=/lxr/bin:$PATH
# The run unit's cgroup is delegated: leave it for a leaf, so cgmanager can enable controllers.
SELF=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
mkdir -p "$SELF/script" && echo $$ >"$SELF/script/cgroup.procs"
mkdir -p /run/cgmanager /etc/cgmanager
printf '[[delegate]]\nusers = ["lxrtest1"]\ncontrollers = ["all"]\npath = "%%D/users/%%u"\n' \
    >/etc/cgmanager/delegation.conf
cgmanager --socket /run/cgmanager/sock --no-bus --policy /etc/cgmanager/delegation.conf \
    2>/tmp/cgmanager.log &
for _ in $(seq 200); do [ -S /run/cgmanager/sock ] && break; sleep 0.05; done

U=lxrtest1
UID_=$(id -u $U) GID_=$(id -g $U)
SUB=$(awk -F: -v u=$U '$1==u {print $2; exit}' /etc/subuid)
W=/tmp/bench
mkdir -p $W/data $W/lxc/bench $W/lxcroot
chmod 755 $W
touch $W/lxc.log && chown "$UID_:$GID_" $W/lxc.log
chown -R "$UID_:$GID_" $W/data $W/lxc
as_user() {
    setpriv --reuid="$UID_" --regid="$GID_" --init-groups env -i HOME=/home/$U \
        PATH=/lxr/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_DATA_HOME=$W/data LXR_LXCFS=/nonexistent "$@"
}
# This script (and so every command it runs) moves into <delegation>/bench, which the user
# made with `cgm enter` — as a login session arranged that way would be.
DELEG=$(as_user cgm delegate unified | awk '{print $2}')
as_user sh -c 'cgm enter unified bench $$ >/dev/null'
echo $$ >"/sys/fs/cgroup$DELEG/bench/cgroup.procs"
echo "cgroup: $(sed -n 's/^0:://p' /proc/self/cgroup)"

as_user lxr launch busybox bench >/dev/null
echo "lxr: $(as_user lxr info bench | grep 'Cgroup entry')"
as_user lxr stop --force bench
mount --bind $W/data/lxr/containers/bench/rootfs $W/lxcroot
cat >$W/lxc/bench/config <<CONF
lxc.uts.name = bench
lxc.rootfs.path = dir:$W/lxcroot
lxc.idmap = u 0 $SUB 65536
lxc.idmap = g 0 $SUB 65536
lxc.net.0.type = empty
lxc.init.cmd = /sbin/init
lxc.signal.halt = SIGUSR1
lxc.tty.max = 0
lxc.pty.max = 1
lxc.autodev = 1
lxc.mount.auto = proc:mixed sys:ro
# The guest's kernel has AppArmor but no profiles loaded (lxr uses none either).
lxc.apparmor.profile = unconfined
CONF
chown "$UID_:$GID_" $W/lxc/bench/config

# The guest has no python: bash's $EPOCHREALTIME around each command, awk for the medians.
run() { # label step cmd... ; appends "label step seconds" to $W/times
    local label=$1 step=$2 t0 t1
    shift 2
    t0=$EPOCHREALTIME
    as_user "$@" >/dev/null 2>$W/err || {
        echo "$label $step: $(cat $W/err)" >&2
        [ -f $W/lxc.log ] && grep -E 'ERROR|WARN' $W/lxc.log | tail -20 >&2
        exit 1
    }
    t1=$EPOCHREALTIME
    [ "$ROUND" -ge 1 ] && echo "$label $step $(awk -v a="$t1" -v b="$t0" 'BEGIN {print a - b}')" >>$W/times
    return 0
}
NO=LXR_TEST_WITHOUT=clone_into_cgroup,cgroup_kill
LXC=(-n bench -P $W/lxc)
: >$W/times
for ROUND in $(seq 0 "$N"); do # round 0 is the warm-up
    run clone3 start lxr start bench
    [ "$ROUND" = 0 ] && echo "lxr (clone3): $(as_user lxr info bench | grep 'Cgroup entry')"
    run clone3 exec lxr exec bench -- true
    run clone3 stop lxr stop --force bench
    : >$W/data/lxr/run/bench/monitor.log
    run fallback start env LXR_LOG=debug $NO lxr start bench
    [ "$ROUND" -ge 1 ] && sed -n 's/.*cgmanager moved pid [0-9]* in \([0-9.]*\)\(m\?s\).*/\1 \2/p' \
        $W/data/lxr/run/bench/monitor.log | awk '{print "fallback enter", ($2 == "ms" ? $1 / 1000 : $1)}' >>$W/times
    [ "$ROUND" = 0 ] && echo "lxr (fallback): $(as_user lxr info bench | grep 'Cgroup entry')"
    run fallback exec env $NO lxr exec bench -- true
    run fallback stop env $NO lxr stop --force bench
    run lxc start lxc-start -d -o $W/lxc.log -l WARN "${LXC[@]}"
    run lxc exec lxc-attach "${LXC[@]}" -- true
    run lxc stop lxc-stop -k "${LXC[@]}"
done
awk -v n="$N" -v rel="$(uname -r)" '
function median(a, k,   i, j, t) { # sorts a[1..k]
    for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
{ c = ++cnt[$1, $2]; v[$1, $2, c] = $3; if ($2 != "enter") cyc[$1, c] += $3 }
END {
    split("clone3 fallback lxc", L, " "); split("start exec stop", S, " ")
    name["clone3"] = "lxr (clone3)"; name["fallback"] = "lxr (fallback)"; name["lxc"] = "LXC 5.0"
    printf "%-16s %9s %8s %8s %9s   (medians of %d, interleaved, kernel %s)\n", "runtime", "start_ms", "exec_ms", "stop_ms", "cycle_ms", n, rel
    for (i = 1; i <= 3; i++) {
        l = L[i]
        for (j = 1; j <= 3; j++) { delete a; for (k = 1; k <= n; k++) a[k] = v[l, S[j], k]; m[l, j] = median(a, n) * 1000 }
        delete a; for (k = 1; k <= n; k++) a[k] = cyc[l, k]; m[l, 4] = median(a, n) * 1000
        printf "%-16s %9.1f %8.1f %8.1f %9.1f\n", name[l], m[l, 1], m[l, 2], m[l, 3], m[l, 4]
    }
    delete a; for (k = 1; k <= cnt["fallback", "enter"]; k++) a[k] = v["fallback", "enter", k]
    if (k > 1) printf "of the fallback start, cgmanager moving the first process (monitor.log): median %.1f ms of %d\n", median(a, k - 1) * 1000, k - 1
    printf "fallback / clone3: start %.2fx, stop %.2fx, cycle %.2fx\n", m["fallback", 1] / m["clone3", 1], m["fallback", 3] / m["clone3", 3], m["fallback", 4] / m["clone3", 4]
    printf "LXC / lxr (clone3): start %.2fx, exec %.2fx, stop %.2fx, cycle %.2fx\n", m["lxc", 1] / m["clone3", 1], m["lxc", 2] / m["clone3", 2], m["lxc", 3] / m["clone3", 3], m["lxc", 4] / m["clone3", 4]
}' $W/times
as_user lxr delete --force bench >/dev/null 2>&1 || true
umount $W/lxcroot
