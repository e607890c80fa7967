//! lxcfs on pure cgroup v2 with systemd as PID 1 (issue 18): the guest of `scripts/vm.sh`
//! (Debian 12, systemd 252, only cgroup2 at `/sys/fs/cgroup`) on both Debian 12 kernels, 6.1
//! and 6.12, with our lxcfs (`/lxr/bin/lxcfs`) beside Debian's lxcfs 5.0.3 in the same boot.
//! The containers are made the way a runtime makes them: a cgroup below the run unit's
//! delegated one (`Delegate=yes`; its processes moved to a leaf, the controllers enabled in
//! `cgroup.subtree_control`), and a process in it that unshares cgroup, pid and mount
//! namespaces (`unshare -C -p -m -f --mount-proc`) and reads the lxcfs files as its pid 1.
//!
//! 1. **Views** (`views_on_*`): `memory.max` and `memory.swap.max` (meminfo, swaps), `cpuset.cpus`
//!    (online, cpuinfo, stat), `cpu.max` without and with `--enable-cfs`, `io.max` and `io.stat`
//!    (diskstats), PSI (`/proc/pressure/*` from the cgroup's `*.pressure`), uptime, loadavg
//!    (`-l`), and a container whose cgroup has no controller at all (meminfo, swaps, diskstats
//!    from its nearest ancestor that has them). Where lxcfs 5.0.3 is right our numbers must be
//!    its numbers; where it is wrong the comment at the assertion says why, and ours must be
//!    the right value.
//! 2. **Readers that entered by setns** (`setns_readers_on_*`): `nsenter -t <init> -p -C -m`, as
//!    `lxr exec` enters, from outside the container's cgroup, as the first readers of a
//!    container: on 6.1 (no `NS_GET_TGID_FROM_PIDNS`, which came in 6.11) our daemon finds the
//!    container's init by scanning `/proc`; on 6.12 by the ioctl.
//! 3. **`kill -9` and live upgrades under readers** (`crash_and_upgrade_on_*`): see
//!    [`crash_and_upgrade`].
//!
//! The guest's side is bash, in `v2_lxcfs/`: `lib.sh` (cgroups, daemons, containers) and one
//! script per part. They print sections, a line `@@@ <key>` and then the text, judged here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::meminfo_kb;
use e2e::vm::{Guest, Kernel};

const LIB: &str = include_str!("v2_lxcfs/lib.sh");

/// A guest run's sections, by key.
struct Sections {
    kernel: Kernel,
    map: BTreeMap<String, String>,
}

impl Sections {
    /// Boot `kernel`, run `lib.sh` and `script`, and split the output; fails the test (with the
    /// guest's output) unless the script succeeded.
    fn run(kernel: Kernel, script: &str, timeout: Duration) -> Sections {
        let out = Guest::new(kernel)
            .timeout(timeout)
            .run(&format!("{LIB}\n{script}"));
        out.assert_success();
        let mut map = BTreeMap::new();
        let mut key: Option<String> = None;
        let mut text = String::new();
        for line in out.stdout.lines() {
            if let Some(k) = line.strip_prefix("@@@ ") {
                if let Some(prev) = key.replace(k.to_string()) {
                    map.insert(prev, std::mem::take(&mut text));
                }
            } else if key.is_some() {
                text.push_str(line);
                text.push('\n');
            }
        }
        if let Some(k) = key {
            map.insert(k, text);
        }
        Sections { kernel, map }
    }

    /// The text of section `key`.
    #[track_caller]
    fn get(&self, key: &str) -> &str {
        self.map.get(key).unwrap_or_else(|| {
            panic!(
                "{}: no section {key:?}; there are: {:?}",
                self.kernel,
                self.map.keys().collect::<Vec<_>>()
            )
        })
    }

    /// A one-number section.
    #[track_caller]
    fn num(&self, key: &str) -> f64 {
        let t = self.get(key);
        t.split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: {key}: not a number: {t:?}", self.kernel))
    }
}

/// The names of `/proc/stat`'s cpu lines (`cpu`, `cpu0`, ...).
fn stat_cpus(stat: &str) -> Vec<&str> {
    stat.lines()
        .filter_map(|l| l.split_ascii_whitespace().next())
        .filter(|n| n.starts_with("cpu"))
        .collect()
}

/// A `/proc/stat` line's numbers.
fn stat_line(stat: &str, name: &str) -> Vec<u64> {
    let line = stat
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{stat}"));
    line.split_ascii_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect()
}

/// How many `processor` entries `/proc/cpuinfo` has.
fn processors(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
}

/// How many CPUs a list such as `0-1,3` names.
fn cpu_count(list: &str) -> usize {
    list.trim()
        .split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// A PSI file's `total=` of its `some` or `full` line.
fn psi_total(text: &str, kind: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(kind))
        .and_then(|l| {
            l.split_ascii_whitespace()
                .find_map(|f| f.strip_prefix("total="))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {kind} total in {text:?}"))
}

/// `key=value` fields of `dev`'s line of an `io.stat` (all 0 without a line).
fn io_stat(text: &str, dev: &str) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = ["rbytes", "wbytes", "rios", "wios", "dbytes", "dios"]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect();
    if let Some(line) = text.lines().find(|l| l.starts_with(&format!("{dev} "))) {
        for f in line.split_ascii_whitespace().skip(1) {
            if let Some((k, v)) = f.split_once('=') {
                m.insert(k.to_string(), v.parse().unwrap());
            }
        }
    }
    m
}

/// The diskstats lines, by device name: the numbers after the name.
fn diskstats(text: &str) -> BTreeMap<String, Vec<u64>> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            (f.len() > 3).then(|| {
                (
                    f[2].to_string(),
                    f[3..].iter().map(|v| v.parse().unwrap()).collect(),
                )
            })
        })
        .collect()
}

/// Our two daemons in the views run: plain and `--enable-cfs` (both `-l`).
const OURS: [&str; 2] = ["o", "oc"];
/// lxcfs 5.0.3's, the same options.
const DEBIANS: [&str; 2] = ["d", "dc"];
/// Every container of the views run.
const CONTAINERS: [&str; 5] = ["mem", "cpus", "quota", "io", "bare"];

fn views(kernel: Kernel) {
    let s = Sections::run(
        kernel,
        include_str!("v2_lxcfs/views.sh"),
        Duration::from_secs(480),
    );
    let k = kernel;
    let file = |c: &str, d: &str, f: &str| s.get(&format!("{c}:{d}/{f}")).to_string();
    let meminfo = |c: &str, d: &str| file(c, d, "proc/meminfo");

    // ---- memory.max, memory.swap.max
    // mem: 256 MiB (+ 64 MiB swap) inside outer's 384 MiB: the lower limit, for everyone.
    for d in OURS.iter().chain(&DEBIANS) {
        assert_eq!(
            meminfo_kb(&meminfo("mem", d), "MemTotal"),
            262144,
            "{k} {d}"
        );
    }
    let cur = |c: &str, when: &str| s.num(&format!("{c}:cg-{when}/memory.current")) as u64 / 1024;
    // bare: the container in bare/ct has no controller; the kernel limits and charges it as
    // bare, whose limits it sees. lxcfs 5.0.3 shows the host's meminfo there (no memory.stat
    // in the container's cgroup).
    for (c, total, swap) in [("mem", 262144, 65536), ("bare", 131072, 16384)] {
        let (lo, hi) = {
            let (a, b) = (cur(c, "before"), cur(c, "after"));
            (a.min(b), a.max(b))
        };
        for d in OURS {
            let m = meminfo(c, d);
            let v = |key: &str| meminfo_kb(&m, key);
            assert_eq!(v("MemTotal"), total, "{k} {c} {d}:\n{m}");
            // MemFree is the limit less memory.current (which the readers move a little).
            assert!(
                (total - hi).saturating_sub(4096) <= v("MemFree")
                    && v("MemFree") <= total - lo + 4096,
                "{k} {c} {d}: MemFree {} with memory.current {lo}..{hi} kB",
                v("MemFree")
            );
            // lxcfs 7.0's MemAvailable (5.0.3 counted shmem as reclaimable): see the README.
            assert_eq!(
                v("MemAvailable"),
                (v("MemFree") + v("Active(file)") + v("Inactive(file)") + v("SReclaimable"))
                    .min(total),
                "{k} {c} {d}:\n{m}"
            );
            // swap.max is a swap-only limit on v2. lxcfs 5.0.3 shows no swap at all on a pure
            // v2 host: its check for swap accounting looks for memory.swap.* in the
            // hierarchy's root cgroup, which has none on cgroup2 (it logs "Kernel does not
            // support swap accounting"; the walk up came in lxcfs 6.0, PR #617).
            assert_eq!(v("SwapTotal"), swap, "{k} {c} {d}:\n{m}");
            assert!(v("SwapFree") <= swap, "{k} {c} {d}:\n{m}");
            let swaps = file(c, d, "proc/swaps");
            let line: Vec<&str> = swaps
                .lines()
                .nth(1)
                .unwrap_or_default()
                .split_ascii_whitespace()
                .collect();
            let size = swap.to_string();
            assert_eq!(
                line.get(..3),
                Some(&["none", "virtual", size.as_str()][..]),
                "{k} {c} {d}:\n{swaps}"
            );
        }
    }
    // Where 5.0.3 is right (usage below the limit and below the host's free memory), its
    // MemFree is ours, give or take what the readers allocated between the two reads.
    let free = |d: &str| meminfo_kb(&meminfo("mem", d), "MemFree") as i64;
    assert!(
        (free("o") - free("d")).abs() <= 4096,
        "{k}: MemFree o {} d {}",
        free("o"),
        free("d")
    );
    for d in OURS {
        let m = meminfo("swap2", d);
        // More swap than memory: still the swap-only limit.
        assert_eq!(meminfo_kb(&m, "MemTotal"), 65536, "{k} {d}:\n{m}");
        assert_eq!(meminfo_kb(&m, "SwapTotal"), 98304, "{k} {d}:\n{m}");
        assert!(
            file("swap2", d, "proc/swaps").contains("\t98304\t"),
            "{k} {d}"
        );
    }

    // ---- cpuset.cpus: cpus has CPU 1 of the guest's two.
    for d in ["o", "oc", "d"] {
        assert_eq!(
            file("cpus", d, "sys/devices/system/cpu/online"),
            "1\n",
            "{k} {d}"
        );
        assert_eq!(
            stat_cpus(&file("cpus", d, "proc/stat")),
            ["cpu", "cpu1"],
            "{k} {d}"
        );
    }
    // (lxcfs 5.0.3 with --enable-cfs says CPU 0 in online and stat: its cpu view numbers
    // CPUs from 0 even when no quota applies, although sched_getaffinity() in the container
    // says CPU 1 — ours keeps the cpuset's numbers, like 5.0.3 without the option.)
    for d in OURS.iter().chain(&DEBIANS) {
        let cpuinfo = file("cpus", d, "proc/cpuinfo");
        assert_eq!(processors(&cpuinfo), 1, "{k} {d}");
        assert!(
            cpuinfo.starts_with("processor\t: 0\n"),
            "{k} {d}: renumbered from 0"
        );
    }
    // The container's own CPU time, in ticks (USER_HZ 100), between the two cpu.stat reads.
    // lxcfs 5.0.3 shows the host's per-CPU counters on v2 (no cpuacct there, issues #593,
    // #628): its cpus container reads several times the CPU time it ever used.
    let usec = |c: &str, when: &str, key: &str| -> u64 {
        s.get(&format!("{c}:cg-{when}/cpu.stat"))
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} "))?.parse().ok())
            .unwrap()
    };
    for c in CONTAINERS {
        for d in OURS {
            let total = stat_line(&file(c, d, "proc/stat"), "cpu");
            let ticks = |when| (usec(c, when, "user_usec") + usec(c, when, "system_usec")) / 10_000;
            let busy = total[0] + total[2];
            assert!(
                ticks("before").saturating_sub(2) <= busy && busy <= ticks("after") + 2,
                "{k} {c} {d}: user+system {busy} ticks, cpu.stat {}..{}",
                ticks("before"),
                ticks("after")
            );
        }
    }
    assert_eq!(
        stat_line(&file("cpus", "o", "proc/stat"), "btime"),
        stat_line(&file("cpus", "d", "proc/stat"), "btime"),
        "{k}: the host's boot time in both"
    );

    // ---- cpu.max: quota has both CPUs and half a CPU of quota.
    for f in ["sys/devices/system/cpu/online", "proc/cpuinfo"] {
        let (a, b) = (file("quota", "o", f), file("quota", "d", f));
        let count = |t: &str| {
            if f.ends_with("online") {
                cpu_count(t)
            } else {
                processors(t)
            }
        };
        assert_eq!(
            count(&a),
            2,
            "{k} {f}: without --enable-cfs every cpuset CPU"
        );
        assert_eq!(
            count(&a),
            count(&b),
            "{k} {f}: ours {a:?}, lxcfs 5.0.3 {b:?}"
        );
    }
    assert_eq!(
        stat_cpus(&file("quota", "o", "proc/stat")),
        stat_cpus(&file("quota", "d", "proc/stat")),
        "{k}"
    );
    // With --enable-cfs: ceil(0.5) = 1 CPU. lxcfs 5.0.3 agrees on online and cpuinfo but
    // lists both CPUs in /proc/stat (its cpu view needs v1's per-CPU cpuacct).
    assert_eq!(
        file("quota", "oc", "sys/devices/system/cpu/online"),
        "0\n",
        "{k}"
    );
    assert_eq!(
        file("quota", "oc", "sys/devices/system/cpu/online"),
        file("quota", "dc", "sys/devices/system/cpu/online"),
        "{k}"
    );
    assert_eq!(processors(&file("quota", "oc", "proc/cpuinfo")), 1, "{k}");
    assert_eq!(processors(&file("quota", "dc", "proc/cpuinfo")), 1, "{k}");
    assert_eq!(
        stat_cpus(&file("quota", "oc", "proc/stat")),
        ["cpu", "cpu0"],
        "{k}"
    );

    // ---- loadavg (-l): one task spinning in quota since the first read (which starts the
    // sampling, in both), 11 s and the dump before this read. The averages are samples of
    // which tasks run at 5 s ticks, taken at different instants by the two daemons: both must
    // have seen the spinning task, and agree roughly. The last field is the newest task, the
    // reader itself, as the container numbers it (lxcfs 5.0.3 prints its host pid).
    let load = |d: &str| -> (Vec<String>, String) {
        let t = file("quota", d, "proc/loadavg");
        let reader = t
            .lines()
            .next()
            .unwrap()
            .strip_prefix("reader ")
            .unwrap()
            .to_string();
        let f = t
            .lines()
            .nth(1)
            .unwrap()
            .split_ascii_whitespace()
            .map(String::from)
            .collect();
        (f, reader)
    };
    let l1 = |f: &[String]| f[0].parse::<f64>().unwrap();
    for (ours, theirs) in [("o", "d"), ("oc", "dc")] {
        let (f, reader) = load(ours);
        let (g, _) = load(theirs);
        assert_eq!(f.len(), 5, "{k} {ours}: {f:?}");
        assert_eq!(
            f[4], reader,
            "{k} {ours}: the newest pid, in the container: {f:?}"
        );
        let (running, total) = f[3].split_once('/').unwrap();
        assert!(
            running.parse::<u32>().unwrap() >= 1 && total.parse::<u32>().unwrap() >= 3,
            "{k} {ours}: {f:?}"
        );
        assert!(
            l1(&f) >= 0.1 && l1(&g) >= 0.1 && (l1(&f) - l1(&g)).abs() <= 0.6,
            "{k}: load1 ours {f:?}, lxcfs 5.0.3 {g:?}"
        );
    }

    // ---- uptime: the container's age (its init's), for every reader; idle is the visible
    // CPUs' time less the container's CPU time (lxcfs 5.0.3 on v2: idle = age).
    for c in CONTAINERS {
        let start = s.num(&format!("{c}:init-start")) / 100.0;
        let age0 = s.num(&format!("{c}:host-uptime")) - start;
        let age1 = s.num(&format!("{c}:host-uptime-after")) - start;
        for d in OURS.iter().chain(&DEBIANS) {
            let t = file(c, d, "proc/uptime");
            let v: Vec<f64> = t
                .split_ascii_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            assert!(
                age0 - 0.05 <= v[0] && v[0] <= age1 + 0.05,
                "{k} {c} {d}: uptime {t:?}, the container's age {age0:.2}..{age1:.2}"
            );
            if OURS.contains(d) {
                let n = cpu_count(&file(c, d, "sys/devices/system/cpu/online")) as f64;
                let used = |when| usec(c, when, "usage_usec") as f64 / 1e6;
                let (lo, hi) = (
                    n * v[0] - used("after") - 0.1,
                    n * v[0] - used("before") + 0.1,
                );
                assert!(
                    lo.max(0.0) <= v[1] && v[1] <= hi.max(0.1),
                    "{k} {c} {d}: idle {} of {n} CPUs for {} s, used {:.2}..{:.2}",
                    v[1],
                    v[0],
                    used("before"),
                    used("after")
                );
            }
        }
    }

    // ---- io.max and diskstats: io read 4 MiB from vda under a 4 MB/s limit; bare/ct 1 MiB,
    // charged to bare. lxcfs 5.0.3 never virtualises diskstats on v2 (#653): the host's.
    let vda = s.get("vda").trim().to_string();
    assert!(
        s.num("io:dd-ms") >= 700.0,
        "{k}: io.max did not throttle: {} ms",
        s.num("io:dd-ms")
    );
    for (c, reads) in [("io", 64), ("bare", 16)] {
        let before = io_stat(s.get(&format!("{c}:cg-before/io.stat")), &vda);
        let after = io_stat(s.get(&format!("{c}:cg-after/io.stat")), &vda);
        assert_eq!(
            before, after,
            "{k} {c}: I/O while reading (the outputs are on a tmpfs)"
        );
        assert!(before["rios"] >= reads, "{k} {c}: {before:?}");
        for d in OURS {
            let t = file(c, d, "proc/diskstats");
            let stats = diskstats(&t);
            assert_eq!(
                stats.keys().collect::<Vec<_>>(),
                ["vda"],
                "{k} {c} {d}: only the devices it used:\n{t}"
            );
            let v = &stats["vda"];
            assert_eq!(
                [v[0], v[2], v[4], v[6]],
                [
                    before["rios"],
                    before["rbytes"] / 512,
                    before["wios"],
                    before["wbytes"] / 512
                ],
                "{k} {c} {d}: {t} against io.stat {before:?}"
            );
        }
    }

    // ---- PSI: the container's own *.pressure (lxcfs 5.0.3 has no /proc/pressure: 7.0 does).
    for c in CONTAINERS {
        for res in ["cpu", "memory", "io"] {
            let before = s.get(&format!("{c}:cg-before/{res}.pressure"));
            let after = s.get(&format!("{c}:cg-after/{res}.pressure"));
            for d in OURS {
                let t = file(c, d, &format!("proc/pressure/{res}"));
                assert!(
                    t.starts_with("some avg10=") && t.contains("\nfull avg10="),
                    "{k} {c} {d} {res}: {t:?}"
                );
                for kind in ["some", "full"] {
                    let v = psi_total(&t, kind);
                    assert!(
                        psi_total(before, kind) <= v && v <= psi_total(after, kind),
                        "{k} {c} {d} {res} {kind}: {v} not between the cgroup's {before:?} and {after:?}"
                    );
                }
            }
        }
    }
    // The throttled reads stalled io; the cpus container did no I/O, unlike the host.
    assert!(
        psi_total(&file("io", "o", "proc/pressure/io"), "some") > 0,
        "{k}"
    );
    assert!(
        psi_total(&file("cpus", "o", "proc/pressure/io"), "some")
            < psi_total(s.get("cpus:host/pressure/io"), "some"),
        "{k}: the host's io pressure"
    );

    // ---- the daemons: all alive; ours said which kernel features it does without, once.
    for d in OURS.iter().chain(&DEBIANS) {
        assert_eq!(s.get(&format!("alive:{d}")), "", "{k}: {d} died");
    }
    for d in OURS {
        let log = s.get(&format!("log:{d}"));
        assert!(
            !log.contains(" WARN ") && !log.contains(" ERROR "),
            "{k} {d}:\n{log}"
        );
        check_kernel_notes(kernel, log, d);
    }
}

/// What our daemon logs about the kernel features it does without: on 6.1 both fallbacks
/// (each said once), on 6.12 neither (`NS_GET_TGID_FROM_PIDNS` is 6.11, `FUSE_NOTIFY_RESEND`
/// 6.9).
fn check_kernel_notes(kernel: Kernel, log: &str, who: &str) {
    let tgid = log
        .matches("no NS_GET_TGID_FROM_PIDNS (Linux < 6.11)")
        .count();
    let resend = log.matches("no FUSE_NOTIFY_RESEND (Linux < 6.9)").count();
    match kernel {
        Kernel::V6_1 => assert!(
            tgid == 1 && resend == 1,
            "6.1 {who}: tgid {tgid} resend {resend}\n{log}"
        ),
        Kernel::V6_12 => assert!(tgid == 0 && resend == 0, "6.12 {who}:\n{log}"),
    }
}

#[test]
fn views_on_6_1() {
    views(Kernel::V6_1);
}

#[test]
fn views_on_6_12() {
    views(Kernel::V6_12);
}

fn setns_readers(kernel: Kernel) {
    let s = Sections::run(
        kernel,
        include_str!("v2_lxcfs/setns.sh"),
        Duration::from_secs(360),
    );
    let k = kernel;
    // The process entered is the container's init: pid 1 of its namespace.
    let nspid: Vec<&str> = s.get("init-nspid").split_ascii_whitespace().collect();
    assert!(nspid.len() == 2 && nspid[1] == "1", "{k}: NSpid {nspid:?}");
    for d in ["o", "d"] {
        let get = |f: &str| s.get(&format!("{d}:{f}")).to_string();
        assert_ne!(
            get("pid").trim(),
            "1",
            "{k} {d}: the reader joined, it is not the init"
        );
        // In the container's cgroup namespace, but not in its cgroup (which is the namespace's
        // root): the reader's cgroup is above it.
        assert!(
            get("self-cgroup").starts_with("0::/../"),
            "{k} {d}: {}",
            get("self-cgroup")
        );
        for f in ["proc/meminfo", "child/meminfo"] {
            assert_eq!(
                meminfo_kb(&get(f), "MemTotal"),
                98304,
                "{k} {d} {f}:\n{}",
                get(f)
            );
        }
        assert_eq!(processors(&get("proc/cpuinfo")), 1, "{k} {d}");
        assert_eq!(get("online"), "1\n", "{k} {d}");
        let start = s.num(&format!("{d}:init-start")) / 100.0;
        let up: f64 = get("proc/uptime")
            .split_ascii_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (a0, a1) = (
            s.num(&format!("{d}:host-uptime")) - start,
            s.num(&format!("{d}:host-uptime-after")) - start,
        );
        assert!(
            a0 - 0.05 <= up && up <= a1 + 0.05,
            "{k} {d}: uptime {up}, the container's age {a0:.2}..{a1:.2}"
        );
    }
    // Ours only: 5.0.3 shows no swap on v2 (see views), has no pressure files, and its
    // /proc/stat carries the host's counters.
    let ours = |f: &str| s.get(&format!("o:{f}")).to_string();
    assert!(
        ours("proc/swaps").contains("\t32768\t"),
        "{k}: {}",
        ours("proc/swaps")
    );
    assert_eq!(meminfo_kb(&ours("proc/meminfo"), "SwapTotal"), 32768, "{k}");
    assert_eq!(stat_cpus(&ours("proc/stat")), ["cpu", "cpu1"], "{k}");
    let some = psi_total(&ours("proc/pressure/cpu"), "some");
    assert!(
        some <= psi_total(s.get("ct:cpu.pressure"), "some"),
        "{k}: not the container's cpu.pressure"
    );
    for d in ["o", "d"] {
        assert_eq!(s.get(&format!("alive:{d}")), "", "{k}: {d} died");
    }
    let log = s.get("log:o");
    assert!(
        !log.contains(" WARN ") && !log.contains(" ERROR "),
        "{k}:\n{log}"
    );
    check_kernel_notes(kernel, log, "o");
}

#[test]
fn setns_readers_on_6_1() {
    setns_readers(Kernel::V6_1);
}

#[test]
fn setns_readers_on_6_12() {
    setns_readers(Kernel::V6_12);
}

/// The longest one read may take in the guest while lxcfs is killed or upgraded under it.
/// A restart costs systemd's `RestartSec=100ms` (or the supervisor's backoff, up to 200 ms
/// here) and a debug build's start under TCG, where the whole guest crawls (reads took up to
/// ~4 s on a loaded machine). A read that nobody answers never returns: the script then
/// reports the reader hung after 30 s, with its kernel stack.
const MAX_STALL_MS: u64 = 20_000;

/// What one `lxcfs-reader` printed.
#[derive(Debug)]
struct ReaderStats {
    reads: u64,
    fails: u64,
    wrong: u64,
    max_ms: u64,
    first_error: String,
}

/// What reader `i` of `tag` printed; `Err` with its text when it hung (the script's "hung",
/// with its kernel stack) or printed no statistics (it could not open its files).
fn reader_stats(s: &Sections, tag: &str, i: usize) -> Result<ReaderStats, String> {
    let t = s.get(&format!("{tag}:r{i}"));
    let field = |k: &str| -> Option<u64> {
        t.split_ascii_whitespace()
            .find_map(|f| f.strip_prefix(k)?.parse().ok())
    };
    let (Some(reads), Some(fails), Some(wrong), Some(max_ms)) = (
        field("reads="),
        field("fails="),
        field("wrong="),
        field("max_ms="),
    ) else {
        return Err(t.to_string());
    };
    Ok(ReaderStats {
        reads,
        fails,
        wrong,
        max_ms,
        first_error: t
            .split("first_error=")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string(),
    })
}

/// Part 3. Eight containers (`lxcfs-reader` as their init, each in a cgroup with its own
/// `memory.max`, every other one reading through descriptors opened once at its start) read
/// meminfo, stat, cpuinfo and a passed-through sysfs file in tight loops while lxcfs is killed
/// with `kill -9` three times and upgraded live three times (a new binary renamed over the old,
/// then `systemctl reload` / SIGUSR1), alternating, 1.5 s apart:
///
/// * `sd`: ours as `systemd/lxcfs.service` runs it (the unit as shipped, the binary in
///   `/usr/local/bin`): the connection and the request journal in systemd's fd store,
///   `Restart=on-failure` after 100 ms;
/// * `sv`: ours under `lxcfs --supervise`;
/// * `deb`: Debian's lxcfs 5.0.3 under its own `lxcfs.service`, for the report only.
///
/// Ours must lose nothing: every reader stops when told, none failed a read or saw another
/// container's memory, none waited longer than [`MAX_STALL_MS`]; the mount and pid stay.
///
/// **On 6.1** the kernel has no `FUSE_NOTIFY_RESEND` (6.9), so nothing can make it send a
/// killed server's requests again: a request the server had read stays on the connection's
/// processing list and its reader waits uninterruptibly (`request_wait_answer`; SIGKILL does
/// not free it) until a reply with that request's id is written to the connection. What
/// happens: the fd store (or the supervisor) keeps the connection open, so the mount stays
/// and new requests queue; the restarted server finds the killed one's unanswered requests in
/// the journal memfd stored beside it, answers them with their ids ("replayed N request(s)",
/// 1–2 per kill here) and those readers carry on after the restart — a stall, never a failure.
/// A live upgrade first lets the requests in flight finish ("requests in flight answered
/// (drained)") and then execs. That is as good as 6.1 allows: only a reply can release such a
/// reader, and every one gets its reply. The one case left, not exercised here: a request
/// whose replay kills the server again is not replayed a second time (else it would kill every
/// successor), and its reader stays stuck until the connection is aborted
/// (`/sys/fs/fuse/connections/<dev>/abort`). On 6.12 the successor asks the kernel to resend
/// instead; nothing is drained or replayed.
///
/// **Debian's lxcfs 5.0.3**, the same treatment (reported on stderr, not asserted), on 6.1 and
/// 6.12 alike: at the first `kill -9` its connection dies with it; the reads in flight fail
/// with `ECONNABORTED` and every later one with `ENOTCONN`, for good — the containers' mounts
/// are copies of the dead one (their mount namespaces were made before the restart), so the
/// new mount its unit makes after `ExecStopPost=fusermount -u` only serves readers that look
/// the path up again in the host's namespace. No reader hangs; none reads again until the
/// container restarts. Its SIGUSR1 reloads its library ("Reloaded LXCFS") and changes nothing
/// for them.
fn crash_and_upgrade(kernel: Kernel) {
    let s = Sections::run(
        kernel,
        include_str!("v2_lxcfs/crash.sh"),
        Duration::from_secs(900),
    );
    let k = kernel;
    const ROUNDS: usize = 3;
    for tag in ["sd", "sv"] {
        let (mut total, mut slowest) = (0, 0);
        for i in 0..8 {
            let r = reader_stats(&s, tag, i)
                .unwrap_or_else(|t| panic!("{k} {tag}: reader {i} hung or did not read:\n{t}"));
            assert!(
                r.fails == 0 && r.wrong == 0 && r.max_ms < MAX_STALL_MS && r.reads >= 32,
                "{k} {tag}: reader {i}: {r:?}"
            );
            total += r.reads;
            slowest = slowest.max(r.max_ms);
        }
        eprintln!(
            "{k} {tag}: 8 readers, {total} reads, none failed, the slowest took {slowest} ms"
        );
    }
    let sd = s.get("sd:log");
    let sv = s.get("sv:log");
    for (tag, log) in [("sd", sd), ("sv", sv)] {
        assert_eq!(
            log.matches(" INFO serving ").count(),
            1 + 2 * ROUNDS,
            "{k} {tag}: one start, {ROUNDS} restarts, {ROUNDS} upgrades:\n{log}"
        );
        assert!(!log.contains(" ERROR "), "{k} {tag}:\n{log}");
        let drained = log.matches("requests in flight answered (drained)").count();
        let replayed: usize = log
            .lines()
            .filter_map(|l| {
                l.split("INFO replayed ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        match kernel {
            // No resend: each upgrade drains; each restart replays what the killed server
            // had read (reported: whether a kill finds requests in flight is timing).
            Kernel::V6_1 => assert_eq!(drained, ROUNDS, "{k} {tag}:\n{log}"),
            Kernel::V6_12 => assert!(
                drained == 0 && replayed == 0,
                "{k} {tag}: the kernel resends:\n{log}"
            ),
        }
        eprintln!(
            "{k} {tag}: {drained} upgrade(s) drained, {replayed} request(s) replayed after kills"
        );
    }
    assert_eq!(
        sd.matches("connection from systemd's fd store").count(),
        ROUNDS,
        "{k}: every restart got the connection back:\n{sd}"
    );
    // systemd 252 checks the store is not full before dropping a duplicate: with
    // FileDescriptorStoreMax=2 every generation's second FDSTORE of the same two fds was
    // refused and logged.
    assert!(!sd.contains("Cannot store more fds"), "{k}:\n{sd}");
    let status = s.get("sd:status");
    assert!(
        status.contains("ActiveState=active") && status.contains(&format!("NRestarts={ROUNDS}")),
        "{k}: {status}"
    );
    assert_eq!(
        s.get("sd:stopped").trim(),
        "unmounted",
        "{k}: systemctl stop unmounts"
    );
    assert_eq!(sv.matches("exited after").count(), ROUNDS, "{k}:\n{sv}");

    // Debian's lxcfs 5.0.3: the report.
    let mut failed = 0;
    for i in 0..8 {
        match reader_stats(&s, "deb", i) {
            Ok(r) => {
                if r.fails > 0 {
                    failed += 1;
                }
                eprintln!(
                    "{k} lxcfs 5.0.3: reader {i}: {} reads, {} failed, {} wrong, slowest {} ms, first error: {}",
                    r.reads, r.fails, r.wrong, r.max_ms, r.first_error
                );
            }
            Err(t) => {
                failed += 1;
                eprintln!("{k} lxcfs 5.0.3: reader {i}: {}", t.trim());
            }
        }
    }
    eprintln!(
        "{k} lxcfs 5.0.3: {failed} of 8 readers lost their mount; unit: {}; a host reader now: {}",
        s.get("deb:status").trim().replace('\n', " "),
        s.get("deb:host-reads").trim()
    );
}

#[test]
fn crash_and_upgrade_on_6_1() {
    crash_and_upgrade(Kernel::V6_1);
}

#[test]
fn crash_and_upgrade_on_6_12() {
    crash_and_upgrade(Kernel::V6_12);
}
