//! `/proc/loadavg` with `-l`, for real: a container with two busy threads gets a growing load
//! average and `2/5` running/total tasks, counted by the kernel (taskstats), and its last
//! field is the newest pid *inside* the container — lxcfs 5.0.3 leaks the host pid there
//! (`differential.rs` compares the two).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::{in_container, stdout, Daemon, TestCgroup};

#[test]
fn a_busy_container_gets_its_own_load_and_its_own_pids() {
    let d = Daemon::ours(&["-l"]);
    let cg = TestCgroup::new("loadavg");
    let f = d.file("proc/loadavg");
    let f = f.display();
    // Read once (the daemon starts sampling a container when it is first read), spin two
    // threads for two refreshes (5 s apart), read again; then print the pids of the tasks
    // at that read as the container numbers them: the init, the two loops, the `cat`.
    let out = stdout(&in_container(
        &cg,
        &format!(
            "cat {f} >/dev/null; (while :; do :; done) & a=$!; (while :; do :; done) & b=$!; \
             sleep 11; cat {f} & p=$!; wait $p; echo 1 $a $b $p; kill $a $b"
        ),
    ));
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.len(), 9, "{out}");
    let one: f64 = fields[0].parse().unwrap();
    assert!(
        one > 0.1,
        "1-minute load {one} after 10 s of two busy threads: {out}"
    );
    let (running, total) = fields[3].split_once('/').unwrap();
    assert_eq!(running, "2", "{out}");
    // `unshare` (in the cgroup, outside the namespace), the init, the two loops, the `cat`.
    assert_eq!(total, "5", "{out}");
    // The newest task (the highest host pid: the `cat`, unless the host's pid counter
    // wrapped meanwhile) as the container numbers it, not its host pid.
    assert!(fields[5..].contains(&fields[4]), "{out}");
}

/// A container that reads its load average rarely — `uptime` now and then, a monitor polling
/// every few minutes — gets it all the same: sampling goes on from the first read until the
/// cgroup is gone. (It used to stop after a minute unread, and every later read started
/// afresh from `0.00 0.00 0.00`; the v2 guest showed it, its readers being that slow under
/// TCG.)
#[test]
fn a_container_read_once_a_minute_or_less_still_gets_its_load() {
    let d = Daemon::ours(&["-l"]);
    let cg = TestCgroup::new("loadavg-rare");
    let f = d.file("proc/loadavg");
    let f = f.display();
    let out = stdout(&in_container(
        &cg,
        &format!("cat {f} >/dev/null; (while :; do :; done) & a=$!; sleep 66; cat {f}; kill $a"),
    ));
    let one: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    // One busy thread for 66 s: 1 − e^(−65/60) ≈ 0.66 once sampled throughout.
    assert!(
        one > 0.4,
        "1-minute load {one} after 66 s of one busy thread: {out}"
    );
}
