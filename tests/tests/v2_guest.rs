//! The pure cgroup v2 guest of `scripts/vm.sh` (issue 18), one smoke test per Debian 12 kernel:
//! the plumbing works — the guest boots the kernel asked for with systemd on cgroup2 only, the
//! workspace's binaries run from the share, and the test users exist with subuid ranges. The v2
//! suite proper builds on `e2e::vm::run`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use e2e::vm::{self, Kernel};

/// Every fact the smoke test checks, printed by the guest as `key=value` lines.
const SMOKE: &str = r#"
set -eu
echo "fstype=$(stat -fc %T /sys/fs/cgroup)"
echo "cgroup_mounts=$(awk '$3 ~ /^cgroup/ {printf "%s:%s ", $3, $2}' /proc/self/mounts)"
echo "self_cgroup=$(tr '\n' ' ' </proc/self/cgroup)"
echo "controllers=$(cat /sys/fs/cgroup/cgroup.controllers)"
echo "uname=$(uname -r)"
echo "lxcfs_path=$(command -v lxcfs)"
echo "lxcfs=$(lxcfs --version)"
echo "cgmanager=$(cgmanager --version)"
echo "cgm=$(cgm --version)"
echo "lxr=$(lxr --version)"
echo "lxrtest1_uid=$(id -u lxrtest1)"
echo "lxrtest1_subuid=$(grep '^lxrtest1:' /etc/subuid)"
echo "lxrtest1_subgid=$(grep '^lxrtest1:' /etc/subgid)"
echo "system=$(systemctl is-system-running --wait || true)"
"#;

fn smoke(kernel: Kernel) {
    let out = vm::run(kernel, SMOKE);
    out.assert_success();
    let facts: BTreeMap<&str, &str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .collect();
    let fact = |k: &str| *facts.get(k).unwrap_or_else(|| panic!("no {k}: {out}"));

    assert_eq!(fact("fstype"), "cgroup2fs", "{out}");
    assert_eq!(
        fact("cgroup_mounts").trim(),
        "cgroup2:/sys/fs/cgroup",
        "only cgroup2, only at /sys/fs/cgroup: {out}"
    );
    assert!(
        fact("self_cgroup").trim().starts_with("0::/") && !fact("self_cgroup").contains(": "),
        "one v2 line in /proc/self/cgroup: {out}"
    );
    for c in ["cpuset", "cpu", "io", "memory", "pids"] {
        assert!(
            fact("controllers").split(' ').any(|x| x == c),
            "controller {c} missing: {out}"
        );
    }

    assert!(
        out.release.starts_with(&format!("{}.", kernel.name())),
        "vm.sh booted {} for {kernel}",
        out.release
    );
    assert_eq!(fact("uname"), out.release, "{out}");

    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        fact("lxcfs_path"),
        "/lxr/bin/lxcfs",
        "ours, not Debian's: {out}"
    );
    for bin in ["lxcfs", "cgmanager", "cgm", "lxr"] {
        assert_eq!(fact(bin), format!("{bin} {v}"), "{out}");
    }

    assert_ne!(fact("lxrtest1_uid"), "0", "{out}");
    for key in ["lxrtest1_subuid", "lxrtest1_subgid"] {
        let range: Vec<&str> = fact(key).split(':').collect();
        assert_eq!(range.len(), 3, "{key}: {out}");
        assert!(range[2].parse::<u32>().unwrap() >= 65536, "{key}: {out}");
    }
    assert_eq!(fact("system"), "running", "systemd's verdict: {out}");
}

#[test]
fn guest_6_1_boots_pure_v2_with_our_binaries() {
    smoke(Kernel::V6_1);
}

#[test]
fn guest_6_12_boots_pure_v2_with_our_binaries() {
    smoke(Kernel::V6_12);
}
