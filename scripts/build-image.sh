#!/usr/bin/env bash
# Build a test image as an LXD/Incus split image (metadata tarball + squashfs rootfs), offline
# from the Debian mirror apt already uses, and cache it: built once per machine.
#
#   sudo scripts/build-image.sh debian12 [OUT_DIR]
#
# debian12: Debian 12 (bookworm), debootstrap minbase + systemd-sysv, dbus, procps, iproute2;
# an empty /etc/machine-id (systemd makes one per container), no /etc/hostname or resolv.conf
# (templates and the runtime provide them), root without a password (console login), a getty on
# the console (systemd starts console-getty in a container). metadata.yaml has the architecture,
# creation date, properties and `create` templates for /etc/hostname and /etc/hosts.
#
# Prints the two files' paths (metadata first). Then, as a user:
#   lxr image import meta.tar.xz rootfs.squashfs --alias debian12
#   lxr launch debian12 d1
set -euo pipefail

name=${1:-}
out=${2:-/var/cache/lxr/images/$name}
if [ "$name" != debian12 ]; then
    echo "usage: $0 debian12 [OUT_DIR]" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "build-image.sh: run as root (debootstrap)" >&2
    exit 1
fi
meta=$out/meta.tar.xz
rootfs=$out/rootfs.squashfs
# The cache is this recipe's: a changed script builds again.
recipe=$(sha256sum "$0" | cut -c1-16)
mkdir -p "$out"
# One build at a time (tests running in parallel all ask for the image).
exec 9>"$out/.lock"
flock 9
if [ -s "$meta" ] && [ -s "$rootfs" ] && [ "$(cat "$out/.recipe" 2>/dev/null)" = "$recipe" ]; then
    echo "$meta"
    echo "$rootfs"
    exit 0
fi
for tool in debootstrap mksquashfs xz flock; do
    command -v "$tool" >/dev/null || {
        echo "build-image.sh: $tool missing (scripts/setup.sh installs it)" >&2
        exit 1
    }
done

# The mirror apt uses (deb822 sources first, then sources.list), else Debian's CDN.
mirror=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

rm -f "$meta" "$rootfs" "$out/.recipe"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
echo "build-image.sh: debootstrap bookworm from $mirror (a minute or two)" >&2
debootstrap --variant=minbase --include=systemd-sysv,dbus,procps,iproute2 \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
}
chroot "$root" apt-get clean
chroot "$root" passwd -d root >/dev/null
: >"$root/etc/machine-id"
rm -f "$root/etc/hostname" "$root/etc/resolv.conf" "$root/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"

mkdir -p "$work/meta/templates"
cat >"$work/meta/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: Debian 12 (bookworm) minbase with systemd, built by lxr's build-image.sh
  os: debian
  release: bookworm
  variant: systemd
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
META
printf '{{ instance.name }}\n' >"$work/meta/templates/hostname.tpl"
printf '127.0.0.1 localhost\n127.0.1.1 {{ instance.name }}\n::1 localhost ip6-localhost ip6-loopback\n' \
    >"$work/meta/templates/hosts.tpl"
tar --numeric-owner -C "$work/meta" -cJf "$work/meta.tar.xz" metadata.yaml templates
mksquashfs "$root" "$work/rootfs.squashfs" -noappend -quiet -comp zstd >/dev/null
chmod 644 "$work/meta.tar.xz" "$work/rootfs.squashfs"
mv "$work/meta.tar.xz" "$meta"
mv "$work/rootfs.squashfs" "$rootfs"
echo "$recipe" >"$out/.recipe"
chmod 755 "$out"
echo "$meta"
echo "$rootfs"
