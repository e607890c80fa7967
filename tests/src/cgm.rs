//! Harness for the cgmanager tests: the daemon on a temp socket ([`CgmDaemon`]), a private
//! `dbus-daemon` with the shipped policy ([`PrivateBus`]), the `cgm` client run as root or as
//! a test user ([`CgmDaemon::cgm`]), test users ([`test_user`]), and a scratch cgroup below
//! the test's own in every hierarchy, removed recursively afterwards ([`Scratch`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::{require_root, unique};

fn target_bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/debug")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Our binaries in a world-readable directory, so test users can run `cgm` wherever the
/// checkout lives. One directory per build (named after the binaries' inodes and mtimes),
/// shared by every test process of a run, holding hard links (a copy only across
/// filesystems): a copy per test process used to leave ~230 MB in /tmp for every test.
/// Directories of earlier builds are removed after an hour.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        const NAMES: [&str; 3] = ["cgm", "cgmanager", "lxr"];
        let key = NAMES
            .iter()
            .map(|b| {
                let m = std::fs::metadata(target_bin(b)).unwrap();
                format!(
                    "{:x}.{:x}",
                    std::os::unix::fs::MetadataExt::ino(&m),
                    std::os::unix::fs::MetadataExt::mtime(&m)
                )
            })
            .collect::<Vec<_>>()
            .join("-");
        let tmp = std::env::temp_dir();
        let d = tmp.join(format!("lxr-e2e-bin-{key}"));
        if !d.is_dir() {
            // Made under a private name and renamed: concurrent test processes never see a
            // half-filled directory (the loser of the race just drops its own).
            let part = tmp.join(format!("lxr-e2e-bin-part-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&part);
            std::fs::create_dir_all(&part).unwrap();
            std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).unwrap();
            for b in NAMES {
                let to = part.join(b);
                if std::fs::hard_link(target_bin(b), &to).is_err() {
                    std::fs::copy(target_bin(b), &to).unwrap();
                }
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            if std::fs::rename(&part, &d).is_err() {
                let _ = std::fs::remove_dir_all(&part);
            }
        }
        remove_stale_bin_dirs(&tmp, &d);
        d
    });
    dir.join(name)
}

/// Remove `lxr-e2e-bin-*` directories of other builds not touched for an hour.
fn remove_stale_bin_dirs(tmp: &Path, keep: &Path) {
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if p != keep && old && e.file_name().to_string_lossy().starts_with("lxr-e2e-bin-") {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// The uid and gid of a test user, creating the users (scripts/test-users.sh) if needed.
pub fn test_user(name: &str) -> (u32, u32) {
    let lookup = || {
        let o = Command::new("id").arg("-u").arg(name).output().unwrap();
        let g = Command::new("id").arg("-g").arg(name).output().unwrap();
        (o.status.success() && g.status.success()).then(|| {
            (
                String::from_utf8_lossy(&o.stdout).trim().parse().unwrap(),
                String::from_utf8_lossy(&g.stdout).trim().parse().unwrap(),
            )
        })
    };
    if let Some(ids) = lookup() {
        return ids;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-users.sh");
    let st = Command::new("bash").arg(script).status().unwrap();
    assert!(st.success(), "scripts/test-users.sh failed");
    lookup().unwrap_or_else(|| panic!("test user {name} missing after test-users.sh"))
}

/// The cgroup of this process in the hierarchy mounted at `mount` (`/` if not listed).
pub fn own_cgroup_in(mount: &Path) -> String {
    let name = mount.file_name().unwrap().to_string_lossy().to_string();
    let cgs = cgroups::ProcCgroups::read(Path::new("/proc"), std::process::id()).unwrap();
    let hit = |l: &&cgroups::ProcCgroupLine| {
        if name == "unified" {
            l.id == 0
        } else {
            l.controllers
                .iter()
                .any(|c| *c == name || *c == format!("name={name}"))
                || l.controllers.join(",") == name
        }
    };
    cgs.lines
        .iter()
        .find(hit)
        .map_or_else(|| "/".into(), |l| l.path.clone())
}

/// The hierarchies the tests use: the v1 memory, pids, freezer, cpuset and cpu controllers, and
/// the cgroup2 hierarchy.
pub const HIERARCHIES: [&str; 6] = ["memory", "pids", "freezer", "cpuset", "cpu", "unified"];

/// A scratch cgroup directory below the test's own cgroup in each of [`HIERARCHIES`],
/// removed with everything below it (deepest first) when dropped; processes the test
/// adopted are killed first.
pub struct Scratch {
    /// Leaf name (same in every hierarchy).
    pub name: String,
    /// The test's own cgroup per hierarchy (relative paths the daemon resolves start there).
    pub own: Vec<(String, String)>,
    pids: Vec<u32>,
}

impl Scratch {
    /// Create `e2e-<what>-<unique>` in each of [`HIERARCHIES`].
    pub fn new(what: &str) -> Scratch {
        Scratch::in_hierarchies(what, HIERARCHIES.iter().map(|h| h.to_string()).collect())
    }

    /// Create it in every hierarchy mounted under `/sys/fs/cgroup` (v1 ones by their mount
    /// directory, such as `cpu,cpuacct` and `systemd`, and `unified`): for policies that
    /// delegate `all`.
    pub fn everywhere(what: &str) -> Scratch {
        let mut hs: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        hs.sort();
        Scratch::in_hierarchies(what, hs)
    }

    fn in_hierarchies(what: &str, hierarchies: Vec<String>) -> Scratch {
        require_root();
        let name = unique(&format!("e2e-{what}"));
        let mut own = Vec::new();
        for h in &hierarchies {
            let mount = PathBuf::from(format!("/sys/fs/cgroup/{h}"));
            let base = own_cgroup_in(&mount);
            let parent = mount.join(base.trim_start_matches('/'));
            std::fs::create_dir(parent.join(&name))
                .unwrap_or_else(|e| panic!("mkdir scratch in {h}: {e}"));
            if h.as_str() == "cpuset" {
                // A new v1 cpuset has no CPUs or memory nodes until given some.
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(parent.join(f)).unwrap();
                    std::fs::write(parent.join(&name).join(f), v.trim()).unwrap();
                }
            }
            own.push((h.to_string(), base));
        }
        Scratch {
            name,
            own,
            pids: Vec::new(),
        }
    }

    /// Absolute directory of `rel` (below the scratch cgroup) in a hierarchy.
    pub fn dir(&self, hierarchy: &str, rel: &str) -> PathBuf {
        let base = &self.own.iter().find(|(h, _)| h == hierarchy).unwrap().1;
        let mut p = PathBuf::from(format!("/sys/fs/cgroup/{hierarchy}"))
            .join(base.trim_start_matches('/'))
            .join(&self.name);
        if !rel.is_empty() {
            p = p.join(rel);
        }
        p
    }

    /// The path of `rel` as the daemon takes it: relative to the test's own cgroup.
    pub fn rel(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{rel}", self.name)
        }
    }

    /// The absolute cgroup path of `rel` in a hierarchy (as `/proc/<pid>/cgroup` shows it).
    pub fn abs(&self, hierarchy: &str, rel: &str) -> String {
        let base = &self.own.iter().find(|(h, _)| h == hierarchy).unwrap().1;
        format!("{}/{}", base.trim_end_matches('/'), self.rel(rel))
    }

    /// Kill this process when the scratch cgroup is removed.
    pub fn adopt(&mut self, pid: u32) {
        self.pids.push(pid);
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for p in &self.pids {
            // A process this test started.
            crate::signal(*p, Signal::SIGKILL);
        }
        for (h, _) in &self.own {
            remove_tree(&self.dir(h, ""));
        }
    }
}

/// The daemon's switch (for tests) that ignores `SO_PEERPIDFD` and pins peers by pid, as it
/// must on Linux < 6.5.
pub const NO_PEER_PIDFD: &str = "--test-no-peer-pidfd";

/// Set `LXR_E2E_CGM_NO_PEERPIDFD=1` to start every daemon of a run with [`NO_PEER_PIDFD`]:
/// the whole suite on the identity path of kernels without `SO_PEERPIDFD`
/// (`scripts/test.sh` runs the cgm suites so a second time).
pub fn pinned_by_pid() -> bool {
    std::env::var("LXR_E2E_CGM_NO_PEERPIDFD").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A cgmanager daemon on a temp socket, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct CgmDaemon {
    child: Child,
    dir: tempfile::TempDir,
    /// The socket path.
    pub socket: PathBuf,
}

impl CgmDaemon {
    /// Start with a delegation policy (TOML text, may be empty) and extra arguments.
    pub fn start(policy: &str, extra: &[&str]) -> CgmDaemon {
        CgmDaemon::start_under(&[], policy, extra)
    }

    /// Like [`CgmDaemon::start`], with the daemon's command line appended to `wrapper` (a
    /// command that sets something up and then execs its arguments, so that the pid stays the
    /// daemon's), e.g. `unshare --mount … sh -c '…; exec "$@"' sh`.
    pub fn start_under(wrapper: &[&str], policy: &str, extra: &[&str]) -> CgmDaemon {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("sock");
        let policy_file = dir.path().join("delegation.conf");
        std::fs::write(&policy_file, policy).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(bin("cgmanager"));
                c
            }
            None => Command::new(bin("cgmanager")),
        };
        let child = cmd
            .arg("--socket")
            .arg(&socket)
            .arg("--policy")
            .arg(&policy_file)
            .args(if extra.iter().any(|a| a.starts_with("--bus")) {
                &[][..]
            } else {
                &["--no-bus"][..]
            })
            .args(extra)
            .args(if pinned_by_pid() && !extra.contains(&NO_PEER_PIDFD) {
                &[NO_PEER_PIDFD][..]
            } else {
                &[][..]
            })
            .arg("--debug")
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .expect("start cgmanager");
        let mut d = CgmDaemon { child, dir, socket };
        let t0 = Instant::now();
        while !d.socket.exists() {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("cgmanager exited ({st}): {}", d.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "cgmanager did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Open file descriptors of the daemon.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// True while the daemon runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `cgm --socket <ours> args…`, as root or as `user` (through runuser).
    pub fn cgm(&self, user: Option<&str>, args: &[&str]) -> Output {
        let mut c = match user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(u).arg("--").arg(bin("cgm"));
                c
            }
            None => Command::new(bin("cgm")),
        };
        c.arg("--socket").arg(&self.socket).args(args);
        c.output().expect("run cgm")
    }

    /// `cgm --socket <ours> args…` as `user`, run from inside the cgroup directory `dir`.
    pub fn cgm_in(&self, user: &str, dir: &Path, args: &[&str]) -> Output {
        let cgm = bin("cgm");
        let sock = self.socket.display().to_string();
        let mut argv = vec![cgm.to_str().unwrap_or("cgm"), "--socket", sock.as_str()];
        argv.extend_from_slice(args);
        in_cgroups_as(Some(user), &[dir.to_path_buf()], &argv)
            .output()
            .expect("run cgm")
    }

    /// Stop with SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // Our own child, not yet reaped.
        crate::signal(self.child.id(), Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for CgmDaemon {
    fn drop(&mut self) {
        if self.alive() {
            self.stop();
        }
    }
}

/// What `cgm` printed and whether it succeeded; on failure `kind` is the D-Bus error name.
#[derive(Debug)]
pub struct CgmResult {
    /// Exit success.
    pub ok: bool,
    /// stdout, trimmed.
    pub out: String,
    /// stderr, trimmed.
    pub err: String,
}

impl CgmResult {
    /// From a cgm run.
    pub fn of(o: &Output) -> CgmResult {
        CgmResult {
            ok: o.status.success(),
            out: String::from_utf8_lossy(&o.stdout).trim().to_string(),
            err: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        }
    }

    /// The error name in `cgm: <Name>: message`, if it failed.
    pub fn kind(&self) -> Option<&str> {
        self.err
            .strip_prefix("cgm: ")
            .and_then(|r| r.split(':').next())
    }
}

/// A private `dbus-daemon` configured like a system bus, with the shipped cgmanager policy
/// included. Stopped when dropped.
pub struct PrivateBus {
    child: Child,
    _dir: tempfile::TempDir,
    /// `unix:path=…`
    pub address: String,
}

impl PrivateBus {
    /// Start it.
    pub fn start() -> PrivateBus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sock = dir.path().join("bus");
        let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../dbus/org.linuxcontainers.cgmanager.conf")
            .canonicalize()
            .unwrap();
        let conf = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>{}</include>
</busconfig>
"#,
            sock.display(),
            policy.display()
        );
        let conf_path = dir.path().join("bus.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let t0 = Instant::now();
        // Until it accepts: the socket file exists from its bind, before its listen.
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "dbus-daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        PrivateBus {
            child,
            _dir: dir,
            address: format!("unix:path={}", sock.display()),
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command that first joins the cgroup directories `dirs`, then runs `argv` as `user` (or
/// root) with `setpriv`, which execs in place: the pid of the returned command's child is the
/// pid of `argv`.
pub fn in_cgroups_as(user: Option<&str>, dirs: &[PathBuf], argv: &[&str]) -> Command {
    let mut c = Command::new("sh");
    let cgs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    c.arg("-c")
        .arg("for d in $CGS; do echo $$ > \"$d/cgroup.procs\" || exit 97; done; exec \"$@\"")
        .arg("sh")
        .env("CGS", cgs.join(" "));
    if let Some(u) = user {
        let (uid, gid) = test_user(u);
        c.arg("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--init-groups")
            .arg("--");
    }
    c.args(argv);
    c
}

/// A root process with a second thread (whose id is not a process id) inside `dirs`; the
/// caller kills it (or adopts its pid for cleanup).
pub fn threaded_process(dirs: &[PathBuf]) -> std::process::Child {
    in_cgroups_as(
        None,
        dirs,
        &[
            "/usr/bin/python3",
            "-c",
            "import threading, time\nt = threading.Thread(target=time.sleep, args=(600,))\nt.start()\nt.join()",
        ],
    )
    .spawn()
    .unwrap()
}

/// Start `sleep 1000` as `user` inside `dirs`; the caller adopts the pid for cleanup.
pub fn sleeper(user: Option<&str>, dirs: &[PathBuf]) -> u32 {
    let child = in_cgroups_as(user, dirs, &["sleep", "1000"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sleeper");
    let pid = child.id();
    // Wait until the exec happened (the comm changes to sleep).
    let t0 = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != "sleep"
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "sleeper did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::mem::forget(child);
    pid
}

/// The cgroup path of `pid` in the hierarchy mounted at `/sys/fs/cgroup/<hierarchy>`.
pub fn cgroup_of(pid: u32, hierarchy: &str) -> String {
    let Ok(cgs) = cgroups::ProcCgroups::read(Path::new("/proc"), pid) else {
        return String::new();
    };
    let path = if hierarchy == "unified" {
        cgs.unified_path()
    } else {
        cgs.v1_path(hierarchy)
    };
    path.unwrap_or_default().to_string()
}

/// Owner uid of a path.
pub fn owner(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .uid()
}

/// Mark a cgroup directory this test made as delegated, as systemd marks the cgroup of a unit
/// with `Delegate=yes` (`trusted.delegate` = `1`).
pub fn mark_delegated(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: the path and the name are NUL-terminated, and the value is valid for 1 byte.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"trusted.delegate".as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr trusted.delegate on {}: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
}
