#!/usr/bin/env bash
# A pure cgroup v2 guest for the tests: Debian 12 (systemd 252, cgroup2 only) on a stock Debian
# kernel from apt, booted under qemu with the workspace's binaries shared in. Run as root.
#
#   scripts/vm.sh build                 build the guest once per machine (cached; prints the cache dir)
#   scripts/vm.sh run [--kernel 6.1|6.12] [--timeout S] [--bin DIR] [--results DIR] [--append KARGS] [-v]
#                     -- CMD [ARG...]
#                                       boot a fresh guest, run CMD as root inside, exit with its status
#
# build: debootstrap bookworm (minbase + systemd, udev, dbus, fuse3, uidmap, busybox-static, kmod,
#   Debian's lxcfs 5.0.3 and lxc for comparisons; their services disabled), the test users
#   lxrtest1/lxrtest2 with subuid/subgid ranges (scripts/test-users.sh, run in the chroot), the
#   modules of both kernels (pruned of sound, GPU, wireless, ethernet, ...) in a sparse raw ext4
#   image (mkfs.ext4 -d); the kernels linux-image-amd64 (6.1) and linux-image-6.12-amd64 with
#   apt-get download, each with a ~2 MB busybox initramfs that insmods virtio/ext4/9p and
#   switch_roots to /dev/vda. Cached in $LXR_VM_CACHE (/var/cache/lxr/vm), keyed by this script's
#   build functions' and test-users.sh's hash; flock makes parallel callers share one build. Also probes once
#   whether KVM boots the stock kernel (`accel` in the cache; LXR_VM_ACCEL=tcg|kvm overrides).
#
# run: the disk is snapshot=on (every run starts clean, nothing is written back); kernel command
#   line `systemd.unified_cgroup_hierarchy=1` (only cgroup2 at /sys/fs/cgroup). Shared over 9p:
#     /lxr/bin  read-only   --bin DIR, default target/debug of this workspace (first in PATH)
#     /lxr/src  read-only   this workspace
#     /lxr/out  read-write  --results DIR (kept), default a temp dir (removed); CMD's cwd is /root,
#                           $LXR_OUT=/lxr/out. vm.sh keeps there: cmd, stdout, stderr, status,
#                           console.log (the serial console: kernel, systemd), kernel-release.
#   The unit lxr-vm-run.service (only with `lxr.run` on the kernel command line) runs CMD after
#   multi-user.target (the boot is over then: `systemctl is-system-running --wait` returns), as
#   root, in its own cgroup (Delegate=yes), stdin /dev/null. Its stdout and
#   stderr stream to vm.sh's stdout and stderr as they come; -v also streams the console. Exit
#   status: CMD's; 124 when the guest ran out of --timeout (default 600 s; qemu is killed, the
#   console's tail printed); 125 when the guest could not be built or stopped without a status.
#
# Measured on the development VM (2 vCPUs, TCG; KVM here is PVM-based and does not boot a stock
#   kernel, the probe says so in ~15 s, once per build):
#     build (debootstrap, two kernels, image, KVM probe): 2 min 10 s once per machine
#     qemu start -> CMD running:  6.1: 10.6-11.4 s idle, 21-25 s during `cargo build`
#                                 6.12: 8.6-9.4 s idle, 17-22 s during `cargo build`
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cache=${LXR_VM_CACHE:-/var/cache/lxr/vm}
KERNELS=(6.1 6.12)

die() {
    echo "vm.sh: $*" >&2
    exit 125
}

# Seconds since $1 (an $EPOCHREALTIME), to a tenth.
since() {
    awk -v a="$EPOCHREALTIME" -v b="$1" 'BEGIN { printf "%.1f", a - b }'
}

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The apt package of each kernel: the versioned image package the meta package depends on.
kernel_meta() {
    case $1 in
    6.1) echo linux-image-amd64 ;;
    6.12) echo linux-image-6.12-amd64 ;;
    *) return 1 ;;
    esac
}

# $LXR_VM_MIRROR, else the mirror apt uses (deb822 sources first, then sources.list), else
# Debian's CDN.
apt_mirror() {
    local m=${LXR_VM_MIRROR:-}
    [ -z "$m" ] || {
        echo "$m"
        return
    }
    m=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$m" ]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# apt-get download PKG into the current directory, updating apt's lists once if they are stale.
apt_download() {
    apt-get download -o APT::Sandbox::User=root "$@" >/dev/null 2>&1 && return 0
    apt-get update >/dev/null 2>&1 || true
    apt-get download -o APT::Sandbox::User=root "$@"
}

# The guest's init for the initramfs: load the listed modules, mount /dev/vda, switch_root.
# With `lxr.probe` on the command line it only says so and powers off (the KVM probe).
initramfs_init() {
    cat <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
    insmod "/modules/$m" || echo "initramfs: insmod $m failed"
done </modules/order
if grep -qw lxr.probe /proc/cmdline; then
    echo LXR-PROBE-OK
    poweroff -f
fi
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
mount -t ext4 -o rw /dev/vda /newroot || {
    echo "initramfs: cannot mount /dev/vda"
    poweroff -f
}
umount /proc /sys /dev
exec switch_root /newroot /sbin/init
INIT
}

# The guest side of `run`: mount the shares, run /lxr/out/cmd, write its status, power off.
guest_runner() {
    cat <<'RUNNER'
#!/bin/bash
# vm.sh's runner (lxr-vm-run.service): mount the 9p shares, run the host's command, power off.
set -u
opts=trans=virtio,version=9p2000.L,msize=524288
mkdir -p /lxr/bin /lxr/out /lxr/src
if ! mount -t 9p -o "$opts" lxrout /lxr/out; then
    echo "lxr-vm-run: cannot mount the results share"
    systemctl poweroff --force --force
fi
mount -t 9p -o "$opts,ro" lxrbin /lxr/bin || echo "lxr-vm-run: cannot mount the binaries share"
mount -t 9p -o "$opts,ro" lxrsrc /lxr/src || echo "lxr-vm-run: cannot mount the workspace share"
cut -d' ' -f1 /proc/uptime >/lxr/out/started
echo "lxr-vm-run: running the command ($(uname -r), up $(cat /lxr/out/started) s)"
export PATH=/lxr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 LXR_OUT=/lxr/out LXR_BIN=/lxr/bin LXR_SRC=/lxr/src
cd /root
bash /lxr/out/cmd </dev/null >>/lxr/out/stdout 2>>/lxr/out/stderr
status=$?
echo "$status" >/lxr/out/status.new && mv /lxr/out/status.new /lxr/out/status
echo "lxr-vm-run: exit status $status"
systemctl poweroff --force --force
RUNNER
}

do_build() {
    [ "$(id -u)" = 0 ] || die "run as root (debootstrap, mkfs, chroot)"
    local recipe
    # The cache is this recipe's: a change to the functions that build (not to `run`), to the
    # kernel list or to test-users.sh builds again.
    recipe=$({
        declare -f do_build probe_kvm initramfs_init guest_runner kernel_meta apt_mirror apt_download
        echo "${KERNELS[*]}"
        cat "$here/test-users.sh"
    } | sha256sum | cut -c1-16)
    mkdir -p "$cache"
    # fd 8 stays locked shared while the cache is in use (every run holds it until qemu is
    # gone), exclusive while building; a rebuild waits for the runs on the old image.
    exec 8>>"$cache/.lock"
    flock -s 8
    if [ "$(cat "$cache/.recipe" 2>/dev/null)" = "$recipe" ]; then
        echo "$cache"
        return 0
    fi
    flock -x 8
    if [ "$(cat "$cache/.recipe" 2>/dev/null)" = "$recipe" ]; then
        flock -s 8
        echo "$cache"
        return 0
    fi
    local tool
    for tool in debootstrap mkfs.ext4 cpio gzip xz dpkg-deb qemu-system-x86_64 flock; do
        command -v "$tool" >/dev/null || die "$tool missing (scripts/setup.sh installs it)"
    done
    local t0=$SECONDS mirror work root
    mirror=$(apt_mirror)
    rm -f "$cache/.recipe"
    work=$(mktemp -d "$cache/.build.XXXXXX")
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "rm -rf '$work'" EXIT
    root=$work/rootfs

    echo "vm.sh: debootstrap bookworm from $mirror" >&2
    debootstrap --variant=minbase \
        --include=systemd-sysv,udev,dbus,libpam-systemd,procps,iproute2,fuse3,uidmap,busybox-static,kmod,lxcfs,lxc \
        bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        die "debootstrap failed (is apt's mirror $mirror reachable?)"
    }
    chroot "$root" apt-get clean
    chroot "$root" passwd -d root >/dev/null
    echo lxr-v2 >"$root/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 lxr-v2\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    # A fixed machine id: an empty one would make every boot a first boot (presets applied again).
    echo 4c78722d76322d67756573742d303031 >"$root/etc/machine-id"
    chroot "$root" bash -s <"$here/test-users.sh"
    # Nothing that would take /var/lib/lxcfs, a bridge or time before the command runs.
    chroot "$root" systemctl disable -q lxcfs.service lxc.service lxc-net.service lxc-monitord.service 2>/dev/null || true
    chroot "$root" systemctl mask -q serial-getty@ttyS0.service getty@tty1.service apt-daily.timer \
        apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer 2>/dev/null || true
    guest_runner >"$root/usr/local/sbin/lxr-vm-run"
    chmod 755 "$root/usr/local/sbin/lxr-vm-run"
    cat >"$root/etc/systemd/system/lxr-vm-run.service" <<'UNIT'
[Unit]
Description=lxr vm.sh: run the host's command
After=multi-user.target
ConditionKernelCommandLine=lxr.run

[Service]
# exec, not oneshot: the boot is over (`systemctl is-system-running --wait` returns) while CMD runs.
Type=exec
ExecStart=/usr/local/sbin/lxr-vm-run
Delegate=yes
StandardOutput=journal+console
StandardError=inherit

[Install]
WantedBy=multi-user.target
UNIT
    chroot "$root" systemctl enable -q lxr-vm-run.service

    local k meta pkg deb ver kroot mods m
    mkdir -p "$work/deb"
    for k in "${KERNELS[@]}"; do
        meta=$(kernel_meta "$k")
        pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
        if [ -z "$pkg" ]; then
            apt-get update >/dev/null 2>&1 || true
            pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
        fi
        [ -n "$pkg" ] || die "apt knows no $meta (kernel $k)"
        echo "vm.sh: kernel $k: $pkg" >&2
        (cd "$work/deb" && apt_download "$pkg") || die "apt-get download $pkg failed"
        deb=$(ls "$work/deb/${pkg}_"*.deb)
        kroot=$work/k-$k
        dpkg-deb -x "$deb" "$kroot"
        rm -f "$deb"
        ver=$(ls "$kroot/lib/modules")
        mods=$kroot/lib/modules/$ver/kernel
        # What a cgroup/FUSE/container test can need stays; hardware drivers go.
        rm -rf "$mods/sound" "$mods/drivers/net/wireless" "$mods/drivers/net/ethernet" \
            "$mods/drivers/net/usb" "$mods/drivers/net/can" "$mods/drivers/net/wwan" \
            "$mods/drivers/net/ieee802154"
        for m in "$mods"/drivers/*; do
            case ${m##*/} in
            block | char | md | net | virtio | vhost) ;;
            *) rm -rf "$m" ;;
            esac
        done
        mkdir -p "$root/usr/lib/modules"
        cp -a "$kroot/lib/modules/$ver" "$root/usr/lib/modules/"
        chroot "$root" depmod "$ver"

        # The initramfs: busybox, the modules for the disk, ext4 and 9p (uncompressed), init.
        local ir=$work/ir-$k
        mkdir -p "$ir/bin" "$ir/dev" "$ir/proc" "$ir/sys" "$ir/newroot" "$ir/modules"
        cp "$root/bin/busybox" "$ir/bin/busybox"
        mknod "$ir/dev/console" c 5 1
        : >"$ir/modules/order"
        local line f base
        while read -r line; do
            f=${line#insmod }
            f=$root${f%% *}
            base=${f##*/}
            [ -e "$ir/modules/${base%.xz}" ] && continue
            case $f in
            *.xz) xz -dc "$f" >"$ir/modules/${base%.xz}" ;;
            *) cp "$f" "$ir/modules/$base" ;;
            esac
            echo "${base%.xz}" >>"$ir/modules/order"
        done < <(chroot "$root" modprobe -S "$ver" --show-depends -a \
            virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p | grep '^insmod ')
        initramfs_init >"$ir/init"
        chmod 755 "$ir/init"
        mkdir -p "$work/out/$k"
        (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/out/$k/initrd.img"
        cp "$kroot/boot/vmlinuz-$ver" "$work/out/$k/vmlinuz"
        echo "$ver" >"$work/out/$k/release"
        rm -rf "$kroot"
    done

    echo "vm.sh: ext4 image" >&2
    truncate -s 4G "$work/out/guest.img"
    mkfs.ext4 -q -F -L lxr-v2 -d "$root" "$work/out/guest.img"
    probe_kvm "$work/out"
    rm -rf "$cache/guest.img" "${KERNELS[@]/#/$cache/}"
    mv "$work/out/guest.img" "$work/out/accel" "$cache/"
    for k in "${KERNELS[@]}"; do
        mv "$work/out/$k" "$cache/$k"
    done
    echo "$recipe" >"$cache/.recipe"
    echo "vm.sh: guest built in $((SECONDS - t0)) s ($(cat "$cache/accel"))" >&2
    rm -rf "$work"
    trap - EXIT
    flock -s 8
    echo "$cache"
}

# Does KVM boot the stock kernel here? The initramfs alone, told to say so and power off; TCG
# unless it does within 20 s (a PVM-based /dev/kvm hangs right after the decompressor).
probe_kvm() {
    local dir=$1 log=$1/kvm-probe.log pid i
    echo tcg >"$dir/accel"
    [ -w /dev/kvm ] || return 0
    qemu-system-x86_64 -accel kvm -cpu host -m 512M -smp 1 -nodefaults -display none -nic none \
        -no-reboot -kernel "$dir/6.1/vmlinuz" -initrd "$dir/6.1/initrd.img" \
        -append "console=ttyS0 panic=-1 lxr.probe" -serial "file:$log" >/dev/null 2>&1 &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if grep -q LXR-PROBE-OK "$log" 2>/dev/null; then
        echo kvm >"$dir/accel"
    fi
    echo "vm.sh: KVM probe: $(cat "$dir/accel")" >&2
    rm -f "$log"
}

do_run() {
    local kernel=6.1 timeout=600 bin=$repo/target/debug results="" verbose=0 append=""
    while [ $# -gt 0 ]; do
        case $1 in
        --kernel) kernel=$2 && shift 2 ;;
        --timeout) timeout=$2 && shift 2 ;;
        --bin) bin=$2 && shift 2 ;;
        --results) results=$2 && shift 2 ;;
        --append) append=$2 && shift 2 ;;
        -v | --verbose) verbose=1 && shift ;;
        --) shift && break ;;
        *) usage ;;
        esac
    done
    [ $# -gt 0 ] || usage
    kernel_meta "$kernel" >/dev/null || die "unknown kernel $kernel (one of: ${KERNELS[*]})"
    [[ $timeout =~ ^[0-9]+$ ]] || die "--timeout takes seconds"
    do_build >/dev/null # (and holds the cache's lock shared: see do_build)

    local tmp out
    tmp=$(mktemp -d /tmp/lxr-vm.XXXXXX)
    if [ -n "$results" ]; then
        mkdir -p "$results"
        out=$(cd "$results" && pwd)
    else
        out=$tmp/out
        mkdir "$out"
    fi
    if [ ! -d "$bin" ]; then
        echo "vm.sh: $bin does not exist: /lxr/bin is empty" >&2
        bin=$tmp/empty
        mkdir "$bin"
    fi
    rm -f "$out/stdout" "$out/stderr" "$out/status" "$out/started" "$out/console.log"
    : >"$out/stdout"
    : >"$out/stderr"
    {
        printf 'exec'
        printf ' %q' "$@"
        printf '\n'
    } >"$out/cmd"
    local dir=$cache/$kernel accel
    cp "$dir/release" "$out/kernel-release"
    accel=${LXR_VM_ACCEL:-$(cat "$cache/accel")}
    local accel_args=(-accel "tcg,thread=multi" -cpu max)
    [ "$accel" = kvm ] && accel_args=(-accel kvm -cpu host)

    local qpid="" tails=()
    # shellcheck disable=SC2317 # called by the trap
    cleanup() {
        if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
            kill "$qpid" 2>/dev/null || true
            sleep 1
            kill -9 "$qpid" 2>/dev/null || true
        fi
        [ ${#tails[@]} -eq 0 ] || kill "${tails[@]}" 2>/dev/null || true
        rm -rf "$tmp"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    local t0=$EPOCHREALTIME
    qemu-system-x86_64 "${accel_args[@]}" -m 4G -smp 2 -nodefaults -display none -nic none -no-reboot \
        -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 lxr.run${append:+ $append}" \
        -drive "file=$cache/guest.img,format=raw,if=virtio,snapshot=on" \
        -virtfs "local,path=$out,mount_tag=lxrout,security_model=none" \
        -virtfs "local,path=$bin,mount_tag=lxrbin,security_model=none,readonly=on" \
        -virtfs "local,path=$repo,mount_tag=lxrsrc,security_model=none,readonly=on" \
        -serial "file:$out/console.log" -pidfile "$tmp/qemu.pid" >"$tmp/qemu.log" 2>&1 &
    qpid=$!
    tail -q -c +1 -f -s 0.1 --pid="$qpid" "$out/stdout" &
    tails+=($!)
    tail -q -c +1 -f -s 0.1 --pid="$qpid" "$out/stderr" >&2 &
    tails+=($!)
    if [ "$verbose" = 1 ]; then
        : >>"$out/console.log"
        tail -q -c +1 -f -s 0.1 --pid="$qpid" "$out/console.log" | sed -u 's/^/console: /' >&2 &
        tails+=($!)
    fi

    local booted="" timed_out=0 deadline=$((SECONDS + timeout))
    while kill -0 "$qpid" 2>/dev/null; do
        if [ -z "$booted" ] && [ -e "$out/started" ]; then
            booted=$(since "$t0")
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            timed_out=1
            kill "$qpid" 2>/dev/null || true
            sleep 1
            kill -9 "$qpid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$qpid" 2>/dev/null || true
    qpid=""
    wait "${tails[@]}" 2>/dev/null || true
    tails=()
    local total
    total=$(since "$t0")

    if [ "$timed_out" = 1 ]; then
        echo "vm.sh: the guest ($kernel) ran out of its ${timeout} s and was killed; the console's end:" >&2
        tail -n 40 "$out/console.log" >&2 2>/dev/null || true
        exit 124
    fi
    if [ ! -s "$out/status" ]; then
        echo "vm.sh: the guest ($kernel) stopped without running the command to its end; qemu said:" >&2
        cat "$tmp/qemu.log" >&2
        echo "vm.sh: the console's end:" >&2
        tail -n 40 "$out/console.log" >&2 2>/dev/null || true
        exit 125
    fi
    local status
    status=$(cat "$out/status")
    echo "vm.sh: $kernel ($accel): command started ${booted:-?} s after qemu, done after $total s, status $status" >&2
    exit "$status"
}

case ${1:-} in
build) do_build ;;
run) shift && do_run "$@" ;;
*) usage ;;
esac
