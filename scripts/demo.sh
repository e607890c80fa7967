#!/usr/bin/env bash
# THE demo: from a fresh Debian 12 machine (as root), set up lxr's lxcfs at /var/lib/lxcfs and
# its cgmanager on /run/cgmanager/sock as services for the demo, a demo user (lxrdemo) with a
# subordinate id range and a delegation in cgmanager's policy, then — as that ordinary user —
# launch a busybox system container limited to 256 MiB and 1 CPU, and show what it sees
# next to what the host sees: free, nproc, getconf, uptime and /proc as each side reports them.
#   scripts/demo.sh          run the demo (the container, lxcfs and cgmanager keep running)
#   scripts/demo.sh --stop   delete the container, stop cgmanager, unmount lxcfs
set -euo pipefail
cd "$(dirname "$0")/.."

MNT=/var/lib/lxcfs
RUN=/run/lxr-demo
LXCFS_PID=$RUN/lxcfs.pid
CGM_PID=$RUN/cgmanager.pid
SOCK=/run/cgmanager/sock
USER_=lxrdemo
BIN=/usr/local/bin

mounted() { awk -v m="$MNT" '$5 == m {f=1} END {exit !f}' /proc/self/mountinfo; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
as_user() { runuser -u "$USER_" -- env LXR_CGMANAGER="$SOCK" "$@"; }

stop() {
    if id -u "$USER_" >/dev/null 2>&1 && [ -x "$BIN/lxr" ]; then
        as_user "$BIN/lxr" delete --force demo 2>/dev/null && echo "deleted container demo" || true
    fi
    if alive "$CGM_PID"; then
        as_user "$BIN/cgm" --socket "$SOCK" release all >/dev/null 2>&1 || true
        kill -TERM "$(cat "$CGM_PID")"; echo "stopped cgmanager"
    fi
    if alive "$LXCFS_PID"; then
        kill -TERM "$(cat "$LXCFS_PID")"
        for _ in $(seq 50); do mounted || break; sleep 0.1; done
        echo "stopped lxcfs"
    fi
    rm -f "$CGM_PID" "$LXCFS_PID"
    # The delegation's parent (lxr-demo), created by cgmanager below this script's cgroups.
    while IFS=: read -r id ctrls path; do
        [ "$id" = 0 ] && dir=/sys/fs/cgroup/unified || dir=/sys/fs/cgroup/${ctrls#name=}
        [ -d "$dir${path%/}/lxr-demo" ] && find "$dir${path%/}/lxr-demo" -depth -type d -exec rmdir {} \; 2>/dev/null
    done < /proc/self/cgroup
    true
}

if [ "${1:-}" = "--stop" ]; then
    stop
    exit 0
fi

bash scripts/setup.sh
cargo build --release -p lxcfs -p cgmanager -p lxr
install -m 0755 target/release/lxcfs target/release/cgmanager target/release/cgm target/release/lxr "$BIN/"
mkdir -p "$RUN"

# The demo user, with a home and 65536 subordinate ids (useradd adds them on Debian 12).
if ! id -u "$USER_" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh --comment "lxr demo user" "$USER_"
fi
for f in /etc/subuid /etc/subgid; do
    grep -q "^$USER_:" "$f" || usermod --add-subuids 3000000-3065535 --add-subgids 3000000-3065535 "$USER_"
done

# lxcfs.
if ! alive "$LXCFS_PID"; then
    if mounted; then
        echo "demo: $MNT is already mounted by something else (Debian's lxcfs?)." >&2
        echo "      stop it first (e.g. systemctl stop lxcfs, or umount -l $MNT)." >&2
        exit 1
    fi
    mkdir -p "$MNT"
    # Supervised: a crash of the serving daemon restarts it without breaking the container.
    "$BIN/lxcfs" --supervise -p "$LXCFS_PID" "$MNT" > "$RUN/lxcfs.log" 2>&1 &
    for _ in $(seq 100); do mounted && [ -e "$MNT/proc/meminfo" ] && break; sleep 0.05; done
    mounted || { echo "demo: lxcfs did not mount:"; cat "$RUN/lxcfs.log"; exit 1; } >&2
fi
echo "lxcfs:     mounted at $MNT (supervisor pid $(cat "$LXCFS_PID"), log $RUN/lxcfs.log; kill -USR1 upgrades it in place)"

# cgmanager, delegating <its cgroup>/lxr-demo/<user> to the demo user.
if ! alive "$CGM_PID"; then
    cat > "$RUN/delegation.conf" <<CONF
[[delegate]]
users = ["$USER_"]
controllers = ["all"]
path = "%D/lxr-demo/%u"
memory_max = "1G"
CONF
    "$BIN/cgmanager" --socket "$SOCK" --no-bus --policy "$RUN/delegation.conf" > "$RUN/cgmanager.log" 2>&1 &
    echo $! > "$CGM_PID"
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
    [ -S "$SOCK" ] || { echo "demo: cgmanager did not start:"; cat "$RUN/cgmanager.log"; exit 1; } >&2
fi
echo "cgmanager: serving on $SOCK (pid $(cat "$CGM_PID"), policy $RUN/delegation.conf)"
echo

# As the ordinary user: a system container with limits.
as_user "$BIN/lxr" delete --force demo >/dev/null 2>&1 || true
echo "\$ lxr launch busybox demo -c limits.memory=256MiB -c limits.cpu=1   (as $USER_)"
as_user "$BIN/lxr" launch busybox demo -c limits.memory=256MiB -c limits.cpu=1
as_user "$BIN/lxr" list
echo

SHOW='echo "\$ free -m"; free -m; echo; echo "\$ nproc; getconf _NPROCESSORS_ONLN"; nproc; getconf _NPROCESSORS_ONLN; echo; echo "\$ uptime"; uptime; echo; echo "\$ cat /proc/uptime"; cat /proc/uptime; echo; echo "\$ head -3 /proc/stat"; head -3 /proc/stat; echo; echo "\$ cat /proc/1/comm; id -u"; cat /proc/1/comm; id -u'
host_out=$(sh -c "$SHOW" 2>&1 | expand)
container_out=$(as_user "$BIN/lxr" exec demo -- sh -c "$SHOW" 2>&1 | expand)
pr -m -t -w 176 <(printf 'HOST\n====\n%s\n' "$host_out") \
    <(printf 'CONTAINER demo (lxr exec, as %s: 256 MiB, 1 CPU)\n====\n%s\n' "$USER_" "$container_out") | expand
echo
echo "Try: runuser -u $USER_ -- lxr exec demo -- sh"
echo "     runuser -u $USER_ -- lxr info demo"
echo "Clean up: scripts/demo.sh --stop"
