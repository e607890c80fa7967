//! The core's error type: every refusal says what kind it is ([`Kind`], which the D-Bus face
//! turns into the error name of the same spelling, `org.linuxcontainers.cgmanager.Error.<Kind>`),
//! what was attempted and why, and — when the kernel said no — the errno it said it with. Also
//! how kernel and file errors become refusals.

/// What kind of refusal: the stable part callers match on. Each kind is a D-Bus error name of
/// the contract ([`cgmanager_dbus::Error`] has a variant per kind; `service::answer` maps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A malformed argument: empty or oversized string, bad controller list, bad mode, bad key.
    InvalidArgument,
    /// No mounted hierarchy carries the named controller.
    NoSuchController,
    /// The cgroup or file does not exist.
    NotFound,
    /// The path leaves the caller's subtree.
    OutsideSubtree,
    /// The caller lacks the permission the kernel would require.
    PermissionDenied,
    /// The file may not be written through the daemon.
    ProtectedFile,
    /// The process does not exist (or exited while the request was handled).
    NoSuchProcess,
    /// A pid or id of another namespace that the kernel did not translate.
    ForeignNamespace,
    /// `*Scm` credentials that are not the connection's own.
    ProxyRefused,
    /// A depth or count limit would be exceeded.
    LimitExceeded,
    /// The admin's policy gives the caller no delegation for this controller.
    NotDelegated,
    /// The cgroup is in use.
    Busy,
    /// The `*Scm` side channel did not deliver in time.
    Timeout,
    /// The kernel refused for another reason.
    Failed,
}

impl Kind {
    /// The kind's name, as the D-Bus error name ends.
    pub fn name(self) -> &'static str {
        match self {
            Kind::InvalidArgument => "InvalidArgument",
            Kind::NoSuchController => "NoSuchController",
            Kind::NotFound => "NotFound",
            Kind::OutsideSubtree => "OutsideSubtree",
            Kind::PermissionDenied => "PermissionDenied",
            Kind::ProtectedFile => "ProtectedFile",
            Kind::NoSuchProcess => "NoSuchProcess",
            Kind::ForeignNamespace => "ForeignNamespace",
            Kind::ProxyRefused => "ProxyRefused",
            Kind::LimitExceeded => "LimitExceeded",
            Kind::NotDelegated => "NotDelegated",
            Kind::Busy => "Busy",
            Kind::Timeout => "Timeout",
            Kind::Failed => "Failed",
        }
    }

    /// How the kernel's `errno` is told to a caller.
    pub fn of_errno(errno: i32) -> Kind {
        match errno {
            libc::ENOENT | libc::ENOTDIR => Kind::NotFound,
            libc::EACCES | libc::EPERM | libc::EROFS => Kind::PermissionDenied,
            libc::EBUSY | libc::ENOTEMPTY => Kind::Busy,
            libc::ESRCH => Kind::NoSuchProcess,
            libc::EINVAL | libc::ERANGE | libc::E2BIG => Kind::InvalidArgument,
            libc::EAGAIN | libc::ENOSPC => Kind::LimitExceeded,
            libc::ELOOP | libc::EXDEV => Kind::OutsideSubtree,
            _ => Kind::Failed,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A refusal of the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: Kind,
    message: String,
    errno: Option<i32>,
}

impl Error {
    /// A refusal the daemon decided on.
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            errno: None,
        }
    }

    /// A refusal because the kernel returned `errno`, of the kind that errno is told as.
    pub fn os(errno: i32, message: impl Into<String>) -> Error {
        Error::new(Kind::of_errno(errno), message).with_errno(errno)
    }

    /// The same refusal, recording the errno the kernel gave.
    pub fn with_errno(mut self, errno: i32) -> Error {
        self.errno = Some(errno);
        self
    }

    /// What kind of refusal.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// What was attempted and why it was refused.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The kernel's errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// Does it have this kind?
    pub fn is(&self, kind: Kind) -> bool {
        self.kind == kind
    }
}

/// Result of every operation of the core.
pub type Result<T> = std::result::Result<T, Error>;

/// A refusal from an errno, naming what was attempted.
pub fn from_errno(errno: i32, what: &str) -> Error {
    let text = std::io::Error::from_raw_os_error(errno);
    Error::os(errno, format!("{what}: {text}"))
}

/// A refusal from an I/O error.
pub fn from_io(e: &std::io::Error, what: &str) -> Error {
    from_errno(e.raw_os_error().unwrap_or(libc::EIO), what)
}

/// A refusal from a `cgroups` error; the message keeps the file the error came from.
pub fn from_cgroups(e: &cgroups::Error) -> Error {
    match e {
        cgroups::Error::Parse { .. } => Error::new(Kind::Failed, e.to_string()),
        cgroups::Error::NoController(c) => Error::new(
            Kind::NoSuchController,
            format!("no mounted hierarchy has controller {c:?}"),
        ),
        cgroups::Error::OutsideHierarchy(p) => Error::new(
            Kind::OutsideSubtree,
            format!("{p:?} is outside the hierarchy"),
        ),
        cgroups::Error::Escape { .. } => Error::new(Kind::OutsideSubtree, e.to_string()),
        cgroups::Error::Io { path, source }
            if matches!(source.raw_os_error(), Some(libc::ENOENT)) =>
        {
            Error::new(Kind::NotFound, format!("{} does not exist", path.display()))
        }
        _ => from_errno(e.errno(), &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_keep_their_errno_and_are_told_by_kind() {
        let e = from_errno(libc::EACCES, "write /a/memory.max");
        assert_eq!(e.kind(), Kind::PermissionDenied);
        assert_eq!(e.errno(), Some(libc::EACCES));
        assert!(e.message().starts_with("write /a/memory.max: "), "{e}");
        for (errno, kind) in [
            (libc::ENOENT, Kind::NotFound),
            (libc::ENOTDIR, Kind::NotFound),
            (libc::EPERM, Kind::PermissionDenied),
            (libc::EROFS, Kind::PermissionDenied),
            (libc::EBUSY, Kind::Busy),
            (libc::ENOTEMPTY, Kind::Busy),
            (libc::ESRCH, Kind::NoSuchProcess),
            (libc::EINVAL, Kind::InvalidArgument),
            (libc::E2BIG, Kind::InvalidArgument),
            (libc::ENOSPC, Kind::LimitExceeded),
            (libc::EAGAIN, Kind::LimitExceeded),
            (libc::ELOOP, Kind::OutsideSubtree),
            (libc::EXDEV, Kind::OutsideSubtree),
            (libc::EIO, Kind::Failed),
        ] {
            assert_eq!(from_errno(errno, "x").kind(), kind, "errno {errno}");
        }
        // An I/O error without an errno is EIO.
        let e = from_io(&std::io::Error::other("odd"), "read");
        assert_eq!((e.kind(), e.errno()), (Kind::Failed, Some(libc::EIO)));
    }

    #[test]
    fn the_daemons_own_refusals_have_no_errno() {
        let e = Error::new(Kind::ProtectedFile, "release_agent");
        assert_eq!(e.errno(), None);
        assert!(e.is(Kind::ProtectedFile));
        assert_eq!(e.to_string(), "ProtectedFile: release_agent");
    }
}
