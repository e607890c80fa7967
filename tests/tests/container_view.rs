//! What a process in a container (a new pid namespace inside nested cgroups with limits)
//! reads through our mount: its container's memory, CPUs, uptime and CPU time.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{
    children_of, in_cgroup, in_container, meminfo_kb, spawn_in_container, stdout, Daemon,
    TestCgroup,
};

/// The host's last CPU, for a cpuset that leaves the others out.
fn last_cpu() -> usize {
    e2e::require_cpus(2, "a cpuset limit") - 1
}

#[test]
fn container_sees_its_limits_through_the_mount() {
    let d = Daemon::ours(&[]);
    let parent = TestCgroup::new("view");
    parent.set("memory", "memory.limit_in_bytes", "268435456");
    let cpu = last_cpu().to_string();
    parent.set("cpuset", "cpuset.cpus", &cpu);
    let child = parent.child("inner");
    child.set("memory", "memory.limit_in_bytes", "536870912");

    let m = d.path().display().to_string();
    // /proc inside is the container's own procfs: pid 1 is the shell; its uptime the host's.
    let script = format!(
        "sleep 2; cat {m}/proc/meminfo; echo ===; cat {m}/proc/cpuinfo; echo ===; \
         cat {m}/sys/devices/system/cpu/online; echo ===; cat {m}/proc/stat; echo ===; \
         cat {m}/proc/uptime; echo ===; cat /proc/uptime; echo ===; \
         cut -d' ' -f22 /proc/1/stat; echo ===; echo $$"
    );
    let out = stdout(&in_container(&child, &script));
    let parts: Vec<&str> = out.split("===\n").collect();
    let [meminfo, cpuinfo, online, stat, uptime, host_uptime, init_start, pid] = parts[..] else {
        panic!("unexpected output:\n{out}");
    };
    assert_eq!(pid.trim(), "1", "the shell is PID 1 of its namespace");
    assert_eq!(
        meminfo_kb(meminfo, "MemTotal"),
        262144,
        "minimum over ancestors"
    );
    assert!(meminfo_kb(meminfo, "MemFree") <= 262144);
    assert!(meminfo_kb(meminfo, "MemAvailable") <= 262144);
    let procs: Vec<&str> = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .collect();
    assert_eq!(procs.len(), 1, "{cpuinfo}");
    assert!(procs[0].ends_with(": 0"), "renumbered: {}", procs[0]);
    assert_eq!(online.trim(), cpu);
    let cpus: Vec<&str> = stat
        .lines()
        .filter_map(|l| l.split_ascii_whitespace().next())
        .filter(|n| n.starts_with("cpu"))
        .collect();
    assert_eq!(cpus, ["cpu".to_string(), format!("cpu{cpu}")]);
    for k in ["intr", "ctxt", "btime", "processes"] {
        assert!(
            stat.lines().any(|l| l.starts_with(k)),
            "{k} missing:\n{stat}"
        );
    }
    // uptime: the init's age (the host's uptime when read, minus the init's start time,
    // in 1/100 s since boot), which the sleep made about 2 s; the host was up longer.
    let up: Vec<f64> = uptime
        .split_ascii_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let host_up: f64 = host_uptime
        .split_ascii_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let age = host_up - init_start.trim().parse::<f64>().unwrap() / 100.0;
    assert!(
        (up[0] - age).abs() < 0.5 && (1.5..15.0).contains(&up[0]),
        "uptime is the container's age ({age:.2} s): {uptime}"
    );
    assert!(
        host_up - up[0] > 1.0,
        "not the host's ({host_up} s): {uptime}"
    );
    // One visible CPU: idle is at most the age.
    assert!(up[1] >= 0.0 && up[1] <= up[0] + 0.01, "{uptime}");
    // (swaps: `differential.rs`, against lxcfs.)
}

#[test]
fn host_pid_namespace_reader_gets_its_own_cgroup() {
    let d = Daemon::ours(&[]);
    let cg = TestCgroup::new("hostns");
    cg.set("memory", "memory.limit_in_bytes", "134217728");
    let out = stdout(&in_cgroup(
        &cg,
        &format!("cat {}/proc/meminfo", d.path().display()),
    ));
    assert_eq!(meminfo_kb(&out, "MemTotal"), 131072);
}

#[test]
fn deeper_process_sees_the_container_inits_view() {
    let d = Daemon::ours(&[]);
    let top = TestCgroup::new("deep");
    top.set("memory", "memory.limit_in_bytes", "268435456");
    let sub = top.child("sub");
    sub.set("memory", "memory.limit_in_bytes", "67108864");
    // Init stays in `top`; a child moves itself into `sub` and reads.
    let procs = sub.dir("memory").join("cgroup.procs");
    let script = format!(
        "sh -c 'echo $$ > {} && cat {}/proc/meminfo'",
        procs.display(),
        d.path().display()
    );
    let out = stdout(&in_container(&top, &script));
    assert_eq!(
        meminfo_kb(&out, "MemTotal"),
        262144,
        "the init's cgroup, not the reader's"
    );
}

#[test]
fn enable_cfs_limits_cpus_to_the_quota() {
    e2e::require_cpus(2, "a quota below the cpuset");
    let d = Daemon::ours(&["--enable-cfs"]);
    let cg = TestCgroup::new("cfs");
    cg.set("cpuset", "cpuset.cpus", "0-1");
    cg.set("cpu", "cpu.cfs_period_us", "100000");
    cg.set("cpu", "cpu.cfs_quota_us", "50000");
    let m = d.path().display().to_string();
    let out = stdout(&in_container(
        &cg,
        &format!("cat {m}/proc/cpuinfo; echo ===; cat {m}/sys/devices/system/cpu/online"),
    ));
    let (cpuinfo, online) = out.split_once("===\n").unwrap();
    assert_eq!(
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
        1
    );
    assert_eq!(online.trim(), "0");
}

#[test]
fn stat_counts_the_containers_cpu_time() {
    let d = Daemon::ours(&[]);
    let cg = TestCgroup::new("busy");
    let m = d.path().display().to_string();
    // Use ~0.5 s of CPU inside, then read.
    let script = format!("{}cat {m}/proc/stat", e2e::burn_cpu(500));
    let out = stdout(&in_container(&cg, &script));
    let total: Vec<u64> = out
        .lines()
        .next()
        .unwrap()
        .split_ascii_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let busy = total[0] + total[2];
    assert!(
        (20..2000).contains(&busy),
        "user+system ticks of the container only: {busy}\n{out}"
    );
}

#[test]
fn shared_renderings_never_cross_containers_and_expire() {
    let d = Daemon::ours(&[]);
    let m = d.path().display().to_string();
    let a = TestCgroup::new("cache-a");
    a.set("memory", "memory.limit_in_bytes", "134217728");
    let b = TestCgroup::new("cache-b");
    b.set("memory", "memory.limit_in_bytes", "268435456");
    let loop_script = format!("for i in $(seq 200); do head -1 {m}/proc/meminfo; done");
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| stdout(&in_container(&a, &loop_script)));
        let hb = s.spawn(|| stdout(&in_container(&b, &loop_script)));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert!(
        ra.lines().all(|l| l.contains(" 131072 kB")),
        "container a saw another's view:\n{ra}"
    );
    assert!(
        rb.lines().all(|l| l.contains(" 262144 kB")),
        "container b saw another's view:\n{rb}"
    );

    // A limit changed from inside shows after the (20 ms) sharing window.
    let limit = a.dir("memory").join("memory.limit_in_bytes");
    let script = format!(
        "head -1 {m}/proc/meminfo; echo 67108864 > {}; sleep 0.1; head -1 {m}/proc/meminfo",
        limit.display()
    );
    let out = stdout(&in_container(&a, &script));
    let totals: Vec<u64> = out.lines().map(|l| meminfo_kb(l, "MemTotal")).collect();
    assert_eq!(totals, [131072, 65536], "{out}");
}

/// A reader that joined the container's pid namespace with `setns()` — `nsenter -p`, as
/// `lxr exec` does — from outside the container's cgroups: its parent is outside the
/// namespace, so on kernels before 6.11 (no `NS_GET_TGID_FROM_PIDNS`) the parent walk cannot
/// find the container's init, and lxcfs used to answer ESRCH (issue 18). Checked with the
/// ioctl and with it turned off (the /proc scan), each time as the namespace's first reader
/// (nothing cached), from the joined process and from a child of it.
#[test]
fn a_reader_that_entered_by_setns_sees_the_container_with_and_without_the_ioctl() {
    for without in [&[][..], &["ns_get_tgid"][..]] {
        let d = Daemon::ours_without(without, &[]);
        let mut cg = TestCgroup::new("setns");
        cg.set(
            "memory",
            "memory.limit_in_bytes",
            &(72u64 << 20).to_string(),
        );
        let mut unshare = spawn_in_container(&cg, "sleep 60 & wait");
        cg.adopt(unshare.id());
        let t = Instant::now();
        let init = loop {
            if let Some(&i) = children_of(unshare.id()).first() {
                break i;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no container init");
            std::thread::sleep(Duration::from_millis(10));
        };
        let m = d.path().display().to_string();
        let out = Command::new("nsenter")
            .args(["-t", &init.to_string(), "-p", "--"])
            .args(["sh", "-c"])
            .arg(format!(
                "timeout 10 cat {m}/proc/meminfo && echo === && \
                 timeout 10 sh -c 'cat {m}/proc/meminfo' && echo === && \
                 timeout 10 cat {m}/proc/uptime {m}/proc/swaps {m}/proc/stat >/dev/null && echo $$"
            ))
            .output()
            .unwrap();
        let text = stdout(&out);
        let parts: Vec<&str> = text.split("===\n").collect();
        let [direct, child, pid] = parts[..] else {
            panic!("unexpected output:\n{text}");
        };
        assert_ne!(pid.trim(), "1", "the reader joined, it is not the init");
        for (who, meminfo) in [("the joined process", direct), ("its child", child)] {
            assert_eq!(
                meminfo_kb(meminfo, "MemTotal"),
                72 * 1024,
                "{who} (without {without:?}) sees the container's limit:\n{}",
                d.log_text()
            );
        }
        // The container this test started (its init dies with `unshare`, --kill-child).
        e2e::signal(unshare.id(), nix::sys::signal::Signal::SIGKILL);
        let _ = unshare.wait();
    }
}

/// With `--cache-ms 0` (rendering on every read, through the descriptors each serving thread
/// keeps open) a new limit and a move of the container's init to another cgroup both show on
/// the very next read.
#[test]
fn with_cache_ms_0_a_new_limit_and_a_move_show_on_the_next_read() {
    let d = Daemon::ours(&["--cache-ms", "0"]);
    let m = d.path().display().to_string();
    let a = TestCgroup::new("nocache-a");
    a.set("memory", "memory.limit_in_bytes", "134217728");
    let b = TestCgroup::new("nocache-b");
    b.set("memory", "memory.limit_in_bytes", "268435456");
    let limit = a.dir("memory").join("memory.limit_in_bytes");
    let procs = b.dir("memory").join("cgroup.procs");
    // The shell is the container's init: `echo 0 > cgroup.procs` moves it (a builtin).
    let script = format!(
        "for i in 1 2 3; do head -1 {m}/proc/meminfo; done; echo 67108864 > {}; \
         head -1 {m}/proc/meminfo; echo 0 > {}; head -1 {m}/proc/meminfo",
        limit.display(),
        procs.display()
    );
    let out = stdout(&in_container(&a, &script));
    let totals: Vec<u64> = out.lines().map(|l| meminfo_kb(l, "MemTotal")).collect();
    assert_eq!(totals, [131072, 131072, 131072, 65536, 262144], "{out}");
}

/// The daemon reads a container's cgroup files through descriptors it holds; a descriptor
/// follows its cgroup, a path does not. The container's cgroup renamed away, a new one made
/// under its old name and the init moved into it: the next read is the new cgroup's, never
/// the renamed one's through the old descriptor (`cgroups::kept` checks the path).
#[test]
fn a_cgroup_renamed_away_and_made_anew_under_its_name_is_read_anew() {
    struct Rmdir(std::path::PathBuf);
    impl Drop for Rmdir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let d = Daemon::ours(&["--cache-ms", "0"]);
    let m = d.path().display().to_string();
    let a = TestCgroup::new("renamed");
    a.set("memory", "memory.limit_in_bytes", "134217728");
    let old = a.dir("memory").to_path_buf();
    let mut moved = old.clone().into_os_string();
    moved.push("-moved");
    let moved = Rmdir(moved.into());
    let (old, new) = (old.display(), moved.0.display());
    let script = format!(
        "head -1 {m}/proc/meminfo; mv {old} {new}; head -1 {m}/proc/meminfo; \
         mkdir {old}; echo 67108864 > {old}/memory.limit_in_bytes; echo 0 > {old}/cgroup.procs; \
         head -1 {m}/proc/meminfo"
    );
    let out = stdout(&in_container(&a, &script));
    let totals: Vec<u64> = out.lines().map(|l| meminfo_kb(l, "MemTotal")).collect();
    assert_eq!(totals, [131072, 131072, 65536], "{out}");
}
