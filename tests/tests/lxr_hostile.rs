//! Hostile input against lxr, as the adversaries of `runtime/SECURITY.md` would try it: a
//! hostile image author (archives built byte by byte: `../` and absolute names, symlinked
//! `rootfs`/`templates`/`metadata.yaml`/`image.json`, symlink-then-file, template sources and
//! targets that escape, out-of-range and set-id owners, device nodes, FIFOs, bombs, escape
//! sequences), root inside a container (probing for host descriptors and the user's terminal,
//! typing into it, filling the console log, using the kernel keyring), and a second user on
//! the host (probing every file, socket and lock). Every case asserts the refusal or the safe
//! outcome, that nothing changed in the user's home outside lxr's data directory, and that
//! lxr still launches a container afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::hostile::{
    as_other, bomb, container_fds, container_pids, host_devpts, install_probe, metadata, Home,
    Meta, Tar, ROOT,
};
use e2e::lxr::{subuid_base, wait_for};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The command failed and said `says`.
fn refused(what: &str, o: &Output, says: &str) {
    let e = stderr(o);
    assert!(!o.status.success(), "{what}: not refused: {o:?}");
    assert!(e.contains(says), "{what}: {says:?} not in {e:?}");
}

/// A scratch directory the test user can read (where the hostile images are written).
fn work() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("lxr-hostile-work-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn import(h: &Home, files: &[&Path], extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["image".into(), "import".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    h.lxr.run(&args)
}

// ---------------------------------------------------------------------------------------------
// Class 1: host file descriptors never reach a container.

/// Objects the caller of lxr has open: its home directory, its ssh key, a socket, a pipe.
struct Leaks {
    fds: Vec<OwnedFd>,
}

impl Leaks {
    fn new(home: &Path) -> Leaks {
        let dir = std::fs::File::open(home).unwrap();
        let key = std::fs::File::open(home.join(".ssh/id_rsa")).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        Leaks {
            fds: vec![dir.into(), key.into(), a.into(), r],
        }
    }

    /// (device, inode) of each.
    fn ids(&self) -> BTreeSet<(u64, u64)> {
        self.fds
            .iter()
            .map(|fd| {
                let st = nix::sys::stat::fstat(fd).unwrap();
                (st.st_dev, st.st_ino)
            })
            .collect()
    }

    /// Give them to `cmd` as descriptors 10.. without close-on-exec, as a careless caller does.
    fn pass(&self, cmd: &mut Command) {
        let raw: Vec<RawFd> = self.fds.iter().map(AsRawFd::as_raw_fd).collect();
        // SAFETY: dup2 between fork and exec is async-signal-safe; the descriptors stay open
        // in the parent for the duration of the spawn.
        unsafe {
            cmd.pre_exec(move || {
                for (i, fd) in raw.iter().enumerate() {
                    if libc::dup2(*fd, 10 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

/// No process of the container (init `init`) holds a leaked object or a host terminal.
fn clean_fds(what: &str, init: u32, leaks: &Leaks) {
    let ids = leaks.ids();
    let pts = host_devpts();
    let fds = container_fds(init);
    assert!(!fds.is_empty(), "{what}: no container processes seen");
    for (pid, fd, dev, ino, link) in fds {
        assert!(
            !ids.contains(&(dev, ino)),
            "{what}: pid {pid} fd {fd} is a host descriptor ({link})"
        );
        assert_ne!(
            dev, pts,
            "{what}: pid {pid} fd {fd} is a host terminal ({link})"
        );
    }
}

fn holds_no_leak(what: &str, pid: u32, leaks: &Leaks) {
    let ids = leaks.ids();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(md) = std::fs::metadata(e.path()) {
            assert!(
                !ids.contains(&(md.dev(), md.ino())),
                "{what}: pid {pid} holds a leaked descriptor ({:?})",
                std::fs::read_link(e.path())
            );
        }
    }
}

fn monitor_pid(h: &Home, name: &str) -> u32 {
    let text = std::fs::read_to_string(h.data().join(format!("run/{name}/state.json"))).unwrap();
    let i = text.find("\"monitor_pid\":").unwrap() + "\"monitor_pid\":".len();
    text[i..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn host_descriptors_never_reach_a_container() {
    let h = Home::new();
    let leaks = Leaks::new(h.path());
    let l = &h.lxr;
    let _c = e2e::lxr::Cleanup(l, vec!["fd1"]);

    h.case("launch with leaked descriptors", || {
        let mut c = l.command(&["launch", "busybox", "fd1"]);
        leaks.pass(&mut c);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{o:?}");
        let init = l.pid("fd1").unwrap();
        clean_fds("launch", init, &leaks);
        // init holds its console and nothing else.
        let own: Vec<String> = std::fs::read_dir(format!("/proc/{init}/fd"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(own.len(), 3, "init's descriptors: {own:?}");
        holds_no_leak("the monitor", monitor_pid(&h, "fd1"), &leaks);
        // From inside, /proc/1/fd shows the console only.
        let inside = l.ok(&["exec", "fd1", "--", "ls", "/proc/1/fd"]);
        assert_eq!(
            inside.split_whitespace().collect::<Vec<_>>(),
            ["0", "1", "2"]
        );
    });

    h.case("exec with leaked descriptors", || {
        let mut c = l.command(&["exec", "fd1", "--", "sh", "-c", "ls /proc/self/fd; sleep 2"]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        leaks.pass(&mut c);
        let child = c.spawn().unwrap();
        let init = l.pid("fd1").unwrap();
        wait_for("the exec'd shell", 5, || container_pids(init).len() >= 3);
        clean_fds("exec", init, &leaks);
        holds_no_leak("lxr exec", child.id(), &leaks);
        let o = child.wait_with_output().unwrap();
        let fds = String::from_utf8_lossy(&o.stdout).to_string();
        // 0-2 and the descriptor ls reads /proc/self/fd with.
        assert_eq!(
            fds.split_whitespace().collect::<Vec<_>>(),
            ["0", "1", "2", "3"]
        );
    });

    h.case("console with leaked descriptors", || {
        let mut c = l.command(&["console", "fd1"]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        leaks.pass(&mut c);
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut i = child.stdin.take().unwrap();
            i.write_all(b"ls /proc/self/fd | wc -l > /tmp/n\n").unwrap();
        }
        let _ = child.wait();
        clean_fds("console", l.pid("fd1").unwrap(), &leaks);
    });

    h.case("restart with leaked descriptors", || {
        let mut c = l.command(&["restart", "--force", "fd1"]);
        leaks.pass(&mut c);
        assert!(c.output().unwrap().status.success());
        let init = l.pid("fd1").unwrap();
        clean_fds("restart", init, &leaks);
        holds_no_leak("the new monitor", monitor_pid(&h, "fd1"), &leaks);
    });

    h.case(
        "reboot from inside a container whose monitor got leaks",
        || {
            let before = l.pid("fd1").unwrap();
            l.ok(&["exec", "fd1", "--", "reboot"]);
            wait_for(
                "the reboot",
                20,
                || matches!(l.pid("fd1"), Some(p) if p != before),
            );
            clean_fds("reboot", l.pid("fd1").unwrap(), &leaks);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Class 2: the user's terminal never reaches a container.

/// A pseudo-terminal of the test's: the master (the "user's terminal emulator") and the
/// slave (what lxr gets as its terminal).
struct Term {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Term {
    fn new(rows: u16, cols: u16) -> Term {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = nix::pty::openpty(Some(&ws), None).unwrap();
        let fl = nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        nix::fcntl::fcntl(
            &p.master,
            nix::fcntl::FcntlArg::F_SETFL(
                nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK,
            ),
        )
        .unwrap();
        Term {
            master: p.master,
            slave: p.slave,
        }
    }

    fn stdio(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().unwrap())
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we own.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    /// What arrived on the "screen" so far.
    fn drain(&self, into: &mut Vec<u8>) {
        let mut f = std::fs::File::from(self.master.try_clone().unwrap());
        let mut buf = [0u8; 4096];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.extend_from_slice(&buf[..n]);
        }
    }

    /// Input waiting to be read from the terminal that nobody typed (TIOCSTI).
    fn injected(&self) -> Vec<u8> {
        let s = self.slave.try_clone().unwrap();
        let fl = nix::fcntl::fcntl(&s, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        nix::fcntl::fcntl(
            &s,
            nix::fcntl::FcntlArg::F_SETFL(
                nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK,
            ),
        )
        .unwrap();
        let mut f = std::fs::File::from(s);
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
}

/// Run `lxr exec` with the given stdio while the command sleeps; inspect the container's
/// descriptors meanwhile. Returns (exit status, screen).
fn exec_with(
    h: &Home,
    name: &str,
    flags: &[&str],
    cmd: &str,
    stdio: [Stdio; 3],
    term: &Term,
) -> (std::process::ExitStatus, String) {
    let mut args = vec!["exec", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", cmd]);
    let [i, o, e] = stdio;
    let mut child = h
        .lxr
        .command(&args)
        .stdin(i)
        .stdout(o)
        .stderr(e)
        .spawn()
        .unwrap();
    let init = h.lxr.pid(name).unwrap();
    let pts = host_devpts();
    let mut screen = Vec::new();
    let t = Instant::now();
    let status = loop {
        term.drain(&mut screen);
        for (pid, fd, dev, _, link) in container_fds(init) {
            assert_ne!(
                dev, pts,
                "pid {pid} fd {fd} is the user's terminal ({link})"
            );
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "lxr exec hangs");
        std::thread::sleep(Duration::from_millis(20));
    };
    term.drain(&mut screen);
    (status, String::from_utf8_lossy(&screen).to_string())
}

#[test]
fn the_users_terminal_never_reaches_a_container() {
    let h = Home::new();
    let l = &h.lxr;
    let _c = e2e::lxr::Cleanup(l, vec!["tty1"]);
    l.ok(&["launch", "busybox", "tty1"]);
    install_probe(l, "tty1");
    // What the container's side of its stdio is, and whether typing into it reached us.
    let show = "for f in 0 1 2; do readlink /proc/self/fd/$f; done; /probe tiocsti; sleep 0.3";

    h.case(
        "stdin not a terminal, stdout and stderr one (the reported hole)",
        || {
            let t = Term::new(24, 80);
            let (st, screen) = exec_with(
                &h,
                "tty1",
                &[],
                show,
                [Stdio::null(), t.stdio(), t.stdio()],
                &t,
            );
            assert!(st.success(), "{screen}");
            // A pty of the container's own: its devpts numbers it from 0.
            assert!(screen.contains("/dev/pts/"), "{screen}");
            assert!(t.injected().is_empty(), "typed into the user's terminal");
        },
    );

    h.case("stdin a terminal, stdout a pipe", || {
        let t = Term::new(24, 80);
        let (st, _) = exec_with(
            &h,
            "tty1",
            &[],
            show,
            [t.stdio(), Stdio::piped(), Stdio::piped()],
            &t,
        );
        assert!(st.success());
        assert!(t.injected().is_empty());
    });

    h.case("everything a terminal", || {
        let t = Term::new(24, 80);
        let (st, screen) = exec_with(&h, "tty1", &[], show, [t.stdio(), t.stdio(), t.stdio()], &t);
        assert!(st.success(), "{screen}");
        assert!(screen.contains("/dev/pts/"), "{screen}");
        assert!(t.injected().is_empty());
    });

    h.case("-T on a terminal: pipes", || {
        let t = Term::new(24, 80);
        let (st, screen) = exec_with(
            &h,
            "tty1",
            &["-T"],
            show,
            [t.stdio(), t.stdio(), t.stdio()],
            &t,
        );
        assert!(st.success(), "{screen}");
        assert!(screen.contains("pipe:"), "{screen}");
        assert!(!screen.contains("/dev/pts/"), "{screen}");
        assert!(t.injected().is_empty());
    });

    h.case("-t without a terminal: a pty all the same", || {
        let o = l.run(&["exec", "-t", "tty1", "--", "readlink", "/proc/self/fd/1"]);
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"));
    });

    h.case(
        "no terminal at all: pipes, exit code and stderr kept apart",
        || {
            let o = l.run(&[
                "exec",
                "tty1",
                "--",
                "sh",
                "-c",
                "readlink /proc/self/fd/0; echo err >&2; exit 7",
            ]);
            assert_eq!(o.status.code(), Some(7));
            assert!(String::from_utf8_lossy(&o.stdout).starts_with("pipe:"));
            assert_eq!(stderr(&o).trim(), "err");
        },
    );

    h.case("the window size follows the user's terminal", || {
        let t = Term::new(24, 80);
        let mut child = l
            .command(&[
                "exec",
                "tty1",
                "--",
                "sh",
                "-c",
                "stty size; sleep 1; stty size",
            ])
            .stdin(t.stdio())
            .stdout(t.stdio())
            .stderr(t.stdio())
            .spawn()
            .unwrap();
        let mut screen = Vec::new();
        wait_for("the first size", 10, || {
            t.drain(&mut screen);
            String::from_utf8_lossy(&screen).contains("24 80")
        });
        t.resize(40, 132);
        // SAFETY: signalling the lxr process this test started, by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGWINCH) };
        wait_for("the second size", 10, || {
            t.drain(&mut screen);
            String::from_utf8_lossy(&screen).contains("40 132")
        });
        assert!(child.wait().unwrap().success());
    });

    // `lxr exec tty1 -- sleep 30`, its stdin nothing.
    let sleeper = || {
        l.command(&["exec", "tty1", "--", "sleep", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    h.case("signals to lxr exec reach the command", || {
        let mut child = sleeper();
        let init = l.pid("tty1").unwrap();
        wait_for("sleep", 5, || container_pids(init).len() >= 3);
        // SAFETY: signalling the lxr process this test started, by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(128 + libc::SIGTERM));
    });

    // CI caught this as a flake: a SIGTERM between the command's fork and the relay killed
    // lxr and left the command running with nobody relaying. The signal is sent the moment
    // lxr's helper exists, while the command is being set up (the window was the whole setup).
    h.case(
        "a signal while the command is being set up reaches the command",
        || {
            let init = l.pid("tty1").unwrap();
            let before = container_pids(init).len();
            let mut child = sleeper();
            let end = Instant::now() + Duration::from_secs(10);
            while children(child.id()).is_empty() && Instant::now() < end {
                std::hint::spin_loop();
            }
            // SAFETY: signalling the lxr process this test started, by pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let st = child.wait().unwrap();
            assert_eq!(st.code(), Some(128 + libc::SIGTERM));
            wait_for("no command left", 5, || {
                container_pids(init).len() == before
            });
        },
    );

    h.case("a command dies with its helper", || {
        a_command_dies_with_its_helper(l, "tty1")
    });
}

/// The command of an `lxr exec` whose helper dies (lxr kills it when its relay fails) dies
/// with it, instead of running on in the container with nobody relaying.
fn a_command_dies_with_its_helper(l: &e2e::lxr::Lxr, name: &str) {
    let init = l.pid(name).unwrap();
    let before = container_pids(init).len();
    let mut child = l
        .command(&["exec", name, "--", "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command", 5, || container_pids(init).len() > before);
    let helpers = children(child.id());
    assert_eq!(helpers.len(), 1, "{helpers:?}");
    // SAFETY: killing the helper of the lxr process this test started, by pid.
    unsafe { libc::kill(helpers[0] as i32, libc::SIGKILL) };
    wait_for("the command to die with its helper", 5, || {
        container_pids(init).len() == before
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// The children of `pid` (all its threads').
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Class 3: image contents only ever get ids from the subordinate range.

#[test]
fn image_owners_stay_in_the_containers_range() {
    let h = Home::new();
    let w = work();
    let base = subuid_base("lxrtest1");
    let suid = |uid: u32, gid: u32| Meta {
        mode: 0o6755,
        uid,
        gid,
    };
    for (case, owner) in [
        (
            "setuid file owned by container id 65536 (the user, once)",
            suid(65536, 0),
        ),
        ("owner 4294967294", suid(4_294_967_294, 0)),
        ("group 70000 only", suid(0, 70000)),
        (
            "owner 1000000",
            Meta {
                mode: 0o644,
                uid: 1_000_000,
                gid: 0,
            },
        ),
    ] {
        h.case(case, || {
            let p = Tar::new()
                .image(&metadata(""))
                .file("rootfs/bin/evil", owner, b"#!/bin/sh\n")
                .write(&w.path().join("owner.tar"));
            refused(case, &import(&h, &[&p], &[]), "outside the container's ids");
        });
    }

    h.case("squashfs rootfs with an out-of-range setuid owner", || {
        let tree = w.path().join("sq");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/evil"), "x").unwrap();
        std::os::unix::fs::chown(tree.join("bin/evil"), Some(65536), Some(0)).unwrap();
        std::fs::set_permissions(
            tree.join("bin/evil"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        let sq = w.path().join("r.sq");
        let o = Command::new("mksquashfs")
            .arg(&tree)
            .arg(&sq)
            .args(["-noappend", "-quiet"])
            .output()
            .unwrap();
        assert!(o.status.success());
        std::fs::set_permissions(&sq, std::fs::Permissions::from_mode(0o644)).unwrap();
        let meta = Tar::new()
            .file("metadata.yaml", ROOT, metadata("").as_bytes())
            .write(&w.path().join("meta.tar"));
        refused(
            "squashfs",
            &import(&h, &[&meta, &sq], &[]),
            "outside the container's ids",
        );
    });

    h.case("in-range setuid files stay the container's", || {
        let p = Tar::new()
            .image(&metadata(""))
            .file(
                "rootfs/bin/su",
                Meta {
                    mode: 0o4755,
                    uid: 0,
                    gid: 0,
                },
                b"x",
            )
            .file(
                "rootfs/home",
                Meta {
                    mode: 0o2755,
                    uid: 1001,
                    gid: 1001,
                },
                b"y",
            )
            .write(&w.path().join("ok.tar"));
        let o = import(&h, &[&p], &["--alias", "setid"]);
        assert!(o.status.success(), "{o:?}");
        let fp = String::from_utf8_lossy(&o.stdout)
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string();
        let r = h.data().join("images").join(&fp).join("rootfs");
        let md = std::fs::metadata(r.join("bin/su")).unwrap();
        assert_eq!((md.uid(), md.mode() & 0o7777), (base, 0o4755));
        // The test user's own uid (1001) inside is base + 1001 outside, never 1001.
        assert_eq!(
            std::fs::metadata(r.join("home")).unwrap().uid(),
            base + 1001
        );
        h.lxr.ok(&["launch", "setid", "own1"]);
        assert_eq!(
            h.lxr
                .ok(&["exec", "own1", "--", "stat", "-c", "%a %u", "/bin/su"]),
            "4755 0"
        );
        h.lxr.ok(&["delete", "--force", "own1"]);
        h.no_leftovers("setid");
    });
}

/// A data directory an older lxr left (0711, images unpacked with the user's own uid mapped):
/// the user's set-id files there lose their set-id bits on the first run.
#[test]
fn setid_files_an_older_lxr_left_are_defused() {
    let h = Home::new();
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    let bin = h.data().join("images/0123/files/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("evil"), "#!/bin/sh\n").unwrap();
    std::fs::write(bin.join("fine"), "#!/bin/sh\n").unwrap();
    let mut p = bin.clone();
    while p != h.path().join(".local/share") {
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711)).unwrap();
        p.pop();
    }
    // chown drops set-id bits: the modes come after the owners.
    for (f, mode) in [("evil", 0o6755), ("fine", 0o755)] {
        std::os::unix::fs::chown(bin.join(f), Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(bin.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    h.case("an older store with a setuid file of the user's", || {
        let o = h.lxr.run(&["image", "list"]);
        assert!(o.status.success(), "{o:?}");
        assert!(
            stderr(&o).contains("removed the setuid/setgid bits of 1 file"),
            "{o:?}"
        );
        let mode = |f: &str| std::fs::metadata(bin.join(f)).unwrap().mode() & 0o7777;
        assert_eq!((mode("evil"), mode("fine")), (0o755, 0o755));
        let top = std::fs::metadata(h.data()).unwrap().mode() & 0o7777;
        assert_eq!(top, 0o700);
    });
}

// ---------------------------------------------------------------------------------------------
// Class 4: no write or read through a planted symlink; nothing outside the image.

#[test]
fn planted_symlinks_and_escaping_names_are_refused() {
    let h = Home::new();
    let w = work();
    let l = &h.lxr;
    let _c = e2e::lxr::Cleanup(l, vec!["victim"]);
    l.ok(&["launch", "busybox", "victim"]);
    let victim_rootfs = h.data().join("containers/victim/rootfs");
    let victim_before = std::fs::read_dir(&victim_rootfs).unwrap().count();
    // A world-writable directory outside, tempting for container root.
    let outside = w.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let home = h.path().display().to_string();
    let meta = metadata("");
    let tar = |name: &str, t: Tar| t.write(&w.path().join(name));

    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "rootfs is a symlink to another container's rootfs",
            tar(
                "t1.tar",
                Tar::new()
                    .file("metadata.yaml", ROOT, meta.as_bytes())
                    .symlink("rootfs", "../../../containers/victim/rootfs"),
            ),
            "rootfs is not a directory",
        ),
        (
            "templates is a symlink to ~/.ssh",
            tar(
                "t2.tar",
                Tar::new()
                    .image(&meta)
                    .symlink("templates", "../../../../.ssh"),
            ),
            "templates is not a directory",
        ),
        (
            "metadata.yaml is a symlink to ~/.bashrc",
            tar(
                "t3.tar",
                Tar::new()
                    .symlink("metadata.yaml", "../../../../.bashrc")
                    .rootfs("rootfs/"),
            ),
            "metadata.yaml is not a regular file",
        ),
        (
            "metadata.yaml is a FIFO",
            tar("t4.tar", Tar::new().fifo("metadata.yaml").rootfs("rootfs/")),
            "metadata.yaml is not a regular file",
        ),
        (
            "metadata.yaml is a directory",
            tar(
                "t5.tar",
                Tar::new().dir("metadata.yaml", ROOT).rootfs("rootfs/"),
            ),
            "metadata.yaml is not a regular file",
        ),
        (
            // tar makes the target relative (`etc/passwd` inside the archive).
            "metadata.yaml is a hard link to /etc/passwd",
            tar(
                "t6.tar",
                Tar::new()
                    .hardlink("metadata.yaml", "/etc/passwd")
                    .rootfs("rootfs/"),
            ),
            "metadata.yaml is not a regular file",
        ),
        (
            "an entry named ../escape",
            tar(
                "t7.tar",
                Tar::new().image(&meta).file("../escape", ROOT, b"x"),
            ),
            "points outside the image",
        ),
        (
            "an absolute entry into the home",
            tar(
                "t8.tar",
                Tar::new()
                    .image(&meta)
                    .file(&format!("{home}/.bashrc"), ROOT, b"pwned"),
            ),
            "points outside the image",
        ),
        (
            "an entry climbing out of rootfs/",
            tar(
                "t9.tar",
                Tar::new()
                    .image(&meta)
                    .file("rootfs/../../../../.profile", ROOT, b"x"),
            ),
            "points outside the image",
        ),
        (
            // tar's listing already drops the `../`; the link then finds nothing.
            "a hard link to a file outside",
            tar(
                "t10.tar",
                Tar::new()
                    .image(&meta)
                    .hardlink("rootfs/key", "../../../../.ssh/id_rsa"),
            ),
            "Cannot hard link",
        ),
        (
            "no metadata.yaml at all",
            tar("t11.tar", Tar::new().rootfs("rootfs/")),
            "no metadata.yaml",
        ),
    ];
    for (case, file, says) in &cases {
        h.case(case, || refused(case, &import(&h, &[file], &[]), says));
    }

    for (case, t) in [
        (
            "symlink to an outside directory, then a file through it",
            Tar::new()
                .image(&meta)
                .symlink("rootfs/x", &outside.display().to_string())
                .file("rootfs/x/planted", ROOT, b"x"),
        ),
        (
            "relative symlink climbing out, then a file through it",
            Tar::new()
                .image(&meta)
                .symlink("rootfs/y", "../../../../../../../../../../tmp")
                .file("rootfs/y/planted2", ROOT, b"x"),
        ),
    ] {
        h.case(case, || {
            let p = t.write(&w.path().join("st.tar"));
            let _ = import(&h, &[&p], &[]);
            assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{case}");
            assert!(!Path::new("/tmp/planted2").exists(), "{case}");
        });
    }

    h.case(
        "an image.json in the archive, a symlink to ~/.bashrc",
        || {
            let p = tar(
                "j.tar",
                Tar::new()
                    .image(&meta)
                    .symlink("image.json", "../../../../.bashrc"),
            );
            let o = import(&h, &[&p], &[]);
            assert!(o.status.success(), "{o:?}");
            let fp = String::from_utf8_lossy(&o.stdout)
                .trim()
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string();
            let rec = h.data().join("images").join(&fp).join("image.json");
            assert!(!std::fs::symlink_metadata(&rec)
                .unwrap()
                .file_type()
                .is_symlink());
            assert!(std::fs::read_to_string(&rec).unwrap().contains(&fp));
            l.ok(&["image", "delete", &fp[..12]]);
        },
    );

    // Templates: sources only inside templates/, targets only inside the new rootfs.
    let with_template = |name: &str, src: &str, target: &str, rootfs: Tar| {
        let m = metadata(&format!(
            "templates:\n  {target}:\n    when: [create]\n    template: {src}\n"
        ));
        let p = rootfs
            .file("metadata.yaml", ROOT, m.as_bytes())
            .dir("templates", ROOT)
            .file("templates/ok.tpl", ROOT, b"{{ instance.name }}\n")
            .symlink("templates/key.tpl", &format!("{home}/.ssh/id_rsa"))
            .write(&w.path().join(name));
        let o = import(&h, &[&p], &["--alias", name]);
        assert!(o.status.success(), "{name}: {o:?}");
        let launched = l.run(&["launch", name, "tpl"]);
        let _ = l.run(&["delete", "--force", "tpl"]);
        let _ = l.run(&["image", "delete", name]);
        launched
    };
    let plain = || Tar::new().rootfs("rootfs/");
    let etc_out = || {
        Tar::new()
            .rootfs_except("rootfs/", "etc")
            .symlink("rootfs/etc", &outside.display().to_string())
    };
    for (i, (case, src, target, rootfs, says)) in [
        (
            "template source absolute (~/.ssh/id_rsa)",
            format!("{home}/.ssh/id_rsa"),
            "/etc/x",
            plain(),
            "not a path inside",
        ),
        (
            "template source climbing out",
            "../../../../.ssh/id_rsa".to_string(),
            "/etc/x",
            plain(),
            "not a path inside",
        ),
        (
            "template source a symlink to the key",
            "key.tpl".to_string(),
            "/etc/x",
            plain(),
            "symlink",
        ),
        (
            "template target through a symlinked /etc",
            "ok.tpl".to_string(),
            "/etc/hostname",
            etc_out(),
            "symlink",
        ),
        (
            "template target climbing out",
            "ok.tpl".to_string(),
            "/../../../../.bashrc",
            plain(),
            "leaves the rootfs",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        h.case(case, || {
            let name = format!("tpl{i}");
            refused(case, &with_template(&name, &src, target, rootfs), says);
            assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{case}");
        });
    }

    // The container's own mount points: a symlinked /proc or /dev is refused at start.
    for (case, dir) in [
        ("rootfs /proc is a symlink to the home", "proc"),
        ("rootfs /dev is a symlink", "dev"),
    ] {
        h.case(case, || {
            let p = Tar::new()
                .file("metadata.yaml", ROOT, meta.as_bytes())
                .rootfs_except("rootfs/", dir)
                .symlink(&format!("rootfs/{dir}"), &home)
                .write(&w.path().join(format!("m-{dir}.tar")));
            let alias = format!("mnt-{dir}");
            let o = import(&h, &[&p], &["--alias", &alias]);
            assert!(o.status.success(), "{o:?}");
            let o = l.run(&["launch", &alias, "mnt"]);
            refused(case, &o, "is not a directory");
            let _ = l.run(&["delete", "--force", "mnt"]);
            l.ok(&["image", "delete", &alias]);
        });
    }
    assert_eq!(
        std::fs::read_dir(&victim_rootfs).unwrap().count(),
        victim_before
    );
    assert_eq!(l.ok(&["exec", "victim", "--", "echo", "ok"]), "ok");
}

// ---------------------------------------------------------------------------------------------
// Class 5: other users get EACCES on everything.

#[test]
fn another_user_gets_eacces_on_every_file_socket_and_lock() {
    let h = Home::new();
    let w = work();
    let l = &h.lxr;
    let _c = e2e::lxr::Cleanup(l, vec!["priv1"]);
    l.ok(&["launch", "busybox", "priv1"]);
    let p = Tar::new()
        .image(&metadata(""))
        .write(&w.path().join("i.tar"));
    let o = import(&h, &[&p], &[]);
    assert!(o.status.success());
    let fp = String::from_utf8_lossy(&o.stdout)
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let d = h.data();
    let init = l.pid("priv1").unwrap();
    let probes: Vec<(&str, PathBuf)> = vec![
        ("list", d.clone()),
        ("list", d.join("containers")),
        ("list", d.join("images")),
        ("list", d.join("run")),
        ("read", d.join("containers/priv1/config.yaml")),
        ("read", d.join("containers/priv1/rootfs/etc/passwd")),
        ("create", d.join("containers/priv1/rootfs/tmp/planted")),
        ("create", d.join(format!("images/{fp}/rootfs/planted"))),
        ("read", d.join(format!("images/{fp}/metadata.yaml"))),
        ("lock", d.join("images/.lock")),
        ("lock", d.join("run/priv1.lock")),
        ("connect", d.join("run/priv1/console.sock")),
        ("read", d.join("run/priv1/console.log")),
        ("read", d.join("run/priv1/state.json")),
        (
            "read",
            PathBuf::from(format!("/proc/{init}/root/etc/passwd")),
        ),
        (
            "create",
            PathBuf::from(format!("/proc/{init}/root/tmp/planted")),
        ),
    ];
    for (op, path) in &probes {
        h.case(&format!("{op} {}", path.display()), || {
            assert_eq!(as_other(op, path), "errno 13", "{op} {}", path.display());
        });
    }
    h.case("the other user's lxr pointed at this user's data", || {
        let o = Command::new("runuser")
            .args(["-u", "lxrtest2", "--", "env"])
            .arg(format!(
                "XDG_DATA_HOME={}",
                h.path().join(".local/share").display()
            ))
            .arg(e2e::cgm::bin("lxr"))
            .args(["exec", "priv1", "--", "true"])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{o:?}");
    });
    h.case("a data directory someone else made is refused", || {
        let shared = work();
        let theirs = shared.path().join("lxr");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (uid, _) = e2e::cgm::test_user("lxrtest2");
        std::os::unix::fs::chown(&theirs, Some(uid), Some(uid)).unwrap();
        let o = Command::new("setpriv")
            .arg(format!("--reuid={}", e2e::cgm::test_user("lxrtest1").0))
            .arg(format!("--regid={}", e2e::cgm::test_user("lxrtest1").1))
            .args(["--init-groups", "env"])
            .arg(format!("XDG_DATA_HOME={}", shared.path().display()))
            .arg(e2e::cgm::bin("lxr"))
            .args(["list"])
            .output()
            .unwrap();
        refused("foreign data dir", &o, "not a directory of yours");
    });
}

// ---------------------------------------------------------------------------------------------
// Class 6: resources are bounded, image text is cleaned, the keyring is closed.

fn console_bytes(h: &Home, name: &str) -> u64 {
    let run = h.data().join("run").join(name);
    ["console.log", "console.log.1"]
        .iter()
        .filter_map(|f| std::fs::metadata(run.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// A tmpfs of `size` and `inodes` on the user's `~/.local/share` (unmounted when dropped).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn new(h: &Home, size: &str, inodes: u32) -> SmallDisk {
        let (uid, gid) = e2e::cgm::test_user("lxrtest1");
        let at = h.path().join(".local/share");
        nix::mount::mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={gid}").as_str()),
        )
        .unwrap();
        SmallDisk(at)
    }

    fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.0).unwrap();
        st.blocks_available() * st.fragment_size()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn resources_are_bounded_and_image_text_is_cleaned() {
    let h = Home::new();
    let w = work();
    let l = &h.lxr;
    let _c = e2e::lxr::Cleanup(l, vec!["log1", "log2", "key1"]);

    // Print `bytes` on the console of a new container (with `config`); what the host keeps
    // must stay within `bound`.
    let flood = |name: &str, config: &[&str], bytes: u64, bound: u64| {
        let mut args = vec!["launch", "busybox", name];
        args.extend_from_slice(config);
        l.ok(&args);
        let cmd = format!("head -c {bytes} /dev/zero | tr '\\0' x > /dev/console");
        l.ok(&["exec", name, "--", "sh", "-c", &cmd]);
        let turned = h.data().join(format!("run/{name}/console.log.1"));
        wait_for("the log to turn over", 15, || {
            turned.exists() && console_bytes(&h, name) > bound / 2
        });
        std::thread::sleep(Duration::from_millis(500));
        let kept = console_bytes(&h, name);
        assert!(kept <= bound, "{name}: {kept} bytes kept, bound {bound}");
        l.ok(&["delete", "--force", name]);
    };
    h.case(
        "a container flooding its console with console.log.size=256KiB",
        || {
            flood(
                "log1",
                &["-c", "console.log.size=256KiB"],
                3_000_000,
                256 << 10,
            );
        },
    );
    h.case("the default console bound (4 MiB)", || {
        flood("log2", &[], 10_000_000, 4 << 20);
    });

    h.case("a console.log.size that is not a size", || {
        refused(
            "bad size",
            &l.run(&["launch", "busybox", "log3", "-c", "console.log.size=lots"]),
            "console.log.size",
        );
        assert!(!h.data().join("containers/log3").exists());
    });

    h.case("a 3 GiB metadata.yaml (the header alone)", || {
        let p = Tar::new()
            .file_header_only("metadata.yaml", 3 << 30)
            .write(&w.path().join("m3g.tar"));
        refused(
            "3 GiB metadata",
            &import(&h, &[&p], &[]),
            "metadata.yaml is 3221225472 bytes",
        );
    });

    h.case("a 2 MiB metadata.yaml", || {
        let big = format!("{}\n# {}\n", metadata(""), "x".repeat(2 << 20));
        let p = Tar::new()
            .file("metadata.yaml", ROOT, big.as_bytes())
            .rootfs("rootfs/")
            .write(&w.path().join("m2m.tar"));
        refused(
            "2 MiB metadata",
            &import(&h, &[&p], &[]),
            "more than the 1048576 allowed",
        );
    });

    h.case("a YAML alias bomb under 1 MiB", || {
        let mut y = metadata("properties:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        let mut prev = 'a';
        for c in 'b'..='j' {
            y.push_str(&format!("  {c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = c;
        }
        let p = Tar::new().file("metadata.yaml", ROOT, y.as_bytes()).rootfs("rootfs/").write(&w.path().join("lol.tar"));
        refused("alias bomb", &import(&h, &[&p], &[]), "repetition limit");
    });

    h.case("a zstd bomb over --max-size", || {
        let p = bomb(&w.path().join("bomb.tar.zst"), "zeros", 64 << 20);
        assert!(std::fs::metadata(&p).unwrap().len() < 1 << 20);
        refused(
            "bomb",
            &import(&h, &[&p], &["--max-size", "16MiB"]),
            "more than the maximum",
        );
        let o = l
            .command_env(
                &["LXR_IMAGE_MAX_SIZE=32MiB"],
                &["image", "import", p.to_str().unwrap()],
            )
            .output()
            .unwrap();
        refused(
            "bomb, maximum from the environment",
            &o,
            "more than the maximum",
        );
    });

    h.case("too many device nodes", || {
        let mut t = Tar::new().image(&metadata(""));
        for i in 0..1001 {
            t = t.chardev(&format!("rootfs/d{i}"), 1, 3);
        }
        let p = t.write(&w.path().join("devs.tar"));
        refused(
            "devices",
            &import(&h, &[&p], &[]),
            "more than 1000 device nodes",
        );
    });

    h.case("device nodes are skipped", || {
        let p = Tar::new()
            .image(&metadata(""))
            .chardev("rootfs/etc/kmem", 1, 2)
            .write(&w.path().join("dev.tar"));
        let o = import(&h, &[&p], &[]);
        assert!(o.status.success(), "{o:?}");
        let fp = String::from_utf8_lossy(&o.stdout)
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string();
        assert!(!h
            .data()
            .join(format!("images/{fp}/rootfs/etc/kmem"))
            .exists());
        l.ok(&["image", "delete", &fp[..12]]);
    });

    h.case(
        "escape sequences in image text never reach the terminal",
        || {
            let m = metadata("properties:\n  description: \"\\e]0;pwned\\a\\e[31mred\\x9b2J\"\n");
            let p = Tar::new().image(&m).write(&w.path().join("esc.tar"));
            let o = import(&h, &[&p], &["--alias", "esc"]);
            assert!(o.status.success(), "{o:?}");
            for f in ["table", "json", "yaml", "csv"] {
                let out = l.ok(&["image", "list", "--format", f]);
                assert!(!out.contains(['\u{1b}', '\u{7}', '\u{9b}']), "{f}: {out:?}");
                assert!(out.contains("red"), "{f}: {out}");
            }
            l.ok(&["image", "delete", "esc"]);
            let p = Tar::new()
                .file(
                    "metadata.yaml",
                    ROOT,
                    "architecture: \"\\e]0;x\\a\"\ncreation_date: 1\n".as_bytes(),
                )
                .rootfs("rootfs/")
                .write(&w.path().join("arch.tar"));
            let o = import(&h, &[&p], &[]);
            assert!(
                !o.status.success() && !stderr(&o).contains('\u{1b}'),
                "{o:?}"
            );
            let p = Tar::new()
                .image(&metadata(""))
                .file("../\u{1b}[2Jx", ROOT, b"")
                .write(&w.path().join("name.tar"));
            let o = import(&h, &[&p], &[]);
            assert!(
                !o.status.success() && !stderr(&o).contains('\u{1b}'),
                "{o:?}"
            );
        },
    );

    h.case(
        "the kernel keyring is closed (keyctl, add_key, request_key: ENOSYS)",
        || {
            l.ok(&["launch", "busybox", "key1"]);
            install_probe(l, "key1");
            let out = l.ok(&["exec", "key1", "--", "/probe", "keyctl"]);
            assert_eq!(
                out,
                format!("keyctl {e}\nadd_key {e}\nrequest_key {e}", e = libc::ENOSYS),
                "{out}"
            );
            l.ok(&["delete", "--force", "key1"]);
        },
    );
}

/// The disk-filling cases need their own mount on `~/.local/share`.
#[test]
fn an_image_bigger_than_the_disk_is_refused_before_the_disk_fills() {
    let h = Home::new();
    let w = work();
    let disk = SmallDisk::new(&h, "48m", 100_000);
    h.case("a bomb larger than the free space", || {
        let p = bomb(&w.path().join("big.tar.zst"), "zeros", 100 << 20);
        let before = disk.free();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lowest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let sampler = {
            let (done, lowest, at) = (done.clone(), lowest.clone(), disk.0.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(st) = nix::sys::statvfs::statvfs(&at) {
                        let free = st.blocks_available() * st.fragment_size();
                        lowest.fetch_min(free, std::sync::atomic::Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let o = import(&h, &[&p], &[]);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        sampler.join().unwrap();
        refused("bigger than the disk", &o, "the disk has");
        assert!(
            lowest.load(std::sync::atomic::Ordering::SeqCst) > before / 2,
            "the disk filled"
        );
        assert!(disk.free() >= before - (1 << 20));
    });
    drop(disk);
    let disk = SmallDisk::new(&h, "64m", 3000);
    h.case("more files than the disk has inodes", || {
        let mut t = Tar::new().image(&metadata(""));
        for i in 0..4000 {
            t = t.file(&format!("rootfs/f{i}"), ROOT, b"");
        }
        let p = t.write(&w.path().join("inodes.tar"));
        refused("inodes", &import(&h, &[&p], &[]), "room for");
    });
    drop(disk);
}
