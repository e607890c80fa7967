#!/usr/bin/env bash
# THE demo: set the machine up, mount our lxcfs at /var/lib/lxcfs, start a shell as PID 1 of
# its own pid namespace inside a 256 MiB / 1-CPU cgroup, bind the lxcfs files over its /proc
# (as LXC's hook does), and show what it sees next to what the host sees.
#   scripts/demo.sh          run the demo (leaves lxcfs mounted at /var/lib/lxcfs)
#   scripts/demo.sh --stop   unmount and stop the daemon the demo started
set -euo pipefail
cd "$(dirname "$0")/.."

MNT=/var/lib/lxcfs
PIDFILE=/run/lxr-lxcfs.pid
BIN="$PWD/target/release/lxcfs"

mounted() { awk -v m="$MNT" '$5 == m {f=1} END {exit !f}' /proc/self/mountinfo; }

our_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid=$(cat "$PIDFILE")
    [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$BIN" ] && echo "$pid"
}

stop() {
    local pid
    if pid=$(our_pid); then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "stopped lxcfs (pid $pid)"
    else
        echo "no lxcfs started by the demo is running"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    stop
    exit 0
fi

bash scripts/setup.sh
cargo build --release -p lxcfs

if ! our_pid >/dev/null; then
    if mounted; then
        echo "demo: $MNT is already mounted by something else (Debian's lxcfs?)." >&2
        echo "      stop it first (e.g. systemctl stop lxcfs, or umount -l $MNT)." >&2
        exit 1
    fi
    mkdir -p "$MNT"
    "$BIN" -p "$PIDFILE" "$MNT" > /run/lxr-lxcfs.log 2>&1 &
    for _ in $(seq 100); do mounted && [ -e "$MNT/proc/meminfo" ] && break; sleep 0.05; done
    mounted || { echo "demo: lxcfs did not mount:"; cat /run/lxr-lxcfs.log; exit 1; } >&2
    echo "lxcfs (lxr) mounted at $MNT, pid $(cat "$PIDFILE"), log /run/lxr-lxcfs.log"
fi

# A cgroup below this script's own, in each v1 controller.
NAME="lxr-demo-$$"
DIRS=()
cleanup() {
    for d in "${DIRS[@]}"; do
        for _ in $(seq 50); do rmdir "$d" 2>/dev/null && break; [ -d "$d" ] || break; sleep 0.1; done
    done
}
trap cleanup EXIT
for c in memory cpu cpuacct cpuset; do
    own=$(awk -F: -v c="$c" '{n=split($2, a, ","); for (i=1;i<=n;i++) if (a[i]==c) print $3}' /proc/self/cgroup)
    d="/sys/fs/cgroup/$c${own%/}/$NAME"
    mkdir "$d"
    DIRS+=("$d")
done
mem=/sys/fs/cgroup/memory$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup | sed 's:/$::')/$NAME
cpu=/sys/fs/cgroup/cpu$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' /proc/self/cgroup | sed 's:/$::')/$NAME
cpuset=/sys/fs/cgroup/cpuset$(awk -F: '$2 ~ /(^|,)cpuset(,|$)/ {print $3}' /proc/self/cgroup | sed 's:/$::')/$NAME
echo 268435456 > "$mem/memory.limit_in_bytes"
echo 100000 > "$cpu/cpu.cfs_period_us"
echo 100000 > "$cpu/cpu.cfs_quota_us"
last=$(( $(nproc --all) - 1 ))
echo "$last" > "$cpuset/cpuset.cpus"
cat "$cpuset/../cpuset.mems" > "$cpuset/cpuset.mems"

SHOW='echo "\$ free -m"; free -m; echo; echo "\$ nproc"; nproc; echo; echo "\$ uptime"; uptime; echo; echo "\$ head -3 /proc/stat"; head -3 /proc/stat'

host_out=$(sh -c "$SHOW" 2>&1 | expand)
procs=""
for d in "${DIRS[@]}"; do procs="$procs $d/cgroup.procs"; done
# Inside: join the cgroups, then become PID 1 of a new pid + mount namespace and bind the
# lxcfs files over /proc and /sys/devices/system/cpu, like LXC's lxc.mount.hook.
container_out=$(sh -c "for f in $procs; do echo \$\$ > \$f; done; exec unshare --fork --pid --mount --mount-proc sh -c '
    sleep 1
    for f in meminfo cpuinfo stat uptime loadavg diskstats swaps; do mount --bind $MNT/proc/\$f /proc/\$f; done
    mount --bind $MNT/sys/devices/system/cpu /sys/devices/system/cpu
    $SHOW'" 2>&1 | expand)

echo
pr -m -t -w 150 <(printf 'HOST\n====\n%s\n' "$host_out") \
    <(printf 'CONTAINER (256 MiB, 1 CPU, own pid namespace, /proc via %s)\n====\n%s\n' "$MNT" "$container_out") | expand
echo
echo "lxcfs stays mounted at $MNT (pid $(cat "$PIDFILE")); stop it with: scripts/demo.sh --stop"
