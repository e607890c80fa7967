//! Ours and Debian's lxcfs 5.0.3 mounted side by side, read by the same container: equal
//! wherever lxcfs is right, and right where lxcfs is not (see `lxcfs/README.md`). Every file
//! is compared: meminfo, cpuinfo, `online`, stat (also under a cpuset limit, after the
//! container used CPU), uptime, swaps, loadavg (with and without `-l`) and diskstats (after
//! the container did block I/O of its own).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{in_container, meminfo_kb, stdout, Daemon, TestCgroup};

/// Run `prelude` in a new container in `cg`, then read `files` through both mounts, in one
/// go; `(ours, lxcfs's)` per file.
fn read_both(
    ours: &Daemon,
    anchor: &Daemon,
    cg: &TestCgroup,
    prelude: &str,
    files: &[&str],
) -> Vec<(String, String)> {
    let mut script = prelude.to_string();
    for f in files {
        script.push_str(&format!(
            "cat {}/{f}; echo '@@@'; cat {}/{f}; echo '@@@'; ",
            ours.path().display(),
            anchor.path().display()
        ));
    }
    let out = stdout(&in_container(cg, &script));
    let parts: Vec<&str> = out.split("@@@\n").collect();
    files
        .iter()
        .enumerate()
        .map(|(i, _)| (parts[2 * i].to_string(), parts[2 * i + 1].to_string()))
        .collect()
}

fn keys(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect()
}

fn close(a: u64, b: u64, tol: u64, what: &str) {
    assert!(a.abs_diff(b) <= tol, "{what}: ours {a} vs lxcfs {b}");
}

fn host_swap_kb() -> u64 {
    meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "SwapTotal",
    )
}

/// The `cpu…` lines of a `/proc/stat`: name and numbers.
fn cpu_lines(stat: &str) -> Vec<(String, Vec<u64>)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let mut f = l.split_ascii_whitespace();
            let name = f.next().unwrap().to_string();
            (name, f.map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

/// `/proc/stat` through both mounts, read a few ms apart: the same CPUs, the same keys
/// below them and the same boot time; per CPU the same container CPU time (user + system)
/// and idle time within what a few ms add, and the same zeros in the other columns.
/// Returns our per-CPU lines.
fn assert_same_stat(ours: &str, lxcfs: &str) -> Vec<(String, Vec<u64>)> {
    let (o, l) = (cpu_lines(ours), cpu_lines(lxcfs));
    let names = |v: &[(String, Vec<u64>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&o), names(&l), "the same CPUs:\n{ours}\n{lxcfs}");
    for ((name, a), (_, b)) in o.iter().zip(&l) {
        assert_eq!(a.len(), b.len(), "{name}: columns");
        // The `cpu` line sums the others: its tolerances scale with them.
        let n = if name == "cpu" { o.len() as u64 - 1 } else { 1 };
        close(
            a[0] + a[2],
            b[0] + b[2],
            5 * n,
            &format!("{name} user+system"),
        );
        close(a[3], b[3], 50 * n, &format!("{name} idle"));
        for i in [1, 4, 5, 6, 7, 8, 9] {
            assert_eq!(a[i], b[i], "{name} column {}", i + 1);
        }
    }
    let rest = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("cpu"))
            .map(|l| l.split_ascii_whitespace().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(rest(ours), rest(lxcfs));
    let btime = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("btime"))
            .map(str::to_string)
    };
    assert_eq!(btime(ours), btime(lxcfs));
    o
}

fn first_number(text: &str) -> f64 {
    text.split_ascii_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn ours_matches_lxcfs_where_lxcfs_is_right() {
    let ours = Daemon::ours(&[]);
    let anchor = Daemon::anchor(&[]);
    let cg = TestCgroup::new("diff");
    cg.set("memory", "memory.limit_in_bytes", "268435456");
    let files = [
        "proc/meminfo",
        "proc/cpuinfo",
        "sys/devices/system/cpu/online",
        "proc/stat",
        "proc/uptime",
    ];
    let r = read_both(&ours, &anchor, &cg, "", &files);
    let (mo, ma) = (&r[0].0, &r[0].1);

    // meminfo: same lines in the same order; same numbers for the container's memory.
    assert_eq!(keys(mo), keys(ma));
    assert_eq!(meminfo_kb(mo, "MemTotal"), 262144);
    assert_eq!(meminfo_kb(mo, "MemTotal"), meminfo_kb(ma, "MemTotal"));
    let mb = 4096; // the two reads are a few ms apart: allow 4 MiB of drift
    for k in [
        "MemFree",
        "Cached",
        "Active",
        "Inactive",
        "Active(anon)",
        "Inactive(anon)",
        "Active(file)",
        "Inactive(file)",
        "Unevictable",
        "Shmem",
        "Dirty",
        "Writeback",
        "Buffers",
    ] {
        close(meminfo_kb(mo, k), meminfo_kb(ma, k), mb, k);
    }
    // Lines lxcfs copies from the host are the host's in both.
    for k in [
        "VmallocTotal",
        "HugePages_Total",
        "Hugepagesize",
        "CommitLimit",
    ] {
        assert_eq!(meminfo_kb(mo, k), meminfo_kb(ma, k), "{k}");
    }
    // Where lxcfs differs: it counts all of the page cache (shmem included) as available;
    // ours counts the file LRU and reclaimable slab (lxcfs 7.0). Without shmem they agree.
    assert!(meminfo_kb(mo, "MemAvailable") <= meminfo_kb(ma, "MemAvailable") + mb);
    assert!(meminfo_kb(mo, "MemAvailable") <= 262144);

    assert_eq!(r[1].0, r[1].1, "cpuinfo identical");
    assert_eq!(r[2].0, r[2].1, "online identical");
    assert_same_stat(&r[3].0, &r[3].1);

    // uptime: the container's age in both (it is a fresh container), not the host's.
    let host_up = first_number(&std::fs::read_to_string("/proc/uptime").unwrap());
    let (uo, ua) = (first_number(&r[4].0), first_number(&r[4].1));
    assert!((uo - ua).abs() < 0.5, "uptime: {} vs {}", r[4].0, r[4].1);
    assert!(
        uo < 2.0 && host_up - uo > 1.0,
        "uptime {uo} is not a fresh container's (host up {host_up} s)"
    );
}

/// Under a cpuset limit (the last CPU only), after the container used ~0.3 s of CPU: the
/// same CPUs in `/proc/stat`, `cpuinfo` and `online`, and the same CPU time on that CPU.
#[test]
fn under_a_cpuset_limit_stat_cpuinfo_and_online_match_lxcfs() {
    let n = e2e::require_cpus(2, "a cpuset limit");
    let ours = Daemon::ours(&[]);
    let anchor = Daemon::anchor(&[]);
    let cg = TestCgroup::new("diff-cpuset");
    let last = n - 1;
    cg.set("cpuset", "cpuset.cpus", &last.to_string());
    let r = read_both(
        &ours,
        &anchor,
        &cg,
        &e2e::burn_cpu(300),
        &["proc/stat", "proc/cpuinfo", "sys/devices/system/cpu/online"],
    );
    let lines = assert_same_stat(&r[0].0, &r[0].1);
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["cpu".to_string(), format!("cpu{last}")]);
    let busy = lines[1].1[0] + lines[1].1[2];
    assert!(
        (10..300).contains(&busy),
        "the container's own time on cpu{last} (~30 ticks): {busy}\n{}",
        r[0].0
    );
    assert_eq!(r[1].0, r[1].1, "cpuinfo identical");
    assert_eq!(r[1].0.matches("processor").count(), 1, "{}", r[1].0);
    assert_eq!(r[2].0, r[2].1, "online identical");
    assert_eq!(r[2].0.trim(), last.to_string());
}

/// Swap, on a host without swap (this suite's hosts): no swap in either. With host swap the
/// two differ by design (lxcfs shows the RAM+swap limit as swap), so this comparison needs
/// a swapless host and fails, saying so, elsewhere.
#[test]
fn without_host_swap_swaps_match_lxcfs() {
    let swap = host_swap_kb();
    assert_eq!(
        swap, 0,
        "prerequisite missing: this comparison needs a host without swap (SwapTotal {swap} kB)"
    );
    let ours = Daemon::ours(&[]);
    let anchor = Daemon::anchor(&[]);
    let cg = TestCgroup::new("diff-swap");
    cg.set("memory", "memory.limit_in_bytes", "268435456");
    let r = read_both(&ours, &anchor, &cg, "", &["proc/swaps", "proc/meminfo"]);
    // Same fields; ours keeps the kernel's header spacing (lxcfs single-tabs it).
    let words = |t: &str| {
        t.split_ascii_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(words(&r[0].0), words(&r[0].1), "swaps");
    assert_eq!(r[0].0.lines().count(), 1, "header only:\n{}", r[0].0);
    for k in ["SwapTotal", "SwapFree", "SwapCached"] {
        assert_eq!(meminfo_kb(&r[1].0, k), meminfo_kb(&r[1].1, k), "{k}");
    }
}

#[test]
fn swap_disabled_matches_lxcfs() {
    let ours = Daemon::ours(&["-u"]);
    let anchor = Daemon::anchor(&["-u"]);
    let cg = TestCgroup::new("noswap");
    cg.set("memory", "memory.limit_in_bytes", "134217728");
    let r = read_both(&ours, &anchor, &cg, "", &["proc/meminfo", "proc/swaps"]);
    for k in ["MemTotal", "SwapTotal", "SwapFree"] {
        assert_eq!(meminfo_kb(&r[0].0, k), meminfo_kb(&r[0].1, k), "{k}");
    }
    assert_eq!(r[1].0.lines().count(), 1);
}

/// Without `-l` both serve the host's `/proc/loadavg`: the same three averages (the kernel
/// updates them every 5 s; a pair that straddles an update is read again).
#[test]
fn loadavg_without_l_is_the_hosts_in_both() {
    let ours = Daemon::ours(&[]);
    let anchor = Daemon::anchor(&[]);
    let cg = TestCgroup::new("diff-la");
    let averages = |t: &str| {
        t.split_ascii_whitespace()
            .take(3)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let r = read_both(&ours, &anchor, &cg, "", &["proc/loadavg"]);
        let (o, l) = (averages(&r[0].0), averages(&r[0].1));
        assert_eq!(o.len(), 3, "{}", r[0].0);
        if o == l {
            return;
        }
        pairs.push((r[0].0.clone(), r[0].1.clone()));
    }
    panic!("the averages differ in 3 reads out of 3: {pairs:?}");
}

/// With `-l` in both: a container with two busy threads gets the same load from both (the
/// two samplers run 5 s apart, each at its own phase: within one sample's difference), the
/// same running and total counts; only the last field differs, on purpose: ours is the
/// newest pid as the container numbers it, lxcfs's the host's (a leak).
#[test]
fn loadavg_with_l_matches_lxcfs_but_the_host_pid() {
    let ours = Daemon::ours(&["-l"]);
    let anchor = Daemon::anchor(&["-l"]);
    let cg = TestCgroup::new("diff-la-l");
    let (o, a) = (ours.file("proc/loadavg"), anchor.file("proc/loadavg"));
    let (o, a) = (o.display(), a.display());
    // The first reads start the sampling; then the pids of the container's tasks at the
    // last reads, as it numbers them: its init, the two loops, the reading `cat`.
    let script = format!(
        "cat {o} {a} >/dev/null; (while :; do :; done) & x=$!; (while :; do :; done) & y=$!; \
         sleep 11; cat {o} {a} & p=$!; wait $p; echo 1 $x $y $p; kill $x $y"
    );
    let out = stdout(&in_container(&cg, &script));
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    let [mine, theirs, pids] = &lines[..] else {
        panic!("{out}");
    };
    let load = |f: &[&str]| f[0].parse::<f64>().unwrap();
    assert!(
        load(mine) > 0.1 && (load(mine) - load(theirs)).abs() <= 0.2,
        "1-minute loads after 11 s of two busy threads:\n{out}"
    );
    let counts = |f: &[&str]| {
        let (r, t) = f[3].split_once('/').unwrap();
        (r.parse::<u64>().unwrap(), t.parse::<u64>().unwrap())
    };
    let ((r1, t1), (r2, t2)) = (counts(mine), counts(theirs));
    assert_eq!((r1, r2), (2, 2), "running:\n{out}");
    assert!(t1.abs_diff(t2) <= 1, "threads:\n{out}");
    // The newest task (the highest host pid) as the container numbers it; which task that
    // is depends on where the host's pid counter wrapped.
    assert!(pids.contains(&mine[4]), "ours: a pid inside:\n{out}");
    assert!(!pids.contains(&theirs[4]), "lxcfs: a host pid:\n{out}");
}

/// A loop device over a temp file, detached when dropped.
struct Loop {
    dev: PathBuf,
    _file: tempfile::NamedTempFile,
}

impl Loop {
    fn new() -> Loop {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(8 << 20).unwrap();
        let o = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file.path())
            .output()
            .unwrap();
        let dev = PathBuf::from(stdout(&o).trim());
        Loop { dev, _file: file }
    }

    /// `major:minor`.
    fn numbers(&self) -> String {
        let name = self.dev.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::read_to_string(Path::new("/sys/block").join(name).join("dev"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// diskstats: a container writes 16 and reads 8 blocks of 4 KiB with direct I/O on a loop
/// device of the test's. Ours shows exactly that I/O on that device's line and no device it
/// did not touch; lxcfs serves the host's file (its CFQ-era `blkio.io_*` files are gone
/// since Linux 5.0), whose line for the device counts at least as much. cgroup v1 counts a
/// cgroup's I/O on a device only once blk-throttle is active on it, i.e. some cgroup has a
/// throttle limit for it: the container's cgroup gets one no I/O can reach.
#[test]
fn diskstats_show_the_containers_own_io_where_lxcfs_shows_the_hosts() {
    let ours = Daemon::ours(&[]);
    let anchor = Daemon::anchor(&[]);
    let cg = TestCgroup::new("diff-disk");
    let dev = Loop::new();
    let numbers = dev.numbers();
    cg.set(
        "blkio",
        "blkio.throttle.write_iops_device",
        &format!("{numbers} 1000000"),
    );
    let d = dev.dev.display();
    let io = format!(
        "dd if=/dev/zero of={d} bs=4k count=16 oflag=direct 2>/dev/null && \
         dd if={d} of=/dev/null bs=4k count=8 iflag=direct 2>/dev/null || exit 1; "
    );
    let r = read_both(&ours, &anchor, &cg, &io, &["proc/diskstats"]);
    let (mine, theirs) = (&r[0].0, &r[0].1);
    let (major, minor) = numbers.split_once(':').unwrap();
    let name = dev.dev.file_name().unwrap().to_string_lossy().into_owned();
    let line = |t: &str| -> Vec<u64> {
        t.lines()
            .map(|l| l.split_ascii_whitespace().collect::<Vec<_>>())
            .find(|f| f[..3] == [major, minor, name.as_str()])
            .unwrap_or_else(|| panic!("no {name} line in\n{t}"))[3..]
            .iter()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (m, t) = (line(mine), line(theirs));
    assert_eq!(m.len(), t.len(), "the same columns:\n{mine}\n{theirs}");
    // reads completed, sectors read, writes completed, sectors written: the container's own
    assert_eq!([m[0], m[2], m[4], m[6]], [8, 64, 16, 128], "{mine}");
    for i in [0, 2, 4, 6] {
        assert!(
            m[i] <= t[i],
            "column {}: ours {} > host {}",
            i + 4,
            m[i],
            t[i]
        );
    }
    // Every device of ours is in lxcfs's (the host's) list, which also has the devices the
    // container never touched.
    let devices = |t: &str| {
        t.lines()
            .map(|l| {
                l.split_ascii_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
    };
    let all = devices(theirs);
    for d in devices(mine) {
        assert!(all.contains(&d), "{d} is not in lxcfs's list:\n{theirs}");
    }
    assert!(
        all.len() > devices(mine).len(),
        "lxcfs: the host's devices, ours: the container's:\n{mine}\n{theirs}"
    );
}
