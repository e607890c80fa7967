//! The crate's two error types: [`FsError`], every failure of the FUSE-independent core, with
//! the errno the FUSE adapter answers with plus a message for the log; and [`StartError`],
//! why the daemon (or the supervisor) could not start or stop, for the user.

use std::fmt;

/// A failure of a filesystem operation, with the errno the kernel will see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError {
    /// Positive errno (`libc::ENOENT`, …).
    pub errno: i32,
    /// What went wrong, for the daemon's log.
    pub msg: String,
}

impl FsError {
    /// An error with the given errno and message.
    pub fn new(errno: i32, msg: impl Into<String>) -> Self {
        Self {
            errno,
            msg: msg.into(),
        }
    }

    /// `ENOENT`.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(libc::ENOENT, format!("{what}: no such file or directory"))
    }

    /// Map an I/O error to an `FsError`, keeping its errno (EIO if it has none).
    pub fn io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        Self::new(
            err.raw_os_error().unwrap_or(libc::EIO),
            format!("{context}: {err}"),
        )
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.msg, self.errno)
    }
}

impl std::error::Error for FsError {}

impl From<cgroups::Error> for FsError {
    fn from(e: cgroups::Error) -> Self {
        Self::new(e.errno(), e.to_string())
    }
}

/// Result of a core operation.
pub type FsResult<T> = Result<T, FsError>;

/// A failure to start (or to stop cleanly), with the message for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

impl StartError {
    /// A start error saying `msg`.
    pub fn new(msg: impl Into<String>) -> StartError {
        StartError(msg.into())
    }
}
