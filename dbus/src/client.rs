//! Opening a connection to the daemon: peer-to-peer on its socket, or through a bus.

use std::os::unix::net::UnixStream;

use zbus::connection::AuthMechanism;
use zbus::connection::Builder;
use zbus::Connection;

/// Where the daemon is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The daemon's own socket (path of a `unix:path=` address).
    Peer(String),
    /// A D-Bus bus at this address (`unix:path=…`), or the system bus for `None`.
    Bus(Option<String>),
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Peer(p) => write!(f, "socket {p}"),
            Transport::Bus(Some(a)) => write!(f, "bus {a}"),
            Transport::Bus(None) => write!(f, "the system bus"),
        }
    }
}

/// Connect. Peer-to-peer uses the ANONYMOUS mechanism like CGManager did: the daemon identifies
/// callers by the socket's peer credentials, not by what they claim, so clients inside a user
/// namespace work too.
pub async fn connect(t: &Transport) -> zbus::Result<Connection> {
    match t {
        Transport::Peer(path) => {
            let path = path.strip_prefix("unix:path=").unwrap_or(path);
            let stream = UnixStream::connect(path).map_err(|e| {
                zbus::Error::InputOutput(
                    std::io::Error::new(e.kind(), format!("connect {path}: {e}")).into(),
                )
            })?;
            Builder::unix_stream(stream)
                .p2p()
                .auth_mechanism(AuthMechanism::Anonymous)
                .build()
                .await
        }
        Transport::Bus(Some(addr)) => Builder::address(addr.as_str()).build().await,
        Transport::Bus(None) => Builder::system().build().await,
    }
}
