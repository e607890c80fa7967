//! cgmanager's CGManager-compatible API, driven through `cgm` as root and as unprivileged
//! test users, on this host's real v1 hierarchies (below the test's own cgroup). The cases
//! follow CGManager's own shell suite (tests/test01–27), adapted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use e2e::cgm::{
    cgroup_of, in_cgroups_as, owner, sleeper, test_user, CgmDaemon, CgmResult, Scratch,
};

fn run(d: &CgmDaemon, user: Option<&str>, args: &[&str]) -> CgmResult {
    CgmResult::of(&d.cgm(user, args))
}

fn ok(d: &CgmDaemon, user: Option<&str>, args: &[&str]) -> String {
    let r = run(d, user, args);
    assert!(r.ok, "cgm {args:?} as {user:?} failed: {}", r.err);
    r.out
}

fn refused(d: &CgmDaemon, user: Option<&str>, args: &[&str], kind: &str) {
    let r = run(d, user, args);
    assert!(
        !r.ok,
        "cgm {args:?} as {user:?} should fail, printed {:?}",
        r.out
    );
    assert_eq!(r.kind(), Some(kind), "cgm {args:?}: {}", r.err);
}

#[test]
fn ping_version_controllers() {
    let d = CgmDaemon::start("", &[]);
    ok(&d, None, &["ping"]);
    assert_eq!(ok(&d, None, &["apiversion"]), "10");
    let ctrls = ok(&d, None, &["listcontrollers"]);
    for c in ["memory", "pids", "freezer", "unified", "name=systemd"] {
        assert!(
            ctrls.lines().any(|l| l.split(',').any(|x| x == c)),
            "{c} in {ctrls}"
        );
    }
    // test23: every hierarchy listed appears in /proc/self/cgroup (cgroup2's controllers, listed
    // as well, are on its one `0::` line).
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let v2 =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    let v2: Vec<&str> = v2.split_whitespace().collect();
    for l in ctrls.lines().filter(|l| *l != "unified" && !v2.contains(l)) {
        assert!(own.contains(&format!(":{l}:")), "{l} not in {own}");
    }
    // Unprivileged users may ping too.
    test_user("lxrtest1");
    ok(&d, Some("lxrtest1"), &["ping"]);
}

#[test]
fn create_move_query_remove_as_root() {
    let d = CgmDaemon::start("", &[]);
    let mut s = Scratch::new("api");
    let b = s.rel("b");
    // test03/04: create, read.
    assert_eq!(
        ok(&d, None, &["--json", "create", "memory", &b]),
        r#"{"existed":false}"#
    );
    assert_eq!(
        ok(&d, None, &["--json", "create", "memory", &b]),
        r#"{"existed":true}"#
    );
    let usage: u64 = ok(
        &d,
        None,
        &["getvalue", "memory", &b, "memory.usage_in_bytes"],
    )
    .parse()
    .unwrap();
    assert!(usage < 1 << 40);
    // Comma lists and all.
    ok(&d, None, &["create", "pids,freezer", &b]);
    assert!(s.dir("pids", "b").is_dir() && s.dir("freezer", "b").is_dir());
    // test06/15: move a process, see it, list it.
    let pid = sleeper(None, &[]);
    s.adopt(pid);
    ok(&d, None, &["movepid", "memory", &b, &pid.to_string()]);
    assert_eq!(cgroup_of(pid, "memory"), s.abs("memory", "b"));
    assert_eq!(
        ok(&d, None, &["getpidcgroup", "memory", &pid.to_string()]),
        b
    );
    assert_eq!(
        ok(&d, None, &["getpidcgroupabs", "memory", &pid.to_string()]),
        s.abs("memory", "b")
    );
    assert_eq!(ok(&d, None, &["gettasks", "memory", &b]), pid.to_string());
    assert_eq!(
        ok(&d, None, &["gettasksrecursive", "memory", &s.rel("")]),
        pid.to_string()
    );
    assert_eq!(ok(&d, None, &["listchildren", "memory", &s.rel("")]), "b");
    assert_eq!(
        ok(
            &d,
            None,
            &["getpidcgroup", "memory", &std::process::id().to_string()]
        ),
        "/"
    );
    // test14: non-recursive remove of a populated or parent cgroup fails; recursive works.
    refused(&d, None, &["remove", "memory", &b], "Busy");
    ok(&d, None, &["create", "memory", &s.rel("b/c")]);
    ok(
        &d,
        None,
        &["movepid", "memory", &s.rel(""), &pid.to_string()],
    );
    refused(&d, None, &["remove", "memory", &b], "Busy");
    assert_eq!(
        ok(&d, None, &["--json", "remove", "-r", "memory", &b]),
        r#"{"existed":true}"#
    );
    assert!(!s.dir("memory", "b").exists());
    assert_eq!(
        ok(&d, None, &["--json", "remove", "memory", &b]),
        r#"{"existed":false}"#
    );
    // test20: children of a missing cgroup.
    refused(&d, None, &["listchildren", "memory", &b], "NotFound");
    // test19: MovePidAbs lets host root put a process anywhere, here back into the scratch.
    ok(
        &d,
        None,
        &[
            "movepidabs",
            "memory",
            &s.abs("memory", ""),
            &pid.to_string(),
        ],
    );
    assert_eq!(cgroup_of(pid, "memory"), s.abs("memory", ""));
}

#[test]
fn chown_hands_over_tasks_not_limits() {
    let d = CgmDaemon::start("", &[]);
    let mut s = Scratch::new("chown");
    let (uid, gid) = test_user("lxrtest1");
    test_user("lxrtest2");
    let z = s.rel("zzz");
    ok(&d, None, &["create", "memory", &z]);
    // test09: dir + task files change owner, limits do not.
    ok(
        &d,
        None,
        &["chown", "memory", &z, &uid.to_string(), &gid.to_string()],
    );
    for f in ["", "tasks", "cgroup.procs"] {
        assert_eq!(owner(&s.dir("memory", "zzz").join(f)), uid, "{f}");
    }
    assert_eq!(owner(&s.dir("memory", "zzz/memory.limit_in_bytes")), 0);
    // test26: ListKeys shows it.
    let keys = ok(&d, None, &["listkeys", "memory", &z]);
    assert!(
        keys.lines()
            .any(|l| l.starts_with(&format!("tasks {uid} {gid} "))),
        "{keys}"
    );
    // test10: the user moves its own process into the cgroup it owns.
    let mine = sleeper(Some("lxrtest1"), &[]);
    s.adopt(mine);
    ok(
        &d,
        Some("lxrtest1"),
        &["movepid", "memory", &z, &mine.to_string()],
    );
    assert_eq!(cgroup_of(mine, "memory"), s.abs("memory", "zzz"));
    // test07: but not root's.
    let roots = sleeper(None, &[]);
    s.adopt(roots);
    refused(
        &d,
        Some("lxrtest1"),
        &["movepid", "memory", &z, &roots.to_string()],
        "PermissionDenied",
    );
    // test11: the limit at the delegation point stays root's.
    refused(
        &d,
        Some("lxrtest1"),
        &["setvalue", "memory", &z, "memory.limit_in_bytes", "1G"],
        "PermissionDenied",
    );
    // test12/13: the user's own children are entirely the user's.
    let zb = s.rel("zzz/b");
    ok(&d, Some("lxrtest1"), &["create", "memory", &zb]);
    assert_eq!(owner(&s.dir("memory", "zzz/b/memory.limit_in_bytes")), uid);
    ok(
        &d,
        Some("lxrtest1"),
        &["setvalue", "memory", &zb, "memory.limit_in_bytes", "50M"],
    );
    assert_eq!(
        ok(
            &d,
            Some("lxrtest1"),
            &["getvalue", "memory", &zb, "memory.limit_in_bytes"]
        ),
        "52428800"
    );
    // Another user can read but not change or create.
    assert_eq!(
        ok(
            &d,
            Some("lxrtest2"),
            &["getvalue", "memory", &zb, "memory.limit_in_bytes"]
        ),
        "52428800"
    );
    refused(
        &d,
        Some("lxrtest2"),
        &["setvalue", "memory", &zb, "memory.limit_in_bytes", "1G"],
        "PermissionDenied",
    );
    refused(
        &d,
        Some("lxrtest2"),
        &["create", "memory", &s.rel("zzz/x")],
        "PermissionDenied",
    );
    refused(
        &d,
        Some("lxrtest2"),
        &["remove", "memory", &zb],
        "PermissionDenied",
    );
    refused(
        &d,
        Some("lxrtest2"),
        &["movepid", "memory", &zb, &mine.to_string()],
        "PermissionDenied",
    );
    // test17: chmod needs ownership.
    ok(
        &d,
        Some("lxrtest1"),
        &["chmodfile", "memory", &zb, "memory.limit_in_bytes", "600"],
    );
    refused(
        &d,
        Some("lxrtest1"),
        &["chmodfile", "memory", &z, "memory.limit_in_bytes", "666"],
        "PermissionDenied",
    );
    refused(
        &d,
        Some("lxrtest2"),
        &["chmod", "memory", &zb, "777"],
        "PermissionDenied",
    );
    ok(&d, None, &["chmodfile", "memory", &z, "tasks", "664"]);
    // test16: Chown needs root in the caller's user namespace.
    refused(
        &d,
        Some("lxrtest1"),
        &["chown", "memory", &zb, "0", "0"],
        "PermissionDenied",
    );
    // The user removes its own child.
    ok(&d, Some("lxrtest1"), &["remove", "memory", &zb]);
}

#[test]
fn sibling_with_shared_prefix_is_out_of_reach() {
    // test27, the CVE-2014-1425 follow-up: a process in /x may act on /x and /x/a, not /x2.
    let d = CgmDaemon::start("", &[]);
    let s = Scratch::new("prefix");
    test_user("lxrtest1");
    for c in ["sib", "sib2"] {
        std::fs::create_dir(s.dir("memory", c)).unwrap();
    }
    let sib = s.dir("memory", "sib");
    let get = |path: &str| {
        CgmResult::of(&d.cgm_in(
            "lxrtest1",
            &sib,
            &["getvalue", "memory", path, "memory.usage_in_bytes"],
        ))
    };
    let r = get(&s.abs("memory", "sib2"));
    assert_eq!(r.kind(), Some("OutsideSubtree"), "{r:?}");
    let r = get(&s.abs("memory", "sib"));
    assert!(r.ok, "{r:?}");
}

#[test]
fn scm_translates_pids_from_a_container() {
    // nstest: a process in its own user + pid namespace names pids of its namespace; cgm
    // falls back to MovePidScm / GetPidCgroupScm and the kernel translates them.
    let d = CgmDaemon::start("", &[]);
    let s = Scratch::new("scm");
    let (uid, gid) = test_user("lxrtest1");
    let t = s.rel("ct");
    ok(&d, None, &["create", "memory", &t]);
    ok(
        &d,
        None,
        &["chown", "memory", &t, &uid.to_string(), &gid.to_string()],
    );
    let cgm = e2e::cgm::bin("cgm");
    let script = format!(
        "sleep 1000 & p=$!; {cgm} --socket {sock} movepid memory {t} $p || exit 11; \
         {cgm} --socket {sock} getpidcgroup memory $p || exit 12; \
         echo host=$(cat /proc/self/status | grep NSpid); cat /proc/$p/cgroup | grep memory; kill $p",
        cgm = cgm.display(),
        sock = d.socket.display()
    );
    let o = in_cgroups_as(
        Some("lxrtest1"),
        &[],
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            &script,
        ],
    )
    .output()
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.lines().next() == Some(t.as_str()), "{out}");
    assert!(
        out.contains(&format!("memory:{}", s.abs("memory", "ct"))),
        "{out}"
    );
}

#[test]
fn remove_on_empty_and_prune() {
    let d = CgmDaemon::start("", &[]);
    let mut s = Scratch::new("roe");
    let a = s.rel("a");
    ok(&d, None, &["create", "memory", &s.rel("a/b")]);
    ok(&d, None, &["create", "memory", &s.rel("a/c")]);
    let pid = sleeper(None, &[s.dir("memory", "a/b")]);
    s.adopt(pid);
    // test24: prune removes the empty part now and the rest once empty.
    ok(&d, None, &["prune", "memory", &a]);
    assert!(!s.dir("memory", "a/c").exists());
    assert!(s.dir("memory", "a/b").exists());
    ok(&d, None, &["create", "memory", &s.rel("x")]);
    let pid2 = sleeper(None, &[s.dir("memory", "x")]);
    s.adopt(pid2);
    ok(&d, None, &["removeonempty", "memory", &s.rel("x")]);
    assert!(s.dir("memory", "x").exists());
    for p in [pid, pid2] {
        // SAFETY: killing a process this test started.
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
    let t0 = Instant::now();
    while s.dir("memory", "a").exists() || s.dir("memory", "x").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not removed once empty"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let mut d = CgmDaemon::start("", &[]);
    ok(&d, None, &["ping"]);
    let st = d.stop().unwrap();
    assert!(st.success(), "{st}");
    assert!(!d.socket.exists());
}

#[test]
fn second_daemon_on_the_same_socket_is_refused() {
    let d = CgmDaemon::start("", &[]);
    let o = std::process::Command::new(e2e::cgm::bin("cgmanager"))
        .args(["--no-bus", "--socket", d.socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another cgmanager answers"));
    ok(&d, None, &["ping"]);
}

#[test]
fn ordinary_dbus_tools_work_peer_to_peer() {
    let d = CgmDaemon::start("", &[]);
    let s = Scratch::new("dbussend");
    let addr = format!("--peer=unix:path={}", d.socket.display());
    let o = std::process::Command::new("dbus-send")
        .args([
            &addr,
            "--print-reply",
            "--type=method_call",
            "/org/linuxcontainers/cgmanager",
            "org.linuxcontainers.cgmanager0_0.Create",
            "string:memory",
            &format!("string:{}", s.rel("ds")),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("int32 -1"));
    assert!(s.dir("memory", "ds").is_dir());
    // As a test user (libdbus falls back to ANONYMOUS; identity comes from the socket).
    test_user("lxrtest1");
    let o = std::process::Command::new("runuser")
        .args([
            "-u",
            "lxrtest1",
            "--",
            "dbus-send",
            &addr,
            "--print-reply",
            "--type=method_call",
            "/org/linuxcontainers/cgmanager",
            "org.linuxcontainers.cgmanager0_0.Create",
            "string:memory",
            &format!("string:{}", s.rel("ds/x")),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("org.linuxcontainers.cgmanager.Error.PermissionDenied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = std::process::Command::new("dbus-send")
        .args([
            &addr,
            "--print-reply",
            "/org/linuxcontainers/cgmanager",
            "org.freedesktop.DBus.Properties.Get",
            "string:org.linuxcontainers.cgmanager0_0",
            "string:api_version",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("int32 10"));
}

fn tool(prog: &str, args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(prog)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// What CGManager's clients spoke, spoken back: EXTERNAL authentication (sd-bus, zbus, godbus
/// and libdbus start with it) as well as ANONYMOUS, clients that assume a bus at any address
/// (`busctl --address`, `gdbus --address` say `Hello`), ListKeys' whole `st_mode`, GetTasks'
/// thread ids (GetProcs for process ids), GetPidCgroup of a thread, ListControllers with
/// cgroup2's controllers, `api_version` read-only, and every refusal in the `-d` log.
#[test]
fn cgmanager_clients_are_answered_as_cgmanager_answered_them() {
    let d = CgmDaemon::start("", &[]);
    let s = Scratch::new("compat");
    let sock = format!("unix:path={}", d.socket.display());
    let obj = "/org/linuxcontainers/cgmanager";
    let iface = "org.linuxcontainers.cgmanager0_0";
    // sd-bus (EXTERNAL, then Hello).
    let (good, out) = tool(
        "busctl",
        &[
            "--address",
            &sock,
            "call",
            "org.linuxcontainers.cgmanager",
            obj,
            iface,
            "Ping",
            "i",
            "0",
        ],
    );
    assert!(good, "{out}");
    let (good, out) = tool(
        "busctl",
        &[
            "--address",
            &sock,
            "get-property",
            "org.linuxcontainers.cgmanager",
            obj,
            iface,
            "api_version",
        ],
    );
    assert!(good && out.trim() == "i 10", "{out}");
    let (good, out) = tool(
        "busctl",
        &[
            "--address",
            &sock,
            "set-property",
            "org.linuxcontainers.cgmanager",
            obj,
            iface,
            "api_version",
            "i",
            "5",
        ],
    );
    assert!(!good && out.contains("read-only"), "{out}");
    // GDBus.
    let (good, out) = tool(
        "gdbus",
        &[
            "call",
            "--address",
            &sock,
            "--dest",
            "org.linuxcontainers.cgmanager",
            "--object-path",
            obj,
            "--method",
            &format!("{iface}.Ping"),
            "0",
        ],
    );
    assert!(good, "{out}");
    // libdbus, PropertyReadOnly by name.
    let (good, out) = tool(
        "dbus-send",
        &[
            &format!("--peer={sock}"),
            "--print-reply",
            obj,
            "org.freedesktop.DBus.Properties.Set",
            &format!("string:{iface}"),
            "string:api_version",
            "variant:int32:5",
        ],
    );
    assert!(
        !good && out.contains("org.freedesktop.DBus.Error.PropertyReadOnly"),
        "{out}"
    );
    // ListKeys: the whole st_mode of a 0644 file is 33188.
    std::fs::create_dir(s.dir("memory", "keys")).unwrap();
    let (good, out) = tool(
        "busctl",
        &[
            "--address",
            &sock,
            "call",
            "org.linuxcontainers.cgmanager",
            obj,
            iface,
            "ListKeys",
            "ss",
            "memory",
            &s.rel("keys"),
        ],
    );
    assert!(
        good && out.contains("\"memory.limit_in_bytes\" 0 0 33188"),
        "{out}"
    );
    // GetTasks: thread ids; GetProcs: process ids; GetPidCgroup of a thread.
    let mut threaded = e2e::cgm::threaded_process(&[s.dir("memory", "")]);
    let pid = threaded.id();
    let t0 = Instant::now();
    let tid = loop {
        let tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        if let Some(t) = tids.iter().find(|t| **t != pid) {
            break *t;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    };
    let tasks = ok(&d, None, &["gettasks", "memory", &s.rel("")]);
    let procs = ok(&d, None, &["getprocs", "memory", &s.rel("")]);
    let _ = threaded.kill();
    let _ = threaded.wait();
    assert!(
        tasks.lines().any(|l| l == pid.to_string()) && tasks.lines().any(|l| l == tid.to_string()),
        "{tasks}"
    );
    assert!(
        procs.lines().any(|l| l == pid.to_string()) && !procs.lines().any(|l| l == tid.to_string()),
        "{procs}"
    );
    // ListControllers: every cgroup2 controller enabled at the root that no v1 hierarchy has.
    let listed = ok(&d, None, &["listcontrollers"]);
    let v2 =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    for c in v2.split_whitespace() {
        if !std::path::Path::new("/sys/fs/cgroup").join(c).exists() {
            assert!(listed.lines().any(|l| l == c), "{c} missing from {listed}");
        }
    }
    // -d logs every refusal.
    let r = run(&d, Some("lxrtest1"), &["create", "memory", "../escape"]);
    assert!(!r.ok);
    assert!(
        d.log()
            .contains("refused (call #1): org.linuxcontainers.cgmanager.Error.OutsideSubtree"),
        "{}",
        d.log()
    );
}
