//! Misbehaving readers and writers: odd offsets, writes, readers killed mid-request,
//! concurrency, permissions, a second instance, shutdown. The daemon must answer each with a
//! clear error and keep serving containers their own views.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{assert_serves_containers, is_mounted, lxcfs_bin, Daemon, TestCgroup};

#[test]
fn odd_offsets_read_like_a_regular_file() {
    let d = Daemon::ours(&[]);
    for f in [
        "proc/meminfo",
        "proc/cpuinfo",
        "proc/stat",
        "sys/devices/system/cpu/online",
    ] {
        let p = d.file(f);
        let file = std::fs::File::open(&p).unwrap();
        let mut whole = vec![0u8; 1 << 20];
        let n = file.read_at(&mut whole, 0).unwrap();
        whole.truncate(n);
        // A fresh render of a file with live counters may differ, and be a few bytes shorter
        // (stat's `intr` line): only its content, not its last byte, is checked there.
        let live = f == "proc/stat" || f == "proc/meminfo";
        for (off, len) in [(1usize, 10usize), (7, 3), (n / 2, 100), (n - 1, 10)]
            .into_iter()
            .filter(|(o, _)| *o < n && !(live && *o == n - 1))
        {
            let fresh = std::fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; len];
            let got = fresh.read_at(&mut buf, off as u64).unwrap();
            if !live {
                assert_eq!(&buf[..got], &whole[off..(off + len).min(n)], "{f} at {off}");
            }
            assert!(got > 0, "{f}: content at offset {off}");
        }
        let mut buf = [0u8; 16];
        assert_eq!(
            file.read_at(&mut buf, n as u64 + 100).unwrap(),
            0,
            "{f}: past the end is EOF"
        );
    }
    // One byte at a time reassembles a whole, well-formed file.
    let file = std::fs::File::open(d.file("proc/cpuinfo")).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while file.read_at(&mut b, out.len() as u64).unwrap() == 1 {
        out.push(b[0]);
    }
    assert_eq!(out, std::fs::read(d.file("proc/cpuinfo")).unwrap());
}

#[test]
fn writes_and_changes_are_refused() {
    let d = Daemon::ours(&[]);
    let e = std::fs::write(d.file("proc/meminfo"), "x").unwrap_err();
    assert!(
        matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES)),
        "{e}"
    );
    let e = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(d.file("proc/uptime"))
        .unwrap_err();
    assert!(
        matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES)),
        "{e}"
    );
    assert!(std::fs::create_dir(d.file("proc/new")).is_err());
    assert!(std::fs::remove_file(d.file("proc/stat")).is_err());
    assert!(std::fs::write(d.file("sys/devices/system/cpu/online"), "0").is_err());
    assert!(std::fs::read_to_string(d.file("proc/meminfo"))
        .unwrap()
        .starts_with("MemTotal:"));
}

/// Whether process `pid` waits inside a FUSE request: `Some(true)` in one for a `read(2)`,
/// `Some(false)` in one for another call (a lookup or an open), `None` not (or gone).
fn in_fuse_request(pid: u32) -> Option<bool> {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
    if wchan != "request_wait_answer" {
        return None;
    }
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    Some(syscall.split_whitespace().next() == Some("0"))
}

/// Readers (`cat`, each started by the test) are killed with SIGKILL while they wait inside
/// a FUSE request, most of them in the middle of a `read`: the kernel abandons those
/// requests and the daemon's answers to them go nowhere. The daemon is starved of CPU
/// (1 ms per 10 ms, one server thread) so that every request lasts long enough to be caught
/// in. Afterwards it still serves every container its own view.
#[test]
fn readers_killed_mid_request_do_not_hurt_the_daemon() {
    // Declared before the daemon, so removed after it has left.
    let slow = TestCgroup::new("slow-lxcfs");
    slow.set("cpu", "cpu.cfs_period_us", "10000");
    slow.set("cpu", "cpu.cfs_quota_us", "1000");
    let mut d = Daemon::ours(&["--threads", "1"]);
    std::fs::write(slow.dir("cpu").join("cgroup.procs"), d.pid().to_string()).unwrap();
    let target = d.file("proc/cpuinfo");
    let (mut in_read, mut in_other) = (0, 0);
    let t = Instant::now();
    while in_read < 40 && t.elapsed() < Duration::from_secs(30) {
        let mut readers: Vec<_> = (0..8)
            .map(|_| {
                Command::new("cat")
                    .arg(&target)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Kill each as soon as it is caught waiting on the daemon; one that finished first
        // is simply reaped.
        let round = Instant::now();
        while !readers.is_empty() && round.elapsed() < Duration::from_secs(5) {
            readers.retain_mut(|r| {
                if r.try_wait().unwrap().is_some() {
                    return false;
                }
                match in_fuse_request(r.id()) {
                    Some(reading) => {
                        r.kill().unwrap();
                        r.wait().unwrap();
                        if reading {
                            in_read += 1;
                        } else {
                            in_other += 1;
                        }
                        false
                    }
                    None => true,
                }
            });
        }
        for mut r in readers {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
    assert!(
        in_read >= 40,
        "only {in_read} readers caught inside a read request ({in_other} in others)"
    );
    assert_serves_containers(&mut d, "readers killed inside their requests");
}

#[test]
fn concurrent_readers_get_whole_files() {
    let d = Daemon::ours(&[]);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let files = [
                d.file("proc/meminfo"),
                d.file("proc/stat"),
                d.file("proc/cpuinfo"),
            ];
            std::thread::spawn(move || {
                for n in 0..300 {
                    let f = &files[(i + n) % 3];
                    let t = std::fs::read_to_string(f).unwrap();
                    assert!(t.ends_with('\n'), "{}: truncated", f.display());
                    let first = t.lines().next().unwrap_or("");
                    assert!(
                        first.starts_with("MemTotal:")
                            || first.starts_with("cpu ")
                            || first.starts_with("processor"),
                        "{first}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn slabinfo_is_as_private_as_the_hosts() {
    let d = Daemon::ours(&[]);
    let run = |f: &str| {
        Command::new("su")
            .args([
                "nobody",
                "-s",
                "/bin/sh",
                "-c",
                &format!("cat {}", d.file(f).display()),
            ])
            .output()
            .unwrap()
    };
    let o = run("proc/slabinfo");
    assert!(!o.status.success(), "nobody must not read slabinfo");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
    assert!(run("proc/meminfo").status.success());
}

#[test]
fn second_instance_on_the_same_pidfile_is_refused() {
    let mut d = Daemon::ours(&[]);
    let other = tempfile::tempdir().unwrap();
    let o = Command::new(lxcfs_bin())
        .arg("-p")
        .arg(d.pidfile())
        .arg(other.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!is_mounted(other.path()));
    assert_serves_containers(&mut d, "a second instance was refused");
}

#[test]
fn sigterm_unmounts_cleanly() {
    let mut d = Daemon::ours(&[]);
    let pidfile = d.pidfile();
    assert!(pidfile.exists());
    let st = d.stop().unwrap();
    assert!(st.success(), "exit status {st}");
    assert!(!is_mounted(d.path()), "mount gone");
    assert!(!pidfile.exists(), "pidfile removed");
}
