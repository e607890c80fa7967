//! lxr lifecycle as an unprivileged user: info, live config of limits, freeze/unfreeze (a
//! counter inside stops and resumes), restart, reboot from inside (the container comes back),
//! halt from inside (it stops).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::lxr::{wait_for, Cleanup, World};

#[test]
fn info_config_freeze_restart_reboot_halt() {
    let w = World::new("lxrlife");
    let s = &w.scratch;
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["l1"]);
    lxr.ok(&["launch", "busybox", "l1", "-c", "limits.memory=128MiB"]);
    let info = lxr.ok(&["info", "l1"]);
    for want in [
        "Status: RUNNING",
        "Cgroup: delegated by cgmanager",
        "limits.memory: 128MiB",
        "Frozen: no",
    ] {
        assert!(info.contains(want), "{want} in {info}");
    }
    // Live limits.
    let limit = s.dir("memory", "lxrtest1/lxr/l1/memory.limit_in_bytes");
    lxr.ok(&["config", "set", "l1", "limits.memory", "64MiB"]);
    assert_eq!(
        std::fs::read_to_string(&limit).unwrap().trim(),
        (64u64 << 20).to_string()
    );
    assert_eq!(lxr.ok(&["config", "get", "l1", "limits.memory"]), "64MiB");
    lxr.ok(&["config", "set", "l1", "limits.processes", "50"]);
    assert_eq!(
        std::fs::read_to_string(s.dir("pids", "lxrtest1/lxr/l1/pids.max"))
            .unwrap()
            .trim(),
        "50"
    );
    lxr.ok(&["config", "unset", "l1", "limits.processes"]);
    assert_eq!(
        std::fs::read_to_string(s.dir("pids", "lxrtest1/lxr/l1/pids.max"))
            .unwrap()
            .trim(),
        "max"
    );
    let o = lxr.run(&["config", "set", "l1", "limits.memory", "lots"]);
    assert!(!o.status.success());
    // Freeze: a counter inside stops, then resumes. It is renamed into place: a freeze between
    // a truncate and its write would otherwise leave the file empty (a flaky read, not a bug).
    lxr.ok(&[
        "exec", "l1", "--", "sh", "-c",
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/n.t; mv /tmp/n.t /tmp/n; usleep 20000; done) </dev/null >/dev/null 2>&1 &",
    ]);
    let pid = lxr.pid("l1").unwrap();
    let counter = format!("/proc/{pid}/root/tmp/n");
    let read = || {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    wait_for("the counter", 5, || read().is_some());
    lxr.ok(&["freeze", "l1"]);
    assert!(lxr.ok(&["info", "l1"]).contains("Frozen: yes"));
    std::thread::sleep(Duration::from_millis(300));
    let a = read().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read().unwrap(), a, "the counter moved while frozen");
    // An exec's helper would freeze on entering the cgroups and lxr would wait for ever.
    let o = lxr.run(&["exec", "l1", "--", "true"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("l1 is frozen (lxr unfreeze l1)"),
        "{o:?}"
    );
    lxr.ok(&["unfreeze", "l1"]);
    wait_for("the counter to move again", 5, || read().unwrap_or(0) > a);
    // The console: what is typed reaches the init's console shell, its answer comes back.
    let o = lxr.run_with_input(&["console", "l1"], b"echo con-$((6*7))\n");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("con-42"),
        "{o:?}"
    );
    // Restart gives a new init.
    lxr.ok(&["restart", "--force", "l1"]);
    let p2 = lxr.pid("l1").unwrap();
    assert_ne!(p2, pid);
    let info = lxr.ok(&["info", "l1"]);
    assert!(info.contains("Cgroup: delegated by cgmanager"), "{info}");
    // Reboot from inside: the container comes back with a new init.
    lxr.ok(&["exec", "l1", "--", "reboot"]);
    wait_for(
        "the reboot",
        20,
        || matches!(lxr.pid("l1"), Some(p) if p != p2),
    );
    assert_eq!(lxr.ok(&["exec", "l1", "--", "hostname"]), "l1");
    // Halt from inside: it stops, and its cgroup goes away.
    lxr.ok(&["exec", "l1", "--", "halt"]);
    wait_for("the halt", 20, || lxr.pid("l1").is_none());
    wait_for("the cgroup to go", 5, || {
        !s.dir("memory", "lxrtest1/lxr/l1").exists()
    });
    lxr.ok(&["delete", "l1"]);
}

/// A frozen container's init cannot take its halt signal, and on cgroup v1 not even SIGKILL
/// until it is thawed: `stop`, `stop --force`, `restart` and `delete --force` thaw it first.
#[test]
fn a_frozen_container_stops_restarts_and_is_deleted() {
    let w = World::new("lxrfrozen");
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["f1"]);
    lxr.ok(&["launch", "busybox", "f1"]);
    let frozen = |what: &str| {
        lxr.ok(&["freeze", "f1"]);
        assert!(lxr.ok(&["info", "f1"]).contains("Frozen: yes"), "{what}");
    };
    frozen("stop");
    let t = std::time::Instant::now();
    lxr.ok(&["stop", "f1", "--timeout", "20"]);
    assert!(lxr.pid("f1").is_none());
    // The init halted by itself, well before the timeout's kill.
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert!(
        lxr.ok(&["info", "f1"]).contains("Last exit: init halted"),
        "{}",
        lxr.ok(&["info", "f1"])
    );
    lxr.ok(&["start", "f1"]);
    frozen("stop --force");
    lxr.ok(&["stop", "--force", "f1"]);
    assert!(lxr.pid("f1").is_none());
    lxr.ok(&["start", "f1"]);
    let p1 = lxr.pid("f1").unwrap();
    frozen("restart");
    lxr.ok(&["restart", "--force", "f1"]);
    let p2 = lxr.pid("f1").unwrap();
    assert_ne!(p1, p2);
    let info = lxr.ok(&["info", "f1"]);
    assert!(info.contains("Frozen: no"), "{info}");
    frozen("delete --force");
    lxr.ok(&["delete", "--force", "f1"]);
    assert!(!w.scratch.dir("memory", "lxrtest1/lxr/f1").exists());
}
