//! A client connection's socket as zbus reads it, with the daemon's bounds on what a message may
//! cost. zbus allocates a message's whole declared length (up to the protocol's 128 MiB) as
//! soon as it has read the 16-byte primary header, and waits for the body to arrive: a client
//! that declares a big body and stops is memory the daemon holds for nothing. Here, at every
//! message boundary, the next message is only *peeked* at until
//!
//! * its primary header is there — a declared length over [`MAX_MESSAGE`] ends the connection
//!   before anything is allocated — and then
//! * all of it is queued in the kernel (`SIOCINQ`), within [`MESSAGE_TIMEOUT`] of its first
//!   byte,
//!
//! and only then is zbus given its bytes. A stalled client so costs its socket's kernel buffer,
//! not the daemon's memory. File descriptors (for the `*Scm` methods) travel with `SCM_RIGHTS`,
//! a few per message at most. [`Activity`] records whether a whole message ever arrived, for
//! the idle timeout of connections that never make a call.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;
use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};
use zbus::export::async_trait::async_trait;

/// Largest message a client may send: CGManager's methods take a few names and paths and at
/// most one value (SetValue's, at most 64 KiB).
pub const MAX_MESSAGE: usize = 80 << 10;

/// A message whose first byte has arrived must be complete within this.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most file descriptors taken with one read (the `*Scm` methods pass one).
const MAX_FDS: usize = 4;

/// The primary header's length.
const HEADER: usize = 16;

/// How much of an oversized message is read (and dropped) so that its sender gets to read the
/// refusal; a bigger one just ends the connection.
const DRAIN: u64 = 1 << 20;

/// The error a client gets for a message over [`MAX_MESSAGE`].
const LIMIT_EXCEEDED: &str = "org.linuxcontainers.cgmanager.Error.LimitExceeded";

/// Whether a connection has delivered a whole message yet.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<AtomicBool>);

impl Activity {
    /// Has a whole message arrived?
    pub fn seen(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The client's socket, bounded as the module says.
#[derive(Debug)]
pub struct Guarded {
    io: Arc<UnixStream>,
    unix_fds: bool,
    activity: Activity,
}

impl Guarded {
    /// Wrap an accepted, authenticated connection; `unix_fds` if the client negotiated them.
    pub fn new(io: UnixStream, unix_fds: bool) -> (Guarded, Activity) {
        let activity = Activity::default();
        (
            Guarded {
                io: Arc::new(io),
                unix_fds,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl Socket for Guarded {
    type ReadHalf = Reader;
    type WriteHalf = Writer;

    fn split(self) -> Split<Reader, Writer> {
        Split::new(
            Reader {
                io: self.io.clone(),
                unix_fds: self.unix_fds,
                left: 0,
                activity: self.activity,
            },
            Writer {
                io: self.io,
                unix_fds: self.unix_fds,
            },
        )
    }
}

/// A number of the primary header `h` (in its byte order).
fn num(h: &[u8; HEADER], at: usize) -> u32 {
    let a = [h[at], h[at + 1], h[at + 2], h[at + 3]];
    match h[0] {
        b'B' => u32::from_be_bytes(a),
        _ => u32::from_le_bytes(a),
    }
}

/// The length of the message whose primary header is `h`, or why it is refused.
pub fn message_len(h: &[u8; HEADER]) -> Result<usize, String> {
    if h[0] != b'l' && h[0] != b'B' {
        return Err(format!("not a D-Bus message (endianness byte {:#x})", h[0]));
    }
    let body = num(h, 4) as usize;
    let fields = num(h, 12) as usize;
    let total = (HEADER + fields).div_ceil(8) * 8 + body;
    if total > MAX_MESSAGE {
        return Err(format!(
            "a message of {total} bytes declared; at most {MAX_MESSAGE} are taken"
        ));
    }
    Ok(total)
}

/// A D-Bus error reply (little-endian) to the call whose primary header is `h`: the client
/// learns why its connection ends, by the call's own serial.
pub fn error_reply(h: &[u8; HEADER], name: &str, text: &str) -> Vec<u8> {
    fn pad(b: &mut Vec<u8>, to: usize) {
        while !b.len().is_multiple_of(to) {
            b.push(0);
        }
    }
    fn string(b: &mut Vec<u8>, s: &str) {
        pad(b, 4);
        b.extend((s.len() as u32).to_le_bytes());
        b.extend(s.as_bytes());
        b.push(0);
    }
    let mut body = Vec::new();
    string(&mut body, text);
    let mut fields = Vec::new();
    fields.extend([4u8, 1, b's', 0]);
    string(&mut fields, name);
    pad(&mut fields, 8);
    fields.extend([5u8, 1, b'u', 0]);
    fields.extend(num(h, 8).to_le_bytes());
    pad(&mut fields, 8);
    fields.extend([8u8, 1, b'g', 0, 1, b's', 0]);
    let mut m = vec![b'l', 3, 1, 1];
    m.extend((body.len() as u32).to_le_bytes());
    m.extend(1u32.to_le_bytes());
    m.extend((fields.len() as u32).to_le_bytes());
    m.extend(fields);
    pad(&mut m, 8);
    m.extend(body);
    m
}

/// Copy what is queued into `buf`, consuming nothing (`MSG_PEEK`).
fn peek(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    Ok(nix::sys::socket::recv(fd, buf, MsgFlags::MSG_PEEK)?)
}

/// Bytes queued on the socket.
fn queued(fd: RawFd) -> std::io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCINQ writes an int we own.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

/// Has the client shut down its side (so what is queued is all there will be)? Then tokio
/// keeps the socket readable for good, and waiting for more bytes would spin.
pub(crate) fn hung_up(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one pollfd we own, no waiting.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    r > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

fn refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

/// Read what is there into `buf`, with the descriptors that came with it.
async fn recv_with_fds(io: &UnixStream, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let fd = io.as_raw_fd();
    loop {
        io.readable().await?;
        let r = io.try_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(&mut *buf)];
            let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
            let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                .map_err(std::io::Error::from)?;
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(std::io::Error::from)? {
                if let ControlMessageOwned::ScmRights(list) = c {
                    // SAFETY: the kernel just installed these descriptors for us.
                    fds.extend(list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                }
            }
            Ok((msg.bytes, fds))
        });
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// The daemon's connection to a bus, over a socket of its own so that its refusals are logged
/// as on its own socket. The bus (dbus-daemon) bounds and buffers what clients send, so
/// messages are read as they come.
#[derive(Debug)]
pub struct BusSocket {
    io: Arc<UnixStream>,
}

impl BusSocket {
    /// Over a stream connected to the bus.
    pub fn new(io: UnixStream) -> BusSocket {
        BusSocket { io: Arc::new(io) }
    }
}

impl Socket for BusSocket {
    type ReadHalf = BusReader;
    type WriteHalf = Writer;

    fn split(self) -> Split<BusReader, Writer> {
        Split::new(
            BusReader {
                io: self.io.clone(),
            },
            Writer {
                io: self.io,
                unix_fds: true,
            },
        )
    }
}

/// The half zbus reads the bus through.
#[derive(Debug)]
pub struct BusReader {
    io: Arc<UnixStream>,
}

#[async_trait]
impl ReadHalf for BusReader {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        recv_with_fds(&self.io, buf).await
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }
}

/// The half zbus reads through.
#[derive(Debug)]
pub struct Reader {
    io: Arc<UnixStream>,
    unix_fds: bool,
    /// Bytes of the current message not yet handed to zbus (0: at a boundary).
    left: usize,
    activity: Activity,
}

enum Next {
    /// The client is gone.
    Closed,
    /// The next message is this long and all there.
    Ready(usize),
}

impl Reader {
    /// Answer an oversized call with a `LimitExceeded` error to its serial. A client blocked
    /// writing the rest would see only a reset: up to [`DRAIN`] bytes of it are read and
    /// dropped (never kept) first, so it gets to read the answer.
    async fn refuse(&self, h: &[u8; HEADER], why: &str) {
        let reply = error_reply(h, LIMIT_EXCEEDED, why);
        let declared = u64::from(num(h, 4)) + u64::from(num(h, 12)) + HEADER as u64;
        let io = &self.io;
        let answer = async {
            let mut sent = 0;
            while sent < reply.len() {
                io.writable().await?;
                match io.try_write(&reply[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if declared > DRAIN {
                return Ok(());
            }
            let mut left = declared;
            let mut sink = [0u8; 16 << 10];
            while left > 0 {
                io.readable().await?;
                match io.try_read(&mut sink[..left.min(16 << 10) as usize]) {
                    Ok(0) => break,
                    Ok(n) => left -= n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(MESSAGE_TIMEOUT, answer).await;
    }

    /// Wait for a first byte (for as long as the client likes), then for the whole message.
    async fn next_message(&self) -> std::io::Result<Next> {
        let fd = self.io.as_raw_fd();
        loop {
            self.io.readable().await?;
            let r = self.io.try_io(Interest::READABLE, || {
                let mut b = [0u8; 1];
                match peek(fd, &mut b)? {
                    0 => Ok(false),
                    _ => Ok(true),
                }
            });
            match r {
                Ok(false) => return Ok(Next::Closed),
                Ok(true) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        let whole = async {
            loop {
                self.io.readable().await?;
                let r = self.io.try_io(Interest::READABLE, || {
                    let mut h = [0u8; HEADER];
                    let n = peek(fd, &mut h)?;
                    if n == HEADER {
                        match message_len(&h) {
                            Ok(t) if queued(fd)? >= t => return Ok(Ok(t)),
                            Ok(_) => {}
                            Err(why) => return Ok(Err((h, why))),
                        }
                    }
                    if hung_up(fd) {
                        return Err(refused("the client left mid-message".into()));
                    }
                    // Not all there: readiness is cleared, the next bytes wake us.
                    Err(std::io::ErrorKind::WouldBlock.into())
                });
                match r {
                    Ok(Ok(t)) => return Ok(Next::Ready(t)),
                    Ok(Err((h, why))) => {
                        self.refuse(&h, &why).await;
                        return Err(refused(why));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        tokio::time::timeout(MESSAGE_TIMEOUT, whole)
            .await
            .map_err(|_| refused("a message did not arrive whole in time".into()))?
    }
}

#[async_trait]
impl ReadHalf for Reader {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        if self.left == 0 {
            match self.next_message().await? {
                Next::Closed => return Ok((0, Vec::new())),
                Next::Ready(t) => self.left = t,
            }
        }
        let want = buf.len().min(self.left);
        let (n, fds) = recv_with_fds(&self.io, &mut buf[..want]).await?;
        self.left -= n.min(self.left);
        if self.left == 0 && n > 0 {
            self.activity.0.store(true, Ordering::Relaxed);
        }
        Ok((n, fds))
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.unix_fds
    }
}

/// The half zbus writes through.
#[derive(Debug)]
pub struct Writer {
    io: Arc<UnixStream>,
    unix_fds: bool,
}

/// Log an error reply the daemon sends (`-d`): every refusal, whatever the method, leaves
/// through here.
fn log_refusal(msg: &zbus::Message) {
    if msg.message_type() != zbus::message::Type::Error {
        return;
    }
    let hdr = msg.header();
    let name = hdr.error_name().map(|n| n.to_string()).unwrap_or_default();
    let text = msg.body().deserialize::<String>().unwrap_or_default();
    let serial = hdr.reply_serial().map(|s| s.get()).unwrap_or(0);
    tracing::debug!("refused (call #{serial}): {name}: {text}");
}

#[async_trait]
impl WriteHalf for Writer {
    async fn send_message(&mut self, msg: &zbus::Message) -> zbus::Result<()> {
        log_refusal(msg);
        let data = msg.data();
        let fds: Vec<BorrowedFd<'_>> = data.fds().iter().map(|f| f.as_fd()).collect();
        let mut pos = 0;
        while pos < data.len() {
            // Descriptors go with the first byte.
            let with = if pos == 0 { &fds[..] } else { &[][..] };
            pos += self.sendmsg(&data[pos..], with).await?;
        }
        Ok(())
    }

    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<usize> {
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let fd = self.io.as_raw_fd();
        loop {
            self.io.writable().await?;
            let r = self.io.try_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(buffer)];
                let cmsg: Vec<ControlMessage> = if raw.is_empty() {
                    Vec::new()
                } else {
                    vec![ControlMessage::ScmRights(&raw)]
                };
                sendmsg::<()>(fd, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(std::io::Error::from)
            });
            match r {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    async fn close(&mut self) -> std::io::Result<()> {
        Ok(nix::sys::socket::shutdown(
            self.io.as_raw_fd(),
            nix::sys::socket::Shutdown::Both,
        )?)
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.unix_fds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(endian: u8, body: u32, fields: u32) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0] = endian;
        h[1] = 1;
        h[3] = 1;
        let (b, f) = if endian == b'B' {
            (body.to_be_bytes(), fields.to_be_bytes())
        } else {
            (body.to_le_bytes(), fields.to_le_bytes())
        };
        h[4..8].copy_from_slice(&b);
        h[12..16].copy_from_slice(&f);
        h
    }

    #[test]
    fn declared_lengths_are_bounded_before_anything_is_read() {
        assert_eq!(message_len(&header(b'l', 10, 100)), Ok(120 + 10));
        assert_eq!(message_len(&header(b'B', 0, 8)), Ok(24));
        assert!(message_len(&header(b'l', 128 << 20, 8)).is_err());
        assert!(message_len(&header(b'l', u32::MAX, u32::MAX)).is_err());
        assert!(message_len(&header(b'x', 1, 8)).is_err());
    }
}
