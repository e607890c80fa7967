//! The one path every D-Bus method takes: find the caller (peer credentials on the daemon's
//! socket, the bus's record of the sender on a bus), run the core on tokio's blocking pool, and
//! answer — a plain method with its result's [`Answer`] encoding, an `*Scm` method at once and
//! then on its side channel with its result's [`ScmAnswer`] encoding.
//!
//! The core is synchronous: it waits in cgroupfs, procfs and NSS calls, which can take long (a
//! v1 `cgroup.procs` write waits for an RCU grace period; a user lookup may go to a directory
//! server). On the blocking pool such a wait holds up only its own call, not the async threads
//! that serve every other client.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use dashmap::DashMap;
use zbus::message::Header;
use zbus::{fdo, Connection};

use crate::caller::{Caller, Peer};
use crate::errors::{Error, Kind, Result};
use crate::manager::Manager;
use crate::service::answer::{Answer, ScmAnswer};
use crate::service::scm::ScmChannel;

/// What a method answers on the wire.
pub type Reply<T> = std::result::Result<T, cgmanager_dbus::Error>;

/// Where a connection's callers come from.
#[derive(Clone)]
pub enum Who {
    /// A peer-to-peer connection: one peer, known since it connected.
    Peer(Arc<Peer>),
    /// A bus: many senders, looked up once per unique name.
    Bus(Arc<DashMap<String, Arc<Peer>>>),
}

/// What every interface object holds: the core, and how to find the caller.
#[derive(Clone)]
pub struct Ctx {
    /// The core.
    pub mgr: Arc<Manager>,
    /// How to find the caller.
    pub who: Who,
}

/// The method being called, for messages and logs.
#[derive(Debug, Clone)]
struct Method {
    name: String,
    /// Whether an `*Scm` form exists that would let the kernel translate pids and ids.
    has_scm: bool,
}

impl Method {
    fn of(hdr: &Header<'_>) -> Method {
        let name = hdr.member().map(|m| m.to_string()).unwrap_or_default();
        let has_scm = hdr.interface().map(|i| i.as_str()) == Some(cgmanager_dbus::INTERFACE)
            && !name.ends_with("Scm");
        Method { name, has_scm }
    }
}

/// One call: who is calling, as of this call (it derefs to the [`Caller`] the core takes), and
/// what it called.
pub struct Call {
    /// Who is calling.
    pub caller: Caller,
    method: Method,
}

impl std::ops::Deref for Call {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl Call {
    fn load(mgr: &Manager, peer: &Peer, method: Method) -> Result<Call> {
        let caller = Caller::load(peer, &mgr.host).inspect_err(|e| {
            tracing::debug!(pid = peer.pid, "caller: {e}");
        })?;
        Ok(Call { caller, method })
    }

    /// A pid argument of a plain call, as a host pid. Only meaningful when the caller shares
    /// the daemon's pid namespace; otherwise the kernel must translate it.
    pub fn pid(&self, pid: i32) -> Result<u32> {
        if !self.caller.same_pidns {
            return Err(Error::new(
                Kind::ForeignNamespace,
                format!(
                    "pid {pid} is a pid of your namespace, not the daemon's; {}",
                    self.translated("it")
                ),
            ));
        }
        u32::try_from(pid)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::new(Kind::InvalidArgument, format!("{pid} is not a valid pid")))
    }

    /// How the caller gets `what` translated by the kernel instead.
    pub(crate) fn translated(&self, what: &str) -> String {
        let m = &self.method.name;
        if self.method.has_scm {
            format!("use {m}Scm so the kernel translates {what}")
        } else {
            format!("{m} has no Scm form to have the kernel translate {what}; call it from the daemon's pid namespace")
        }
    }
}

/// What an `*Scm` method's second credentials name (translated by the kernel into the daemon's
/// namespaces): a process for MovePid and GetPidCgroup, ids for Chown.
#[derive(Debug, Clone, Copy)]
pub struct Named {
    /// A host pid.
    pub pid: u32,
    /// A host uid.
    pub uid: u32,
    /// A host gid.
    pub gid: u32,
}

/// What an `*Scm` request takes from the side channel after the requestor's credentials.
pub trait Second: Sized + Send + 'static {
    /// Take it.
    fn take(ch: &ScmChannel) -> impl Future<Output = Result<Self>> + Send + '_;
}

/// Nothing.
impl Second for () {
    async fn take(_: &ScmChannel) -> Result<()> {
        Ok(())
    }
}

/// A second kick, answered with the credentials of what the request names.
impl Second for Named {
    async fn take(ch: &ScmChannel) -> Result<Named> {
        let v = ch.ask().await?;
        let pid = u32::try_from(v.pid())
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Error::new(
                    Kind::NoSuchProcess,
                    "the process named is not visible from the daemon",
                )
            })?;
        Ok(Named {
            pid,
            uid: v.uid(),
            gid: v.gid(),
        })
    }
}

/// Run core work on the blocking pool.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::new(Kind::Failed, format!("the request's worker failed: {e}")))?
}

impl Ctx {
    /// A plain method: run `work` for the caller, answer with its result.
    pub async fn call<T: Answer>(
        &self,
        hdr: &Header<'_>,
        conn: &Connection,
        work: impl FnOnce(&Manager, &Call) -> Result<T> + Send + 'static,
    ) -> Reply<T::Wire>
    where
        T::Wire: Send,
    {
        let method = Method::of(hdr);
        let peer = self.peer(hdr, conn).await?;
        let mgr = self.mgr.clone();
        Ok(off_thread(move || {
            let call = Call::load(&mgr, &peer, method)?;
            work(&mgr, &call)?.wire(&call)
        })
        .await?)
    }

    /// An `*Scm` method: take the socket and answer the call; the request then runs on the
    /// side channel. `S` is what it takes after the requestor's credentials: `()` for nothing,
    /// [`Named`] for the methods whose second credentials name a process or ids.
    pub async fn scm<S: Second, T: ScmAnswer>(
        &self,
        hdr: &Header<'_>,
        conn: &Connection,
        sockfd: zbus::OwnedFd,
        work: impl FnOnce(&Manager, &Call, S) -> Result<T> + Send + 'static,
    ) -> Reply<()> {
        let method = Method::of(hdr);
        let peer = self.peer(hdr, conn).await?;
        let ch = ScmChannel::new(OwnedFd::from(sockfd), peer.pid)?;
        let mgr = self.mgr.clone();
        tokio::spawn(async move {
            let name = method.name.clone();
            let r = scm_request(&ch, mgr, peer, method, work).await;
            if let Err(e) = &r {
                tracing::debug!("{name}: {e}");
            }
            if let Err(e) = ch.send_all(T::scm(&r)).await {
                tracing::debug!("{name}: reply on sockfd: {e}");
            }
        });
        Ok(())
    }

    async fn peer(&self, hdr: &Header<'_>, conn: &Connection) -> Result<Arc<Peer>> {
        let cache = match &self.who {
            Who::Peer(p) => return Ok(p.clone()),
            Who::Bus(cache) => cache,
        };
        let sender = hdr
            .sender()
            .ok_or_else(|| Error::new(Kind::InvalidArgument, "message has no sender"))?
            .to_owned();
        if let Some(p) = cache.get(sender.as_str()) {
            return Ok(p.clone());
        }
        let ask = |e: &dyn std::fmt::Display| {
            Error::new(Kind::Failed, format!("ask the bus who {sender} is: {e}"))
        };
        let creds = fdo::DBusProxy::new(conn)
            .await
            .map_err(|e| ask(&e))?
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| ask(&e))?;
        let (Some(uid), Some(pid)) = (creds.unix_user_id(), creds.process_id()) else {
            return Err(Error::new(
                Kind::Failed,
                format!("the bus does not know the uid and pid of {sender}"),
            ));
        };
        let pidfd = creds.into_process_fd().map(OwnedFd::from);
        let peer = Arc::new(Peer::from_bus(&self.mgr.host.proc_root, pid, uid, pidfd));
        cache.insert(sender.to_string(), peer.clone());
        Ok(peer)
    }
}

/// The side channel's steps, each bounded by the channel's timeout.
async fn scm_request<S: Second, T: Send + 'static>(
    ch: &ScmChannel,
    mgr: Arc<Manager>,
    peer: Arc<Peer>,
    method: Method,
    work: impl FnOnce(&Manager, &Call, S) -> Result<T> + Send + 'static,
) -> Result<T> {
    // The requestor: the first credentials must be the connection's own process (no proxying:
    // a process cannot act with another's credentials through us).
    let r = ch.ask().await?;
    if u32::try_from(r.pid()).ok() != Some(peer.pid) || r.uid() != peer.uid {
        return Err(Error::new(
            Kind::ProxyRefused,
            format!(
                "requestor credentials (pid {}, uid {}) are not the connection's (pid {}, uid {})",
                r.pid(),
                r.uid(),
                peer.pid,
                peer.uid
            ),
        ));
    }
    let m = mgr.clone();
    let call = off_thread(move || Call::load(&m, &peer, method)).await?;
    let second = S::take(ch).await?;
    off_thread(move || work(&mgr, &call, second)).await
}
