# Guest-side helpers of tests/tests/v2_lxcfs.rs (bash, root, in the v2 guest of e2e::vm): the
# run unit's delegated cgroup turned into a tree of containers' cgroups, lxcfs daemons (ours
# and Debian's 5.0.3) on temp mounts, and containers (a process in a new cgroup, pid and mount
# namespace, inside a cgroup of its own). Output for the host is sections: a line
# `@@@ <key>` followed by the text; `section` writes one.
set -euo pipefail

# The run unit's cgroup (Delegate=yes): ours to shape.
UNIT=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
OURS=/lxr/bin/lxcfs
DEBIAN=/usr/bin/lxcfs
# A tmpfs: what the containers write here is not I/O their cgroups are charged for.
W=$(mktemp -d /tmp/v2lxcfs.XXXXXX)
mount -t tmpfs -o size=1g,mode=0755 v2lxcfs "$W"
export UNIT OURS DEBIAN W

section() {
    echo "@@@ $1"
    shift
    "$@" 2>&1 || echo "(exit status $?)"
}

# v2's no-internal-processes rule: the unit's processes (this script and vm.sh's runner above
# it) move to a leaf, `runner`, before the unit's cgroup.subtree_control can enable anything.
enter_leaf() {
    mkdir -p "$UNIT/runner"
    local p
    for p in $(cat "$UNIT/cgroup.procs"); do
        echo "$p" >"$UNIT/runner/cgroup.procs" 2>/dev/null || true
    done
    echo "+cpuset +cpu +io +memory +pids" >"$UNIT/cgroup.subtree_control"
}

# cg REL [FILE=VALUE ...]: make $UNIT/REL and write its files; prints the path.
cg() {
    local dir=$UNIT/$1 kv
    shift
    mkdir -p "$dir"
    for kv in "$@"; do
        echo "${kv#*=}" >"$dir/${kv%%=*}"
    done
    echo "$dir"
}

# start_daemon NAME BIN [ARG...]: BIN on $W/NAME (pidfile $W/NAME.pid, log $W/NAME.log),
# returning once the mount serves.
start_daemon() {
    local name=$1 bin=$2 i
    shift 2
    mkdir -p "$W/$name"
    "$bin" "$@" -p "$W/$name.pid" "$W/$name" >"$W/$name.log" 2>&1 &
    echo $! >"$W/$name.daemon"
    for i in $(seq 400); do
        if mountpoint -q "$W/$name" && [ -e "$W/$name/proc/meminfo" ]; then
            return 0
        fi
        sleep 0.05
    done
    echo "start_daemon: $name ($bin $*) did not mount:" >&2
    cat "$W/$name.log" >&2
    return 1
}

# in_container CGROUP SCRIPT: run SCRIPT (sh) as pid 1 of a new pid, cgroup and mount
# namespace (its own /proc) inside CGROUP, the way a container's init runs; waits for it.
in_container() {
    (
        echo "$BASHPID" >"$1/cgroup.procs"
        exec unshare -C -p -m -f --mount-proc --kill-child sh -c "$2"
    )
}

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds, or fail saying WHAT.
wait_for() {
    local until=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        if [ "$SECONDS" -ge "$until" ]; then
            echo "timed out ($what)" >&2
            return 1
        fi
        sleep 0.1
    done
}
