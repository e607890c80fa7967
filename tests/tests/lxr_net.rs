//! lxr's container network as the unprivileged `lxrtest1`: the user-mode stack (slirp4netns by
//! default, pasta on request) attached to the container's network namespace by its monitor,
//! proxy devices, the addresses in `list`/`info`, the helper's lifecycle — and the hostile side:
//! a container that floods, a helper killed, a taken port, bogus device specs, the host's
//! loopback kept out of reach unless asked for, no host descriptor in the helper.
//!
//! Only loopback and the containers' own namespaces are used: no traffic leaves the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use e2e::lxr::{unconfined, wait_for, Cleanup, Lxr};

/// `lxr config device add <c> <dev> proxy <listen> <connect>`'s arguments.
fn proxy<'a>(c: &'a str, dev: &'a str, listen: &'a str, connect: &'a str) -> [&'a str; 8] {
    ["config", "device", "add", c, dev, "proxy", listen, connect]
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP-ish server on the host's 127.0.0.1 answering `body` to every connection.
fn host_server(body: &'static str) -> u16 {
    host_server_on("127.0.0.1:0", body)
}

/// The same on `addr` (`[::1]:0` for the host's IPv6 loopback).
fn host_server_on(addr: &str, body: &'static str) -> u16 {
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            // The whole request before the answer, then a clean FIN: closing with unread
            // bytes would send a reset, which this pasta does not pass on (the client hangs).
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut b = [0u8; 512];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(n) if n > 0 => req.extend_from_slice(&b[..n]),
                    _ => break,
                }
            }
            let _ = write!(s, "HTTP/1.0 200 OK\r\n\r\n{body}\n");
            let _ = s.shutdown(std::net::Shutdown::Write);
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        }
    });
    port
}

/// What `ip:port` answers to a GET from inside `name` (busybox nc), or "" if nothing.
fn fetch_inside(lxr: &Lxr, name: &str, ip: &str, port: u16) -> String {
    let o = lxr.run(&[
        "exec",
        name,
        "--",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 10 nc -w 3 {ip} {port}"),
    ]);
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// What the host gets from 127.0.0.1:`port`, or the error.
fn fetch_host(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    if out.is_empty() {
        Err("empty answer".into())
    } else {
        Ok(out)
    }
}

/// busybox httpd on port 80 inside `name`, serving `body` (on `bind`, e.g. `80` or
/// `127.0.0.1:80`).
fn serve_inside(lxr: &Lxr, name: &str, bind: &str, body: &str) {
    lxr.ok(&[
        "exec",
        name,
        "--",
        "sh",
        "-c",
        &format!("mkdir -p /www && echo {body} > /www/index.html && httpd -p {bind} -h /www"),
    ]);
}

/// The host pids of every network helper (slirp4netns, pasta) whose command line names a path
/// under `data` (its API socket or pid file: one of this test's containers).
fn helpers(data: &std::path::Path) -> Vec<u32> {
    let d = data.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Zombies waiting for a reaper run nothing.
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'));
            !zombie && (cmd.contains("slirp4netns") || cmd.contains("pasta")) && cmd.contains(&d)
        })
        .collect()
}

/// `Network: slirp4netns (helper pid N…)` of `info`.
fn helper_pid(lxr: &Lxr, name: &str) -> Option<u32> {
    let info = lxr.ok(&["info", name]);
    let l = info.lines().find(|l| l.starts_with("Network: "))?;
    l.split("helper pid ")
        .nth(1)?
        .split([',', ')'])
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The monitor's pid of a running container (state.json).
fn monitor_pid(lxr: &Lxr, name: &str) -> u32 {
    let st = std::fs::read_to_string(lxr.data.join(format!("lxr/run/{name}/state.json"))).unwrap();
    let i = st.find("\"monitor_pid\":").unwrap() + "\"monitor_pid\":".len();
    st[i..]
        .split([',', '}'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The host's IPv4 default gateway (what pasta gives the container), from /proc/net/route.
fn host_gateway() -> Option<String> {
    let t = std::fs::read_to_string("/proc/net/route").ok()?;
    t.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"00000000")).then(|| {
            let g = u32::from_str_radix(f[2], 16).unwrap();
            std::net::Ipv4Addr::from(g.to_le_bytes()).to_string()
        })
    })
}

fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/ipv6_route")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 10 && f[0] == "0".repeat(32) && f[1] == "00" && f[9] != "lo"
        })
}

#[test]
fn the_default_network_is_slirp4netns_with_address_route_dns_and_shows_in_list_and_info() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["n1"]);
    lxr.ok(&["launch", "busybox", "n1"]);
    let list = lxr.ok(&["list", "--format", "csv"]);
    assert!(list.starts_with("name,state,pid,ipv4,ipv6,"), "{list}");
    assert!(list.contains("10.0.2.100 (eth0)"), "{list}");
    let table = lxr.ok(&["list"]);
    assert!(table.lines().next().unwrap().contains("IPV4"), "{table}");
    let info = lxr.ok(&["info", "n1"]);
    assert!(info.contains("Network: slirp4netns (helper pid"), "{info}");
    assert!(info.contains("eth0: 10.0.2.100"), "{info}");
    // Inside: eth0 up with its address, a default route through it, slirp's DNS forwarder.
    let dev = lxr.ok(&["exec", "n1", "--", "cat", "/proc/net/dev"]);
    assert!(dev.contains("eth0:"), "{dev}");
    let route = lxr.ok(&["exec", "n1", "--", "cat", "/proc/net/route"]);
    assert!(
        route
            .lines()
            .any(|l| l.starts_with("eth0") && l.split_whitespace().nth(1) == Some("00000000")),
        "{route}"
    );
    let resolv = lxr.ok(&["exec", "n1", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.0.2.3"), "{resolv}");
    // IPv6 where the host has it (SLAAC from slirp4netns's router advertisements).
    if host_has_ipv6() {
        assert!(resolv.contains("nameserver fd00::3"), "{resolv}");
        wait_for("an IPv6 address in list", 10, || {
            lxr.ok(&["list", "--format", "csv"]).contains("fd00::")
        });
    }
    // The default does not open the host's loopback: 10.0.2.2 is no way to 127.0.0.1.
    let port = host_server("host-hello");
    assert!(!fetch_inside(&lxr, "n1", "10.0.2.2", port).contains("host-hello"));
    // A restart brings it back (a new helper), and resolv.conf is lxr's to rewrite.
    let before = helper_pid(&lxr, "n1").unwrap();
    lxr.ok(&["restart", "n1"]);
    let after = helper_pid(&lxr, "n1").unwrap();
    assert_ne!(before, after);
    assert!(lxr
        .ok(&["exec", "n1", "--", "cat", "/proc/net/dev"])
        .contains("eth0:"));
}

#[test]
fn the_hosts_loopback_is_reachable_only_when_asked_through_pasta_and_slirp4netns() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["pl", "pn", "sl", "sn"]);
    let port = host_server("host-hello");
    let gw = host_gateway().expect("the host has an IPv4 default route (pasta copies it)");
    // pasta's gateway is the host's loopback with network.host_loopback=true …
    lxr.ok(&[
        "launch",
        "busybox",
        "pl",
        "-c",
        "network.mode=pasta",
        "-c",
        "network.host_loopback=true",
    ]);
    assert!(lxr.ok(&["info", "pl"]).contains("Network: pasta"));
    assert!(
        fetch_inside(&lxr, "pl", &gw, port).contains("host-hello"),
        "pasta, host loopback mapped"
    );
    let resolv = lxr.ok(&["exec", "pl", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 169.254.1.1"), "{resolv}");
    // … and not without it.
    lxr.ok(&["launch", "busybox", "pn", "-c", "network.mode=pasta"]);
    assert!(!fetch_inside(&lxr, "pn", &gw, port).contains("host-hello"));
    // slirp4netns's 10.0.2.2, when asked.
    lxr.ok(&[
        "launch",
        "busybox",
        "sl",
        "-c",
        "network.host_loopback=true",
    ]);
    assert!(fetch_inside(&lxr, "sl", "10.0.2.2", port).contains("host-hello"));
    // The same for the host's ::1: slirp4netns's fd00::2 reaches it only when asked, pasta's
    // IPv6 gateway not without the mapping.
    if host_has_ipv6() {
        let p6 = host_server_on("[::1]:0", "host-hello-v6");
        lxr.ok(&["launch", "busybox", "sn"]);
        // SLAAC takes a router advertisement or two.
        wait_for("IPv6 addresses", 15, || {
            let csv = lxr.ok(&["list", "--format", "csv"]);
            ["sl", "sn"].iter().all(|n| {
                csv.lines()
                    .any(|l| l.starts_with(&format!("{n},")) && l.contains("fd00::"))
            })
        });
        assert!(fetch_inside(&lxr, "sl", "fd00::2", p6).contains("host-hello-v6"));
        assert!(!fetch_inside(&lxr, "sn", "fd00::2", p6).contains("host-hello-v6"));
        let gw6 = lxr.ok(&[
            "exec",
            "pn",
            "--",
            "sh",
            "-c",
            "busybox ip -6 route | awk '/^default/ {print $3; exit}'",
        ]);
        if !gw6.is_empty() {
            assert!(!fetch_inside(&lxr, "pn", &gw6, p6).contains("host-hello-v6"));
        }
    }
}

#[test]
fn proxy_devices_live_on_slirp4netns_at_start_on_pasta_and_a_taken_port_is_refused() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["w1", "w2"]);
    lxr.ok(&["launch", "busybox", "w1"]);
    serve_inside(&lxr, "w1", "80", "from-w1");
    // Live, on slirp4netns: the host's 127.0.0.1:port reaches the container's port 80.
    let port = free_port();
    let listen = format!("listen=tcp:127.0.0.1:{port}");
    lxr.ok(&proxy("w1", "web", &listen, "connect=tcp:127.0.0.1:80"));
    assert!(fetch_host(port).unwrap().contains("from-w1"));
    let list = lxr.ok(&["config", "device", "list", "w1"]);
    assert_eq!(list, format!("web: tcp 127.0.0.1:{port} -> 127.0.0.1:80"));
    assert!(lxr
        .ok(&["info", "w1"])
        .contains(&format!("web: tcp 127.0.0.1:{port}")));
    // UDP on slirp4netns needs the host's loopback open (libslirp drops the replies to
    // 10.0.2.2 otherwise): refused, saying so (udp_proxy_devices_… forwards datagrams).
    let uport = free_port();
    let o = lxr.run(&proxy(
        "w1",
        "dns",
        &format!("listen=udp:127.0.0.1:{uport}"),
        "connect=udp:127.0.0.1:53",
    ));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("network.host_loopback=true"));
    // A taken port: a clear error, nothing saved.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = taken.local_addr().unwrap().port();
    let o = lxr.run(&proxy(
        "w1",
        "web2",
        &format!("listen=tcp:127.0.0.1:{tport}"),
        "connect=tcp:127.0.0.1:80",
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("already in use"), "{err}");
    assert!(!lxr.ok(&["config", "device", "list", "w1"]).contains("web2"));
    // The same listen address twice.
    assert!(!lxr
        .run(&[
            "config",
            "device",
            "add",
            "w1",
            "web3",
            "proxy",
            &listen,
            "connect=tcp:127.0.0.1:81"
        ])
        .status
        .success());
    // Removed live.
    lxr.ok(&["config", "device", "remove", "w1", "web"]);
    assert!(fetch_host(port).is_err());
    // Re-applied at the next start.
    lxr.ok(&proxy("w1", "web", &listen, "connect=tcp:127.0.0.1:80"));
    lxr.ok(&["restart", "w1"]);
    serve_inside(&lxr, "w1", "80", "from-w1-again");
    assert!(fetch_host(port).unwrap().contains("from-w1-again"));

    // pasta: forwards at start, to the container's own loopback.
    let pport = free_port();
    lxr.ok(&["launch", "busybox", "w2", "-c", "network.mode=pasta"]);
    lxr.ok(&["stop", "w2"]);
    let o = lxr.run(&proxy(
        "w2",
        "web",
        &format!("listen=tcp:127.0.0.1:{pport}"),
        "connect=tcp:127.0.0.1:80",
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    lxr.ok(&["start", "w2"]);
    serve_inside(&lxr, "w2", "127.0.0.1:80", "from-w2");
    assert!(fetch_host(pport).unwrap().contains("from-w2"));
    // A start whose forward's port is taken fails, saying so, and leaves nothing running.
    lxr.ok(&["stop", "w2"]);
    let hold = TcpListener::bind(("127.0.0.1", pport)).unwrap();
    let o = lxr.run(&["start", "w2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("already in use"), "{err}");
    assert!(lxr.pid("w2").is_none());
    drop(hold);
    drop(taken);
}

#[test]
fn two_containers_of_one_user_each_get_their_network() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["a1", "a2"]);
    let mut ports = Vec::new();
    for n in ["a1", "a2"] {
        lxr.ok(&["launch", "busybox", n]);
        serve_inside(&lxr, n, "80", &format!("i-am-{n}"));
        let p = free_port();
        lxr.ok(&proxy(
            n,
            "web",
            &format!("listen=tcp:127.0.0.1:{p}"),
            "connect=tcp:127.0.0.1:80",
        ));
        ports.push(p);
    }
    assert!(fetch_host(ports[0]).unwrap().contains("i-am-a1"));
    assert!(fetch_host(ports[1]).unwrap().contains("i-am-a2"));
    let (h1, h2) = (
        helper_pid(&lxr, "a1").unwrap(),
        helper_pid(&lxr, "a2").unwrap(),
    );
    assert_ne!(h1, h2);
    let csv = lxr.ok(&["list", "--format", "csv"]);
    assert_eq!(csv.matches("10.0.2.100 (eth0)").count(), 2, "{csv}");
}

#[test]
fn nothing_is_left_after_stop_kill_9_of_the_monitor_and_delete() {
    let (home, lxr) = unconfined();
    let data = home.path().to_path_buf();
    let _c = Cleanup(&lxr, vec!["k1", "k2"]);
    lxr.ok(&["launch", "busybox", "k1"]);
    let h = helper_pid(&lxr, "k1").unwrap();
    assert_eq!(helpers(&data), vec![h]);
    lxr.ok(&["stop", "k1"]);
    assert!(helpers(&data).is_empty());
    // kill -9 of the monitor: the helper dies with it (PR_SET_PDEATHSIG).
    lxr.ok(&["start", "k1"]);
    assert_eq!(helpers(&data).len(), 1);
    let m = monitor_pid(&lxr, "k1");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(m as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the helper to die with its monitor", 5, || {
        helpers(&data).is_empty()
    });
    lxr.ok(&["delete", "--force", "k1"]);
    assert!(helpers(&data).is_empty());
    // `lxr launch` killed at various points.
    for delay_ms in [5u64, 20, 60, 150] {
        let mut child = lxr
            .command(&["launch", "busybox", "k2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(300));
        let _ = lxr.run(&["delete", "--force", "k2"]);
        wait_for("no helper after delete", 5, || helpers(&data).is_empty());
    }
}

#[test]
fn network_mode_none_gives_only_lo() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["lo1"]);
    lxr.ok(&["launch", "busybox", "lo1", "-c", "network.mode=none"]);
    let dev = lxr.ok(&["exec", "lo1", "--", "cat", "/proc/net/dev"]);
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, vec!["lo"], "{dev}");
    assert!(lxr.ok(&["info", "lo1"]).contains("Network: none"));
    assert!(!lxr
        .run(&["exec", "lo1", "--", "cat", "/etc/resolv.conf"])
        .status
        .success());
    let csv = lxr.ok(&["list", "--format", "csv"]);
    assert!(csv.contains("lo1,RUNNING,"), "{csv}");
    assert!(!csv.contains("10.0.2.100"), "{csv}");
}

/// Hostile: the helper is killed (by the user, an OOM, a bug triggered from inside): the
/// monitor starts it again with the forwards of the moment; one that keeps dying is given up
/// without taking the container down.
#[test]
fn a_killed_helper_is_restarted_with_its_forwards_and_one_that_keeps_dying_is_given_up() {
    let (home, lxr) = unconfined();
    let data = home.path().to_path_buf();
    let _c = Cleanup(&lxr, vec!["h1"]);
    lxr.ok(&["launch", "busybox", "h1"]);
    serve_inside(&lxr, "h1", "80", "still-here");
    let port = free_port();
    lxr.ok(&proxy(
        "h1",
        "web",
        &format!("listen=tcp:127.0.0.1:{port}"),
        "connect=tcp:127.0.0.1:80",
    ));
    let first = helper_pid(&lxr, "h1").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("a new helper", 10, || {
        helper_pid(&lxr, "h1").is_some_and(|p| p != first)
    });
    assert!(lxr.ok(&["info", "h1"]).contains("restarted 1 times"));
    assert!(fetch_host(port).unwrap().contains("still-here"));
    // Killed again and again: after 5 restarts within a minute the monitor stops trying.
    for _ in 0..6 {
        let Some(p) = helper_pid(&lxr, "h1") else {
            break;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        wait_for("the monitor to notice", 10, || {
            helper_pid(&lxr, "h1") != Some(p)
        });
    }
    wait_for("the network given up", 10, || {
        lxr.ok(&["info", "h1"]).contains("Network: none")
    });
    assert!(helpers(&data).is_empty());
    // The container itself runs on, and stops cleanly.
    assert!(lxr.pid("h1").is_some());
    lxr.ok(&["stop", "h1"]);
}

/// Hostile: the container's root floods its stack — bulk data to a host service it may reach,
/// hundreds of connections, connections to closed ports. The helper survives, the host's other
/// forwards keep working, and the container still stops in time with nothing left.
#[test]
fn a_flooding_container_does_not_take_the_helper_or_the_stop_down() {
    let (home, lxr) = unconfined();
    let data = home.path().to_path_buf();
    let _c = Cleanup(&lxr, vec!["f1"]);
    // A sink on the host's loopback that reads and discards.
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let sport = sink.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in sink.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut b = vec![0u8; 1 << 16];
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    lxr.ok(&[
        "launch",
        "busybox",
        "f1",
        "-c",
        "network.host_loopback=true",
    ]);
    serve_inside(&lxr, "f1", "80", "alive");
    let port = free_port();
    lxr.ok(&proxy(
        "f1",
        "web",
        &format!("listen=tcp:127.0.0.1:{port}"),
        "connect=tcp:127.0.0.1:80",
    ));
    let h = helper_pid(&lxr, "f1").unwrap();
    let flood = format!(
        "for i in 1 2 3 4; do timeout 4 sh -c 'cat /dev/zero | nc 10.0.2.2 {sport}' & done; \
         for i in $(seq 300); do (timeout 4 nc 10.0.2.2 {sport} < /dev/zero &) ; done; \
         for p in $(seq 1 200); do nc -w 1 10.0.2.2 $p </dev/null 2>/dev/null & done; \
         sleep 5"
    );
    let t = Instant::now();
    let _ = lxr.run(&["exec", "f1", "--", "sh", "-c", &flood]);
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(helper_pid(&lxr, "f1"), Some(h), "the helper survived");
    // Once the flood's connections are gone, the forward answers again (slirp4netns drains
    // ~500 dying connections: seconds alone, over a minute beside the whole suite and the v2
    // guest on two CPUs).
    wait_for("the forward after the flood", 120, || {
        fetch_host(port).is_ok_and(|a| a.contains("alive"))
    });
    let t = Instant::now();
    lxr.ok(&["stop", "f1"]);
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(helpers(&data).is_empty());
}

/// Hostile input on the command line: every bogus device spec and network key is refused with
/// a message, and nothing is saved.
#[test]
fn bogus_device_specs_and_network_keys_are_refused() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["b1"]);
    lxr.ok(&["launch", "busybox", "b1"]);
    lxr.ok(&["stop", "b1"]);
    let before = lxr.ok(&["config", "show", "b1"]);
    for args in [
        vec!["web", "proxy", "listen=tcp:127.0.0.1:8080"],
        vec!["web", "proxy", "connect=tcp:127.0.0.1:80"],
        vec![
            "web",
            "proxy",
            "listen=tcp:127.0.0.1:8080",
            "connect=udp:127.0.0.1:80",
        ],
        vec![
            "web",
            "proxy",
            "listen=sctp:127.0.0.1:8080",
            "connect=sctp:127.0.0.1:80",
        ],
        vec![
            "web",
            "proxy",
            "listen=tcp:127.0.0.1:0",
            "connect=tcp:127.0.0.1:80",
        ],
        vec![
            "web",
            "proxy",
            "listen=tcp:localhost:8080",
            "connect=tcp:127.0.0.1:80",
        ],
        vec![
            "web",
            "proxy",
            "listen=tcp:127.0.0.1:70000",
            "connect=tcp:127.0.0.1:80",
        ],
        vec![
            "web",
            "proxy",
            "listen=tcp:127.0.0.1:8080",
            "connect=tcp:127.0.0.1:80",
            "bind=host",
        ],
        vec![
            "web",
            "proxy",
            "listen=tcp:127.0.0.1:8080",
            "listen=tcp:127.0.0.1:8081",
            "connect=tcp:127.0.0.1:80",
        ],
        vec![
            "web",
            "nic",
            "listen=tcp:127.0.0.1:8080",
            "connect=tcp:127.0.0.1:80",
        ],
        vec![
            "../x",
            "proxy",
            "listen=tcp:127.0.0.1:8080",
            "connect=tcp:127.0.0.1:80",
        ],
        vec![
            "a.b",
            "proxy",
            "listen=tcp:127.0.0.1:8080",
            "connect=tcp:127.0.0.1:80",
        ],
        vec![
            "web",
            "proxy",
            "listen=tcp:127.0.0.1:8080\nx: y",
            "connect=tcp:127.0.0.1:80",
        ],
    ] {
        let mut a = vec!["config", "device", "add", "b1"];
        a.extend(args.iter());
        let o = lxr.run(&a);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(!o.stderr.is_empty(), "{args:?}: no message");
    }
    // slirp4netns (the default) forwards only to the container's own address.
    let o = lxr.run(&proxy(
        "b1",
        "web",
        "listen=tcp:127.0.0.1:8080",
        "connect=tcp:10.9.9.9:80",
    ));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("10.0.2.100"));
    assert_eq!(lxr.ok(&["config", "show", "b1"]), before);
    // Devices only through `config device`; network keys checked.
    for (k, v) in [
        ("devices.web.type", "proxy"),
        ("network.mode", "vde"),
        ("network.host_loopback", "maybe"),
        ("network.bogus", "1"),
    ] {
        assert!(
            !lxr.run(&["config", "set", "b1", k, v]).status.success(),
            "{k}"
        );
    }
    assert!(!lxr
        .run(&["launch", "busybox", "b2", "-c", "network.mode=vde"])
        .status
        .success());
    assert!(!lxr
        .run(&["config", "device", "remove", "b1", "nothing"])
        .status
        .success());
    assert!(!lxr
        .run(&["config", "device", "list", "nonexistent"])
        .status
        .success());
    assert_eq!(lxr.ok(&["config", "show", "b1"]), before);
}

/// Hostile: the helper lives in the container's user and network namespaces, where the
/// container's root could reach what it holds. It holds nothing of lxr's: no lock, no
/// directory, no file of the user's data directory but the monitor's log on its stdio.
#[test]
fn the_helper_holds_no_host_descriptor() {
    let (home, lxr) = unconfined();
    let data = home.path().to_path_buf();
    let _c = Cleanup(&lxr, vec!["d1", "d2"]);
    lxr.ok(&["launch", "busybox", "d1"]);
    lxr.ok(&["launch", "busybox", "d2", "-c", "network.mode=pasta"]);
    for n in ["d1", "d2"] {
        let h = helper_pid(&lxr, n).unwrap();
        for e in std::fs::read_dir(format!("/proc/{h}/fd"))
            .unwrap()
            .flatten()
        {
            let fd: u32 = e.file_name().to_str().unwrap().parse().unwrap();
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            let t = target.display().to_string();
            assert!(!t.ends_with(".lock"), "{n}: fd {fd} is the lock {t}");
            if fd > 2 && t.starts_with('/') {
                assert!(
                    t.starts_with("/dev/net/tun") || t == "/dev/null",
                    "{n}: fd {fd} -> {t}"
                );
            }
            if t.starts_with(&data.display().to_string()) {
                assert!(fd <= 2 && t.ends_with("monitor.log"), "{n}: fd {fd} -> {t}");
            }
        }
    }
}

/// A UDP echo server in `name`'s network namespace only (the host's python3, entered with
/// `nsenter -n` as the test's root: busybox has no UDP server), on port `port`.
struct UdpEcho(std::process::Child);

impl UdpEcho {
    fn start(lxr: &Lxr, name: &str, port: u16) -> UdpEcho {
        let pid = lxr.pid(name).unwrap();
        let code = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',{port}))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(b'echo:'+d,a)\n"
        );
        let child = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "python3", "-c", &code])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        UdpEcho(child)
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the host gets back for a datagram to 127.0.0.1:`port` (retried: the first datagrams
/// may arrive before the forward is wired).
fn udp_round_trip(port: u16) -> Option<String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for _ in 0..10 {
        let _ = s.send_to(b"ping", ("127.0.0.1", port));
        let mut b = [0u8; 64];
        if let Ok((n, _)) = s.recv_from(&mut b) {
            return Some(String::from_utf8_lossy(&b[..n]).to_string());
        }
    }
    None
}

#[test]
fn udp_proxy_devices_forward_datagrams_on_slirp4netns_and_pasta() {
    let (_home, lxr) = unconfined();
    let _c = Cleanup(&lxr, vec!["u1", "u2"]);
    // slirp4netns, live (UDP needs the host's loopback open there).
    lxr.ok(&[
        "launch",
        "busybox",
        "u1",
        "-c",
        "network.host_loopback=true",
    ]);
    let _echo = UdpEcho::start(&lxr, "u1", 5353);
    let p1 = free_port();
    lxr.ok(&proxy(
        "u1",
        "dns",
        &format!("listen=udp:127.0.0.1:{p1}"),
        "connect=udp:127.0.0.1:5353",
    ));
    assert_eq!(udp_round_trip(p1).as_deref(), Some("echo:ping"));
    lxr.ok(&["config", "device", "remove", "u1", "dns"]);
    assert_eq!(udp_round_trip(p1), None);
    // pasta, at start; this pasta keeps UDP's port number (it loses the replies otherwise).
    lxr.ok(&["launch", "busybox", "u2", "-c", "network.mode=pasta"]);
    let p2 = free_port();
    let o = lxr.run(&proxy(
        "u2",
        "dns",
        &format!("listen=udp:127.0.0.1:{p2}"),
        "connect=udp:127.0.0.1:5353",
    ));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("keep the port number"));
    lxr.ok(&proxy(
        "u2",
        "dns",
        &format!("listen=udp:127.0.0.1:{p2}"),
        &format!("connect=udp:127.0.0.1:{p2}"),
    ));
    lxr.ok(&["restart", "u2"]);
    let _echo2 = UdpEcho::start(&lxr, "u2", p2);
    assert_eq!(udp_round_trip(p2).as_deref(), Some("echo:ping"));
}
