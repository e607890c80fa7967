#!/usr/bin/env bash
# Benchmark: our lxcfs vs Debian's lxcfs 5.0.3, mounted side by side in one run, read from
# inside a container (a cgroup below this script's own + a new pid namespace).
# Usage: sudo bench/run.sh   (ITERS=5000 by default; OURS_ARGS="--cache-ms 0" to render every read)
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-5000}

bash scripts/setup.sh >/dev/null
cargo build --release -p lxcfs -p lxr-bench
BENCH="$PWD/target/release/lxr-bench"

WORK=$(mktemp -d /tmp/lxr-bench.XXXXXX)
OURS_PID="" ANCHOR_PID="" DIRS=()
cleanup() {
    [ -n "$OURS_PID" ] && kill -TERM "$OURS_PID" 2>/dev/null || true
    [ -n "$ANCHOR_PID" ] && kill -TERM "$ANCHOR_PID" 2>/dev/null || true
    sleep 0.5
    for m in "$WORK/ours" "$WORK/anchor"; do
        awk -v m="$m" '$5 == m {f=1} END {exit !f}' /proc/self/mountinfo && umount -l "$m"
    done
    for d in "${DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/ours" "$WORK/anchor"
# shellcheck disable=SC2086 # OURS_ARGS is a list of options
target/release/lxcfs ${OURS_ARGS:-} -p "$WORK/ours.pid" "$WORK/ours" 2>"$WORK/ours.log" & OURS_PID=$!
/usr/bin/lxcfs -p "$WORK/anchor.pid" "$WORK/anchor" >"$WORK/anchor.log" 2>&1 & ANCHOR_PID=$!
for _ in $(seq 100); do
    [ -e "$WORK/ours/proc/meminfo" ] && [ -e "$WORK/anchor/proc/meminfo" ] && break
    sleep 0.05
done

NAME="lxr-bench-$$"
procs=""
for c in memory cpu cpuacct cpuset; do
    own=$(awk -F: -v c="$c" '{n=split($2, a, ","); for (i=1;i<=n;i++) if (a[i]==c) print $3}' /proc/self/cgroup)
    d="/sys/fs/cgroup/$c${own%/}/$NAME"
    mkdir "$d"
    DIRS=("$d" "${DIRS[@]}")
    procs="$procs $d/cgroup.procs"
    if [ "$c" = cpuset ]; then
        cat "$d/../cpuset.cpus" > "$d/cpuset.cpus"
        cat "$d/../cpuset.mems" > "$d/cpuset.mems"
    fi
    [ "$c" = memory ] && echo 1073741824 > "$d/memory.limit_in_bytes"
done

run() { # path readers -> "ops p50 p99 bytes", measured inside the container
    sh -c "for f in $procs; do echo \$\$ > \$f; done; exec unshare --fork --pid --mount-proc $BENCH $1 $ITERS $2"
}

printf '%-34s %-7s %3s %10s %9s %9s\n' file target readers ops/s p50_us p99_us
declare -A R
for readers in 1 2; do
    for spec in "meminfo:proc/meminfo" "stat:proc/stat" "cpuinfo:proc/cpuinfo"; do
        name=${spec%%:*} rel=${spec#*:}
        for t in ours anchor; do
            set -- $(run "$WORK/$t/$rel" "$readers")
            R[$name,$t,$readers]="$1 $2 $3"
            printf '%-34s %-7s %3s %10s %9s %9s\n' "$rel" "$t" "$readers" "$1" "$2" "$3"
        done
    done
    set -- $(run /proc/meminfo "$readers")
    R[native,$readers]="$1 $2 $3"
    printf '%-34s %-7s %3s %10s %9s %9s\n' /proc/meminfo native "$readers" "$1" "$2" "$3"
    set -- $(run "$WORK/ours/sys/devices/system/cpu/kernel_max" "$readers")
    R[floor,$readers]="$1 $2 $3"
    printf '%-34s %-7s %3s %10s %9s %9s\n' sys/devices/system/cpu/kernel_max floor "$readers" "$1" "$2" "$3"
done

echo
echo "ratios (targets: ours/lxcfs ops/s >= 4.0; ours p50 / floor p50 <= 1.3)"
printf '%-10s %3s %14s %16s\n' file readers ours/lxcfs p50/floor
for readers in 1 2; do
    read -r floor_ops floor_p50 _ <<<"${R[floor,$readers]}"
    for name in meminfo stat cpuinfo; do
        read -r o_ops o_p50 _ <<<"${R[$name,ours,$readers]}"
        read -r a_ops _ _ <<<"${R[$name,anchor,$readers]}"
        printf '%-10s %3s %14s %16s\n' "$name" "$readers" \
            "$(awk -v a="$o_ops" -v b="$a_ops" 'BEGIN {printf "%.2fx", a/b}')" \
            "$(awk -v a="$o_p50" -v b="$floor_p50" 'BEGIN {printf "%.2fx", a/b}')"
    done
done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
echo
echo "RSS after the run: ours $(rss "$OURS_PID") kB, lxcfs $(rss "$ANCHOR_PID") kB (target: ours <= lxcfs)"
