//! Errors of the cgroup model. Every error names the file it came from and maps to an errno, so
//! a FUSE daemon can answer with it and a CLI can print it.

use std::path::PathBuf;

/// A failure to read or understand a cgroup or procfs file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read (missing, permission, process gone, …).
    #[error("read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A change to the hierarchy failed (mkdir, rmdir, write, chown, chmod).
    #[error("{op} {}: {source}", path.display())]
    Change {
        /// What was attempted.
        op: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file was read but its content is not what the kernel writes there.
    #[error("parse {}: {msg}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
    /// The host has no hierarchy carrying the controller.
    #[error("no cgroup hierarchy for controller {0}")]
    NoController(String),
    /// A cgroup path that escapes its hierarchy (`..`, outside the mount's root).
    #[error("cgroup path {0:?} is outside the hierarchy")]
    OutsideHierarchy(String),
    /// A symlink or another mount is in the way of a path opened beneath its hierarchy's
    /// mount ([`crate::beneath`]); it is not followed.
    #[error("{}: a symlink or another mount is in the way; refusing to follow it", path.display())]
    Escape {
        /// What was to be opened.
        path: PathBuf,
    },
}

impl Error {
    /// The errno a filesystem should answer with for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } | Error::Change { source, .. } => {
                source.raw_os_error().unwrap_or(libc::EIO)
            }
            Error::Parse { .. } => libc::EIO,
            Error::NoController(_) => libc::ENOENT,
            Error::OutsideHierarchy(_) | Error::Escape { .. } => libc::EACCES,
        }
    }

    /// True when the error means "the file or process does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } | Error::Change { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)))
    }

    pub(crate) fn change(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Change {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Parse {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
