//! lxr as an unprivileged test user, for real: a busybox system container in its own user,
//! mount, pid, uts, ipc, net and cgroup namespaces, its cgroup delegated by our cgmanager with
//! limits, `/proc` from our lxcfs; exec, stop (clean and forced), start, delete — and nothing
//! left behind on the host afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use e2e::cgm::{cgroup_of, test_user};
use e2e::lxr::{subuid_base, unconfined, user_dir, Cleanup, World};

#[test]
fn launch_exec_stop_start_delete_as_a_user() {
    let w = World::new("lxr");
    let s = &w.scratch;
    // Our lxcfs, on a mount point the container's root may traverse; as on a kernel before
    // 6.11 (no NS_GET_TGID_FROM_PIDNS, e.g. Debian 12's 6.1), where `lxr exec … free` used to
    // get ESRCH: the processes `lxr exec` starts joined the container by setns, so their
    // parents are outside it (issue 18). `container_view.rs` checks both kernels' ways.
    let lx_dir = user_dir(0, 0);
    let mnt = lx_dir.path().join("lxcfs");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _lxcfs = e2e::Daemon::ours_at_without(&mnt, &["ns_get_tgid"], &[]);
    let lxr = w.lxr(Some(mnt.clone()));
    let start = subuid_base("lxrtest1");

    let _cleanup = Cleanup(&lxr, vec!["t1"]);
    lxr.ok(&[
        "launch",
        "busybox",
        "t1",
        "-c",
        "limits.memory=128MiB",
        "-c",
        "limits.processes=64",
        "-c",
        "limits.cpu=1",
    ]);
    let pid = lxr.pid("t1").expect("t1 runs");
    // On the host: init runs as the first subordinate uid, in the delegated cgroup, limited.
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        st.lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&start.to_string())),
        "{st}"
    );
    let cg = cgroup_of(pid, "memory");
    assert_eq!(cg, s.abs("memory", "lxrtest1/lxr/t1"));
    assert_eq!(
        std::fs::read_to_string(s.dir("memory", "lxrtest1/lxr/t1/memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        std::fs::read_to_string(s.dir("pids", "lxrtest1/lxr/t1/pids.max"))
            .unwrap()
            .trim(),
        "64"
    );
    // Inside: PID 1 is init, the hostname is the name, the user is root, /proc tells the truth.
    assert_eq!(lxr.ok(&["exec", "t1", "--", "cat", "/proc/1/comm"]), "init");
    assert_eq!(lxr.ok(&["exec", "t1", "--", "hostname"]), "t1");
    assert_eq!(lxr.ok(&["exec", "t1", "--", "id", "-u"]), "0");
    // `free -m` (procps, in the image) reads the container's meminfo from our lxcfs.
    let free = lxr.ok(&["exec", "t1", "--", "free", "-m"]);
    let total = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default();
    assert_eq!(total, "128", "{free}");
    // Also from a shell (busybox's sh would run its own sysinfo-based free).
    let free = lxr.ok(&["exec", "t1", "--", "sh", "-c", "free -m | grep Mem:"]);
    assert_eq!(free.split_whitespace().nth(1), Some("128"), "{free}");
    let meminfo = lxr.ok(&["exec", "t1", "--", "cat", "/proc/meminfo"]);
    assert_eq!(
        e2e::meminfo_kb(&meminfo, "MemTotal"),
        128 * 1024,
        "{meminfo}"
    );
    // Every entry lxcfs offers under proc/ is bound, /proc/pressure included (lxr once kept
    // its own list of files and left the host's pressure figures in the container).
    let mounts = lxr.ok(&["exec", "t1", "--", "cat", "/proc/self/mountinfo"]);
    let lxcfs_targets: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(" - fuse.lxcfs "))
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    for f in std::fs::read_dir(mnt.join("proc")).unwrap() {
        let name = f.unwrap().file_name().to_string_lossy().to_string();
        let target = format!("/proc/{name}");
        assert!(
            lxcfs_targets.contains(&target.as_str()),
            "{target}: {mounts}"
        );
    }
    assert!(
        lxcfs_targets.contains(&"/proc/pressure"),
        "the host has PSI and lxcfs serves it: {mounts}"
    );
    assert_eq!(lxr.ok(&["exec", "t1", "--", "nproc"]), "1");
    assert_eq!(
        lxr.ok(&["exec", "t1", "--", "getconf", "_NPROCESSORS_ONLN"]),
        "1"
    );
    let up: f64 = lxr
        .ok(&["exec", "t1", "--", "cat", "/proc/uptime"])
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(up < 60.0, "uptime {up}");
    assert!(lxr
        .ok(&["exec", "t1", "--", "cat", "/proc/net/dev"])
        .contains("lo:"));
    // Init and exec'd processes run under the seccomp deny-list: no forced unmounts.
    for pid in ["1", "self"] {
        let st = lxr.ok(&[
            "exec",
            "t1",
            "--",
            "grep",
            "Seccomp:",
            &format!("/proc/{pid}/status"),
        ]);
        assert!(st.ends_with('2'), "{pid}: {st}");
    }
    let o = lxr.run(&["exec", "t1", "--", "umount", "-f", "/dev/mqueue"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not permitted"),
        "{o:?}"
    );
    // Exit codes pass through.
    let o = lxr.run(&["exec", "t1", "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    // With -t the command gets a terminal from the container's devpts; exit codes still pass.
    assert!(lxr
        .ok(&["exec", "-t", "t1", "--", "tty"])
        .contains("/dev/pts/"));
    let o = lxr.run_with_input(
        &["exec", "-t", "t1", "--", "sh"],
        b"echo in-$((2+3)); exit 5\n",
    );
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stdout).contains("in-5"), "{o:?}");
    // Forced stop: gone, cgroup removed.
    lxr.ok(&["stop", "--force", "t1"]);
    assert!(lxr.pid("t1").is_none());
    assert!(!s.dir("memory", "lxrtest1/lxr/t1").exists());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // Start again; a clean stop (busybox halts on SIGUSR1).
    lxr.ok(&["start", "t1"]);
    assert!(lxr.pid("t1").is_some());
    lxr.ok(&["stop", "t1", "--timeout", "20"]);
    assert!(lxr.pid("t1").is_none());
    // Delete: nothing left.
    lxr.ok(&["delete", "t1"]);
    assert!(!w.home.path().join("lxr/containers/t1").exists());
    assert!(!s.dir("memory", "lxrtest1/lxr/t1").exists());
}

#[test]
fn without_cgmanager_it_runs_unconfined_and_refuses_limits() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["u1", "u2"]);
    let o = lxr.run(&["launch", "busybox", "u1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unconfined"));
    assert_eq!(lxr.ok(&["exec", "u1", "--", "hostname"]), "u1");
    lxr.ok(&["delete", "--force", "u1"]);
    let o = lxr.run(&["launch", "busybox", "u2", "-c", "limits.memory=64MiB"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cgmanager"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    lxr.ok(&["delete", "u2"]);
    // Bad names are refused with advice.
    let o = lxr.run(&["launch", "busybox", "1bad"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid container name"));
}

fn state_of(w: &World, name: &str) -> Option<String> {
    std::fs::read_to_string(w.home.path().join("lxr/run").join(name).join("state.json")).ok()
}

fn json_u32(text: &str, key: &str) -> u32 {
    let i = text.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    text[i..]
        .split([',', '}'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn killed_monitor_or_launch_leaves_a_state_list_and_delete_handle() {
    let w = World::new("lxrkill");
    let s = &w.scratch;
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["k1", "k2"]);
    // The monitor killed: the container still runs; stop and delete clean up its cgroup.
    lxr.ok(&["launch", "busybox", "k1"]);
    let st = state_of(&w, "k1").unwrap();
    let (init, monitor) = (json_u32(&st, "init_pid"), json_u32(&st, "monitor_pid"));
    // SAFETY: killing a process this test started (through lxr), by pid.
    unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(lxr.pid("k1"), Some(init));
    assert_eq!(lxr.ok(&["exec", "k1", "--", "hostname"]), "k1");
    lxr.ok(&["stop", "--force", "k1"]);
    assert!(lxr.pid("k1").is_none());
    assert!(state_of(&w, "k1").is_none());
    assert!(!s.dir("memory", "lxrtest1/lxr/k1").exists());
    lxr.ok(&["delete", "k1"]);
    // `lxr launch` killed at various points: list works, delete --force leaves nothing.
    for delay_ms in [2u64, 8, 20, 60] {
        let mut child = lxr
            .command(&["launch", "busybox", "k2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // The monitor may still be finishing the start it was given.
        std::thread::sleep(std::time::Duration::from_millis(300));
        lxr.ok(&["list"]);
        let o = lxr.run(&["delete", "--force", "k2"]);
        let err = String::from_utf8_lossy(&o.stderr);
        // Killed before it created anything, there is nothing to delete.
        assert!(
            o.status.success() || err.contains("no container k2"),
            "{err}"
        );
        assert!(
            !w.home.path().join("lxr/containers/k2").exists(),
            "after {delay_ms} ms"
        );
        assert!(lxr.pid("k2").is_none());
        let t0 = std::time::Instant::now();
        while s.dir("memory", "lxrtest1/lxr/k2").exists() {
            assert!(
                t0.elapsed().as_secs() < 5,
                "cgroup k2 left after {delay_ms} ms"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn a_memory_hog_is_killed_inside_and_the_host_is_untouched() {
    let w = World::new("lxroom");
    let s = &w.scratch;
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["hog"]);
    lxr.ok(&["launch", "busybox", "hog", "-c", "limits.memory=64MiB"]);
    let init = lxr.pid("hog").unwrap();
    // `tail` of a file without newlines keeps everything it reads.
    let o = lxr.run(&["exec", "hog", "--", "tail", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(128 + 9), "{o:?}");
    let failcnt: u64 = std::fs::read_to_string(s.dir("memory", "lxrtest1/lxr/hog/memory.failcnt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(failcnt > 0);
    // The container lives on, and so does everything around it.
    assert_eq!(lxr.pid("hog"), Some(init));
    assert_eq!(
        lxr.ok(&["exec", "hog", "--", "cat", "/proc/1/comm"]),
        "init"
    );
}

#[test]
fn another_user_can_neither_see_nor_touch_a_container() {
    let w = World::new("lxrusers");
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["mine"]);
    lxr.ok(&["launch", "busybox", "mine"]);
    let init = lxr.pid("mine").unwrap();
    test_user("lxrtest2");
    let as2 = |args: &[&str]| {
        std::process::Command::new("runuser")
            .args(["-u", "lxrtest2", "--", "env"])
            .arg(format!("XDG_DATA_HOME={}", lxr.data.display()))
            .arg(e2e::cgm::bin("lxr"))
            .args(args)
            .output()
            .unwrap()
    };
    // Pointed at lxrtest1's directory, lxrtest2 still cannot enter, stop or delete it.
    for args in [
        vec!["exec", "mine", "--", "true"],
        vec!["stop", "--force", "mine"],
        vec!["delete", "--force", "mine"],
    ] {
        let o = as2(&args);
        assert!(!o.status.success(), "lxrtest2 ran {args:?}");
    }
    // Nor signal its processes directly.
    let o = std::process::Command::new("runuser")
        .args(["-u", "lxrtest2", "--", "kill", "-9", &init.to_string()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(lxr.pid("mine"), Some(init));
    // Its own list is empty.
    let o = std::process::Command::new("runuser")
        .args(["-u", "lxrtest2", "--"])
        .arg(e2e::cgm::bin("lxr"))
        .arg("list")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("mine"));
}

/// A user whose shell sits inside its own delegation (after `cgm enter`, or in a session
/// systemd delegated) launches, execs and stops as from anywhere else. Giving the container's
/// cgroups to its root was asked as the container's root, which cgmanager bounds by the caller's
/// own cgroup: from inside the delegation, `launch` failed with OutsideSubtree.
#[test]
fn a_user_inside_its_own_delegation_launches_and_hands_the_cgroups_over() {
    let w = World::new("lxrinside");
    let s = &w.scratch;
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["inner"]);
    let cgm = e2e::cgm::bin("cgm");
    let sock = w.daemon.socket.display().to_string();
    let enter = format!(
        "{c} --socket {sock} delegate >/dev/null && {c} --socket {sock} enter all session $$ \
         >/dev/null && exec \"$@\"",
        c = cgm.display()
    );
    let wrapper = ["sh", "-c", enter.as_str(), "sh"];
    let run = |args: &[&str]| {
        let o = lxr.command_through(&[], &wrapper, args).output().unwrap();
        assert!(
            o.status.success(),
            "lxr {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    run(&["launch", "busybox", "inner"]);
    let init = lxr.pid("inner").unwrap();
    // lxr ran in the user's `session` cgroup; the container is in its own, given to its root.
    assert_eq!(
        cgroup_of(init, "memory"),
        s.abs("memory", "lxrtest1/lxr/inner")
    );
    let top = s.dir("memory", "lxrtest1/lxr/inner");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&top).unwrap()),
        subuid_base("lxrtest1")
    );
    assert_eq!(run(&["exec", "inner", "--", "cat", "/proc/1/comm"]), "init");
    run(&["stop", "inner"]);
    assert!(!top.exists());
}
