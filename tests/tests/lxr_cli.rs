//! lxr's command line as an Incus user meets it, as the unprivileged `lxrtest1`: several names
//! or `--all` for start/stop/restart/delete/freeze/unfreeze, the `ls`/`rm` aliases, `list`'s
//! columns, filters, FROZEN state and widths, `-q`, completions and man pages, and the
//! defects of issue 15 each pinned by a test named after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use e2e::lxr::{unconfined, Cleanup, Lxr, World};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The `--format csv` line of `name` in `list -c COLUMNS`, split into its fields.
fn csv_row(lxr: &Lxr, columns: &str, name: &str) -> Option<Vec<String>> {
    lxr.ok(&["list", "-c", columns, "--format", "csv"])
        .lines()
        .skip(1)
        .find(|l| l.split(',').next() == Some(name))
        .map(|l| l.split(',').map(str::to_string).collect())
}

/// The error lines of a run (not the warnings).
fn errors(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| !l.starts_with("lxr: warning:"))
        .map(str::to_string)
        .collect()
}

fn state(lxr: &Lxr, name: &str) -> String {
    csv_row(lxr, "ns", name)
        .map(|r| r[1].clone())
        .unwrap_or_default()
}

#[test]
fn several_names_each_acted_on_and_one_failure_does_not_stop_the_others() {
    let (home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["m1", "m2", "m3"]);
    for n in ["m1", "m2", "m3"] {
        lxr.ok(&["launch", "busybox", n]);
    }
    // A missing name between two real ones: both real ones stop, one line for the missing
    // one, exit status 1.
    let o = lxr.run(&["stop", "--force", "m1", "ghost", "m2"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(
        stderr(&o),
        "lxr: no container ghost (lxr list shows them)\n",
        "{o:?}"
    );
    assert_eq!(state(&lxr, "m1"), "STOPPED");
    assert_eq!(state(&lxr, "m2"), "STOPPED");
    assert_eq!(state(&lxr, "m3"), "RUNNING");
    // start --all: the stopped ones (m3 runs, and is not an error).
    let o = lxr.run(&["start", "--all"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("Started m1") && out.contains("Started m2") && !out.contains("m3"),
        "{out}"
    );
    for n in ["m1", "m2", "m3"] {
        assert_eq!(state(&lxr, n), "RUNNING", "{n}");
    }
    // Starting a running one among others: that one fails, the stopped one starts.
    lxr.ok(&["stop", "--force", "m1"]);
    let o = lxr.run(&["start", "m2", "m1"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = errors(&o);
    assert!(
        e.len() == 1 && e[0].starts_with("lxr: m2 is already running"),
        "{o:?}"
    );
    assert_eq!(state(&lxr, "m1"), "RUNNING");
    // stop --all: every running one.
    lxr.ok(&["stop", "--all", "--force"]);
    for n in ["m1", "m2", "m3"] {
        assert_eq!(state(&lxr, n), "STOPPED", "{n}");
    }
    // What is no container in the containers directory (a stray file, a hidden work
    // directory) is neither listed nor acted on by --all.
    let dir = home.path().join("lxr/containers");
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    std::fs::create_dir(dir.join(".work-m9")).unwrap();
    let o = lxr.run(&["start", "--all"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(errors(&o), Vec::<String>::new(), "{o:?}");
    lxr.ok(&["stop", "--all", "--force"]);
    assert_eq!(lxr.ok(&["ls", "-c", "n", "-f", "csv"]), "name\nm1\nm2\nm3");
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    std::fs::remove_dir(dir.join(".work-m9")).unwrap();
    // Names and --all together are refused.
    assert_eq!(lxr.run(&["stop", "--all", "m1"]).status.code(), Some(2));
    assert_eq!(lxr.run(&["stop"]).status.code(), Some(2));
    // delete (and its alias rm) with several names; a missing one in the middle.
    let o = lxr.run(&["rm", "m1", "ghost", "m2"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(
        errors(&o),
        ["lxr: no container ghost (lxr list shows them)"],
        "{o:?}"
    );
    let names = lxr.ok(&["ls", "-c", "n", "--format", "csv"]);
    assert_eq!(names, "name\nm3", "{names}");
    // As Incus, delete has no --all.
    assert_eq!(lxr.run(&["delete", "--all"]).status.code(), Some(2));
    lxr.ok(&["delete", "m3"]);
}

/// `restart` printed nothing of what `start` warns about (here: no delegated cgroup).
#[test]
fn restart_omits_the_warnings_start_prints() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["w1", "w2"]);
    lxr.ok(&["launch", "busybox", "w1"]);
    lxr.ok(&["launch", "busybox", "w2"]);
    let o = lxr.run(&["restart", "--force", "w1", "w2"]);
    assert!(o.status.success(), "{o:?}");
    for n in ["w1", "w2"] {
        assert!(
            stdout(&o).contains(&format!("Restarted {n} (pid ")),
            "{o:?}"
        );
        assert!(
            stderr(&o).contains(&format!("lxr: warning: {n} runs unconfined")),
            "{o:?}"
        );
    }
    // restart --all restarts the running ones only.
    lxr.ok(&["stop", "--force", "w2"]);
    let o = lxr.run(&["restart", "--all", "--force"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("Restarted w1"), "{o:?}");
    assert!(!stdout(&o).contains("w2"), "{o:?}");
    assert_eq!(state(&lxr, "w2"), "STOPPED");
}

/// `stop --timeout -1` (Incus: wait as long as the halt takes) was refused by the parser.
#[test]
fn stop_timeout_minus_one_is_refused() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["t1"]);
    lxr.ok(&["launch", "busybox", "t1"]);
    let o = lxr.run(&["stop", "--timeout", "-2", "t1"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("-1 to wait"), "{o:?}");
    assert_eq!(state(&lxr, "t1"), "RUNNING");
    // busybox init halts on SIGUSR1: with no timeout the stop is the clean one, not a kill.
    let t0 = std::time::Instant::now();
    let o = lxr.run(&["stop", "--timeout", "-1", "t1"]);
    assert!(o.status.success(), "{o:?}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(state(&lxr, "t1"), "STOPPED");
    assert!(
        lxr.ok(&["info", "t1"]).contains("Last exit: init halted"),
        "a clean halt: {}",
        lxr.ok(&["info", "t1"])
    );
    lxr.ok(&["start", "t1"]);
    lxr.ok(&["restart", "--timeout=-1", "t1"]);
    assert_eq!(state(&lxr, "t1"), "RUNNING");
}

/// stop/restart/freeze/console/exec said "X is not running" of a container that does not
/// exist; every verb now says `no container X`, and `X is not running` only of a stopped one.
#[test]
fn no_container_message_differs_between_verbs() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["s1"]);
    let missing = "lxr: no container ghost (lxr list shows them)\n";
    for args in [
        &["start", "ghost"][..],
        &["stop", "ghost"],
        &["stop", "--force", "ghost"],
        &["restart", "ghost"],
        &["freeze", "ghost"],
        &["unfreeze", "ghost"],
        &["console", "ghost"],
        &["exec", "ghost", "--", "true"],
        &["info", "ghost"],
        &["delete", "ghost"],
        &["delete", "--force", "ghost"],
    ] {
        let o = lxr.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        assert_eq!(stderr(&o), missing, "{args:?}");
    }
    lxr.ok(&["launch", "busybox", "s1"]);
    lxr.ok(&["stop", "--force", "s1"]);
    for args in [
        &["stop", "s1"][..],
        &["restart", "s1"],
        &["freeze", "s1"],
        &["unfreeze", "s1"],
        &["console", "s1"],
        &["exec", "s1", "--", "true"],
    ] {
        let o = lxr.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        assert!(
            stderr(&o).starts_with("lxr: s1 is not running"),
            "{args:?}: {o:?}"
        );
    }
}

/// `list`, `info`, `image list`, `config show` … of a user who has nothing made
/// `~/.local/share/lxr` (and its subdirectories) on the way.
#[test]
fn read_only_commands_create_directories() {
    let (home, lxr) = unconfined();
    let data = home.path().join("lxr");
    for args in [
        &["list"][..],
        &["ls", "c"],
        &["list", "--format", "json"],
        &["info", "c1"],
        &["image", "list"],
        &["image", "ls"],
        &["image", "alias", "list"],
        &["image", "delete", "nothing"],
        &["config", "show", "c1"],
        &["config", "get", "c1", "limits.memory"],
        &["start", "c1"],
        &["start", "--all"],
        &["stop", "c1"],
        &["stop", "--all"],
        &["restart", "c1"],
        &["freeze", "c1"],
        &["delete", "c1"],
        &["exec", "c1", "--", "true"],
        &["console", "c1"],
        &["completion", "bash"],
    ] {
        let _ = lxr.run(args);
        assert!(!data.exists(), "lxr {args:?} made {}", data.display());
    }
}

#[test]
fn image_import_of_a_non_image_says_container_setup_failed() {
    let (home, lxr) = unconfined();
    let dir = home.path().join("files");
    std::fs::create_dir(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    // A tarball without metadata.yaml.
    std::fs::write(dir.join("x"), b"hi\n").unwrap();
    let tar = dir.join("nometa.tar.gz");
    let t = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-czf")
        .arg(&tar)
        .arg("x")
        .status()
        .unwrap();
    assert!(t.success());
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    for f in [&dir, &empty, &tar] {
        std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
    }
    for (file, want) in [
        ("/etc/passwd", "neither a tarball"),
        (empty.to_str().unwrap(), "the file is empty, not an image"),
        (tar.to_str().unwrap(), "no metadata.yaml"),
    ] {
        let o = lxr.run(&["image", "import", file]);
        assert_eq!(o.status.code(), Some(1), "{file}: {o:?}");
        let e = stderr(&o);
        assert!(
            e.starts_with(&format!("lxr: cannot import {file}: ")),
            "{e}"
        );
        assert!(!e.contains("container setup failed"), "{e}");
        assert!(e.contains(want), "{file}: {e}");
        assert!(!e.contains("container setup failed"), "{file}: {e}");
    }
    assert!(
        lxr.ok(&["image", "list", "--format", "csv"])
            .lines()
            .count()
            <= 1
    );
}

const LONG: &str = "a123456789b123456789c123456789d123456789e123456789f123456789xyz";

/// `list`'s NAME column was 20 characters wide, and a frozen container showed RUNNING.
#[test]
fn list_has_a_fixed_20_column_name_and_no_frozen_state() {
    assert_eq!(LONG.len(), 63);
    let w = World::new("lxrcli");
    let lxr = w.lxr(None);
    let _c = Cleanup(&lxr, vec!["f1", "f2", LONG]);
    lxr.ok(&["launch", "busybox", "f1", "-c", "limits.cpu=0,1"]);
    lxr.ok(&["launch", "busybox", "f2"]);
    lxr.ok(&["launch", "busybox", LONG]);
    // Every column starts where its header does, with the 63-character name in the table.
    let table = lxr.ok(&["list", "-c", "nstSp"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let at = lines[0].find("STATE").unwrap();
    assert_eq!(at, 63 + 2, "{table}");
    for l in &lines[1..] {
        assert_eq!(&l[at..at + 7], "RUNNING", "{table}");
        assert_eq!(l.find("CONTAINER"), lines[0].find("TYPE"), "{table}");
    }
    assert!(lines.iter().any(|l| l.starts_with(LONG)), "{table}");
    // limits.cpu=0,1 stays one csv field (RFC 4180 quoting).
    let csv = lxr.ok(&["list", "--format", "csv", "name=f1"]);
    let row = csv.lines().nth(1).unwrap();
    assert!(row.ends_with(",\"cpu=0,1\""), "{csv}");
    assert!(csv.starts_with("name,state,pid,ipv4,ipv6,"), "{csv}");
    // Freeze --all: every running one, shown FROZEN; a status filter finds them.
    lxr.ok(&["freeze", "f1", "f2"]);
    assert_eq!(state(&lxr, "f1"), "FROZEN");
    assert_eq!(state(&lxr, "f2"), "FROZEN");
    assert_eq!(state(&lxr, LONG), "RUNNING");
    let info = lxr.ok(&["info", "f1"]);
    assert!(info.contains("Status: FROZEN"), "as Incus's info: {info}");
    let frozen = lxr.ok(&["list", "status=frozen", "-c", "n", "-f", "csv"]);
    assert_eq!(frozen, "name\nf1\nf2", "{frozen}");
    let running = lxr.ok(&["list", "status=running", "-c", "n", "-f", "csv"]);
    assert_eq!(running, format!("name\n{LONG}"), "{running}");
    let o = lxr.run(&["unfreeze", "--all"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(state(&lxr, "f1"), "RUNNING");
    assert_eq!(state(&lxr, "f2"), "RUNNING");
    lxr.ok(&["freeze", "--all"]);
    assert_eq!(state(&lxr, LONG), "FROZEN");
    lxr.ok(&["unfreeze", "--all"]);
    assert_eq!(state(&lxr, LONG), "RUNNING");
    // json shows the state and the new fields too.
    let json = lxr.ok(&["list", "-f", "json", "f1"]);
    assert!(json.contains("\"type\":\"CONTAINER\""), "{json}");
    assert!(json.contains("\"snapshots\":0"), "{json}");
}

#[test]
fn list_columns_and_filters_as_incus() {
    let (home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["c1", "c2", "web1"]);
    for n in ["c1", "c2", "web1"] {
        lxr.ok(&["launch", "busybox", n]);
    }
    lxr.ok(&["stop", "--force", "c2"]);
    lxr.ok(&["config", "set", "c2", "user.tag", "a,b"]);
    // Snapshots: the directories under containers/<name>/snapshots/.
    let snaps = home.path().join("lxr/containers/web1/snapshots");
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    for d in [snaps.clone(), snaps.join("s1"), snaps.join("s2")] {
        if !d.exists() {
            std::fs::create_dir(&d).unwrap();
        }
        std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
    }
    let names = |args: &[&str]| {
        let mut a = vec!["list", "-c", "n", "-f", "csv"];
        a.extend_from_slice(args);
        let out = lxr.ok(&a);
        out.lines().skip(1).map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&[]), ["c1", "c2", "web1"]);
    // A bare word: a name prefix, or an anchored regex.
    assert_eq!(names(&["c"]), ["c1", "c2"]);
    assert_eq!(names(&["w.*1"]), ["web1"]);
    assert_eq!(names(&["1"]), Vec::<String>::new());
    assert_eq!(names(&["name=c[0-9]"]), ["c1", "c2"]);
    assert_eq!(names(&["name=c"]), Vec::<String>::new());
    assert_eq!(names(&["status=stopped"]), ["c2"]);
    assert_eq!(names(&["status=RUNNING", "c"]), ["c1"]);
    assert_eq!(names(&["type=container"]), ["c1", "c2", "web1"]);
    assert_eq!(names(&["user.tag=a,b"]), ["c2"]);
    assert_eq!(names(&["ipv4=10.0.2.0/24", "c"]), ["c1"]);
    assert_eq!(names(&["ipv4=10.9.0.0/16"]), Vec::<String>::new());
    // Columns by Incus's letters.
    let row = csv_row(&lxr, "ns4tSp", "web1").unwrap();
    assert_eq!(row[1], "RUNNING");
    assert!(row[2].starts_with("10.0.2.100 (eth0)"), "{row:?}");
    assert_eq!(row[3], "CONTAINER");
    assert_eq!(row[4], "2");
    assert!(row[5].parse::<u32>().is_ok(), "{row:?}");
    let o = lxr.run(&["list", "-c", "nZ"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no column 'Z'"), "{o:?}");
    let o = lxr.run(&["list", "name=("]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // compact is the borderless table.
    assert_eq!(
        lxr.ok(&["list", "-f", "compact", "-c", "ns", "c2"]),
        "NAME  STATE\nc2    STOPPED"
    );
}

#[test]
fn quiet_drops_informational_lines_everywhere() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["q1"]);
    let o = lxr.run(&["-q", "launch", "busybox", "q1"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "");
    // Warnings still go to stderr.
    assert!(stderr(&o).contains("unconfined"), "{o:?}");
    for args in [
        &["stop", "-q", "--force", "q1"][..],
        &["start", "--quiet", "q1"],
        &["restart", "-q", "--force", "q1"],
    ] {
        let o = lxr.run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
    // What a command is asked to show is not informational.
    assert!(lxr.ok(&["-q", "list"]).contains("q1"));
    // Errors always print.
    let o = lxr.run(&["-q", "stop", "ghost"]);
    assert!(stderr(&o).contains("no container ghost"), "{o:?}");
}

#[test]
fn completions_and_man_pages_are_generated_from_the_cli() {
    let (home, lxr) = unconfined();
    for (shell, want) in [
        ("bash", "_lxr()"),
        ("zsh", "#compdef lxr"),
        ("fish", "complete -c lxr"),
    ] {
        let out = lxr.ok(&["completion", shell]);
        assert!(out.contains(want), "{shell}: {out}");
        for verb in ["launch", "freeze", "list", "image"] {
            assert!(out.contains(verb), "{shell} lacks {verb}");
        }
    }
    assert_eq!(lxr.run(&["completion", "tcsh"]).status.code(), Some(2));
    let dir = home.path().join("man");
    lxr.ok(&["manpage", dir.to_str().unwrap()]);
    for page in ["lxr.1", "lxr-launch.1", "lxr-list.1", "lxr-image-import.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH "), "{page}: {text}");
    }
    // The hidden generator has no page of its own.
    assert!(!dir.join("lxr-manpage.1").exists());
    if std::path::Path::new("/usr/bin/man").exists() {
        let o = std::process::Command::new("man")
            .arg("-l")
            .arg(dir.join("lxr-list.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = stdout(&o);
        assert!(text.contains("NAME") && text.contains("lxr-list"), "{o:?}");
        assert!(text.contains("--columns"), "{text}");
    }
}

/// `image list`'s ALIAS column was 20 wide too (an alias may have 128 characters); `image ls`
/// and `image rm` are Incus's aliases.
#[test]
fn image_list_has_a_fixed_20_column_alias() {
    let (home, lxr) = unconfined();
    let dir = home.path().join("img");
    std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        "architecture: x86_64\ncreation_date: 1\nproperties:\n  description: tiny\n",
    )
    .unwrap();
    let tar = home.path().join("tiny.tar");
    let t = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .args(["metadata.yaml", "rootfs"])
        .status()
        .unwrap();
    assert!(t.success());
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    std::os::unix::fs::chown(&tar, Some(uid), Some(gid)).unwrap();
    let alias = "x".repeat(100);
    let o = lxr.run(&[
        "-q",
        "image",
        "import",
        tar.to_str().unwrap(),
        "--alias",
        &alias,
    ]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "", "-q: {o:?}");
    let table = lxr.ok(&["image", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    let at = lines[0].find("FINGERPRINT").unwrap();
    assert_eq!(at, 100 + 2, "{table}");
    let row = lines.iter().find(|l| l.starts_with(&alias)).unwrap();
    assert_eq!(row.find("tiny"), lines[0].find("DESCRIPTION"), "{table}");
    assert!(
        row[at..].split_whitespace().next().unwrap().len() == 12,
        "{table}"
    );
    lxr.ok(&["image", "rm", &alias]);
    assert!(!lxr.ok(&["image", "ls"]).contains(&alias));
}
