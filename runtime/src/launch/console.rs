//! The container's console: a pty from the container's own devpts (so it belongs to the
//! container's root — LXC's gotcha of an unmapped host pty does not arise), its peer bound on
//! `/dev/console`, the master handed to the monitor over a socketpair, which logs what the
//! container writes to `console.log` and lets `lxr console` attach through a unix socket.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
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
    // valid for the call. (nix's unlockpt/ptsname want a `PtyMaster`, which only its
    // posix_openpt of the host's /dev/ptmx makes safely; this is the container's devpts.)
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
    crate::term::set_controlling(fd.as_fd())
        .ctx(|| "make /dev/console the controlling terminal".into())?;
    crate::fds::onto_stdio(&fd, &fd, &fd).ctx(|| "dup2 console".into())
}

/// A served console. The monitor holds the pty's peer open while the container's init lives:
/// systemd opens and closes `/dev/console` between writes, and with no peer open the master
/// reads EIO — which would end the relay for good. Dropped when the init is gone, which ends
/// the relay.
pub struct Console {
    _peer: OwnedFd,
}

/// The key that bounds `console.log` ([`crate::container::LOG_SIZE_KEY`]).
pub use crate::container::LOG_SIZE_KEY;

/// `console.log.size` when none is set.
pub const DEFAULT_LOG_SIZE: u64 = 4 << 20;

/// The configured bound of the console log (the default if unset or unreadable; the value is
/// checked when it is set).
pub fn log_size(keys: &std::collections::BTreeMap<String, String>) -> u64 {
    keys.get(LOG_SIZE_KEY)
        .and_then(|v| crate::limits::parse_bytes(v).ok())
        .unwrap_or(DEFAULT_LOG_SIZE)
}

/// What the container writes on its console, kept on the host in `console.log` — bounded: a
/// container must not fill the user's disk by printing. When `console.log` reaches half the
/// bound it becomes `console.log.1` (replacing the previous one) and a new one starts, so the
/// two together never hold more than the bound and the newest output is always there.
pub struct Log {
    path: PathBuf,
    limit: u64,
    file: Option<std::fs::File>,
    size: u64,
}

impl Log {
    /// A log at `path` holding at most `limit` bytes (0: keep nothing).
    pub fn new(path: PathBuf, limit: u64) -> Log {
        Log {
            path,
            limit,
            file: None,
            size: 0,
        }
    }

    fn open(&mut self) -> Option<&mut std::fs::File> {
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)
                .ok()?;
            self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(f);
        }
        self.file.as_mut()
    }

    fn rotate(&mut self) {
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let _ = std::fs::rename(&self.path, &old);
        self.size = 0;
    }

    /// Append what the container wrote.
    pub fn write(&mut self, mut data: &[u8]) {
        let half = self.limit / 2;
        if half == 0 {
            return;
        }
        while !data.is_empty() {
            if self.open().is_none() {
                return;
            }
            if self.size >= half {
                self.rotate();
                continue;
            }
            let n = data.len().min((half - self.size) as usize);
            let Some(f) = self.file.as_mut() else { return };
            if f.write_all(&data[..n]).is_err() {
                return;
            }
            self.size += n as u64;
            data = &data[n..];
        }
    }
}

/// What a client sends first: attach if the console is free…
pub const HELLO_ATTACH: u8 = b'a';
/// …or take it over from the client attached (`lxr console --force`).
pub const HELLO_FORCE: u8 = b'f';
/// The answer: attached.
pub const ATTACHED: u8 = b'+';
/// The answer: another client is attached (and no `--force`).
pub const BUSY: u8 = b'-';
/// What a client taken over by `--force` reads last, before its connection is closed.
pub const TAKEN_OVER: &str = "\r\nlxr: another `lxr console --force` took over this console.\r\n";

/// The one attached client, and which connection it is (a reader thread that ends detaches
/// only its own).
struct Attached {
    id: u64,
    conn: std::os::unix::net::UnixStream,
}

type Slot = std::sync::Arc<std::sync::Mutex<Option<Attached>>>;

/// Serve the console from the monitor: everything the container writes goes to `log` and to
/// the attached client, if any. A client of the unix socket `sock` says hello first
/// ([`HELLO_ATTACH`] or [`HELLO_FORCE`]): one client at a time — a second is refused
/// ([`BUSY`]) unless it forces, and then the first is told ([`TAKEN_OVER`]) and closed. When
/// the console ends (the container stopped) the client's connection is closed, so it detaches.
/// Runs in threads until the returned [`Console`] is dropped.
pub fn serve(master: OwnedFd, peer: OwnedFd, mut log: Log, sock: PathBuf) -> Console {
    use std::os::unix::net::UnixListener;
    let client: Slot = Default::default();
    let master = std::fs::File::from(master);
    let console = Console { _peer: peer };
    let Ok(input) = master.try_clone() else {
        return console;
    };
    let _ = std::fs::remove_file(&sock);
    if let Ok(listener) = UnixListener::bind(&sock) {
        let client = client.clone();
        std::thread::spawn(move || {
            for (id, conn) in (1u64..).zip(listener.incoming().flatten()) {
                if let Ok(to_pty) = input.try_clone() {
                    accept(&client, id, conn, to_pty);
                }
            }
        });
    }
    std::thread::spawn(move || {
        let mut m = master;
        let mut buf = [0u8; 4096];
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 {
                break;
            }
            log.write(&buf[..n]);
            if let Ok(mut c) = client.lock() {
                if let Some(a) = c.as_mut() {
                    if a.conn.write_all(&buf[..n]).is_err() {
                        *c = None;
                    }
                }
            }
        }
        // The container's console is gone: the client detaches.
        if let Ok(mut c) = client.lock() {
            if let Some(a) = c.take() {
                let _ = a.conn.shutdown(std::net::Shutdown::Both);
            }
        }
    });
    console
}

/// A new client: its hello, then attached (taking over if it forces) or refused.
fn accept(client: &Slot, id: u64, mut conn: std::os::unix::net::UnixStream, to_pty: std::fs::File) {
    use std::time::Duration;
    // A client that says nothing must not hold the listener up.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut hello = [0u8; 1];
    if conn.read_exact(&mut hello).is_err() {
        return;
    }
    let _ = conn.set_read_timeout(None);
    let Ok(mut slot) = client.lock() else { return };
    if let Some(old) = slot.as_mut() {
        if hello[0] != HELLO_FORCE {
            let _ = conn.write_all(&[BUSY]);
            return;
        }
        // A client that does not read must not block the takeover.
        let _ = old.conn.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = old.conn.write_all(TAKEN_OVER.as_bytes());
        let _ = old.conn.shutdown(std::net::Shutdown::Both);
    } else if hello[0] != HELLO_ATTACH && hello[0] != HELLO_FORCE {
        return;
    }
    let (Ok(reader), true) = (conn.try_clone(), conn.write_all(&[ATTACHED]).is_ok()) else {
        *slot = None;
        return;
    };
    *slot = Some(Attached { id, conn });
    drop(slot);
    let client = client.clone();
    std::thread::spawn(move || {
        let (mut r, mut to_pty) = (reader, to_pty);
        let _ = std::io::copy(&mut r, &mut to_pty);
        // This client left (or was closed): the console is free again, unless another
        // client has it already.
        if let Ok(mut c) = client.lock() {
            if c.as_ref().is_some_and(|a| a.id == id) {
                *c = None;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_never_holds_more_than_its_bound() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        let mut log = Log::new(p.clone(), 1000);
        for i in 0..100u32 {
            log.write(format!("line {i:04} of output\n").as_bytes());
        }
        let cur = std::fs::read_to_string(&p).unwrap();
        let old = std::fs::read_to_string(d.path().join("console.log.1")).unwrap();
        assert!(
            cur.len() + old.len() <= 1000,
            "{} + {}",
            cur.len(),
            old.len()
        );
        assert!(cur.ends_with("line 0099 of output\n"), "{cur}");
        // One write larger than the bound keeps its tail.
        let mut log = Log::new(p.clone(), 100);
        log.write(&[b'x'; 1000]);
        assert!(std::fs::metadata(&p).unwrap().len() <= 50);
        // 0 keeps nothing.
        let q = d.path().join("none.log");
        Log::new(q.clone(), 0).write(b"abc");
        assert!(!q.exists());
    }
}
