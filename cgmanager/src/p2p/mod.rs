//! The daemon's own peer-to-peer socket: one zbus connection per client, with what any user
//! reaching a root daemon must not be able to do to it or to other users bounded:
//!
//! * **memory**: a message over [`stream::MAX_MESSAGE`] ends its connection before anything is
//!   allocated, and no message is allocated before it has fully arrived ([`stream`]);
//! * **slots**: at most `max_clients` connections in all, and at most `per_user` for any one
//!   user with all its containers ([`account`]); a client over its cap is told so and let go;
//! * **time**: the handshake must finish within [`HANDSHAKE_TIMEOUT`], and a connection that
//!   has not sent a whole call within `idle` is closed;
//! * **authentication**: EXTERNAL and ANONYMOUS both, identity always from the socket
//!   ([`sasl`]); clients that assume a bus get a `Hello` ([`bus_shim`]).

pub mod account;
pub mod bus_shim;
pub mod sasl;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use cgmanager_dbus::OBJECT_PATH;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use zbus::connection::Builder;
use zbus::Guid;

use crate::caller::{Peer, Pinned};
use crate::manager::Manager;
use crate::service::served::{Dispatch, Served};
use crate::service::{Ctx, DelegationV1, ManagerV0, Who};

/// A client that has not finished the D-Bus handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on simultaneous peer-to-peer clients.
pub const MAX_CLIENTS: usize = 4096;

/// Default bound on one user's simultaneous clients (with all its containers).
pub const MAX_CLIENTS_PER_USER: usize = 64;

/// Default time a connection may stay open without a whole call.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages a connection queues before zbus stops reading from it: zbus's default is 64, which
/// lets one client park 64 messages of up to 80 KiB in the daemon; a client here waits for each
/// answer, so a few are plenty.
const QUEUED: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(8) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

/// The bounds of the peer-to-peer socket.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections in all.
    pub max_clients: usize,
    /// Connections per account.
    pub per_user: usize,
    /// How long a connection may go without a whole call at first.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_clients: MAX_CLIENTS,
            per_user: MAX_CLIENTS_PER_USER,
            idle: IDLE_TIMEOUT,
        }
    }
}

/// Accept clients forever; each gets its own task.
pub async fn serve(listener: &UnixListener, mgr: Arc<Manager>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_clients));
    let accounts = account::Slots::new(limits.per_user);
    loop {
        let accepted = listener.accept().await;
        // After the peer connected: what bounds its start time where the kernel gives no
        // pidfd (`caller::pin_by_pid`).
        let now = cgroups::process::boot_ticks().unwrap_or(0);
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("{} clients connected; refusing another", limits.max_clients);
            continue;
        };
        let (mgr, accounts) = (mgr.clone(), accounts.clone());
        tokio::spawn(async move {
            if let Err(e) = client(stream, now, mgr, accounts, limits).await {
                tracing::debug!("client: {e}");
            }
            drop(slot);
        });
    }
}

async fn client(
    stream: UnixStream,
    accepted: u64,
    mgr: Arc<Manager>,
    accounts: Arc<account::Slots>,
    limits: Limits,
) -> Result<(), String> {
    let peer = Peer::from_socket(
        &stream,
        &mgr.host.proc_root,
        mgr.config.peer_pidfd,
        accepted,
    )
    .map_err(|e| e.to_string())?;
    if peer.pinned == Pinned::ByPid {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::info!(
                "no SO_PEERPIDFD ({}): peers are pinned by the pid SO_PEERCRED recorded, with \
                 pidfd_open and a start-time check",
                if mgr.config.peer_pidfd {
                    "Linux < 6.5"
                } else {
                    "switched off"
                }
            );
        });
    }
    let who = account::of(peer.pid, peer.uid, mgr.host.userns);
    let Some(_place) = accounts.take(who) else {
        let why = format!(
            "cgmanager: {who} has {} connections open, the most one user may",
            limits.per_user
        );
        tracing::debug!(pid = peer.pid, "{why}");
        sasl::refuse(&stream, &why).await;
        return Ok(());
    };
    tracing::debug!(pid = peer.pid, uid = peer.uid, account = %who, pinned = ?peer.pinned, "client connected");
    let ctx = Ctx {
        mgr,
        who: Who::Peer(Arc::new(peer)),
    };
    let guid = Guid::generate();
    let setup = async {
        let agreed = sasl::handshake(&stream, guid.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let (sock, activity) = stream::Guarded::new(stream, agreed.unix_fds);
        let conn = Builder::authenticated_socket(sock, guid)
            .p2p()
            .max_queued(QUEUED)
            .serve_at(
                OBJECT_PATH,
                Served::new(ManagerV0(ctx.clone()), &["api_version"], Dispatch::InOrder),
            )
            .serve_at(
                OBJECT_PATH,
                Served::new(DelegationV1(ctx), &[], Dispatch::InOrder),
            )
            .serve_at("/org/freedesktop/DBus", bus_shim::BusShim::default())
            .build()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((conn, activity, agreed.mechanism))
    };
    let (conn, activity, mechanism) = tokio::time::timeout(HANDSHAKE_TIMEOUT, setup)
        .await
        .map_err(|_| "handshake timed out".to_string())??;
    tracing::debug!(mechanism, "client authenticated");
    tokio::select! {
        _ = conn.closed() => return Ok(()),
        _ = tokio::time::sleep(limits.idle) => {}
    }
    if !activity.seen() {
        let _ = conn.close().await;
        return Err(format!("no call within {:?}: closed", limits.idle));
    }
    conn.closed().await;
    Ok(())
}
