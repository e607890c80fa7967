//! The D-Bus face of the core: `org.linuxcontainers.cgmanager0_0` ([`ManagerV0`]) and
//! `org.linuxcontainers.cgmanager1` ([`DelegationV1`]) on `/org/linuxcontainers/cgmanager`.
//! Each method finds who is calling (peer credentials on the daemon's socket, the bus's record
//! of the sender on a bus), converts arguments (pids and ids through the caller's namespaces)
//! and calls the core. `*Scm` methods answer at once and finish on their side channel.

use std::sync::Arc;

use cgmanager_dbus::API_VERSION;
use dashmap::DashMap;
use zbus::message::Header;
use zbus::{fdo, interface, Connection};

use crate::caller::{Caller, Peer};
use crate::errors::{Error, Result};
use crate::manager::Manager;
use crate::scm::ScmChannel;

/// Where a connection's callers come from.
#[derive(Clone)]
pub enum Who {
    /// A peer-to-peer connection: one peer, known since it connected.
    Peer(Arc<Peer>),
    /// A bus: many senders, looked up once per unique name.
    Bus(Arc<DashMap<String, Arc<Peer>>>),
}

/// What every interface object holds.
#[derive(Clone)]
pub struct Ctx {
    /// The core.
    pub mgr: Arc<Manager>,
    /// How to find the caller.
    pub who: Who,
}

impl Ctx {
    async fn peer(&self, hdr: &Header<'_>, conn: &Connection) -> Result<Arc<Peer>> {
        let cache = match &self.who {
            Who::Peer(p) => return Ok(p.clone()),
            Who::Bus(cache) => cache,
        };
        let sender = hdr
            .sender()
            .ok_or_else(|| Error::InvalidArgument("message has no sender".into()))?
            .to_owned();
        if let Some(p) = cache.get(sender.as_str()) {
            return Ok(p.clone());
        }
        let dbus = fdo::DBusProxy::new(conn).await.map_err(Error::ZBus)?;
        let creds = dbus
            .get_connection_credentials(sender.clone().into())
            .await
            .map_err(|e| Error::Failed(format!("ask the bus who {sender} is: {e}")))?;
        let (Some(uid), Some(pid)) = (creds.unix_user_id(), creds.process_id()) else {
            return Err(Error::Failed(format!(
                "the bus does not know the uid and pid of {sender}"
            )));
        };
        let pidfd = creds.into_process_fd().map(std::os::fd::OwnedFd::from);
        let peer = Arc::new(Peer::from_bus(pid, uid, pidfd));
        cache.insert(sender.to_string(), peer.clone());
        Ok(peer)
    }

    async fn caller(&self, hdr: &Header<'_>, conn: &Connection) -> Result<Caller> {
        let peer = self.peer(hdr, conn).await?;
        let c = Caller::load(&peer, &self.mgr.host);
        if let Err(e) = &c {
            tracing::debug!(pid = peer.pid, "caller: {e:?}");
        }
        c
    }

    /// Start an Scm request: take the socket; the rest runs in [`Scm::run`].
    async fn scm(&self, hdr: &Header<'_>, conn: &Connection, fd: zbus::OwnedFd) -> Result<Scm> {
        let peer = self.peer(hdr, conn).await?;
        let ch = ScmChannel::new(std::os::fd::OwnedFd::from(fd), peer.pid)?;
        Ok(Scm {
            mgr: self.mgr.clone(),
            peer,
            ch,
        })
    }
}

/// An Scm request in progress.
struct Scm {
    mgr: Arc<Manager>,
    peer: Arc<Peer>,
    ch: ScmChannel,
}

impl Scm {
    /// The requestor: the first credential must be the connection's own process (no
    /// proxying: a process cannot act with another's credentials through us).
    async fn requestor(&self) -> Result<Caller> {
        let r = self.ch.ask().await?;
        if u32::try_from(r.pid()).ok() != Some(self.peer.pid) || r.uid() != self.peer.uid {
            return Err(Error::ProxyRefused(format!(
                "requestor credentials (pid {}, uid {}) are not the connection's (pid {}, uid {})",
                r.pid(),
                r.uid(),
                self.peer.pid,
                self.peer.uid
            )));
        }
        Caller::load(&self.peer, &self.mgr.host)
    }

    /// The second credential (victim pid, or target uid/gid), translated by the kernel.
    async fn victim(&self) -> Result<nix::sys::socket::UnixCredentials> {
        let v = self.ch.ask().await?;
        if v.pid() <= 0 {
            return Err(Error::NoSuchProcess(
                "the process named is not visible from the daemon".into(),
            ));
        }
        Ok(v)
    }

    /// Run the request in the background and send its result as the protocol says.
    fn run<T, F, Fut>(self, method: &'static str, work: F, reply: fn(Result<T>) -> Reply)
    where
        T: Send + 'static,
        F: FnOnce(Arc<Scm>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        tokio::spawn(async move {
            let me = Arc::new(self);
            let r = work(me.clone()).await;
            if let Err(e) = &r {
                tracing::debug!("{method}: {}: {}", e.kind(), e.message());
            }
            let sent = match reply(r) {
                Reply::Bytes(b) => me.ch.send(&b).await,
                Reply::Pids(pids) => send_pids(&me.ch, &pids).await,
                Reply::Chunks(chunks) => {
                    let mut r = Ok(());
                    for c in chunks {
                        r = me.ch.send(&c).await;
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                }
            };
            if let Err(e) = sent {
                tracing::debug!("{method}: reply on sockfd: {}", e.message());
            }
        });
    }
}

/// What goes back on the side channel.
enum Reply {
    Bytes(Vec<u8>),
    Pids(Vec<u32>),
    Chunks(Vec<Vec<u8>>),
}

fn ok_byte(r: Result<()>) -> Reply {
    Reply::Bytes(vec![if r.is_ok() { b'1' } else { b'0' }])
}

fn existed_byte(r: Result<i32>) -> Reply {
    Reply::Bytes(vec![match r {
        Ok(1) => b'2',
        Ok(_) => b'1',
        Err(_) => b'0',
    }])
}

fn string_reply(r: Result<String>) -> Reply {
    match r {
        Ok(s) => {
            let mut b = s.into_bytes();
            b.push(0);
            Reply::Bytes(b)
        }
        Err(_) => Reply::Bytes(Vec::new()),
    }
}

fn pids_reply(r: Result<Vec<u32>>) -> Reply {
    match r {
        Ok(p) => Reply::Pids(p),
        Err(_) => Reply::Bytes((-1i32).to_ne_bytes().to_vec()),
    }
}

fn counted(n: usize, body: Vec<u8>) -> Reply {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut chunks = vec![n.to_ne_bytes().to_vec()];
    if n > 0 {
        chunks.push(len.to_ne_bytes().to_vec());
        chunks.push(body);
    }
    Reply::Chunks(chunks)
}

fn names_reply(r: Result<Vec<String>>) -> Reply {
    match r {
        Ok(names) => {
            let mut body = Vec::new();
            for n in &names {
                body.extend_from_slice(n.as_bytes());
                body.push(0);
            }
            counted(names.len(), body)
        }
        Err(_) => Reply::Bytes((-1i32).to_ne_bytes().to_vec()),
    }
}

fn keys_reply(r: Result<Vec<(String, u32, u32, u32)>>) -> Reply {
    match r {
        Ok(keys) => {
            let mut body = String::new();
            for (name, uid, gid, mode) in &keys {
                body.push_str(&format!("{name}\n{uid}\n{gid}\n{mode}\n"));
            }
            counted(keys.len(), body.into_bytes())
        }
        Err(_) => Reply::Bytes((-1i32).to_ne_bytes().to_vec()),
    }
}

/// A count, then each pid as `SCM_CREDENTIALS` so the kernel translates it for the reader. A
/// pid that exits meanwhile is replaced by one already sent, so the count stays true
/// (CGManager's "pid churn" rule).
async fn send_pids(ch: &ScmChannel, pids: &[u32]) -> Result<()> {
    let n = i32::try_from(pids.len()).unwrap_or(i32::MAX);
    ch.send(&n.to_ne_bytes()).await?;
    let mut last_ok: Option<u32> = None;
    for &p in pids {
        match ch.send_pid(p).await {
            Ok(()) => last_ok = Some(p),
            Err(Error::NoSuchProcess(_)) => match last_ok {
                Some(q) => ch.send_pid(q).await?,
                None => ch.send_pid(std::process::id()).await?,
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn rec(r: i32) -> Result<bool> {
    match r {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::InvalidArgument(format!(
            "recursive must be 0 or 1, not {r}"
        ))),
    }
}

/// `org.linuxcontainers.cgmanager0_0`.
pub struct ManagerV0(pub Ctx);

#[interface(name = "org.linuxcontainers.cgmanager0_0", spawn = false)]
impl ManagerV0 {
    async fn ping(&self, junk: i32) -> Result<()> {
        let _ = junk;
        Ok(())
    }

    #[zbus(out_args("output"))]
    async fn get_pid_cgroup(
        &self,
        controller: &str,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let c = self.0.caller(&hdr, conn).await?;
        let pid = c.pid_arg(pid, "GetPidCgroup")?;
        self.0.mgr.get_pid_cgroup(&c, controller, pid, false)
    }

    async fn get_pid_cgroup_scm(
        &self,
        controller: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "GetPidCgroupScm",
            |s| async move {
                let c = s.requestor().await?;
                let v = s.victim().await?;
                s.mgr.get_pid_cgroup(&c, &controller, v.pid() as u32, false)
            },
            string_reply,
        );
        Ok(())
    }

    #[zbus(out_args("output"))]
    async fn get_pid_cgroup_abs(
        &self,
        controller: &str,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let c = self.0.caller(&hdr, conn).await?;
        let pid = c.pid_arg(pid, "GetPidCgroupAbs")?;
        self.0.mgr.get_pid_cgroup(&c, controller, pid, true)
    }

    async fn get_pid_cgroup_abs_scm(
        &self,
        controller: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "GetPidCgroupAbsScm",
            |s| async move {
                let c = s.requestor().await?;
                let v = s.victim().await?;
                s.mgr.get_pid_cgroup(&c, &controller, v.pid() as u32, true)
            },
            string_reply,
        );
        Ok(())
    }

    #[zbus(out_args("existed"))]
    async fn create(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<i32> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.create(&c, controller, cgroup)
    }

    async fn create_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "CreateScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.create(&c, &controller, &cgroup)
            },
            existed_byte,
        );
        Ok(())
    }

    async fn chown(
        &self,
        controller: &str,
        cgroup: &str,
        uid: i32,
        gid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        let (uid, gid) = (c.uid_arg(uid)?, c.gid_arg(gid)?);
        self.0.mgr.chown(&c, controller, cgroup, uid, gid)
    }

    async fn chown_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "ChownScm",
            |s| async move {
                let c = s.requestor().await?;
                let v = s.victim().await?;
                s.mgr.chown(&c, &controller, &cgroup, v.uid(), v.gid())
            },
            ok_byte,
        );
        Ok(())
    }

    async fn chmod(
        &self,
        controller: &str,
        cgroup: &str,
        file: &str,
        mode: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.chmod(&c, controller, cgroup, file, mode)
    }

    #[allow(clippy::too_many_arguments)]
    async fn chmod_scm(
        &self,
        controller: String,
        cgroup: String,
        file: String,
        mode: i32,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "ChmodScm",
            move |s| async move {
                let c = s.requestor().await?;
                s.mgr.chmod(&c, &controller, &cgroup, &file, mode)
            },
            ok_byte,
        );
        Ok(())
    }

    async fn move_pid(
        &self,
        controller: &str,
        cgroup: &str,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        let pid = c.pid_arg(pid, "MovePid")?;
        self.0.mgr.move_pid(&c, controller, cgroup, pid, false)
    }

    async fn move_pid_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "MovePidScm",
            |s| async move {
                let c = s.requestor().await?;
                let v = s.victim().await?;
                s.mgr
                    .move_pid(&c, &controller, &cgroup, v.pid() as u32, false)
            },
            ok_byte,
        );
        Ok(())
    }

    async fn move_pid_abs(
        &self,
        controller: &str,
        cgroup: &str,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        let pid = c.pid_arg(pid, "MovePidAbs")?;
        self.0.mgr.move_pid(&c, controller, cgroup, pid, true)
    }

    async fn move_pid_abs_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "MovePidAbsScm",
            |s| async move {
                let c = s.requestor().await?;
                let v = s.victim().await?;
                s.mgr
                    .move_pid(&c, &controller, &cgroup, v.pid() as u32, true)
            },
            ok_byte,
        );
        Ok(())
    }

    #[zbus(out_args("value"))]
    async fn get_value(
        &self,
        controller: &str,
        cgroup: &str,
        key: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.get_value(&c, controller, cgroup, key)
    }

    async fn get_value_scm(
        &self,
        controller: String,
        cgroup: String,
        key: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "GetValueScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.get_value(&c, &controller, &cgroup, &key)
            },
            string_reply,
        );
        Ok(())
    }

    async fn set_value(
        &self,
        controller: &str,
        cgroup: &str,
        key: &str,
        value: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.set_value(&c, controller, cgroup, key, value)
    }

    #[allow(clippy::too_many_arguments)]
    async fn set_value_scm(
        &self,
        controller: String,
        cgroup: String,
        key: String,
        value: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "SetValueScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.set_value(&c, &controller, &cgroup, &key, &value)
            },
            ok_byte,
        );
        Ok(())
    }

    #[zbus(out_args("existed"))]
    async fn remove(
        &self,
        controller: &str,
        cgroup: &str,
        recursive: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<i32> {
        let recursive = rec(recursive)?;
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.remove(&c, controller, cgroup, recursive)
    }

    async fn remove_scm(
        &self,
        controller: String,
        cgroup: String,
        recursive: i32,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let recursive = rec(recursive)?;
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "RemoveScm",
            move |s| async move {
                let c = s.requestor().await?;
                s.mgr.remove(&c, &controller, &cgroup, recursive)
            },
            existed_byte,
        );
        Ok(())
    }

    #[zbus(out_args("output"))]
    async fn get_tasks(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        let c = self.0.caller(&hdr, conn).await?;
        tasks_for(
            &c,
            self.0.mgr.get_tasks(&c, controller, cgroup, false, true)?,
            "GetTasks",
        )
    }

    async fn get_tasks_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "GetTasksScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.get_tasks(&c, &controller, &cgroup, false, true)
            },
            pids_reply,
        );
        Ok(())
    }

    #[zbus(out_args("output"))]
    async fn get_tasks_recursive(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        let c = self.0.caller(&hdr, conn).await?;
        let pids = self.0.mgr.get_tasks(&c, controller, cgroup, true, true)?;
        tasks_for(&c, pids, "GetTasksRecursive")
    }

    async fn get_tasks_recursive_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "GetTasksRecursiveScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.get_tasks(&c, &controller, &cgroup, true, true)
            },
            pids_reply,
        );
        Ok(())
    }

    #[zbus(out_args("output"))]
    async fn list_children(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.list_children(&c, controller, cgroup)
    }

    async fn list_children_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "ListChildrenScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.list_children(&c, &controller, &cgroup)
            },
            names_reply,
        );
        Ok(())
    }

    async fn remove_on_empty(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.remove_on_empty(&c, controller, cgroup)
    }

    async fn remove_on_empty_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "RemoveOnEmptyScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.remove_on_empty(&c, &controller, &cgroup)
            },
            ok_byte,
        );
        Ok(())
    }

    async fn prune(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.prune(&c, controller, cgroup)
    }

    async fn prune_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "PruneScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.prune(&c, &controller, &cgroup)
            },
            ok_byte,
        );
        Ok(())
    }

    #[zbus(out_args("output"))]
    async fn list_controllers(&self) -> Result<Vec<String>> {
        Ok(self.0.mgr.list_controllers())
    }

    #[zbus(out_args("output"))]
    async fn list_keys(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, u32, u32, u32)>> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.list_keys(&c, controller, cgroup)
    }

    async fn list_keys_scm(
        &self,
        controller: String,
        cgroup: String,
        sockfd: zbus::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let s = self.0.scm(&hdr, conn, sockfd).await?;
        s.run(
            "ListKeysScm",
            |s| async move {
                let c = s.requestor().await?;
                s.mgr.list_keys(&c, &controller, &cgroup)
            },
            keys_reply,
        );
        Ok(())
    }

    #[zbus(property, name = "api_version")]
    async fn api_version(&self) -> i32 {
        API_VERSION
    }
}

/// Host pids are only meaningful to a caller in the daemon's pid namespace.
fn tasks_for(c: &Caller, pids: Vec<u32>, method: &str) -> Result<Vec<i32>> {
    if !c.same_pidns {
        return Err(Error::ForeignNamespace(format!(
            "your pid namespace is not the daemon's; use {method}Scm so the kernel translates the pids"
        )));
    }
    Ok(pids
        .into_iter()
        .filter_map(|p| i32::try_from(p).ok())
        .collect())
}

/// `org.linuxcontainers.cgmanager1`.
pub struct DelegationV1(pub Ctx);

#[interface(name = "org.linuxcontainers.cgmanager1", spawn = false)]
impl DelegationV1 {
    #[zbus(out_args("delegations"))]
    async fn delegate(
        &self,
        controller: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, String)>> {
        let c = self.0.caller(&hdr, conn).await?;
        Ok(self
            .0
            .mgr
            .delegate(&c, controller)?
            .into_iter()
            .map(|d| (d.hierarchy, d.path))
            .collect())
    }

    async fn enter(
        &self,
        controller: &str,
        cgroup: &str,
        pid: i32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<()> {
        let c = self.0.caller(&hdr, conn).await?;
        let pid = c.pid_arg(pid, "Enter")?;
        self.0.mgr.enter(&c, controller, cgroup, pid)
    }

    #[zbus(out_args("removed"))]
    async fn release(
        &self,
        controller: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<i32> {
        let c = self.0.caller(&hdr, conn).await?;
        self.0.mgr.release(&c, controller)
    }

    /// Process ids in a cgroup (GetTasks gives thread ids, as CGManager did).
    #[zbus(out_args("pids"))]
    async fn get_procs(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        let c = self.0.caller(&hdr, conn).await?;
        let pids = self.0.mgr.get_tasks(&c, controller, cgroup, false, false)?;
        tasks_for(&c, pids, "GetProcs")
    }

    /// Process ids in a cgroup and below.
    #[zbus(out_args("pids"))]
    async fn get_procs_recursive(
        &self,
        controller: &str,
        cgroup: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<i32>> {
        let c = self.0.caller(&hdr, conn).await?;
        let pids = self.0.mgr.get_tasks(&c, controller, cgroup, true, false)?;
        tasks_for(&c, pids, "GetProcsRecursive")
    }
}
