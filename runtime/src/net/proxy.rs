//! Proxy devices, in LXD's shape: `lxr config device add c1 web proxy
//! listen=tcp:127.0.0.1:8080 connect=tcp:127.0.0.1:80` forwards the host's `listen` address to
//! the container's `connect` port. Stored in `config.yaml` as `devices.<name>.type`,
//! `devices.<name>.listen`, `devices.<name>.connect`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::error::{Error, Result};

/// The prefix of every device key.
pub const PREFIX: &str = "devices.";

/// A transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The device's name.
    pub name: String,
    /// TCP or UDP.
    pub proto: Proto,
    /// Where the host listens.
    pub listen: SocketAddr,
    /// Where it connects, in the container.
    pub connect: SocketAddr,
}

/// `tcp:127.0.0.1:8080`, `udp:[::1]:53`.
pub fn parse_addr(what: &str, s: &str) -> Result<(Proto, SocketAddr)> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "{what}={s:?}: {why} (expected tcp:ADDRESS:PORT or udp:ADDRESS:PORT, e.g. \
             tcp:127.0.0.1:8080)"
        ))
    };
    let (proto, rest) = s.split_once(':').ok_or_else(|| bad("no protocol"))?;
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return Err(bad("the protocol is not tcp or udp")),
    };
    let addr: SocketAddr = rest.parse().map_err(|_| bad("not an address and port"))?;
    if addr.port() == 0 {
        return Err(bad("port 0"));
    }
    Ok((proto, addr))
}

/// A device name: 1–64 of `[A-Za-z0-9_-]`.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::Usage(format!(
            "{name:?}: a device name is 1-64 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

/// A proxy device from `add`'s `key=value` arguments (`listen=`, `connect=`).
pub fn from_args(name: &str, kind: &str, args: &[String]) -> Result<Proxy> {
    check_name(name)?;
    if kind != "proxy" {
        return Err(Error::Usage(format!(
            "device type {kind:?}: only proxy devices are supported"
        )));
    }
    let mut kv = BTreeMap::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("{a:?}: expected key=value")))?;
        if k != "listen" && k != "connect" {
            return Err(Error::Usage(format!(
                "{k:?}: a proxy device takes listen= and connect="
            )));
        }
        if kv.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::Usage(format!("{k}= given twice")));
        }
    }
    let get = |k: &str| {
        kv.get(k)
            .cloned()
            .ok_or_else(|| Error::Usage(format!("a proxy device needs {k}=")))
    };
    from_values(name, &get("listen")?, &get("connect")?)
}

fn from_values(name: &str, listen: &str, connect: &str) -> Result<Proxy> {
    let (lp, l) = parse_addr("listen", listen)?;
    let (cp, c) = parse_addr("connect", connect)?;
    if lp != cp {
        return Err(Error::Usage(format!(
            "listen is {} but connect is {}: a proxy device forwards one protocol",
            lp.name(),
            cp.name()
        )));
    }
    Ok(Proxy {
        name: name.to_string(),
        proto: lp,
        listen: l,
        connect: c,
    })
}

impl Proxy {
    /// Its `config.yaml` keys and values.
    pub fn keys(&self) -> Vec<(String, String)> {
        let k = |s: &str| format!("{PREFIX}{}.{s}", self.name);
        vec![
            (k("type"), "proxy".into()),
            (
                k("listen"),
                format!("{}:{}", self.proto.name(), self.listen),
            ),
            (
                k("connect"),
                format!("{}:{}", self.proto.name(), self.connect),
            ),
        ]
    }

    /// `web: tcp 127.0.0.1:8080 -> 127.0.0.1:80`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} {} -> {}",
            self.name,
            self.proto.name(),
            self.listen,
            self.connect
        )
    }

    /// Whether the container's side is its own loopback (or any address).
    pub fn connects_locally(&self) -> bool {
        let ip = self.connect.ip();
        ip.is_loopback() || ip.is_unspecified()
    }

    /// Fails with a clear message when the host address is taken (or cannot be bound).
    pub fn check_free(&self) -> Result<()> {
        let r = match self.proto {
            Proto::Tcp => std::net::TcpListener::bind(self.listen).map(drop),
            Proto::Udp => std::net::UdpSocket::bind(self.listen).map(drop),
        };
        r.map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "is already in use on the host".to_string()
            } else {
                format!("cannot be listened on: {e}")
            };
            Error::Usage(format!(
                "device {}: {} {} {why}",
                self.name,
                self.proto.name(),
                self.listen
            ))
        })
    }
}

/// Every proxy device in `keys` (devices whose keys are incomplete or wrong are skipped).
pub fn all(keys: &BTreeMap<String, String>) -> Vec<Proxy> {
    let mut names: Vec<&str> = keys
        .keys()
        .filter_map(|k| k.strip_prefix(PREFIX)?.strip_suffix(".type"))
        .collect();
    names.dedup();
    names
        .into_iter()
        .filter(|n| keys.get(&format!("{PREFIX}{n}.type")).map(String::as_str) == Some("proxy"))
        .filter_map(|n| {
            let l = keys.get(&format!("{PREFIX}{n}.listen"))?;
            let c = keys.get(&format!("{PREFIX}{n}.connect"))?;
            from_values(n, l, c).ok()
        })
        .collect()
}

/// Whether `keys` has a device called `name`.
pub fn exists(keys: &BTreeMap<String, String>, name: &str) -> bool {
    keys.contains_key(&format!("{PREFIX}{name}.type"))
}

/// Remove device `name`'s keys; false if it had none.
pub fn remove(keys: &mut BTreeMap<String, String>, name: &str) -> bool {
    let before = keys.len();
    let prefix = format!("{PREFIX}{name}.");
    keys.retain(|k, _| !k.starts_with(&prefix));
    keys.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parse_and_keys() {
        let p = from_args(
            "web",
            "proxy",
            &args(&["listen=tcp:127.0.0.1:8080", "connect=tcp:127.0.0.1:80"]),
        )
        .unwrap();
        assert_eq!(p.proto, Proto::Tcp);
        assert_eq!(p.listen.port(), 8080);
        let keys: BTreeMap<String, String> = p.keys().into_iter().collect();
        assert_eq!(all(&keys), vec![p.clone()]);
        let mut k2 = keys.clone();
        assert!(remove(&mut k2, "web"));
        assert!(k2.is_empty());
        let u = from_args(
            "dns",
            "proxy",
            &args(&["listen=udp:[::1]:5353", "connect=udp:127.0.0.1:53"]),
        )
        .unwrap();
        assert_eq!(u.proto, Proto::Udp);
    }

    #[test]
    fn bogus_specs() {
        for a in [
            vec!["listen=tcp:127.0.0.1:8080"],
            vec!["listen=tcp:127.0.0.1:8080", "connect=udp:127.0.0.1:80"],
            vec!["listen=sctp:127.0.0.1:1", "connect=sctp:127.0.0.1:1"],
            vec!["listen=tcp:127.0.0.1", "connect=tcp:127.0.0.1:80"],
            vec!["listen=tcp:127.0.0.1:0", "connect=tcp:127.0.0.1:80"],
            vec!["listen=tcp:localhost:80", "connect=tcp:127.0.0.1:80"],
            vec!["listen=tcp:127.0.0.1:99999", "connect=tcp:127.0.0.1:80"],
            vec![
                "bind=host",
                "listen=tcp:127.0.0.1:1",
                "connect=tcp:127.0.0.1:80",
            ],
            vec!["listen"],
        ] {
            assert!(from_args("x", "proxy", &args(&a)).is_err(), "{a:?}");
        }
        assert!(from_args("../x", "proxy", &[]).is_err());
        assert!(from_args("x", "nic", &[]).is_err());
    }
}
