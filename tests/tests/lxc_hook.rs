//! An LXC 5.0 container (Debian's `lxc`, busybox template, started by root) gets our lxcfs
//! through LXC's own, unmodified lxcfs mount hook (`/usr/share/lxcfs/lxc.mount.hook`, from
//! `common.conf.d/00-lxcfs.conf`) with our daemon at `/var/lib/lxcfs`, and `free` inside
//! reports the container's memory limit.
//!
//! `free` is procps's, bind-mounted into the container: busybox's `free` asks `sysinfo(2)`,
//! which no /proc virtualisation can reach (lxcfs issue #623).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::{meminfo_kb, unique, Daemon};

struct Container {
    lxcpath: tempfile::TempDir,
    name: String,
}

impl Container {
    fn lxc(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .arg("-P")
            .arg(self.lxcpath.path())
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.lxcpath.path().join("lxc.log")).unwrap_or_default()
    }

    fn attach(&self, cmd: &[&str]) -> String {
        let mut args = vec!["--"];
        args.extend_from_slice(cmd);
        let o = self.lxc("lxc-attach", &args);
        assert!(
            o.status.success(),
            "lxc-attach {cmd:?}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.lxc("lxc-stop", &["-k"]);
        let _ = self.lxc("lxc-destroy", &[]);
        // LXC parks its exiting monitor in an `lxc.pivot` cgroup next to the container's
        // (below our own cgroup, thanks to lxc.cgroup.relative) and leaves it behind; it is
        // empty once the monitor is gone.
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        for line in own.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let hier = match ctrls {
                "" => "unified".to_string(),
                c => c.strip_prefix("name=").unwrap_or(c).to_string(),
            };
            let pivot = Path::new("/sys/fs/cgroup")
                .join(hier)
                .join(path.trim_start_matches('/'))
                .join("lxc.pivot");
            for _ in 0..40 {
                if std::fs::remove_dir(&pivot).is_ok() || !pivot.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

fn config_path(c: &Container) -> PathBuf {
    c.lxcpath.path().join(&c.name).join("config")
}

#[test]
fn lxc_container_sees_its_memory_limit_through_the_stock_hook() {
    if !Path::new("/usr/share/lxcfs/lxc.mount.hook").exists()
        || !Path::new("/usr/bin/lxc-start").exists()
    {
        panic!("LXC and LXC's lxcfs hook are required: run scripts/setup.sh");
    }
    let _daemon = Daemon::ours_at(Path::new("/var/lib/lxcfs"), &[]);
    let c = Container {
        lxcpath: tempfile::Builder::new()
            .prefix("e2e-lxc-")
            .tempdir()
            .unwrap(),
        name: unique("e2e-lxc"),
    };
    let o = c.lxc("lxc-create", &["-t", "busybox"]);
    assert!(
        o.status.success(),
        "lxc-create: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The template's config, minus networking (no lxcbr0 here) and AppArmor, plus LXC's stock
    // lxcfs hook, a memory limit, and cgroups below the test's own (lxc.cgroup.relative).
    let cfg = std::fs::read_to_string(config_path(&c)).unwrap();
    let mut cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("lxc.net.") && !l.starts_with("lxc.apparmor."))
        .map(|l| format!("{l}\n"))
        .collect();
    cfg.push_str(
        "lxc.net.0.type = empty\n\
         lxc.apparmor.profile = unconfined\n\
         lxc.include = /usr/share/lxc/config/common.conf.d/00-lxcfs.conf\n\
         lxc.cgroup.memory.limit_in_bytes = 256M\n\
         lxc.cgroup.relative = 1\n\
         lxc.mount.entry = /usr/bin/free usr/bin/free none ro,bind,create=file 0 0\n",
    );
    std::fs::write(config_path(&c), cfg).unwrap();

    let log = c.lxcpath.path().join("lxc.log");
    let o = c.lxc(
        "lxc-start",
        &["-d", "-l", "DEBUG", "-o", &log.display().to_string()],
    );
    assert!(
        o.status.success(),
        "lxc-start: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        c.log()
    );
    let o = c.lxc("lxc-wait", &["-s", "RUNNING", "-t", "30"]);
    assert!(o.status.success(), "container not running:\n{}", c.log());

    let mounts = c.attach(&["cat", "/proc/self/mountinfo"]);
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /proc/meminfo ") && l.contains("fuse.lxcfs")),
        "the hook bind-mounted our meminfo:\n{mounts}"
    );
    let meminfo = c.attach(&["cat", "/proc/meminfo"]);
    assert_eq!(meminfo_kb(&meminfo, "MemTotal"), 262144, "{meminfo}");

    let free = c.attach(&["/usr/bin/free", "-k"]);
    let mem: Vec<&str> = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap_or_else(|| panic!("{free}"))
        .split_ascii_whitespace()
        .collect();
    assert_eq!(
        mem[1], "262144",
        "free inside reports the 256 MiB limit:\n{free}"
    );

    // uptime is the container's age: the host's uptime minus its init's start time (field
    // 22 of /proc/<pid>/stat, in 1/100 s since boot), not the host's uptime.
    let uptime = c.attach(&["cat", "/proc/uptime"]);
    let first = |t: &str| -> f64 {
        t.split_ascii_whitespace()
            .next()
            .unwrap_or_else(|| panic!("empty: {t:?}"))
            .parse()
            .unwrap()
    };
    let up = first(&uptime);
    let host_up = first(&std::fs::read_to_string("/proc/uptime").unwrap());
    let o = c.lxc("lxc-info", &["-p", "-H"]);
    let init: u32 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap();
    let start: f64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_ascii_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let age = host_up - start / 100.0;
    assert!(
        (up - age).abs() < 1.0 && host_up - up > 1.0,
        "uptime is the container's age ({age:.2} s), not the host's ({host_up} s): {uptime}"
    );

    // Reads through sendfile (busybox cat) work too: generated files advertise a size.
    let cpus = c.attach(&["grep", "-c", "^processor", "/proc/cpuinfo"]);
    assert!(cpus.trim().parse::<u32>().unwrap() >= 1);
}
