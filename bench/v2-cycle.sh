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
CONF
chown "$UID_:$GID_" $W/lxc/bench/config

export W N UID_ GID_ U
python3 - <<'PY'
import os, statistics, subprocess, sys, time
W, N, uid, gid, user = os.environ["W"], int(os.environ["N"]), os.environ["UID_"], os.environ["GID_"], os.environ["U"]
def run(cmd, extra=()):
    env = ["env", "-i", f"HOME=/home/{user}", "PATH=/lxr/bin:/usr/bin:/bin:/usr/sbin:/sbin",
           f"XDG_DATA_HOME={W}/data", "LXR_LXCFS=/nonexistent", *extra]
    t = time.perf_counter()
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups"] + env + cmd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return dt, r.stdout
NO = ["LXR_TEST_WITHOUT=clone_into_cgroup,cgroup_kill"]
lxc = ["-n", "bench", "-P", f"{W}/lxc"]
def lxr_cycle(extra):
    def f():
        s = run(["lxr", "start", "bench"], extra)[0]
        entry = [l for l in run(["lxr", "info", "bench"])[1].splitlines() if l.startswith("Cgroup entry")]
        e = run(["lxr", "exec", "bench", "--", "true"], extra)[0]
        k = run(["lxr", "stop", "--force", "bench"], extra)[0]
        return [s, e, k], entry
    return f
def lxc_cycle():
    s = run(["lxc-start", "-d"] + lxc)[0]
    e = run(["lxc-attach"] + lxc + ["--", "true"])[0]
    k = run(["lxc-stop", "-k"] + lxc)[0]
    return [s, e, k], []
cycles = {"lxr (clone3)": lxr_cycle([]), "lxr (fallback)": lxr_cycle(NO), "LXC 5.0": lxc_cycle}
res = {k: [] for k in cycles}
seen = {}
for i in range(N + 1):
    for k, f in cycles.items():
        r, entry = f()
        seen.setdefault(k, entry)
        if i >= 1:  # one warm-up round
            res[k].append(r)
for k, e in seen.items():
    if e:
        print(f"{k}: {e[0]}")
print(f"{'runtime':<16} {'start_ms':>9} {'exec_ms':>8} {'stop_ms':>8} {'cycle_ms':>9}   (medians of {N}, interleaved, kernel {os.uname().release})")
med = {}
for k, rows in res.items():
    cols = [statistics.median(r[j] for r in rows) * 1000 for j in range(3)]
    cyc = statistics.median(sum(r) for r in rows) * 1000
    med[k] = cols + [cyc]
    print(f"{k:<16} {cols[0]:9.1f} {cols[1]:8.1f} {cols[2]:8.1f} {cyc:9.1f}")
c, f, x = med["lxr (clone3)"], med["lxr (fallback)"], med["LXC 5.0"]
print(f"fallback / clone3: start {f[0]/c[0]:.2f}x, stop {f[2]/c[2]:.2f}x, cycle {f[3]/c[3]:.2f}x")
print(f"LXC / lxr (clone3): start {x[0]/c[0]:.2f}x, exec {x[1]/c[1]:.2f}x, stop {x[2]/c[2]:.2f}x, cycle {x[3]/c[3]:.2f}x")
PY
as_user lxr delete --force bench >/dev/null 2>&1 || true
umount $W/lxcroot
