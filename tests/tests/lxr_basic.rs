//! lxr as an unprivileged test user, for real: a busybox system container in its own user,
//! mount, pid, uts, ipc, net and cgroup namespaces, its cgroup delegated by our cgmanager with
//! limits, `/proc` from our lxcfs; exec, stop (clean and forced), start, delete — and nothing
//! left behind on the host afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::cgm::{bin, cgroup_of, test_user, CgmDaemon, Scratch};

/// `lxr` as lxrtest1 with its data in `data`, cgmanager at `cgm`, lxcfs at `lxcfs`.
struct Lxr {
    data: PathBuf,
    cgm: String,
    lxcfs: Option<PathBuf>,
}

impl Lxr {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new("runuser");
        c.args(["-u", "lxrtest1", "--", "env"])
            .arg(format!("XDG_DATA_HOME={}", self.data.display()))
            .arg(format!("LXR_CGMANAGER={}", self.cgm))
            .arg(format!(
                "LXR_LXCFS={}",
                self.lxcfs
                    .as_deref()
                    .unwrap_or(Path::new("/nonexistent"))
                    .display()
            ))
            .arg(bin("lxr"))
            .args(args);
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "lxr {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn pid(&self, name: &str) -> Option<u32> {
        let out = self.ok(&["list", "--format", "json"]);
        let v: Vec<serde_json_lite::Row> = serde_json_lite::rows(&out);
        v.into_iter().find(|r| r.name == name).and_then(|r| r.pid)
    }
}

/// Force-deletes the named containers when dropped (also when a test fails), before the
/// cgroup guards run.
struct Cleanup<'a>(&'a Lxr, Vec<&'static str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.run(&["delete", "--force", n]);
        }
    }
}

/// Just enough JSON reading for `lxr list --format json` (the e2e crate has no serde).
mod serde_json_lite {
    pub struct Row {
        pub name: String,
        pub pid: Option<u32>,
    }

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

fn user_dir(uid: u32, gid: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(d.path(), Some(uid), Some(gid)).unwrap();
    d
}

fn no_processes_of(uid_start: u32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().all(|e| {
        let Ok(st) = std::fs::read_to_string(e.path().join("status")) else {
            return true;
        };
        !st.lines().any(|l| {
            l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid_start.to_string())
        })
    })
}

#[test]
fn launch_exec_stop_start_delete_as_a_user() {
    let (uid, gid) = test_user("lxrtest1");
    let s = Scratch::new("lxr");
    let policy = format!(
        "[[delegate]]\nusers = [\"lxrtest1\"]\ncontrollers = [\"memory\", \"pids\", \"cpuset\", \"cpu\", \"freezer\", \"unified\"]\npath = \"%D/{}/%u\"\n",
        s.name
    );
    let d = CgmDaemon::start(&policy, &[]);
    let home = user_dir(uid, gid);
    // Our lxcfs, on a mount point the container's root may traverse.
    let lx_dir = user_dir(0, 0);
    let mnt = lx_dir.path().join("lxcfs");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _lxcfs = e2e::Daemon::ours_at(&mnt, &[]);
    let lxr = Lxr {
        data: home.path().to_path_buf(),
        cgm: d.socket.display().to_string(),
        lxcfs: Some(mnt.clone()),
    };
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap();
    let start: u32 = subuid
        .lines()
        .find_map(|l| l.strip_prefix("lxrtest1:"))
        .and_then(|r| r.split(':').next())
        .and_then(|v| v.parse().ok())
        .unwrap();

    let _cleanup = Cleanup(&lxr, vec!["t1"]);
    lxr.ok(&[
        "launch",
        "busybox",
        "t1",
        "-c",
        "limits.memory=128MiB",
        "-c",
        "limits.processes=64",
        "-c",
        "limits.cpu=1",
    ]);
    let pid = lxr.pid("t1").expect("t1 runs");
    // On the host: init runs as the first subordinate uid, in the delegated cgroup, limited.
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        st.lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&start.to_string())),
        "{st}"
    );
    let cg = cgroup_of(pid, "memory");
    assert_eq!(cg, s.abs("memory", "lxrtest1/lxr/t1"));
    assert_eq!(
        std::fs::read_to_string(s.dir("memory", "lxrtest1/lxr/t1/memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        std::fs::read_to_string(s.dir("pids", "lxrtest1/lxr/t1/pids.max"))
            .unwrap()
            .trim(),
        "64"
    );
    // Inside: PID 1 is init, the hostname is the name, the user is root, /proc tells the truth.
    assert_eq!(lxr.ok(&["exec", "t1", "--", "cat", "/proc/1/comm"]), "init");
    assert_eq!(lxr.ok(&["exec", "t1", "--", "hostname"]), "t1");
    assert_eq!(lxr.ok(&["exec", "t1", "--", "id", "-u"]), "0");
    // (busybox's free asks sysinfo(2), which no lxcfs can answer; /proc/meminfo is what
    // procps's free and every runtime read.)
    let meminfo = lxr.ok(&["exec", "t1", "--", "cat", "/proc/meminfo"]);
    assert_eq!(
        e2e::meminfo_kb(&meminfo, "MemTotal"),
        128 * 1024,
        "{meminfo}"
    );
    assert_eq!(lxr.ok(&["exec", "t1", "--", "nproc"]), "1");
    let up: f64 = lxr
        .ok(&["exec", "t1", "--", "cat", "/proc/uptime"])
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(up < 60.0, "uptime {up}");
    assert!(lxr
        .ok(&["exec", "t1", "--", "cat", "/proc/net/dev"])
        .contains("lo:"));
    // Exit codes pass through.
    let o = lxr.run(&["exec", "t1", "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    // Forced stop: gone, cgroup removed.
    lxr.ok(&["stop", "--force", "t1"]);
    assert!(lxr.pid("t1").is_none());
    assert!(!s.dir("memory", "lxrtest1/lxr/t1").exists());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // Start again; a clean stop (busybox halts on SIGUSR1).
    lxr.ok(&["start", "t1"]);
    assert!(lxr.pid("t1").is_some());
    lxr.ok(&["stop", "t1", "--timeout", "20"]);
    assert!(lxr.pid("t1").is_none());
    // Delete: nothing left.
    lxr.ok(&["delete", "t1"]);
    assert!(!home.path().join("lxr/containers/t1").exists());
    assert!(no_processes_of(start));
    assert!(!s.dir("memory", "lxrtest1/lxr/t1").exists());
}

#[test]
fn without_cgmanager_it_runs_unconfined_and_refuses_limits() {
    let (uid, gid) = test_user("lxrtest1");
    let home = user_dir(uid, gid);
    let lxr = Lxr {
        data: home.path().to_path_buf(),
        cgm: "/nonexistent/sock".into(),
        lxcfs: None,
    };
    let _cleanup = Cleanup(&lxr, vec!["u1", "u2"]);
    let o = lxr.run(&["launch", "busybox", "u1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unconfined"));
    assert_eq!(lxr.ok(&["exec", "u1", "--", "hostname"]), "u1");
    lxr.ok(&["delete", "--force", "u1"]);
    let o = lxr.run(&["launch", "busybox", "u2", "-c", "limits.memory=64MiB"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cgmanager"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    lxr.ok(&["delete", "u2"]);
    // Bad names are refused with advice.
    let o = lxr.run(&["launch", "busybox", "1bad"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid container name"));
}
