//! The daemon's end of the `*Scm` side channel (the protocol and its wire format:
//! [`cgmanager_dbus::scm`]). The client passes one end of an `AF_UNIX` datagram socketpair; the
//! daemon answers the D-Bus call at once, then on that socket sends a one-byte "kick" and
//! receives `SCM_CREDENTIALS` — which the kernel checks at send time and translates into the
//! daemon's namespaces — so a process in a container can name a pid or a uid of its own
//! namespaces and the daemon receives the host's. Results go back on the same socket. Every
//! wait is bounded: a client that stops mid-protocol costs a task for [`TIMEOUT`], nothing
//! more.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use cgmanager_dbus::scm::{Datagram, KICK};
use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned,
    MsgFlags, SockType, UnixCredentials,
};
use tokio::io::unix::AsyncFd;

use crate::errors::{Error, Kind, Result};

/// How long the daemon waits for each step of the client's side of the protocol.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// One side channel.
pub struct ScmChannel {
    fd: AsyncFd<OwnedFd>,
}

impl ScmChannel {
    /// Take the client's socket: it must be a unix datagram (or seqpacket) socket whose other
    /// end belongs to the caller (`caller`, a pid in the daemon's namespace). The daemon writes
    /// on it as root: handed a socket connected to someone else — a logging daemon, another
    /// root service that trusts `SCM_CREDENTIALS` — it would speak to them with root's
    /// credentials on the caller's behalf. The kernel records a socketpair's creator as the
    /// peer of both ends; a socket merely `connect()`ed has no peer process and is refused too.
    pub fn new(fd: OwnedFd, caller: u32) -> Result<ScmChannel> {
        let bad = |why: String| {
            Error::new(
                Kind::InvalidArgument,
                format!("sockfd must be one end of an AF_UNIX SOCK_DGRAM socketpair: {why}"),
            )
        };
        match getsockopt(&fd, sockopt::SockType) {
            Ok(SockType::Datagram | SockType::SeqPacket) => {}
            Ok(t) => return Err(bad(format!("it is {t:?}"))),
            Err(e) => return Err(bad(e.desc().to_string())),
        }
        let peer =
            getsockopt(&fd, sockopt::PeerCredentials).map_err(|e| bad(e.desc().to_string()))?;
        if u32::try_from(peer.pid()).ok() != Some(caller) {
            return Err(Error::new(
                Kind::ProxyRefused,
                format!(
                "sockfd's other end is not yours (its peer is pid {}, you are pid {caller}): pass \
                 one end of a socketpair you made",
                peer.pid()
            ),
            ));
        }
        setsockopt(&fd, sockopt::PassCred, &true).map_err(|e| bad(e.desc().to_string()))?;
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| bad(e.desc().to_string()))?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(|e| bad(e.desc().to_string()))?;
        // SAFETY: the AsyncFd owns the OwnedFd, which keeps the same open descriptor (and
        // returns it from as_raw_fd) until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| bad(e.to_string()))?;
        Ok(ScmChannel { fd })
    }

    /// Tell the client to send the next credential.
    pub async fn kick(&self) -> Result<()> {
        self.send(KICK).await
    }

    /// Send a result's datagrams. A pid that exits meanwhile is replaced by one already sent
    /// (or the daemon's own), so that the count sent before stays true (CGManager's "pid
    /// churn" rule).
    pub async fn send_all(&self, datagrams: Vec<Datagram>) -> Result<()> {
        let mut last_pid = None;
        for d in datagrams {
            match d {
                Datagram::Bytes(b) => self.send(&b).await?,
                Datagram::Pid(p) => match self.send_pid(p).await {
                    Ok(()) => last_pid = Some(p),
                    Err(e) if e.is(Kind::NoSuchProcess) => {
                        self.send_pid(last_pid.unwrap_or_else(std::process::id))
                            .await?
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    /// Send one datagram.
    pub async fn send(&self, bytes: &[u8]) -> Result<()> {
        self.send_with(bytes, None).await
    }

    /// Send a pid as `SCM_CREDENTIALS` (the kernel translates it into the receiver's pid
    /// namespace). Fails with `NoSuchProcess` if the process has exited.
    pub async fn send_pid(&self, pid: u32) -> Result<()> {
        let pid = libc::pid_t::try_from(pid)
            .map_err(|_| Error::new(Kind::NoSuchProcess, format!("no process {pid}")))?;
        let cred = UnixCredentials::from(libc::ucred {
            pid,
            uid: 0,
            gid: 0,
        });
        self.send_with(KICK, Some(cred)).await
    }

    async fn send_with(&self, bytes: &[u8], cred: Option<UnixCredentials>) -> Result<()> {
        let step = async {
            loop {
                let mut guard = self.fd.writable().await.map_err(io)?;
                let r = guard.try_io(|fd| {
                    let iov = [IoSlice::new(bytes)];
                    let cmsg: Vec<ControlMessage> =
                        cred.iter().map(ControlMessage::ScmCredentials).collect();
                    sendmsg::<()>(fd.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
                        .map_err(std::io::Error::from)
                });
                match r {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::ESRCH) => {
                        return Err(Error::new(Kind::NoSuchProcess, "process exited"))
                    }
                    Ok(Err(e)) => return Err(io(e)),
                    Err(_would_block) => continue,
                }
            }
        };
        tokio::time::timeout(TIMEOUT, step)
            .await
            .map_err(|_| Error::new(Kind::Timeout, "the client stopped reading its sockfd"))?
    }

    /// Receive the next credential the client sends.
    pub async fn recv_cred(&self) -> Result<UnixCredentials> {
        let step = async {
            loop {
                let mut guard = self.fd.readable().await.map_err(io)?;
                let r = guard.try_io(|fd| {
                    let mut buf = [0u8; 64];
                    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                    let mut space = nix::cmsg_space!(UnixCredentials);
                    let msg = recvmsg::<()>(
                        fd.as_raw_fd(),
                        &mut iov,
                        Some(&mut space),
                        MsgFlags::MSG_CMSG_CLOEXEC,
                    )
                    .map_err(std::io::Error::from)?;
                    let mut cred = None;
                    for c in msg.cmsgs().map_err(std::io::Error::from)? {
                        if let ControlMessageOwned::ScmCredentials(u) = c {
                            cred = Some(u);
                        }
                    }
                    Ok((msg.bytes, cred))
                });
                match r {
                    Ok(Ok((0, None))) => {
                        return Err(Error::new(Kind::Timeout, "the client closed its sockfd"))
                    }
                    Ok(Ok((_, Some(c)))) => return Ok(c),
                    Ok(Ok((_, None))) => {
                        return Err(Error::new(
                            Kind::InvalidArgument,
                            "message on sockfd carried no credentials",
                        ))
                    }
                    Ok(Err(e)) => return Err(io(e)),
                    Err(_would_block) => continue,
                }
            }
        };
        tokio::time::timeout(TIMEOUT, step).await.map_err(|_| {
            Error::new(
                Kind::Timeout,
                "the client sent no credentials on its sockfd",
            )
        })?
    }

    /// Kick, then receive one credential.
    pub async fn ask(&self) -> Result<UnixCredentials> {
        self.kick().await?;
        self.recv_cred().await
    }
}

fn io(e: std::io::Error) -> Error {
    crate::errors::from_io(&e, "sockfd")
}
