//! `lxr console [--force] [--show-log] NAME`: attach to the container's console (the pty its
//! init has on `/dev/console`). On a terminal it goes raw; `Ctrl-a q` detaches. Without a
//! terminal, what is piped in is typed, and output is shown until a second after the input
//! ends. It detaches by itself when the container stops (exit 0, with a line saying so). One
//! console at a time: a second is refused unless `--force`, which detaches the first.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Context, Result};
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Print what the console kept (`console.log`, bounded by `console.log.size`) and exit.
    #[arg(long)]
    show_log: bool,
    /// Take the console over from another `lxr console` attached to it (which is detached).
    #[arg(short, long)]
    force: bool,
}

/// Why the session ended.
enum End {
    /// Ctrl-a q.
    Detached,
    /// Piped input ended (and the answer had its second).
    InputDone,
    /// The monitor closed the connection.
    Closed,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    if a.show_log {
        let _ = std::io::stdout().write_all(&c.console_log(&a.name)?);
        return Ok(0);
    }
    let (sock, init_pid) = c.console(&a.name, a.force)?;
    let tty = crate::term::stdin_is_tty();
    let end = {
        let _raw = crate::term::raw()?;
        if tty && !super::quiet() {
            eprint!("Attached to {}'s console; Ctrl-a q detaches.\r\n", a.name);
        }
        session(&sock, tty)?
    };
    // How the session ended is information, which `-q` drops (as the line above).
    if super::quiet() {
        return Ok(0);
    }
    match end {
        End::Detached => eprintln!("\nDetached."),
        End::InputDone => {}
        End::Closed if c.console_ended(&a.name, init_pid) => {
            eprintln!("\nlxr: {} stopped: detached from its console.", a.name)
        }
        End::Closed => eprintln!("\nlxr: detached from the console of {}.", a.name),
    }
    Ok(0)
}

/// Copy between the user's stdio and the console until one of the [`End`]s.
fn session(sock: &std::os::unix::net::UnixStream, tty: bool) -> Result<End> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    let mut escape = false;
    // When piped input ended: until when the container's answer is still shown.
    let mut input_done: Option<Instant> = None;
    loop {
        let timeout = match input_done {
            None => PollTimeout::NONE,
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(End::InputDone);
                }
                PollTimeout::try_from(left).unwrap_or(PollTimeout::NONE)
            }
        };
        let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if input_done.is_none() {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.ctx(|| "poll".into())?,
        };
        let (sock_ready, stdin_ready) = (
            crate::fds::ready(&fds[0]),
            fds.get(1).is_some_and(crate::fds::ready),
        );
        drop(fds);
        if sock_ready {
            let n = match nix::unistd::read(sock.as_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                r => r.unwrap_or(0),
            };
            if n == 0 {
                return Ok(End::Closed);
            }
            out.write_all(&buf[..n]).ctx(|| "write stdout".into())?;
            out.flush().ctx(|| "write stdout".into())?;
        }
        if stdin_ready {
            let n = match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                r => r.unwrap_or(0),
            };
            if n == 0 {
                // Piped input ended: leave the container a moment to answer.
                input_done = Some(Instant::now() + Duration::from_secs(1));
                continue;
            }
            let mut chunk = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if tty && escape {
                    escape = false;
                    if b == b'q' {
                        return Ok(End::Detached);
                    }
                    chunk.push(0x01);
                }
                if tty && b == 0x01 {
                    escape = true;
                    continue;
                }
                chunk.push(b);
            }
            if (&*sock).write_all(&chunk).is_err() {
                return Ok(End::Closed);
            }
        }
    }
}
