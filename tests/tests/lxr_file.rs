//! `lxr file push|pull|edit|delete` as the test user, against hostile containers: root inside
//! plants symlinks (`/tmp/x -> /`, `-> /proc/1/root`, `-> ../../../../home/…`, `->` a host
//! directory of the user's, `-> /etc/shadow`) and FIFOs, and swaps a file for a symlink in the
//! destination of a pull. Whatever it plants, what is pushed lands in the container (or is
//! refused), what is pulled is the container's own file, a pulled tree's symlinks are made as
//! symlinks and nothing is read through them, a FIFO never hangs a pull — on a running and on
//! a stopped container. And the happy paths: owners and modes (`--uid/--gid/--mode`, checked
//! with `exec stat`), `-p`, `-r`, stdin and stdout, `file edit` through `$EDITOR` and stdin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::cgm::test_user;
use e2e::lxr::{unconfined, user_dir, Cleanup, Lxr};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A host file of the test user's with `content`.
fn user_file(dir: &Path, name: &str, content: &str, mode: u32) -> String {
    let (uid, gid) = test_user("lxrtest1");
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
    p.display().to_string()
}

/// `lxr` with a deadline: a pull that hangs on a FIFO fails the test instead of hanging it.
fn run_within(lxr: &Lxr, args: &[&str], secs: u64) -> Output {
    let mut c = lxr
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = c.kill();
            panic!("lxr {args:?} still runs after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    c.wait_with_output().unwrap()
}

fn stat(lxr: &Lxr, name: &str, path: &str) -> String {
    lxr.ok(&["exec", name, "stat", "-c", "%u %g %a", path])
}

/// Container root plants its links; `host` is a directory of the user's on the host.
fn plant(lxr: &Lxr, name: &str, host: &Path) {
    lxr.ok(&[
        "exec",
        name,
        "sh",
        "-c",
        &format!(
            "ln -s / /tmp/x; ln -s /proc/1/root /tmp/p; ln -s ../../../../home/lxrtest1 /tmp/u; \
             ln -s {} /tmp/h; ln -s /etc/shadow /tmp/shadow-link; ln -s /proc/1/root/etc/shadow /tmp/ps",
            host.display()
        ),
    ]);
}

/// Push through every planted link: lands in the container or is refused, never on the host.
fn push_through_links(lxr: &Lxr, name: &str, src: &str, host: &Path) {
    // `/tmp/x -> /` is the container's `/`.
    lxr.ok(&["file", "push", src, &format!("{name}/tmp/x/evil")]);
    for link in ["p", "u", "h"] {
        let o = lxr.run(&["file", "push", src, &format!("{name}/tmp/{link}/evil")]);
        assert!(!o.status.success(), "push through /tmp/{link}: {o:?}");
    }
    assert!(!Path::new("/evil").exists());
    assert!(!host.join("evil").exists());
    assert!(!Path::new("/home/lxrtest1/evil").exists());
    assert!(!Path::new("/proc/1/root/evil").exists());
}

#[test]
fn file_push_through_planted_symlinks_lands_in_the_container_running_and_stopped() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f1"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    let src = user_file(host.path(), "payload", "pushed\n", 0o644);
    lxr.ok(&["launch", "busybox", "f1", "-c", "network.mode=none"]);
    plant(&lxr, "f1", host.path());
    push_through_links(&lxr, "f1", &src, host.path());
    assert_eq!(lxr.ok(&["exec", "f1", "cat", "/evil"]), "pushed");
    lxr.ok(&["exec", "f1", "rm", "/evil"]);
    // Stopped: the same links in the rootfs, the same outcome.
    lxr.ok(&["stop", "f1"]);
    push_through_links(&lxr, "f1", &src, host.path());
    lxr.ok(&["start", "f1"]);
    assert_eq!(lxr.ok(&["exec", "f1", "cat", "/evil"]), "pushed");
    assert_eq!(stat(&lxr, "f1", "/evil"), "0 0 644");
}

#[test]
fn file_pull_of_a_planted_link_reads_the_containers_target_never_the_hosts() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f2"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    lxr.ok(&["launch", "busybox", "f2", "-c", "network.mode=none"]);
    plant(&lxr, "f2", host.path());
    lxr.ok(&[
        "exec",
        "f2",
        "sh",
        "-c",
        "echo container-hostname > /etc/hostname; ln -s /etc/hostname /tmp/hn",
    ]);
    for stopped in [false, true] {
        if stopped {
            lxr.ok(&["stop", "f2"]);
        }
        // The host has an /etc/shadow, the busybox container none: nothing to read.
        assert!(Path::new("/etc/shadow").exists());
        for link in ["shadow-link", "ps", "x/etc/shadow"] {
            let o = lxr.run(&["file", "pull", &format!("f2/tmp/{link}"), "-"]);
            assert!(!o.status.success() && o.stdout.is_empty(), "{link}: {o:?}");
        }
        let o = lxr.run(&["file", "pull", "f2/tmp/hn", "-"]);
        assert_eq!(out(&o), "container-hostname", "{o:?}");
        // To a file of the user's.
        let to = host.path().join(format!("hn-{stopped}"));
        lxr.ok(&["file", "pull", "f2/tmp/hn", &to.display().to_string()]);
        assert_eq!(
            std::fs::read_to_string(&to).unwrap(),
            "container-hostname\n"
        );
        assert_eq!(std::fs::metadata(&to).unwrap().uid(), uid);
    }
}

#[test]
fn file_pull_r_recreates_symlinks_reads_nothing_through_them_and_skips_fifos() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f3"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    lxr.ok(&["launch", "busybox", "f3", "-c", "network.mode=none"]);
    lxr.ok(&[
        "exec", "f3", "sh", "-c",
        "mkdir -p /srv/t/sub && echo data > /srv/t/sub/f && chmod 4755 /srv/t/sub/f && \
         ln -s /etc /srv/t/etc && ln -s /etc/passwd /srv/t/pw && ln -s ../../../../../etc/shadow /srv/t/up && \
         mkfifo /srv/t/fifo && echo top > /srv/t/a",
    ]);
    for (i, stopped) in [false, true].into_iter().enumerate() {
        if stopped {
            lxr.ok(&["stop", "f3"]);
        }
        let dest = host.path().join(format!("d{i}"));
        let o = run_within(
            &lxr,
            &[
                "file",
                "pull",
                "-r",
                "f3/srv/t",
                &dest.display().to_string(),
            ],
            30,
        );
        assert!(o.status.success(), "{o:?}");
        assert!(
            err(&o).contains("fifo") && err(&o).contains("skipped"),
            "{o:?}"
        );
        assert!(!dest.join("fifo").exists());
        for (link, target) in [
            ("etc", "/etc"),
            ("pw", "/etc/passwd"),
            ("up", "../../../../../etc/shadow"),
        ] {
            let p = dest.join(link);
            assert!(
                std::fs::symlink_metadata(&p)
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{link}"
            );
            assert_eq!(std::fs::read_link(&p).unwrap(), Path::new(target));
        }
        assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "top\n");
        let f = dest.join("sub/f");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "data\n");
        let md = std::fs::metadata(&f).unwrap();
        // The user's, the container file's mode without its set-id bit.
        assert_eq!((md.uid(), md.mode() & 0o7777), (uid, 0o755));
    }
}

#[test]
fn file_pull_r_of_a_running_root_skips_proc_sys_and_devices_and_ends() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f8"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    lxr.ok(&["launch", "busybox", "f8", "-c", "network.mode=none"]);
    let dest = host.path().join("all");
    let o = run_within(
        &lxr,
        &["file", "pull", "-r", "f8/", &dest.display().to_string()],
        120,
    );
    assert!(o.status.success(), "{o:?}");
    let e = err(&o);
    for skipped in [
        "/proc: a proc filesystem",
        "/sys: a sysfs filesystem",
        "/dev/pts: a devpts",
        "dev/null: a FIFO, socket or device",
    ] {
        assert!(e.contains(skipped), "{skipped}: {e}");
    }
    assert_eq!(std::fs::read_dir(dest.join("proc")).unwrap().count(), 0);
    assert!(!dest.join("dev/null").exists());
    assert!(dest.join("etc/inittab").is_file());
    assert!(std::fs::symlink_metadata(dest.join("bin/ls"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn file_pull_r_never_writes_through_a_symlink_in_the_destination() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f4"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    let victim = user_file(host.path(), "victim", "keep\n", 0o644);
    let victim_dir = host.path().join("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::os::unix::fs::chown(&victim_dir, Some(uid), Some(gid)).unwrap();
    lxr.ok(&["launch", "busybox", "f4", "-c", "network.mode=none"]);
    lxr.ok(&[
        "exec",
        "f4",
        "sh",
        "-c",
        "mkdir -p /t/sub && echo evil > /t/f && echo evil > /t/sub/g",
    ]);
    // The destination tree already holds symlinks where the container's names land (as a
    // file replaced by a symlink during the pull would). `dest` exists: the pull goes into
    // `dest/t`.
    let dest = host.path().join("dest");
    std::fs::create_dir_all(dest.join("t")).unwrap();
    std::os::unix::fs::symlink(&victim, dest.join("t/f")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, dest.join("t/sub")).unwrap();
    for p in [
        &dest,
        &dest.join("t"),
        &dest.join("t/f"),
        &dest.join("t/sub"),
    ] {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    }
    let o = run_within(
        &lxr,
        &["file", "pull", "-r", "f4/t", &dest.display().to_string()],
        30,
    );
    assert!(!o.status.success() && err(&o).contains("symlink"), "{o:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    assert!(!victim_dir.join("g").exists());
}

#[test]
fn file_push_owner_mode_parents_recursive_stdin_stdout() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f5"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    let a = user_file(host.path(), "a", "alpha\n", 0o751);
    lxr.ok(&["launch", "busybox", "f5", "-c", "network.mode=none"]);
    // Into a directory, the source's mode, root's.
    lxr.ok(&["file", "push", &a, "f5/tmp/"]);
    assert_eq!(stat(&lxr, "f5", "/tmp/a"), "0 0 751");
    // --uid/--gid/--mode; -p makes the parents.
    lxr.ok(&[
        "file",
        "push",
        "-p",
        "--uid",
        "1000",
        "--gid",
        "1001",
        "--mode",
        "0600",
        &a,
        "f5/new/deep/b",
    ]);
    assert_eq!(stat(&lxr, "f5", "/new/deep/b"), "1000 1001 600");
    assert_eq!(stat(&lxr, "f5", "/new/deep"), "1000 1001 755");
    let o = lxr.run(&["file", "push", &a, "f5/missing/dir/c"]);
    assert!(!o.status.success(), "{o:?}");
    // Outside the container's ids: refused.
    let o = lxr.run(&["file", "push", "--uid", "70000", &a, "f5/tmp/d"]);
    assert!(!o.status.success() && err(&o).contains("70000"), "{o:?}");
    // -r: a tree, its symlink as a symlink.
    let tree = host.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    user_file(&tree.join("sub"), "f", "in tree\n", 0o640);
    std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();
    for p in [&tree, &tree.join("sub")] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    std::os::unix::fs::lchown(tree.join("link"), Some(uid), Some(gid)).unwrap();
    let o = lxr.run(&["file", "push", &tree.display().to_string(), "f5/tmp/"]);
    assert!(!o.status.success() && err(&o).contains("-r"), "{o:?}");
    lxr.ok(&[
        "file",
        "push",
        "-r",
        "-p",
        &tree.display().to_string(),
        "f5/srv/",
    ]);
    assert_eq!(lxr.ok(&["exec", "f5", "cat", "/srv/tree/sub/f"]), "in tree");
    assert_eq!(
        lxr.ok(&["exec", "f5", "readlink", "/srv/tree/link"]),
        "/etc/passwd"
    );
    assert_eq!(stat(&lxr, "f5", "/srv/tree/sub/f"), "0 0 640");
    // stdin and stdout.
    let o = lxr.run_with_input(&["file", "push", "-", "f5/tmp/from-stdin"], b"typed\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stat(&lxr, "f5", "/tmp/from-stdin"), "0 0 644");
    assert_eq!(lxr.ok(&["file", "pull", "f5/tmp/from-stdin", "-"]), "typed");
    // A directory is not pulled without -r; a FIFO is never read.
    let o = lxr.run(&["file", "pull", "f5/srv", "-"]);
    assert!(!o.status.success(), "{o:?}");
    lxr.ok(&["exec", "f5", "mkfifo", "/tmp/fifo"]);
    let o = run_within(&lxr, &["file", "pull", "f5/tmp/fifo", "-"], 10);
    assert!(
        !o.status.success() && err(&o).contains("not a regular file"),
        "{o:?}"
    );
}

#[test]
fn file_edit_through_editor_and_stdin_keeps_owner_and_mode() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f6"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    lxr.ok(&["launch", "busybox", "f6", "-c", "network.mode=none"]);
    lxr.ok(&[
        "exec",
        "f6",
        "sh",
        "-c",
        "echo old line > /etc/motd; chown 1000:1000 /etc/motd; chmod 640 /etc/motd",
    ]);
    // Not a terminal: the new content is stdin.
    let o = lxr.run_with_input(&["file", "edit", "f6/etc/motd"], b"from stdin\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(lxr.ok(&["exec", "f6", "cat", "/etc/motd"]), "from stdin");
    assert_eq!(stat(&lxr, "f6", "/etc/motd"), "1000 1000 640");
    // A terminal (script(1)): $EDITOR edits a copy, which goes back.
    let editor = user_file(
        host.path(),
        "ed.sh",
        "#!/bin/sh\nsed -i 's/stdin/the editor/' \"$1\"\n",
        0o755,
    );
    let on_a_terminal = |editor: &str| {
        let line = format!("{} file edit f6/etc/motd", e2e::cgm::bin("lxr").display());
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--init-groups", "env"])
            .arg(format!("XDG_DATA_HOME={}", lxr.data.display()))
            .arg(format!("LXR_CGMANAGER={}", lxr.cgm))
            .arg("LXR_LXCFS=/nonexistent")
            .arg(format!("EDITOR={editor}"))
            .args(["script", "-qfec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = on_a_terminal(&editor);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        lxr.ok(&["exec", "f6", "cat", "/etc/motd"]),
        "from the editor"
    );
    assert_eq!(stat(&lxr, "f6", "/etc/motd"), "1000 1000 640");
    // A failing editor changes nothing.
    let o = on_a_terminal("false");
    assert!(!o.status.success(), "{o:?}");
    assert_eq!(
        lxr.ok(&["exec", "f6", "cat", "/etc/motd"]),
        "from the editor"
    );
    // A new file: root's, 0644.
    let o = lxr.run_with_input(&["file", "edit", "f6/etc/new"], b"new\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stat(&lxr, "f6", "/etc/new"), "0 0 644");
}

#[test]
fn file_delete_removes_the_link_not_its_target_and_dirs_only_with_force() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["f7"]);
    let (uid, gid) = test_user("lxrtest1");
    let host = user_dir(uid, gid);
    let keep = user_file(host.path(), "keep", "keep\n", 0o644);
    lxr.ok(&["launch", "busybox", "f7", "-c", "network.mode=none"]);
    lxr.ok(&[
        "exec", "f7", "sh", "-c",
        &format!("mkdir -p /d/e && echo x > /d/e/f && echo t > /target && ln -s /target /l && ln -s {keep} /hl && ln -s / /r"),
    ]);
    lxr.ok(&["file", "delete", "f7/l", "f7/hl"]);
    assert_eq!(lxr.ok(&["exec", "f7", "cat", "/target"]), "t");
    assert!(Path::new(&keep).exists());
    let o = lxr.run(&["file", "delete", "f7/d"]);
    assert!(
        !o.status.success() && err(&o).contains("not empty"),
        "{o:?}"
    );
    // Through a planted `/r -> /`: the container's own /d.
    lxr.ok(&["file", "delete", "-f", "f7/r/d"]);
    assert!(!lxr
        .run(&["exec", "f7", "test", "-e", "/d"])
        .status
        .success());
    let o = lxr.run(&["file", "delete", "f7/"]);
    assert!(!o.status.success(), "{o:?}");
}
