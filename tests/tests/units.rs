//! The shipped systemd units are valid (`systemd-analyze verify`, which needs no systemd as
//! PID 1), with ExecStart pointed at the binaries this workspace built — and the same unit
//! with a missing binary is not, so the check is not vacuous.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// `systemd-analyze verify` of `text` saved as `unit`.
fn analyze(unit: &str, text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(unit);
    std::fs::write(&path, text).unwrap();
    Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap()
}

fn verify(unit: &str, installed: &str, built: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../systemd")
        .join(unit);
    let text = std::fs::read_to_string(&src).unwrap();
    assert!(
        text.contains(installed),
        "{unit} does not start {installed}"
    );
    let built = built.display().to_string();
    let o = analyze(unit, &text.replace(installed, &built));
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{unit}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The control: the same unit starting a binary that is not there is refused, so the
    // check above did look at this file (Debian's lxcfs ships an lxcfs.service of its own).
    let o = analyze(unit, &text.replace(installed, &format!("{built}.missing")));
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains(".missing"),
        "{unit}: a unit whose binary is missing passed verification: {}",
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
