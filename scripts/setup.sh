#!/usr/bin/env bash
# Prepare a Debian 12 machine (as root) for lxr: the system packages the demo, the tests and
# the benchmark need. Idempotent; skips apt when everything is already installed.
set -euo pipefail

PKGS=(fuse3 lxcfs lxc lxc-templates busybox-static uidmap procps util-linux dbus systemd python3 gcc xz-utils zstd bzip2 squashfs-tools strace libglib2.0-bin debootstrap
      qemu-system-x86 e2fsprogs cpio slirp4netns passt iperf3)

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root" >&2
    exit 1
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    apt-get update
    # Installing lxcfs/lxc must not start their services (Debian's lxcfs would mount
    # /var/lib/lxcfs, where ours goes).
    policy=/usr/sbin/policy-rc.d
    had_policy=0
    [ -e "$policy" ] && had_policy=1
    if [ "$had_policy" = 0 ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# slirp4netns and pasta (lxr's container network) open /dev/net/tun as the user: Debian's
# udev makes it 0666; a machine without udev (a VM, a container) may have it 0600.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    chmod 0666 /dev/net/tun
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: no Rust toolchain (cargo) found; install one (rustup) and re-run" >&2
    exit 1
fi

if awk '$5 == "/var/lib/lxcfs" {found=1} END {exit !found}' /proc/self/mountinfo; then
    echo "setup.sh: note: something is mounted at /var/lib/lxcfs already"
fi

# lxr's boot.autostart: the user unit that starts a user's autostart containers at login
# (systemd/user/lxr-autostart.service; it runs /usr/local/bin/lxr autostart). Enabled for every
# user; a user opts out with `systemctl --user mask lxr-autostart.service`.
if [ -d /usr/lib/systemd ]; then
    install -D -m 0644 "$(dirname "$0")/../systemd/user/lxr-autostart.service" \
        /usr/lib/systemd/user/lxr-autostart.service
    if command -v systemctl >/dev/null 2>&1; then
        systemctl --global enable lxr-autostart.service >/dev/null 2>&1 || true
    fi
fi
