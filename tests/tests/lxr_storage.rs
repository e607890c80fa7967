//! lxr's container storage, snapshots, copy and rename as the unprivileged user `lxrtest1`, for
//! real: the overlay backend (the image's rootfs under a per-container upper layer, mounted in
//! the container's user namespace) seen from inside — whiteouts, copy-up, chown, hard links,
//! directory renames, isolation between two containers of one image, the image untouched —;
//! snapshot round trips of stopped and running (frozen, then thawed) containers; copies of
//! containers and snapshots; renames; and hostile cases: bad snapshot names, symlinks planted
//! by the container's root towards the user's files, a container writing during its snapshot,
//! `user.overlay.*` xattrs set from inside. The Debian image launches without being copied;
//! the copy backend on request (`LXR_STORAGE=copy`); the reflink backend on an xfs loop image
//! (`scripts/setup.sh` installs xfsprogs; skipped with a message where `mkfs.xfs` is missing),
//! refused on ext4.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use e2e::lxr::{unconfined, user_dir, Cleanup, Lxr, World};

/// lxr's stderr of a command that must fail.
fn fails(lxr: &Lxr, args: &[&str]) -> String {
    let o = lxr.run(args);
    assert!(
        !o.status.success(),
        "lxr {args:?} succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn data(lxr: &Lxr) -> PathBuf {
    lxr.data.join("lxr")
}

/// The snapshot names `snapshot list --format csv` shows.
fn snapshots(lxr: &Lxr, name: &str) -> Vec<String> {
    lxr.ok(&["snapshot", "list", name, "--format", "csv"])
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect()
}

/// `Disk usage: … (N bytes)` of `lxr info`.
fn disk_use(lxr: &Lxr, name: &str) -> u64 {
    let info = lxr.ok(&["info", name]);
    info.lines()
        .find_map(|l| l.strip_prefix("Disk usage: "))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no disk usage in {info}"))
}

#[test]
fn snapshot_round_trip_of_a_stopped_and_a_running_container() {
    // The freezer is delegated: a running container is frozen for its snapshot.
    let w = World::new("lxrstore");
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["s1"]);
    lxr.ok(&["launch", "busybox", "s1"]);
    assert!(lxr
        .ok(&["info", "s1"])
        .contains("Storage: overlay (image busybox)"));
    lxr.sh("s1", "echo one > /root/f");

    // Running: frozen for the copy (the freezer's state is watched meanwhile), thawed after,
    // still running.
    let pid = lxr.pid("s1").unwrap();
    let state = w.scratch.dir("freezer", "lxrtest1/lxr/s1/freezer.state");
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "THAWED");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (done, state) = (done.clone(), state.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(&state) {
                    seen.insert(s.trim().to_string());
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            seen
        })
    };
    lxr.ok(&["snapshot", "create", "s1"]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(
        seen.contains("FROZEN"),
        "never frozen during the snapshot: {seen:?}"
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "THAWED");
    let info = lxr.ok(&["info", "s1"]);
    assert!(info.contains("Frozen: no"), "{info}");
    assert_eq!(lxr.pid("s1"), Some(pid));
    assert_eq!(snapshots(&lxr, "s1"), ["snap0"]);

    // Change, restore (a running container is stopped, restored, started): the file is back.
    lxr.sh(
        "s1",
        "echo two > /root/f; echo new > /root/g; rm /etc/fstab",
    );
    lxr.ok(&["snapshot", "restore", "s1", "snap0"]);
    assert!(lxr.pid("s1").is_some(), "restarted after the restore");
    assert_eq!(lxr.sh("s1", "cat /root/f"), "one");
    assert_eq!(
        lxr.sh("s1", "ls /root/g /etc/fstab 2>&1 || true")
            .lines()
            .count(),
        2
    );
    assert!(lxr.sh("s1", "ls /etc").contains("fstab"));

    // Stopped: named, default names count up as Incus's, listed with a size.
    lxr.ok(&["stop", "s1"]);
    lxr.ok(&["snapshot", "create", "s1", "before-x"]);
    lxr.ok(&["snapshot", "create", "s1"]);
    assert_eq!(snapshots(&lxr, "s1"), ["snap0", "before-x", "snap1"]);
    let table = lxr.ok(&["snapshot", "list", "s1"]);
    assert!(table.contains("KiB"), "{table}");
    lxr.ok(&["start", "s1"]);
    lxr.sh("s1", "echo three > /root/f");
    lxr.ok(&["stop", "s1"]);
    lxr.ok(&["snapshot", "restore", "s1", "before-x"]);
    lxr.ok(&["start", "s1"]);
    assert_eq!(lxr.sh("s1", "cat /root/f"), "one");

    // Hostile or wrong names change nothing.
    for bad in ["../x", "a/b", "..", ".partial-x", ""] {
        let e = fails(&lxr, &["snapshot", "create", "s1", bad]);
        assert!(e.contains("invalid snapshot name"), "{bad}: {e}");
    }
    assert!(fails(&lxr, &["snapshot", "create", "s1", "snap0"]).contains("already has"));
    assert!(fails(&lxr, &["snapshot", "restore", "s1", "nope"]).contains("no snapshot"));
    assert!(fails(&lxr, &["snapshot", "delete", "s1", "../../s1"]).contains("invalid"));
    assert_eq!(snapshots(&lxr, "s1"), ["snap0", "before-x", "snap1"]);
    assert!(!data(&lxr).join("containers/x").exists());
    lxr.ok(&["snapshot", "delete", "s1", "before-x"]);
    assert_eq!(snapshots(&lxr, "s1"), ["snap0", "snap1"]);
}

/// A container busy writing while its snapshots are taken: it keeps running and each snapshot
/// is a usable container.
#[test]
fn a_container_writing_during_its_snapshot() {
    let w = World::new("lxrstorebusy");
    let lxr = w.lxr(None);
    let _cleanup = Cleanup(&lxr, vec!["b1", "b2"]);
    lxr.ok(&["launch", "busybox", "b1"]);
    lxr.ok(&[
        "exec",
        "b1",
        "--",
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /root/n.tmp; mv /root/n.tmp /root/n; \
         mkdir -p /root/d$((i % 50)); done >/dev/null 2>&1 &",
    ]);
    for _ in 0..5 {
        lxr.ok(&["snapshot", "create", "b1"]);
    }
    let info = lxr.ok(&["info", "b1"]);
    assert!(
        info.contains("Status: RUNNING") && info.contains("Frozen: no"),
        "{info}"
    );
    let n1: u64 = lxr.sh("b1", "cat /root/n").parse().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let n2: u64 = lxr.sh("b1", "cat /root/n").parse().unwrap();
    assert!(
        n2 > n1,
        "the writer runs on after the snapshots ({n1} → {n2})"
    );
    lxr.ok(&["copy", "b1/snap4", "b2"]);
    lxr.ok(&["start", "b2"]);
    let n: u64 = lxr.sh("b2", "cat /root/n").parse().unwrap();
    assert!(n > 0);
}

#[test]
fn copy_and_rename_keep_content_and_snapshots_and_delete_removes_all() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["c1", "c2", "c3", "c4", "c5"]);
    lxr.ok(&["launch", "busybox", "c1"]);
    lxr.sh("c1", "echo kept > /root/f");
    lxr.ok(&["stop", "c1"]);
    lxr.ok(&["snapshot", "create", "c1"]);
    lxr.ok(&["snapshot", "create", "c1", "other"]);

    // A copy has the content and the snapshots; a snapshot's copy or --instance-only none.
    lxr.ok(&["copy", "c1", "c2"]);
    lxr.ok(&["copy", "c1/snap0", "c3"]);
    lxr.ok(&["copy", "c1", "c4", "--instance-only"]);
    assert_eq!(snapshots(&lxr, "c2"), ["snap0", "other"]);
    assert!(snapshots(&lxr, "c3").is_empty());
    assert!(snapshots(&lxr, "c4").is_empty());
    let list = lxr.ok(&["list"]);
    assert!(list.contains("c2") && list.contains("STOPPED"), "{list}");
    for c in ["c2", "c3"] {
        lxr.ok(&["start", c]);
        assert_eq!(lxr.sh(c, "cat /root/f"), "kept");
        assert_eq!(
            lxr.sh(c, "cat /etc/hostname; hostname"),
            format!("{c}\n{c}")
        );
    }
    // The copies are independent.
    lxr.sh("c2", "echo mine > /root/f");
    assert_eq!(lxr.sh("c3", "cat /root/f"), "kept");
    assert!(fails(&lxr, &["copy", "c1", "c3"]).contains("already exists"));
    assert!(fails(&lxr, &["copy", "c1/nope", "c9"]).contains("no snapshot"));
    assert!(!data(&lxr).join("containers/c9").exists());

    // Rename: refused while running; the snapshots move along; a snapshot renamed.
    assert!(fails(&lxr, &["rename", "c2", "c5"]).contains("running"));
    lxr.ok(&["stop", "c2"]);
    lxr.ok(&["rename", "c2", "c5"]);
    assert!(!data(&lxr).join("containers/c2").exists());
    assert_eq!(snapshots(&lxr, "c5"), ["snap0", "other"]);
    lxr.ok(&["rename", "c5/other", "c5/renamed"]);
    assert_eq!(snapshots(&lxr, "c5"), ["snap0", "renamed"]);
    assert!(fails(&lxr, &["rename", "c5", "c1"]).contains("already exists"));
    lxr.ok(&["start", "c5"]);
    assert_eq!(lxr.sh("c5", "cat /root/f"), "mine");

    assert!(lxr
        .ok(&["info", "c5"])
        .contains("Snapshots: renamed, snap0"));
    // --reuse replaces a snapshot (Incus's flag).
    lxr.ok(&["stop", "c5"]);
    lxr.ok(&["snapshot", "create", "c5", "snap0", "--reuse"]);
    lxr.ok(&["start", "c5"]);
    lxr.sh("c5", "echo later > /root/f");
    lxr.ok(&["snapshot", "restore", "c5", "snap0"]);
    assert_eq!(lxr.sh("c5", "cat /root/f"), "mine");
    assert_eq!(snapshots(&lxr, "c5"), ["renamed", "snap0"]);

    // Delete takes the snapshots with it.
    lxr.ok(&["delete", "--force", "c5"]);
    assert!(!data(&lxr).join("containers/c5").exists());
}

#[test]
fn overlay_semantics_seen_from_inside() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["o1", "o2"]);
    lxr.ok(&["launch", "busybox", "o1"]);
    lxr.ok(&["launch", "busybox", "o2"]);
    let image = data(&lxr).join("images/.builtin-busybox/rootfs");
    let passwd_before = std::fs::read(image.join("etc/passwd")).unwrap();

    // A deleted image file (a whiteout) stays deleted across a restart; copy-up of root's
    // files, chown, hard links and a directory rename (EXDEV → mv copies) work.
    lxr.sh(
        "o1",
        "rm /etc/fstab && echo x >> /etc/passwd && chown 1000:1000 /etc/group && \
         ln /etc/group /root/g && mv /etc/init.d /etc/initd2 && \
         rm -rf /usr/sbin && mkdir /usr/sbin && touch /usr/sbin/mine",
    );
    lxr.ok(&["restart", "o1"]);
    // A directory removed and made again is opaque: the image's entries stay hidden.
    assert_eq!(lxr.sh("o1", "ls /usr/sbin"), "mine");
    let upper = data(&lxr).join("containers/o1/upper");
    assert!(xattrs(&upper.join("usr/sbin")).contains(&"user.overlay.opaque".to_string()));
    assert!(std::fs::read_dir(image.join("usr/sbin")).unwrap().count() > 1);
    assert_eq!(
        lxr.sh(
            "o1",
            "ls /etc/fstab 2>/dev/null; ls -n /etc/group | awk '{print $3\":\"$4}'"
        ),
        "1000:1000"
    );
    assert_eq!(
        lxr.sh("o1", "stat -c %i /etc/group; stat -c %i /root/g")
            .lines()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1,
        "hard link"
    );
    assert!(lxr.sh("o1", "ls /etc/initd2").contains("rcS"));
    assert!(lxr.sh("o1", "tail -1 /etc/passwd").ends_with('x'));

    // The image is unchanged on the host; the other container sees none of it.
    assert_eq!(
        std::fs::read(image.join("etc/passwd")).unwrap(),
        passwd_before
    );
    assert!(image.join("etc/fstab").exists());
    assert!(image.join("etc/init.d/rcS").exists());
    assert!(lxr.sh("o2", "ls /etc").contains("fstab"));
    assert_eq!(lxr.sh("o2", "ls -n /etc/group | awk '{print $3}'"), "0");
    // Only the container's own layer counts: a busybox container's is a few KiB.
    assert!(disk_use(&lxr, "o2") < 1 << 20);
    assert!(std::fs::read_to_string(data(&lxr).join("storage.json"))
        .unwrap()
        .contains("overlay"));
}

/// Container root plants symlinks to the user's files in its rootfs (the upper layer): the
/// snapshot, copy, restore and template writes lxr makes never follow one.
#[test]
fn symlinks_planted_by_container_root_lead_nowhere() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["h1", "h2", "h3", "h4"]);
    let victim = lxr.data.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    std::os::unix::fs::chown(&victim, Some(uid), Some(gid)).unwrap();
    let outside = lxr.data.display().to_string();
    lxr.ok(&["launch", "busybox", "h1"]);
    lxr.sh(
        "h1",
        &format!(
            "rm /etc/hostname && ln -s {v} /etc/hostname && ln -s {o} /root/data && \
             mkdir /root/x && ln -s {o}/lxr /root/x/lxr && ln -s {v} /victim",
            v = victim.display(),
            o = outside
        ),
    );
    lxr.ok(&["stop", "h1"]);
    lxr.ok(&["snapshot", "create", "h1"]);
    lxr.ok(&["copy", "h1", "h2"]);
    lxr.ok(&["copy", "h1/snap0", "h3"]);
    lxr.ok(&["snapshot", "restore", "h1", "snap0"]);
    // `/etc` itself a link out: the copy's hostname write skips it.
    lxr.ok(&["start", "h3"]);
    lxr.sh("h3", &format!("rm -rf /etc && ln -s {outside} /etc"));
    lxr.ok(&["stop", "h3"]);
    lxr.ok(&["copy", "h3", "h4"]);
    lxr.ok(&["delete", "h4"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let names: Vec<_> = std::fs::read_dir(&lxr.data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "nothing new beside lxr/ and victim: {names:?}"
    );
    // The links are still links inside, as the container made them.
    lxr.ok(&["start", "h2"]);
    assert_eq!(
        lxr.sh("h2", "readlink /etc/hostname"),
        victim.display().to_string()
    );
}

#[test]
fn a_storage_override_makes_full_copies() {
    let (_home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["f1", "f2"]);
    let o = lxr
        .command_env(&["LXR_STORAGE=copy"], &["launch", "busybox", "f1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let info = lxr.ok(&["info", "f1"]);
    assert!(info.contains("Storage: copy"), "{info}");
    assert!(data(&lxr).join("containers/f1/rootfs/bin/busybox").exists());
    lxr.sh("f1", "echo c > /root/f");
    lxr.ok(&["stop", "f1"]);
    lxr.ok(&["snapshot", "create", "f1"]);
    sh_start_change_restore(&lxr, "f1");
    lxr.ok(&["copy", "f1", "f2"]);
    lxr.ok(&["start", "f2"]);
    assert!(lxr.ok(&["info", "f2"]).contains("Storage: copy"));
    assert_eq!(lxr.sh("f2", "cat /root/f"), "c");
}

fn sh_start_change_restore(lxr: &Lxr, name: &str) {
    lxr.ok(&["start", name]);
    lxr.sh(name, "echo changed > /root/f");
    lxr.ok(&["snapshot", "restore", name, "snap0"]);
    assert_eq!(lxr.sh(name, "cat /root/f"), "c");
    lxr.ok(&["stop", name]);
}

/// lxcfs on a mount point the container's root may traverse.
fn lxcfs() -> (tempfile::TempDir, e2e::Daemon, PathBuf) {
    let dir = user_dir(0, 0);
    let mnt = dir.path().join("lxcfs");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = e2e::Daemon::ours_at(&mnt, &[]);
    (dir, daemon, mnt)
}

/// The Debian image is not copied: the container's own layer is a few KiB, its templates
/// wrote the hostname into it, systemd boots and stops; the image cannot be deleted under it;
/// container root cannot set overlay's own `user.overlay.*` xattrs through the overlay.
#[test]
fn launching_the_debian_image_does_not_copy_it() {
    let w = World::everywhere("lxr-storage-deb");
    let (_d, _lxcfs, mnt) = lxcfs();
    let lxr = w.lxr(Some(mnt));
    let out = lxr.import_debian("deb");
    let fp = out.rsplit(' ').next().unwrap().to_string();
    let _cleanup = Cleanup(&lxr, vec!["d1"]);
    lxr.ok(&["launch", "deb", "d1"]);
    let info = lxr.ok(&["info", "d1"]);
    assert!(
        info.contains(&format!("Storage: overlay (image {})", &fp[..12])),
        "{info}"
    );
    // A full copy is over 200 MiB; the upper layer holds what systemd wrote while booting
    // (journal, machine id, caches): a few MiB.
    let used = disk_use(&lxr, "d1");
    assert!(used < 24 << 20, "the container's own layer: {used} bytes");
    assert_eq!(lxr.sh("d1", "cat /etc/hostname"), "d1");
    let upper = data(&lxr).join("containers/d1/upper");
    assert!(
        upper.join("etc/hostname").exists(),
        "the template wrote into the upper layer"
    );

    // Overlay's own `user.overlay.*` xattrs (opaque directories, redirects) set by container
    // root through the overlay are escaped (kept as `user.overlay.overlay.*`, Linux 6.7+) or
    // refused: never read back as overlay's own. /etc made "opaque" still shows the image's
    // files after a restart.
    let setx = |path: &str, name: &str| {
        lxr.sh(
            "d1",
            &format!(
                "perl -e 'my ($p, $n, $v) = (\"{path}\", \"{name}\", \"y\"); \
                 print syscall(188, $p, $n, $v, 1, 0) == -1 ? \"refused\" : \"set\"'"
            ),
        )
    };
    lxr.sh("d1", "touch /root/x");
    assert_eq!(setx("/root/x", "user.test"), "set");
    let opaque = setx("/etc", "user.overlay.opaque");
    setx("/etc", "user.overlay.redirect");
    lxr.ok(&["restart", "d1"]);
    assert!(
        lxr.sh("d1", "ls /etc").contains("os-release"),
        "/etc not opaque"
    );
    if opaque == "set" {
        let names = xattrs(&upper.join("etc"));
        assert!(
            !names.iter().any(|n| n == "user.overlay.opaque"),
            "container root set overlay's own xattr: {names:?}"
        );
    }

    let e = fails(&lxr, &["image", "delete", "deb"]);
    assert!(e.contains("d1"), "{e}");
    lxr.ok(&["stop", "d1"]);
    lxr.ok(&["delete", "d1"]);
    lxr.ok(&["image", "delete", "deb"]);
    assert!(!data(&lxr).join("images").join(&fp).exists());
    assert!(!Path::new(&data(&lxr).join("containers/d1")).exists());
}

/// The xattr names of `path` (not following a symlink).
fn xattrs(path: &Path) -> Vec<String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 65536];
    // SAFETY: a NUL-terminated path and a buffer of the length given.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "llistxattr {}", path.display());
    buf.truncate(n as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect()
}

/// An xfs filesystem in a loop image, mounted for the test user (unmounted when dropped).
struct Xfs {
    dir: tempfile::TempDir,
}

impl Xfs {
    /// None where the host has no `mkfs.xfs` or no loop devices (the test then says so).
    fn new() -> Option<Xfs> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let img = dir.path().join("xfs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let run = |c: &mut std::process::Command| c.output().is_ok_and(|o| o.status.success());
        let ok = run(std::process::Command::new("truncate")
            .args(["-s", "400M"])
            .arg(&img))
            && run(std::process::Command::new("mkfs.xfs").arg("-q").arg(&img))
            && run(std::process::Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&mnt));
        if !ok {
            return None;
        }
        let (uid, gid) = e2e::cgm::test_user("lxrtest1");
        std::os::unix::fs::chown(&mnt, Some(uid), Some(gid)).unwrap();
        Some(Xfs { dir })
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.mnt())
            .status();
    }
}

/// The reflink backend on a filesystem with reflinks (xfs in a loop image): containers,
/// snapshots and copies share the image's blocks; on this host's ext4 it is refused cleanly.
#[test]
fn reflink_storage_on_xfs_and_refused_on_ext4() {
    // ext4 (the test's data directory): `cp --reflink=always` fails, nothing is left.
    let (_home, ext4) = unconfined();
    let o = ext4
        .command_env(&["LXR_STORAGE=reflink"], &["launch", "busybox", "e1"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "reflinks on ext4?");
    assert!(!data(&ext4).join("containers/e1").exists());

    let Some(xfs) = Xfs::new() else {
        eprintln!("no mkfs.xfs or loop device here: the reflink half of this test is skipped");
        return;
    };
    let lxr = Lxr {
        home: PathBuf::from("/home/lxrtest1"),
        data: xfs.mnt(),
        cgm: "/nonexistent/sock".into(),
        lxcfs: None,
    };
    let _cleanup = Cleanup(&lxr, vec!["r1", "r2"]);
    let run = |args: &[&str]| {
        let o = lxr
            .command_env(&["LXR_STORAGE=reflink"], args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["launch", "busybox", "r1"]);
    assert!(lxr.ok(&["info", "r1"]).contains("Storage: reflink"));
    lxr.sh("r1", "echo ref > /root/f");
    lxr.ok(&["stop", "r1"]);
    lxr.ok(&["snapshot", "create", "r1"]);
    lxr.ok(&["copy", "r1", "r2"]);
    lxr.ok(&["start", "r2"]);
    assert_eq!(lxr.sh("r2", "cat /root/f"), "ref");
    assert!(lxr.ok(&["info", "r2"]).contains("Storage: reflink"));
    lxr.ok(&["delete", "--force", "r2"]);
    lxr.ok(&["delete", "r1"]);
}

/// `lxr delete NAME/SNAP` deletes that snapshot, not the container (as `incus delete c1/snap0`).
#[test]
fn delete_name_slash_snap_deletes_the_snapshot_only() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["ds1"]);
    lxr.ok(&["init", "busybox", "ds1"]);
    lxr.ok(&["snapshot", "create", "ds1", "s0"]);
    lxr.ok(&["snapshot", "create", "ds1", "s1"]);
    lxr.ok(&["delete", "ds1/s0"]);
    let list = lxr.ok(&["snapshot", "list", "ds1"]);
    assert!(!list.contains("s0") && list.contains("s1"), "{list}");
    assert!(lxr.ok(&["info", "ds1"]).contains("Name: ds1"));
    let o = lxr.run(&["delete", "ds1/nope"]);
    assert!(!o.status.success(), "{o:?}");
}

/// `lxr` (args) interrupted `after` its start as a Ctrl-C does: SIGINT to its process group,
/// the processes it forked included.
fn interrupted(lxr: &Lxr, args: &[&str], after: std::time::Duration) {
    use std::os::unix::process::CommandExt;
    let mut child = lxr
        .command(args)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    // SAFETY: signalling the process group of the lxr this test started (its own group).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    child.wait().unwrap();
}

/// `name` is either not there at all or a whole container: listed with its image, its files
/// in place, and it starts and `sh -c cmd` prints `out`. Then it is deleted.
fn whole_or_none(lxr: &Lxr, name: &str, (cmd, out): (&str, &str), what: &str) {
    let dir = data(lxr).join("containers").join(name);
    let list = lxr.ok(&["list", "--format", "csv"]);
    let line = list.lines().find(|l| l.split(',').next() == Some(name));
    if !dir.exists() {
        assert!(line.is_none(), "{what}: listed without a directory: {list}");
        return;
    }
    let line = line.unwrap_or_else(|| panic!("{what}: a directory but not listed: {list}"));
    assert!(
        line.contains("busybox"),
        "{what}: listed without its image: {line}"
    );
    for f in ["config.yaml", "storage.json"] {
        assert!(dir.join(f).is_file(), "{what}: no {f}");
    }
    if !line.contains("RUNNING") {
        // (A start the interrupted launch's monitor carries on may be under way.)
        let o = lxr.run(&["start", name]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() || err.contains("already running"),
            "{what}: {err}"
        );
    }
    let o = lxr.run(&["exec", name, "--", "sh", "-c", cmd]);
    if !o.status.success() {
        let info = lxr.run(&["info", name]);
        panic!(
            "{what}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&info.stdout)
        );
    }
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), out, "{what}");
    lxr.ok(&["delete", "--force", name]);
}

/// A Ctrl-C can land at any moment of a `launch`, a `delete` or a `copy`: what is left is a
/// whole container or none, never a half one (a config without a rootfs was listed with no
/// image; half a copied rootfs looked whole), and a running source frozen for its copy is
/// thawed again.
#[test]
fn interrupted_launches_deletes_and_copies_leave_a_whole_container_or_none() {
    let w = World::new("lxrintr");
    let lxr = w.lxr(None);
    const LAUNCHED: [&str; 10] = ["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9"];
    const COPIES: [&str; 10] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
    let _cleanup = Cleanup(
        &lxr,
        [&LAUNCHED[..], &COPIES[..], &["src", "sweep"]].concat(),
    );
    let step = std::time::Duration::from_millis(25);
    for (i, name) in (0u32..).zip(LAUNCHED) {
        interrupted(&lxr, &["launch", "busybox", name], step * i);
        let what = format!("launch interrupted after {:?}", step * i);
        whole_or_none(&lxr, name, ("echo up", "up"), &what);
    }
    for (i, name) in (0u32..).zip(LAUNCHED) {
        lxr.ok(&["launch", "busybox", name]);
        interrupted(&lxr, &["delete", "--force", name], step * i);
        let what = format!("delete interrupted after {:?}", step * i);
        whole_or_none(&lxr, name, ("echo up", "up"), &what);
    }
    lxr.ok(&["launch", "busybox", "src"]);
    lxr.sh("src", "echo kept > /root/f");
    let state = w.scratch.dir("freezer", "lxrtest1/lxr/src/freezer.state");
    for (i, name) in (0u32..).zip(COPIES) {
        interrupted(&lxr, &["copy", "src", name], step * i);
        let what = format!("copy interrupted after {:?}", step * i);
        assert_eq!(
            std::fs::read_to_string(&state).unwrap().trim(),
            "THAWED",
            "{what}: the source stayed frozen"
        );
        whole_or_none(&lxr, name, ("cat /root/f", "kept"), &what);
    }
    assert_eq!(lxr.sh("src", "cat /root/f"), "kept");
    // What interrupted creates left in hiding goes with the next create.
    lxr.ok(&["init", "busybox", "sweep"]);
    let hidden: Vec<String> = std::fs::read_dir(data(&lxr).join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}
