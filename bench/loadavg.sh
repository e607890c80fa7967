#!/usr/bin/env bash
# Benchmark: per-container /proc/loadavg at scale (-l), Debian's lxcfs 5.0.3 against ours, side
# by side in one run: N cgroups (default 1000) in the v1 cpu hierarchy, T sleeping tasks each
# (default 10), each container read once through both mounts (both daemons then refresh all
# of them every 5 s). Over WINDOW seconds (default 30): each daemon's CPU time per refresh and
# per task, and the latency of a container's loadavg reads taken every 50 ms meanwhile (a
# refresh that holds a lock shows up there: lxcfs #504).
# Usage: sudo bench/loadavg.sh   (N=1000 T=10 WINDOW=30)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000} T=${T:-10} WINDOW=${WINDOW:-30}

bash scripts/setup.sh >/dev/null
cargo build --release -p lxcfs

W=$(mktemp -d /tmp/lxr-loadavg.XXXXXX)
own=$(awk -F: '{n=split($2, a, ","); for (i=1;i<=n;i++) if (a[i]=="cpu") print $3}' /proc/self/cgroup)
CPU=$(for m in /sys/fs/cgroup/cpu /sys/fs/cgroup/cpu,cpuacct; do [ -e "$m/tasks" ] && echo "$m" && break; done)
BASE="$CPU${own%/}/lxr-loadavg-$$"
SLEEPERS=() OURS_PID="" ANCHOR_PID=""
cleanup() {
    for p in "${SLEEPERS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait "${SLEEPERS[@]}" 2>/dev/null || true
    [ -n "$OURS_PID" ] && kill -TERM "$OURS_PID" 2>/dev/null || true
    [ -n "$ANCHOR_PID" ] && kill -TERM "$ANCHOR_PID" 2>/dev/null || true
    sleep 1
    for m in "$W/ours" "$W/anchor"; do
        awk -v m="$m" '$5 == m {f=1} END {exit !f}' /proc/self/mountinfo && umount -l "$m"
    done
    [ -d "$BASE" ] && find "$BASE" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$BASE" ] && rmdir "$BASE" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/ours" "$W/anchor" "$BASE"
target/release/lxcfs -l -p "$W/ours.pid" "$W/ours" 2>"$W/ours.log" & OURS_PID=$!
/usr/bin/lxcfs -l -p "$W/anchor.pid" "$W/anchor" >"$W/anchor.log" 2>&1 & ANCHOR_PID=$!
for _ in $(seq 100); do
    [ -e "$W/ours/proc/loadavg" ] && [ -e "$W/anchor/proc/loadavg" ] && break
    sleep 0.05
done

echo "creating $N cgroups x $T sleeping tasks..."
for i in $(seq "$N"); do
    mkdir "$BASE/c$i"
    for _ in $(seq "$T"); do
        sleep 100000 & SLEEPERS+=($!)
        echo $! > "$BASE/c$i/cgroup.procs"
    done
done
echo "registering every container with both daemons..."
for i in $(seq "$N"); do
    sh -c "echo \$\$ > $BASE/c$i/cgroup.procs; cat $W/anchor/proc/loadavg $W/ours/proc/loadavg >/dev/null"
done
sleep 6

export W BASE WINDOW N T OURS_PID ANCHOR_PID
python3 - <<'PY'
import os, statistics, time
W, BASE = os.environ["W"], os.environ["BASE"]
WINDOW, N, T = int(os.environ["WINDOW"]), int(os.environ["N"]), int(os.environ["T"])
pids = {"lxcfs 5.0.3": int(os.environ["ANCHOR_PID"]), "ours": int(os.environ["OURS_PID"])}
mounts = {"lxcfs 5.0.3": f"{W}/anchor", "ours": f"{W}/ours"}
tck = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tck
# The reader sits in the first container.
with open(f"{BASE}/c1/cgroup.procs", "w") as f:
    f.write(str(os.getpid()))
c0 = {k: cpu(p) for k, p in pids.items()}
lat = {k: [] for k in pids}
t0 = time.monotonic()
sample = {}
while time.monotonic() - t0 < WINDOW:
    for k, m in mounts.items():
        t = time.perf_counter()
        sample[k] = open(f"{m}/proc/loadavg").read().strip()
        lat[k].append((time.perf_counter() - t) * 1e6)
    time.sleep(0.05)
elapsed = time.monotonic() - t0
refreshes = elapsed / 5
print(f"{N} containers x {T} tasks, {elapsed:.0f} s window ({refreshes:.1f} refreshes)")
print(f"{'daemon':<12} {'cpu_s':>7} {'ms/refresh':>11} {'us/task':>8} {'read_p50_us':>12} {'read_p99_us':>12} {'read_max_us':>12}  loadavg in c1")
per = {}
for k, p in pids.items():
    used = cpu(p) - c0[k]
    per[k] = used / refreshes
    l = sorted(lat[k])
    p99 = l[int(len(l) * 0.99) - 1]
    print(f"{k:<12} {used:7.2f} {per[k]*1000:11.1f} {per[k]/(N*T)*1e6:8.2f} {statistics.median(l):12.0f} {p99:12.0f} {max(l):12.0f}  {sample[k]}")
print(f"\nlxcfs / ours CPU per refresh: {per['lxcfs 5.0.3']/max(per['ours'], 1e-9):.1f}x   (target >= 6x)")
PY
