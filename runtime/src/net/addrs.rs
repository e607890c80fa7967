//! The container's interfaces and addresses, as `list` and `info` show them: read from
//! `/proc/<init>/net` (the init's network namespace; the user may read it, being the owner of
//! the container's user namespace), so they are what the container has now, not what lxr
//! meant it to have. Everything is parsed as numbers and addresses, never shown raw.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One interface (other than `lo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Iface {
    /// Its name.
    pub name: String,
    /// Its IPv4 addresses.
    pub v4: Vec<Ipv4Addr>,
    /// Its global IPv6 addresses.
    pub v6: Vec<Ipv6Addr>,
}

/// At most this much of each `/proc/<init>/net` file is read: the container's root makes
/// those files (interfaces, addresses, routes), and `list` must stay quick whatever it made.
const MAX_READ: u64 = 1 << 20;
/// At most this many interfaces, and addresses of a kind per interface, are shown.
const MAX_SHOWN: usize = 64;

/// The interfaces of `pid`'s network namespace (empty if it cannot be read).
pub fn of(pid: u32) -> Vec<Iface> {
    let read = |f: &str| {
        use std::io::Read;
        let mut text = String::new();
        if let Ok(file) = std::fs::File::open(format!("/proc/{pid}/net/{f}")) {
            // A file cut at the limit (or not UTF-8) is parsed as far as it was read.
            let _ = file.take(MAX_READ).read_to_string(&mut text);
        }
        text
    };
    parse(
        &read("dev"),
        &read("fib_trie"),
        &read("route"),
        &read("if_inet6"),
    )
}

fn clean_name(n: &str) -> Option<String> {
    let n = n.trim();
    (!n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b)))
    .then(|| n.to_string())
}

/// From the text of `dev`, `fib_trie`, `route` and `if_inet6`.
pub fn parse(dev: &str, fib_trie: &str, route: &str, if_inet6: &str) -> Vec<Iface> {
    let mut out: Vec<Iface> = dev
        .lines()
        .skip(2)
        .filter_map(|l| clean_name(l.split(':').next()?))
        .filter(|n| n != "lo")
        .take(MAX_SHOWN)
        .map(|name| Iface {
            name,
            ..Default::default()
        })
        .collect();
    // Local IPv4 addresses: a "|-- A" line followed by "/32 host LOCAL".
    let mut last: Option<Ipv4Addr> = None;
    let mut locals: Vec<Ipv4Addr> = Vec::new();
    for l in fib_trie.lines() {
        let t = l.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last {
                if !a.is_loopback() && locals.len() < MAX_SHOWN * MAX_SHOWN && !locals.contains(&a)
                {
                    locals.push(a);
                }
            }
        }
    }
    // Each on the interface whose connected route holds it.
    let routes: Vec<(String, u32, u32)> = route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            Some((clean_name(f.first()?)?, dest, mask))
        })
        .filter(|(_, _, mask)| *mask != 0)
        .collect();
    for a in locals {
        let n = u32::from_le_bytes(a.octets());
        if let Some((name, _, _)) = routes.iter().find(|(_, d, m)| n & m == *d) {
            if let Some(i) = out.iter_mut().find(|i| &i.name == name) {
                if i.v4.len() < MAX_SHOWN {
                    i.v4.push(a);
                }
            }
        }
    }
    for l in if_inet6.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(hex), Some(scope), Some(name)) = (f.first(), f.get(3), f.get(5)) else {
            continue;
        };
        if *scope != "00" || hex.len() != 32 {
            continue;
        }
        let Ok(v) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        if let Some(i) = out.iter_mut().find(|i| i.name == *name) {
            if i.v6.len() < MAX_SHOWN {
                i.v6.push(Ipv6Addr::from(v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slirp_namespace() {
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 1 2\n";
        let fib = "Main:\n  +-- 0.0.0.0/1 2 0 2\n        +-- 10.0.2.0/24 2 0 1\n           |-- 10.0.2.0\n              /24 link UNICAST\n           |-- 10.0.2.100\n              /32 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n";
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000100 02 40 00 00     eth0\nfe80000000000000d00457fffef0fbc1 02 40 20 c0     eth0\n";
        let i = parse(dev, fib, route, v6);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].name, "eth0");
        assert_eq!(i[0].v4, vec!["10.0.2.100".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(i[0].v6, vec!["fd00::100".parse::<Ipv6Addr>().unwrap()]);
        assert!(parse("", "", "", "").is_empty());
    }

    /// Container root names interfaces as it likes (the kernel refuses only whitespace, `/`
    /// and `:`): an escape sequence never reaches the user's terminal through list/info.
    #[test]
    fn a_hostile_interface_name_is_not_shown() {
        let dev = "h1\nh2\n    lo: 0\n\u{1b}[2J\u{1b}]0;pwned\u{7}: 1\n  eth0: 1\n";
        let v6 = "fd000000000000000000000000000100 02 40 00 00 \u{1b}[2J\n";
        let i = parse(dev, "", "", v6);
        assert_eq!(i.len(), 1, "{i:?}");
        assert_eq!(i[0].name, "eth0");
        assert!(i[0].v6.is_empty());
    }

    /// Container root may make thousands of interfaces and addresses: what is shown is bounded
    /// (and parsing them stays linear in what is shown).
    #[test]
    fn a_flood_of_interfaces_and_addresses_is_bounded() {
        let mut dev = String::from("h1\nh2\n");
        let mut v6 = String::new();
        for n in 0..5000 {
            dev.push_str(&format!("  d{n}: 1\n"));
            v6.push_str(&format!("fd00{n:028x} 02 40 00 00 d0\n"));
        }
        let i = parse(&dev, "", "", &v6);
        assert_eq!(i.len(), MAX_SHOWN);
        assert_eq!(i[0].v6.len(), MAX_SHOWN);
    }
}
