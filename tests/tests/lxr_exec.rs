//! `lxr exec` with Incus's flags (`--user`, `--group`, `--cwd`, `--env`, no `--` needed) and
//! `lxr shell`, as the test user in a busybox container: each flag's effect, the defaults of
//! the environment, the exit status, and the hostile cases — a `--cwd` that does not exist
//! (an error, never a run in `/`), a symlink planted by the container's root (resolved in the
//! container, never on the host), an id outside the container's mapping.
//! Containers run without a network (`network.mode=none`): nothing here needs one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use e2e::lxr::{unconfined, Cleanup, Lxr};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn launched(lxr: &Lxr, name: &str) {
    lxr.ok(&["launch", "busybox", name, "-c", "network.mode=none"]);
}

#[test]
fn exec_needs_no_double_dash_and_keeps_the_commands_options() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["x1"]);
    launched(&lxr, "x1");
    // Options after the command are the command's (`-la`, even `--cwd`).
    let a = lxr.ok(&["exec", "x1", "ls", "-la", "/etc/hostname"]);
    assert!(a.contains("/etc/hostname") && a.starts_with("-rw"), "{a}");
    let b = lxr.ok(&["exec", "x1", "--", "ls", "-la", "/etc/hostname"]);
    assert_eq!(a, b);
    let o = lxr.run(&["exec", "x1", "echo", "--cwd", "/missing"]);
    assert_eq!(out(&o), "--cwd /missing");
    // The exit status is the command's.
    let o = lxr.run(&["exec", "x1", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
}

/// `lxr exec x2 --user 1000 --group 1000 ARGS…` (exec's options may lead `ARGS`), which must
/// succeed; its stdout.
fn as_user_1000(lxr: &Lxr, args: &[&str]) -> String {
    let mut all = vec!["exec", "x2", "--user", "1000", "--group", "1000"];
    all.extend_from_slice(args);
    lxr.ok(&all)
}

#[test]
fn exec_user_group_cwd_and_the_default_environment() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["x2"]);
    launched(&lxr, "x2");
    // Root: Incus's defaults.
    let env = lxr.ok(&["exec", "x2", "-T", "env"]);
    for want in [
        "HOME=/root",
        "USER=root",
        "LANG=C.UTF-8",
        "PATH=/usr/local/sbin:",
    ] {
        assert!(env.lines().any(|l| l.starts_with(want)), "{want} in {env}");
    }
    assert_eq!(lxr.ok(&["exec", "x2", "pwd"]), "/root");
    // A user with a passwd entry: its uid, gid, HOME, USER, and its home as the directory.
    lxr.ok(&[
        "exec", "x2", "sh", "-c",
        "echo 'u:x:1000:1000::/home/u:/bin/sh' >> /etc/passwd && mkdir -p /home/u && chown 1000:1000 /home/u",
    ]);
    let o = as_user_1000(
        &lxr,
        &["sh", "-c", "echo $(id -u) $(id -g) $HOME $USER $(pwd)"],
    );
    assert_eq!(o, "1000 1000 /home/u u /home/u");
    // No supplementary groups of root's kept.
    assert_eq!(as_user_1000(&lxr, &["id", "-G"]), "1000");
    // On a pty (-t), the terminal is the user's.
    let o = as_user_1000(&lxr, &["-t", "sh", "-c", "stat -c '%u %g' $(tty)"]);
    assert_eq!(o.trim(), "1000 1000");
    // --cwd.
    assert_eq!(lxr.ok(&["exec", "x2", "--cwd", "/tmp", "pwd"]), "/tmp");
    // A directory the user may not enter is an error too, not a run elsewhere.
    let o = lxr.run(&["exec", "x2", "--user", "1000", "--cwd", "/root", "pwd"]);
    assert!(!o.status.success() && out(&o).is_empty(), "{o:?}");
    assert!(err(&o).contains("--cwd /root"), "{o:?}");
}

#[test]
fn exec_cwd_missing_fails_instead_of_running_in_root() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["x3"]);
    launched(&lxr, "x3");
    let o = lxr.run(&[
        "exec",
        "x3",
        "--cwd",
        "/missing",
        "--",
        "sh",
        "-c",
        "pwd; touch ran",
    ]);
    assert!(!o.status.success(), "{o:?}");
    assert!(out(&o).is_empty(), "the command ran: {o:?}");
    assert!(
        err(&o).contains("--cwd /missing") && !err(&o).contains("setup failed"),
        "{o:?}"
    );
    assert!(!lxr
        .run(&["exec", "x3", "test", "-e", "/ran"])
        .status
        .success());
    // A symlink the container's root planted is followed in the container: to its /tmp, and
    // to the host user's home not at all (it does not exist in the container).
    lxr.ok(&[
        "exec",
        "x3",
        "sh",
        "-c",
        "ln -s /tmp /t; ln -s /home/lxrtest1 /h; ln -s /proc/1/root/tmp /p",
    ]);
    assert_eq!(lxr.ok(&["exec", "x3", "--cwd", "/t", "pwd", "-P"]), "/tmp");
    let o = lxr.run(&["exec", "x3", "--cwd", "/h", "pwd"]);
    assert!(!o.status.success() && out(&o).is_empty(), "{o:?}");
}

#[test]
fn exec_env_key_alone_passes_lxrs_value_instead_of_being_dropped() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["x4"]);
    launched(&lxr, "x4");
    let o = lxr
        .command_env(
            &["FOO=from-lxr"],
            &[
                "exec",
                "x4",
                "--env",
                "FOO",
                "--env",
                "BAR=b=c",
                "--env",
                "HOME=/tmp",
                "sh",
                "-c",
                "echo $FOO $BAR $HOME",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out(&o), "from-lxr b=c /tmp", "{o:?}");
    // A bare KEY lxr does not have is an error, not silence.
    let o = lxr.run(&["exec", "x4", "--env", "LXR_TEST_UNSET", "true"]);
    assert!(
        !o.status.success() && err(&o).contains("LXR_TEST_UNSET"),
        "{o:?}"
    );
}

#[test]
fn exec_user_outside_the_mapping_is_a_clear_error() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["x5"]);
    launched(&lxr, "x5");
    for args in [["--user", "70000"], ["--group", "65536"]] {
        let o = lxr.run(&["exec", "x5", args[0], args[1], "id"]);
        assert!(!o.status.success() && out(&o).is_empty(), "{o:?}");
        assert!(err(&o).contains("does not exist in the container"), "{o:?}");
    }
    // A container that does not exist is named so (not "not running").
    let o = lxr.run(&["exec", "nosuch", "true"]);
    assert!(
        !o.status.success() && err(&o).contains("no container nosuch"),
        "{o:?}"
    );
    let o = lxr.run(&["exec", "x5", "--user", "-1", "id"]);
    assert!(!o.status.success(), "{o:?}");
}

#[test]
fn shell_is_a_login_shell_as_root_on_a_pty() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["x6"]);
    launched(&lxr, "x6");
    // On a terminal (script(1) gives lxr one): su -l's login shell, in /root, on a pty of the
    // container's own devpts; its exit status is shell's.
    let line = format!("{} shell x6", e2e::cgm::bin("lxr").display());
    let mut c = std::process::Command::new("setpriv");
    let (uid, gid) = e2e::cgm::test_user("lxrtest1");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--init-groups", "env"])
        .arg(format!("XDG_DATA_HOME={}", lxr.data.display()))
        .arg(format!("LXR_CGMANAGER={}", lxr.cgm))
        .arg("LXR_LXCFS=/nonexistent")
        .args(["script", "-qfec", &line, "/dev/null"]);
    let o = run_with_input(
        c,
        b"echo \"at $(pwd) uid $(id -u) shell $0 on $(tty)\"; exit 3\n",
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("at /root uid 0 shell -"), "{s}");
    assert!(s.contains("on /dev/pts/"), "{s}");
    assert_eq!(o.status.code(), Some(3), "{o:?}");
}

fn run_with_input(mut c: std::process::Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
