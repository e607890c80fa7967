//! The `*Scm` side channel of CGManager's API, as both ends see it: what travels on the
//! socketpair and in which order ([`Datagram`] and the encoders, which the daemon uses), and the
//! client's half of the protocol ([`ScmSocket`], [`call`], [`plain_or_scm`]).
//!
//! The protocol, CGManager's:
//!
//! 1. The client makes an `AF_UNIX`/`SOCK_DGRAM` socketpair, keeps one end and passes the other
//!    as the method's `sockfd`. A refusal of the D-Bus call ends it there.
//! 2. The daemon sends a one-byte kick; the client answers with a datagram carrying its own
//!    `SCM_CREDENTIALS` (the requestor: the kernel checks them and translates them into the
//!    daemon's namespaces).
//! 3. Methods that name a process or ids ([`Named`]: MovePid, GetPidCgroup, Chown) kick again;
//!    the client answers with credentials carrying that pid, or that uid and gid.
//! 4. The daemon sends the result, encoded by the result's type:
//!    * done: `'1'`, or `'0'` on failure ([`done`]); Create and Remove: `'2'` if it existed,
//!      `'1'` if not ([`existed`]);
//!    * a string: its bytes and a NUL; an empty datagram on failure ([`text`]);
//!    * a list (ListChildren, ListKeys): an `i32` count (native endian; `-1` on failure), then,
//!      unless 0, a `u32` length and a body of that length ([`names`], [`keys`]);
//!    * pids (GetTasks): an `i32` count (`-1` on failure), then one datagram per pid carrying it
//!      as `SCM_CREDENTIALS`, which the kernel translates into the reader's pid namespace
//!      ([`pids`]; a pid the reader cannot see arrives as 0).

use std::future::Future;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixCredentials,
};

use crate::Error;

/// The daemon's kick: "send the next credentials".
pub const KICK: &[u8] = b"1";
/// Done.
pub const OK: u8 = b'1';
/// Failed (the reason is in the daemon's log, not on the side channel).
pub const FAILED: u8 = b'0';
/// Create, Remove: the cgroup existed.
pub const EXISTED: u8 = b'2';

/// One datagram the daemon sends after the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A pid (in the daemon's pid namespace) as `SCM_CREDENTIALS`, with a one-byte body.
    Pid(u32),
}

fn count(n: i32) -> Datagram {
    Datagram::Bytes(n.to_ne_bytes().to_vec())
}

/// A count that fits the wire's `i32`.
fn wire_count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `()`: done or failed.
pub fn done(ok: bool) -> Vec<Datagram> {
    vec![Datagram::Bytes(vec![if ok { OK } else { FAILED }])]
}

/// Create, Remove: whether the cgroup existed, or `None` on failure.
pub fn existed(r: Option<bool>) -> Vec<Datagram> {
    let b = match r {
        Some(true) => EXISTED,
        Some(false) => OK,
        None => FAILED,
    };
    vec![Datagram::Bytes(vec![b])]
}

/// A string, or `None` on failure.
pub fn text(r: Option<&str>) -> Vec<Datagram> {
    match r {
        Some(s) => {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            vec![Datagram::Bytes(b)]
        }
        None => vec![Datagram::Bytes(Vec::new())],
    }
}

fn counted(n: usize, body: Vec<u8>) -> Vec<Datagram> {
    let n = wire_count(n);
    let mut out = vec![count(n)];
    if n > 0 {
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        out.push(Datagram::Bytes(len.to_ne_bytes().to_vec()));
        out.push(Datagram::Bytes(body));
    }
    out
}

/// Names (ListChildren), each NUL-terminated in the body; `None` on failure.
pub fn names(r: Option<&[String]>) -> Vec<Datagram> {
    let Some(names) = r else {
        return vec![count(-1)];
    };
    let mut body = Vec::new();
    for n in names {
        body.extend_from_slice(n.as_bytes());
        body.push(0);
    }
    counted(names.len(), body)
}

/// Keys (ListKeys): `name\nuid\ngid\nmode\n` each in the body; `None` on failure.
pub fn keys(r: Option<&[(String, u32, u32, u32)]>) -> Vec<Datagram> {
    let Some(keys) = r else {
        return vec![count(-1)];
    };
    let mut body = String::new();
    for (name, uid, gid, mode) in keys {
        body.push_str(&format!("{name}\n{uid}\n{gid}\n{mode}\n"));
    }
    counted(keys.len(), body.into_bytes())
}

/// Pids (GetTasks), each sent as credentials; `None` on failure.
pub fn pids(r: Option<&[u32]>) -> Vec<Datagram> {
    let Some(pids) = r else {
        return vec![count(-1)];
    };
    let mut out = vec![count(wire_count(pids.len()))];
    out.extend(pids.iter().map(|&p| Datagram::Pid(p)));
    out
}

/// What the second credentials of a method that names something carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// A process, by a pid of the client's namespace (MovePid, GetPidCgroup).
    Pid(i32),
    /// A uid and gid of the client's namespace (Chown).
    Ids {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
    },
}

/// How long the client waits for each step of the daemon's side.
pub const WAIT: Duration = Duration::from_secs(5);

fn io(e: nix::Error) -> Error {
    Error::Failed(format!("sockfd: {}", e.desc()))
}

/// The client's end of one `*Scm` call.
#[derive(Debug)]
pub struct ScmSocket {
    fd: OwnedFd,
}

impl ScmSocket {
    /// A socketpair: our end (receiving credentials, each read bounded by [`WAIT`]) and the end
    /// to pass to the daemon as `sockfd`.
    pub fn pair() -> Result<(ScmSocket, zbus::Fd<'static>), Error> {
        let (mine, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io)?;
        setsockopt(&mine, sockopt::PassCred, &true).map_err(io)?;
        let secs = i64::try_from(WAIT.as_secs()).unwrap_or(i64::MAX);
        let tv = nix::sys::time::TimeVal::new(secs, 0);
        setsockopt(&mine, sockopt::ReceiveTimeout, &tv).map_err(io)?;
        Ok((ScmSocket { fd: mine }, zbus::Fd::from(theirs)))
    }

    /// The client's half, once the D-Bus call has returned: our credentials, then those of
    /// `named` for methods that name something, then the result. Blocks the calling thread for
    /// at most [`WAIT`] per step.
    pub fn finish<T: FromScm>(&self, named: Option<Named>) -> Result<T, Error> {
        let me = nix::unistd::getpid().as_raw();
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        self.answer_kick(me, uid, gid)?;
        match named {
            Some(Named::Pid(pid)) => self.answer_kick(pid, uid, gid)?,
            Some(Named::Ids { uid, gid }) => self.answer_kick(me, uid, gid)?,
            None => {}
        }
        T::read(self)
    }

    /// Wait for the daemon's kick, then send credentials.
    fn answer_kick(&self, pid: i32, uid: u32, gid: u32) -> Result<(), Error> {
        self.recv()?;
        let cred = UnixCredentials::from(libc::ucred { pid, uid, gid });
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(KICK)],
            &[ControlMessage::ScmCredentials(&cred)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| match e {
            nix::errno::Errno::EPERM => Error::PermissionDenied(format!(
                "the kernel refused to vouch for pid {pid}, uid {uid}, gid {gid} (only root of \
                 your namespaces may name other processes or ids)"
            )),
            nix::errno::Errno::ESRCH => Error::NoSuchProcess(format!("no process {pid}")),
            e => io(e),
        })?;
        Ok(())
    }

    /// The next datagram's bytes.
    pub fn recv(&self) -> Result<Vec<u8>, Error> {
        Ok(self.recv_with_cred()?.0)
    }

    /// The next datagram's bytes and the credentials that came with it.
    fn recv_with_cred(&self) -> Result<(Vec<u8>, Option<UnixCredentials>), Error> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!(UnixCredentials);
        let msg = recvmsg::<()>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| match e {
            nix::errno::Errno::EAGAIN => {
                Error::Timeout("the daemon did not answer on the side channel".into())
            }
            e => io(e),
        })?;
        let n = msg.bytes;
        let mut cred = None;
        for c in msg.cmsgs().map_err(io)? {
            if let ControlMessageOwned::ScmCredentials(u) = c {
                cred = Some(u);
            }
        }
        buf.truncate(n);
        Ok((buf, cred))
    }

    /// An `i32` count datagram; a negative one is the daemon's refusal.
    fn count(&self) -> Result<usize, Error> {
        let head = self.recv()?;
        let n = <[u8; 4]>::try_from(head.as_slice())
            .map(i32::from_ne_bytes)
            .map_err(|_| Error::Failed("malformed count on the side channel".into()))?;
        usize::try_from(n).map_err(|_| refused())
    }

    /// A counted body: its length, then the body.
    fn body(&self) -> Result<Vec<u8>, Error> {
        let len = self.recv()?;
        let len = <[u8; 4]>::try_from(len.as_slice())
            .map(u32::from_ne_bytes)
            .map_err(|_| Error::Failed("malformed length on the side channel".into()))?;
        let body = self.recv()?;
        if u32::try_from(body.len()).ok() != Some(len) {
            return Err(Error::Failed(format!(
                "the side channel announced {len} bytes and sent {}",
                body.len()
            )));
        }
        Ok(body)
    }
}

fn refused() -> Error {
    Error::Failed("the daemon refused the request (run the daemon with --debug for why)".into())
}

fn malformed(what: &str) -> Error {
    Error::Failed(format!("malformed {what} on the side channel"))
}

/// A result type of an `*Scm` method, read the way the daemon encodes it (module docs).
pub trait FromScm: Sized {
    /// Read the result from the client's end.
    fn read(s: &ScmSocket) -> Result<Self, Error>;
}

/// Done (Chown, Chmod, MovePid, SetValue, RemoveOnEmpty, Prune).
impl FromScm for () {
    fn read(s: &ScmSocket) -> Result<(), Error> {
        match s.recv()?.as_slice() {
            [OK] | [EXISTED] => Ok(()),
            _ => Err(refused()),
        }
    }
}

/// Create and Remove's `existed`, as their plain forms answer it: 1 if the cgroup existed, -1
/// if not.
impl FromScm for i32 {
    fn read(s: &ScmSocket) -> Result<i32, Error> {
        match s.recv()?.as_slice() {
            [EXISTED] => Ok(1),
            [OK] => Ok(-1),
            _ => Err(refused()),
        }
    }
}

/// GetValue, GetPidCgroup.
impl FromScm for String {
    fn read(s: &ScmSocket) -> Result<String, Error> {
        let mut b = s.recv()?;
        if b.is_empty() {
            return Err(refused());
        }
        if b.last() == Some(&0) {
            b.pop();
        }
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
}

/// ListChildren.
impl FromScm for Vec<String> {
    fn read(s: &ScmSocket) -> Result<Vec<String>, Error> {
        let n = s.count()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let body = s.body()?;
        let names: Vec<String> = body
            .split(|b| *b == 0)
            .take(n)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        if names.len() != n {
            return Err(malformed("names"));
        }
        Ok(names)
    }
}

/// ListKeys.
impl FromScm for Vec<(String, u32, u32, u32)> {
    fn read(s: &ScmSocket) -> Result<Vec<(String, u32, u32, u32)>, Error> {
        let n = s.count()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let body = s.body()?;
        let body = String::from_utf8_lossy(&body);
        let lines: Vec<&str> = body.lines().collect();
        let num = |l: &str| l.parse::<u32>().map_err(|_| malformed("keys"));
        let keys = lines
            .chunks(4)
            .map(|k| match k {
                [name, uid, gid, mode] => Ok((name.to_string(), num(uid)?, num(gid)?, num(mode)?)),
                _ => Err(malformed("keys")),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if keys.len() != n {
            return Err(malformed("keys"));
        }
        Ok(keys)
    }
}

/// GetTasks, GetTasksRecursive: the pids as the kernel translated them into our pid namespace,
/// sorted, without the ones we cannot see.
impl FromScm for Vec<i32> {
    fn read(s: &ScmSocket) -> Result<Vec<i32>, Error> {
        let n = s.count()?;
        let mut pids = Vec::new();
        for _ in 0..n {
            match s.recv_with_cred()? {
                (_, Some(c)) if c.pid() > 0 => pids.push(c.pid()),
                (_, Some(_)) => {}
                (_, None) => return Err(malformed("pid")),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }
}

/// Make an `*Scm` call: `method` is the proxy call with its arguments, given the `sockfd` to
/// pass; `named` what its second credentials name, for the methods that take them.
pub async fn call<T, M, F>(named: Option<Named>, method: M) -> Result<T, Error>
where
    T: FromScm + Send + 'static,
    M: FnOnce(zbus::Fd<'static>) -> F,
    F: Future<Output = Result<(), Error>>,
{
    let (side, theirs) = ScmSocket::pair()?;
    method(theirs).await?;
    tokio::task::spawn_blocking(move || side.finish(named))
        .await
        .map_err(|e| Error::Failed(format!("side channel: {e}")))?
}

/// The plain call; if the daemon answers that an argument is of a namespace not its own
/// (`ForeignNamespace`: the caller is in a container), the `*Scm` form instead, so that the
/// kernel translates the pid or ids.
pub async fn plain_or_scm<T, P, M, F>(plain: P, named: Option<Named>, scm: M) -> Result<T, Error>
where
    T: FromScm + Send + 'static,
    P: Future<Output = Result<T, Error>>,
    M: FnOnce(zbus::Fd<'static>) -> F,
    F: Future<Output = Result<(), Error>>,
{
    match plain.await {
        Err(Error::ForeignNamespace(_)) => call(named, scm).await,
        r => r,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The daemon's end of a pair made by [`ScmSocket::pair`], sending what the encoders made.
    fn daemon_sends(theirs: &zbus::Fd<'static>, datagrams: &[Datagram]) {
        for d in datagrams {
            let (body, cred) = match d {
                Datagram::Bytes(b) => (b.as_slice(), None),
                Datagram::Pid(p) => (
                    KICK,
                    Some(UnixCredentials::from(libc::ucred {
                        pid: i32::try_from(*p).unwrap(),
                        uid: 0,
                        gid: 0,
                    })),
                ),
            };
            let cmsg: Vec<ControlMessage> =
                cred.iter().map(ControlMessage::ScmCredentials).collect();
            sendmsg::<()>(
                theirs.as_raw_fd(),
                &[IoSlice::new(body)],
                &cmsg,
                MsgFlags::empty(),
                None,
            )
            .unwrap();
        }
    }

    fn round_trip<T: FromScm>(datagrams: &[Datagram]) -> Result<T, Error> {
        let (mine, theirs) = ScmSocket::pair().unwrap();
        daemon_sends(&theirs, datagrams);
        T::read(&mine)
    }

    #[test]
    fn done_and_existed() {
        assert_eq!(round_trip::<()>(&done(true)), Ok(()));
        assert!(round_trip::<()>(&done(false)).is_err());
        assert_eq!(round_trip::<i32>(&existed(Some(true))), Ok(1));
        assert_eq!(round_trip::<i32>(&existed(Some(false))), Ok(-1));
        assert!(round_trip::<i32>(&existed(None)).is_err());
        assert_eq!(done(true), vec![Datagram::Bytes(b"1".to_vec())]);
        assert_eq!(existed(Some(true)), vec![Datagram::Bytes(b"2".to_vec())]);
    }

    #[test]
    fn text_is_nul_terminated_and_empty_on_failure() {
        assert_eq!(
            text(Some("/a/b")),
            vec![Datagram::Bytes(b"/a/b\0".to_vec())]
        );
        assert_eq!(text(None), vec![Datagram::Bytes(Vec::new())]);
        assert_eq!(round_trip::<String>(&text(Some("512"))), Ok("512".into()));
        assert_eq!(round_trip::<String>(&text(Some(""))), Ok(String::new()));
        assert!(round_trip::<String>(&text(None)).is_err());
    }

    #[test]
    fn lists_are_counted() {
        let n = vec!["a".to_string(), "b c".to_string()];
        let d = names(Some(&n));
        assert_eq!(d[0], Datagram::Bytes(2i32.to_ne_bytes().to_vec()));
        assert_eq!(d[1], Datagram::Bytes(6u32.to_ne_bytes().to_vec()));
        assert_eq!(d[2], Datagram::Bytes(b"a\0b c\0".to_vec()));
        assert_eq!(round_trip::<Vec<String>>(&d), Ok(n));
        assert_eq!(
            names(Some(&[])),
            vec![Datagram::Bytes(0i32.to_ne_bytes().to_vec())]
        );
        assert_eq!(round_trip::<Vec<String>>(&names(Some(&[]))), Ok(vec![]));
        assert!(round_trip::<Vec<String>>(&names(None)).is_err());

        let k = vec![
            ("memory.max".to_string(), 0, 0, 33188),
            ("tasks".into(), 1000, 1000, 33188),
        ];
        let d = keys(Some(&k));
        assert_eq!(
            d[2],
            Datagram::Bytes(b"memory.max\n0\n0\n33188\ntasks\n1000\n1000\n33188\n".to_vec())
        );
        assert_eq!(round_trip::<Vec<(String, u32, u32, u32)>>(&d), Ok(k));
        assert!(round_trip::<Vec<(String, u32, u32, u32)>>(&keys(None)).is_err());
    }

    #[test]
    fn pids_travel_as_credentials() {
        let me = std::process::id();
        let d = pids(Some(&[me, me]));
        assert_eq!(d[1], Datagram::Pid(me));
        let got = round_trip::<Vec<i32>>(&d).unwrap();
        assert_eq!(got, vec![i32::try_from(me).unwrap()]);
        assert_eq!(round_trip::<Vec<i32>>(&pids(Some(&[]))), Ok(vec![]));
        assert!(round_trip::<Vec<i32>>(&pids(None)).is_err());
    }
}
