//! The one channel between the processes of a start — `lxr`, the monitor, the intermediate
//! child, init — of an `lxr exec` (`lxr` and the helper that forks the command in the
//! container), and between a helper namespace's parent and child: a `SOCK_SEQPACKET` socket
//! pair carrying [`Msg`] values (JSON, one per packet) with descriptors attached.
//!
//! Both ends are close-on-exec and every process closes the end it does not use, so a peer that
//! dies — or execs, as init does once its setup worked — is seen as end-of-file, never as a
//! wait forever: "EOF without a [`Msg::Failed`]" is how a successful exec is told.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// Largest message (an error text with a console tail fits many times over).
const MAX_MSG: usize = 64 << 10;
/// Most descriptors one message carries.
const MAX_FDS: usize = 4;

/// What the stages tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Child → parent: it has unshared its user namespace; write the maps.
    Unshared,
    /// Parent → child: the namespace is mapped (and the cgroups joined); go on.
    Go,
    /// Intermediate → monitor: init was forked, with this pid (in the monitor's namespace).
    Init(u32),
    /// Monitor → init: the network stack has configured the namespace (or there is none).
    NetUp,
    /// Init → monitor: the console, with its pty master and peer attached.
    Console,
    /// Any stage → its parent: a step failed, and why.
    Failed(String),
    /// Monitor → `lxr`: the start is over and init runs, with this pid.
    Started(u32),
    /// `lxr exec`'s helper → `lxr`: the command's stdio, lxr's ends attached.
    Stdio,
    /// `lxr exec`'s helper → `lxr`: the command ended with this code (128 + signal if killed).
    Exited(i32),
    /// `lxr file` ↔ its helper in the container: a request or an answer (JSON of
    /// `lifecycle::file::wire`), a descriptor attached to some.
    File(String),
}

/// One end of a channel.
#[derive(Debug)]
pub struct End(OwnedFd);

/// A new channel (both ends close-on-exec).
pub fn pair() -> Result<(End, End)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair".into())?;
    Ok((End(a), End(b)))
}

impl End {
    /// Send `msg` with `fds` attached.
    pub fn send_with(&self, msg: &Msg, fds: &[RawFd]) -> Result<()> {
        let body = serde_json::to_vec(msg).map_err(|e| Error::Setup(format!("encode: {e}")))?;
        let cmsg = [ControlMessage::ScmRights(fds)];
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&body)],
            if fds.is_empty() { &[] } else { &cmsg },
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .ctx(|| format!("send {}", name(msg)))?;
        Ok(())
    }

    /// Send `msg`.
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with(msg, &[])
    }

    /// The next message and the descriptors it carried; `None` once every other holder of the
    /// peer end has closed it (exited or exec'd).
    pub fn recv(&self) -> Result<Option<(Msg, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (n, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let m = loop {
                match recvmsg::<()>(
                    self.0.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    // A peer that exited with a message of ours unread (the init failing
                    // while the monitor sent it NetUp) leaves ECONNRESET pending, which the
                    // kernel reports before the messages still queued here — the peer's
                    // Failed among them. Reading the error clears it: read on.
                    Err(nix::errno::Errno::ECONNRESET) => continue,
                    r => break r,
                }
            }
            .ctx(|| "receive from the channel".into())?;
            let mut fds = Vec::new();
            for c in m.cmsgs().ctx(|| "channel message".into())? {
                if let ControlMessageOwned::ScmRights(got) = c {
                    // SAFETY: the kernel just installed these descriptors in this process.
                    fds.extend(
                        got.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            (m.bytes, fds)
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Setup(format!("a garbled message on the channel: {e}")))?;
        Ok(Some((msg, fds)))
    }

    /// Wait for `want`: `Ok(false)` on end-of-file, an error for a [`Msg::Failed`] (its text)
    /// or any other message.
    pub fn expect(&self, want: &Msg) -> Result<bool> {
        match self.recv()? {
            None => Ok(false),
            Some((m, _)) if &m == want => Ok(true),
            Some((Msg::Failed(why), _)) => Err(Error::from_child(&why)),
            Some((m, _)) => Err(Error::Setup(format!(
                "expected {} on the channel, got {}",
                name(want),
                name(&m)
            ))),
        }
    }

    /// Report `e` to the other end (best effort: the other end may be gone).
    pub fn fail(&self, e: &Error) {
        let _ = self.send(&Msg::Failed(e.to_string()));
    }

    /// The raw descriptor (to keep it across [`crate::fds::keep_only`]).
    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn name(m: &Msg) -> &'static str {
    match m {
        Msg::Unshared => "Unshared",
        Msg::Go => "Go",
        Msg::Init(_) => "Init",
        Msg::NetUp => "NetUp",
        Msg::Console => "Console",
        Msg::Failed(_) => "Failed",
        Msg::Started(_) => "Started",
        Msg::Stdio => "Stdio",
        Msg::Exited(_) => "Exited",
        Msg::File(_) => "File",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_descriptors_cross_and_a_closed_peer_is_eof() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Init(42)).unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        a.send_with(&Msg::Console, &[f.as_raw_fd()]).unwrap();
        a.send(&Msg::Failed("no\nroom".into())).unwrap();
        assert_eq!(b.recv().unwrap().unwrap().0, Msg::Init(42));
        let (m, fds) = b.recv().unwrap().unwrap();
        assert_eq!((m, fds.len()), (Msg::Console, 1));
        let e = b.expect(&Msg::Go).unwrap_err();
        assert!(e.to_string().contains("no\nroom"), "{e}");
        drop(a);
        assert!(b.recv().unwrap().is_none());
        assert!(!b.expect(&Msg::Go).unwrap());
    }

    #[test]
    fn an_unexpected_message_is_an_error() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Go).unwrap();
        assert!(b.expect(&Msg::Unshared).is_err());
    }
}
