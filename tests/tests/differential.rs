//! Ours and Debian's lxcfs 5.0.3 mounted side by side, read by the same container: equal
//! wherever lxcfs is right, and right where lxcfs is not (see `lxcfs/README.md`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use e2e::{in_container, meminfo_kb, stdout, Daemon, TestCgroup};

/// Read `files` through both mounts from one container, in one go.
fn read_both(
    ours: &Daemon,
    anchor: &Daemon,
    cg: &TestCgroup,
    files: &[&str],
) -> Vec<(String, String)> {
    let mut script = String::new();
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
        "proc/swaps",
        "proc/diskstats",
        "proc/loadavg",
    ];
    let r = read_both(&ours, &anchor, &cg, &files);
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

    let cpu_names = |t: &str| {
        t.lines()
            .filter_map(|l| l.split_ascii_whitespace().next())
            .map(str::to_string)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        cpu_names(&r[3].0),
        cpu_names(&r[3].1),
        "same /proc/stat lines"
    );
    let btime = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("btime"))
            .map(str::to_string)
    };
    assert_eq!(btime(&r[3].0), btime(&r[3].1));

    let up = |t: &str| {
        t.split_ascii_whitespace()
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert!(
        (up(&r[4].0) - up(&r[4].1)).abs() < 0.5,
        "uptime: {} vs {}",
        r[4].0,
        r[4].1
    );

    if meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "SwapTotal",
    ) == 0
    {
        // Same fields; ours keeps the kernel's header spacing (lxcfs single-tabs it).
        let words = |t: &str| {
            t.split_ascii_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            words(&r[5].0),
            words(&r[5].1),
            "swaps identical without host swap"
        );
    }

    // diskstats: lxcfs serves the host's file on this kernel; ours is the container's own
    // I/O, and a container that did no block I/O has none.
    let host = std::fs::read_to_string("/proc/diskstats").unwrap();
    assert_eq!(
        keys(&r[6].1).len(),
        keys(&host).len(),
        "lxcfs: host's diskstats"
    );
    assert!(
        r[6].0.lines().count() < host.lines().count(),
        "ours is per container:\n{}",
        r[6].0
    );

    // loadavg without -l: both the host's (first three fields are 5 s samples).
    let la = |t: &str| {
        t.split_ascii_whitespace()
            .take(3)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(la(&r[7].0).len(), 3);
    let _ = la(&r[7].1);
}

#[test]
fn swap_disabled_matches_lxcfs() {
    let ours = Daemon::ours(&["-u"]);
    let anchor = Daemon::anchor(&["-u"]);
    let cg = TestCgroup::new("noswap");
    cg.set("memory", "memory.limit_in_bytes", "134217728");
    let r = read_both(&ours, &anchor, &cg, &["proc/meminfo", "proc/swaps"]);
    for k in ["MemTotal", "SwapTotal", "SwapFree"] {
        assert_eq!(meminfo_kb(&r[0].0, k), meminfo_kb(&r[0].1, k), "{k}");
    }
    assert_eq!(r[1].0.lines().count(), 1);
}
