//! The user's terminal: raw mode for console and exec sessions, restored on drop.

use nix::sys::termios::{self, SetArg};

use crate::error::{Context, Result};

/// Restores the terminal when dropped.
pub struct Raw(std::io::Stdin, termios::Termios);

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.0, SetArg::TCSANOW, &self.1);
    }
}

/// True if standard input is a terminal.
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}

/// Put standard input in raw mode if it is a terminal.
pub fn raw() -> Result<Option<Raw>> {
    let stdin = std::io::stdin();
    if !stdin_is_tty() {
        return Ok(None);
    }
    let saved = termios::tcgetattr(&stdin).ctx(|| "read terminal settings".into())?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).ctx(|| "raw terminal".into())?;
    Ok(Some(Raw(stdin, saved)))
}

/// Make the terminal `fd` the controlling terminal of this process (a session leader without
/// one), without stealing it from another session.
pub fn set_controlling(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal), no pointer; nix has no safe
    // call for it.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
