//! Delegation through cgmanager's `org.linuxcontainers.cgmanager1` interface, for real: the v2
//! mechanics on this host's cgroup2 hierarchy (`/sys/fs/cgroup/unified`) and the v1 equivalent
//! on the memory hierarchy. What the kernel then allows or refuses the delegatee is checked by
//! the delegatee writing cgroupfs itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use e2e::cgm::{cgroup_of, owner, sleeper, test_user, CgmDaemon, CgmResult, Scratch};

fn as_user(user: &str, script: &str) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", user, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

fn policy(s: &Scratch) -> String {
    format!(
        "[[delegate]]\nusers = [\"lxrtest1\"]\ncontrollers = [\"unified\", \"memory\"]\n\
         path = \"%D/{}/%u\"\nmax_depth = 2\nmax_cgroups = 4\nmemory_max = \"256M\"\n",
        s.name
    )
}

#[test]
fn v2_delegation_follows_the_kernel_rules() {
    let (uid, _) = test_user("lxrtest1");
    test_user("lxrtest2");
    let mut s = Scratch::new("deleg2");
    let d = CgmDaemon::start(&policy(&s), &[]);
    let r = CgmResult::of(&d.cgm(Some("lxrtest1"), &["delegate", "unified"]));
    assert!(r.ok, "{}", r.err);
    let want = s.abs("unified", "lxrtest1");
    assert_eq!(r.out, format!("unified {want}"));
    let dir = s.dir("unified", "lxrtest1");
    // The directory and the kernel's delegation files are the user's; the rest stays root's.
    assert_eq!(owner(&dir), uid);
    for f in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
        assert_eq!(owner(&dir.join(f)), uid, "{f}");
    }
    for f in ["cgroup.max.depth", "cgroup.max.descendants", "cgroup.type"] {
        assert_eq!(owner(&dir.join(f)), 0, "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.max.depth"))
            .unwrap()
            .trim(),
        "2"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.max.descendants"))
            .unwrap()
            .trim(),
        "4"
    );
    // Asking again is idempotent.
    let again = CgmResult::of(&d.cgm(Some("lxrtest1"), &["delegate", "unified"]));
    assert_eq!(again.out, r.out);

    // The user cannot move its own process in: the common ancestor (the root) is not its own.
    let pid = sleeper(Some("lxrtest1"), &[]);
    s.adopt(pid);
    let o = as_user(
        "lxrtest1",
        &format!("echo {pid} > {}/cgroup.procs", dir.display()),
    );
    assert!(
        !o.status.success(),
        "the kernel let the user pull a process in"
    );
    // The daemon does the first move, into a leaf it creates for the user.
    let r = CgmResult::of(&d.cgm(
        Some("lxrtest1"),
        &["enter", "unified", "init", &pid.to_string()],
    ));
    assert!(r.ok, "{}", r.err);
    assert_eq!(cgroup_of(pid, "unified"), format!("{want}/init"));
    assert_eq!(owner(&dir.join("init")), uid);
    // From here the kernel lets the user manage its subtree itself…
    let o = as_user(
        "lxrtest1",
        &format!(
            "mkdir {d}/a && echo {pid} > {d}/a/cgroup.procs",
            d = dir.display()
        ),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(cgroup_of(pid, "unified"), format!("{want}/a"));
    // …but not push processes out, raise its limits, or go deeper than the policy allows.
    let o = as_user(
        "lxrtest1",
        &format!("echo {pid} > /sys/fs/cgroup/unified/cgroup.procs"),
    );
    assert!(!o.status.success());
    let o = as_user(
        "lxrtest1",
        &format!("echo 100 > {}/cgroup.max.depth", dir.display()),
    );
    assert!(!o.status.success());
    let o = as_user("lxrtest1", &format!("mkdir -p {}/a/b/c", dir.display()));
    assert!(
        !o.status.success(),
        "depth limit not enforced by the kernel"
    );
    // Through the daemon the same limits hold, with named errors.
    let r = CgmResult::of(&d.cgm(
        Some("lxrtest1"),
        &["create", "unified", &format!("{want}/x/y/z")],
    ));
    assert_eq!(r.kind(), Some("LimitExceeded"), "{r:?}");
    // Other users get nothing.
    let r = CgmResult::of(&d.cgm(Some("lxrtest2"), &["delegate", "unified"]));
    assert_eq!(r.kind(), Some("NotDelegated"), "{r:?}");
    let r = CgmResult::of(&d.cgm(
        Some("lxrtest2"),
        &["create", "unified", &format!("{want}/a/q")],
    ));
    assert_eq!(r.kind(), Some("PermissionDenied"), "{r:?}");
    // Release refuses while processes remain, then removes the subtree.
    let r = CgmResult::of(&d.cgm(Some("lxrtest1"), &["release", "unified"]));
    assert_eq!(r.kind(), Some("Busy"), "{r:?}");
    // SAFETY: killing the process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let r = CgmResult::of(&d.cgm(Some("lxrtest1"), &["release", "unified"]));
    assert!(r.ok, "{}", r.err);
    assert!(r.out.parse::<u32>().unwrap() >= 2, "{}", r.out);
    assert!(!dir.exists());
}

#[test]
fn v1_delegation_and_the_readme_example() {
    let (uid, _) = test_user("lxrtest1");
    let s = Scratch::new("deleg1");
    let d = CgmDaemon::start(&policy(&s), &[]);
    let cgm = e2e::cgm::bin("cgm");
    let sock = d.socket.display().to_string();
    // The README's three lines, run by the user's own shell.
    let script = format!(
        "{cgm} --socket {sock} delegate memory && \
         {cgm} --socket {sock} enter memory work $$ && \
         {cgm} --socket {sock} setvalue memory '' memory.limit_in_bytes 64M && \
         grep memory /proc/self/cgroup",
        cgm = cgm.display()
    );
    let o = as_user("lxrtest1", &script);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dpath = s.abs("memory", "lxrtest1");
    assert!(out.contains(&format!("memory {dpath}")), "{out}");
    assert!(out.contains(&format!(":memory:{dpath}/work")), "{out}");
    let dir = s.dir("memory", "lxrtest1");
    assert_eq!(
        std::fs::read_to_string(dir.join("work/memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (64u64 << 20).to_string()
    );
    // The delegation point carries the admin's ceiling, which the user cannot raise.
    assert_eq!(
        std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (256u64 << 20).to_string()
    );
    for f in ["", "tasks", "cgroup.procs"] {
        assert_eq!(owner(&dir.join(f)), uid, "{f}");
    }
    assert_eq!(owner(&dir.join("memory.limit_in_bytes")), 0);
    let r = CgmResult::of(&d.cgm(
        Some("lxrtest1"),
        &["setvalue", "memory", &dpath, "memory.limit_in_bytes", "1G"],
    ));
    assert_eq!(r.kind(), Some("PermissionDenied"), "{r:?}");
    // From a cgroup that does not contain the subtree, absolute paths still reach it.
    std::fs::create_dir(s.dir("memory", "outside")).unwrap();
    let outside_dir = s.dir("memory", "outside");
    let outside = |user: &str, args: &[&str]| CgmResult::of(&d.cgm_in(user, &outside_dir, args));
    let x = format!("{dpath}/x");
    for args in [
        vec!["create", "memory", x.as_str()],
        vec![
            "setvalue",
            "memory",
            x.as_str(),
            "memory.limit_in_bytes",
            "32M",
        ],
        vec!["getvalue", "memory", x.as_str(), "memory.limit_in_bytes"],
        vec!["remove", "memory", x.as_str()],
    ] {
        let r = outside("lxrtest1", &args);
        assert!(r.ok, "{args:?}: {}", r.err);
    }
    let r = outside("lxrtest1", &["remove", "memory", &dpath]);
    assert_eq!(r.kind(), Some("OutsideSubtree"), "{r:?}");
    test_user("lxrtest2");
    let r = outside("lxrtest2", &["create", "memory", &x]);
    assert_eq!(r.kind(), Some("OutsideSubtree"), "{r:?}");
    let r = CgmResult::of(&d.cgm(Some("lxrtest1"), &["release", "memory"]));
    assert!(r.ok, "{}", r.err);
    assert!(!dir.exists());
}

/// Two users for the v2 daemon-cgroup cases: lxrtest1 gets the cgroup2 hierarchy with whatever
/// controllers the daemon has (none here: this host's root enables none), lxrtest2 names
/// `hugetlb`, the one controller this host's cgroup2 hierarchy has, which nothing above the
/// test's cgroups enables.
const V2_POLICY: &str = "[[delegate]]\nusers = [\"lxrtest1\"]\ncontrollers = [\"unified\"]\n\
    path = \"%D/users/%u\"\n\n[[delegate]]\nusers = [\"lxrtest2\"]\n\
    controllers = [\"hugetlb\"]\npath = \"%D/users/%u\"\n";

/// The daemon started in a cgroup the test made (its own in the cgroup2 hierarchy), the way
/// systemd starts a unit in the unit's cgroup.
fn daemon_in(s: &Scratch) -> CgmDaemon {
    let procs = s.dir("unified", "").join("cgroup.procs");
    let script = format!("echo $$ > {} && exec \"$@\"", procs.display());
    CgmDaemon::start_under(&["sh", "-c", &script, "sh"], V2_POLICY, &[])
}

/// Issue 18: where its cgroup is delegated to it (systemd's `Delegate=yes` marks it
/// `trusted.delegate`), the daemon moves itself into the leaf `<cgroup>/daemon`, so its cgroup
/// can enable controllers for the delegations below it (`%D`); `%D` stays the cgroup it was
/// started in. A controller the policy names that nothing above offers is refused, saying
/// where, before anything is made; the cgroup2 hierarchy itself is delegated all the same.
#[test]
fn v2_daemon_in_a_delegated_cgroup_moves_into_a_leaf() {
    let (uid, _) = test_user("lxrtest1");
    test_user("lxrtest2");
    let s = Scratch::new("leaf");
    e2e::cgm::mark_delegated(&s.dir("unified", ""));
    let d = daemon_in(&s);
    let t0 = std::time::Instant::now();
    while cgroup_of(d.pid(), "unified") != s.abs("unified", "daemon") {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "the daemon is in {:?}: {}",
            cgroup_of(d.pid(), "unified"),
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = CgmResult::of(&d.cgm(Some("lxrtest1"), &["delegate", "unified"]));
    assert!(r.ok, "{}\n{}", r.err, d.log());
    assert_eq!(
        r.out,
        format!("unified {}", s.abs("unified", "users/lxrtest1"))
    );
    assert_eq!(owner(&s.dir("unified", "users/lxrtest1")), uid);
    let r = CgmResult::of(&d.cgm(Some("lxrtest2"), &["delegate", "hugetlb"]));
    assert_eq!(r.kind(), Some("NoSuchController"), "{r:?}");
    for part in [
        "delegates hugetlb at",
        "/ does not enable it",
        "service manager",
    ] {
        assert!(r.err.contains(part), "{part:?} in {}", r.err);
    }
    assert!(!s.dir("unified", "users/lxrtest2").exists());
    // The daemon wrote no cgroup.subtree_control: there was nothing to enable.
    let sc = std::fs::read_to_string(s.dir("unified", "cgroup.subtree_control")).unwrap();
    assert_eq!(sc.trim(), "");
}

/// Without the mark the daemon stays in the cgroup it was started in, and a delegation below
/// it that names a controller is refused with what to do about it.
#[test]
fn v2_daemon_in_a_cgroup_not_delegated_stays_and_says_why() {
    test_user("lxrtest2");
    let s = Scratch::new("noleaf");
    let d = daemon_in(&s);
    let r = CgmResult::of(&d.cgm(Some("lxrtest2"), &["delegate", "hugetlb"]));
    assert_eq!(r.kind(), Some("NoSuchController"), "{r:?}");
    let own = s.abs("unified", "");
    for part in [format!("runs in {own} itself"), "Delegate=yes".to_string()] {
        assert!(r.err.contains(&part), "{part:?} in {}", r.err);
    }
    assert_eq!(cgroup_of(d.pid(), "unified"), own);
    assert!(
        d.log().contains("is not delegated to the daemon"),
        "{}",
        d.log()
    );
    assert!(!s.dir("unified", "users").exists());
}
