//! How a core result answers a D-Bus call, chosen by its type: [`Answer`] for the plain methods'
//! return values, [`ScmAnswer`] for the datagrams an `*Scm` method sends back on its side
//! channel (the wire format is the contract's: [`cgmanager_dbus::scm`]). A method cannot be
//! paired with the wrong encoding: the core operation it calls fixes the type.
//!
//! Also the one place a core refusal becomes a D-Bus error (a [`Kind`] is the error's name).

use cgmanager_dbus::scm::{self, Datagram};

use crate::errors::{Error, Kind, Result};
use crate::ops::{Delegation, Existed, Key, Pids};
use crate::service::driver::Call;

/// A core result as a plain method returns it.
pub trait Answer: Sized + Send + 'static {
    /// The method's D-Bus return type.
    type Wire;
    /// Encode for this call's caller (host pids mean nothing in another pid namespace).
    fn wire(self, call: &Call) -> Result<Self::Wire>;
}

/// A core result as an `*Scm` method sends it on its side channel; a refusal too (its reason
/// goes to the daemon's log: the protocol has no room for it).
pub trait ScmAnswer: Sized + Send + 'static {
    /// The datagrams that answer `r`.
    fn scm(r: &Result<Self>) -> Vec<Datagram>;
}

/// Results a plain method returns as they are (ListKeys: CGManager's tuples).
macro_rules! as_is {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            type Wire = $t;
            fn wire(self, _: &Call) -> Result<$t> {
                Ok(self)
            }
        }
    )*};
}

as_is!((), String, Vec<String>, Vec<Key>);

impl ScmAnswer for () {
    fn scm(r: &Result<()>) -> Vec<Datagram> {
        scm::done(r.is_ok())
    }
}

impl ScmAnswer for String {
    fn scm(r: &Result<String>) -> Vec<Datagram> {
        scm::text(r.as_ref().ok().map(String::as_str))
    }
}

/// CGManager's `existed`: 1, or -1.
impl Answer for Existed {
    type Wire = i32;
    fn wire(self, _: &Call) -> Result<i32> {
        Ok(if self.0 { 1 } else { -1 })
    }
}

impl ScmAnswer for Existed {
    fn scm(r: &Result<Existed>) -> Vec<Datagram> {
        scm::existed(r.as_ref().ok().map(|e| e.0))
    }
}

/// Host pids: only meaningful to a caller in the daemon's pid namespace.
impl Answer for Pids {
    type Wire = Vec<i32>;
    fn wire(self, call: &Call) -> Result<Vec<i32>> {
        if !call.same_pidns {
            return Err(Error::new(
                Kind::ForeignNamespace,
                format!(
                    "your pid namespace is not the daemon's; {}",
                    call.translated("the pids")
                ),
            ));
        }
        Ok(self
            .0
            .into_iter()
            .filter_map(|p| i32::try_from(p).ok())
            .collect())
    }
}

/// Each pid as credentials, which the kernel translates for the reader.
impl ScmAnswer for Pids {
    fn scm(r: &Result<Pids>) -> Vec<Datagram> {
        scm::pids(r.as_ref().ok().map(|p| p.0.as_slice()))
    }
}

impl ScmAnswer for Vec<String> {
    fn scm(r: &Result<Vec<String>>) -> Vec<Datagram> {
        scm::names(r.as_ref().ok().map(Vec::as_slice))
    }
}

impl ScmAnswer for Vec<Key> {
    fn scm(r: &Result<Vec<Key>>) -> Vec<Datagram> {
        scm::keys(r.as_ref().ok().map(Vec::as_slice))
    }
}

/// Delegate: (hierarchy, absolute path) pairs.
impl Answer for Vec<Delegation> {
    type Wire = Vec<(String, String)>;
    fn wire(self, _: &Call) -> Result<Self::Wire> {
        Ok(self.into_iter().map(|d| (d.hierarchy, d.path)).collect())
    }
}

/// Release: how many cgroups were removed.
impl Answer for usize {
    type Wire = i32;
    fn wire(self, _: &Call) -> Result<i32> {
        Ok(i32::try_from(self).unwrap_or(i32::MAX))
    }
}

/// A refusal as the D-Bus error of the same name.
impl From<Error> for cgmanager_dbus::Error {
    fn from(e: Error) -> cgmanager_dbus::Error {
        use cgmanager_dbus::Error as W;
        let m = e.message().to_string();
        match e.kind() {
            Kind::InvalidArgument => W::InvalidArgument(m),
            Kind::NoSuchController => W::NoSuchController(m),
            Kind::NotFound => W::NotFound(m),
            Kind::OutsideSubtree => W::OutsideSubtree(m),
            Kind::PermissionDenied => W::PermissionDenied(m),
            Kind::ProtectedFile => W::ProtectedFile(m),
            Kind::NoSuchProcess => W::NoSuchProcess(m),
            Kind::ForeignNamespace => W::ForeignNamespace(m),
            Kind::ProxyRefused => W::ProxyRefused(m),
            Kind::LimitExceeded => W::LimitExceeded(m),
            Kind::NotDelegated => W::NotDelegated(m),
            Kind::Busy => W::Busy(m),
            Kind::Timeout => W::Timeout(m),
            Kind::Failed => W::Failed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_the_d_bus_error_of_its_name() {
        for kind in [
            Kind::InvalidArgument,
            Kind::NoSuchController,
            Kind::NotFound,
            Kind::OutsideSubtree,
            Kind::PermissionDenied,
            Kind::ProtectedFile,
            Kind::NoSuchProcess,
            Kind::ForeignNamespace,
            Kind::ProxyRefused,
            Kind::LimitExceeded,
            Kind::NotDelegated,
            Kind::Busy,
            Kind::Timeout,
            Kind::Failed,
        ] {
            let w = cgmanager_dbus::Error::from(Error::new(kind, "why"));
            assert_eq!(w.kind(), kind.name());
            assert_eq!(w.message(), "why");
        }
    }

    #[test]
    fn scm_encoding_follows_the_type() {
        let failed: Result<()> = Err(Error::new(Kind::Busy, "x"));
        assert_eq!(<()>::scm(&Ok(())), scm::done(true));
        assert_eq!(<()>::scm(&failed), scm::done(false));
        assert_eq!(Existed::scm(&Ok(Existed(true))), scm::existed(Some(true)));
        assert_eq!(Existed::scm(&Ok(Existed(false))), scm::existed(Some(false)));
        assert_eq!(
            String::scm(&Err(Error::new(Kind::NotFound, "x"))),
            scm::text(None)
        );
        assert_eq!(Pids::scm(&Ok(Pids(vec![7]))), scm::pids(Some(&[7])));
        let k: Key = ("tasks".into(), 1, 2, 33188);
        assert_eq!(<Vec<Key>>::scm(&Ok(vec![k.clone()])), scm::keys(Some(&[k])));
    }
}
