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
//! and lxr copies between them and its own stdio until the command exits. The stdio is made in
//! the container by the helper that forks the command ([`make`]), which never held anything of
//! the user's; lxr gets its [`Ends`] over the channel and stays on the host. Signals lxr
//! receives (`SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT`, `SIGUSR1`, `SIGUSR2`) are passed on to
//! the command.

use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Context, Error, Result};

/// How the command is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A pty from the container's devpts.
    Pty,
    /// Three pipes.
    Pipes,
}

/// The mode for `-t` (`force`) / `-T` (`forbid`) and this process's stdio.
pub fn mode(force: bool, forbid: bool) -> Mode {
    let any_terminal = || {
        std::io::stdin().is_terminal()
            || std::io::stdout().is_terminal()
            || std::io::stderr().is_terminal()
    };
    if forbid {
        Mode::Pipes
    } else if force || any_terminal() {
        Mode::Pty
    } else {
        Mode::Pipes
    }
}

/// Signals passed on to the command.
const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The command's stdio, made in the container (a pty from its devpts, or pipes) by the helper
/// that forks the command: [`Ends`] go to lxr over the channel, [`CommandEnds`] to the command.
pub fn make(mode: Mode, root: &Path) -> Result<(Ends, CommandEnds)> {
    Ok(match mode {
        Mode::Pty => {
            let (master, peer) = crate::launch::console::open_pty(root)?;
            (Ends::Pty { master }, CommandEnds::Pty { peer })
        }
        Mode::Pipes => {
            let (stdin, stdout, stderr) = (pipe()?, pipe()?, pipe()?);
            (
                Ends::Pipes {
                    stdin: stdin.1,
                    stdout: stdout.0,
                    stderr: stderr.0,
                },
                CommandEnds::Pipes {
                    stdin: stdin.0,
                    stdout: stdout.1,
                    stderr: stderr.1,
                },
            )
        }
    })
}

/// lxr's ends of the command's stdio.
pub enum Ends {
    /// The pty's master.
    Pty {
        /// Its descriptor.
        master: OwnedFd,
    },
    /// The pipes' other ends.
    Pipes {
        /// Write end of the command's stdin.
        stdin: OwnedFd,
        /// Read end of its stdout.
        stdout: OwnedFd,
        /// Read end of its stderr.
        stderr: OwnedFd,
    },
}

/// The command's ends.
pub enum CommandEnds {
    /// The path of the pty's peer (opened by the command, which makes it its terminal).
    Pty {
        /// In the container's devpts.
        peer: PathBuf,
    },
    /// The pipes' command ends.
    Pipes {
        /// Read end of its stdin.
        stdin: OwnedFd,
        /// Write end of its stdout.
        stdout: OwnedFd,
        /// Write end of its stderr.
        stderr: OwnedFd,
    },
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())
}

/// Only ever on a descriptor lxr made itself, never one of the user's: that would change the
/// user's terminal for every program sharing it.
fn nonblocking(fd: BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(fl) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_retain(fl) | OFlag::O_NONBLOCK),
        );
    }
}

impl CommandEnds {
    /// In the forked command, before its exec: its ends become stdin, stdout and stderr
    /// (every other descriptor is closed by the exec, see [`crate::launch::before_exec`]).
    pub fn into_stdio(self) -> Result<()> {
        // Unblock everything: a blocked mask survives exec.
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
        match self {
            CommandEnds::Pty { peer } => {
                nix::unistd::setsid().ctx(|| "setsid".into())?;
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&peer)
                    .ctx(|| format!("open {}", peer.display()))?;
                crate::term::set_controlling(f.as_fd())
                    .ctx(|| "set the controlling terminal".into())?;
                crate::fds::onto_stdio(&f, &f, &f).ctx(|| "dup2 onto stdio".into())?;
            }
            CommandEnds::Pipes {
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
                crate::fds::onto_stdio(&stdin, &stdout, &stderr)
                    .ctx(|| "dup2 onto stdio".into())?;
            }
        }
        Ok(())
    }
}

impl Ends {
    /// The descriptors, to send them (a pty's master, or stdin, stdout, stderr).
    pub fn fds(&self) -> Vec<std::os::fd::RawFd> {
        match self {
            Ends::Pty { master } => vec![master.as_raw_fd()],
            Ends::Pipes {
                stdin,
                stdout,
                stderr,
            } => vec![stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
        }
    }

    /// The ends again from received descriptors ([`Ends::fds`]'s order).
    pub fn from_fds(mode: Mode, fds: Vec<OwnedFd>) -> Result<Ends> {
        let mut it = fds.into_iter();
        let bad = || Error::Setup("the command's stdio did not arrive".into());
        Ok(match mode {
            Mode::Pty => Ends::Pty {
                master: it.next().ok_or_else(bad)?,
            },
            Mode::Pipes => Ends::Pipes {
                stdin: it.next().ok_or_else(bad)?,
                stdout: it.next().ok_or_else(bad)?,
                stderr: it.next().ok_or_else(bad)?,
            },
        })
    }

    /// In lxr: copy between the user's stdio and the command until the command (`child`, a
    /// pidfd) exits, then what it left in the pipe or pty. Signals lxr gets are passed on,
    /// those that arrived since `signals` were blocked first.
    pub fn relay(self, child: &cgroups::process::Pidfd, signals: &Signals) -> Result<()> {
        let user = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        let (user_in, user_out, user_err) = (user.0.as_fd(), user.1.as_fd(), user.2.as_fd());
        match self {
            Ends::Pty { master } => {
                let raw = crate::term::raw()?;
                if raw.is_none() {
                    plain(&master);
                }
                let m = master.as_fd();
                resize(m);
                nonblocking(m);
                let mut flows = vec![
                    Flow::new(user_in, To::Fd(m), true, OnEof::SendEof),
                    Flow::new(m, To::Fd(user_out), false, OnEof::Nothing),
                ];
                run(&mut flows, child, signals, Some(m))?;
                drop(flows);
                drop(master);
            }
            Ends::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                for fd in [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()] {
                    nonblocking(fd);
                }
                let mut flows = vec![
                    Flow::new(user_in, To::Pipe(stdin), true, OnEof::Close),
                    Flow::new(stdout.as_fd(), To::Fd(user_out), false, OnEof::Nothing),
                    Flow::new(stderr.as_fd(), To::Fd(user_err), false, OnEof::Nothing),
                ];
                run(&mut flows, child, signals, None)?;
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
fn resize(master: BorrowedFd<'_>) {
    for fd in 0..3 {
        // SAFETY: winsize is plain data; TIOCGWINSZ fills it, TIOCSWINSZ reads it (nix has no
        // safe call for either).
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
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

/// Where a flow writes.
enum To<'a> {
    /// A descriptor that outlives the relay (the user's stdout/stderr, the pty's master).
    Fd(BorrowedFd<'a>),
    /// The command's stdin pipe: closing it is how its end is told ([`OnEof::Close`]).
    Pipe(OwnedFd),
    /// The pipe, closed.
    Closed,
}

impl To<'_> {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            To::Fd(fd) => Some(*fd),
            To::Pipe(fd) => Some(fd.as_fd()),
            To::Closed => None,
        }
    }
}

/// One direction: bytes from `from` to `to`. The container's side is non-blocking (lxr must
/// never wait on the command while the command waits on lxr); the user's side is written
/// blocking (lxr waits for a slow reader of its output, as `cat` would).
struct Flow<'a> {
    from: BorrowedFd<'a>,
    to: To<'a>,
    to_container: bool,
    buf: Vec<u8>,
    open: bool,
    on_eof: OnEof,
    last: u8,
}

impl<'a> Flow<'a> {
    fn new(from: BorrowedFd<'a>, to: To<'a>, to_container: bool, on_eof: OnEof) -> Flow<'a> {
        Flow {
            from,
            to,
            to_container,
            buf: Vec::new(),
            open: true,
            on_eof,
            last: b'\n',
        }
    }

    /// Read what is there (once); false at end of file.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match nix::unistd::read(self.from, &mut chunk) {
            Ok(n) if n > 0 => {
                self.last = chunk[n - 1];
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => false,
            Err(e) => matches!(e, Errno::EAGAIN | Errno::EINTR),
        }
    }

    /// Write what is buffered (all of it towards the user; what fits towards the container).
    fn flush(&mut self) {
        while !self.buf.is_empty() {
            let written = match self.to.fd() {
                Some(to) => nix::unistd::write(to, &self.buf),
                None => Err(Errno::EBADF),
            };
            match written {
                Ok(n) if n > 0 => {
                    self.buf.drain(..n);
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) if self.to_container => return,
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
            self.to = To::Closed;
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
    flows: &mut [Flow<'_>],
    child: &cgroups::process::Pidfd,
    signals: &Signals,
    pty: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let terminal_in = crate::term::stdin_is_tty();
    loop {
        let mut slots = Vec::new();
        let ready: Vec<bool> = {
            let mut fds = vec![
                PollFd::new(child.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
            ];
            for (i, f) in flows.iter().enumerate() {
                if !f.buf.is_empty() && f.to_container {
                    if let Some(to) = f.to.fd() {
                        slots.push((i, true));
                        fds.push(PollFd::new(to, PollFlags::POLLOUT));
                    }
                } else if f.open && f.buf.is_empty() {
                    slots.push((i, false));
                    fds.push(PollFd::new(f.from, PollFlags::POLLIN));
                }
            }
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds.iter().map(crate::fds::ready).collect(),
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Os {
                        what: "poll".into(),
                        source: e.into(),
                    })
                }
            }
        };
        if ready[1] {
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
            if !ready[k + 2] {
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
        if ready[0] {
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

/// The signals lxr passes on, blocked and waiting in a signalfd. lxr blocks them before it
/// forks the helper: one that arrives while the command is being set up (a Ctrl-C, a
/// `kill`) waits for the relay and reaches the command, instead of killing lxr and leaving
/// the command running without it. Unblocked when dropped.
pub struct Signals {
    fd: SignalFd,
    old: SigSet,
}

impl Signals {
    /// Blocks the forwarded signals, and `SIGWINCH` for a pty.
    pub fn block(mode: Mode) -> Result<Signals> {
        let winch = mode == Mode::Pty;
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        if winch {
            set.add(Signal::SIGWINCH);
        }
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .ctx(|| "block the relayed signals".into())?;
        match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
            Ok(fd) => Ok(Signals { fd, old }),
            Err(e) => {
                let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                Err(Error::Os {
                    what: "signalfd".into(),
                    source: e.into(),
                })
            }
        }
    }

    /// In a process forked after [`Signals::block`]: the mask lxr had before.
    pub fn restore_in_child(&self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }

    /// The signals that arrived.
    fn read(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        while let Ok(Some(si)) = self.fd.read_signal() {
            out.push(si.ssi_signo as libc::c_int);
        }
        out
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // The mask saved in `block`.
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}
