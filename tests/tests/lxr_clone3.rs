//! "Use v2 where it helps" on this host's real cgroup2 hierarchy (`/sys/fs/cgroup/unified`,
//! delegated alone by cgmanager so the container's placement is v2-only, as on a pure v2 host):
//!
//! * lxr run from inside the user's delegation starts the container's first process in its
//!   cgroup with `clone3(CLONE_INTO_CGROUP)` (`lxr info`: "Cgroup entry: clone3"), and
//!   `stop --force` kills a fork flood inside with `cgroup.kill`: nothing is left;
//! * the same with both features turned off (`LXR_TEST_WITHOUT`): cgmanager moves the first
//!   process, SIGKILL to the init stops it, nothing is left either;
//! * lxr run from outside the delegation (a root-owned cgroup, as a login session's scope):
//!   the kernel refuses the clone (EACCES: the common ancestor is not the user's), the launch
//!   falls back to cgmanager's move by itself, and `delete --force` kills with `cgroup.kill`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::cgm::bin;
use e2e::lxr::{Cleanup, Lxr, World};

/// Inside the container: 4 workers forking 250 long sleepers each, in the background (bounded:
/// the host's cgroup2 has no pids controller to stop a real fork bomb).
const FLOOD: &str = "(for w in 1 2 3 4; do (for j in $(seq 250); do sleep 120 & done; wait) & \
                     done; wait) </dev/null >/dev/null 2>&1 &";

/// Every pid in a cgroup and below.
fn procs_below(dir: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(procs_below(&e.path()));
            }
        }
    }
    out
}

/// The processes in the pid namespace of `init` (the container's), by its `ns/pid` link.
fn pidns_procs(ns: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path().join("ns/pid")).is_ok_and(|l| l.to_string_lossy() == ns)
        })
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

fn pidns_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .unwrap()
        .to_string_lossy()
        .to_string()
}

/// lxr through a shell that first enters lxrtest1's delegation (`<delegation>/shell`), as a
/// user's session arranged by `cgm enter` would be.
fn in_delegation(w: &World, lxr: &Lxr, env: &[&str], args: &[&str]) -> std::process::Output {
    let cgm = bin("cgm");
    let sock = w.daemon.socket.display().to_string();
    let script = format!(
        "{c} --socket {sock} delegate unified >/dev/null && \
         {c} --socket {sock} enter unified shell $$ >/dev/null && exec \"$@\"",
        c = cgm.display()
    );
    lxr.command_through(env, &["sh", "-c", &script, "sh"], args)
        .output()
        .unwrap()
}

fn ok(o: std::process::Output, what: &str) -> (String, String) {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{what}: {out}{err}");
    (out, err)
}

fn monitor_log(lxr: &Lxr, name: &str) -> String {
    let p: PathBuf = lxr.data.join("lxr/run").join(name).join("monitor.log");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Start a flood in `name` and wait until it has at least 200 processes in the cgroup.
fn flood(lxr: &Lxr, cg: &Path, name: &str) -> usize {
    lxr.ok(&["exec", name, "--", "sh", "-c", FLOOD]);
    let t0 = Instant::now();
    loop {
        let n = procs_below(cg).len();
        if n >= 200 || t0.elapsed() > Duration::from_secs(20) {
            assert!(n >= 200, "only {n} processes in the flood");
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn nothing_left(cg: &Path, ns: &str, what: &str) {
    assert!(!cg.exists(), "{what}: {} is still there", cg.display());
    let left = pidns_procs(ns);
    assert!(
        left.is_empty(),
        "{what}: container processes left: {left:?}"
    );
}

#[test]
fn from_the_delegation_clone3_places_and_cgroup_kill_stops() {
    let w = World::v2_only("clone3");
    let lxr = w.lxr(None);
    let _c = Cleanup(&lxr, vec!["k1"]);
    let debug = ["LXR_LOG=debug"];
    ok(
        in_delegation(&w, &lxr, &debug, &["launch", "busybox", "k1"]),
        "launch",
    );
    let info = lxr.ok(&["info", "k1"]);
    assert!(
        info.contains("Cgroup entry: clone3 (CLONE_INTO_CGROUP)"),
        "{info}"
    );
    let log = monitor_log(&lxr, "k1");
    assert!(log.contains("clone3(CLONE_INTO_CGROUP): pid"), "{log}");
    let cg = w.scratch.dir("unified", "lxrtest1/lxr/k1");
    let init = lxr.pid("k1").unwrap();
    assert_eq!(
        e2e::cgm::cgroup_of(init, "unified"),
        w.scratch.abs("unified", "lxrtest1/lxr/k1"),
        "init in the container's cgroup"
    );
    let ns = pidns_of(init);
    let n = flood(&lxr, &cg, "k1");
    let t0 = Instant::now();
    let (_, err) = ok(
        lxr.command_env(&debug, &["stop", "--force", "k1"])
            .output()
            .unwrap(),
        "stop",
    );
    eprintln!(
        "stop --force of {n} processes with cgroup.kill: {:?}",
        t0.elapsed()
    );
    assert!(err.contains("cgroup.kill written"), "{err}");
    nothing_left(&cg, &ns, "cgroup.kill");
}

#[test]
fn without_the_features_cgmanager_moves_and_sigkill_stops() {
    let w = World::v2_only("noclone3");
    let lxr = w.lxr(None);
    let _c = Cleanup(&lxr, vec!["k2"]);
    let env = [
        "LXR_LOG=debug",
        "LXR_TEST_WITHOUT=clone_into_cgroup,cgroup_kill",
    ];
    ok(
        in_delegation(&w, &lxr, &env, &["launch", "busybox", "k2"]),
        "launch",
    );
    let info = lxr.ok(&["info", "k2"]);
    assert!(info.contains("Cgroup entry: moved by cgmanager"), "{info}");
    let log = monitor_log(&lxr, "k2");
    assert!(!log.contains("clone3(CLONE_INTO_CGROUP): pid"), "{log}");
    let cg = w.scratch.dir("unified", "lxrtest1/lxr/k2");
    let ns = pidns_of(lxr.pid("k2").unwrap());
    let n = flood(&lxr, &cg, "k2");
    let t0 = Instant::now();
    let (_, err) = ok(
        lxr.command_env(&env, &["stop", "--force", "k2"])
            .output()
            .unwrap(),
        "stop",
    );
    eprintln!(
        "stop --force of {n} processes with SIGKILL: {:?}",
        t0.elapsed()
    );
    assert!(err.contains("SIGKILL to the init"), "{err}");
    assert!(!err.contains("cgroup.kill written"), "{err}");
    nothing_left(&cg, &ns, "SIGKILL");
}

#[test]
fn outside_the_delegation_the_refused_clone3_falls_back() {
    let w = World::v2_only("clone3out");
    let lxr = w.lxr(None);
    let _c = Cleanup(&lxr, vec!["k3"]);
    let debug = ["LXR_LOG=debug"];
    ok(
        lxr.command_env(&debug, &["launch", "busybox", "k3"])
            .output()
            .unwrap(),
        "launch",
    );
    let info = lxr.ok(&["info", "k3"]);
    assert!(info.contains("Cgroup entry: moved by cgmanager"), "{info}");
    let log = monitor_log(&lxr, "k3");
    assert!(
        log.contains("clone3(CLONE_INTO_CGROUP) refused (EACCES"),
        "the kernel's common-ancestor rule: {log}"
    );
    let cg = w.scratch.dir("unified", "lxrtest1/lxr/k3");
    let ns = pidns_of(lxr.pid("k3").unwrap());
    flood(&lxr, &cg, "k3");
    let (_, err) = ok(
        lxr.command_env(&debug, &["delete", "--force", "k3"])
            .output()
            .unwrap(),
        "delete",
    );
    assert!(err.contains("cgroup.kill written"), "{err}");
    nothing_left(&cg, &ns, "delete --force");
}
