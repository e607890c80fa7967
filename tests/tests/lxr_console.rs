//! `lxr console`: it detaches by itself (exit 0, with a line) when the container stops; one
//! console at a time — a second is refused with a clear message unless `--force`, which
//! detaches the first (told so); a client that died frees the console; `--show-log` prints
//! what the console kept. Driven through pipes, as the test user, on busybox containers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::lxr::{unconfined, Cleanup, Lxr};

/// A running `lxr console` whose stdin stays open and whose output is collected.
struct Attached {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// `lxr args` started with its stdin, stdout and stderr on pipes.
fn piped(lxr: &Lxr, args: &[&str]) -> std::process::Child {
    lxr.command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

impl Attached {
    fn new(lxr: &Lxr, args: &[&str]) -> Attached {
        let mut child = piped(lxr, args);
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Attached { child, out, err }
    }

    fn type_in(&mut self, s: &str) {
        let _ = self.child.stdin.as_mut().unwrap().write_all(s.as_bytes());
    }

    fn out(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).to_string()
    }

    fn err(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).to_string()
    }

    /// Wait until `what` shows on stdout.
    fn shows(&self, what: &str, secs: u64) {
        let t = Instant::now();
        while !self.out().contains(what) {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{what:?} never came: {:?} {:?}",
                self.out(),
                self.err()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its exit status, which must come within `secs`.
    fn ends_within(&mut self, secs: u64) -> ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the collectors drain.
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                let _ = self.child.kill();
                panic!(
                    "still attached after {secs} s: {:?} {:?}",
                    self.out(),
                    self.err()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // Only our own child, by pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lxr args` with `input` typed, its stdout and stderr.
fn typed(lxr: &Lxr, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut c = piped(lxr, args);
    let _ = c.stdin.take().unwrap().write_all(input);
    c.wait_with_output().unwrap()
}

/// Attach and check the console answers (so the attach is complete).
fn attach(lxr: &Lxr, args: &[&str], tag: &str) -> Attached {
    let mut a = Attached::new(lxr, args);
    a.type_in(&format!("echo {tag}-$((40+2))\n"));
    a.shows(&format!("{tag}-42"), 15);
    a
}

#[test]
fn console_detaches_when_the_container_stops() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["k1"]);
    lxr.ok(&["launch", "busybox", "k1", "-c", "network.mode=none"]);
    let mut a = attach(&lxr, &["console", "k1"], "one");
    lxr.ok(&["stop", "k1"]);
    let st = a.ends_within(15);
    assert!(st.success(), "{st:?} {}", a.err());
    assert!(a.err().contains("k1 stopped"), "{}", a.err());
    // What the console printed stays readable after the stop.
    let log = lxr.ok(&["console", "--show-log", "k1"]);
    assert!(log.contains("one-42"), "{log}");
}

#[test]
fn a_second_console_is_refused_unless_forced_and_force_detaches_the_first() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["k2"]);
    lxr.ok(&["launch", "busybox", "k2", "-c", "network.mode=none"]);
    let mut first = attach(&lxr, &["console", "k2"], "first");
    // A second one: refused, and the first keeps the console's output.
    let o = typed(&lxr, &["console", "k2"], b"echo second-$((1+1))\n");
    assert!(!o.status.success(), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("in use") && e.contains("--force"), "{e}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("second-2"),
        "{o:?}"
    );
    first.type_in("echo still-$((3+4))\n");
    first.shows("still-7", 15);
    // --force takes over: the first is told and detached (exit 0).
    let mut forced = attach(&lxr, &["console", "--force", "k2"], "forced");
    let st = first.ends_within(15);
    assert!(st.success(), "{st:?}");
    assert!(first.out().contains("took over"), "{}", first.out());
    assert!(
        first.err().contains("detached"),
        "{:?} {:?}",
        first.out(),
        first.err()
    );
    assert!(!first.out().contains("forced-42"), "{}", first.out());
    // Once the forcing one is gone (killed, even), the console is free again.
    let _ = forced.child.kill();
    let _ = forced.child.wait();
    let t = Instant::now();
    loop {
        let o = typed(&lxr, &["console", "k2"], b"echo free-$((5+5))\n");
        if String::from_utf8_lossy(&o.stdout).contains("free-10") {
            assert!(o.status.success(), "{o:?}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never free: {o:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn console_of_a_stopped_or_missing_container_is_a_clear_error() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["k3"]);
    let o = lxr.run(&["console", "k3"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no container k3"),
        "{o:?}"
    );
    lxr.ok(&["launch", "busybox", "k3", "-c", "network.mode=none"]);
    lxr.ok(&["stop", "k3"]);
    let o = lxr.run(&["console", "k3"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not running"),
        "{o:?}"
    );
}
