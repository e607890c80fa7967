//! lxcfs that never breaks a running container: ten containers (pid namespaces in their own
//! memory cgroups, each with its own limit) read meminfo/stat/cpuinfo and a passed-through
//! sysfs file through our mount in tight loops — half of them through descriptors opened
//! once, before the first switch, and kept — while the daemon is (a) upgraded in place five
//! times with SIGUSR1 to a rebuilt binary, (b) killed with `kill -9` five times under the
//! supervisor; not one read may fail, none may stall (each is timed, see [`MAX_STALL`]), and
//! every reader must keep seeing its own container. Also: the supervisor's restart backoff,
//! and the systemd fd-store path with this test playing systemd over
//! `NOTIFY_SOCKET`/`LISTEN_FDS`.
//!
//! Each of (a), (b) and the fd-store crash also runs as on a kernel without
//! `FUSE_NOTIFY_RESEND` (before 6.9, lxcfs's test-only `LXCFS_TEST_WITHOUT=fuse_resend`):
//! upgrades must then drain the requests in flight, and crashes be recovered from the
//! request journal (issue 18: on 6.1, 5 upgrades under 4 readers left 2 readers hung).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e::{assert_serves_containers, lxcfs_bin, spawn_in_container, Daemon, TestCgroup};

const MARK: &[u8] = b"LXCFS-BUILD-ID:";

/// What the daemon logs when it replays requests from the journal.
const REPLAYED: &str = "request(s) a previous server had read and not answered";

/// The longest a single read may take while the daemon is switched under it, beyond any
/// restart delay the supervisor adds on purpose. A switch costs an exec (or a restart) and
/// the new generation's start, ~15 ms here; a request left unanswered by a predecessor
/// would hang until killed.
const MAX_STALL: Duration = Duration::from_secs(2);

/// Copy the built lxcfs to `dest`, stamped with build id `id` (a rebuild, as far as anyone
/// can tell), replacing whatever is there the way a package upgrade does (rename over).
fn install_build(dest: &Path, id: &str) {
    let mut bytes = std::fs::read(lxcfs_bin()).unwrap();
    let at = bytes
        .windows(MARK.len())
        .position(|w| w == MARK)
        .expect("build id marker in the lxcfs binary");
    let field = &mut bytes[at + MARK.len()..at + MARK.len() + 33];
    field.fill(0);
    field[..id.len()].copy_from_slice(id.as_bytes());
    let tmp = dest.with_extension("new");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// Wait until `cond` holds (or panic with `what` after 20 s).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until generation `generation`, built as `id`, serves; then let the readers read.
fn wait_serving(d: &Daemon, generation: u64, id: &str) {
    wait_until(&format!("{id} serving"), || {
        let log = d.log_text();
        log.contains(&format!("generation {generation}")) && log.contains(&format!("build {id})"))
    });
    std::thread::sleep(Duration::from_millis(300));
}

/// Containers reading in tight loops; every other one through descriptors it keeps open.
struct Readers {
    stop: PathBuf,
    children: Vec<(Child, u64)>,
    _cgroups: Vec<TestCgroup>,
    _dir: tempfile::TempDir,
}

impl Readers {
    fn start(mnt: &Path, n: usize) -> Readers {
        let dir = tempfile::tempdir().unwrap();
        let stop = dir.path().join("stop");
        let reader = env!("CARGO_BIN_EXE_lxcfs-reader");
        let mut children = Vec::new();
        let mut cgroups = Vec::new();
        for i in 0..n {
            let mut cg = TestCgroup::new(&format!("reader{i}"));
            let mib = 100 + 16 * i as u64;
            cg.set("memory", "memory.limit_in_bytes", &(mib << 20).to_string());
            let hold = if i % 2 == 1 { " --hold" } else { "" };
            let child = spawn_in_container(
                &cg,
                &format!(
                    "exec {reader} {} {} {}{hold}",
                    mnt.display(),
                    mib * 1024,
                    stop.display()
                ),
            );
            cg.adopt(child.id());
            children.push((child, mib * 1024));
            cgroups.push(cg);
        }
        Readers {
            stop,
            children,
            _cgroups: cgroups,
            _dir: dir,
        }
    }

    /// Stop them; every one must have read, never failed, never waited longer than
    /// `max_stall` for a read, and always seen its own limit. A reader that does not stop
    /// is stuck in a read: that fails the test, after `release` — which must end the
    /// connection (stop the daemon, drop what else holds it): a reader stuck in a request the
    /// daemon took cannot die (nor its cgroup go) while the connection lives.
    fn finish(mut self, release: impl FnOnce(), max_stall: Duration) -> u64 {
        let mut release = Some(release);
        std::fs::write(&self.stop, "").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut total = 0;
        for (child, expected) in self.children.iter_mut() {
            while child.try_wait().unwrap().is_none() {
                if Instant::now() >= deadline {
                    if let Some(r) = release.take() {
                        r();
                    }
                    panic!("the reader of {expected} kB did not stop: a read stalled");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            let field = |k: &str| -> u64 {
                out.split_whitespace()
                    .find_map(|f| f.strip_prefix(k)?.parse().ok())
                    .unwrap_or_else(|| panic!("no {k} in {out:?}"))
            };
            assert!(field("reads=") > 0, "{out}");
            assert_eq!(field("fails="), 0, "reader of {expected} kB: {out}");
            assert_eq!(field("wrong="), 0, "reader of {expected} kB: {out}");
            assert!(
                u128::from(field("max_ms=")) < max_stall.as_millis(),
                "reader of {expected} kB stalled (limit {max_stall:?}): {out}"
            );
            total += field("reads=");
        }
        total
    }
}

/// Read `path` in a thread of its own; take the result with [`answer`].
fn read_in_background(path: PathBuf) -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(std::fs::read_to_string(path)));
    rx
}

/// The text a background read got, which must come within 20 s: a request nobody answers
/// fails the test instead of hanging it.
fn answer(rx: &mpsc::Receiver<std::io::Result<String>>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what}: no answer within 20 s"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn dev_of(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().dev()
}

fn pidfile_is_locked(path: &Path) -> bool {
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: flock on an fd we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    r != 0
}

#[test]
fn live_upgrade_five_times_under_ten_readers_loses_nothing() {
    let (d, _bin) = live_upgrade_five_times(&[]);
    let log = d.log_text();
    // The kernel resends what the classic loop had read: nothing to drain. (Over io_uring,
    // `E2E_LXCFS_IO_URING`, every upgrade drains the rings.)
    if !log.contains("serving over io_uring") {
        assert!(!log.contains("(drained)"), "{log}");
    }
}

/// As on a kernel without `FUSE_NOTIFY_RESEND` (before 6.9, e.g. Debian 12's 6.1, where 5
/// upgrades under 4 readers left 2 hung, issue 18): the successor cannot get back what its
/// predecessor had read, so each upgrade drains the requests in flight before the exec. Every
/// reader must complete every read; nothing is left for the journal.
#[test]
fn live_upgrade_without_resend_drains_and_loses_nothing() {
    let (d, _bin) = live_upgrade_five_times(&["fuse_resend"]);
    let log = d.log_text();
    assert_eq!(
        log.matches("requests in flight answered (drained)").count(),
        5,
        "{log}"
    );
    assert!(
        log.contains("FUSE_NOTIFY_RESEND turned off (test)"),
        "{log}"
    );
    assert!(!log.contains(REPLAYED), "drained: nothing to replay\n{log}");
}

/// The five upgrades under ten readers on the io_uring transport (issue 17): a ring's
/// requests are never resent by the kernel, so each generation answers what its rings hold,
/// closes them (staying alive until the kernel has cancelled their idle entries) and hands
/// the ring buffers' memfd to its successor, which answers what the kernel copied into them
/// meanwhile. Not one read may fail or stall.
#[test]
fn live_upgrade_five_times_over_io_uring_loses_nothing() {
    let Some((d, _bin)) = live_upgrade_five_times_on(&[], true) else {
        e2e::skip_without_io_uring("live_upgrade_five_times_over_io_uring_loses_nothing");
        return;
    };
    let log = d.log_text();
    assert_eq!(
        log.matches("serving over io_uring").count(),
        6,
        "every generation on the rings\n{log}"
    );
    assert_eq!(log.matches("(drained)").count(), 5, "{log}");
}

/// Five SIGUSR1 upgrades under ten readers, with the kernel `features` off (see
/// `Daemon::start_without`); returns the daemon, still serving, and its binary's directory.
fn live_upgrade_five_times(without: &[&str]) -> (Daemon, tempfile::TempDir) {
    live_upgrade_five_times_on(without, false).unwrap()
}

/// [`live_upgrade_five_times`], over io_uring if `ring` (`None` without it on this kernel).
fn live_upgrade_five_times_on(without: &[&str], ring: bool) -> Option<(Daemon, tempfile::TempDir)> {
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("lxcfs");
    install_build(&bin, "gen-0");
    let mut d = if ring {
        Daemon::ours_over_io_uring(&bin, without, &[])?
    } else {
        Daemon::start_without(&bin, without, &[])
    };
    let dev = dev_of(d.path());
    let readers = Readers::start(d.path(), 10);
    std::thread::sleep(Duration::from_millis(300));
    for k in 1..=5 {
        let id = format!("upgrade-{k}");
        install_build(&bin, &id);
        // SAFETY: signalling the daemon this test started.
        unsafe { libc::kill(d.pid() as i32, libc::SIGUSR1) };
        wait_serving(&d, k + 1, &id);
    }
    let reads = readers.finish(
        || {
            d.stop();
        },
        MAX_STALL,
    );
    assert!(reads > 100, "{reads} reads");
    // Same process, same mount, the new binary, the pidfile still locked by it.
    assert_eq!(dev_of(d.path()), dev);
    let exe = std::fs::read_link(format!("/proc/{}/exe", d.pid())).unwrap();
    assert_eq!(exe, bin);
    assert!(pidfile_is_locked(&d.pidfile()));
    assert_eq!(
        std::fs::read_to_string(d.pidfile()).unwrap().trim(),
        d.pid().to_string()
    );
    assert_serves_containers(&mut d, "five upgrades");
    Some((d, bin_dir))
}

/// `--io-uring=auto` (the default) serves over io_uring only where a crash is not meant to
/// be survived: a request a ring had fetched when its server died is never resent, and its
/// reader would stay stuck until the mount goes away. So under the supervisor and under
/// systemd (its fd store) it keeps the classic transport even with the host's knob at `Y`,
/// and a plain daemon takes the rings.
#[test]
fn auto_keeps_the_classic_transport_where_a_crash_must_be_survived() {
    e2e::require_root();
    let Some(knob) = e2e::UringKnob::set(true) else {
        e2e::skip_without_io_uring(
            "auto_keeps_the_classic_transport_where_a_crash_must_be_survived",
        );
        return;
    };
    let mut plain = Daemon::start(&lxcfs_bin(), &[]);
    let mut supervised = Daemon::start(&lxcfs_bin(), &["--supervise"]);
    let (_dir, mnt, notify, pidfile, log, sock) = like_a_unit();
    let guard = scopeguard(&mnt);
    let mut under_systemd = start_like_systemd(&notify, &mnt, &pidfile, &log, &[], &[]);
    guard.pids.borrow_mut().push(under_systemd.id());
    let _stored = until_ready(&sock);
    assert!(plain.over_io_uring(), "{}", plain.log_text());
    drop(knob);
    for (what, text) in [
        ("--supervise", supervised.log_text()),
        ("under systemd", std::fs::read_to_string(&log).unwrap()),
    ] {
        assert!(
            text.contains("classic transport (auto)") && !text.contains("serving over io_uring"),
            "{what}:\n{text}"
        );
    }
    assert!(std::fs::read_to_string(mnt.join("proc/uptime")).is_ok());
    assert_serves_containers(&mut plain, "auto: io_uring");
    assert_serves_containers(&mut supervised, "auto: classic under the supervisor");
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(under_systemd.id() as i32, libc::SIGTERM) };
    under_systemd.wait().unwrap();
    drop(guard);
}

/// `--supervise --io-uring=on` (the admin's opt-in, see lxcfs's README): the server gets the
/// connection before `FUSE_INIT`, so its first registration is refused (`EAGAIN`) and the
/// rings must start once it has answered `FUSE_INIT`. Regression: the refused start left its
/// stop event set, so the rings started after `FUSE_INIT` stopped at once and every read hung.
#[test]
fn a_supervised_server_on_io_uring_starts_its_rings_after_fuse_init() {
    e2e::require_root();
    let Some(knob) = e2e::UringKnob::set(true) else {
        e2e::skip_without_io_uring(
            "a_supervised_server_on_io_uring_starts_its_rings_after_fuse_init",
        );
        return;
    };
    let mut d = Daemon::start(&lxcfs_bin(), &["--supervise", "--io-uring=on"]);
    drop(knob);
    assert!(d.over_io_uring(), "{}", d.log_text());
    let (tx, rx) = mpsc::channel();
    let file = d.file("proc/meminfo");
    std::thread::spawn(move || {
        let r = (0..200).try_for_each(|_| std::fs::read_to_string(&file).map(|_| ()));
        let _ = tx.send(r);
    });
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reads hang: the rings do not serve");
    assert!(r.is_ok(), "{r:?}");
    assert_serves_containers(&mut d, "supervised, over io_uring");
}

/// `--io-uring=on` on a host whose knob is `N`: no mount, and an error that says how to
/// enable it. The daemon never writes the knob itself.
#[test]
fn io_uring_on_refuses_to_start_while_the_host_has_it_off() {
    e2e::require_root();
    let Some(knob) = e2e::UringKnob::set(false) else {
        e2e::skip_without_io_uring("io_uring_on_refuses_to_start_while_the_host_has_it_off");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = Command::new(lxcfs_bin())
        .arg("--io-uring=on")
        .arg("-p")
        .arg(dir.path().join("pid"))
        .arg(&mnt)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let knob_now = std::fs::read_to_string(e2e::URING_KNOB).unwrap();
    drop(knob);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("echo Y > /sys/module/fuse/parameters/enable_uring"),
        "{err}"
    );
    assert_eq!(knob_now.trim(), "N", "the daemon wrote the knob");
    assert!(!e2e::is_mounted(&mnt));
}

#[test]
fn kill_9_five_times_under_the_supervisor_loses_nothing() {
    let (d, _bin) = kill_9_five_times(&[]);
    assert!(!d.log_text().contains(REPLAYED), "{}", d.log_text());
}

/// As on a kernel without `FUSE_NOTIFY_RESEND` (before 6.9): the requests a killed server
/// had read stay in the kernel, their readers stuck (uninterruptibly) until something answers
/// them; each new server replays them from the journal the supervisor holds. Every reader
/// must complete every read, and the log must show requests replayed (with ten readers in
/// tight loops, a kill finds requests in flight nearly every time).
#[test]
fn kill_9_without_resend_replays_the_journal_and_loses_nothing() {
    let (d, _bin) = kill_9_five_times(&["fuse_resend"]);
    let log = d.log_text();
    let replayed: usize = log
        .lines()
        .filter(|l| l.contains(REPLAYED))
        .filter_map(|l| {
            l.split("replayed ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(replayed > 0, "no request was in flight at any kill?\n{log}");
}

/// Five `kill -9`s of the supervised server under ten readers, with the kernel `features`
/// off; returns the supervisor, still serving, and its binary's directory.
fn kill_9_five_times(without: &[&str]) -> (Daemon, tempfile::TempDir) {
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("lxcfs");
    install_build(&bin, "crash-0");
    let mut d = Daemon::start_without(&bin, without, &["--supervise"]);
    let dev = dev_of(d.path());
    let readers = Readers::start(d.path(), 10);
    std::thread::sleep(Duration::from_millis(300));
    for k in 1..=5 {
        let id = format!("crash-{k}");
        install_build(&bin, &id);
        let server = e2e::children_of(d.pid());
        assert_eq!(server.len(), 1, "{server:?}\n{}", d.log_text());
        // SAFETY: killing the server the supervisor (started by this test) runs.
        unsafe { libc::kill(server[0] as i32, libc::SIGKILL) };
        wait_serving(&d, k + 1, &id);
    }
    // Each server here dies young, so the supervisor waits before each restart: 0, 100,
    // 200, 400, then 800 ms before the fifth (by design, see the backoff test below).
    let reads = readers.finish(
        || {
            d.stop();
        },
        MAX_STALL + Duration::from_millis(800),
    );
    assert!(reads > 100, "{reads} reads");
    assert_eq!(dev_of(d.path()), dev);
    assert!(pidfile_is_locked(&d.pidfile()));
    assert_serves_containers(&mut d, "five kill -9");
    (d, bin_dir)
}

#[test]
fn the_supervisor_backs_off_a_server_that_keeps_dying() {
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("lxcfs");
    install_build(&bin, "ok-1");
    let d = Daemon::start(&bin, &["--supervise"]);
    // A broken "upgrade" that dies at once.
    let starts = bin_dir.path().join("starts");
    let script = format!("#!/bin/sh\necho x >> {}\nexit 3\n", starts.display());
    let tmp = bin_dir.path().join("broken");
    std::fs::write(&tmp, script).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &bin).unwrap();
    let server = e2e::children_of(d.pid());
    // SAFETY: killing the server the supervisor (started by this test) runs.
    unsafe { libc::kill(server[0] as i32, libc::SIGKILL) };
    // A reader that arrives while nothing serves waits instead of failing.
    let blocked = read_in_background(d.file("proc/meminfo"));
    std::thread::sleep(Duration::from_millis(2500));
    let n = std::fs::read_to_string(&starts)
        .unwrap_or_default()
        .lines()
        .count();
    // Immediate, then 100, 200, 400, 800 ms…: a handful of attempts, not a spin.
    assert!(
        (3..=8).contains(&n),
        "{n} starts in 2.5 s:\n{}",
        d.log_text()
    );
    let delays: Vec<u64> = d
        .log_text()
        .lines()
        .filter_map(|l| l.rsplit_once(" in ")?.1.strip_suffix("ms")?.parse().ok())
        .collect();
    assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert!(delays.iter().any(|d| *d >= 200), "{delays:?}");
    // The fixed binary comes back by itself and answers the waiting reader.
    install_build(&bin, "ok-2");
    wait_until("ok-2 serving", || d.log_text().contains("build ok-2)"));
    let text = answer(&blocked, "the read that waited for the fixed binary");
    assert!(text.contains("MemTotal:"));
}

/// Receive one notification (text and fds) on the socket playing systemd's.
fn recv_notify(sock: &UnixDatagram) -> (String, Vec<OwnedFd>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("a notification");
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: the fds were just received by this process and are owned by nothing else.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let n = msg.bytes;
    (String::from_utf8_lossy(&buf[..n]).to_string(), fds)
}

/// What [`start_like_systemd`] needs, in a new temporary directory (kept alive by the first
/// element): the mount point (made), the notify socket's path and the socket bound there (20 s
/// read timeout), the pidfile's and the log's paths.
fn like_a_unit() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    UnixDatagram,
) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let (mnt, notify, pidfile, log) = (p("mnt"), p("notify"), p("pid"), p("log"));
    std::fs::create_dir(&mnt).unwrap();
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    (dir, mnt, notify, pidfile, log, sock)
}

/// Start lxcfs the way systemd would: `NOTIFY_SOCKET`, and the fds of the store (`stored`,
/// with their names) from fd 3 on with `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` set to
/// the daemon's pid; with the kernel features `without` turned off.
fn start_like_systemd(
    notify: &Path,
    mnt: &Path,
    pidfile: &Path,
    log: &Path,
    stored: &[(String, OwnedFd)],
    without: &[&str],
) -> Child {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"[ -n "$LISTEN_FDS" ] && export LISTEN_PID=$$; exec "$@""#)
        .arg("sh")
        .arg(lxcfs_bin())
        .arg("-p")
        .arg(pidfile)
        .arg(mnt)
        .env("NOTIFY_SOCKET", notify)
        .envs(e2e::without_env(without))
        .stdin(Stdio::null())
        .stdout(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .stderr(std::fs::OpenOptions::new().append(true).open(log).unwrap());
    if !stored.is_empty() {
        let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
        cmd.env("LISTEN_FDS", stored.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"));
        let raw: Vec<RawFd> = stored.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        // SAFETY: only dup2 between fork and exec (async-signal-safe). The stored fds are
        // first moved above the targets, so none is overwritten before it is copied.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                let mut high = Vec::with_capacity(raw.len());
                for fd in &raw {
                    let h = libc::fcntl(*fd, libc::F_DUPFD, 100);
                    if h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    high.push(h);
                }
                for (i, h) in high.iter().enumerate() {
                    if libc::dup2(*h, 3 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    cmd.spawn().unwrap()
}

/// `FileDescriptorStoreMax` of the shipped unit, `systemd/lxcfs.service`.
fn fd_store_max() -> usize {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/lxcfs.service");
    std::fs::read_to_string(unit)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("FileDescriptorStoreMax=")?
                .trim()
                .parse()
                .ok()
        })
        .expect("FileDescriptorStoreMax in systemd/lxcfs.service")
}

/// Play systemd's side of a start: take the fds the daemon stores (by name) until it says
/// `READY=1`.
fn until_ready(sock: &UnixDatagram) -> Vec<(String, OwnedFd)> {
    let mut stored = Vec::new();
    loop {
        let (msg, fds) = recv_notify(sock);
        if msg.contains("FDSTORE=1") {
            let name = msg
                .lines()
                .find_map(|l| l.strip_prefix("FDNAME="))
                .unwrap_or("unknown")
                .to_string();
            stored.extend(fds.into_iter().map(|fd| (name.clone(), fd)));
        }
        if msg.contains("READY=1") {
            return stored;
        }
    }
}

#[test]
fn a_crash_under_systemd_is_survived_through_the_fd_store() {
    e2e::require_root();
    let (_dir, mnt, notify, pidfile, log, sock) = like_a_unit();
    let guard = scopeguard(&mnt);
    let mut first = start_like_systemd(&notify, &mnt, &pidfile, &log, &[], &[]);
    guard.pids.borrow_mut().push(first.id());
    // The daemon parks the connection (and its request journal) in the store, then says it
    // is ready.
    let stored = until_ready(&sock);
    let names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fuse", "journal"]);
    let dev = dev_of(&mnt);
    assert!(std::fs::read_to_string(mnt.join("proc/uptime")).is_ok());

    // Crash. The store (we) still holds the connection: a reader now waits, not fails.
    first.kill().unwrap();
    first.wait().unwrap();
    let blocked = read_in_background(mnt.join("proc/meminfo"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        blocked.try_recv().is_err(),
        "the read did not wait for the successor"
    );
    // systemd restarts the service and passes the stored fds back.
    let mut second = start_like_systemd(&notify, &mnt, &pidfile, &log, &stored, &[]);
    guard.pids.borrow_mut().push(second.id());
    let text = answer(&blocked, "the read that waited for the restart");
    assert!(text.contains("MemTotal:"));
    // The successor stores the same fds again. systemd (252, Debian 12's) checks that the
    // store has room before it recognises a duplicate: the unit must leave room for both
    // sets, or it refuses them ("Cannot store more fds than FileDescriptorStoreMax=2", at
    // every restart and upgrade of the v2 guest's unit, `v2_lxcfs.rs`).
    let again = until_ready(&sock);
    let max = fd_store_max();
    assert!(
        stored.len() + again.len() <= max,
        "{} fds stored, then {} again: systemd/lxcfs.service has FileDescriptorStoreMax={max}",
        stored.len(),
        again.len()
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("connection from systemd's fd store"));
    assert_eq!(dev_of(&mnt), dev);

    // A clean stop unmounts and takes the fds out of the store.
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    let mut removed = Vec::new();
    while let Ok(msg) = std::panic::catch_unwind(|| recv_notify(&sock).0) {
        if msg.contains("FDSTOREREMOVE=1") {
            removed.extend(
                msg.lines()
                    .filter_map(|l| l.strip_prefix("FDNAME="))
                    .map(String::from),
            );
            if removed.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(removed, ["fuse", "journal"]);
    second.wait().unwrap();
    assert!(!e2e::is_mounted(&mnt));
    drop(guard);
}

/// As on a kernel without `FUSE_NOTIFY_RESEND`, under systemd: five `kill -9`s under ten
/// readers, each followed by the restart with the stored connection *and journal*; the
/// successor replays what the dead one had read and not answered. Every read completes.
#[test]
fn a_crash_under_systemd_without_resend_replays_the_stored_journal() {
    e2e::require_root();
    let (_dir, mnt, notify, pidfile, log, sock) = like_a_unit();
    let guard = scopeguard(&mnt);
    let without = ["fuse_resend"];
    let mut daemon = start_like_systemd(&notify, &mnt, &pidfile, &log, &[], &without);
    guard.pids.borrow_mut().push(daemon.id());
    let stored = until_ready(&sock);
    let readers = Readers::start(&mnt, 10);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        daemon = start_like_systemd(&notify, &mnt, &pidfile, &log, &stored, &without);
        guard.pids.borrow_mut().push(daemon.id());
        until_ready(&sock);
        std::thread::sleep(Duration::from_millis(300));
    }
    // A stuck reader is released by ending the connection: the daemon and the store.
    let pid = daemon.id();
    let reads = readers.finish(
        move || {
            drop(stored);
            e2e::signal(pid, nix::sys::signal::Signal::SIGKILL);
        },
        MAX_STALL,
    );
    assert!(reads > 100, "{reads} reads");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(REPLAYED),
        "no request in flight at any kill?\n{text}"
    );
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    daemon.wait().unwrap();
    assert!(!e2e::is_mounted(&mnt));
    drop(guard);
}

/// If a test fails midway: kills the daemons it started (by pid) and lazily unmounts `mnt`.
struct MountGuard {
    mnt: PathBuf,
    pids: std::cell::RefCell<Vec<u32>>,
}

fn scopeguard(mnt: &Path) -> MountGuard {
    MountGuard {
        mnt: mnt.to_path_buf(),
        pids: std::cell::RefCell::new(Vec::new()),
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        for p in self.pids.borrow().iter() {
            // SAFETY: killing a daemon this test started, by pid (a no-op if it is gone and
            // unreaped; reaped pids are not reused within the test).
            unsafe { libc::kill(*p as i32, libc::SIGKILL) };
        }
        if e2e::is_mounted(&self.mnt) {
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn a_dead_mount_left_by_an_unsupervised_crash_is_replaced_at_start() {
    let mut d = Daemon::ours(&[]);
    let mnt = d.path().to_path_buf();
    // SAFETY: killing the daemon this test started.
    unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
    wait_until("the daemon is gone", || !d.alive());
    let err = std::fs::read_to_string(mnt.join("proc/meminfo")).unwrap_err();
    // ECONNABORTED: over io_uring, a read can still be queued after the daemon is reaped, and
    // is then aborted with the connection (see the next test).
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::ENOTCONN | libc::ECONNABORTED)
        ),
        "{err}"
    );
    start_on_the_dead_mount(&mnt);
    drop(d);
    assert!(!e2e::is_mounted(&mnt));
}

/// CI caught this as a flake: a daemon over io_uring is reaped before the kernel has torn its
/// rings down and aborted its connection, so a start at once (a supervisor's restart) probed
/// the mount point, got ECONNABORTED, and gave up.
#[test]
fn a_start_at_once_after_a_crash_over_io_uring_replaces_the_dead_mount() {
    let Some(mut d) = Daemon::ours_over_io_uring(&lxcfs_bin(), &[], &[]) else {
        e2e::skip_without_io_uring("a_start_at_once_after_a_crash_over_io_uring");
        return;
    };
    let mnt = d.path().to_path_buf();
    d.kill_and_reap();
    start_on_the_dead_mount(&mnt);
    drop(d);
    assert!(!e2e::is_mounted(&mnt));
}

/// Start our daemon on `mnt`, where a dead mount is: it must replace it (one mount, not two
/// stacked), say so, serve, and unmount on SIGTERM.
fn start_on_the_dead_mount(mnt: &Path) {
    // (Not Daemon::ours_at: it waits for one mount more, and this start replaces one.)
    let log = mnt.with_file_name("log2");
    let guard = scopeguard(mnt);
    let mut again = Command::new(lxcfs_bin())
        .arg("-p")
        .arg(mnt.with_file_name("pid2"))
        .arg(mnt)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    guard.pids.borrow_mut().push(again.id());
    wait_until("served again", || {
        std::fs::read_to_string(mnt.join("proc/meminfo")).is_ok_and(|t| t.contains("MemTotal:"))
            || again.try_wait().ok().flatten().is_some()
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(again.try_wait().unwrap().is_none(), "{text}");
    assert!(text.contains("dead FUSE mount"), "{text}");
    assert_eq!(e2e::mount_count(mnt), 1);
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(again.id() as i32, libc::SIGTERM) };
    again.wait().unwrap();
    assert!(!e2e::is_mounted(mnt));
    drop(guard);
}

#[test]
fn an_upgrade_to_a_binary_that_does_not_run_is_refused_and_serving_goes_on() {
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("lxcfs");
    install_build(&bin, "good-1");
    let mut d = Daemon::start(&bin, &[]);
    let tmp = bin_dir.path().join("broken");
    std::fs::write(&tmp, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &bin).unwrap();
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(d.pid() as i32, libc::SIGUSR1) };
    wait_until("the refusal", || d.log_text().contains("not upgrading"));
    assert_serves_containers(&mut d, "a refused upgrade");
    // A good binary afterwards is taken.
    install_build(&bin, "good-2");
    // SAFETY: as above.
    unsafe { libc::kill(d.pid() as i32, libc::SIGUSR1) };
    wait_until("good-2 serving", || d.log_text().contains("build good-2)"));
    assert_serves_containers(&mut d, "the next upgrade");
}
