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
    /// The pidfd pinning the process that connected, or why there is none (it exited before
    /// it could be pinned, or its pid already names another process).
    pidfd: std::result::Result<Pidfd, String>,
    /// How the pidfd was had.
    pub pinned: Pinned,
}

/// How the daemon came by a peer's pidfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    /// From the kernel with the connection (`SO_PEERPIDFD`, Linux ≥ 6.5) or from the bus
    /// (`ProcessFD`): the process that connected, by construction.
    ByKernel,
    /// Opened by pid (`pidfd_open`, Linux ≥ 5.3) and checked to be the process that connected
    /// ([`pin_by_pid`]).
    ByPid,
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
    /// ≥ 6.5), all captured by the kernel when the peer connected. Without `SO_PEERPIDFD` (an
    /// older kernel, or `peer_pidfd` false, a switch for tests) the pid `SO_PEERCRED` recorded
    /// is pinned now with [`pin_by_pid`]; `accepted` is a time ([`cgroups::process::boot_ticks`])
    /// taken after the connection was accepted, so after the peer connected.
    pub fn from_socket(
        sock: &impl AsFd,
        proc_root: &Path,
        peer_pidfd: bool,
        accepted: u64,
    ) -> std::io::Result<Peer> {
        let cred = getsockopt(sock, sockopt::PeerCredentials)?;
        let pid = u32::try_from(cred.pid()).unwrap_or(0);
        let from_kernel = if peer_pidfd {
            getsockopt(sock, sockopt::PeerPidfd).ok()
        } else {
            None
        };
        let (pidfd, pinned) = match from_kernel {
            Some(fd) => (Ok(Pidfd::from_owned(fd)), Pinned::ByKernel),
            None => (
                pin_by_pid(proc_root, pid, cred.uid(), accepted),
                Pinned::ByPid,
            ),
        };
        let ids = peer_groups(sock).ok().map(|g| (cred.gid(), g));
        Ok(Peer {
            pid,
            uid: cred.uid(),
            ids: Mutex::new(ids),
            ns: Mutex::new(None),
            cgroup_file: Mutex::new(None),
            pidfd,
            pinned,
        })
    }

    /// From what a bus reported (`GetConnectionCredentials`), at the sender's first call.
    /// Without a `ProcessFD` from the bus (dbus-daemon 1.14 has none) the pid is pinned now
    /// with [`pin_by_pid`], the call's arrival bounding when the sender connected.
    pub fn from_bus(proc_root: &Path, pid: u32, uid: u32, pidfd: Option<OwnedFd>) -> Peer {
        let (pidfd, pinned) = match pidfd {
            Some(fd) => (Ok(Pidfd::from_owned(fd)), Pinned::ByKernel),
            None => {
                let now = cgroups::process::boot_ticks().unwrap_or(0);
                (pin_by_pid(proc_root, pid, uid, now), Pinned::ByPid)
            }
        };
        Peer {
            pid,
            uid,
            ids: Mutex::new(None),
            ns: Mutex::new(None),
            cgroup_file: Mutex::new(None),
            pidfd,
            pinned,
        }
    }

    /// One of the peer's namespace inodes: through the pidfd where the kernel can, else procfs.
    fn ns_inode(&self, proc_root: &Path, ns: Ns) -> cgroups::Result<u64> {
        if let Ok(Ok(i)) = self.pidfd.as_ref().map(|p| p.ns_inode(ns)) {
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
        self.pidfd.as_ref().is_ok_and(Pidfd::alive)
    }
}

/// Pin a peer by the pid `SO_PEERCRED` (or a bus) recorded when it connected, where the kernel
/// hands over no pidfd (`SO_PEERPIDFD` is Linux ≥ 6.5): open a pidfd on that pid
/// (`pidfd_open`, Linux ≥ 5.3), read the process's start time and ids, check the pidfd still
/// names a live process (so what was read is its), and accept it only if
///
/// * it started no later than `connected_by` (clock ticks after boot, taken after the
///   connection was made): the process that connected was alive when it connected, and a
///   process that got its pid afterwards started after that one exited, so after it
///   connected; and
/// * the uid the connection carries is still one of its real, effective, saved or filesystem
///   uids.
///
/// What remains, compared with `SO_PEERPIDFD`: a process that started within the same clock
/// tick as `connected_by` or in the moments between the peer's `connect` and the daemon's
/// `accept` (on a bus: between the sender's connection to the bus and its first call), that
/// was given the very pid the peer had after the peer exited (the pid counter must wrap
/// around to it, which only a process with `CAP_SYS_ADMIN` over the host's pid namespace can
/// hurry), and that has the peer's uid among its own, passes for the peer. Once pinned, the
/// pidfd keeps any later reuse out as with `SO_PEERPIDFD`.
pub fn pin_by_pid(
    proc_root: &Path,
    pid: u32,
    uid: u32,
    connected_by: u64,
) -> std::result::Result<Pidfd, String> {
    let gone =
        || format!("the calling process (pid {pid}) has exited; reconnect from a live process");
    if pid == 0 {
        return Err(gone());
    }
    let fd = Pidfd::open(pid).map_err(|_| gone())?;
    let started = cgroups::process::start_ticks(proc_root, pid).map_err(|_| gone())?;
    let status = Status::read(proc_root, pid).map_err(|_| gone())?;
    if !fd.alive() {
        return Err(gone());
    }
    if started > connected_by {
        return Err(format!(
            "pid {pid} now names a process that started after the connection was made: the \
             caller exited and its pid was reused; reconnect from a live process"
        ));
    }
    if !status.uids.contains(&uid) {
        return Err(format!(
            "process {pid} no longer has the uid {uid} it connected with; reconnect"
        ));
    }
    Ok(fd)
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
        if let Err(why) = &peer.pidfd {
            return Err(Error::new(Kind::NoSuchProcess, why.clone()));
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn me() -> (u32, u32) {
        (std::process::id(), nix::unistd::geteuid().as_raw())
    }

    /// The fallback for kernels without `SO_PEERPIDFD`, on this process as it really is.
    #[test]
    fn pinning_by_pid_takes_the_process_that_connected_only() {
        let proc = Path::new("/proc");
        let (pid, uid) = me();
        let now = cgroups::process::boot_ticks().unwrap();
        let fd = pin_by_pid(proc, pid, uid, now).unwrap();
        assert!(fd.alive());
        // A process that started after the connection was made has a reused pid.
        let started = cgroups::process::start_ticks(proc, pid).unwrap();
        let e = pin_by_pid(proc, pid, uid, started - 1).unwrap_err();
        assert!(e.contains("started after the connection"), "{e}");
        // Or it no longer has the uid the connection carries.
        let e = pin_by_pid(proc, pid, uid ^ 0x5a5a, now).unwrap_err();
        assert!(e.contains("no longer has the uid"), "{e}");
        // An exited (and reaped) process, and pid 0 (not visible to the daemon).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let e = pin_by_pid(proc, gone, uid, now).unwrap_err();
        assert!(e.contains("has exited"), "{e}");
        assert!(pin_by_pid(proc, 0, uid, now)
            .unwrap_err()
            .contains("has exited"));
    }

    /// The start time is compared in whole clock ticks: a process that started in the tick
    /// the connection was accepted passes, one a tick later does not (fixture procfs).
    #[test]
    fn the_start_time_bound_is_inclusive() {
        let fx = cgroups::fixture::Fixture::new();
        let (pid, uid) = me();
        fx.write_file(
            &format!("proc/{pid}/stat"),
            &format!("{pid} (cgm (x)) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0\n"),
        );
        fx.write_file(
            &format!("proc/{pid}/status"),
            &format!("Name:\tcgm\nUid:\t1 {uid} 1 1\nGid:\t1 1 1 1\nGroups:\t\nNSpid:\t{pid}\n"),
        );
        let proc = fx.proc_root();
        assert!(pin_by_pid(&proc, pid, uid, 500).is_ok());
        assert!(pin_by_pid(&proc, pid, uid, 499).is_err());
        // Any of the four uids will do: a setuid program keeps its caller's as the real one.
        assert!(pin_by_pid(&proc, pid, 1, 500).is_ok());
        assert!(pin_by_pid(&proc, pid, 2, 500).is_err());
    }

    /// A peer whose pid could not be pinned is refused with the reason, as one that exited.
    #[test]
    fn an_unpinned_peer_is_refused() {
        let (pid, uid) = me();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let proc = Path::new("/proc");
        let host = HostNs::detect(proc).unwrap();
        // The kernel's own pidfd, or pinned by pid with the start-time check passing.
        for peer_pidfd in [true, false] {
            let now = cgroups::process::boot_ticks().unwrap();
            let p = Peer::from_socket(&a, proc, peer_pidfd, now).unwrap();
            assert_eq!((p.pid, p.uid), (pid, uid));
            if !peer_pidfd {
                assert_eq!(p.pinned, Pinned::ByPid);
            }
            let c = Caller::load(&p, &host).unwrap();
            assert_eq!(c.pid, pid);
        }
        // Accepted "before" this process started: its pid names someone else.
        let p = Peer::from_socket(&a, proc, false, 0).unwrap();
        let e = Caller::load(&p, &host).unwrap_err();
        assert_eq!(e.kind(), Kind::NoSuchProcess);
        assert!(e.message().contains("pid was reused"), "{e}");
        // The bus: no ProcessFD, pinned at the first call.
        let p = Peer::from_bus(proc, pid, uid, None);
        assert_eq!(p.pinned, Pinned::ByPid);
        assert!(Caller::load(&p, &host).is_ok());
    }
}
