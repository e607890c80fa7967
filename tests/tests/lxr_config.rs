//! lxr's configuration for real, as the unprivileged test user: `config.yaml` that no value can
//! corrupt (newlines, `:`), the old hand-written format still read, one key schema checked
//! before a container exists, Incus's `config get|set|unset` behaviour, `config edit` (standard
//! input and `$EDITOR`), the image recorded by fingerprint, profiles, disk devices (read-only
//! and read-write; hostile sources and targets) and `boot.autostart`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use e2e::cgm::test_user;
use e2e::lxr::{subuid_base, unconfined, user_dir, Cleanup, Lxr, World};

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn fails(lxr: &Lxr, args: &[&str]) -> String {
    let o = lxr.run(args);
    assert!(!o.status.success(), "{args:?} succeeded: {}", out(&o));
    let e = err(&o);
    assert!(!e.trim().is_empty(), "{args:?}: no message");
    e
}

fn state(lxr: &Lxr, name: &str) -> String {
    lxr.ok(&["list", "--format", "csv"])
        .lines()
        .find(|l| l.starts_with(&format!("{name},")))
        .and_then(|l| l.split(',').nth(1))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn config_set_newline_value_makes_container_unusable() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["n1"]);
    lxr.ok(&["launch", "busybox", "n1"]);
    let note = "line one\nline two: \"quoted\" # not a comment\n\\n";
    lxr.ok(&["config", "set", "n1", "user.note", note]);
    // Everything still works, and the value comes back byte for byte.
    let got = lxr.run(&["config", "get", "n1", "user.note"]);
    assert!(got.status.success(), "{}", err(&got));
    assert_eq!(out(&got), format!("{note}\n"));
    assert!(lxr.ok(&["config", "show", "n1"]).contains("user.note"));
    assert!(lxr.ok(&["info", "n1"]).contains("Status: RUNNING"));
    lxr.ok(&["stop", "n1"]);
    lxr.ok(&["start", "n1"]);
    lxr.ok(&["config", "unset", "n1", "user.note"]);
    assert_eq!(lxr.ok(&["config", "get", "n1", "user.note"]), "");
}

#[test]
fn keys_with_colon_are_mangled() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["k1"]);
    lxr.ok(&["launch", "busybox", "k1", "-c", "user.a:b=c:d"]);
    assert_eq!(lxr.ok(&["config", "get", "k1", "user.a:b"]), "c:d");
    // Not split at the ':' into another key.
    assert_eq!(lxr.ok(&["config", "get", "k1", "user.a"]), "");
    lxr.ok(&["config", "set", "k1", "user.x:y", "1:2"]);
    assert_eq!(lxr.ok(&["config", "get", "k1", "user.x:y"]), "1:2");
}

#[test]
fn old_format_config_is_read_and_converted() {
    let (home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["o1"]);
    lxr.ok(&["launch", "busybox", "o1"]);
    lxr.ok(&["stop", "o1"]);
    // What lxr before serde wrote: `image: NAME`, then `key: "value"` lines, proxy devices as
    // keys.
    let file = home.path().join("lxr/containers/o1/config.yaml");
    std::fs::write(
        &file,
        "image: busybox\nconsole.log.size: \"1MiB\"\nuser.note: \"hi\"\n\
         devices.web.type: \"proxy\"\ndevices.web.listen: \"tcp:127.0.0.1:18089\"\n\
         devices.web.connect: \"tcp:127.0.0.1:80\"\n",
    )
    .unwrap();
    let (uid, gid) = test_user("lxrtest1");
    std::os::unix::fs::chown(&file, Some(uid), Some(gid)).unwrap();
    assert_eq!(lxr.ok(&["config", "get", "o1", "user.note"]), "hi");
    assert_eq!(
        lxr.ok(&["config", "device", "list", "o1"]),
        "web: tcp 127.0.0.1:18089 -> 127.0.0.1:80"
    );
    assert!(lxr.ok(&["list"]).contains("busybox"));
    lxr.ok(&["start", "o1"]);
    assert_eq!(state(&lxr, "o1"), "RUNNING");
    // The next write converts it.
    lxr.ok(&["config", "set", "o1", "user.more=1"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("config:") && text.contains("devices:"),
        "{text}"
    );
    assert!(!text.contains("devices.web"), "{text}");
    assert_eq!(lxr.ok(&["config", "get", "o1", "console.log.size"]), "1MiB");
}

#[test]
fn bad_keys_fail_before_a_container_exists() {
    let (home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["b1"]);
    for (kv, want) in [
        ("limits.memory=lots", "limits.memory"),
        ("limts.memory=1G", "did you mean limits.memory"),
        ("security.nesting=true", "not supported by lxr"),
        ("image=debian", "image is not a configuration key"),
        ("volatile.x=1", "read-only"),
        ("boot.autostart=maybe", "boot.autostart"),
        ("nonsense=1", "unknown key"),
    ] {
        let e = fails(&lxr, &["launch", "busybox", "b1", "-c", kv]);
        assert!(e.contains(want), "{kv}: {e}");
        assert!(
            !home.path().join("lxr/containers/b1").exists(),
            "{kv}: a container directory was made"
        );
        assert_eq!(lxr.ok(&["list", "--format", "csv"]).lines().count(), 1);
    }
    // A profile that does not exist: the same.
    fails(&lxr, &["launch", "busybox", "b1", "-p", "nosuch"]);
    assert!(!home.path().join("lxr/containers/b1").exists());
}

#[test]
fn config_get_set_unset_as_incus() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["g1"]);
    lxr.ok(&["launch", "busybox", "g1"]);
    // `config get` of a key that is not set: an empty line, success (issue 15).
    let o = lxr.run(&["config", "get", "g1", "user.unset"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "\n");
    // KEY=VALUE… as Incus, and KEY VALUE.
    lxr.ok(&[
        "config",
        "set",
        "g1",
        "user.a=1",
        "user.b=x=y",
        "console.log.size=1MiB",
    ]);
    lxr.ok(&["config", "set", "g1", "user.c", "-dash"]);
    assert_eq!(lxr.ok(&["config", "get", "g1", "user.b"]), "x=y");
    assert_eq!(lxr.ok(&["config", "get", "g1", "user.c"]), "-dash");
    // One bad pair: nothing of the call is saved.
    fails(&lxr, &["config", "set", "g1", "user.d=1", "limts.cpu=1"]);
    assert_eq!(lxr.ok(&["config", "get", "g1", "user.d"]), "");
    // Unset of a key that is not set: refused as Incus refuses it.
    let e = fails(&lxr, &["config", "unset", "g1", "user.nothing"]);
    assert!(e.contains("not currently set"), "{e}");
    lxr.ok(&["config", "unset", "g1", "user.a", "user.b"]);
    assert_eq!(lxr.ok(&["config", "get", "g1", "user.a"]), "");
    // volatile.* is read-only, image no key.
    fails(&lxr, &["config", "set", "g1", "volatile.x", "1"]);
    fails(&lxr, &["config", "set", "g1", "image", "debian"]);
    // The help lists the keys, with examples.
    let help = lxr.ok(&["config", "set", "--help"]);
    for want in [
        "limits.memory",
        "limits.cpu.allowance",
        "boot.autostart",
        "network.mode",
        "user.*",
        "lxr config set c1 limits.memory=256MiB",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
}

fn edit_yaml(lxr: &Lxr, name: &str, from: &str, to: &str) -> Output {
    let yaml = lxr.ok(&["config", "show", name]);
    assert!(yaml.contains(from), "{yaml}");
    lxr.run_with_input(&["config", "edit", name], yaml.replace(from, to).as_bytes())
}

#[test]
fn config_edit_from_stdin_and_editor() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["e1"]);
    lxr.ok(&["launch", "busybox", "e1", "-c", "user.a=before"]);
    // Standard input (not a terminal).
    let o = edit_yaml(&lxr, "e1", "user.a: before", "user.a: after");
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(lxr.ok(&["config", "get", "e1", "user.a"]), "after");
    // Refused, and nothing changed: a bad value, a misspelt key, the image, junk.
    let before = lxr.ok(&["config", "show", "e1"]);
    for (from, to) in [
        ("user.a: after", "user.a: after\n  limits.memory: lots"),
        ("user.a: after", "user.a: after\n  limts.memory: 1G"),
        ("alias: busybox", "alias: other"),
        ("profiles:", "bogus: 1\nprofiles:"),
        ("user.a: after", "user.a: [unclosed"),
    ] {
        let o = edit_yaml(&lxr, "e1", from, to);
        assert!(!o.status.success(), "{to} accepted");
        assert_eq!(lxr.ok(&["config", "show", "e1"]), before, "{to}");
    }
    // $EDITOR on a terminal (script(1) gives lxr one).
    let tools = user_dir(0, 0);
    let editor = tools.path().join("ed.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/user.a: after/user.a: edited/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (uid, gid) = test_user("lxrtest1");
    let cmd = format!(
        "setpriv --reuid={uid} --regid={gid} --init-groups env HOME={} XDG_DATA_HOME={} \
         LXR_CGMANAGER={} EDITOR={} VISUAL= {} config edit e1",
        lxr.home.display(),
        lxr.data.display(),
        lxr.cgm,
        editor.display(),
        e2e::cgm::bin("lxr").display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(lxr.ok(&["config", "get", "e1", "user.a"]), "edited");
}

/// A minimal image (busybox rootfs) with `description` in its metadata, as a tarball.
fn tiny_image(dir: &Path, description: &str) -> std::path::PathBuf {
    let t = dir.join(description.replace(' ', "_"));
    let root = t.join("rootfs");
    for d in ["bin", "sbin", "etc", "dev", "proc", "sys", "run", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "cat", "sleep", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::os::unix::fs::symlink("/bin/busybox", root.join("sbin/init")).unwrap();
    std::fs::write(
        root.join("etc/inittab"),
        "::sysinit:/bin/true\n::respawn:/bin/sleep 1000000\n",
    )
    .unwrap();
    std::fs::write(
        t.join("metadata.yaml"),
        format!(
            "architecture: {}\ncreation_date: 1700000000\nproperties:\n  description: {description}\n  os: tiny\n",
            std::env::consts::ARCH
        ),
    )
    .unwrap();
    let tar = dir.join(format!("{}.tar", description.replace(' ', "_")));
    let o = Command::new("tar")
        .arg("-C")
        .arg(&t)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .args(["metadata.yaml", "rootfs"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    tar
}

#[test]
fn the_image_is_recorded_by_fingerprint_when_its_alias_moves() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["i1"]);
    let work = user_dir(0, 0);
    let a = tiny_image(work.path(), "image one");
    let b = tiny_image(work.path(), "image two");
    lxr.ok(&["image", "import", a.to_str().unwrap(), "--alias", "tiny"]);
    lxr.ok(&["image", "import", b.to_str().unwrap()]);
    lxr.ok(&["launch", "tiny", "i1"]);
    let show = lxr.ok(&["config", "show", "i1"]);
    assert!(show.contains("description: image one"), "{show}");
    assert!(show.contains("alias: tiny"), "{show}");
    assert!(lxr.ok(&["list"]).contains("tiny"));
    // The alias moves to the other image: i1 is still shown as the first one.
    lxr.ok(&["image", "alias", "delete", "tiny"]);
    let images = lxr.ok(&["image", "list", "--format", "csv"]);
    let fp_b = images
        .lines()
        .find(|l| l.contains("image two"))
        .and_then(|l| {
            l.split(',')
                .find(|f| f.len() >= 12 && f.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .unwrap_or_else(|| panic!("{images}"))
        .to_string();
    lxr.ok(&["image", "alias", "create", "tiny", &fp_b]);
    let info = lxr.ok(&["info", "i1"]);
    assert!(info.contains("(image one)"), "{info}");
    assert!(!info.contains("Image: tiny"), "{info}");
    assert!(lxr.ok(&["list"]).contains("image one"));
}

#[test]
fn profiles_create_assign_expand_delete() {
    let (home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["p1", "p2", "p3"]);
    // default exists from the start and cannot be deleted.
    assert!(lxr.ok(&["profile", "list"]).contains("default"));
    let e = fails(&lxr, &["profile", "delete", "default"]);
    assert!(e.contains("cannot be deleted"), "{e}");
    lxr.ok(&["profile", "set", "default", "user.from=default"]);
    lxr.ok(&["profile", "create", "small"]);
    fails(&lxr, &["profile", "create", "small"]);
    fails(&lxr, &["profile", "create", "../x"]);
    lxr.ok(&["profile", "set", "small", "console.log.size", "77KiB"]);
    lxr.ok(&["profile", "set", "small", "user.from=small", "user.p=1"]);
    fails(&lxr, &["profile", "set", "small", "limits.memory=lots"]);
    assert_eq!(lxr.ok(&["profile", "get", "small", "user.p"]), "1");
    assert_eq!(lxr.ok(&["profile", "get", "small", "user.none"]), "");
    // Launched with the default profile, with -p in order, with none.
    lxr.ok(&["launch", "busybox", "p1"]);
    lxr.ok(&[
        "launch",
        "busybox",
        "p2",
        "-p",
        "default",
        "-p",
        "small",
        "-c",
        "user.p=own",
    ]);
    lxr.ok(&["launch", "busybox", "p3", "--no-profiles"]);
    assert_eq!(
        lxr.ok(&["config", "get", "p1", "user.from", "-e"]),
        "default"
    );
    let p2 = lxr.ok(&["config", "show", "p2", "--expanded"]);
    // Later profiles win, the container's own keys win over all.
    assert!(p2.contains("user.from: small"), "{p2}");
    assert!(p2.contains("user.p: own"), "{p2}");
    assert!(p2.contains("console.log.size: 77KiB"), "{p2}");
    assert!(!lxr
        .ok(&["config", "show", "p2"])
        .contains("console.log.size"));
    assert_eq!(lxr.ok(&["config", "get", "p3", "user.from", "-e"]), "");
    // In use: not deleted, the users named.
    let e = fails(&lxr, &["profile", "delete", "small"]);
    assert!(e.contains("p2"), "{e}");
    let show = lxr.ok(&["profile", "show", "small"]);
    assert!(
        show.contains("console.log.size") && show.contains("- p2"),
        "{show}"
    );
    // Assign: comma-separated, "" removes all.
    lxr.ok(&["profile", "assign", "p1", "small,default"]);
    assert_eq!(
        lxr.ok(&["config", "get", "p1", "user.from", "-e"]),
        "default"
    );
    lxr.ok(&["profile", "assign", "p2", ""]);
    assert_eq!(lxr.ok(&["config", "get", "p2", "user.from", "-e"]), "");
    fails(&lxr, &["profile", "assign", "p2", "nosuch"]);
    lxr.ok(&["profile", "assign", "p1", "default"]);
    // Incus's add/remove: one profile appended to or taken from the list.
    lxr.ok(&["profile", "add", "p1", "small"]);
    fails(&lxr, &["profile", "add", "p1", "small"]);
    assert!(lxr
        .ok(&["config", "show", "p1"])
        .contains("- default\n- small"));
    lxr.ok(&["profile", "remove", "p1", "small"]);
    fails(&lxr, &["profile", "remove", "p1", "small"]);
    assert!(!lxr.ok(&["config", "show", "p1"]).contains("- small"));
    lxr.ok(&["profile", "copy", "small", "small2"]);
    // Rename: the containers using it follow.
    lxr.ok(&["profile", "assign", "p3", "small"]);
    lxr.ok(&["profile", "rename", "small", "tiny"]);
    fails(&lxr, &["profile", "rename", "default", "x"]);
    assert!(lxr.ok(&["config", "show", "p3"]).contains("- tiny"));
    assert_eq!(lxr.ok(&["config", "get", "p3", "user.from", "-e"]), "small");
    lxr.ok(&["profile", "rename", "tiny", "small"]);
    lxr.ok(&["profile", "assign", "p3", ""]);
    lxr.ok(&["profile", "delete", "small"]);
    assert!(!lxr.ok(&["profile", "list"]).contains("small\n"));
    // Edit from standard input: checked, nothing changed on error.
    let o = lxr.run_with_input(
        &["profile", "edit", "small2"],
        b"description: two\nconfig:\n  limits.memory: lots\n",
    );
    assert!(!o.status.success());
    assert_eq!(lxr.ok(&["profile", "get", "small2", "user.p"]), "1");
    let o = lxr.run_with_input(
        &["profile", "edit", "small2"],
        b"description: two\nconfig:\n  user.q: new\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(lxr.ok(&["profile", "get", "small2", "user.q"]), "new");
    assert_eq!(lxr.ok(&["profile", "get", "small2", "user.p"]), "");
    // Profiles are files of the user's, private.
    let dir = home.path().join("lxr/profiles");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(dir.join("small2.yaml").is_file());
}

#[test]
fn profile_and_edit_limits_apply_live() {
    let w = World::new("lxrcfg");
    let s = &w.scratch;
    let lxr = w.lxr(None);
    let _c = Cleanup(&lxr, vec!["l1"]);
    lxr.ok(&["profile", "create", "lim"]);
    lxr.ok(&["profile", "set", "lim", "limits.processes=60"]);
    lxr.ok(&["launch", "busybox", "l1", "-p", "lim"]);
    let pids = s.dir("pids", "lxrtest1/lxr/l1/pids.max");
    let read = |p: &std::path::PathBuf| std::fs::read_to_string(p).unwrap().trim().to_string();
    assert_eq!(read(&pids), "60");
    // A profile change reaches the running container.
    lxr.ok(&["profile", "set", "lim", "limits.processes=61"]);
    assert_eq!(read(&pids), "61");
    // Its own key wins; unset falls back to the profile's value, not to no limit.
    lxr.ok(&["config", "set", "l1", "limits.processes=62"]);
    assert_eq!(read(&pids), "62");
    lxr.ok(&["config", "unset", "l1", "limits.processes"]);
    assert_eq!(read(&pids), "61");
    // config edit applies limits as config set does.
    let yaml = lxr.ok(&["config", "show", "l1"]);
    let yaml = yaml.replace("config: {}", "config:\n  limits.processes: '63'");
    let o = lxr.run_with_input(&["config", "edit", "l1"], yaml.as_bytes());
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(read(&pids), "63");
    // Profile removed: the limit is lifted where nothing else sets it.
    lxr.ok(&["config", "unset", "l1", "limits.processes"]);
    lxr.ok(&["profile", "assign", "l1", ""]);
    assert_eq!(read(&pids), "max");
}

#[test]
fn disk_devices_bind_read_only_and_read_write() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["d1"]);
    let (uid, gid) = test_user("lxrtest1");
    let src = user_dir(uid, gid);
    std::fs::write(src.path().join("hello"), "from the host\n").unwrap();
    std::os::unix::fs::chown(src.path().join("hello"), Some(uid), Some(gid)).unwrap();
    // Writable by the container's root, which is "other" to the user's files.
    std::fs::set_permissions(src.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let one = user_dir(uid, gid);
    let file = one.path().join("single");
    std::fs::write(&file, "one file\n").unwrap();
    std::os::unix::fs::chown(&file, Some(uid), Some(gid)).unwrap();
    let s = src.path().to_str().unwrap();
    lxr.ok(&["launch", "busybox", "d1"]);
    let o = lxr.run(&[
        "config",
        "device",
        "add",
        "d1",
        "rw",
        "disk",
        &format!("source={s}"),
        "path=/mnt/rw",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("next start"), "{}", err(&o));
    lxr.ok(&[
        "config",
        "device",
        "add",
        "d1",
        "ro",
        "disk",
        &format!("source={s}"),
        "path=/srv/deep/ro",
        "readonly=true",
    ]);
    lxr.ok(&[
        "config",
        "device",
        "add",
        "d1",
        "f",
        "disk",
        &format!("source={}", file.display()),
        "path=/etc/single",
    ]);
    let list = lxr.ok(&["config", "device", "list", "d1"]);
    assert!(
        list.contains(&format!("ro: disk {s} -> /srv/deep/ro (readonly)")),
        "{list}"
    );
    lxr.ok(&["restart", "d1"]);
    assert_eq!(
        lxr.ok(&["exec", "d1", "--", "cat", "/mnt/rw/hello"]),
        "from the host"
    );
    assert_eq!(
        lxr.ok(&["exec", "d1", "--", "cat", "/srv/deep/ro/hello"]),
        "from the host"
    );
    assert_eq!(
        lxr.ok(&["exec", "d1", "--", "cat", "/etc/single"]),
        "one file"
    );
    // The user's files appear owned by nobody (the user's uid is not mapped).
    assert_eq!(
        lxr.ok(&["exec", "d1", "--", "stat", "-c", "%u", "/mnt/rw/hello"]),
        "65534"
    );
    // Read-write: the container's root writes (as "other"), the host sees its subuid.
    lxr.ok(&["exec", "d1", "--", "sh", "-c", "echo back > /mnt/rw/new"]);
    let md = std::fs::metadata(src.path().join("new")).unwrap();
    assert_eq!(md.uid(), subuid_base("lxrtest1"));
    // Read-only: refused.
    let o = lxr.run(&["exec", "d1", "--", "sh", "-c", "echo x > /srv/deep/ro/x"]);
    assert!(!o.status.success());
    assert!(!src.path().join("x").exists());
    let mounts = lxr.ok(&["exec", "d1", "--", "cat", "/proc/self/mountinfo"]);
    let ro = mounts
        .lines()
        .find(|l| l.contains(" /srv/deep/ro "))
        .unwrap();
    assert!(
        ro.contains(" ro,") && ro.contains("nosuid") && ro.contains("nodev"),
        "{ro}"
    );
    // Removed: gone at the next start.
    lxr.ok(&["config", "device", "remove", "d1", "ro"]);
    lxr.ok(&["restart", "d1"]);
    assert!(!lxr
        .ok(&["exec", "d1", "--", "cat", "/proc/self/mountinfo"])
        .contains("/srv/deep/ro "));
}

#[test]
fn disk_device_sources_not_the_users_are_refused() {
    let (home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["h1"]);
    lxr.ok(&["launch", "busybox", "h1"]);
    let (uid, gid) = test_user("lxrtest1");
    let (uid2, gid2) = test_user("lxrtest2");
    let other = user_dir(uid2, gid2);
    let mine = user_dir(uid, gid);
    let link = mine.path().join("shadow");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(uid), Some(gid)).unwrap();
    let dirlink = mine.path().join("etc");
    std::os::unix::fs::symlink("/etc", &dirlink).unwrap();
    std::os::unix::fs::lchown(&dirlink, Some(uid), Some(gid)).unwrap();
    let add = |src: &str, path: &str| {
        fails(
            &lxr,
            &[
                "config",
                "device",
                "add",
                "h1",
                "d",
                "disk",
                &format!("source={src}"),
                &format!("path={path}"),
            ],
        )
    };
    for (src, path, want) in [
        (other.path().to_str().unwrap(), "/mnt", "not to you"),
        ("/root", "/mnt", "not to you"),
        ("/etc", "/mnt", "not to you"),
        ("/etc/shadow", "/mnt", "not to you"),
        (link.to_str().unwrap(), "/mnt", "symlink is not followed"),
        (dirlink.to_str().unwrap(), "/mnt", "symlink is not followed"),
        (
            mine.path().to_str().unwrap(),
            "/mnt/../../etc",
            "without ..",
        ),
        (mine.path().to_str().unwrap(), "relative", "absolute"),
        (mine.path().to_str().unwrap(), "/", "not / itself"),
        ("relative/dir", "/mnt", "absolute"),
    ] {
        let e = add(src, path);
        assert!(e.contains(want), "{src} {path}: {e}");
    }
    assert_eq!(lxr.ok(&["config", "device", "list", "h1"]), "");
    // The same through `config edit` and `profile edit`.
    let yaml = lxr.ok(&["config", "show", "h1"]).replace(
        "devices: {}",
        "devices:\n  d:\n    type: disk\n    source: /etc\n    path: /mnt/etc",
    );
    // (run_with_input leaves stderr to the test's: the status and the result are checked.)
    let o = lxr.run_with_input(&["config", "edit", "h1"], yaml.as_bytes());
    assert!(!o.status.success());
    let o = lxr.run_with_input(
        &["profile", "edit", "default"],
        b"devices:\n  d:\n    type: disk\n    source: /root\n    path: /mnt/root\n",
    );
    assert!(!o.status.success());
    assert_eq!(lxr.ok(&["config", "device", "list", "h1"]), "");
    assert!(!lxr.ok(&["profile", "show", "default"]).contains("/root"));
    // Ownership is checked again at start: a source that changed hands is refused.
    lxr.ok(&[
        "config",
        "device",
        "add",
        "h1",
        "d",
        "disk",
        &format!("source={}", mine.path().display()),
        "path=/mnt/d",
    ]);
    std::os::unix::fs::chown(mine.path(), Some(uid2), Some(gid2)).unwrap();
    lxr.ok(&["stop", "h1"]);
    let e = fails(&lxr, &["start", "h1"]);
    assert!(e.contains("not to you"), "{e}");
    std::os::unix::fs::chown(mine.path(), Some(uid), Some(gid)).unwrap();
    // A symlink planted where the target goes (the container's root could make one) stops the
    // start; nothing is mounted through it.
    // (Stopped, an overlay container's own files are in its upper layer.)
    let ct = home.path().join("lxr/containers/h1");
    let rootfs = if ct.join("upper").is_dir() {
        ct.join("upper")
    } else {
        ct.join("rootfs")
    };
    let base = subuid_base("lxrtest1");
    if !rootfs.join("mnt").exists() {
        std::fs::create_dir(rootfs.join("mnt")).unwrap();
        std::os::unix::fs::lchown(rootfs.join("mnt"), Some(base), Some(base)).unwrap();
    }
    for target in ["/etc", "../../../../../../../etc", "/"] {
        let _ = std::fs::remove_dir_all(rootfs.join("mnt/d"));
        let _ = std::fs::remove_file(rootfs.join("mnt/d"));
        std::os::unix::fs::symlink(target, rootfs.join("mnt/d")).unwrap();
        std::os::unix::fs::lchown(rootfs.join("mnt/d"), Some(base), Some(base)).unwrap();
        let e = fails(&lxr, &["start", "h1"]);
        assert!(e.contains("symlink"), "{target}: {e}");
        assert_eq!(state(&lxr, "h1"), "STOPPED");
    }
    // A symlink on the way (`/mnt -> /etc`) too.
    std::fs::remove_file(rootfs.join("mnt/d")).unwrap();
    std::fs::rename(rootfs.join("mnt"), rootfs.join("mnt.away")).unwrap();
    std::os::unix::fs::symlink("/etc", rootfs.join("mnt")).unwrap();
    std::os::unix::fs::lchown(rootfs.join("mnt"), Some(base), Some(base)).unwrap();
    let e = fails(&lxr, &["start", "h1"]);
    assert!(e.contains("symlink"), "{e}");
    // Put right, it starts with the bind.
    std::fs::remove_file(rootfs.join("mnt")).unwrap();
    std::fs::rename(rootfs.join("mnt.away"), rootfs.join("mnt")).unwrap();
    lxr.ok(&["start", "h1"]);
    assert!(lxr
        .ok(&["exec", "h1", "--", "cat", "/proc/self/mountinfo"])
        .contains(" /mnt/d "));
}

#[test]
fn boot_autostart_starts_the_marked_containers_by_priority() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["a1", "a2", "a3"]);
    lxr.ok(&["launch", "busybox", "a1", "-c", "boot.autostart=true"]);
    lxr.ok(&[
        "launch",
        "busybox",
        "a2",
        "-c",
        "boot.autostart=true",
        "-c",
        "boot.autostart.priority=10",
        "-c",
        "boot.autostart.delay=1",
    ]);
    lxr.ok(&["launch", "busybox", "a3"]);
    for n in ["a1", "a2", "a3"] {
        lxr.ok(&["stop", n]);
    }
    assert_eq!(
        lxr.ok(&["autostart", "--dry-run"]),
        "a2 priority=10 delay=1s\na1 priority=0 delay=0s"
    );
    let t0 = std::time::Instant::now();
    let o = lxr.ok(&["autostart"]);
    assert_eq!(o, "Started a2\nStarted a1");
    assert!(t0.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(state(&lxr, "a1"), "RUNNING");
    assert_eq!(state(&lxr, "a2"), "RUNNING");
    assert_eq!(state(&lxr, "a3"), "STOPPED");
    // Again: nothing to do, nothing fails.
    assert!(lxr.ok(&["autostart"]).contains("a1 is already running"));
    // Through a profile as well.
    lxr.ok(&["profile", "create", "auto"]);
    lxr.ok(&["profile", "set", "auto", "boot.autostart=true"]);
    lxr.ok(&["profile", "assign", "a3", "default,auto"]);
    lxr.ok(&["autostart"]);
    assert_eq!(state(&lxr, "a3"), "RUNNING");
}

#[test]
fn the_autostart_unit_runs_lxr_autostart_at_login() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = root.join("systemd/user/lxr-autostart.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for want in [
        "[Unit]",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/local/bin/lxr autostart",
        "[Install]",
        "WantedBy=default.target",
    ] {
        assert!(text.lines().any(|l| l == want), "{want}: {text}");
    }
    let setup = std::fs::read_to_string(root.join("scripts/setup.sh")).unwrap();
    assert!(setup.contains("/usr/lib/systemd/user/lxr-autostart.service"));
    // systemd's own parser, where there is one (it checks ExecStart's binary exists).
    let have = Command::new("systemd-analyze").arg("--version").output();
    if have.is_ok_and(|o| o.status.success()) && Path::new("/usr/local/bin/lxr").exists() {
        let o = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}{}", out(&o), err(&o));
    }
}

#[test]
fn profile_disk_devices_reach_their_containers() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["pd1"]);
    let (uid, gid) = test_user("lxrtest1");
    let src = user_dir(uid, gid);
    std::fs::write(src.path().join("shared"), "via profile\n").unwrap();
    let s = src.path().to_str().unwrap();
    lxr.ok(&["profile", "create", "data"]);
    lxr.ok(&[
        "profile",
        "device",
        "add",
        "data",
        "d",
        "disk",
        &format!("source={s}"),
        "path=/data",
        "readonly=true",
    ]);
    fails(
        &lxr,
        &[
            "profile",
            "device",
            "add",
            "data",
            "e",
            "disk",
            "source=/etc",
            "path=/e",
        ],
    );
    assert!(lxr
        .ok(&["profile", "device", "list", "data"])
        .contains("d: disk"));
    lxr.ok(&["launch", "busybox", "pd1", "-p", "default", "-p", "data"]);
    assert_eq!(
        lxr.ok(&["exec", "pd1", "--", "cat", "/data/shared"]),
        "via profile"
    );
    assert!(lxr
        .ok(&["config", "show", "pd1", "--expanded"])
        .contains("type: disk"));
    assert!(!lxr.ok(&["config", "show", "pd1"]).contains("type: disk"));
    lxr.ok(&["profile", "device", "remove", "data", "d"]);
    lxr.ok(&["restart", "pd1"]);
    fails(&lxr, &["exec", "pd1", "--", "cat", "/data/shared"]);
}

#[test]
fn concurrent_config_sets_lose_nothing() {
    let (home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["cc1"]);
    lxr.ok(&["launch", "busybox", "cc1"]);
    let children: Vec<_> = (0..16)
        .map(|i| {
            lxr.command(&["config", "set", "cc1", &format!("user.k{i}={i}")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    for i in 0..16 {
        assert_eq!(
            lxr.ok(&["config", "get", "cc1", &format!("user.k{i}")]),
            i.to_string()
        );
    }
    // No temporary file is left beside config.yaml.
    let dir = home.path().join("lxr/containers/cc1");
    for e in std::fs::read_dir(&dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!n.contains(".tmp"), "{n} left in {}", dir.display());
    }
}
