#!/usr/bin/env bash
# Benchmark: our lxcfs on both transports (classic /dev/fuse loop, FUSE over io_uring), each
# with the default --cache-ms and with --cache-ms 0, against Debian's lxcfs 5.0.3, all mounted
# side by side in one run, read from inside a container (a cgroup below this script's own + a
# new pid namespace).
# Usage: sudo bench/run.sh   (ITERS=5000 by default; FILES="meminfo stat cpuinfo" by default)
# The io_uring rows need /sys/module/fuse/parameters/enable_uring: the script sets it to Y only
# while those daemons start (the kernel keeps io_uring on a connection that negotiated it) and
# puts back what it was; without the knob (kernel < 6.14) they are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-5000}
FILES=${FILES:-meminfo stat cpuinfo}
KNOB=/sys/module/fuse/parameters/enable_uring

bash scripts/setup.sh >/dev/null
cargo build --release -p lxcfs -p lxr-bench
BENCH="$PWD/target/release/lxr-bench"

WORK=$(mktemp -d /tmp/lxr-bench.XXXXXX)
declare -A PID
TARGETS=() DIRS=()
KNOB_WAS=""
cleanup() {
    [ -n "$KNOB_WAS" ] && echo "$KNOB_WAS" > "$KNOB"
    for t in "${TARGETS[@]}"; do kill -TERM "${PID[$t]}" 2>/dev/null || true; done
    sleep 0.5
    for t in "${TARGETS[@]}"; do
        m="$WORK/$t"
        awk -v m="$m" '$5 == m {f=1} END {exit !f}' /proc/self/mountinfo && umount -l "$m"
    done
    for d in "${DIRS[@]}"; do rmdir "$d" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

start() { # name binary args...
    local name=$1 bin=$2
    shift 2
    mkdir -p "$WORK/$name"
    "$bin" "$@" -p "$WORK/$name.pid" "$WORK/$name" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    TARGETS+=("$name")
    for _ in $(seq 100); do
        [ -e "$WORK/$name/proc/meminfo" ] && break
        sleep 0.05
    done
    [ -e "$WORK/$name/proc/meminfo" ] || { cat "$WORK/$name.log"; exit 1; }
}

start classic target/release/lxcfs --io-uring=off
start classic-c0 target/release/lxcfs --io-uring=off --cache-ms 0
if [ -e "$KNOB" ]; then
    KNOB_WAS=$(cat "$KNOB")
    echo Y > "$KNOB"
    start uring target/release/lxcfs --io-uring=on
    start uring-c0 target/release/lxcfs --io-uring=on --cache-ms 0
    echo "$KNOB_WAS" > "$KNOB"
    KNOB_WAS=""
    grep -q "serving over io_uring" "$WORK/uring.log" || { cat "$WORK/uring.log"; exit 1; }
else
    echo "no $KNOB: no io_uring rows (kernel < 6.14 or CONFIG_FUSE_IO_URING off)" >&2
fi
start lxcfs /usr/bin/lxcfs

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
TCK=$(getconf CLK_TCK)
cpu() { # a daemon's user + system time so far, in µs (exited threads included)
    awk -v t="$TCK" '{printf "%.0f", ($14 + $15) * 1e6 / t}' "/proc/$1/stat"
}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

printf '%-12s %-10s %3s %10s %9s %9s %11s\n' file target readers ops/s p50_us p99_us cpu_us/read
declare -A R
for readers in 1 2; do
    for name in $FILES; do
        for t in "${TARGETS[@]}"; do
            before=$(cpu "${PID[$t]}")
            set -- $(run "$WORK/$t/proc/$name" "$readers")
            after=$(cpu "${PID[$t]}")
            # warm-up reads (100 a reader) included in the CPU time
            per=$(awk -v a="$before" -v b="$after" -v n="$(( (ITERS + 100) * readers ))" 'BEGIN {printf "%.1f", (b - a) / n}')
            R[$name,$t,$readers]="$1"
            printf '%-12s %-10s %3s %10s %9s %9s %11s\n' "$name" "$t" "$readers" "$1" "$2" "$3" "$per"
        done
    done
done

echo
echo "ops/s over lxcfs 5.0.3's (target: >= 4.0 with --cache-ms 0, i.e. the -c0 columns)"
printf '%-12s %3s' file readers
for t in "${TARGETS[@]}"; do [ "$t" = lxcfs ] || printf ' %10s' "$t"; done
echo
for readers in 1 2; do
    for name in $FILES; do
        printf '%-12s %3s' "$name" "$readers"
        for t in "${TARGETS[@]}"; do
            [ "$t" = lxcfs ] && continue
            printf ' %10s' "$(awk -v a="${R[$name,$t,$readers]}" -v b="${R[$name,lxcfs,$readers]}" 'BEGIN {printf "%.2fx", a/b}')"
        done
        echo
    done
done
echo
printf 'RSS after the run (kB, target: ours <= lxcfs):'
for t in "${TARGETS[@]}"; do printf ' %s %s' "$t" "$(rss "${PID[$t]}")"; done
echo
