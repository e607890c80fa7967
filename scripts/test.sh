#!/usr/bin/env bash
# THE test command: set the machine up, build, and run every test, then the style checks.
# Run as root on Debian 12 (the end-to-end tests mount FUSE, create cgroups and namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/test-users.sh
# The Debian 12 image lxr_systemd.rs boots (debootstrap; cached per machine, ~1 min once).
bash scripts/build-image.sh debian12 >/dev/null
# The pure cgroup v2 guest tests/tests/v2_guest.rs boots (scripts/vm.sh: debootstrap and two
# Debian kernels, cached per machine, ~1.5-2 min once). Failing here does not stop the run: the
# v2 tests then fail with the reason.
bash scripts/vm.sh build >/dev/null || echo "test.sh: the v2 guest could not be built (the v2 tests will say why)" >&2

cargo build --workspace --all-targets
export LXR_LXCFS_BIN="$PWD/target/debug/lxcfs"

status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast || status=$?
else
    cargo test --workspace --no-fail-fast || status=$?
fi

# The cgmanager suites once more with every daemon pinning its peers by pid, the identity path
# of kernels without SO_PEERPIDFD (Linux < 6.5); ~15 s.
cgm_suites=(--test cgm_api --test cgm_bus --test cgm_delegation --test cgm_hostile --test cgm_scm
    --test cgm_held_call)
if cargo nextest --version >/dev/null 2>&1; then
    LXR_E2E_CGM_NO_PEERPIDFD=1 cargo nextest run -p e2e --no-fail-fast "${cgm_suites[@]}" || status=$?
else
    LXR_E2E_CGM_NO_PEERPIDFD=1 cargo test -p e2e --no-fail-fast "${cgm_suites[@]}" || status=$?
fi

# The lxcfs suites once more with every plain daemon on FUSE over io_uring (each test sets the
# host-global enable_uring knob to Y only while its daemon mounts, then puts it back; on a
# kernel without the knob the daemons stay classic and the io_uring tests skip); ~40 s.
lxcfs_suites=(--test container_view --test lxcfs_hostile --test lxcfs_never_breaks)
if [ -e /sys/module/fuse/parameters/enable_uring ]; then
    if cargo nextest --version >/dev/null 2>&1; then
        E2E_LXCFS_IO_URING=1 cargo nextest run -p e2e --no-fail-fast "${lxcfs_suites[@]}" || status=$?
    else
        E2E_LXCFS_IO_URING=1 cargo test -p e2e --no-fail-fast "${lxcfs_suites[@]}" || status=$?
    fi
fi

cargo fmt --all -- --check || status=$?
cargo clippy --workspace --all-targets -- -D warnings || status=$?
exit "$status"
