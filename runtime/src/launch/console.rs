//! The container's console: a pty from the container's own devpts (so it belongs to the
//! container's root — LXC's gotcha of an unmapped host pty does not arise), its peer bound on
//! `/dev/console`, the master handed to the monitor over a socketpair, which logs what the
//! container writes to `console.log` and lets `lxr console` attach through a unix socket.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};

/// Open a new pty in the devpts mounted at `<root>/dev/pts`; returns the master and the
/// peer's path.
pub fn open_pty(root: &Path) -> Result<(OwnedFd, PathBuf)> {
    let ptmx = root.join("dev/pts/ptmx");
    let master = open(
        &ptmx,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", ptmx.display()))?;
    let unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCSPTLCK reads an int, TIOCGPTN writes an unsigned int; both pointers are
    // valid for the call.
    let ok = unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) == 0
            && libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) == 0
    };
    if !ok {
        return Err(Error::Os {
            what: "unlock the console pty".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok((master, root.join("dev/pts").join(n.to_string())))
}

/// Make `/dev/console` the controlling terminal and stdio of this process (the container's
/// init, after pivot_root).
pub fn take_console() -> Result<()> {
    let fd =
        open("/dev/console", OFlag::O_RDWR, Mode::empty()).ctx(|| "open /dev/console".into())?;
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::Os {
            what: "make /dev/console the controlling terminal".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this process.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(Error::Os {
                what: "dup2 console".into(),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Send an fd over a unix socket.
pub fn send_fd(sock: &OwnedFd, fd: RawFd) -> Result<()> {
    let fds = [fd];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(b"c")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "send the console to the monitor".into())?;
    Ok(())
}

/// Receive an fd sent with [`send_fd`] (`None` if the sender closed first).
pub fn recv_fd(sock: &OwnedFd) -> Result<Option<OwnedFd>> {
    let mut b = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut b)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive the console".into())?;
    for c in msg.cmsgs().ctx(|| "console message".into())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Ok(None)
}

/// Serve the console from the monitor: everything the container writes goes to `log` and to
/// the attached client, if any; a client of the unix socket `sock` (one at a time; a new one
/// replaces the old) types into it. Runs in threads until the pty closes.
pub fn serve(master: OwnedFd, log: PathBuf, sock: PathBuf) {
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::{Arc, Mutex};
    let client: Arc<Mutex<Option<UnixStream>>> = Arc::new(Mutex::new(None));
    let master = std::fs::File::from(master);
    let Ok(input) = master.try_clone() else {
        return;
    };
    let _ = std::fs::remove_file(&sock);
    if let Ok(listener) = UnixListener::bind(&sock) {
        let client = client.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let Ok(reader) = conn.try_clone() else {
                    continue;
                };
                if let Ok(mut c) = client.lock() {
                    *c = Some(conn);
                }
                let Ok(mut to_pty) = input.try_clone() else {
                    continue;
                };
                std::thread::spawn(move || {
                    let mut r = reader;
                    let _ = std::io::copy(&mut r, &mut to_pty);
                });
            }
        });
    }
    std::thread::spawn(move || {
        let Ok(mut out) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        else {
            return;
        };
        let mut m = master;
        let mut buf = [0u8; 4096];
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = out.write_all(&buf[..n]);
            if let Ok(mut c) = client.lock() {
                if let Some(s) = c.as_mut() {
                    if s.write_all(&buf[..n]).is_err() {
                        *c = None;
                    }
                }
            }
        }
    });
}
