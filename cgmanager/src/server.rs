//! Transports: the daemon's own peer-to-peer socket (one zbus connection per client, the
//! client's identity taken from the socket when it connects) and, optionally, a bus.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cgmanager_dbus::{BUS_NAME, OBJECT_PATH};
use dashmap::DashMap;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use zbus::connection::{AuthMechanism, Builder};
use zbus::{Connection, Guid};

use crate::caller::Peer;
use crate::manager::Manager;
use crate::service::{Ctx, DelegationV1, ManagerV0, Who};

/// A client that has not finished the D-Bus handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on simultaneous peer-to-peer clients.
pub const MAX_CLIENTS: usize = 4096;

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

    /// Accept clients forever; each gets its own connection task.
    pub async fn serve(&self, mgr: Arc<Manager>, max_clients: usize) {
        let slots = Arc::new(Semaphore::new(max_clients));
        loop {
            let stream = match self.listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!("{max_clients} clients connected; refusing another");
                continue;
            };
            let mgr = mgr.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_client(stream, mgr).await {
                    tracing::debug!("client: {e}");
                }
                drop(slot);
            });
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_client(stream: tokio::net::UnixStream, mgr: Arc<Manager>) -> zbus::Result<()> {
    let std = stream.into_std()?;
    let peer = Peer::from_socket(&std)?;
    tracing::debug!(pid = peer.pid, uid = peer.uid, "client connected");
    let ctx = Ctx {
        mgr,
        who: Who::Peer(Arc::new(peer)),
    };
    // ANONYMOUS like CGManager: identity comes from the socket, not from what the client
    // claims, so clients in user namespaces (whose claimed uid would not match) work.
    let build = Builder::unix_stream(std)
        .server(Guid::generate())
        .p2p()
        .auth_mechanism(AuthMechanism::Anonymous)
        .serve_at(OBJECT_PATH, ManagerV0(ctx.clone()))
        .serve_at(OBJECT_PATH, DelegationV1(ctx))
        .build();
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, build)
        .await
        .map_err(|_| zbus::Error::Handshake("handshake timed out".into()))??;
    conn.closed().await;
    Ok(())
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
    let b = match addr {
        Some(a) => Builder::address(a),
        None => Builder::system(),
    };
    let conn = b
        .name(BUS_NAME)
        .serve_at(OBJECT_PATH, ManagerV0(ctx.clone()))
        .serve_at(OBJECT_PATH, DelegationV1(ctx))
        .build()
        .await?;
    Ok((conn, cache))
}
