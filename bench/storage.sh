#!/usr/bin/env bash
# Benchmark: lxr's container storage, before (a full copy of the image per container,
# LXR_STORAGE=copy) and after (an overlay of the image, LXR_STORAGE=overlay), for the built-in
# busybox image and the Debian 12 image of `scripts/build-image.sh debian12`, as the
# unprivileged test user lxrtest1 with its cgroups delegated by our cgmanager (systemd needs
# them to boot).
#
# One round, per (image, backend), interleaved, N rounds after one warm-up, medians:
#   launch — wall time of `lxr launch IMAGE NAME` (busybox: init runs; Debian: systemd
#            reported READY=1), which includes making the rootfs;
#   disk   — `du -sx --block-size=1` of `containers/NAME` right after the launch (the
#            container's own layer: a copy's whole tree, an overlay's upper layer with what the
#            boot wrote), as root;
# then `lxr delete --force NAME`.
#
# Usage: sudo bench/storage.sh      (N=5 by default; PROFILE=debug uses target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5}
PROFILE=${PROFILE:-release}

bash scripts/test-users.sh >/dev/null
mapfile -t IMAGE < <(bash scripts/build-image.sh debian12)
META=${IMAGE[0]} ROOTFS=${IMAGE[1]}
if [ "$PROFILE" = release ]; then cargo build --release -p lxr -p cgmanager; fi
U=lxrtest1
UID_=$(id -u $U) GID_=$(id -g $U)

W=$(mktemp -d /tmp/lxr-storagebench.XXXXXX)
chmod 755 "$W"
cp "target/$PROFILE/lxr" "target/$PROFILE/cgmanager" "$W/"
DAEMON_PID="" CGS=()
as_user() {
    setpriv --reuid="$UID_" --regid="$GID_" --init-groups env -i HOME="$W/home" \
        PATH=/usr/bin:/bin:/usr/sbin:/sbin XDG_DATA_HOME="$W/data" LXR_CGMANAGER="$W/sock" \
        LXR_LXCFS=/nonexistent "$@"
}
cleanup() {
    for n in $(as_user "$W/lxr" list --format csv 2>/dev/null | tail -n +2 | cut -d, -f1); do
        as_user "$W/lxr" delete --force "$n" >/dev/null 2>&1 || true
    done
    [ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null || true
    sleep 0.3
    for d in "${CGS[@]}"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/data" "$W/home"
chown -R "$UID_:$GID_" "$W/data" "$W/home"

# Our cgmanager, delegating every hierarchy below this script's own cgroups (policy defaults).
NAME="lxr-storagebench-$$"
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

as_user "$W/lxr" image import "$META" "$ROOTFS" --alias debian12 >/dev/null

# One measurement: "<ms> <bytes>".
one() {
    local image=$1 backend=$2 name=$3 t0 t1 bytes
    t0=$(date +%s%N)
    as_user env LXR_STORAGE="$backend" "$W/lxr" launch "$image" "$name" >/dev/null 2>&1
    t1=$(date +%s%N)
    bytes=$(du -sx --block-size=1 "$W/data/lxr/containers/$name" | cut -f1)
    as_user "$W/lxr" delete --force "$name" >/dev/null
    echo "$(( (t1 - t0) / 1000000 )) $bytes"
}

declare -A T D
for round in $(seq 0 "$N"); do
    for image in busybox debian12; do
        for backend in copy overlay; do
            read -r ms bytes < <(one "$image" "$backend" "b-$backend")
            # Round 0 warms caches (and builds the shared busybox layer): not counted.
            [ "$round" -eq 0 ] && continue
            T[$image/$backend]+="$ms "
            D[$image/$backend]+="$bytes "
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
human() { numfmt --to=iec-i --suffix=B --format=%.1f "$1"; }
printf '%-9s %-8s %12s %14s\n' image backend "launch (ms)" "disk/container"
for image in busybox debian12; do
    for backend in copy overlay; do
        t=$(echo "${T[$image/$backend]}" | median)
        d=$(echo "${D[$image/$backend]}" | median)
        printf '%-9s %-8s %12s %14s\n' "$image" "$backend" "$t" "$(human "${d%.*}")"
    done
done
echo "($N rounds, medians; $(uname -r); $(df -T "$W" | awk 'NR==2 {print $2}') data directory; profile $PROFILE)"
