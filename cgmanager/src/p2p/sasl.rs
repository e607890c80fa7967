//! The server side of D-Bus's authentication handshake on the daemon's own socket, done here
//! rather than by zbus because zbus's server takes exactly one mechanism: CGManager's clients
//! use ANONYMOUS (libdbus falls back to it), while sd-bus, zbus and godbus start with EXTERNAL.
//! Both are accepted; neither is believed — the daemon takes the caller's identity from the
//! socket (`SO_PEERCRED`, `SO_PEERPIDFD`), so what an EXTERNAL client claims (its uid inside
//! its user namespace, or nothing) is ignored.
//!
//! Every line is read up to its newline and no further (peeked first), so no byte of the first
//! message is consumed here; lines are at most [`MAX_LINE`] bytes and a client gets at most
//! [`MAX_COMMANDS`] commands before it must `BEGIN`.

use nix::sys::socket::MsgFlags;
use tokio::io::Interest;
use tokio::net::UnixStream;

/// Longest handshake line (the spec has no bound; real ones are under 100 bytes).
pub const MAX_LINE: usize = 4096;

/// Most handshake commands a client may send.
pub const MAX_COMMANDS: usize = 32;

/// What the client agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The client asked to pass file descriptors (`NEGOTIATE_UNIX_FD`), which the `*Scm`
    /// methods need.
    pub unix_fds: bool,
    /// The mechanism the client authenticated with (for the log).
    pub mechanism: &'static str,
}

/// A failed handshake.
#[derive(Debug)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "handshake: {}", self.0)
    }
}

fn recv(s: &UnixStream, buf: &mut [u8], flags: MsgFlags) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    Ok(nix::sys::socket::recv(s.as_raw_fd(), buf, flags)?)
}

/// Read exactly `n` bytes, all of which are known to be there (they were peeked).
async fn take(s: &UnixStream, n: usize) -> Result<Vec<u8>, Failed> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        s.readable().await.map_err(|e| Failed(e.to_string()))?;
        match s.try_io(Interest::READABLE, || {
            recv(s, &mut out[got..], MsgFlags::empty())
        }) {
            Ok(0) => return Err(Failed("the client closed the connection".into())),
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Failed(e.to_string())),
        }
    }
    Ok(out)
}

/// The next line (without its `\r\n`), consuming nothing past it.
async fn line(s: &UnixStream) -> Result<String, Failed> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; MAX_LINE + 2];
    loop {
        s.readable().await.map_err(|e| Failed(e.to_string()))?;
        let peeked = s.try_io(Interest::READABLE, || {
            let n = recv(s, &mut buf, MsgFlags::MSG_PEEK)?;
            if n == 0 {
                return Ok(None);
            }
            match buf[..n].iter().position(|b| *b == b'\n') {
                Some(i) => Ok(Some(i + 1)),
                None if n >= buf.len() => Ok(Some(0)),
                // Half a line and gone: no newline will come.
                None if super::stream::hung_up(s.as_raw_fd()) => Ok(None),
                // Not a whole line yet: wait for more (readiness is cleared).
                None => Err(std::io::ErrorKind::WouldBlock.into()),
            }
        });
        match peeked {
            Ok(None) => return Err(Failed("the client closed the connection".into())),
            Ok(Some(0)) => return Err(Failed(format!("a line longer than {MAX_LINE} bytes"))),
            Ok(Some(len)) => {
                let bytes = take(s, len).await?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| Failed("a line that is not UTF-8".into()))?;
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Failed(e.to_string())),
        }
    }
}

async fn send(s: &UnixStream, text: &str) -> Result<(), Failed> {
    let bytes = format!("{text}\r\n");
    let mut sent = 0;
    while sent < bytes.len() {
        s.writable().await.map_err(|e| Failed(e.to_string()))?;
        match s.try_write(&bytes.as_bytes()[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Failed(e.to_string())),
        }
    }
    Ok(())
}

const REJECTED: &str = "REJECTED EXTERNAL ANONYMOUS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Auth,
    Data(&'static str),
    Begin(&'static str),
}

/// Run the handshake on a freshly accepted connection; `guid` is the server's (32 hex digits).
pub async fn handshake(s: &UnixStream, guid: &str) -> Result<Agreed, Failed> {
    if take(s, 1).await?[0] != 0 {
        return Err(Failed("the first byte was not NUL".into()));
    }
    let ok = format!("OK {guid}");
    let mut step = Step::Auth;
    let mut unix_fds = false;
    for _ in 0..MAX_COMMANDS {
        let l = line(s).await?;
        let mut words = l.split_ascii_whitespace();
        let cmd = words.next().unwrap_or("");
        let arg = words.next();
        let more = words.next();
        match (step, cmd) {
            (_, "BEGIN") => match step {
                Step::Begin(mechanism) => {
                    return Ok(Agreed {
                        unix_fds,
                        mechanism,
                    })
                }
                _ => return Err(Failed("BEGIN before authentication".into())),
            },
            (Step::Auth, "AUTH") => match arg {
                Some("EXTERNAL") if more.is_none() => {
                    send(s, "DATA").await?;
                    step = Step::Data("EXTERNAL");
                }
                Some(m @ ("EXTERNAL" | "ANONYMOUS")) => {
                    // EXTERNAL's claimed uid and ANONYMOUS's trace are ignored: the identity
                    // is the socket's.
                    send(s, &ok).await?;
                    step = Step::Begin(if m == "EXTERNAL" {
                        "EXTERNAL"
                    } else {
                        "ANONYMOUS"
                    });
                }
                _ => send(s, REJECTED).await?,
            },
            (Step::Data(m), "DATA") => {
                send(s, &ok).await?;
                step = Step::Begin(m);
            }
            (Step::Begin(_), "NEGOTIATE_UNIX_FD") => {
                unix_fds = true;
                send(s, "AGREE_UNIX_FD").await?;
            }
            (_, "CANCEL" | "ERROR") => {
                send(s, REJECTED).await?;
                step = Step::Auth;
            }
            _ => send(s, "ERROR \"unexpected command\"").await?,
        }
    }
    Err(Failed(format!("no BEGIN after {MAX_COMMANDS} commands")))
}

/// Tell a client that is not served why, as the answer to its first command (a client still
/// writing that would otherwise see a broken pipe instead), then let it go.
pub async fn refuse(s: &UnixStream, why: &str) {
    let first = async {
        take(s, 1).await?;
        line(s).await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), first).await;
    let _ = send(s, &format!("ERROR \"{}\"", why.replace('"', "'"))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    async fn run(client: &[u8]) -> (Result<Agreed, Failed>, String, Vec<u8>) {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.write_all(client).unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        a.set_nonblocking(true).unwrap();
        let a = UnixStream::from_std(a).unwrap();
        let r = handshake(&a, "0123456789abcdef0123456789abcdef").await;
        // What the server left unread, and what it answered.
        let mut rest = vec![0u8; 256];
        let n = recv(&a, &mut rest, MsgFlags::MSG_DONTWAIT).unwrap_or(0);
        rest.truncate(n);
        drop(a);
        let mut answer = String::new();
        let _ = b.read_to_string(&mut answer);
        (r, answer, rest)
    }

    #[tokio::test]
    async fn both_mechanisms_and_fd_passing() {
        let (r, answer, rest) =
            run(b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\nl\x01\x00\x01").await;
        let a = r.unwrap();
        assert!(a.unix_fds && a.mechanism == "EXTERNAL");
        assert!(answer.starts_with("OK 0123") && answer.contains("AGREE_UNIX_FD"));
        // The first message's bytes are still in the socket for the connection.
        assert_eq!(rest, b"l\x01\x00\x01");
        let (r, answer, _) = run(b"\0AUTH\r\nAUTH ANONYMOUS\r\nBEGIN\r\n").await;
        assert_eq!(r.unwrap().mechanism, "ANONYMOUS");
        assert!(answer.starts_with("REJECTED EXTERNAL ANONYMOUS\r\nOK "));
        // sd-bus: EXTERNAL with an empty identity, then DATA.
        let (r, answer, _) = run(b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n").await;
        assert!(r.is_ok() && answer.starts_with("DATA\r\nOK "));
    }

    #[tokio::test]
    async fn bad_clients_fail() {
        for bad in [
            &b"x"[..],
            b"\0BEGIN\r\n",
            b"\0AUTH DBUS_COOKIE_SHA1 x\r\nBEGIN\r\n",
            b"\0AUTH ANONYMOUS\r\n",
        ] {
            assert!(run(bad).await.0.is_err(), "{bad:?}");
        }
        let long = [b"\0AUTH ANONYMOUS ".to_vec(), vec![b'a'; MAX_LINE + 10]].concat();
        assert!(run(&long).await.0.is_err());
        let many = [b"\0".to_vec(), b"AUTH\r\n".repeat(MAX_COMMANDS + 1)].concat();
        assert!(run(&many).await.0.is_err());
    }
}
