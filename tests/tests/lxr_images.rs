//! lxr images for real: LXD/Incus unified (xz tarball) and split (tarball + squashfs) images
//! built here, imported by the unprivileged test user — fingerprints as LXD computes them,
//! owners mapped into the user's range, setuid bits and hard links kept, `create` templates
//! rendered — launched by alias and by fingerprint prefix, listed and deleted; bad files
//! refused without leaving anything in the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use e2e::cgm::test_user;
use e2e::lxr::{image_work, sh, subuid_base, unconfined, user_dir, Cleanup};

fn sha256(files: &str) -> String {
    sh(&format!("cat {files} | sha256sum"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn unified_and_split_images_import_launch_and_delete() {
    let (home, lxr) = unconfined();
    let _cleanup = Cleanup(&lxr, vec!["i1", "i2"]);
    let (work, tree) = image_work();
    let w = work.path();
    let t = tree.display();
    sh(&format!(
        "tar -C {t} --numeric-owner -cJf {w}/unified.tar.xz metadata.yaml templates rootfs",
        w = w.display()
    ));
    sh(&format!(
        "tar -C {t} --numeric-owner -cf {w}/meta.tar metadata.yaml templates",
        w = w.display()
    ));
    sh(&format!(
        "mksquashfs {t}/rootfs {w}/rootfs.squashfs -noappend -quiet",
        w = w.display()
    ));
    let images = home.path().join("lxr/images");
    let base = subuid_base("lxrtest1");

    // Unified: fingerprint = sha256 of the tarball.
    let unified = w.join("unified.tar.xz");
    let fp1 = sha256(&unified.display().to_string());
    let out = lxr.ok(&[
        "image",
        "import",
        unified.to_str().unwrap(),
        "--alias",
        "mini",
    ]);
    assert!(out.contains(&fp1), "{out}");
    let list = lxr.ok(&["image", "list", "--format", "json"]);
    assert!(
        list.contains(&fp1) && list.contains("\"mini\"") && list.contains("lxr test image"),
        "{list}"
    );
    // Owned by the container's root on the host, setuid kept, hard link kept, uid 1000 mapped.
    let r1 = images.join(&fp1).join("rootfs");
    let md = std::fs::metadata(r1.join("usr/bin/suidtest")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (base, 0o4755));
    assert_eq!(std::fs::metadata(r1.join("sbin/init")).unwrap().nlink(), 2);
    assert_eq!(
        std::fs::metadata(r1.join("home/user/file")).unwrap().uid(),
        base + 1000
    );
    // The same file again is the same image.
    assert!(lxr
        .ok(&["image", "import", unified.to_str().unwrap()])
        .contains("already"));

    lxr.ok(&["launch", "mini", "i1"]);
    let stat =
        |name: &str, path: &str| lxr.ok(&["exec", name, "--", "stat", "-c", "%a %u %h", path]);
    assert_eq!(stat("i1", "/usr/bin/suidtest"), "4755 0 1");
    assert_eq!(stat("i1", "/bin/busybox"), "755 0 2");
    assert_eq!(
        lxr.ok(&["exec", "i1", "--", "stat", "-c", "%u", "/home/user/file"]),
        "1000"
    );
    assert_eq!(lxr.ok(&["exec", "i1", "--", "cat", "/etc/hostname"]), "i1");
    // Only `create` templates are applied at launch.
    assert_eq!(
        lxr.ok(&["exec", "i1", "--", "cat", "/etc/hosts"]),
        "127.0.0.1 localhost"
    );

    // Split, with a squashfs rootfs: fingerprint = sha256(metadata ‖ rootfs).
    let (meta, sq) = (w.join("meta.tar"), w.join("rootfs.squashfs"));
    let fp2 = sha256(&format!("{} {}", meta.display(), sq.display()));
    let out = lxr.ok(&[
        "image",
        "import",
        meta.to_str().unwrap(),
        sq.to_str().unwrap(),
    ]);
    assert!(out.contains(&fp2), "{out}");
    lxr.ok(&["launch", &fp2[..10], "i2"]);
    assert_eq!(stat("i2", "/usr/bin/suidtest"), "4755 0 1");
    assert_eq!(stat("i2", "/sbin/init"), "755 0 2");
    lxr.ok(&["image", "alias", "create", "split", &fp2[..8]]);
    assert!(lxr.ok(&["image", "alias", "list"]).contains("split"));

    // The containers overlay their images (lxr_storage.rs): deleting an image in use is
    // refused with the containers' names, and leaves everything as it was.
    let o = lxr.run(&["image", "delete", "mini"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("i1"),
        "{o:?}"
    );
    assert!(images.join(&fp1).exists());
    assert_eq!(lxr.ok(&["exec", "i1", "--", "hostname"]), "i1");
    lxr.ok(&["delete", "--force", "i1"]);
    lxr.ok(&["delete", "--force", "i2"]);
    lxr.ok(&["image", "delete", "mini", "split"]);
    assert!(!images.join(&fp1).exists() && !images.join(&fp2).exists());
    assert_eq!(lxr.ok(&["image", "alias", "list"]), "");
    let o = lxr.run(&["launch", "mini", "i3"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("image list"));
}

#[test]
fn bad_image_files_are_refused_and_leave_nothing() {
    let (home, lxr) = unconfined();
    let work = user_dir(0, 0);
    let w = work.path();
    std::fs::write(w.join("junk"), "not an image at all\n").unwrap();
    std::fs::create_dir_all(w.join("nometa/rootfs/bin")).unwrap();
    sh(&format!(
        "tar -C {w}/nometa -czf {w}/nometa.tar.gz rootfs",
        w = w.display()
    ));
    std::fs::create_dir_all(w.join("arm/rootfs")).unwrap();
    std::fs::write(
        w.join("arm/metadata.yaml"),
        "architecture: s390x\ncreation_date: 1\n",
    )
    .unwrap();
    sh(&format!(
        "tar -C {w}/arm -cf {w}/arm.tar metadata.yaml rootfs",
        w = w.display()
    ));
    for (file, says) in [
        ("junk", "neither a tarball"),
        ("nometa.tar.gz", "metadata.yaml"),
        ("arm.tar", "s390x"),
        ("missing", "open"),
    ] {
        let p = w.join(file);
        let o = lxr.run(&["image", "import", p.to_str().unwrap(), "--alias", "x"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{file}: {err}");
    }
    let o = lxr.run(&[
        "image",
        "import",
        w.join("junk").to_str().unwrap(),
        "--alias",
        "busybox",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("built-in"));
    // Nothing partial, no alias (only the store's lock file).
    let images = home.path().join("lxr/images");
    let left = || -> Vec<String> {
        std::fs::read_dir(&images)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n != ".lock")
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(left().is_empty(), "{:?}", left());
    // What a killed import left behind goes with the next import.
    let stale = images.join(".partial-0123");
    std::fs::create_dir_all(stale.join("rootfs/etc")).unwrap();
    let (uid, gid) = test_user("lxrtest1");
    for p in [&stale, &stale.join("rootfs"), &stale.join("rootfs/etc")] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    let _ = lxr.run(&["image", "import", w.join("junk").to_str().unwrap()]);
    assert!(left().is_empty(), "{:?}", left());
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_only() {
    let (_home, lxr) = unconfined();
    let (work, tree) = image_work();
    let w = work.path();
    let tar = w.join("img.tar");
    sh(&format!(
        "tar -C {} --numeric-owner -cf {} metadata.yaml templates rootfs",
        tree.display(),
        tar.display()
    ));
    // Not a terminal: no bar.
    let o = lxr.run(&["image", "import", tar.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("Unpacking"));
    lxr.ok(&["image", "delete", &sha256(&tar.display().to_string())[..12]]);
    // On a pseudo-terminal (util-linux `script`): a bar that reaches 100 %.
    let cmd = lxr.command(&["image", "import", tar.to_str().unwrap()]);
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("Unpacking img.tar") && out.contains("100%"),
        "{out}"
    );
}
