//! The container's network: a user-mode network stack attached to its network namespace, so an
//! ordinary user's container gets an address, a default route, DNS and (where the host has it)
//! IPv6 without any setuid helper.
//!
//! * [`Plan`]: what a start does, from `network.mode` (`none|pasta|slirp4netns`, default:
//!   slirp4netns — Debian 12's pasta stalls uploads through its tap path, see the README) and
//!   `network.host_loopback`;
//! * [`helper`]: the stack's process (slirp4netns or pasta), spawned by the monitor outside the
//!   container, killed with it, restarted when it dies;
//! * [`slirp`], [`pasta`]: each backend's command line (and slirp4netns's API socket);
//! * [`proxy`]: proxy devices (`lxr config device add c1 web proxy listen=… connect=…`);
//! * [`addrs`]: the container's interfaces and addresses, read from `/proc/<init>/net`.

pub mod addrs;
pub mod helper;
pub mod pasta;
pub mod proxy;
pub mod slirp;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The key that chooses the stack.
pub const MODE_KEY: &str = "network.mode";
/// The key that lets the container reach the host's loopback through its gateway.
pub const LOOPBACK_KEY: &str = "network.host_loopback";
/// The interface the container gets.
pub const IFNAME: &str = "eth0";

/// A user-mode network stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// slirp4netns (libslirp): the default.
    Slirp4netns,
    /// pasta (passt): L4 splicing, no NAT.
    Pasta,
}

impl Backend {
    /// Its name, as `network.mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Slirp4netns => "slirp4netns",
            Backend::Pasta => "pasta",
        }
    }

    /// Its program, found on `PATH` (or in `/usr/bin`).
    pub fn program(self) -> Option<PathBuf> {
        find_program(self.name())
    }
}

/// What a start does for the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Only `lo`; the reason when it was not asked for.
    None(Option<String>),
    /// A stack.
    Stack {
        /// Which.
        backend: Backend,
        /// Its program.
        program: PathBuf,
        /// `network.host_loopback=true`: the gateway reaches the host's 127.0.0.1.
        host_loopback: bool,
        /// The host has an IPv6 default route.
        ipv6: bool,
    },
}

fn bool_key(keys: &BTreeMap<String, String>, key: &str) -> Result<bool> {
    match keys.get(key).map(String::as_str) {
        None | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(v) => Err(Error::Usage(format!("{key}: {v:?} is not true or false"))),
    }
}

/// Check a `network.*` key before it is saved.
pub fn check_key(key: &str, value: &str) -> Result<()> {
    match key {
        MODE_KEY => match value {
            "none" | "pasta" | "slirp4netns" | "auto" => Ok(()),
            _ => Err(Error::Usage(format!(
                "{MODE_KEY}: {value:?} is not none, pasta, slirp4netns or auto"
            ))),
        },
        LOOPBACK_KEY => bool_key(
            &[(key.to_string(), value.to_string())].into_iter().collect(),
            key,
        )
        .map(|_| ()),
        _ => Err(Error::Usage(format!(
            "{key}: unknown network key (network.mode, network.host_loopback)"
        ))),
    }
}

/// The plan for a start with `keys`. `auto` (the default) is slirp4netns, else pasta, else no
/// network (with the reason, which the monitor logs and `info` shows).
pub fn plan(keys: &BTreeMap<String, String>) -> Result<Plan> {
    let host_loopback = bool_key(keys, LOOPBACK_KEY)?;
    let ipv6 = host_has_ipv6();
    let stack = |backend: Backend| {
        backend.program().map(|program| Plan::Stack {
            backend,
            program,
            host_loopback,
            ipv6,
        })
    };
    let missing = |b: Backend| {
        Error::Host(format!(
            "{MODE_KEY}={}: {} is not installed (apt install {})",
            b.name(),
            b.name(),
            if b == Backend::Pasta {
                "passt"
            } else {
                "slirp4netns"
            }
        ))
    };
    match keys.get(MODE_KEY).map(String::as_str).unwrap_or("auto") {
        "none" => Ok(Plan::None(None)),
        "slirp4netns" => stack(Backend::Slirp4netns).ok_or_else(|| missing(Backend::Slirp4netns)),
        "pasta" => stack(Backend::Pasta).ok_or_else(|| missing(Backend::Pasta)),
        "auto" => Ok(stack(Backend::Slirp4netns)
            .or_else(|| stack(Backend::Pasta))
            .unwrap_or_else(|| {
                Plan::None(Some(
                    "neither slirp4netns nor pasta is installed: only lo".into(),
                ))
            })),
        other => Err(Error::Usage(format!("{MODE_KEY}: {other:?} is unknown"))),
    }
}

impl Plan {
    /// The container's `/etc/resolv.conf`, if it gets a network.
    pub fn resolv_conf(&self) -> Option<String> {
        match self {
            Plan::None(_) => None,
            Plan::Stack { backend, ipv6, .. } => {
                let mut s = String::from(RESOLV_MARK);
                match backend {
                    Backend::Slirp4netns => {
                        s.push_str(&format!("nameserver {}\n", slirp::DNS));
                        if *ipv6 {
                            s.push_str(&format!("nameserver {}\n", slirp::DNS6));
                        }
                    }
                    Backend::Pasta => s.push_str(&format!("nameserver {}\n", pasta::DNS)),
                }
                Some(s)
            }
        }
    }

    /// The backend, if any.
    pub fn backend(&self) -> Option<Backend> {
        match self {
            Plan::None(_) => None,
            Plan::Stack { backend, .. } => Some(*backend),
        }
    }
}

/// The first line of a `resolv.conf` lxr wrote (and may write again at the next start).
pub const RESOLV_MARK: &str =
    "# written by lxr at each start (network.mode); remove this line to keep your own\n";

/// Whether the host has an IPv6 default route (`/proc/net/ipv6_route`: `::/0` through a
/// device other than `lo`).
pub fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/ipv6_route")
        .map(|t| {
            t.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 10 && f[0] == "0".repeat(32) && f[1] == "00" && f[9] != "lo"
            })
        })
        .unwrap_or(false)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What `state.json` records of the network of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    /// The stack.
    pub backend: Backend,
    /// Its pid (also its process group), on the host.
    pub helper_pid: u32,
    /// How often the monitor has restarted it.
    #[serde(default)]
    pub restarts: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key(MODE_KEY, "pasta").is_ok());
        assert!(check_key(MODE_KEY, "vde").is_err());
        assert!(check_key(LOOPBACK_KEY, "true").is_ok());
        assert!(check_key(LOOPBACK_KEY, "maybe").is_err());
        assert!(check_key("network.bogus", "1").is_err());
        let keys: BTreeMap<String, String> = [(MODE_KEY.to_string(), "none".to_string())]
            .into_iter()
            .collect();
        assert_eq!(plan(&keys).unwrap(), Plan::None(None));
        assert_eq!(plan(&keys).unwrap().resolv_conf(), None);
    }
}
