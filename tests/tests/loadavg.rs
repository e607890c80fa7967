//! `/proc/loadavg` with `-l`, for real: a container with two busy threads gets a growing load
//! average and `2/N` running tasks, counted by the kernel (taskstats), and its last field is
//! the newest pid *inside* the container — lxcfs 5.0.3 leaks the host pid there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::{in_container, stdout, Daemon, TestCgroup};

#[test]
fn a_busy_container_gets_its_own_load_and_its_own_pids() {
    let d = Daemon::ours(&["-l"]);
    let cg = TestCgroup::new("loadavg");
    let f = d.file("proc/loadavg");
    let f = f.display();
    // Read once (the daemon starts sampling a container when it is first read), spin two
    // threads for two refreshes (5 s apart), read again.
    let out = stdout(&in_container(
        &cg,
        &format!(
            "cat {f} >/dev/null; (while :; do :; done) & a=$!; (while :; do :; done) & b=$!; \
             sleep 11; cat {f}; kill $a $b"
        ),
    ));
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{out}");
    let one: f64 = fields[0].parse().unwrap();
    assert!(
        one > 0.1,
        "1-minute load {one} after 10 s of two busy threads: {out}"
    );
    let (running, total) = fields[3].split_once('/').unwrap();
    assert_eq!(running, "2", "{out}");
    assert!(total.parse::<u32>().unwrap() >= 4, "{out}");
    // The newest pid as the container numbers it (a handful), not the host's.
    let last: u32 = fields[4].parse().unwrap();
    assert!((1..100).contains(&last), "{out}");
}
