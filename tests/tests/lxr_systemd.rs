//! lxr boots a real distribution: the Debian 12 image `scripts/build-image.sh debian12` builds
//! (debootstrap minbase + systemd, cached per machine), launched by the test user `lxrtest1`
//! with every hierarchy (`name=systemd` and cgroup2 too) delegated by our cgmanager under the
//! policy's *default* limits and `/proc` from our lxcfs. systemd must reach `running` with no
//! failed unit, see the container's limits, stop cleanly on `lxr stop`, come back after
//! `reboot` inside and `lxr restart`, and give a login prompt on the console; an init that dies
//! while booting must fail the launch with its status and its last words.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::hostile::{metadata, Meta, Tar};
use e2e::lxr::{subuid_base, user_dir, Cleanup, Lxr, World};

/// lxcfs on a mount point the container's root may traverse.
struct Lxcfs {
    // Fields drop in this order: the daemon unmounts before its directory is removed (the
    // other way round, the removal met the mount and left the directory behind in /tmp).
    _daemon: e2e::Daemon,
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

fn lxcfs() -> Lxcfs {
    let dir = user_dir(0, 0);
    let mnt = dir.path().join("lxcfs");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = e2e::Daemon::ours_at(&mnt, &[]);
    Lxcfs {
        _daemon: daemon,
        _dir: dir,
        mnt,
    }
}

/// Why systemd is not `running`: the failed units and the journal's warnings.
fn diagnose(lxr: &Lxr, name: &str) -> String {
    let failed = lxr.run(&[
        "exec",
        "-T",
        name,
        "--",
        "systemctl",
        "--failed",
        "--no-pager",
    ]);
    let jobs = lxr.run(&[
        "exec",
        "-T",
        name,
        "--",
        "systemctl",
        "list-jobs",
        "--no-pager",
    ]);
    let journal = lxr.run(&[
        "exec",
        "-T",
        name,
        "--",
        "journalctl",
        "-b",
        "-p",
        "warning",
        "--no-pager",
    ]);
    format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&jobs.stdout),
        String::from_utf8_lossy(&journal.stdout)
    )
}

fn exec(lxr: &Lxr, name: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", "-T", name, "--"];
    args.extend_from_slice(cmd);
    lxr.ok(&args)
}

/// What the console showed while `lines` were typed on it, a line at a time (a getty drops
/// what was typed ahead of its prompt).
fn console_session(lxr: &Lxr, name: &str, lines: &[&str]) -> String {
    use std::io::Write;
    let mut c = lxr
        .command(&["console", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = c.stdin.take().unwrap();
    for l in lines {
        std::thread::sleep(Duration::from_millis(700));
        input.write_all(format!("{l}\n").as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(700));
    drop(input);
    let o = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).replace('\r', "")
}

/// The init pid once it differs from `old` (a reboot replaced it).
fn new_init(lxr: &Lxr, name: &str, old: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = lxr.pid(name) {
            if p != old {
                return p;
            }
        }
        assert!(Instant::now() < deadline, "{name} did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_debian_12_container_boots_to_running_as_a_user() {
    let w = World::everywhere("lxr-systemd");
    let s = &w.scratch;
    let lx = lxcfs();
    let lxr = w.lxr(Some(lx.mnt.clone()));
    let base = subuid_base("lxrtest1");
    lxr.import_debian("debian12");
    let _cleanup = Cleanup(&lxr, vec!["deb"]);
    lxr.ok(&[
        "launch",
        "debian12",
        "deb",
        "-c",
        "limits.memory=384MiB",
        "-c",
        "limits.cpu=1",
    ]);

    // systemd's own verdict, with nothing failed.
    let state = lxr.system_state("deb");
    assert_eq!(state, "running", "{}", diagnose(&lxr, "deb"));
    assert_eq!(
        exec(
            &lxr,
            "deb",
            &[
                "systemctl",
                "list-units",
                "--failed",
                "--plain",
                "--no-legend"
            ]
        ),
        "",
        "failed units"
    );

    // As under LXC: container=lxc for PID 1, /run/systemd/container, the hostname template.
    let environ = exec(&lxr, "deb", &["cat", "/proc/1/environ"]);
    assert!(
        environ.split('\0').any(|e| e == "container=lxc"),
        "{environ:?}"
    );
    assert_eq!(exec(&lxr, "deb", &["cat", "/run/systemd/container"]), "lxc");
    assert_eq!(exec(&lxr, "deb", &["systemd-detect-virt", "-c"]), "lxc");
    assert_eq!(exec(&lxr, "deb", &["cat", "/etc/hostname"]), "deb");
    // systemd makes the machine id on its first boot (the image's is empty).
    assert_eq!(exec(&lxr, "deb", &["cat", "/etc/machine-id"]).len(), 32);
    // A network (issue 14): eth0 configured by slirp4netns before systemd started, a default
    // route, lxr's resolv.conf (the image has none), the address in `list`.
    let addr = exec(&lxr, "deb", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("10.0.2.100/24"), "{addr}");
    let route = exec(&lxr, "deb", &["ip", "route", "show", "default"]);
    assert!(route.contains("via 10.0.2.2 dev eth0"), "{route}");
    let resolv = exec(&lxr, "deb", &["cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.0.2.3"), "{resolv}");
    assert!(lxr
        .ok(&["list", "--format", "csv"])
        .contains("10.0.2.100 (eth0)"));

    // The container's limits and age, through lxcfs.
    let free = exec(&lxr, "deb", &["free", "-m"]);
    let total = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(total, Some("384"), "{free}");
    assert_eq!(exec(&lxr, "deb", &["nproc"]), "1");
    let up: f64 = exec(&lxr, "deb", &["cat", "/proc/uptime"])
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(up < 120.0, "uptime {up}");
    assert!(
        exec(&lxr, "deb", &["uptime"]).contains("up 0 min")
            || exec(&lxr, "deb", &["uptime"]).contains("up 1 min")
    );

    // Its own cgroup tree, owned by its root: systemd runs in init.scope of its namespace,
    // nothing stays in the container's top cgroup (no lxr process either), and the tree on
    // the host belongs to the container's root.
    let own = exec(&lxr, "deb", &["cat", "/proc/1/cgroup"]);
    assert!(own.lines().any(|l| l == "0::/init.scope"), "{own}");
    assert!(
        own.lines().any(|l| l == "1:name=systemd:/init.scope")
            || own
                .lines()
                .any(|l| l.ends_with(":name=systemd:/init.scope")),
        "{own}"
    );
    for h in ["systemd", "unified", "pids"] {
        let top = s.dir(h, "lxrtest1/lxr/deb");
        assert_eq!(
            std::fs::read_to_string(top.join("cgroup.procs")).unwrap(),
            "",
            "{h}: processes in the container's top cgroup"
        );
        assert_eq!(std::fs::metadata(&top).unwrap().uid(), base, "{h}");
        assert!(top.join("init.scope").is_dir(), "{h}");
    }
    // The default policy's depth: units three slices deep.
    let deep = exec(
        &lxr,
        "deb",
        &[
            "systemd-run",
            "--pipe",
            "--wait",
            "--quiet",
            "--slice=foo-bar-baz",
            "--unit=deep",
            "cat",
            "/proc/self/cgroup",
        ],
    );
    assert!(
        deep.lines()
            .any(|l| l == "0::/foo.slice/foo-bar.slice/foo-bar-baz.slice/deep.service"),
        "{deep}"
    );

    // A boot id of its own, one boot in the journal.
    let boot = exec(&lxr, "deb", &["cat", "/proc/sys/kernel/random/boot_id"]);
    assert_ne!(
        boot,
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );
    let boots = exec(&lxr, "deb", &["journalctl", "--list-boots", "--no-pager"]);
    assert_eq!(boots.lines().count(), 2, "{boots}");
    // /run, /dev/shm, /dev/mqueue writable; /dev/fuse and /dev/net/tun where the host has them.
    exec(
        &lxr,
        "deb",
        &[
            "sh",
            "-c",
            "touch /run/x /dev/shm/x && test -d /dev/mqueue && test -c /dev/fuse && test -c /dev/net/tun",
        ],
    );

    // `exec -t` gets a pty of the container's; bash runs on it.
    let tty = lxr.ok(&[
        "exec",
        "-t",
        "deb",
        "--",
        "bash",
        "-c",
        "tty; echo $((6*7))",
    ]);
    assert!(tty.contains("/dev/pts/") && tty.contains("42"), "{tty:?}");

    // The console: a getty's login prompt, a root login, and the boot in the log.
    let seen = console_session(&lxr, "deb", &["", "root", "echo logged-$((6*7))", "exit"]);
    assert!(seen.contains("deb login:"), "{seen}");
    assert!(seen.contains("logged-42"), "{seen}");
    let log = lxr.ok(&["console", "--show-log", "deb"]);
    assert!(
        log.contains("Reached target") && log.contains("login:"),
        "{log}"
    );

    // Reboot from inside: a new init, a new boot id, `running` again, the journal's second boot.
    let pid = lxr.pid("deb").unwrap();
    exec(&lxr, "deb", &["systemctl", "reboot"]);
    let pid2 = new_init(&lxr, "deb", pid);
    assert_eq!(
        lxr.system_state("deb"),
        "running",
        "{}",
        diagnose(&lxr, "deb")
    );
    let boot2 = exec(&lxr, "deb", &["cat", "/proc/sys/kernel/random/boot_id"]);
    assert_ne!(boot, boot2);
    let boots = exec(&lxr, "deb", &["journalctl", "--list-boots", "--no-pager"]);
    assert_eq!(boots.lines().count(), 3, "{boots}");
    assert!(lxr
        .ok(&["info", "deb"])
        .contains("Previous run: init rebooted"));

    // `lxr restart`: a clean halt, then a new boot.
    lxr.ok(&["restart", "deb"]);
    new_init(&lxr, "deb", pid2);
    assert_eq!(
        lxr.system_state("deb"),
        "running",
        "{}",
        diagnose(&lxr, "deb")
    );

    // `lxr stop`: systemd halts (SIGRTMIN+3), it is not killed; the cgroups go.
    lxr.ok(&["stop", "deb"]);
    let info = lxr.ok(&["info", "deb"]);
    assert!(info.contains("Status: STOPPED"), "{info}");
    assert!(info.contains("Last exit: init halted"), "{info}");
    let log = lxr.ok(&["console", "--show-log", "deb"]);
    assert!(log.contains("Halting system."), "{log}");
    for h in ["systemd", "unified", "pids", "memory"] {
        assert!(!s.dir(h, "lxrtest1/lxr/deb").exists(), "{h} cgroup left");
    }
}

/// An image whose `/sbin/init` prints `words` and exits with status 1 after `delay`; named
/// like systemd (`/sbin/init -> /lib/systemd/systemd`) when `systemd`, so the launch waits for
/// readiness rather than a short window.
fn broken_image(path: &Path, systemd: bool, delay: &str, words: &str) -> PathBuf {
    let exe = Meta {
        mode: 0o755,
        ..e2e::hostile::ROOT
    };
    // Without a delay, no fork either: an init without readiness notification is watched for
    // boot::WINDOW (50 ms), and a `sleep 0` child was enough to outlast it on a loaded machine.
    let pause = if delay == "0" {
        String::new()
    } else {
        format!("sleep {delay}\n")
    };
    let script = format!("#!/bin/sh\necho '{words}'\n{pause}exit 1\n");
    let t = Tar::new()
        .file("metadata.yaml", e2e::hostile::ROOT, metadata("").as_bytes())
        .rootfs_except("rootfs/", "sbin")
        .dir("rootfs/sbin", e2e::hostile::ROOT);
    let t = if systemd {
        t.dir("rootfs/lib", e2e::hostile::ROOT)
            .dir("rootfs/lib/systemd", e2e::hostile::ROOT)
            .file("rootfs/lib/systemd/systemd", exe, script.as_bytes())
            .symlink("rootfs/sbin/init", "/lib/systemd/systemd")
    } else {
        t.file("rootfs/sbin/init", exe, script.as_bytes())
    };
    t.write(path)
}

#[test]
fn an_init_that_dies_while_booting_fails_the_launch_with_its_status() {
    let w = World::everywhere("lxr-deadinit");
    let lxr = w.lxr(None);
    let dir = user_dir(0, 0);
    for (n, systemd, delay) in [("plain", false, "0"), ("sd", true, "0.5")] {
        let words = format!("Failed to allocate manager object ({n})");
        let img = broken_image(&dir.path().join(format!("{n}.tar")), systemd, delay, &words);
        lxr.ok(&["image", "import", img.to_str().unwrap(), "--alias", n]);
        let _cleanup = Cleanup(&lxr, vec!["dead"]);
        let o = lxr.run(&["launch", n, "dead"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{n}: launch succeeded");
        assert!(err.contains("exited with status 1"), "{n}: {err}");
        assert!(err.contains(&words), "{n}: {err}");
        let info = lxr.ok(&["info", "dead"]);
        assert!(info.contains("Status: STOPPED"), "{n}: {info}");
        assert!(
            info.contains("Last exit: init exited with status 1"),
            "{n}: {info}"
        );
        // The same at `start`, and nothing left running or delegated.
        let o = lxr.run(&["start", "dead"]);
        assert!(!o.status.success(), "{n}: start succeeded");
        assert!(String::from_utf8_lossy(&o.stderr).contains("exited with status 1"));
        assert!(lxr.pid("dead").is_none());
        for h in ["systemd", "memory", "unified"] {
            assert!(!w.scratch.dir(h, "lxrtest1/lxr/dead").exists(), "{n}: {h}");
        }
        lxr.ok(&["delete", "dead"]);
    }
}
