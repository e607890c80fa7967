//! pasta (passt): its command line. The container's `eth0` gets a copy of the host's address
//! and routes (pasta splices connections at layer 4, no NAT); the gateway is the host's
//! loopback only with `network.host_loopback=true` (`--no-map-gw` otherwise); DNS queries to
//! 169.254.1.1 go to the host's resolver (`--dns-forward`, as Podman does). Forwards are fixed
//! at start: this pasta has no API to change them while it runs.

use std::path::Path;

use super::proxy::{Proto, Proxy};

/// The DNS forwarder's address in the container.
pub const DNS: &str = "169.254.1.1";
/// The pid file pasta writes once the namespace is configured.
pub const PID_FILE: &str = "pasta.pid";

/// The arguments with forwards `proxies`; pasta writes `pid_file` when ready. The namespaces
/// are descriptors 4 (user) and 5 (net).
pub fn args(host_loopback: bool, proxies: &[Proxy], pid_file: &Path) -> Vec<String> {
    let mut a = vec![
        "--config-net".to_string(),
        "--foreground".into(),
        "--quiet".into(),
        "--stderr".into(),
        format!("--pid={}", pid_file.display()),
        format!("--ns-ifname={}", super::IFNAME),
        format!("--dns-forward={DNS}"),
        // Nothing is forwarded but the proxy devices: pasta's default `auto` would publish on
        // the host every port the container binds (-t/-u), and hand the container's loopback
        // connections to the host's loopback (-T/-U).
        "--tcp-ns=none".into(),
        "--udp-ns=none".into(),
    ];
    for proto in [Proto::Tcp, Proto::Udp] {
        let flag = match proto {
            Proto::Tcp => "--tcp-ports",
            Proto::Udp => "--udp-ports",
        };
        let specs: Vec<String> = proxies
            .iter()
            .filter(|p| p.proto == proto)
            .map(spec)
            .collect();
        if specs.is_empty() {
            a.push(format!("{flag}=none"));
        } else {
            for s in specs {
                a.push(format!("{flag}={s}"));
            }
        }
    }
    if !host_loopback {
        a.push("--no-map-gw".into());
    }
    a.push("--userns=/proc/self/fd/4".into());
    a.push("--netns=/proc/self/fd/5".into());
    // The monitor stops it; there is no namespace file to watch.
    a.push("--no-netns-quit".into());
    a
}

/// `-t 127.0.0.1/8080:80`: pasta binds the host address and port and connects to the port in
/// the container (its loopback, for a connection from the host's).
fn spec(p: &Proxy) -> String {
    if p.listen.ip().is_unspecified() {
        format!("{}:{}", p.listen.port(), p.connect.port())
    } else {
        format!("{}/{}:{}", p.listen.ip(), p.listen.port(), p.connect.port())
    }
}

/// Check that `p` is one pasta can forward: to a port of the container's own; UDP to the same
/// port number (Debian 12's pasta, passt 2023-03-09, loses the replies of a UDP forward that
/// changes the port: measured, the datagram arrives, the answer never comes back).
pub fn check(p: &Proxy) -> crate::error::Result<()> {
    if p.proto == Proto::Udp && p.listen.port() != p.connect.port() {
        return Err(crate::error::Error::Usage(format!(
            "device {}: UDP forwards on pasta keep the port number (listen port {} but \
             connect port {}): this pasta loses the replies otherwise",
            p.name,
            p.listen.port(),
            p.connect.port()
        )));
    }
    if p.connects_locally() {
        Ok(())
    } else {
        Err(crate::error::Error::Usage(format!(
            "device {}: with pasta a forward reaches a port of the container's own \
             (connect={}:127.0.0.1:PORT)",
            p.name,
            p.proto.name()
        )))
    }
}
