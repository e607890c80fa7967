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
        // Bound and made 0666 under a temporary name, then renamed into place: the path
        // appears only once it listens and lets everyone connect. A client at the daemon's
        // start (a test, lxr at boot) got ECONNREFUSED between bind and listen, and a user
        // EACCES before the chmod.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(
            ".{}.{}",
            name.as_deref().unwrap_or("socket"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The path appears only once it listens, 0666: no temporary name is left beside it, and
    /// the socket goes with the daemon.
    #[tokio::test]
    async fn the_socket_appears_listening_and_open_to_all_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let s = Socket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sock"]);
        // A second daemon is refused while the first answers.
        assert!(Socket::bind(&path).is_err());
        drop(s);
        assert!(!path.exists());
    }
}
