//! lxcfs against what a host and its admins throw at it:
//!
//! * **signals** — SIGUSR2 toggles virtualisation as lxcfs 5.0 does, in the server and in the
//!   supervisor, and the state survives a restart and an upgrade; every other signal an
//!   admin may send (HUP, PIPE, USR1, TERM, INT, QUIT), to the server, the supervisor or the
//!   supervised server, has its documented effect and none leaves a dead mount;
//! * **open files** — thousands of short-lived containers (pid namespaces whose init reads
//!   once and exits) leave the daemon's fd count at its baseline, even under a hard limit of
//!   256 files, and a new container is served afterwards; the soft limit is raised to the
//!   hard one and the unit sets `LimitNOFILE`;
//! * **cgroup moves** — once the sharing window (`--cache-ms`) has passed after a container's
//!   init moved to another cgroup, no read shows the old cgroup, even with the daemon starved
//!   of CPU (a cpu cgroup of the test's, 1 ms per 10 ms) so that renderings straddle the move.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{
    container_memtotal, in_container, limited, lxcfs_bin, meminfo_kb, stdout, Daemon, TestCgroup,
};

/// Wait until `cond` holds, or panic with `what` (and the daemon's log) after 20 s, or at
/// once if the daemon died (a signal that killed it).
fn wait_until(d: &Daemon, what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out: {what}\n{}",
            d.log_text()
        );
        assert!(
            !is_dead(d.pid()),
            "the daemon died; waited for: {what}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` (a child of this test, so a zombie until reaped) has exited.
fn is_dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

/// A copy of the built daemon in its own directory: a live upgrade execs the binary at the
/// path it started from, which must not be a file a concurrent `cargo build` rewrites.
fn private_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("lxcfs");
    std::fs::copy(lxcfs_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

fn signal(pid: u32, sig: i32) {
    assert!(pid > 0);
    // SAFETY: kill by the pid of a process this test started (or its supervisor started).
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// The one server a supervisor runs (waits for it).
fn server_of(d: &Daemon) -> u32 {
    let mut found = Vec::new();
    wait_until(d, "the supervisor's server", || {
        found = e2e::children_of(d.pid());
        found.len() == 1
    });
    found[0]
}

/// The servers a supervisor started, killed by pid when the test ends: if the supervisor died
/// first (a failing test; the bug this suite guards against), they would go on serving.
struct Servers {
    bin: PathBuf,
    seen: std::cell::RefCell<Vec<u32>>,
}

impl Servers {
    fn new(bin: &Path) -> Servers {
        Servers {
            // The supervisor starts its servers from its own canonical path.
            bin: bin.canonicalize().unwrap_or_else(|_| bin.to_path_buf()),
            seen: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The supervisor's current server (remembered).
    fn of(&self, d: &Daemon) -> u32 {
        let p = server_of(d);
        self.seen.borrow_mut().push(p);
        p
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for p in self.seen.borrow().iter() {
            // Only if the pid is still one of our servers (not reaped and reused).
            let argv0 = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let argv0 = argv0.split(|b| *b == 0).next().unwrap_or_default();
            if argv0 == self.bin.as_os_str().as_encoded_bytes() {
                // SAFETY: killing a server our supervisor started, by pid, checked just above.
                unsafe { libc::kill(*p as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Read a file through the mount from a separate process, failing rather than hanging if
/// nobody answers: a dead mount gives `ENOTCONN`, an unserved one a timeout.
fn read_bounded(path: &Path) -> Result<String, String> {
    let o = Command::new("timeout")
        .arg("10")
        .arg("cat")
        .arg(path)
        .output()
        .unwrap();
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!(
            "{} ({}): {}",
            path.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// The memory limit of [`probe`]'s cgroup, MiB.
const PROBE_MIB: u64 = 72;

/// A cgroup for [`assert_serving`]'s containers.
fn probe() -> TestCgroup {
    limited("probe", PROBE_MIB)
}

/// The daemon (or supervisor) `d` is alive and its mount does its job: a host reader gets
/// meminfo, and a new container in `probe` gets its own limit — or, with virtualisation
/// switched off, the host's — each within 10 s.
fn assert_serving(d: &Daemon, probe: &TestCgroup, virtualised: bool, after: &str) {
    assert!(
        !is_dead(d.pid()),
        "after {after}, it died\n{}",
        d.log_text()
    );
    match read_bounded(&d.file("proc/meminfo")) {
        Ok(t) => assert!(t.contains("MemTotal:"), "after {after}: {t}"),
        Err(e) => panic!(
            "after {after}, the mount does not serve: {e}\n{}",
            d.log_text()
        ),
    }
    let expected = if virtualised {
        PROBE_MIB * 1024
    } else {
        host_memtotal()
    };
    assert_eq!(
        container_memtotal(d, probe),
        expected,
        "after {after}, a container's MemTotal (virtualised: {virtualised})\n{}",
        d.log_text()
    );
}

/// Send SIGUSR2 or another signal to `pid` and wait for its effect on `d`: a SIGUSR2's
/// toggle is logged; anything else gets 100 ms to act.
fn signal_and_settle(d: &Daemon, pid: u32, sig: i32, what: &str) {
    let toggles = count_in_log(d, OFF) + count_in_log(d, ON);
    signal(pid, sig);
    if sig == libc::SIGUSR2 {
        wait_until(d, what, || {
            count_in_log(d, OFF) + count_in_log(d, ON) == toggles + 1
        });
    } else {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon stopped cleanly: exit status 0 and nothing mounted any more — the mount point
/// is the plain empty directory again, not a dead FUSE mount.
fn assert_stopped_cleanly(d: &mut Daemon, sig: &str) {
    let mnt = d.path().to_path_buf();
    let st = d
        .wait_exit()
        .unwrap_or_else(|| panic!("{sig}: did not exit\n{}", d.log_text()));
    assert!(st.success(), "{sig}: exit {st}\n{}", d.log_text());
    assert!(!e2e::is_mounted(&mnt), "{sig}: still mounted");
    let entries = std::fs::read_dir(&mnt)
        .unwrap_or_else(|e| panic!("{sig}: the mount point is not usable: {e}"));
    assert_eq!(entries.count(), 0, "{sig}");
}

/// Count of log lines containing `needle`.
fn count_in_log(d: &Daemon, needle: &str) -> usize {
    d.log_text().matches(needle).count()
}

fn host_memtotal() -> u64 {
    meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "MemTotal",
    )
}

const OFF: &str = "switched into non-virtualization mode";
const ON: &str = "switched into virtualization mode";

// ---------------------------------------------------------------------------------------
// Item 7: signals.

/// Upstream's `test_sigusr2`: after SIGUSR2 a container with a 64 MiB limit sees the host's
/// MemTotal; a second SIGUSR2 brings its own back. Here also: the switch survives a live
/// upgrade (the successor inherits it), and the server logs each toggle.
#[test]
fn sigusr2_switches_the_server_out_of_and_back_into_virtualisation() {
    let (_bin_dir, bin) = private_binary();
    let mut d = Daemon::start(&bin, &[]);
    let pid = d.pid();
    let cg = limited("usr2", 64);
    assert_eq!(container_memtotal(&d, &cg), 64 * 1024);

    signal(pid, libc::SIGUSR2);
    wait_until(&d, "the switch off is logged", || {
        count_in_log(&d, OFF) == 1
    });
    assert_eq!(container_memtotal(&d, &cg), host_memtotal());
    let host_online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let seen = stdout(&in_container(
        &cg,
        &format!("cat {}/sys/devices/system/cpu/online", d.path().display()),
    ));
    assert_eq!(seen, host_online, "every file is the host's copy");

    // An upgrade keeps what the admin chose.
    signal(pid, libc::SIGUSR1);
    wait_until(&d, "generation 2 serving", || {
        d.log_text().contains("generation 2")
    });
    assert_eq!(container_memtotal(&d, &cg), host_memtotal());

    signal(pid, libc::SIGUSR2);
    wait_until(&d, "the switch on is logged", || count_in_log(&d, ON) == 1);
    assert_eq!(container_memtotal(&d, &cg), 64 * 1024);
    assert_eq!(d.pid(), pid);
    assert!(d.alive(), "{}", d.log_text());
}

/// SIGUSR2 to the supervisor toggles (it used to kill it, ending crash protection); a server
/// restarted after a crash starts in the state the admin chose; a SIGUSR2 sent to the server
/// itself flips the same switch, so supervisor and server never disagree.
#[test]
fn sigusr2_to_the_supervisor_toggles_and_a_restarted_server_keeps_the_state() {
    let (_bin_dir, bin) = private_binary();
    let servers = Servers::new(&bin);
    let mut d = Daemon::start(&bin, &["--supervise"]);
    let sup = d.pid();
    let first = servers.of(&d);
    let cg = limited("usr2-sup", 48);
    assert_eq!(container_memtotal(&d, &cg), 48 * 1024);

    signal(sup, libc::SIGUSR2);
    wait_until(&d, "the switch off is logged", || {
        count_in_log(&d, OFF) == 1
    });
    assert_eq!(container_memtotal(&d, &cg), host_memtotal());
    assert!(
        d.alive(),
        "the supervisor survives SIGUSR2\n{}",
        d.log_text()
    );

    // A crash: the new server is still switched off.
    assert_eq!(servers.of(&d), first, "no restart for a toggle");
    signal(first, libc::SIGKILL);
    wait_until(&d, "a new server", || {
        e2e::children_of(sup).first().is_some_and(|p| *p != first)
    });
    assert_eq!(container_memtotal(&d, &cg), host_memtotal());

    // The server's own SIGUSR2 flips the shared switch...
    let second = servers.of(&d);
    signal(second, libc::SIGUSR2);
    wait_until(&d, "the switch on is logged", || count_in_log(&d, ON) == 1);
    assert_eq!(container_memtotal(&d, &cg), 48 * 1024);
    // ...so the supervisor's next one switches off again, not "on again".
    signal(sup, libc::SIGUSR2);
    wait_until(&d, "the second switch off", || count_in_log(&d, OFF) == 2);
    assert_eq!(container_memtotal(&d, &cg), host_memtotal());
    signal(sup, libc::SIGUSR2);
    wait_until(&d, "the second switch on", || count_in_log(&d, ON) == 2);
    assert_eq!(container_memtotal(&d, &cg), 48 * 1024);
    assert!(d.alive());
    assert_eq!(servers.of(&d), second, "no restart for a toggle");
}

/// The plain server: SIGHUP (a closed terminal) and SIGPIPE (a log pipe gone) are ignored;
/// SIGUSR1 upgrades in place; SIGUSR2 toggles; SIGTERM, SIGINT and SIGQUIT unmount cleanly
/// and exit 0. At no point is the mount dead.
#[test]
fn every_admin_signal_to_the_server_has_its_effect_and_none_leaves_a_dead_mount() {
    let (_bin_dir, bin) = private_binary();
    let mut d = Daemon::start(&bin, &[]);
    let pid = d.pid();
    let probe = probe();

    signal(pid, libc::SIGHUP);
    wait_until(&d, "SIGHUP logged", || {
        d.log_text().contains("SIGHUP: ignored")
    });
    assert_serving(&d, &probe, true, "SIGHUP");

    signal(pid, libc::SIGPIPE);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_ne!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE is ignored"
    );
    assert_serving(&d, &probe, true, "SIGPIPE");

    signal(pid, libc::SIGUSR1);
    wait_until(&d, "generation 2 serving", || {
        d.log_text().contains("generation 2")
    });
    assert_serving(&d, &probe, true, "SIGUSR1");

    signal(pid, libc::SIGUSR2);
    wait_until(&d, "off", || count_in_log(&d, OFF) == 1);
    assert_serving(&d, &probe, false, "SIGUSR2");
    signal(pid, libc::SIGUSR2);
    wait_until(&d, "on", || count_in_log(&d, ON) == 1);
    assert_serving(&d, &probe, true, "SIGUSR2 twice");
    assert_eq!(d.pid(), pid);

    signal(pid, libc::SIGTERM);
    assert_stopped_cleanly(&mut d, "SIGTERM");
    assert!(d.log_text().contains("SIGTERM: unmounting"));
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGQUIT, "SIGQUIT")] {
        let mut d = Daemon::start(&bin, &[]);
        assert_serving(&d, &probe, true, "start");
        signal(d.pid(), sig);
        assert_stopped_cleanly(&mut d, name);
        assert!(d.log_text().contains(&format!("{name}: unmounting")));
    }
}

/// SIGHUP, SIGPIPE and SIGUSR2 twice to `pid` (`whom`: the supervisor or its server): after
/// each the mount serves (virtualisation off after the first SIGUSR2, on again after the
/// second) and `server` still runs, not restarted.
fn harmless_signals(
    d: &Daemon,
    probe: &TestCgroup,
    servers: &Servers,
    pid: u32,
    whom: &str,
    server: u32,
) {
    for (sig, name, virtualised) in [
        (libc::SIGHUP, "SIGHUP", true),
        (libc::SIGPIPE, "SIGPIPE", true),
        (libc::SIGUSR2, "SIGUSR2", false),
        (libc::SIGUSR2, "SIGUSR2 again", true),
    ] {
        let what = format!("{name} to {whom}");
        signal_and_settle(d, pid, sig, &what);
        assert_serving(d, probe, virtualised, &what);
        assert_eq!(
            servers.of(d),
            server,
            "{what}: the server was not restarted"
        );
    }
}

/// The supervisor and its server. To the supervisor: SIGHUP and SIGPIPE are ignored, SIGUSR2
/// toggles, SIGUSR1 upgrades the server in place (same pid); SIGTERM/SIGINT/SIGQUIT stop
/// the server and unmount. To the server: SIGHUP, SIGPIPE, SIGUSR2 change nothing but the
/// switch; SIGTERM/SIGINT/SIGQUIT end it and the supervisor starts another. The mount
/// serves throughout.
#[test]
fn every_admin_signal_to_the_supervisor_or_its_server_has_its_effect_and_none_leaves_a_dead_mount()
{
    let (_bin_dir, bin) = private_binary();
    let servers = Servers::new(&bin);
    let mut d = Daemon::start(&bin, &["--supervise"]);
    let sup = d.pid();
    let server = servers.of(&d);
    let probe = probe();

    harmless_signals(&d, &probe, &servers, sup, "the supervisor", server);
    assert!(d.log_text().contains("SIGHUP: ignored"));
    assert_eq!((count_in_log(&d, OFF), count_in_log(&d, ON)), (1, 1));

    signal(sup, libc::SIGUSR1);
    wait_until(&d, "the server upgraded in place", || {
        d.log_text().contains("generation 2")
    });
    assert_serving(&d, &probe, true, "SIGUSR1 to the supervisor");
    assert_eq!(servers.of(&d), server, "an upgrade keeps the pid");

    harmless_signals(&d, &probe, &servers, server, "the server", server);
    assert_eq!((count_in_log(&d, OFF), count_in_log(&d, ON)), (2, 2));

    let mut current = server;
    for (sig, what) in [
        (libc::SIGTERM, "SIGTERM to the server"),
        (libc::SIGINT, "SIGINT to the server"),
        (libc::SIGQUIT, "SIGQUIT to the server"),
    ] {
        signal(current, sig);
        wait_until(&d, what, || {
            e2e::children_of(sup).first().is_some_and(|p| *p != current)
        });
        assert_serving(&d, &probe, true, what);
        current = servers.of(&d);
    }
    assert_eq!(d.pid(), sup);

    signal(sup, libc::SIGTERM);
    assert_stopped_cleanly(&mut d, "SIGTERM");
    assert!(
        !Path::new(&format!("/proc/{current}")).exists(),
        "SIGTERM: the server outlived its supervisor"
    );
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGQUIT, "SIGQUIT")] {
        let mut d = Daemon::start(&bin, &["--supervise"]);
        let server = servers.of(&d);
        assert_serving(&d, &probe, true, "start");
        signal(d.pid(), sig);
        assert_stopped_cleanly(&mut d, name);
        assert!(
            !Path::new(&format!("/proc/{server}")).exists(),
            "{name}: the server outlived its supervisor"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Item 8: open files.

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `(soft, hard)` "Max open files" of `pid`.
fn nofile(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[3].to_string(), f[4].to_string())
}

/// Start our daemon with the open-files limit `soft:hard`.
fn with_nofile(limit: &str, args: &[&str]) -> Daemon {
    let nofile = format!("--nofile={limit}");
    let bin = lxcfs_bin();
    let mut all = vec![nofile.as_str(), "--", bin.to_str().unwrap()];
    all.extend_from_slice(args);
    Daemon::start(Path::new("prlimit"), &all)
}

/// 5,000 containers come and go; each costs the daemon a pidfd while it lives. Under a hard
/// limit of 256 open files (the old cache, pruned only at 1,024 entries, ran out after ~240
/// and every later container got `EMFILE`), every one of them is served, the fd count falls
/// back to its baseline, and a new container still sees its own limit.
#[test]
fn five_thousand_short_lived_containers_leave_no_open_files_behind() {
    let d = with_nofile("256:256", &[]);
    let pid = d.pid();
    assert_eq!(nofile(pid), ("256".into(), "256".into()));
    // Baseline once a container has been served and forgotten (the reaper runs).
    let warm = limited("fd-warm", 80);
    assert_eq!(container_memtotal(&d, &warm), 80 * 1024);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = fd_count(pid);

    let out = Command::new(env!("CARGO_BIN_EXE_pidns-churn"))
        .arg(d.path())
        .args(["5000", "8"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && report.contains("ok=5000 failed=0"),
        "{report}\nfirst errors:\n{}\n{}",
        errors.lines().take(5).collect::<Vec<_>>().join("\n"),
        d.log_text()
    );
    wait_until(&d, "the fd count back at its baseline", || {
        fd_count(pid) <= baseline + 2
    });
    assert!(
        !d.log_text().contains("cannot cache"),
        "ran out of files on the way:\n{}",
        d.log_text()
    );

    let fresh = limited("fd-fresh", 96);
    assert_eq!(container_memtotal(&d, &fresh), 96 * 1024);
    wait_until(&d, "the fd count back at its baseline", || {
        fd_count(pid) <= baseline + 2
    });
}

/// The daemon raises its soft limit to the hard one (the usual soft limit of 1,024 is far
/// below what a host with many containers needs); so do the supervisor and its server.
#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let servers = Servers::new(&lxcfs_bin());
    let d = with_nofile("100:4096", &[]);
    assert_eq!(nofile(d.pid()), ("4096".into(), "4096".into()));
    let s = with_nofile("100:4096", &["--supervise"]);
    assert_eq!(nofile(s.pid()), ("4096".into(), "4096".into()));
    assert_eq!(nofile(servers.of(&s)), ("4096".into(), "4096".into()));
}

/// The shipped unit gives the daemon room for its pidfds (`systemd-analyze verify` of the
/// unit is `units.rs`).
#[test]
fn the_unit_sets_limit_nofile() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/lxcfs.service"),
    )
    .unwrap();
    let limit: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE= in lxcfs.service")
        .trim()
        .parse()
        .unwrap();
    assert!(limit >= 65536, "LimitNOFILE={limit}");
}

// ---------------------------------------------------------------------------------------
// Item 9: a cgroup move and the shared renderings.

/// A container in `cg` whose init (a shell) reads a line on stdin and answers with the first
/// line of `proc/<file>` through the mount, while `hammerers` other processes of the
/// container read the same file in tight loops (so shared renderings are always being made).
/// `--kill-child`: if the test dies, killing `unshare` takes the namespace down.
fn interactive_container(cg: &TestCgroup, mnt: &Path, file: &str, hammerers: usize) -> Child {
    let f = mnt.join("proc").join(file);
    let f = f.display();
    let procs: Vec<String> = cg
        .dirs
        .iter()
        .map(|(_, d)| d.join("cgroup.procs").display().to_string())
        .collect();
    let inner = format!(
        "for i in $(seq {hammerers}); do (while :; do cat {f} >/dev/null; done) & done; \
         while read -r _; do head -1 {f} || echo FAILED; done"
    );
    let script = format!(
        "for f in {}; do echo $$ > $f || exit 97; done; \
         exec unshare --fork --pid --kill-child --mount-proc sh -c '{inner}'",
        procs.join(" ")
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Directories made below a cgroup, removed (deepest first) when dropped.
struct SubCgroups(Vec<PathBuf>);

impl SubCgroups {
    fn new(parent: &Path, n: usize) -> SubCgroups {
        let mut made = SubCgroups(Vec::new());
        for i in 0..n {
            let d = parent.join(format!("sub{i}"));
            std::fs::create_dir(&d).unwrap();
            made.0.push(d);
        }
        made
    }
}

impl Drop for SubCgroups {
    fn drop(&mut self) {
        while let Some(d) = self.0.pop() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// One item-9 scenario: which file the container reads, which controller its init moves in,
/// and how to tell the two cgroups apart in the file's first line.
struct MoveCase<'a> {
    args: &'a [&'a str],
    window: Duration,
    file: &'a str,
    controller: &'a str,
    hammerers: usize,
    /// Empty cgroups made below `a` in `controller` (a rendering of `a` walks them all).
    a_subcgroups: usize,
    /// Whether a first line shows cgroup `b` (true) or `a` (false); `None`: neither.
    shows_b: fn(&str) -> Option<bool>,
}

/// A container's init moves between two cgroups, `a` and `b`, back and forth, while other
/// processes of the container keep reading; the daemon is starved of CPU (1 ms per 10 ms), so
/// renderings take long in wall time and often begin before a move and end after it. A read
/// that starts once the sharing window has passed since the move must show the new cgroup:
/// a rendering is shared only while younger than the window, counted from before its cgroups
/// were read. (When it was stamped on completion instead, such a rendering went out as new.)
fn no_read_past_the_window_shows_the_old_cgroup(case: &MoveCase<'_>, rounds: u32) {
    // Declared before the daemon, so removed after it has left.
    let slow = TestCgroup::new("slow-lxcfs");
    slow.set("cpu", "cpu.cfs_period_us", "10000");
    slow.set("cpu", "cpu.cfs_quota_us", "1000");
    let mut a = limited("move-a", 64);
    let mut b = limited("move-b", 128);
    // Declared after `a`, so removed before it.
    let _subs = SubCgroups::new(a.dir(case.controller), case.a_subcgroups);
    let d = Daemon::ours(case.args);
    std::fs::write(slow.dir("cpu").join("cgroup.procs"), d.pid().to_string()).unwrap();

    let mut ct = interactive_container(&a, d.path(), case.file, case.hammerers);
    // Whichever is removed first kills `unshare`, and with it the namespace.
    a.adopt(ct.id());
    b.adopt(ct.id());
    let mut stdin = ct.stdin.take().unwrap();
    let mut lines = BufReader::new(ct.stdout.take().unwrap()).lines();
    let mut ask = || -> String {
        stdin.write_all(b"\n").unwrap();
        lines.next().expect("an answer").unwrap()
    };
    let mut init = 0;
    wait_until(&d, "the container's init", || {
        init = e2e::children_of(ct.id()).first().copied().unwrap_or(0);
        init != 0
    });
    let first = ask();
    assert_eq!((case.shows_b)(&first), Some(false), "{first}");

    for round in 0..rounds {
        let to_b = round % 2 == 0;
        let to = if to_b { &b } else { &a };
        let procs = to.dir(case.controller).join("cgroup.procs");
        std::fs::write(procs, init.to_string()).unwrap();
        let moved = Instant::now();
        std::thread::sleep(case.window);
        while moved.elapsed() <= case.window {
            std::thread::sleep(Duration::from_millis(1));
        }
        let line = ask();
        assert_eq!(
            (case.shows_b)(&line),
            Some(to_b),
            "round {round}: a read started {:?} after the move to {} showed {line:?}",
            case.window,
            if to_b { "b" } else { "a" }
        );
    }
    // EOF ends the init's loop; the namespace, readers included, dies with it.
    drop(stdin);
    let _ = ct.wait();
}

/// `MemTotal` of a meminfo first line: `b` is the 128 MiB cgroup, `a` the 64 MiB one.
fn memtotal_shows_b(line: &str) -> Option<bool> {
    match meminfo_kb(line, "MemTotal") {
        131072 => Some(true),
        65536 => Some(false),
        _ => None,
    }
}

/// The thread count of a loadavg line (`… R/T last`): `b` holds the init and at most the one
/// `head` it forked (the line may have been rendered for another reader while no `head` ran);
/// `a` holds the three reader loops too, and the init when it is back.
fn loadavg_shows_b(line: &str) -> Option<bool> {
    let threads: u64 = line
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()?;
    match threads {
        1 | 2 => Some(true),
        t if t >= 4 => Some(false),
        _ => None,
    }
}

/// Item 9 with the defaults (`--cache-ms 20`): the container's memory view follows its
/// init's moves between a 64 MiB and a 128 MiB cgroup within the window.
#[test]
fn after_a_cgroup_move_no_read_past_the_cache_window_shows_the_old_cgroup() {
    let case = MoveCase {
        args: &[],
        window: Duration::from_millis(20),
        file: "meminfo",
        controller: "memory",
        hammerers: 2,
        a_subcgroups: 0,
        shows_b: memtotal_shows_b,
    };
    no_read_past_the_window_shows_the_old_cgroup(&case, 16);
}

/// Item 9 where renderings of the old cgroup surely straddle the move: `/proc/loadavg` (`-l`)
/// counts the threads of the whole cpu subtree at every rendering, and `a` has 1000
/// sub-cgroups, so with the daemon starved a rendering of `a` lasts several windows; readers
/// keep one in progress at every move out of `a`, and with one server thread the test's read
/// is answered right after it. (Stamping renderings on completion failed this in 4 runs of 4;
/// the meminfo variant above only rarely.)
#[test]
fn after_a_cgroup_move_a_rendering_that_straddled_it_is_never_shared() {
    let case = MoveCase {
        args: &["-l", "--threads", "1"],
        window: Duration::from_millis(20),
        file: "loadavg",
        controller: "cpu",
        hammerers: 3,
        a_subcgroups: 1000,
        shows_b: loadavg_shows_b,
    };
    no_read_past_the_window_shows_the_old_cgroup(&case, 20);
}
