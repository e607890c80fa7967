//! The shipped systemd units are valid (`systemd-analyze verify`, which needs no systemd as
//! PID 1), with ExecStart pointed at the binaries this workspace built.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn verify(unit: &str, installed: &str, built: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../systemd")
        .join(unit);
    let text = std::fs::read_to_string(&src).unwrap();
    assert!(
        text.contains(installed),
        "{unit} does not start {installed}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(unit);
    std::fs::write(&path, text.replace(installed, &built.display().to_string())).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{unit}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn cgmanager_unit_verifies() {
    verify(
        "cgmanager.service",
        "/usr/local/bin/cgmanager",
        &e2e::cgm::bin("cgmanager"),
    );
}

#[test]
fn lxcfs_unit_verifies() {
    verify("lxcfs.service", "/usr/local/bin/lxcfs", &e2e::lxcfs_bin());
}
