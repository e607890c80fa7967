//! slirp4netns: its command line, and its API socket (`--api-socket`), through which port
//! forwards are added and removed while it runs.
//!
//! The container's `eth0` is 10.0.2.100/24 (MTU 65520), its gateway 10.0.2.2 (the host's
//! loopback only with `network.host_loopback=true`: `--disable-host-loopback` otherwise), its
//! DNS 10.0.2.3 (forwarded to the host's resolver); with IPv6, fd00::100 by SLAAC, DNS fd00::3.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proxy::Proxy;
use crate::error::{Context, Error, Result};

/// The container's address.
pub const ADDR: &str = "10.0.2.100";
/// The gateway (the host's loopback when allowed).
pub const GATEWAY: &str = "10.0.2.2";
/// The DNS forwarder.
pub const DNS: &str = "10.0.2.3";
/// The IPv6 DNS forwarder.
pub const DNS6: &str = "fd00::3";
/// The API socket's name in the state directory.
pub const API_SOCKET: &str = "slirp4netns.sock";

/// The arguments; the ready pipe is descriptor 3, the namespaces 4 (user) and 5 (net).
pub fn args(host_loopback: bool, ipv6: bool, api: &Path) -> Vec<String> {
    let mut a = vec![
        "--configure".to_string(),
        "--mtu=65520".into(),
        "--ready-fd=3".into(),
        format!("--api-socket={}", api.display()),
        // A syscall filter: libslirp parses what the container's root sends. (Its
        // `--enable-sandbox` needs the user mapped in the container's user namespace, as
        // Podman maps it; lxr maps only subordinate ids, and its setegid(0) fails: see
        // SECURITY.md.)
        "--enable-seccomp".into(),
    ];
    if !host_loopback {
        a.push("--disable-host-loopback".into());
    }
    if ipv6 {
        a.push("--enable-ipv6".into());
    }
    a.push("--userns-path=/proc/self/fd/4".into());
    a.push("--netns-type=path".into());
    a.push("/proc/self/fd/5".into());
    a.push(super::IFNAME.into());
    a
}

/// One request on the API socket; the `return` value, or the error slirp4netns gave.
fn call(api: &Path, req: &serde_json::Value) -> Result<serde_json::Value> {
    let mut s =
        UnixStream::connect(api).ctx(|| format!("connect to slirp4netns at {}", api.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    s.write_all(req.to_string().as_bytes())
        .ctx(|| "write to slirp4netns".into())?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut out)
        .ctx(|| "read slirp4netns's answer".into())?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| Error::Setup(format!("slirp4netns answered something else: {e}")))?;
    if let Some(err) = v.get("error") {
        let desc = err
            .get("desc")
            .and_then(|d| d.as_str())
            .unwrap_or("an error");
        return Err(Error::Usage(format!(
            "slirp4netns: {}",
            crate::text::line(desc)
        )));
    }
    // `add_hostfwd` answers {"return": …}, `list_hostfwd` {"entries": […]} bare.
    Ok(v.get("return").cloned().unwrap_or(v))
}

/// The container address a forward reaches: slirp4netns delivers to the guest's own address.
fn guest_addr(p: &Proxy) -> Result<String> {
    let ip = p.connect.ip();
    if p.connects_locally() && ip.is_ipv4() || ip.to_string() == ADDR {
        Ok(ADDR.to_string())
    } else {
        Err(Error::Usage(format!(
            "device {}: with slirp4netns a forward reaches the container at {ADDR} (connect=\
             {}:127.0.0.1:PORT or {}:{ADDR}:PORT; the server must listen on {ADDR} or 0.0.0.0)",
            p.name,
            p.proto.name(),
            p.proto.name()
        )))
    }
}

/// Check that `p` is one slirp4netns can forward (before it is saved). UDP needs the host's
/// loopback open: the container's replies go to 10.0.2.2, which `--disable-host-loopback`
/// makes libslirp drop (TCP's go through the forward's own socket).
pub fn check(p: &Proxy, host_loopback: bool) -> Result<()> {
    guest_addr(p)?;
    if p.proto == super::proxy::Proto::Udp && !host_loopback {
        return Err(Error::Usage(format!(
            "device {}: UDP forwards on slirp4netns need network.host_loopback=true (without \
             it libslirp drops the container's replies to 10.0.2.2), or network.mode=pasta",
            p.name
        )));
    }
    Ok(())
}

/// Add the forward `p`.
pub fn add(api: &Path, p: &Proxy) -> Result<()> {
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": p.proto.name(),
            "host_addr": p.listen.ip().to_string(),
            "host_port": p.listen.port(),
            "guest_addr": guest_addr(p)?,
            "guest_port": p.connect.port(),
        }
    });
    call(api, &req)
        .map(drop)
        .map_err(|e| Error::Usage(format!("device {}: {e}", p.name)))
}

/// Remove the forward `p` (found by its host side); absent is not an error.
pub fn remove(api: &Path, p: &Proxy) -> Result<()> {
    let list = call(api, &serde_json::json!({"execute": "list_hostfwd"}))?;
    let entries = list
        .get("entries")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    for e in entries {
        let same = e.get("proto").and_then(|v| v.as_str()) == Some(p.proto.name())
            && e.get("host_port").and_then(|v| v.as_u64()) == Some(u64::from(p.listen.port()))
            && e.get("host_addr").and_then(|v| v.as_str()) == Some(&p.listen.ip().to_string());
        if let (true, Some(id)) = (same, e.get("id").and_then(|v| v.as_u64())) {
            call(
                api,
                &serde_json::json!({"execute": "remove_hostfwd", "arguments": {"id": id}}),
            )?;
        }
    }
    Ok(())
}
