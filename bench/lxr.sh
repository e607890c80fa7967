#!/usr/bin/env bash
# Benchmark: the cycle start → exec true → stop --force, for lxr and for LXC 5.0 (lxc-start,
# lxc-attach -- true, lxc-stop -k), on the same busybox rootfs, as the same unprivileged user
# (lxrtest1), in one run. lxr is measured twice: unconfined (no cgmanager, as this LXC runs:
# the user has no delegated cgroup for it) and with its cgroup from our cgmanager.
# Usage: sudo bench/lxr.sh   (N=20 cycles per runtime by default)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}

bash scripts/setup.sh >/dev/null
bash scripts/test-users.sh
cargo build --release -p lxr -p cgmanager
U=lxrtest1
UID_=$(id -u $U) GID_=$(id -g $U)
SUB=$(awk -F: -v u=$U '$1==u {print $2; exit}' /etc/subuid)

W=$(mktemp -d /tmp/lxr-bench.XXXXXX)
chmod 755 "$W"
cp target/release/lxr target/release/cgmanager "$W/"
DAEMON_PID="" CGS=()
cleanup() {
    as_user "$W/lxr" delete --force bench >/dev/null 2>&1 || true
    as_user lxc-stop -k -n bench -P "$W/lxc" >/dev/null 2>&1 || true
    [ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null || true
    sleep 0.3
    umount -l "$W/lxcroot" 2>/dev/null || true
    for d in "${CGS[@]}"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
as_user() {
    setpriv --reuid="$UID_" --regid="$GID_" --init-groups env -i HOME="$(getent passwd $U | cut -d: -f6)" \
        PATH=/usr/bin:/bin:/usr/sbin:/sbin XDG_DATA_HOME="$W/data" LXR_CGMANAGER="${CGM:-/nonexistent}" "$@"
}
mkdir -p "$W/data" "$W/lxc/bench"
chown -R "$UID_:$GID_" "$W/data" "$W/lxc"

# One rootfs for both: lxr's built-in busybox image, owned by the user's container root.
as_user "$W/lxr" launch busybox bench >/dev/null 2>&1
as_user "$W/lxr" stop --force bench
# lxr's data directory is private to the user (0700): LXC, whose container root must search
# every directory on the way to its rootfs, gets the same tree bound where it can reach it.
mkdir "$W/lxcroot"
mount --bind "$W/data/lxr/containers/bench/rootfs" "$W/lxcroot"
cat > "$W/lxc/bench/config" <<CONF
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
chown "$UID_:$GID_" "$W/lxc/bench/config"

# Our cgmanager, delegating a subtree below this script's own cgroups.
NAME="lxr-bench-$$"
for h in memory pids cpuset cpu freezer unified; do
    own=$(awk -F: -v h=$h '{n=split($2,a,","); for(i=1;i<=n;i++) if(a[i]==h) print $3} $1=="0" && h=="unified" {print $3}' /proc/self/cgroup | head -1)
    d="/sys/fs/cgroup/$h${own%/}/$NAME"
    mkdir "$d"; CGS+=("$d")
    if [ $h = cpuset ]; then cat "$d/../cpuset.cpus" > "$d/cpuset.cpus"; cat "$d/../cpuset.mems" > "$d/cpuset.mems"; fi
done
printf '[[delegate]]\nusers = ["%s"]\ncontrollers = ["memory", "pids", "cpuset", "cpu", "freezer", "unified"]\npath = "%%D/%s/%%u"\n' $U "$NAME" > "$W/policy"
"$W/cgmanager" --socket "$W/sock" --no-bus --policy "$W/policy" 2>"$W/cgmanager.log" & DAEMON_PID=$!
for _ in $(seq 100); do [ -S "$W/sock" ] && break; sleep 0.05; done

export W N
python3 - "$UID_" "$GID_" <<'PY'
import os, statistics, subprocess, sys, time
uid, gid = sys.argv[1], sys.argv[2]
W, N = os.environ["W"], int(os.environ["N"])
home = subprocess.run(["getent", "passwd", "lxrtest1"], capture_output=True, text=True).stdout.split(":")[5]
def run(cmd, cgm="/nonexistent"):
    env = ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin:/usr/sbin:/sbin", f"XDG_DATA_HOME={W}/data", f"LXR_CGMANAGER={cgm}"]
    t = time.perf_counter()
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups"] + env + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return dt
lxr, lxc = f"{W}/lxr", ["-n", "bench", "-P", f"{W}/lxc"]
cycles = {
    "lxr (unconfined)": lambda: [run([lxr, "start", "bench"]), run([lxr, "exec", "bench", "--", "true"]), run([lxr, "stop", "--force", "bench"])],
    "lxr (cgmanager)": lambda: [run([lxr, "start", "bench"], f"{W}/sock"), run([lxr, "exec", "bench", "--", "true"], f"{W}/sock"), run([lxr, "stop", "--force", "bench"], f"{W}/sock")],
    "LXC 5.0": lambda: [run(["lxc-start"] + lxc), run(["lxc-attach"] + lxc + ["--", "true"]), run(["lxc-stop", "-k"] + lxc)],
}
res = {k: [] for k in cycles}
for i in range(N + 2):
    for k, f in cycles.items():
        r = f()
        if i >= 2:  # two warm-up rounds
            res[k].append(r)
print(f"{'runtime':<18} {'start_ms':>9} {'exec_ms':>8} {'stop_ms':>8} {'cycle_ms':>9}   (medians of {N}, interleaved)")
med = {}
for k, rows in res.items():
    cols = [statistics.median(r[j] for r in rows) * 1000 for j in range(3)]
    cyc = statistics.median(sum(r) for r in rows) * 1000
    med[k] = cyc
    print(f"{k:<18} {cols[0]:9.1f} {cols[1]:8.1f} {cols[2]:8.1f} {cyc:9.1f}")
print(f"\nLXC cycle / lxr cycle: unconfined {med['LXC 5.0']/med['lxr (unconfined)']:.1f}x, "
      f"with cgmanager {med['LXC 5.0']/med['lxr (cgmanager)']:.1f}x   (target >= 3x)")
PY
