//! Harness for the lxr tests: `lxr` run as the test user `lxrtest1` with its own data
//! directory and a given cgmanager and lxcfs ([`Lxr`]), containers force-deleted when a test
//! ends ([`Cleanup`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cgm::bin;

/// `lxr` as lxrtest1 with its data in `data`, cgmanager at `cgm`, lxcfs at `lxcfs`.
pub struct Lxr {
    /// `HOME` of the user.
    pub home: PathBuf,
    /// `XDG_DATA_HOME` of the user.
    pub data: PathBuf,
    /// `LXR_CGMANAGER`.
    pub cgm: String,
    /// `LXR_LXCFS`.
    pub lxcfs: Option<PathBuf>,
}

impl Lxr {
    /// The lxr command as lxrtest1 (through `setpriv`, which execs in place: the child's pid
    /// is lxr's).
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_env(&[], args)
    }

    /// The lxr command with extra `KEY=VALUE` environment.
    pub fn command_env(&self, env: &[&str], args: &[&str]) -> Command {
        self.command_through(env, &[], args)
    }

    /// The lxr command run by `wrapper` (a program and its arguments, which gets lxr's path
    /// and `args` after them), as lxrtest1.
    pub fn command_through(&self, env: &[&str], wrapper: &[&str], args: &[&str]) -> Command {
        let (uid, gid) = crate::cgm::test_user("lxrtest1");
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--init-groups", "env"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("XDG_DATA_HOME={}", self.data.display()))
            .arg(format!("LXR_CGMANAGER={}", self.cgm))
            .arg(format!(
                "LXR_LXCFS={}",
                self.lxcfs
                    .as_deref()
                    .unwrap_or(Path::new("/nonexistent"))
                    .display()
            ))
            .args(env)
            .args(wrapper)
            .arg(bin("lxr"))
            .args(args);
        c
    }

    /// Run lxr.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Run lxr with `input` on its standard input.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut c = self
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut i) = c.stdin.take() {
            let _ = i.write_all(input);
        }
        c.wait_with_output().unwrap()
    }

    /// Run lxr; it must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "lxr {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `lxr exec NAME -- sh -c SCRIPT`, which must succeed; its stdout.
    pub fn sh(&self, name: &str, script: &str) -> String {
        self.ok(&["exec", name, "--", "sh", "-c", script])
    }

    /// Import the Debian 12 image ([`debian_image`]) under `alias`; the import's output.
    pub fn import_debian(&self, alias: &str) -> String {
        let (meta, rootfs) = debian_image();
        self.ok(&[
            "image",
            "import",
            meta.to_str().unwrap(),
            rootfs.to_str().unwrap(),
            "--alias",
            alias,
        ])
    }

    /// Whether the container `name` exists (its directory in the data directory).
    pub fn exists(&self, name: &str) -> bool {
        self.data.join("lxr/containers").join(name).exists()
    }

    /// `systemctl is-system-running --wait` inside `name`: systemd's verdict once its boot is
    /// over (`running`, `degraded`…).
    pub fn system_state(&self, name: &str) -> String {
        let o = self.run(&[
            "exec",
            "-T",
            name,
            "--",
            "systemctl",
            "is-system-running",
            "--wait",
        ]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The init pid of a running container.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let out = self.ok(&["list", "--format", "json"]);
        let v: Vec<serde_json_lite::Row> = serde_json_lite::rows(&out);
        v.into_iter().find(|r| r.name == name).and_then(|r| r.pid)
    }
}

/// Force-deletes the named containers when dropped (also when a test fails), before the
/// cgroup guards run.
pub struct Cleanup<'a>(pub &'a Lxr, pub Vec<&'static str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.run(&["delete", "--force", n]);
        }
    }
}

/// Just enough JSON reading for `lxr list --format json` (the e2e crate has no serde).
mod serde_json_lite {
    /// One row.
    pub struct Row {
        /// Name.
        pub name: String,
        /// Init pid.
        pub pid: Option<u32>,
    }

    /// Parse the rows.
    pub fn rows(text: &str) -> Vec<Row> {
        text.split("{\"")
            .skip(1)
            .filter_map(|obj| {
                let field = |k: &str| {
                    let i = obj.find(&format!("{k}\":"))? + k.len() + 2;
                    let rest = &obj[i..];
                    let end = rest.find([',', '}']).unwrap_or(rest.len());
                    Some(rest[..end].trim_matches('"').to_string())
                };
                let name = if obj.starts_with("name\":") {
                    field("name")
                } else {
                    field("\"name").or_else(|| field("name"))
                }?;
                Some(Row {
                    name,
                    pid: field("pid").and_then(|p| p.parse().ok()),
                })
            })
            .collect()
    }
}

/// A temp directory owned by `uid:gid`, mode 0755.
pub fn user_dir(uid: u32, gid: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(d.path(), Some(uid), Some(gid)).unwrap();
    d
}

/// What an lxr test with cgmanager needs: a scratch cgroup, our cgmanager delegating
/// `<scratch>/lxrtest1` in the hierarchies the tests use, and lxrtest1's data directory.
pub struct World {
    /// The scratch cgroup (removed last).
    pub scratch: crate::cgm::Scratch,
    /// The daemon.
    pub daemon: crate::cgm::CgmDaemon,
    /// lxrtest1's `XDG_DATA_HOME`.
    pub home: tempfile::TempDir,
}

impl World {
    /// Set it up.
    pub fn new(what: &str) -> World {
        World::with(
            crate::cgm::Scratch::new(what),
            "controllers = [\"memory\", \"pids\", \"cpuset\", \"cpu\", \"freezer\", \"unified\"]",
        )
    }

    /// A world delegating every hierarchy (`name=systemd` too) with the policy's default
    /// limits: what a systemd container needs, and a check that the defaults suffice.
    pub fn everywhere(what: &str) -> World {
        World::with(
            crate::cgm::Scratch::everywhere(what),
            "controllers = [\"all\"]",
        )
    }

    /// A world delegating only the cgroup2 hierarchy (on a hybrid host: a container's
    /// placement as on a pure v2 one, where `clone3(CLONE_INTO_CGROUP)` applies).
    pub fn v2_only(what: &str) -> World {
        World::with(
            crate::cgm::Scratch::new(what),
            "controllers = [\"unified\"]",
        )
    }

    fn with(scratch: crate::cgm::Scratch, controllers: &str) -> World {
        let (uid, gid) = crate::cgm::test_user("lxrtest1");
        let policy = format!(
            "[[delegate]]\nusers = [\"lxrtest1\"]\n{controllers}\npath = \"%D/{}/%u\"\n",
            scratch.name
        );
        let daemon = crate::cgm::CgmDaemon::start(&policy, &[]);
        let home = user_dir(uid, gid);
        World {
            scratch,
            daemon,
            home,
        }
    }

    /// lxr as lxrtest1 in this world, with lxcfs at `lxcfs` if given.
    pub fn lxr(&self, lxcfs: Option<PathBuf>) -> Lxr {
        Lxr {
            home: PathBuf::from("/home/lxrtest1"),
            data: self.home.path().to_path_buf(),
            cgm: self.daemon.socket.display().to_string(),
            lxcfs,
        }
    }
}

/// lxr as lxrtest1 with a fresh data directory and neither cgmanager nor lxcfs (containers
/// run unconfined). Keep the directory alive as long as the `Lxr`.
pub fn unconfined() -> (tempfile::TempDir, Lxr) {
    let (uid, gid) = crate::cgm::test_user("lxrtest1");
    let home = user_dir(uid, gid);
    let lxr = Lxr {
        home: PathBuf::from("/home/lxrtest1"),
        data: home.path().to_path_buf(),
        cgm: "/nonexistent/sock".into(),
        lxcfs: None,
    };
    (home, lxr)
}

/// The first subordinate uid of `user` (`/etc/subuid`).
pub fn subuid_base(user: &str) -> u32 {
    std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|r| r.split(':').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no /etc/subuid range for {user}"))
}

/// The Debian 12 split image (metadata tarball, squashfs rootfs) of `scripts/build-image.sh`,
/// built once per machine (cached, under flock).
pub fn debian_image() -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-image.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg("debian12")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "build-image.sh debian12: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = out.lines().map(PathBuf::from);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// The `metadata.yaml` of [`image_tree`].
pub const IMAGE_METADATA: &str = "\
architecture: x86_64
creation_date: 1700000000
properties:
  description: lxr test image
  os: busybox
templates:
  /etc/hostname:
    when:
    - create
    template: hostname.tpl
  /etc/hosts:
    when: [start]
    template: hosts.tpl
";

/// A fresh work directory (as [`user_dir`]`(0, 0)`) with the test image's tree ([`image_tree`])
/// in `tree/`: the directory and the tree's path.
pub fn image_work() -> (tempfile::TempDir, PathBuf) {
    let work = user_dir(0, 0);
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    image_tree(&tree);
    (work, tree)
}

/// An LXD image tree in `dir`: metadata.yaml (with a `create` template for /etc/hostname and a
/// `start` one for /etc/hosts), templates/, and a busybox rootfs owned by root with a
/// setuid binary, a hard link and a file owned by uid 1000.
pub fn image_tree(dir: &Path) {
    std::fs::write(dir.join("metadata.yaml"), IMAGE_METADATA).unwrap();
    std::fs::create_dir(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/hostname.tpl"), "{{ instance.name }}\n").unwrap();
    std::fs::write(
        dir.join("templates/hosts.tpl"),
        "127.0.1.1 {{ instance.name }}\n",
    )
    .unwrap();
    let root = dir.join("rootfs");
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "root",
        "home/user",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::hard_link(root.join("bin/busybox"), root.join("sbin/init")).unwrap();
    let list = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = root.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("/bin/busybox", link).unwrap();
        }
    }
    std::fs::copy("/bin/busybox", root.join("usr/bin/suidtest")).unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/suidtest"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::write(root.join("home/user/file"), "mine\n").unwrap();
    std::os::unix::fs::chown(root.join("home/user/file"), Some(1000), Some(1000)).unwrap();
    std::fs::write(
        root.join("etc/inittab"),
        "::sysinit:/bin/true\n::respawn:/bin/sleep 1000000\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/hostname"), "image\n").unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
}

/// Poll `f` until it holds; fail the test after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Run `cmd` with the host's `sh` (as the test process); it must succeed; its trimmed stdout.
pub fn sh(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The fingerprint a publish or an import printed (the last word of its output).
pub fn fingerprint(out: &str) -> String {
    let fp = out.split_whitespace().last().unwrap().to_string();
    assert_eq!(fp.len(), 64, "{out}");
    fp
}
