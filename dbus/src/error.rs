//! The daemon's refusals as named D-Bus errors. Each variant carries a message that says what
//! was refused and why; the variant name is the stable part scripts may match on.

use zbus::DBusError;

/// An error answered by cgmanager: `org.linuxcontainers.cgmanager.Error.<Variant>`.
#[derive(Debug, DBusError, PartialEq)]
#[zbus(prefix = "org.linuxcontainers.cgmanager.Error")]
pub enum Error {
    /// Transport or protocol failure (never sent by the daemon).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A malformed argument: empty or oversized string, bad controller list, bad mode, bad key.
    InvalidArgument(String),
    /// No mounted hierarchy carries the named controller.
    NoSuchController(String),
    /// The cgroup or file does not exist.
    NotFound(String),
    /// The path leaves the caller's subtree (`..`, sibling prefix, absolute path elsewhere,
    /// symlink, another mount).
    OutsideSubtree(String),
    /// The caller lacks the permission the kernel would require (ownership, mode bits).
    PermissionDenied(String),
    /// The file may not be written through the daemon (task files, `release_agent`,
    /// `notify_on_release`).
    ProtectedFile(String),
    /// The process does not exist (or exited while the request was handled).
    NoSuchProcess(String),
    /// A pid or id from another namespace that the kernel did not translate (use the `*Scm`
    /// method), or an id that is not mapped in the caller's user namespace.
    ForeignNamespace(String),
    /// `*Scm` credentials that are not the connection's own (proxying is not supported).
    ProxyRefused(String),
    /// A depth or count limit would be exceeded.
    LimitExceeded(String),
    /// The admin's policy gives the caller no delegation for this controller.
    NotDelegated(String),
    /// The cgroup is in use (has processes or children, or the kernel's no-internal-process
    /// rule applies).
    Busy(String),
    /// The `*Scm` side channel did not deliver what the protocol needs in time.
    Timeout(String),
    /// The kernel refused for another reason (message carries the errno text).
    Failed(String),
}

impl Error {
    /// The short error name (`PermissionDenied`, …), or `ZBus` for transport errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ZBus(_) => "ZBus",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::NoSuchController(_) => "NoSuchController",
            Error::NotFound(_) => "NotFound",
            Error::OutsideSubtree(_) => "OutsideSubtree",
            Error::PermissionDenied(_) => "PermissionDenied",
            Error::ProtectedFile(_) => "ProtectedFile",
            Error::NoSuchProcess(_) => "NoSuchProcess",
            Error::ForeignNamespace(_) => "ForeignNamespace",
            Error::ProxyRefused(_) => "ProxyRefused",
            Error::LimitExceeded(_) => "LimitExceeded",
            Error::NotDelegated(_) => "NotDelegated",
            Error::Busy(_) => "Busy",
            Error::Timeout(_) => "Timeout",
            Error::Failed(_) => "Failed",
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> String {
        match self {
            Error::ZBus(e) => e.to_string(),
            Error::InvalidArgument(m)
            | Error::NoSuchController(m)
            | Error::NotFound(m)
            | Error::OutsideSubtree(m)
            | Error::PermissionDenied(m)
            | Error::ProtectedFile(m)
            | Error::NoSuchProcess(m)
            | Error::ForeignNamespace(m)
            | Error::ProxyRefused(m)
            | Error::LimitExceeded(m)
            | Error::NotDelegated(m)
            | Error::Busy(m)
            | Error::Timeout(m)
            | Error::Failed(m) => m.clone(),
        }
    }
}
