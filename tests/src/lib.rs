//! Harness for the end-to-end tests: a daemon on a temp mount ([`Daemon`]), cgroups below the
//! test's own ([`TestCgroup`]), and commands run as PID 1 of a new pid namespace inside them
//! ([`in_container`]). Every guard cleans up in `Drop`, also when a test fails.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub mod cgm;
pub mod hostile;
pub mod lxr;
pub mod raw_dbus;
pub mod vm;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for this process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Send `sig` to `pid`, a process the test started (one that is already gone is no error).
pub fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// Fail clearly unless we are root (the tests mount FUSE and create cgroups).
pub fn require_root() {
    assert!(
        nix::unistd::getuid().is_root(),
        "the end-to-end tests must run as root"
    );
}

/// The host's CPU count, failing the test (saying `why` it needs them) below `n`: a check
/// that needs more CPUs than the host has would otherwise pass without checking anything.
pub fn require_cpus(n: usize, why: &str) -> usize {
    let have = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        have >= n,
        "prerequisite missing: {why} needs at least {n} CPUs (this host has {have})"
    );
    have
}

/// Our daemon binary: `$LXR_LXCFS_BIN`, else `target/debug/lxcfs` of this workspace.
pub fn lxcfs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LXR_LXCFS_BIN") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/lxcfs");
    assert!(
        p.exists(),
        "{} missing: run `cargo build -p lxcfs` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// How many mounts are stacked on `path` (per /proc/self/mountinfo).
pub fn mount_count(path: &Path) -> usize {
    cgroups::mountinfo::read(Path::new("/proc"))
        .unwrap_or_default()
        .iter()
        .filter(|m| m.mount_point == path)
        .count()
}

/// Is `path` a mount point (per /proc/self/mountinfo)?
pub fn is_mounted(path: &Path) -> bool {
    mount_count(path) > 0
}

/// lxcfs's test-only switch (`LXCFS_TEST_WITHOUT`, see lxcfs's `kernel` module) turning off
/// the kernel `features` named.
pub fn without_env(features: &[&str]) -> Vec<(String, String)> {
    vec![("LXCFS_TEST_WITHOUT".to_string(), features.join(","))]
}

/// The host's FUSE-over-io_uring switch (global, root-only): lxcfs negotiates io_uring only
/// on a connection mounted while it reads `Y`.
pub const URING_KNOB: &str = "/sys/module/fuse/parameters/enable_uring";
/// Set (to anything) to run every daemon of ours that a suite starts without `--supervise`
/// over io_uring (`--io-uring=on`, the knob flipped for its start): the lxcfs suites on the
/// second transport, e.g. `E2E_LXCFS_IO_URING=1 cargo nextest run -p e2e --test
/// container_view`.
pub const IO_URING_ENV: &str = "E2E_LXCFS_IO_URING";

/// The knob ([`URING_KNOB`]) set to a value for as long as this lives, then put back as it
/// was (also when a test fails). It is host-global, so a test holds it only while a daemon
/// starts: the kernel keeps io_uring on a connection that negotiated it when the knob goes
/// back to `N`. Tests in other processes take turns through a lock file; a daemon of another
/// test started with `--io-uring=auto` in that window may get io_uring too, which serves it
/// just as well.
/// (A test killed while it holds the knob, e.g. by a timeout, leaves it set: Drop cannot
/// run then.)
pub struct UringKnob {
    prev: String,
    _lock: Option<std::fs::File>,
}

thread_local! {
    /// How many knobs this thread holds: a nested one (a test holding the knob starts a
    /// daemon that takes it too) must not wait for the lock its own thread holds.
    static KNOBS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl UringKnob {
    /// Set the knob to `Y` (`on`) or `N`; `None` on a kernel without FUSE over io_uring.
    pub fn set(on: bool) -> Option<UringKnob> {
        if !Path::new(URING_KNOB).exists() {
            return None;
        }
        let lock = (KNOBS.get() == 0).then(|| {
            let lock = std::fs::File::create("/run/lxr-e2e-uring-knob.lock").expect("knob lock");
            // SAFETY: flock on an fd we own; released when it closes.
            let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
            assert_eq!(r, 0, "flock the knob lock");
            lock
        });
        KNOBS.set(KNOBS.get() + 1);
        let prev = std::fs::read_to_string(URING_KNOB).expect("read the knob");
        std::fs::write(URING_KNOB, if on { "Y" } else { "N" }).expect("set the knob");
        Some(UringKnob {
            prev: prev.trim().to_string(),
            _lock: lock,
        })
    }
}

impl Drop for UringKnob {
    fn drop(&mut self) {
        let _ = std::fs::write(URING_KNOB, &self.prev);
        KNOBS.set(KNOBS.get().saturating_sub(1));
    }
}

/// Say why a test that needs FUSE over io_uring does nothing here.
pub fn skip_without_io_uring(test: &str) {
    eprintln!("SKIP {test}: this kernel has no FUSE over io_uring ({URING_KNOB} missing)");
}

/// A running lxcfs (ours or the anchor) on a temp mount point.
pub struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    mnt: PathBuf,
    log: PathBuf,
    /// Mounts already on `mnt` before ours (ours may be stacked on top of them).
    below: usize,
}

impl Daemon {
    /// Start our daemon with extra arguments.
    pub fn ours(args: &[&str]) -> Daemon {
        Self::start(&lxcfs_bin(), args)
    }

    /// Start our daemon behaving as on a kernel without the `features` (names of lxcfs's
    /// test-only `LXCFS_TEST_WITHOUT`, e.g. `"ns_get_tgid"`, `"fuse_resend"`), so that its
    /// fallbacks for older kernels run on this one.
    pub fn ours_without(features: &[&str], args: &[&str]) -> Daemon {
        Self::start_env(&lxcfs_bin(), args, None, &without_env(features))
    }

    /// Start Debian's lxcfs 5.0.3.
    pub fn anchor(args: &[&str]) -> Daemon {
        Self::start(Path::new("/usr/bin/lxcfs"), args)
    }

    /// Start `bin` with `args` on a fresh mount point and wait for the mount.
    pub fn start(bin: &Path, args: &[&str]) -> Daemon {
        Self::start_env(bin, args, None, &[])
    }

    /// [`Daemon::start`] as on a kernel without `features` (see [`Daemon::ours_without`]).
    pub fn start_without(bin: &Path, features: &[&str], args: &[&str]) -> Daemon {
        Self::start_env(bin, args, None, &without_env(features))
    }

    /// Start our daemon on a fixed mount point (stacked on whatever is mounted there).
    pub fn ours_at(mnt: &Path, args: &[&str]) -> Daemon {
        Self::start_env(&lxcfs_bin(), args, Some(mnt), &[])
    }

    /// [`Daemon::ours_at`] as on a kernel without `features` (see [`Daemon::ours_without`]).
    pub fn ours_at_without(mnt: &Path, features: &[&str], args: &[&str]) -> Daemon {
        Self::start_env(&lxcfs_bin(), args, Some(mnt), &without_env(features))
    }

    fn start_env(bin: &Path, args: &[&str], at: Option<&Path>, env: &[(String, String)]) -> Daemon {
        require_root();
        let over_ring = std::env::var_os(IO_URING_ENV).is_some()
            && Path::new(URING_KNOB).exists()
            && bin != Path::new("/usr/bin/lxcfs")
            && !args
                .iter()
                .any(|a| *a == "--supervise" || a.starts_with("--io-uring"));
        let mut args: Vec<&str> = args.to_vec();
        let _knob = if over_ring {
            args.push("--io-uring=on");
            UringKnob::set(true)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("e2e-lxcfs-")
            .tempdir()
            .expect("temp dir");
        let mnt = match at {
            Some(p) => p.to_path_buf(),
            None => dir.path().join("mnt"),
        };
        std::fs::create_dir_all(&mnt).expect("mkdir mnt");
        let below = mount_count(&mnt);
        let log = dir.path().join("log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(&args)
            .arg("-p")
            .arg(dir.path().join("pid"))
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut d = Daemon {
            child: Some(child),
            dir,
            mnt,
            log,
            below,
        };
        let t = Instant::now();
        while !(mount_count(&d.mnt) > below && d.mnt.join("proc/meminfo").exists()) {
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "{} exited ({st}) before mounting:\n{}",
                    bin.display(),
                    d.log_text()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no mount after 20 s:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if over_ring {
            assert!(d.over_io_uring(), "not over io_uring:\n{}", d.log_text());
        }
        d
    }

    /// Our daemon over io_uring (`--io-uring=on`, the knob `Y` while it starts); `None` on a
    /// kernel without FUSE over io_uring.
    pub fn ours_over_io_uring(bin: &Path, features: &[&str], args: &[&str]) -> Option<Daemon> {
        let _knob = UringKnob::set(true)?;
        let mut args = args.to_vec();
        args.push("--io-uring=on");
        let d = Self::start_env(bin, &args, None, &without_env(features));
        assert!(d.over_io_uring(), "not over io_uring:\n{}", d.log_text());
        Some(d)
    }

    /// Did the daemon (its last generation) start serving over io_uring?
    pub fn over_io_uring(&self) -> bool {
        let t = Instant::now();
        // The rings start right after FUSE_INIT is answered, a moment after the mount.
        while t.elapsed() < Duration::from_secs(2) {
            if self.log_text().contains("serving over io_uring") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// A path below the mount point.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The pidfile.
    pub fn pidfile(&self) -> PathBuf {
        self.dir.path().join("pid")
    }

    /// What the daemon logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the daemon still runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Wait (up to 20 s) for the daemon to exit by itself, e.g. after a signal the test sent;
    /// returns the exit status (`None` if it did not exit: it is then killed).
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// SIGKILL and reap at once, as a supervisor sees a crash.
    pub fn kill_and_reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A child we spawned, not yet reaped.
            signal(c.id(), Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // A child we spawned, not yet reaped.
        signal(c.id(), Signal::SIGTERM);
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if mount_count(&self.mnt) > self.below {
            // Lazily: a mount we made.
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The v1 controllers the tests use.
pub const CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "cpuset", "blkio"];

/// The cgroup of this process in a v1 hierarchy.
fn own_cgroup(controller: &str) -> String {
    cgroups::ProcCgroups::read(Path::new("/proc"), std::process::id())
        .expect("read /proc/self/cgroup")
        .v1_path(controller)
        .unwrap_or_else(|| panic!("no {controller} line in /proc/self/cgroup"))
        .to_string()
}

/// A cgroup created below the test's own cgroup in every [`CONTROLLERS`] hierarchy.
pub struct TestCgroup {
    /// Directory per controller.
    pub dirs: Vec<(String, PathBuf)>,
    pids: Vec<u32>,
}

impl TestCgroup {
    /// A new cgroup named after `name`, below the test's own cgroups.
    pub fn new(name: &str) -> TestCgroup {
        require_root();
        let leaf = unique(&format!("e2e-{name}"));
        let mut cg = TestCgroup {
            dirs: Vec::new(),
            pids: Vec::new(),
        };
        for c in CONTROLLERS {
            let parent = PathBuf::from(format!("/sys/fs/cgroup/{c}{}", own_cgroup(c)));
            cg.make(c, &parent, &leaf);
        }
        cg
    }

    /// A child cgroup of this one.
    pub fn child(&self, name: &str) -> TestCgroup {
        let leaf = unique(&format!("e2e-{name}"));
        let mut cg = TestCgroup {
            dirs: Vec::new(),
            pids: Vec::new(),
        };
        for (c, d) in &self.dirs {
            cg.make(c, d, &leaf);
        }
        cg
    }

    fn make(&mut self, controller: &str, parent: &Path, leaf: &str) {
        let dir = parent.join(leaf);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        self.dirs.push((controller.to_string(), dir.clone()));
        if controller == "cpuset" {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(parent.join(f)).expect("read parent cpuset");
                std::fs::write(dir.join(f), v.trim()).expect("copy cpuset");
            }
        }
    }

    /// The directory in one controller.
    pub fn dir(&self, controller: &str) -> &Path {
        &self
            .dirs
            .iter()
            .find(|(c, _)| c == controller)
            .expect("controller")
            .1
    }

    /// Write a control file.
    pub fn set(&self, controller: &str, file: &str, value: &str) {
        let p = self.dir(controller).join(file);
        std::fs::write(&p, value)
            .unwrap_or_else(|e| panic!("write {value} to {}: {e}", p.display()));
    }

    /// The `cgroup.procs` files, for a shell to join.
    fn procs_files(&self) -> String {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs").display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Remember a pid to kill in `Drop`.
    pub fn adopt(&mut self, pid: u32) {
        self.pids.push(pid);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for p in &self.pids {
            // A process this test started.
            signal(*p, Signal::SIGKILL);
        }
        for (_, d) in &self.dirs {
            for _ in 0..200 {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(25)),
                }
            }
        }
    }
}

fn shell_in(cg: &TestCgroup, new_pidns: bool, script: &str) -> Command {
    let join = format!(
        "for f in {}; do echo $$ > $f || exit 97; done; ",
        cg.procs_files()
    );
    // --kill-child: when the test kills `unshare` (the pid it knows, see
    // [`TestCgroup::adopt`]), the namespace's init dies with it, and so does everything else
    // in the namespace — otherwise a failing test leaves its container running and its
    // cgroups busy.
    let body = if new_pidns {
        format!(
            "{join}exec unshare --fork --pid --kill-child --mount-proc sh -c '{}'",
            script.replace('\'', "'\\''")
        )
    } else {
        format!("{join}{script}")
    };
    let mut c = Command::new("sh");
    c.arg("-c").arg(body);
    c
}

/// Run `script` with `sh` as PID 1 of a new pid namespace (with its own /proc) inside `cg`.
pub fn in_container(cg: &TestCgroup, script: &str) -> Output {
    shell_in(cg, true, script)
        .output()
        .expect("run container shell")
}

/// Start `script` with `sh` as PID 1 of a new pid namespace inside `cg`, without waiting;
/// its stdout is piped.
pub fn spawn_in_container(cg: &TestCgroup, script: &str) -> std::process::Child {
    shell_in(cg, true, script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start container shell")
}

/// Run `script` inside `cg` but in the host pid namespace.
pub fn in_cgroup(cg: &TestCgroup, script: &str) -> Output {
    shell_in(cg, false, script).output().expect("run shell")
}

/// Stdout of a successful run, or a panic with everything that was printed.
pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The children of `pid` (its main thread's), in the order the kernel lists them.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A cgroup below the test's own (see [`TestCgroup::new`]) limited to `mib` MiB of memory.
pub fn limited(name: &str, mib: u64) -> TestCgroup {
    let cg = TestCgroup::new(name);
    cg.set("memory", "memory.limit_in_bytes", &(mib << 20).to_string());
    cg
}

/// MemTotal (kB) as a new container in `cg` sees it through `d`'s mount; the read fails
/// after 10 s rather than hang on a mount nobody serves.
pub fn container_memtotal(d: &Daemon, cg: &TestCgroup) -> u64 {
    let out = stdout(&in_container(
        cg,
        &format!("timeout 10 cat {}/proc/meminfo", d.path().display()),
    ));
    meminfo_kb(&out, "MemTotal")
}

/// After `what`, the daemon still does its job — not just runs: a container started now
/// sees its own memory limit through the mount, within 10 s.
pub fn assert_serves_containers(d: &mut Daemon, what: &str) {
    assert!(
        d.alive(),
        "after {what}, the daemon died:\n{}",
        d.log_text()
    );
    let cg = limited("serves", 88);
    assert_eq!(
        container_memtotal(d, &cg),
        88 * 1024,
        "after {what}, a container does not see its own limit:\n{}",
        d.log_text()
    );
}

/// A shell loop doing a fixed amount of work: about `ms` ms of CPU (1 ms per 700 rounds of
/// `dash` here), however busy the CPUs are — a loop that runs for a wall-clock time gets
/// little CPU when other tests run beside it.
pub fn burn_cpu(ms: u32) -> String {
    format!(
        "i=0; while [ $i -lt {} ]; do i=$((i+1)); done; ",
        u64::from(ms) * 700
    )
}

/// The kB value of a `/proc/meminfo` line.
pub fn meminfo_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.split_ascii_whitespace().next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
}
