//! Transports: the daemon's own peer-to-peer socket (bound here, served by [`crate::p2p`]) and,
//! optionally, a bus.

use cgmanager_dbus::{BUS_NAME, OBJECT_PATH};
use dashmap::DashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use zbus::connection::Builder;
use zbus::Connection;

use crate::caller::Peer;
use crate::manager::Manager;
use crate::service::served::{Dispatch, Senders, Served};
use crate::service::{Ctx, DelegationV1, ManagerV0, Who};

/// The bound socket; removed again when dropped.
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
}

impl Socket {
    /// Bind `path` (mode 0666 in a 0755 directory, created if missing). Refuses if another
    /// daemon answers there; a stale socket file is replaced.
    pub fn bind(path: &Path) -> std::io::Result<Socket> {
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another cgmanager answers on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(Socket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Accept clients forever, within `limits` ([`crate::p2p`]).
    pub async fn serve(&self, mgr: Arc<Manager>, limits: crate::p2p::Limits) {
        crate::p2p::serve(&self.listener, mgr, limits).await
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The path of a `unix:path=…[,…]` address.
fn unix_path(address: &str) -> Option<String> {
    let rest = address.strip_prefix("unix:")?;
    rest.split(',')
        .find_map(|kv| kv.strip_prefix("path="))
        .map(str::to_string)
}

/// Serve on a bus (`addr`, or the system bus) under [`BUS_NAME`]. Returns the connection
/// (keep it alive) and the cache of callers, which the caller prunes.
pub async fn serve_bus(
    addr: Option<&str>,
    mgr: Arc<Manager>,
) -> zbus::Result<(Connection, Arc<DashMap<String, Arc<Peer>>>)> {
    let cache = Arc::new(DashMap::new());
    let ctx = Ctx {
        mgr,
        who: Who::Bus(cache.clone()),
    };
    // A unix socket is connected here, so that the connection runs over the daemon's own
    // socket type, which logs refusals; other addresses go through zbus as they are.
    let system = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
    let address = addr.unwrap_or(&system);
    let b = match unix_path(address) {
        Some(p) => {
            let s = tokio::net::UnixStream::connect(&p).await?;
            Builder::socket(crate::p2p::stream::BusSocket::new(s))
        }
        None => Builder::address(address),
    };
    // Both interfaces share one queue per sender: a sender's calls run in the order sent.
    let dispatch = Dispatch::PerSender(Senders::new());
    let conn = b
        .name(BUS_NAME)
        .serve_at(
            OBJECT_PATH,
            Served::new(ManagerV0(ctx.clone()), &["api_version"], dispatch.clone()),
        )
        .serve_at(OBJECT_PATH, Served::new(DelegationV1(ctx), &[], dispatch))
        .build()
        .await?;
    Ok((conn, cache))
}
