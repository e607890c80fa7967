//! How kernel and file errors become the daemon's named refusals.

pub use cgmanager_dbus::Error;

/// Result of every operation of the daemon.
pub type Result<T> = std::result::Result<T, Error>;

/// A refusal from an errno, naming what was attempted.
pub fn from_errno(errno: i32, what: &str) -> Error {
    let text = std::io::Error::from_raw_os_error(errno);
    let msg = format!("{what}: {text}");
    match errno {
        libc::ENOENT | libc::ENOTDIR => Error::NotFound(msg),
        libc::EACCES | libc::EPERM | libc::EROFS => Error::PermissionDenied(msg),
        libc::EBUSY | libc::ENOTEMPTY => Error::Busy(msg),
        libc::ESRCH => Error::NoSuchProcess(msg),
        libc::EINVAL | libc::ERANGE | libc::E2BIG => Error::InvalidArgument(msg),
        libc::EAGAIN | libc::ENOSPC => Error::LimitExceeded(msg),
        libc::ELOOP | libc::EXDEV => Error::OutsideSubtree(msg),
        _ => Error::Failed(msg),
    }
}

/// A refusal from an I/O error.
pub fn from_io(e: &std::io::Error, what: &str) -> Error {
    from_errno(e.raw_os_error().unwrap_or(libc::EIO), what)
}

/// A refusal from a `cgroups` error; the message keeps the file the error came from.
pub fn from_cgroups(e: &cgroups::Error) -> Error {
    match e {
        cgroups::Error::Parse { .. } => Error::Failed(e.to_string()),
        cgroups::Error::NoController(c) => {
            Error::NoSuchController(format!("no mounted hierarchy has controller {c:?}"))
        }
        cgroups::Error::OutsideHierarchy(p) => {
            Error::OutsideSubtree(format!("{p:?} is outside the hierarchy"))
        }
        _ => from_errno(e.errno(), &e.to_string()),
    }
}
