#!/usr/bin/env bash
# Prepare a Debian 12 machine (as root) for lxr: the system packages the demo, the tests and
# the benchmark need. Idempotent; skips apt when everything is already installed.
set -euo pipefail

PKGS=(fuse3 lxcfs lxc lxc-templates busybox-static uidmap procps util-linux dbus systemd python3 gcc xz-utils zstd bzip2 squashfs-tools strace libglib2.0-bin debootstrap
      qemu-system-x86 e2fsprogs cpio slirp4netns passt iperf3 xfsprogs)

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

# lxr's shell completions (bash, zsh, fish) and man pages (lxr.1, lxr-launch.1, …), made by
# the lxr of this checkout from its own command definition (`lxr completion SHELL`,
# `lxr manpage DIR`), so every command it has is in them. Built first, as the checkout's
# owner (not root: target/ stays theirs), if no build is there. $DESTDIR prefixes the paths.
install_lxr_docs() {
    local repo owner lxr tmp d
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [ ! -x "$repo/target/release/lxr" ] && [ ! -x "$repo/target/debug/lxr" ]; then
        owner=$(stat -c %U "$repo")
        echo "setup.sh: building lxr (as $owner) for its completions and man pages"
        runuser -u "$owner" -- env PATH="$PATH" HOME="$(getent passwd "$owner" | cut -d: -f6)" \
            cargo build -q -p lxr --manifest-path "$repo/Cargo.toml" || return 1
    fi
    # The newer build if there are two.
    lxr=$(ls -t "$repo/target/release/lxr" "$repo/target/debug/lxr" 2>/dev/null | head -n 1)
    tmp=$(mktemp -d)
    mkdir "$tmp/man"
    "$lxr" completion bash > "$tmp/lxr.bash" &&
        "$lxr" completion zsh > "$tmp/_lxr" &&
        "$lxr" completion fish > "$tmp/lxr.fish" &&
        "$lxr" -q manpage "$tmp/man" || { rm -rf "$tmp"; return 1; }
    for d in /usr/share/bash-completion/completions /usr/share/zsh/vendor-completions \
             /usr/share/fish/vendor_completions.d /usr/share/man/man1; do
        mkdir -p "$DESTDIR$d"
    done
    install -m 0644 "$tmp/lxr.bash" "$DESTDIR/usr/share/bash-completion/completions/lxr"
    install -m 0644 "$tmp/_lxr" "$DESTDIR/usr/share/zsh/vendor-completions/_lxr"
    install -m 0644 "$tmp/lxr.fish" "$DESTDIR/usr/share/fish/vendor_completions.d/lxr.fish"
    # Pages of commands an older lxr had go.
    rm -f "$DESTDIR/usr/share/man/man1/lxr.1" "$DESTDIR"/usr/share/man/man1/lxr-*.1
    install -m 0644 "$tmp"/man/*.1 "$DESTDIR/usr/share/man/man1/"
    rm -rf "$tmp"
    echo "setup.sh: lxr completions (bash, zsh, fish) and man pages installed (man lxr)"
}
DESTDIR=${DESTDIR:-}
install_lxr_docs || echo "setup.sh: note: lxr's completions and man pages not installed (build lxr, re-run)" >&2
