//! Who is asking: the identity of the process at the other end of a connection, taken from
//! the kernel (socket peer credentials and pidfd, or the bus's record of them), never from
//! arguments, and everything about it a permission check needs, re-read on every request and
//! pinned by the pidfd so that a recycled pid cannot stand in for the caller.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cgroups::process::{ns_inode, IdMap, Ns, Pidfd, Status};
use cgroups::ProcCgroups;
use nix::sys::socket::{getsockopt, sockopt};

use crate::errors::{from_cgroups, Error, Kind, Result};

/// The daemon's own view: where procfs is and which namespaces are "ours".
#[derive(Debug, Clone)]
pub struct HostNs {
    /// procfs root (`/proc`).
    pub proc_root: PathBuf,
    /// Inode of the daemon's pid namespace.
    pub pidns: u64,
    /// Inode of the daemon's user namespace.
    pub userns: u64,
}

impl HostNs {
    /// Read the daemon's own namespaces.
    pub fn detect(proc_root: &Path) -> Result<HostNs> {
        let me = std::process::id();
        let ns = |n| ns_inode(proc_root, me, n).map_err(|e| from_cgroups(&e));
        Ok(HostNs {
            proc_root: proc_root.to_path_buf(),
            pidns: ns("pid")?,
            userns: ns("user")?,
        })
    }
}

/// The process at the other end of a connection, as the kernel reported it when it connected.
#[derive(Debug)]
pub struct Peer {
    /// Pid in the daemon's pid namespace.
    pub pid: u32,
    /// Effective uid at connect time, in the daemon's user namespace.
    pub uid: u32,
    /// Effective gid and supplementary groups at connect time (the bus does not report the
    /// gid: then read once at first use).
    ids: Mutex<Option<(u32, Vec<u32>)>>,
    /// The caller's namespaces and id maps, captured at its first request.
    ns: Mutex<Option<NsSeen>>,
    /// `/proc/<pid>/cgroup`, kept open: re-read from offset 0 on every request (procfs
    /// regenerates it), and bound to this process, so a reused pid reads as ESRCH.
    cgroup_file: Mutex<Option<std::fs::File>>,
    pidfd: Option<Pidfd>,
}

#[derive(Debug, Clone)]
struct NsSeen {
    userns: u64,
    pidns: u64,
    uid_map: IdMap,
    gid_map: IdMap,
}

/// `SO_PEERGROUPS` (asm-generic/socket.h; not in libc for every target).
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of a socket's peer at connect time.
fn peer_groups(sock: &impl AsFd) -> std::io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer is valid for `len` bytes and the kernel writes at most that much,
        // setting `len` to the size it needs.
        let r = unsafe {
            libc::getsockopt(
                sock.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && n > groups.len() {
            groups.resize(n, 0);
            continue;
        }
        return Err(e);
    }
}

impl Peer {
    /// From a connected unix socket: `SO_PEERCRED`, `SO_PEERGROUPS` and `SO_PEERPIDFD` (Linux
    /// ≥ 6.5), all captured by the kernel when the peer connected.
    pub fn from_socket(sock: &impl AsFd) -> std::io::Result<Peer> {
        let cred = getsockopt(sock, sockopt::PeerCredentials)?;
        let pidfd = getsockopt(sock, sockopt::PeerPidfd)
            .ok()
            .map(Pidfd::from_owned);
        let pid = u32::try_from(cred.pid()).unwrap_or(0);
        let ids = peer_groups(sock).ok().map(|g| (cred.gid(), g));
        Ok(Peer {
            pid,
            uid: cred.uid(),
            ids: Mutex::new(ids),
            ns: Mutex::new(None),
            cgroup_file: Mutex::new(None),
            pidfd,
        })
    }

    /// From what a bus reported (`GetConnectionCredentials`). Without a `ProcessFD` from the
    /// bus the pidfd is opened now, which pins the process from here on.
    pub fn from_bus(pid: u32, uid: u32, pidfd: Option<OwnedFd>) -> Peer {
        let pidfd = pidfd
            .map(Pidfd::from_owned)
            .or_else(|| Pidfd::open(pid).ok());
        Peer {
            pid,
            uid,
            ids: Mutex::new(None),
            ns: Mutex::new(None),
            cgroup_file: Mutex::new(None),
            pidfd,
        }
    }

    /// One of the peer's namespace inodes: through the pidfd where the kernel can, else procfs.
    fn ns_inode(&self, proc_root: &Path, ns: Ns) -> cgroups::Result<u64> {
        if let Some(Ok(i)) = self.pidfd.as_ref().map(|p| p.ns_inode(ns)) {
            return Ok(i);
        }
        let name = match ns {
            Ns::Pid => "pid",
            Ns::User => "user",
        };
        ns_inode(proc_root, self.pid, name)
    }

    /// The peer's current cgroups.
    fn cgroups(&self, proc_root: &Path) -> cgroups::Result<ProcCgroups> {
        use std::os::unix::fs::FileExt;
        let path = proc_root.join(self.pid.to_string()).join("cgroup");
        let io = |source| cgroups::Error::Io {
            path: path.clone(),
            source,
        };
        let mut slot = self
            .cgroup_file
            .lock()
            .map_err(|_| io(std::io::Error::other("poisoned")))?;
        if slot.is_none() {
            *slot = Some(std::fs::File::open(&path).map_err(io)?);
        }
        let Some(f) = slot.as_ref() else {
            return Err(io(std::io::Error::from_raw_os_error(libc::EBADF)));
        };
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        loop {
            let n = f.read_at(&mut buf[len..], len as u64).map_err(io)?;
            len += n;
            // procfs hands out the whole file in one read when the buffer is large enough.
            if n == 0 || len < buf.len() {
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
        buf.truncate(len);
        let text = String::from_utf8(buf).map_err(|_| io(std::io::Error::other("not UTF-8")))?;
        ProcCgroups::parse(&path, &text)
    }

    /// False once the connecting process has exited: its pid may belong to someone else now.
    pub fn alive(&self) -> bool {
        match &self.pidfd {
            Some(fd) => fd.alive(),
            None => false,
        }
    }
}

/// One request's view of the caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Pid in the daemon's pid namespace.
    pub pid: u32,
    /// Host uid.
    pub uid: u32,
    /// Host gid.
    pub gid: u32,
    /// Supplementary groups (host ids).
    pub groups: Vec<u32>,
    /// The caller's user namespace's uid map (identity in the daemon's namespace).
    pub uid_map: IdMap,
    /// Same for gids.
    pub gid_map: IdMap,
    /// uid 0 in the daemon's user namespace.
    pub host_root: bool,
    /// uid 0 inside its own user namespace (a container's root).
    pub ns_root: bool,
    /// In the daemon's pid namespace (pid arguments mean the same to both).
    pub same_pidns: bool,
    /// The caller's cgroups.
    pub cgroups: ProcCgroups,
}

impl Caller {
    /// Load the caller's current state. Fails if the process has exited (its pid could now
    /// name another process).
    pub fn load(peer: &Peer, host: &HostNs) -> Result<Caller> {
        let gone = || {
            Error::new(
                Kind::NoSuchProcess,
                format!(
                    "the calling process (pid {}) has exited; reconnect from a live process",
                    peer.pid
                ),
            )
        };
        if peer.pid == 0 || !peer.alive() {
            return Err(gone());
        }
        let proc = &host.proc_root;
        let m = |e: cgroups::Error| proc_err(e, &gone);
        let (gid, groups) = {
            let mut ids = peer
                .ids
                .lock()
                .map_err(|_| Error::new(Kind::Failed, "poisoned"))?;
            match &*ids {
                Some(v) => v.clone(),
                None => {
                    let st = Status::read(proc, peer.pid).map_err(m)?;
                    let v = (st.gids[1], st.groups);
                    *ids = Some(v.clone());
                    v
                }
            }
        };
        // The namespaces and id maps are captured at the first request, as SO_PEERCRED
        // captures the uid at connect: a process that later enters another user namespace
        // keeps the identity it had (its pid namespace never changes).
        let seen = {
            let mut ns = peer
                .ns
                .lock()
                .map_err(|_| Error::new(Kind::Failed, "poisoned"))?;
            match &*ns {
                Some(s) => s.clone(),
                None => {
                    let userns = peer.ns_inode(proc, Ns::User).map_err(m)?;
                    let pidns = peer.ns_inode(proc, Ns::Pid).map_err(m)?;
                    let (uid_map, gid_map) = if userns == host.userns {
                        (IdMap::identity(), IdMap::identity())
                    } else {
                        (
                            IdMap::read(proc, peer.pid, "uid_map").map_err(m)?,
                            IdMap::read(proc, peer.pid, "gid_map").map_err(m)?,
                        )
                    };
                    let s = NsSeen {
                        userns,
                        pidns,
                        uid_map,
                        gid_map,
                    };
                    *ns = Some(s.clone());
                    s
                }
            }
        };
        let cgroups = peer.cgroups(proc).map_err(m)?;
        // Everything above must describe the process that connected, not a successor that
        // was given its pid: check the pidfd after reading.
        if !peer.alive() {
            return Err(gone());
        }
        let uid = peer.uid;
        let same_userns = seen.userns == host.userns;
        Ok(Caller {
            pid: peer.pid,
            uid,
            gid,
            groups,
            host_root: uid == 0 && same_userns,
            ns_root: !same_userns && seen.uid_map.to_inside(uid) == Some(0),
            same_pidns: seen.pidns == host.pidns,
            uid_map: seen.uid_map,
            gid_map: seen.gid_map,
            cgroups,
        })
    }

    /// Does the caller have capability `cap` (e.g. `CAP_SYS_ADMIN`, 21) in the daemon's user
    /// namespace — what the kernel checks with `capable()`? Only host root can: a container's
    /// root has its capabilities in its own namespace. Read now (capabilities can be dropped).
    pub fn host_capable(&self, proc_root: &Path, cap: u32) -> bool {
        if !self.host_root {
            return false;
        }
        cgroups::process::Status::read(proc_root, self.pid).is_ok_and(|st| st.has_cap(cap))
    }

    /// A uid argument in the caller's user namespace, as a host uid.
    pub fn uid_arg(&self, uid: i32) -> Result<u32> {
        let id = u32::try_from(uid)
            .map_err(|_| Error::new(Kind::InvalidArgument, format!("{uid} is not a valid uid")))?;
        self.uid_map.to_outside(id).ok_or_else(|| {
            Error::new(
                Kind::ForeignNamespace,
                format!("uid {uid} is not mapped in your user namespace"),
            )
        })
    }

    /// A gid argument in the caller's user namespace, as a host gid.
    pub fn gid_arg(&self, gid: i32) -> Result<u32> {
        let id = u32::try_from(gid)
            .map_err(|_| Error::new(Kind::InvalidArgument, format!("{gid} is not a valid gid")))?;
        self.gid_map.to_outside(id).ok_or_else(|| {
            Error::new(
                Kind::ForeignNamespace,
                format!("gid {gid} is not mapped in your user namespace"),
            )
        })
    }

    /// True if `gid` is the caller's primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// A process a request acts on (MovePid, GetPidCgroup), pinned by a pidfd.
#[derive(Debug)]
pub struct Victim {
    /// Host pid.
    pub pid: u32,
    /// Its ids.
    pub status: Status,
    /// Its cgroups when loaded.
    pub cgroups: ProcCgroups,
    pidfd: Pidfd,
}

impl Victim {
    /// Pin and read a process by host pid.
    pub fn load(host: &HostNs, pid: u32) -> Result<Victim> {
        let gone = || Error::new(Kind::NoSuchProcess, format!("no process {pid}"));
        let pidfd = Pidfd::open(pid).map_err(|_| match thread_group_of(host, pid) {
            Some(tgid) if tgid != pid => Error::new(
                Kind::InvalidArgument,
                format!("{pid} is a thread id, not a process id; pass its thread-group id {tgid}"),
            ),
            _ => gone(),
        })?;
        let m = |e: cgroups::Error| proc_err(e, &gone);
        let status = Status::read(&host.proc_root, pid).map_err(m)?;
        let cgroups = ProcCgroups::read(&host.proc_root, pid).map_err(m)?;
        if !pidfd.alive() {
            return Err(gone());
        }
        Ok(Victim {
            pid,
            status,
            cgroups,
            pidfd,
        })
    }

    /// Like [`Victim::load`], but a thread id is accepted too: its process is pinned, and its
    /// own status and cgroups are read (`/proc/<tgid>/task/<tid>`).
    pub fn load_task(host: &HostNs, tid: u32) -> Result<Victim> {
        let tgid = match thread_group_of(host, tid) {
            Some(t) if t != tid => t,
            _ => return Victim::load(host, tid),
        };
        let gone = || Error::new(Kind::NoSuchProcess, format!("no thread {tid}"));
        let pidfd = Pidfd::open(tgid).map_err(|_| gone())?;
        let task = host.proc_root.join(tgid.to_string()).join("task");
        let m = |e: cgroups::Error| proc_err(e, &gone);
        let status = Status::read(&task, tid).map_err(m)?;
        let cgroups = ProcCgroups::read(&task, tid).map_err(m)?;
        if !pidfd.alive() || !task.join(tid.to_string()).exists() {
            return Err(gone());
        }
        Ok(Victim {
            pid: tid,
            status,
            cgroups,
            pidfd,
        })
    }

    /// Still the process we read (not exited, pid not reused).
    pub fn alive(&self) -> bool {
        self.pidfd.alive()
    }
}

/// A procfs read failure: "gone" if the process vanished, else the error itself.
fn proc_err(e: cgroups::Error, gone: &dyn Fn() -> Error) -> Error {
    if e.is_not_found() {
        gone()
    } else {
        from_cgroups(&e)
    }
}

/// The thread-group id of a task id, from `/proc/<tid>/status` (thread ids have hidden
/// entries there).
fn thread_group_of(host: &HostNs, tid: u32) -> Option<u32> {
    cgroups::process::Status::read(&host.proc_root, tid)
        .ok()?
        .tgid
}
