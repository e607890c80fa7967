#!/usr/bin/env bash
# Create the unprivileged test users (lxrtest1, lxrtest2) with home directories and
# subuid/subgid ranges. Idempotent: existing users and ranges are left as they are.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "test-users.sh: run as root" >&2
    exit 1
fi

n=0
for u in lxrtest1 lxrtest2; do
    n=$((n + 1))
    if ! id -u "$u" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/sh --comment "lxr test user" "$u"
    fi
    start=$((2000000 + (n - 1) * 65536))
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        grep -q "^$u:" "$f" || echo "$u:$start:65536" >> "$f"
    done
done
