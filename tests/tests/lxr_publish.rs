//! Containers from images and images from containers, as lxrtest1: `init` (created, not
//! started), `--ephemeral` (deleted when it stops, by `stop`, `poweroff` inside, a killed
//! init, a killed monitor then a `list`; kept across `reboot`, `restart` and `publish
//! --force`), `publish` (stopped containers; a running one only with `--force`, which starts
//! it again) and `image export`, with the round trip publish → export → import in a second
//! data directory → launch → the same content, owners and modes, the same fingerprint.
//! Hostile: the container's root plants symlinks to the user's files and to
//! `/proc/self/root`, a FIFO and a socket before a publish — the image holds the symlinks as
//! symlinks and nothing of the host, and the publish does not hang; a published image meets
//! the import's size limit. With Debian 12 and systemd (cgroups from cgmanager): an
//! ephemeral container survives `systemctl reboot` and goes on `systemctl poweroff`; a
//! published Debian container boots from its image.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::lxr::{
    fingerprint, image_work, sh, subuid_base, unconfined, user_dir, wait_for, Cleanup, Lxr,
};

fn sha256(file: &Path) -> String {
    sh(&format!("sha256sum {}", file.display()))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn state(lxr: &Lxr, name: &str) -> String {
    lxr.ok(&["info", name])
        .lines()
        .find_map(|l| l.strip_prefix("Status: "))
        .unwrap_or_default()
        .to_string()
}

/// `image export` of `image` into a fresh directory lxrtest1 can write; the files written.
fn export(lxr: &Lxr, image: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    let dir = user_dir(uid, gid);
    let out = lxr.ok(&["image", "export", image, dir.path().to_str().unwrap()]);
    let files = out.lines().map(PathBuf::from).collect();
    (dir, files)
}

/// The test image (busybox, with a `create` template for /etc/hostname) imported as `mini`.
fn import_mini(lxr: &Lxr) -> (tempfile::TempDir, String) {
    let (work, tree) = image_work();
    let file = work.path().join("mini.tar.xz");
    sh(&format!(
        "tar -C {} --numeric-owner -cJf {} metadata.yaml templates rootfs",
        tree.display(),
        file.display()
    ));
    let fp = fingerprint(&lxr.ok(&["image", "import", file.to_str().unwrap(), "--alias", "mini"]));
    (work, fp)
}

#[test]
fn publish_export_import_elsewhere_launch_gives_the_same_content() {
    let (_home, lxr) = unconfined();
    let (_home2, lxr2) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["src1"]);
    let _cleanup2 = Cleanup(&lxr2, vec!["dst1", "dst2"]);
    let (_work, _) = import_mini(&lxr);
    lxr.ok(&["launch", "mini", "src1"]);
    lxr.ok(&[
        "exec",
        "src1",
        "--",
        "sh",
        "-c",
        "echo marker-content > /root/marker && chown 1234:4321 /root/marker && \
         chmod 2640 /root/marker && ln -s marker /root/link",
    ]);
    lxr.ok(&["stop", "src1"]);
    let out = lxr.ok(&[
        "publish",
        "src1",
        "--alias",
        "pub1",
        "--compression",
        "xz",
        "description=published by the test",
    ]);
    let fp = fingerprint(&out);
    let list = lxr.ok(&["image", "list", "--format", "json"]);
    assert!(
        list.contains(&fp) && list.contains("\"pub1\"") && list.contains("published by the test"),
        "{list}"
    );
    // The container is untouched and still starts.
    assert_eq!(state(&lxr, "src1"), "STOPPED");

    // Export: the tarball as published, named as Incus names it; its sha256 is the
    // fingerprint.
    let (dir, files) = export(&lxr, "pub1");
    assert_eq!(files, vec![dir.path().join(format!("{fp}.tar.xz"))]);
    assert_eq!(sha256(&files[0]), fp);
    // A unified image as Incus's image format documentation describes it.
    let f = files[0].display();
    let members = sh(&format!("tar -tJf {f}"));
    let names: Vec<&str> = members.lines().collect();
    assert_eq!(names[0], "metadata.yaml", "{members}");
    assert!(names
        .iter()
        .all(|n| *n == "metadata.yaml" || n.starts_with("templates/") || n.starts_with("rootfs/")));
    assert!(names.contains(&"templates/hostname.tpl") && names.contains(&"rootfs/root/marker"));
    let meta = sh(&format!("tar -xJOf {f} metadata.yaml"));
    for want in [
        "architecture: x86_64",
        "creation_date:",
        "description: published by the test",
        "os: busybox",
        "template: hostname.tpl",
    ] {
        assert!(meta.contains(want), "{want} in {meta}");
    }
    let listing = sh(&format!("tar -tvJf {f} --numeric-owner rootfs/root/marker"));
    assert!(listing.starts_with("-rw-r-S--- 1234/4321"), "{listing}");

    // Elsewhere (another data directory): the same fingerprint, the same content.
    let out2 = lxr2.ok(&["image", "import", &files[0].display().to_string()]);
    assert_eq!(fingerprint(&out2), fp, "{out2}");
    lxr2.ok(&["launch", &fp[..12], "dst1"]);
    assert_eq!(
        lxr2.ok(&["exec", "dst1", "--", "cat", "/root/marker"]),
        "marker-content"
    );
    assert_eq!(
        lxr2.ok(&[
            "exec",
            "dst1",
            "--",
            "stat",
            "-c",
            "%u:%g %a",
            "/root/marker"
        ]),
        "1234:4321 2640"
    );
    assert_eq!(
        lxr2.ok(&["exec", "dst1", "--", "readlink", "/root/link"]),
        "marker"
    );
    // On the host: the second store's container ids.
    // (dst1 is an overlay of the imported image: the marker is in the image's layer.)
    let base = subuid_base("lxrtest1");
    let images = lxr2.data.join("lxr/images");
    let marker = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path().join("rootfs/root/marker"))
        .find(|p| p.exists())
        .unwrap();
    let md = std::fs::metadata(marker).unwrap();
    assert_eq!((md.uid(), md.gid()), (base + 1234, base + 4321));
    // The templates came along: /etc/hostname is rendered for the new container.
    assert_eq!(
        lxr2.ok(&["exec", "dst1", "--", "cat", "/etc/hostname"]),
        "dst1"
    );
    // Exported from there again: still the same bytes.
    let (_dir2, files2) = export(&lxr2, &fp[..12]);
    assert_eq!(sha256(&files2[0]), fp);

    // Other compressions: a plain tarball and gzip (the default) round-trip too.
    for (args, ext) in [
        (&["--compression", "none"][..], ".tar"),
        (&[][..], ".tar.gz"),
    ] {
        let mut a = vec!["publish", "src1"];
        a.extend_from_slice(args);
        let fp = fingerprint(&lxr.ok(&a));
        let (_d, files) = export(&lxr, &fp);
        assert_eq!(
            files[0].file_name().unwrap().to_string_lossy(),
            format!("{fp}{ext}")
        );
        assert_eq!(sha256(&files[0]), fp);
        let out = lxr2.ok(&["image", "import", &files[0].display().to_string()]);
        assert_eq!(fingerprint(&out), fp);
    }
    lxr2.ok(&["launch", &fp[..12], "dst2"]);
    assert_eq!(
        lxr2.ok(&["exec", "dst2", "--", "cat", "/root/marker"]),
        "marker-content"
    );
    // Nothing of the publishes is left in the store but the images.
    let leftovers: Vec<String> = std::fs::read_dir(lxr.data.join("lxr/images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".publish") || n.starts_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn export_of_a_split_image_gives_both_files_back() {
    let (_home, lxr) = unconfined();
    let (work, tree) = image_work();
    let w = work.path();
    sh(&format!(
        "tar -C {t} --numeric-owner -cJf {w}/meta.tar.xz metadata.yaml templates && \
         mksquashfs {t}/rootfs {w}/rootfs.squashfs -noappend -quiet",
        t = tree.display(),
        w = w.display()
    ));
    let (meta, sq) = (w.join("meta.tar.xz"), w.join("rootfs.squashfs"));
    let fp = fingerprint(&lxr.ok(&[
        "image",
        "import",
        meta.to_str().unwrap(),
        sq.to_str().unwrap(),
    ]));
    let (dir, files) = export(&lxr, &fp);
    let (m2, r2) = (
        dir.path().join(format!("meta-{fp}.tar.xz")),
        dir.path().join(format!("{fp}.squashfs")),
    );
    assert_eq!(files, vec![m2.clone(), r2.clone()]);
    assert_eq!(std::fs::read(&m2).unwrap(), std::fs::read(&meta).unwrap());
    assert_eq!(std::fs::read(&r2).unwrap(), std::fs::read(&sq).unwrap());
    // An export never overwrites: the same directory again is refused, the files unchanged.
    let o = lxr.run(&["image", "export", &fp, dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&m2).unwrap(), std::fs::read(&meta).unwrap());
    // An image imported before lxr kept the files says so.
    let record = lxr.data.join(format!("lxr/images/{fp}/image.json"));
    let text = std::fs::read_to_string(&record).unwrap();
    let i = text.find("\"files\"").unwrap();
    std::fs::write(&record, format!("{}\"old\": 1\n}}", &text[..i])).unwrap();
    let o = lxr.run(&["image", "export", &fp, "/tmp"]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("before lxr kept imported files"),
        "{o:?}"
    );
}

#[test]
fn publish_of_a_running_container_needs_force_and_starts_it_again() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["run1", "eph1"]);
    lxr.ok(&["launch", "busybox", "run1"]);
    lxr.sh("run1", "echo live > /root/f");
    let pid = lxr.pid("run1").unwrap();
    let o = lxr.run(&["publish", "run1", "--alias", "r"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"),
        "{o:?}"
    );
    assert_eq!(
        lxr.pid("run1"),
        Some(pid),
        "a refused publish left it alone"
    );
    assert!(!lxr.ok(&["image", "list"]).contains(" r "));
    let fp = fingerprint(&lxr.ok(&["publish", "run1", "--alias", "r", "--force"]));
    let again = lxr
        .pid("run1")
        .expect("running again after publish --force");
    assert_ne!(again, pid, "it was stopped for the publish");
    assert_eq!(lxr.ok(&["exec", "run1", "--", "cat", "/root/f"]), "live");
    let (_d, files) = export(&lxr, "r");
    assert_eq!(sha256(&files[0]), fp);
    assert_eq!(
        sh(&format!("tar -xzOf {} rootfs/root/f", files[0].display())),
        "live"
    );

    // The alias is taken: refused before the container is stopped, unless --reuse moves it.
    let o = lxr.run(&["publish", "run1", "--alias", "r", "--force"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--reuse"),
        "{o:?}"
    );
    assert_eq!(lxr.pid("run1"), Some(again));
    let fp2 = fingerprint(&lxr.ok(&["publish", "run1", "--alias", "r", "--force", "--reuse"]));
    assert_ne!(fp2, fp);
    assert!(lxr.ok(&["image", "alias", "list"]).contains(&fp2[..12]));
    assert!(
        lxr.ok(&["image", "list"]).contains(&fp[..12]),
        "the old image stays"
    );
    lxr.ok(&["image", "alias", "rename", "r", "r2"]);
    let aliases = lxr.ok(&["image", "alias", "list"]);
    assert!(
        aliases.starts_with("r2 ") && aliases.contains(&fp2[..12]),
        "{aliases}"
    );
    assert!(!lxr
        .run(&["image", "alias", "rename", "r", "r3"])
        .status
        .success());

    // An ephemeral container is not deleted by the stop a publish --force makes.
    lxr.ok(&["launch", "busybox", "eph1", "--ephemeral"]);
    lxr.ok(&["publish", "eph1", "--force"]);
    assert!(
        lxr.pid("eph1").is_some(),
        "ephemeral container kept and running"
    );
    lxr.ok(&["stop", "eph1"]);
    assert!(!lxr.exists("eph1"));
}

#[test]
fn ephemeral_containers_are_deleted_when_they_stop_not_when_they_reboot() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["e1", "e2", "e3", "e4", "e5", "e6", "e7"]);
    // stop
    lxr.ok(&["launch", "busybox", "e1", "-e"]);
    assert!(lxr
        .ok(&["info", "e1"])
        .contains("Type: container (ephemeral)"));
    lxr.ok(&["stop", "e1"]);
    assert!(!lxr.exists("e1"), "deleted when stop returns");
    assert!(!lxr.ok(&["list"]).contains("e1"));
    assert!(!lxr.data.join("lxr/run/e1").exists() && !lxr.data.join("lxr/run/e1.lock").exists());
    // poweroff inside
    lxr.ok(&["launch", "busybox", "e2", "--ephemeral"]);
    lxr.ok(&["exec", "e2", "--", "poweroff"]);
    wait_for("e2 deleted after poweroff", 30, || !lxr.exists("e2"));
    // the init killed
    lxr.ok(&["launch", "busybox", "e3", "-e"]);
    let pid = lxr.pid("e3").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("e3 deleted after kill -9 of its init", 30, || {
        !lxr.exists("e3")
    });
    // reboot inside: kept, and running again
    lxr.ok(&["launch", "busybox", "e4", "-e"]);
    let pid = lxr.pid("e4").unwrap();
    lxr.ok(&["exec", "e4", "--", "reboot"]);
    wait_for("e4 back after reboot", 30, || {
        lxr.pid("e4").is_some_and(|p| p != pid)
    });
    assert!(lxr.exists("e4"));
    // restart: kept
    lxr.ok(&["restart", "e4"]);
    assert!(lxr.exists("e4") && lxr.pid("e4").is_some());
    // delete --force of a running ephemeral one: gone, without waiting on itself
    let t0 = Instant::now();
    lxr.ok(&["delete", "--force", "e4"]);
    assert!(!lxr.exists("e4") && t0.elapsed() < Duration::from_secs(4));
    // init --ephemeral: created stopped, and stays until it has run
    lxr.ok(&["init", "busybox", "e5", "--ephemeral"]);
    assert_eq!(state(&lxr, "e5"), "STOPPED");
    lxr.ok(&["list"]);
    assert!(lxr.exists("e5"));
    lxr.ok(&["start", "e5"]);
    lxr.ok(&["stop", "e5"]);
    assert!(!lxr.exists("e5"));
    // its monitor killed, then its init: the next `list` deletes it; or the next `start`
    for (name, then) in [("e6", "list"), ("e7", "start")] {
        lxr.ok(&["launch", "busybox", name, "-e"]);
        let (monitor, init) = monitor_and_init(&lxr, name);
        for p in [monitor, init] {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
        wait_for("the init gone", 10, || {
            std::fs::read_to_string(format!("/proc/{init}/stat"))
                .map_or(true, |s| s.contains(") Z "))
        });
        assert!(lxr.exists(name), "nobody was left to delete it");
        let o = if then == "list" {
            lxr.run(&["list"])
        } else {
            lxr.run(&[then, name])
        };
        assert!(!lxr.exists(name), "{then} deleted it: {o:?}");
        if then == "start" {
            assert!(
                !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("ephemeral"),
                "{o:?}"
            );
        }
    }
    // Not a config key.
    let o = lxr.run(&["init", "busybox", "e1", "-c", "ephemeral=true"]);
    assert!(!o.status.success() && !lxr.exists("e1"));
}

#[test]
fn init_creates_a_stopped_container() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["i1"]);
    assert_eq!(
        lxr.ok(&["init", "busybox", "i1", "-c", "console.log.size=64KiB"]),
        "Created i1"
    );
    assert_eq!(state(&lxr, "i1"), "STOPPED");
    let info = lxr.ok(&["info", "i1"]);
    assert!(
        info.contains("Type: container\n") && info.contains("console.log.size: 64KiB"),
        "{info}"
    );
    lxr.ok(&["start", "i1"]);
    assert_eq!(state(&lxr, "i1"), "RUNNING");
    lxr.ok(&["stop", "i1"]);
    assert!(lxr.exists("i1"), "not ephemeral: kept");
    let o = lxr.run(&["init", "busybox", "i1"]);
    assert!(!o.status.success(), "exists already");
}

/// The monitor's and the init's pids, from the container's `state.json`.
fn monitor_and_init(lxr: &Lxr, name: &str) -> (i32, i32) {
    let st = std::fs::read_to_string(lxr.data.join(format!("lxr/run/{name}/state.json"))).unwrap();
    let field = |k: &str| -> i32 {
        let i = st.find(&format!("\"{k}\":")).unwrap() + k.len() + 3;
        st[i..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("monitor_pid"), field("init_pid"))
}

/// Run lxr with a deadline: a publish that hangs (on a FIFO, say) fails the test.
fn run_within(lxr: &Lxr, args: &[&str], secs: u64) -> Output {
    let mut c = lxr
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if c.try_wait().unwrap().is_some() {
            return c.wait_with_output().unwrap();
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            let _ = c.kill();
            let _ = c.wait();
            panic!("lxr {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn publish_of_a_hostile_rootfs_archives_symlinks_as_symlinks_and_nothing_of_the_host() {
    let (home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["h1"]);
    // A secret of the user's, where the planted symlinks point.
    let secret_dir = home.path().join("secret");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("key"), "HOST-SECRET-4711\n").unwrap();
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    std::os::unix::fs::chown(&secret_dir, Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(secret_dir.join("key"), Some(uid), Some(gid)).unwrap();
    lxr.ok(&["launch", "busybox", "h1"]);
    let plant = format!(
        "ln -s /home/lxrtest1/.ssh /etc/x && ln -s /proc/self/root /etc/procroot && \
         ln -s {s} /etc/secret && ln -s {s}/key /etc/key && ln -s ../../../../../.. /etc/up && \
         mkfifo /root/fifo && touch \"/root/$(printf 'a\\nb')\" \"/root/$(printf '\\033[31mred')\" && \
         mkdir /root/locked && echo kept > /root/locked/f && chmod 000 /root/locked",
        s = secret_dir.display()
    );
    lxr.ok(&["exec", "h1", "--", "sh", "-c", &plant]);
    lxr.ok(&["stop", "h1"]);
    // A socket too (busybox has no tool to make one): bound where the container's root
    // could have, and given to it.
    let base = subuid_base("lxrtest1");
    // Stopped, an overlay container's files are in its own layer (`upper/`).
    let ct = lxr.data.join("lxr/containers/h1");
    let layer = if ct.join("upper/root").is_dir() {
        ct.join("upper")
    } else {
        ct.join("rootfs")
    };
    let sock = layer.join("root/sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::os::unix::fs::lchown(&sock, Some(base), Some(base)).unwrap();
    let o = run_within(&lxr, &["publish", "h1", "--alias", "hostile"], 120);
    drop(listener);
    assert!(o.status.success(), "{o:?}");
    let fp = fingerprint(&String::from_utf8_lossy(&o.stdout));
    let (_d, files) = export(&lxr, "hostile");
    let f = files[0].display();
    let listing = sh(&format!("tar -tvzf {f} --numeric-owner"));
    for want in [
        "rootfs/etc/x -> /home/lxrtest1/.ssh",
        "rootfs/etc/procroot -> /proc/self/root",
        &format!("rootfs/etc/secret -> {}", secret_dir.display()),
        "rootfs/etc/up -> ../../../../../..",
    ] {
        assert!(listing.contains(want), "{want} in {listing}");
    }
    assert!(listing
        .lines()
        .any(|l| l.starts_with('p') && l.ends_with("rootfs/root/fifo")));
    assert!(!listing.contains("rootfs/root/sock"), "sockets are skipped");
    assert!(
        !listing.contains("rootfs/etc/secret/") && !listing.contains("rootfs/etc/procroot/"),
        "no symlink followed"
    );
    // Nothing of the host in the bytes.
    let mut all = Vec::new();
    Command::new("sh")
        .args(["-c", &format!("gzip -dc {f}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert!(!String::from_utf8_lossy(&all).contains("HOST-SECRET-4711"));
    // Every entry is the container's: no owner outside its ids.
    for l in listing.lines() {
        let owner = l.split_whitespace().nth(1).unwrap();
        let (u, g) = owner.split_once('/').unwrap();
        assert!(
            u.parse::<u32>().unwrap() < 65536 && g.parse::<u32>().unwrap() < 65536,
            "{l}"
        );
    }
    // And it launches, the symlinks still symlinks.
    let _cleanup2 = Cleanup(&lxr, vec!["h2"]);
    lxr.ok(&["launch", &fp[..12], "h2"]);
    assert_eq!(
        lxr.ok(&["exec", "h2", "--", "readlink", "/etc/key"]),
        format!("{}/key", secret_dir.display())
    );
    // Names with a line break and an escape sequence, and an unreadable directory, come
    // back as they were.
    assert_eq!(lxr.sh("h2", "ls /root | grep -c -e b -e red"), "2");
    assert_eq!(
        lxr.sh("h2", "stat -c %a /root/locked; cat /root/locked/f"),
        "0\nkept"
    );
    assert_eq!(
        std::fs::read_to_string(secret_dir.join("key")).unwrap(),
        "HOST-SECRET-4711\n"
    );
}

#[test]
fn a_published_image_meets_the_import_size_limit() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["big1"]);
    lxr.ok(&["init", "busybox", "big1"]);
    let o = lxr.run(&[
        "publish",
        "big1",
        "--alias",
        "small",
        "--max-size",
        "200KiB",
    ]);
    assert!(!o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("size") || err.contains("maximum"), "{err}");
    let entries: Vec<String> = std::fs::read_dir(lxr.data.join("lxr/images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with(".lock") && n != ".builtin-busybox")
        .collect();
    assert!(entries.is_empty(), "nothing left in the store: {entries:?}");
    // With the room, it is published.
    lxr.ok(&["publish", "big1", "--alias", "small"]);
}

/// publish CONTAINER/SNAP gives the snapshot's content (a file changed after the snapshot has
/// its old content in the image), and works while the container runs.
#[test]
fn publish_of_a_snapshot_gives_the_snapshots_content() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["s1", "s2"]);
    lxr.ok(&["launch", "busybox", "s1"]);
    lxr.sh("s1", "echo old > /root/f");
    // Without cgmanager there is no freezer: a running container's snapshot is refused, so
    // this one is taken stopped; the publish is made while it runs.
    lxr.ok(&["stop", "--force", "s1"]);
    lxr.ok(&["snapshot", "create", "s1", "snap0"]);
    lxr.ok(&["start", "s1"]);
    lxr.sh("s1", "echo new > /root/f");
    let fp = fingerprint(&lxr.ok(&["publish", "s1/snap0"]));
    lxr.ok(&["launch", &fp[..12], "s2"]);
    assert_eq!(lxr.ok(&["exec", "s2", "--", "cat", "/root/f"]), "old");
}

#[test]
fn a_debian_ephemeral_container_survives_reboot_goes_on_poweroff_and_publishes() {
    let w = e2e::lxr::World::everywhere("lxr-publish-deb");
    let lxr = w.lxr(None);
    lxr.import_debian("debian12");
    let _cleanup = Cleanup(&lxr, vec!["deb1", "deb2", "deb3"]);
    // systemd's reboot keeps an ephemeral container, its poweroff deletes it.
    lxr.ok(&["launch", "debian12", "deb1", "--ephemeral"]);
    lxr.system_state("deb1");
    lxr.sh("deb1", "echo survived > /root/m");
    let pid = lxr.pid("deb1").unwrap();
    let _ = lxr.run(&["exec", "-T", "deb1", "--", "systemctl", "reboot"]);
    wait_for("deb1 back after reboot", 60, || {
        lxr.pid("deb1").is_some_and(|p| p != pid)
    });
    lxr.system_state("deb1");
    assert_eq!(
        lxr.ok(&["exec", "deb1", "--", "cat", "/root/m"]),
        "survived"
    );
    let _ = lxr.run(&["exec", "-T", "deb1", "--", "systemctl", "poweroff"]);
    wait_for("deb1 deleted after poweroff", 60, || !lxr.exists("deb1"));

    // Publish a Debian container (zstd) and launch the image: systemd boots, the file is there.
    lxr.ok(&["launch", "debian12", "deb2"]);
    lxr.system_state("deb2");
    lxr.ok(&[
        "exec",
        "deb2",
        "--",
        "sh",
        "-c",
        "echo published > /root/m && chown 1000:1000 /root/m",
    ]);
    let fp = fingerprint(&lxr.ok(&[
        "publish",
        "deb2",
        "--force",
        "--compression",
        "zstd",
        "--alias",
        "deb-pub",
        "description=debian, published",
    ]));
    assert!(lxr.pid("deb2").is_some(), "started again");
    let (_d, files) = export(&lxr, "deb-pub");
    assert_eq!(sha256(&files[0]), fp);
    lxr.ok(&["launch", "deb-pub", "deb3"]);
    let state = lxr.system_state("deb3");
    assert!(state == "running" || state == "degraded", "{state}");
    assert_eq!(
        lxr.ok(&["exec", "deb3", "--", "stat", "-c", "%u %n", "/root/m"]),
        "1000 /root/m"
    );
    assert_eq!(lxr.ok(&["exec", "deb3", "--", "hostname"]), "deb3");
}
