//! The user's stdin, stdout and stderr connected to a process in a container, without that
//! process ever holding one of them. A host terminal's descriptor inside a container lets
//! container root type into the user's shell (`TIOCSTI`) or read what the user types next, and
//! any other descriptor of the user's is a door out; so the command gets either
//!
//! * a **pty** from the container's own devpts (LXC's rule: when any of stdin, stdout, stderr
//!   is a terminal, or `-t`), the user's terminal in raw mode and its window size following
//!   `SIGWINCH`; or
//! * three **pipes** (`-T`, or when none is a terminal),
//!
//! and lxr copies between them and its own stdio until the command exits. lxr itself has
//! joined the container's namespaces but not its pid namespace, and is not dumpable, so
//! nothing in the container can reach it. Signals lxr receives (`SIGINT`, `SIGTERM`, `SIGHUP`,
//! `SIGQUIT`, `SIGUSR1`, `SIGUSR2`) are passed on to the command.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// How the command is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A pty from the container's devpts.
    Pty,
    /// Three pipes.
    Pipes,
}

fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty on a descriptor number; a closed one answers false.
    unsafe { libc::isatty(fd) == 1 }
}

/// The mode for `-t` (`force`) / `-T` (`forbid`) and this process's stdio.
pub fn mode(force: bool, forbid: bool) -> Mode {
    if forbid {
        Mode::Pipes
    } else if force || (0..3).any(isatty) {
        Mode::Pty
    } else {
        Mode::Pipes
    }
}

/// Signals passed on to the command.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Both ends of the command's stdio, made before the fork.
pub enum Streams {
    /// The pty's master (lxr's) and the path of its peer (the command's).
    Pty {
        /// lxr's side.
        master: OwnedFd,
        /// The command's side, opened by the command.
        peer: PathBuf,
    },
    /// (read end, write end) of each pipe.
    Pipes {
        /// Into the command.
        stdin: (OwnedFd, OwnedFd),
        /// Out of it.
        stdout: (OwnedFd, OwnedFd),
        /// Out of it.
        stderr: (OwnedFd, OwnedFd),
    },
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())
}

fn dup2(fd: RawFd, to: RawFd) -> Result<()> {
    // SAFETY: dup2 onto one of this process's standard descriptors.
    if unsafe { libc::dup2(fd, to) } < 0 {
        return Err(Error::Os {
            what: format!("dup2 onto {to}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor lxr made itself (never one of the user's: that
    // would change the user's terminal for every program sharing it).
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

impl Streams {
    /// Make them; a pty comes from the devpts at `<root>/dev/pts` (the container's, once lxr
    /// has joined its mount namespace).
    pub fn new(mode: Mode, root: &Path) -> Result<Streams> {
        Ok(match mode {
            Mode::Pty => {
                let (master, peer) = crate::launch::console::open_pty(root)?;
                Streams::Pty { master, peer }
            }
            Mode::Pipes => Streams::Pipes {
                stdin: pipe()?,
                stdout: pipe()?,
                stderr: pipe()?,
            },
        })
    }

    /// In the forked command, before its exec: its side becomes stdin, stdout and stderr
    /// (every other descriptor is closed by the exec, see [`crate::launch::before_exec`]).
    pub fn into_child(self) -> Result<()> {
        // SAFETY: an empty set, then unblock everything: lxr blocked the signals it relays,
        // and a blocked mask survives exec.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        }
        match self {
            Streams::Pty { master, peer } => {
                drop(master);
                nix::unistd::setsid().ctx(|| "setsid".into())?;
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&peer)
                    .ctx(|| format!("open {}", peer.display()))?;
                // SAFETY: TIOCSCTTY takes an int (0: do not steal).
                if unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
                    return Err(Error::Os {
                        what: "set the controlling terminal".into(),
                        source: std::io::Error::last_os_error(),
                    });
                }
                for t in 0..3 {
                    dup2(f.as_raw_fd(), t)?;
                }
            }
            Streams::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                // Its own process group: a Ctrl-C on the user's terminal reaches lxr, which
                // passes it on once (instead of the terminal signalling both).
                let _ = nix::unistd::setpgid(
                    nix::unistd::Pid::from_raw(0),
                    nix::unistd::Pid::from_raw(0),
                );
                dup2(stdin.0.as_raw_fd(), 0)?;
                dup2(stdout.1.as_raw_fd(), 1)?;
                dup2(stderr.1.as_raw_fd(), 2)?;
            }
        }
        Ok(())
    }

    /// In lxr: copy between the user's stdio and the command until the command (`child`, a
    /// pidfd) exits, then what it left in the pipe or pty.
    pub fn relay(self, child: &cgroups::process::Pidfd) -> Result<()> {
        let signals = Signals::block(matches!(self, Streams::Pty { .. }))?;
        match self {
            Streams::Pty { master, .. } => {
                let raw = crate::term::raw()?;
                if raw.is_none() {
                    plain(&master);
                }
                let m = master.as_raw_fd();
                resize(m);
                nonblocking(m);
                let mut flows = vec![
                    Flow::new(0, m, true, OnEof::SendEof),
                    Flow::new(m, 1, false, OnEof::Nothing),
                ];
                run(&mut flows, child, &signals, Some(m))?;
                drop(master);
            }
            Streams::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                // The command's ends are the command's: without them here, its exit is seen.
                let (child_in, w_in) = stdin;
                let (r_out, child_out) = stdout;
                let (r_err, child_err) = stderr;
                drop((child_in, child_out, child_err));
                for fd in [w_in.as_raw_fd(), r_out.as_raw_fd(), r_err.as_raw_fd()] {
                    nonblocking(fd);
                }
                let mut input = Flow::new(0, w_in.as_raw_fd(), true, OnEof::Close);
                input.owned = Some(w_in);
                let mut flows = vec![
                    input,
                    Flow::new(r_out.as_raw_fd(), 1, false, OnEof::Nothing),
                    Flow::new(r_err.as_raw_fd(), 2, false, OnEof::Nothing),
                ];
                run(&mut flows, child, &signals, None)?;
            }
        }
        Ok(())
    }
}

/// When the user's stdin is not a terminal (`cmd < file | less`, or stdout a terminal but
/// stdin a pipe), lxr leaves the user's terminal as it is: it already turns `\n` into `\r\n`
/// on output, and nobody types, so the pty neither translates nor echoes (no doubled `\r`, no
/// piped input repeated in the output).
fn plain(master: &OwnedFd) {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, OutputFlags, SetArg};
    if let Ok(mut t) = tcgetattr(master) {
        t.output_flags.remove(OutputFlags::ONLCR);
        t.local_flags
            .remove(LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ECHOK | LocalFlags::ECHONL);
        let _ = tcsetattr(master, SetArg::TCSANOW, &t);
    }
}

/// Copy the user's window size (from whichever stdio is a terminal) onto the pty.
fn resize(master: RawFd) {
    for fd in 0..3 {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it, TIOCSWINSZ reads it.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(master, libc::TIOCSWINSZ, &ws);
                return;
            }
        }
    }
}

/// What a flow does when its source ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnEof {
    /// Close the destination (the command's stdin pipe: it sees end of file).
    Close,
    /// Type end-of-file into the pty (canonical mode: one at a line's start, two after a
    /// partial line), unless the user is on a terminal (who types it themselves).
    SendEof,
    /// Nothing.
    Nothing,
}

/// One direction: bytes from `from` to `to`. The container's side is non-blocking (lxr must
/// never wait on the command while the command waits on lxr); the user's side is written
/// blocking (lxr waits for a slow reader of its output, as `cat` would).
struct Flow {
    from: RawFd,
    to: RawFd,
    to_container: bool,
    buf: Vec<u8>,
    open: bool,
    on_eof: OnEof,
    last: u8,
    /// The destination, when closing it is how its end is told ([`OnEof::Close`]).
    owned: Option<OwnedFd>,
}

impl Flow {
    fn new(from: RawFd, to: RawFd, to_container: bool, on_eof: OnEof) -> Flow {
        Flow {
            from,
            to,
            to_container,
            buf: Vec::new(),
            open: to >= 0,
            on_eof,
            last: b'\n',
            owned: None,
        }
    }

    /// Read what is there (once); false at end of file.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        // SAFETY: read into a buffer we own, of its length.
        let n = unsafe { libc::read(self.from, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n > 0 {
            let n = n as usize;
            self.last = chunk[n - 1];
            self.buf.extend_from_slice(&chunk[..n]);
            return true;
        }
        let e = std::io::Error::last_os_error().raw_os_error();
        n < 0 && matches!(e, Some(libc::EAGAIN) | Some(libc::EINTR))
    }

    /// Write what is buffered (all of it towards the user; what fits towards the container).
    fn flush(&mut self) {
        while !self.buf.is_empty() {
            // SAFETY: write from a buffer we own, of its length.
            let n = unsafe { libc::write(self.to, self.buf.as_ptr().cast(), self.buf.len()) };
            if n > 0 {
                self.buf.drain(..n as usize);
                continue;
            }
            let e = std::io::Error::last_os_error().raw_os_error();
            match e {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) if self.to_container => return,
                // The reader went away (EPIPE, EIO): drop what it would not take.
                _ => {
                    self.buf.clear();
                    if self.to_container {
                        self.open = false;
                    }
                    return;
                }
            }
        }
    }

    fn eof(&mut self, terminal_in: bool) {
        self.open = false;
        if self.on_eof == OnEof::Close {
            self.buf.clear();
            self.owned = None;
        }
        if self.on_eof == OnEof::SendEof && !terminal_in {
            let eof = if self.last == b'\n' {
                &b"\x04"[..]
            } else {
                b"\x04\x04"
            };
            self.buf.extend_from_slice(eof);
            self.flush();
        }
    }
}

/// The relay loop.
fn run(
    flows: &mut [Flow],
    child: &cgroups::process::Pidfd,
    signals: &Signals,
    pty: Option<RawFd>,
) -> Result<()> {
    use std::os::fd::AsFd;
    let child_fd = child.as_fd().as_raw_fd();
    let terminal_in = isatty(0);
    loop {
        let mut fds = vec![
            pollfd(child_fd, libc::POLLIN),
            pollfd(signals.fd.as_raw_fd(), libc::POLLIN),
        ];
        let mut slots = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            if !f.buf.is_empty() && f.to_container {
                slots.push((i, true));
                fds.push(pollfd(f.to, libc::POLLOUT));
            } else if f.open && f.buf.is_empty() {
                slots.push((i, false));
                fds.push(pollfd(f.from, libc::POLLIN));
            }
        }
        // SAFETY: a vector of valid pollfds for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Os {
                what: "poll".into(),
                source: e,
            });
        }
        if fds[1].revents != 0 {
            for sig in signals.read() {
                if sig == libc::SIGWINCH {
                    if let Some(m) = pty {
                        resize(m);
                    }
                } else {
                    let _ = child.send_signal(sig);
                }
            }
        }
        for (k, (i, out)) in slots.iter().enumerate() {
            let ev = fds[k + 2].revents;
            if ev == 0 {
                continue;
            }
            let f = &mut flows[*i];
            // Room towards the container, or something to read (end of file when nothing).
            if *out || f.fill() {
                f.flush();
            } else {
                f.eof(terminal_in);
            }
        }
        if fds[0].revents != 0 {
            // The command ended: what it wrote is in the pipes or the pty; take it.
            for f in flows.iter_mut().filter(|f| !f.to_container && f.open) {
                while f.fill() && !f.buf.is_empty() {
                    f.flush();
                }
                f.flush();
            }
            return Ok(());
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// The relayed signals, blocked and read from a signalfd while the relay runs; unblocked again
/// when dropped.
struct Signals {
    fd: OwnedFd,
    old: libc::sigset_t,
}

impl Signals {
    fn block(winch: bool) -> Result<Signals> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset/sigaddset; sigprocmask and
        // signalfd read it; the descriptor is checked.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, s);
            }
            if winch {
                libc::sigaddset(&mut set, libc::SIGWINCH);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(Error::Os {
                    what: "signalfd".into(),
                    source: e,
                });
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
                old,
            })
        }
    }

    /// The signals that arrived.
    fn read(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading into the struct we own, of its size.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut si as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n as usize != size {
                return out;
            }
            out.push(si.ssi_signo as libc::c_int);
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved in `block`.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
