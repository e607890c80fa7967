#!/usr/bin/env bash
# Benchmark: a Debian 12 systemd container from start to systemd's final state, and its stop,
# for lxr, LXC 5.0 and rootless Podman 4.3 (bench/podman-systemd.sh, which installs podman and
# runc; PODMAN=0 leaves that row out), on the same rootfs
# (scripts/build-image.sh debian12, launched once by lxr and bound where LXC can reach it), as
# the same unprivileged user (lxrtest1), with the same delegated cgroups: our cgmanager
# delegates every hierarchy to the user; lxr asks it for the container's cgroups, LXC is started
# from a process the user moved into that delegation with `cgm enter all lxc` (what a login
# session delegated by systemd gives LXC elsewhere). Neither side uses lxcfs.
#
# One round, per runtime (interleaved, N rounds after one warm-up, medians):
#   start  — `lxr start` (returns once systemd reported READY=1) / `lxc-start` (returns once the
#            init runs);
#   ready  — from the start command to systemd's own verdict (`systemctl is-system-running
#            --wait` through `lxr exec` / `lxc-attach`, retried while systemd's bus is not up yet):
#            the time to the final state, `running` or `degraded`;
#   stop   — `lxr stop` / `lxc-stop` (both SIGRTMIN+3 to systemd, waiting for it to halt);
#   systemd — systemd's own account of its boot (`systemd-analyze`: "Startup finished in … 
#            (userspace)"), the part of `ready` no runtime can shorten.
#
# Usage: sudo bench/systemd.sh   (N=7 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-7}

bash scripts/setup.sh >/dev/null
bash scripts/test-users.sh
mapfile -t IMAGE < <(bash scripts/build-image.sh debian12)
META=${IMAGE[0]} ROOTFS=${IMAGE[1]}
cargo build --release -p lxr -p cgmanager
U=lxrtest1
UID_=$(id -u $U) GID_=$(id -g $U)
SUB=$(awk -F: -v u=$U '$1==u {print $2; exit}' /etc/subuid)

W=$(mktemp -d /tmp/lxr-sdbench.XXXXXX)
chmod 755 "$W"
cp target/release/lxr target/release/cgmanager target/release/cgm "$W/"
DAEMON_PID="" CGS=()
cleanup() {
    if declare -F podman_cleanup >/dev/null; then podman_cleanup; fi
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
    setpriv --reuid="$UID_" --regid="$GID_" --init-groups env -i HOME="$W/home" \
        PATH=/usr/bin:/bin:/usr/sbin:/sbin XDG_DATA_HOME="$W/data" LXR_CGMANAGER="$W/sock" \
        LXR_LXCFS=/nonexistent "$@"
}
mkdir -p "$W/data" "$W/home" "$W/lxc/bench" "$W/lxcroot"
chown -R "$UID_:$GID_" "$W/data" "$W/home" "$W/lxc"

# Our cgmanager, delegating every hierarchy below this script's own cgroups (policy defaults).
NAME="lxr-sdbench-$$"
for m in /sys/fs/cgroup/*; do
    [ -d "$m" ] && [ ! -L "$m" ] || continue
    h=$(basename "$m")
    own=$(awk -F: -v h="$h" '$2==h || $2=="name="h || ($1=="0" && h=="unified") {print $3; exit}' /proc/self/cgroup)
    d="$m${own%/}/$NAME"
    mkdir "$d"; CGS+=("$d")
    if [ "$h" = cpuset ]; then cat "$d/../cpuset.cpus" > "$d/cpuset.cpus"; cat "$d/../cpuset.mems" > "$d/cpuset.mems"; fi
done
printf '[[delegate]]\nusers = ["%s"]\ncontrollers = ["all"]\npath = "%%D/%s/%%u"\n' $U "$NAME" > "$W/policy"
"$W/cgmanager" --socket "$W/sock" --no-bus --policy "$W/policy" 2>"$W/cgmanager.log" & DAEMON_PID=$!
for _ in $(seq 100); do [ -S "$W/sock" ] && break; sleep 0.05; done

# The rootfs: lxr's container made from the image (owned by the user's container root), booted
# once so both runtimes start from a system that has booted before (machine id, journal).
as_user "$W/lxr" image import "$META" "$ROOTFS" --alias debian12 >/dev/null
as_user "$W/lxr" launch debian12 bench >/dev/null
as_user "$W/lxr" exec -T bench -- systemctl is-system-running --wait >/dev/null || true
as_user "$W/lxr" stop bench
# lxr's data directory is private (0700): LXC's container root gets the same tree bound where it
# can search its way to it.
mount --bind "$W/data/lxr/containers/bench/rootfs" "$W/lxcroot"
cat > "$W/lxc/bench/config" <<CONF
lxc.include = /usr/share/lxc/config/common.conf
lxc.include = /usr/share/lxc/config/userns.conf
lxc.arch = $(uname -m)
lxc.uts.name = bench
lxc.rootfs.path = dir:$W/lxcroot
lxc.idmap = u 0 $SUB 65536
lxc.idmap = g 0 $SUB 65536
lxc.net.0.type = empty
CONF
chown "$UID_:$GID_" "$W/lxc/bench/config"
# Every command of both runtimes starts from the user's delegation (cgm enter), then waits for
# the go: the clock runs from the go, so the move costs neither side anything.
cat > "$W/go.sh" <<GO
#!/bin/sh
"$W/cgm" --socket "$W/sock" enter all lxc \$\$ >/dev/null || exit 111
echo ready
read -r _
exec "\$@"
GO
chmod 755 "$W/go.sh"

# Rootless Podman: `podman import` of the same rootfs into the user's native-overlay storage.
export W UID_ GID_ ROOTFS_DIR="$W/data/lxr/containers/bench/rootfs" CGM="$W/cgm" SOCK="$W/sock"
PODMAN=${PODMAN:-1}
# shellcheck source=bench/podman-systemd.sh
. bench/podman-systemd.sh
[ "$PODMAN" = 1 ] && podman_setup

export N PODMAN
PYTHONPATH=bench python3 - "$UID_" "$GID_" <<'PY'
import os, statistics, subprocess, sys
from sdround import User
uid, gid = sys.argv[1], sys.argv[2]
W, N = os.environ["W"], int(os.environ["N"])
user = User(uid, gid, ["env", "-i", f"HOME={W}/home", "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
                       f"XDG_DATA_HOME={W}/data", f"LXR_CGMANAGER={W}/sock",
                       "LXR_LXCFS=/nonexistent"], f"{W}/go.sh", cwd=None)
lxr = f"{W}/lxr"
lxc = ["-n", "bench", "-P", f"{W}/lxc"]
rt = {
    "lxr": ([lxr, "start", "bench"], [lxr, "exec", "-T", "bench", "--"], [lxr, "stop", "bench"]),
    "LXC 5.0": (["lxc-start"] + lxc, ["lxc-attach"] + lxc + ["--"], ["lxc-stop"] + lxc),
}
def podman_round():
    # bench/podman-systemd.sh measures a round with the same sdround.User and prints
    # "start_ms ready_ms stop_ms systemd_ms state".
    r = subprocess.run(["bash", "-c", ". bench/podman-systemd.sh && podman_round"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"podman: {r.stderr.strip()}")
    f = r.stdout.split(None, 4)
    sd = None if f[3] == "-" else float(f[3]) / 1000
    return tuple(float(x) / 1000 for x in f[:3]) + (sd, f[4].strip())
names = list(rt) + (["Podman 4.3"] if os.environ.get("PODMAN") == "1" else [])
res = {k: [] for k in names}
states = {k: set() for k in names}
for i in range(N + 1):
    for k in names:
        row = user.round(*rt[k]) if k in rt else podman_round()
        states[k].add(row[4])
        if i >= 1:  # one warm-up round
            res[k].append(row)
print(f"{'runtime':<10} {'start_ms':>9} {'ready_ms':>9} {'stop_ms':>8} {'systemd_ms':>11}  final state   (medians of {N}, interleaved)")
med = {}
for k, rows in res.items():
    med[k] = [statistics.median(r[j] for r in rows) * 1000 for j in range(3)]
    sds = [r[3] for r in rows if r[3] is not None]
    sd = f"{statistics.median(sds) * 1000:11.0f}" if sds else f"{'-':>11}"
    print(f"{k:<10} {med[k][0]:9.0f} {med[k][1]:9.0f} {med[k][2]:8.0f} {sd}  {'/'.join(sorted(states[k]))}")
print(f"\nlxr / LXC: ready {med['lxr'][1]/med['LXC 5.0'][1]:.2f}x (target <= 0.5x), "
      f"stop {med['lxr'][2]/med['LXC 5.0'][2]:.2f}x (target <= 0.5x)")
if "Podman 4.3" in med:
    print(f"lxr / Podman: ready {med['lxr'][1]/med['Podman 4.3'][1]:.2f}x (target <= 1x), "
          f"stop {med['lxr'][2]/med['Podman 4.3'][2]:.2f}x")
PY
