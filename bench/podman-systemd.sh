#!/usr/bin/env bash
# The rootless Podman row of bench/systemd.sh: the same Debian 12 systemd rootfs, `podman import`ed
# into rootless storage of the same unprivileged user (native overlay, runc, no network), started
# from a process the user moved into its cgroup delegation (`cgm enter all podman`), measured the
# way the lxr and LXC rows are:
#   start — `podman run -d --systemd=always ... /sbin/init` (returns once runc started the init);
#   ready — from the start command to `podman exec <ctr> systemctl is-system-running --wait`
#           answering a final state (retried while it fails, i.e. before systemd's bus is up);
#   stop  — `podman stop` (SIGRTMIN+3 to systemd, which halts; exit status 0).
#
# Why it works on this cgroup v1 host: rootless Podman on v1 gives runc no cgroup path, so the
# container stays in the cgroups of whoever ran `podman run`; from root's cgroup systemd then fails
# with "Failed to create /init.scope control group: Permission denied" and exits 255 (while
# `podman run -d` still returns 0). Run from the user's delegation instead, and with a *relative*
# `--cgroup-parent` (runc resolves it against its own cgroup in every v1 hierarchy, which the user
# owns), runc creates `<delegation>/podman/ctr/libpod-<id>` in every hierarchy; Podman bind-mounts
# the name=systemd hierarchy into the container and the container's root is the user (rootless
# mapping 0 -> uid), so systemd can create init.scope and its slices there.
#
# Inputs (environment): W (work dir, 0755), UID_ and GID_ (the user), ROOTFS_DIR (the container
# rootfs, owned by the user's container root, e.g. host uid 100000), CGM (cgm binary), SOCK (the
# cgmanager socket; the user's delegation exists). Must run as root.
#
# Sourced:  podman_setup; podman_round (prints "start_ms ready_ms stop_ms systemd_ms state");
#           podman_cleanup
# Called:   bench/podman-systemd.sh setup | round | cleanup | bench [N]
#           (`bench N` = setup, one warm-up round and N rounds, medians, cleanup)
# Everything Podman keeps lives under $W/podman; podman_cleanup removes the containers and ends
# the user's rootless pause process (it holds the user namespace and would keep a cgroup busy).

PODMAN_IMAGE=${PODMAN_IMAGE:-debian12-sd}
PODMAN_CTR=${PODMAN_CTR:-sdbench}

# Install podman (and runc, newuidmap) when missing; apt-get update only if the install fails.
podman_install() {
    command -v podman >/dev/null && command -v runc >/dev/null && command -v newuidmap >/dev/null \
        && return 0
    local pkgs=(podman runc uidmap) policy=/usr/sbin/policy-rc.d had=1
    # Do not start podman.socket/podman.service while installing (as scripts/setup.sh does).
    if [ ! -e "$policy" ]; then
        had=0
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null \
        || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; } || rc=$?
    [ "$had" = 0 ] && rm -f "$policy"
    return $rc
}

# podman as the user, with its configuration under $W/podman (no login session needed).
podman_env() {
    local P="$W/podman"
    printf '%s\n' env -i "HOME=$W/home" PATH=/usr/bin:/bin:/usr/sbin:/sbin \
        "XDG_RUNTIME_DIR=$P/run" "XDG_CONFIG_HOME=$P/config" \
        "CONTAINERS_CONF=$P/config/containers/containers.conf" \
        "CONTAINERS_STORAGE_CONF=$P/config/containers/storage.conf"
}
podman_as_user() {
    local e; mapfile -t e < <(podman_env)
    (cd / && setpriv --reuid="$UID_" --regid="$GID_" --init-groups "${e[@]}" podman "$@")
}

podman_setup() {
    local P="$W/podman" d
    podman_install || { echo "podman-systemd: installing podman failed" >&2; return 1; }
    mkdir -p "$P/storage" "$P/run" "$P/tmp" "$P/config/containers" "$W/home"
    chmod 700 "$P/run"
    # Rootless storage ignores graphroot: rootless_storage_path is the rootless one. An empty
    # mount_program means the kernel's overlayfs (native overlay in the user namespace).
    cat > "$P/config/containers/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$P/run/containers"
graphroot = "$P/storage"
rootless_storage_path = "$P/storage"
[storage.options.overlay]
mount_program = ""
EOF
    cat > "$P/config/containers/containers.conf" <<EOF
[containers]
netns = "none"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$P/tmp"
EOF
    # Every timed command enters the user's delegation (cgroup "podman"), then waits for the go.
    cat > "$P/go.sh" <<GO
#!/bin/sh
"$CGM" --socket "$SOCK" enter all podman \$\$ >/dev/null || exit 111
echo ready
read -r _
exec "\$@"
GO
    chmod 755 "$P/go.sh"
    chown -R "$UID_:$GID_" "$P" "$W/home"

    local info
    info=$(podman_as_user info --format \
        '{{.Store.GraphDriverName}} {{index .Store.GraphStatus "Native Overlay Diff"}} {{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphRoot}}' \
        2>/dev/null) || { echo "podman-systemd: podman info failed" >&2; return 1; }
    case "$info" in
        "overlay true runc cgroupfs $P/storage") ;;
        *) echo "podman-systemd: unexpected podman setup: $info" >&2; return 1 ;;
    esac

    # The image: the rootfs as a tar whose owners are the container's (host uid - container root's
    # host uid), made by root (the rootfs has files only its container root can read), imported
    # by the user.
    local ru rg
    ru=$(stat -c %u "$ROOTFS_DIR") rg=$(stat -c %g "$ROOTFS_DIR")
    find "$ROOTFS_DIR" -xdev -printf '%U\n' | sort -un | awk -v s="$ru" '{printf "+%d +%d\n", $1, $1 - s}' > "$P/owner-map"
    find "$ROOTFS_DIR" -xdev -printf '%G\n' | sort -un | awk -v s="$rg" '{printf "+%d +%d\n", $1, $1 - s}' > "$P/group-map"
    podman_as_user image rm -f "$PODMAN_IMAGE" >/dev/null 2>&1 || true
    tar -C "$ROOTFS_DIR" --numeric-owner --owner-map="$P/owner-map" --group-map="$P/group-map" -c . \
        | podman_as_user import - "$PODMAN_IMAGE" >/dev/null 2>"$P/import.log" \
        || { echo "podman-systemd: podman import failed: $(cat "$P/import.log")" >&2; return 1; }
}

# One round: prints "start_ms ready_ms stop_ms systemd_ms state" (systemd_ms: systemd-analyze's
# userspace boot time, `-` if it gave none).
podman_round() {
    local e; mapfile -t e < <(podman_env)
    podman_as_user rm -f --ignore "$PODMAN_CTR" >/dev/null 2>&1 || true
    local rc=0
    PD_GO="$W/podman/go.sh" PD_UID="$UID_" PD_GID="$GID_" PD_CTR="$PODMAN_CTR" PD_IMAGE="$PODMAN_IMAGE" \
        PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" python3 - "${e[@]}" <<'PY' || rc=$?
import os, sys
from sdround import User
user = User(os.environ["PD_UID"], os.environ["PD_GID"], sys.argv[1:], os.environ["PD_GO"])
ctr, image = os.environ["PD_CTR"], os.environ["PD_IMAGE"]
start = ["podman", "run", "-d", "--name", ctr, "--systemd=always", "--network", "none",
         "--cgroup-parent=ctr", "--stop-signal=SIGRTMIN+3", image, "/sbin/init"]
s, ready, st, sd, state = user.round(start, ["podman", "exec", ctr], ["podman", "stop", ctr])
_, _, code = user.run(["podman", "inspect", ctr, "--format", "{{.State.ExitCode}}"], check=False)
if code != "0":
    state += f" (exit {code})"
sd = "-" if sd is None else f"{sd * 1000:.0f}"
print(f"{s*1000:.0f} {ready*1000:.0f} {st*1000:.0f} {sd} {state}")
PY
    podman_as_user rm -f --ignore "$PODMAN_CTR" >/dev/null 2>&1 || true
    return $rc
}

# Remove the containers and end the user's pause process (podman keeps its pid in tmp_dir).
podman_cleanup() {
    local P="$W/podman" pid
    [ -d "$P" ] || return 0
    podman_as_user rm -f --all >/dev/null 2>&1 || true
    pid=$(cat "$P/tmp/pause.pid" 2>/dev/null) || true
    if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
    rm -rf "$P"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    for v in W UID_ GID_ ROOTFS_DIR CGM SOCK; do
        [ -n "${!v:-}" ] || { echo "podman-systemd: $v is not set" >&2; exit 2; }
    done
    case "${1:-}" in
        setup) podman_setup ;;
        round) podman_round ;;
        cleanup) podman_cleanup ;;
        bench)
            n=${2:-7}
            trap podman_cleanup EXIT
            podman_setup
            rows=()
            for i in $(seq 0 "$n"); do
                r=$(podman_round)
                echo "round $i: $r" >&2
                [ "$i" -ge 1 ] && rows+=("$r")
            done
            printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
rows = [l.split(None, 4) for l in sys.stdin if l.strip()]
med = [statistics.median(float(r[j]) for r in rows) for j in range(3)]
name, states = "podman", "/".join(sorted({r[4] for r in rows}))
print(f"{name:<10} {med[0]:9.0f} {med[1]:9.0f} {med[2]:8.0f}  {states}")'
            ;;
        *) echo "usage: $0 setup | round | cleanup | bench [N]" >&2; exit 2 ;;
    esac
fi
