#!/usr/bin/env bash
# Soak (not CI): our lxcfs under 2 container readers in tight loops, cgroup churn (a container
# created, read from and destroyed every second) and a live upgrade (SIGUSR1 to a restamped
# binary) every minute, for DURATION seconds (default 600). Reports failed reads, read
# latency percentiles, upgrades done, and the daemon's RSS at start and end.
# Usage: sudo bench/soak.sh   (DURATION=600 UPGRADE_EVERY=60)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600} UPGRADE_EVERY=${UPGRADE_EVERY:-60}

bash scripts/setup.sh >/dev/null
cargo build --release -p lxcfs

W=$(mktemp -d /tmp/lxr-soak.XXXXXX)
chmod 755 "$W"
NAME="lxr-soak-$$"
DAEMON="" READERS=() CGS=()
cleanup() {
    for p in "${READERS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null || true
    sleep 1
    awk -v m="$W/mnt" '$5 == m {f=1} END {exit !f}' /proc/self/mountinfo && umount -l "$W/mnt"
    for d in "${CGS[@]}"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "$W"
}
trap cleanup EXIT

own() { awk -F: -v c="$1" '{n=split($2, a, ","); for (i=1;i<=n;i++) if (a[i]==c) print $3}' /proc/self/cgroup; }
for c in memory cpu; do
    d="/sys/fs/cgroup/$c$(own $c | sed 's|/$||')/$NAME"
    mkdir "$d"; CGS+=("$d")
done
MEM="${CGS[0]}" CPU="${CGS[1]}"

cp target/release/lxcfs "$W/lxcfs"
mkdir "$W/mnt"
"$W/lxcfs" -l -p "$W/pid" "$W/mnt" 2>"$W/log" & DAEMON=$!
for _ in $(seq 100); do [ -e "$W/mnt/proc/meminfo" ] && break; sleep 0.05; done

cat > "$W/reader.py" <<'PY'
import os, sys, time, array
mnt, out, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
files = [f"{mnt}/proc/{f}" for f in ("meminfo", "stat", "cpuinfo", "loadavg", "uptime")]
lat = array.array("I")
fails, errs = 0, []
t0 = time.monotonic()
while time.monotonic() - t0 < duration:
    for f in files:
        t = time.perf_counter()
        try:
            with open(f, "rb") as fh:
                if not fh.read():
                    raise OSError("empty read")
        except OSError as e:
            fails += 1
            if len(errs) < 5:
                errs.append(f"{f}: {e}")
        lat.append(min(int((time.perf_counter() - t) * 1e6), 2**32 - 1))
lat = sorted(lat)
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
with open(out, "w") as fh:
    fh.write(f"reads={len(lat)} fails={fails} p50_us={q(0.5)} p99_us={q(0.99)} max_us={lat[-1]} errors={errs}\n")
PY

for i in 1 2; do
    for d in "$MEM" "$CPU"; do mkdir "$d/reader$i"; done
    echo $((256 << 20)) > "$MEM/reader$i/memory.limit_in_bytes"
    sh -c "echo \$\$ > $MEM/reader$i/cgroup.procs; echo \$\$ > $CPU/reader$i/cgroup.procs; \
           exec unshare --pid --fork --mount-proc python3 $W/reader.py $W/mnt $W/reader$i.out $DURATION" &
    READERS+=($!)
done

rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$DAEMON/status"; }
RSS_START=$(rss)
echo "soak: ${DURATION}s, 2 readers, 1 container/s churn, upgrade every ${UPGRADE_EVERY}s; RSS at start $RSS_START"
start=$(date +%s) upgrades=0 churned=0 churn_fail=0
while [ $(( $(date +%s) - start )) -lt "$DURATION" ]; do
    t=$(date +%s)
    c="churn$t"
    mkdir "$MEM/$c" "$CPU/$c"
    echo $(( (64 + RANDOM % 256) << 20 )) > "$MEM/$c/memory.limit_in_bytes"
    sh -c "echo \$\$ > $MEM/$c/cgroup.procs; echo \$\$ > $CPU/$c/cgroup.procs; \
           exec unshare --pid --fork --mount-proc sh -c 'cat $W/mnt/proc/meminfo $W/mnt/proc/loadavg >/dev/null'" \
        || churn_fail=$((churn_fail + 1))
    rmdir "$MEM/$c" "$CPU/$c" 2>/dev/null || true
    churned=$((churned + 1))
    if [ $(( (t - start) % UPGRADE_EVERY )) -eq $((UPGRADE_EVERY - 1)) ]; then
        upgrades=$((upgrades + 1))
        python3 - "$W/lxcfs" "soak-$upgrades" <<'PY'
import os, sys
path, ident = sys.argv[1], sys.argv[2].encode()
b = bytearray(open(path, "rb").read())
at = b.index(b"LXCFS-BUILD-ID:") + 15
b[at:at + 33] = ident.ljust(33, b"\0")
open(path + ".new", "wb").write(b)
os.chmod(path + ".new", 0o755)
os.rename(path + ".new", path)
PY
        kill -USR1 "$DAEMON"
    fi
    sleep $(( t + 1 - $(date +%s) > 0 ? 1 : 0 ))
done
for p in "${READERS[@]}"; do wait "$p" || true; done
READERS=()
echo "containers churned: $churned (failed: $churn_fail), upgrades: $upgrades (serving: $(grep -c 'serving' "$W/log") generations)"
for i in 1 2; do echo "reader $i: $(cat "$W/reader$i.out")"; done
echo "daemon RSS: start $RSS_START, end $(rss)"
