//! cgmanager on a bus: a private `dbus-daemon` configured like the system bus with the shipped
//! policy (`dbus/org.linuxcontainers.cgmanager.conf`), callers identified through the bus's
//! credentials, ordinary D-Bus tools (`busctl`, `dbus-send`) as clients. Also: the XML the
//! daemon serves is the shipped contract.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use e2e::cgm::{bin, test_user, CgmDaemon, CgmResult, PrivateBus, Scratch};

fn cgm_bus(bus: &PrivateBus, user: Option<&str>, args: &[&str]) -> CgmResult {
    let mut c = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(bin("cgm"));
            c
        }
        None => Command::new(bin("cgm")),
    };
    CgmResult::of(
        &c.arg("--bus")
            .arg(&bus.address)
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn served_on_a_bus_with_the_shipped_policy() {
    let bus = PrivateBus::start();
    let d = CgmDaemon::start("", &["--bus", &bus.address]);
    let s = Scratch::new("bus");
    test_user("lxrtest1");
    // The name appears once the daemon is up.
    let t0 = std::time::Instant::now();
    loop {
        let r = cgm_bus(&bus, None, &["ping"]);
        if r.ok {
            break;
        }
        assert!(t0.elapsed().as_secs() < 10, "not on the bus: {}", r.err);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let b = s.rel("b");
    let r = cgm_bus(&bus, None, &["create", "memory", &b]);
    assert!(r.ok, "{}", r.err);
    assert!(s.dir("memory", "b").is_dir());
    // A user is identified as itself through the bus, and refused with a named error.
    let r = cgm_bus(&bus, Some("lxrtest1"), &["create", "memory", &s.rel("b/u")]);
    assert_eq!(r.kind(), Some("PermissionDenied"), "{r:?}");
    // The refusal is in the -d log, as on the daemon's own socket.
    assert!(
        d.log()
            .contains("org.linuxcontainers.cgmanager.Error.PermissionDenied"),
        "{}",
        d.log()
    );
    let r = cgm_bus(
        &bus,
        Some("lxrtest1"),
        &["getvalue", "memory", &b, "memory.limit_in_bytes"],
    );
    assert!(r.ok, "{}", r.err);
    // busctl and dbus-send work as clients.
    let o = Command::new("busctl")
        .arg(format!("--address={}", bus.address))
        .args([
            "call",
            "org.linuxcontainers.cgmanager",
            "/org/linuxcontainers/cgmanager",
            "org.linuxcontainers.cgmanager0_0",
            "GetValue",
            "sss",
            "memory",
            &b,
            "memory.limit_in_bytes",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("s \""),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = Command::new("runuser")
        .args([
            "-u",
            "lxrtest1",
            "--",
            "dbus-send",
            &format!("--bus={}", bus.address),
            "--print-reply",
            "--dest=org.linuxcontainers.cgmanager",
            "/org/linuxcontainers/cgmanager",
            "org.freedesktop.DBus.Properties.Get",
            "string:org.linuxcontainers.cgmanager0_0",
            "string:api_version",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("int32 10"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Inside its own user namespace the user is still itself to the daemon (the bus reports
    // host credentials): root there gains nothing.
    let o = Command::new("runuser")
        .args([
            "-u",
            "lxrtest1",
            "--",
            "unshare",
            "--user",
            "--map-root-user",
            "busctl",
            &format!("--address={}", bus.address),
            "call",
            "org.linuxcontainers.cgmanager",
            "/org/linuxcontainers/cgmanager",
            "org.linuxcontainers.cgmanager0_0",
            "Create",
            "ss",
            "memory",
            &s.rel("b/ns"),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!s.dir("memory", "b/ns").exists());
    // Only root may own the name (the shipped policy).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = Command::new("runuser")
        .args(["-u", "lxrtest1", "--"])
        .arg(bin("cgmanager"))
        .args(["--bus", &bus.address, "--socket"])
        .arg(tmp.path().join("sock"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not allowed to own"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(d);
}

/// (interface, member, [(name, type, direction)]) for every method and property.
fn shape(xml: &str) -> BTreeSet<String> {
    let node = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
    let mut out = BTreeSet::new();
    for i in node.interfaces() {
        if !i.name().starts_with("org.linuxcontainers.") {
            continue;
        }
        for m in i.methods() {
            let args: Vec<String> = m
                .args()
                .iter()
                .map(|a| format!("{}:{}:{:?}", a.name().unwrap_or("?"), a.ty(), a.direction()))
                .collect();
            out.insert(format!("{} {} ({})", i.name(), m.name(), args.join(", ")));
        }
        for p in i.properties() {
            out.insert(format!(
                "{} property {} {} {:?}",
                i.name(),
                p.name(),
                p.ty(),
                p.access()
            ));
        }
    }
    out
}

#[test]
fn the_daemon_serves_the_shipped_xml() {
    let d = CgmDaemon::start("", &[]);
    let o = Command::new("dbus-send")
        .arg(format!("--peer=unix:path={}", d.socket.display()))
        .args([
            "--print-reply=literal",
            "/org/linuxcontainers/cgmanager",
            "org.freedesktop.DBus.Introspectable.Introspect",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let served = String::from_utf8_lossy(&o.stdout);
    let served = &served[served.find("<!DOCTYPE").unwrap_or(0)..];
    let shipped = cgmanager_dbus::INTERFACE_XML;
    let (a, b) = (shape(served), shape(shipped));
    assert!(a.len() > 35, "{a:?}");
    let only_served: Vec<_> = a.difference(&b).collect();
    let only_shipped: Vec<_> = b.difference(&a).collect();
    assert!(
        only_served.is_empty() && only_shipped.is_empty(),
        "served but not shipped: {only_served:#?}\nshipped but not served: {only_shipped:#?}"
    );
}

/// Issue 18: `--bus` without an address means the system bus before the verb (the README's
/// `cgm --bus ping`) as after it (`cgm ping --bus`); here the "system bus" is the private one.
#[test]
fn bus_option_goes_before_or_after_the_verb() {
    let bus = PrivateBus::start();
    let _d = CgmDaemon::start("", &["--bus", &bus.address]);
    let t0 = std::time::Instant::now();
    for args in [
        &["--bus", "ping"][..],
        &["ping", "--bus"],
        &["--bus", "apiversion"],
    ] {
        loop {
            let o = Command::new(bin("cgm"))
                .args(args)
                .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
                .output()
                .unwrap();
            let r = CgmResult::of(&o);
            if r.ok {
                break;
            }
            // The daemon's name may not be on the bus yet.
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "{args:?}: {r:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
