//! Kernel features newer than the oldest kernel lxcfs starts on (5.3: `pidfd_open`) that it
//! uses when the running kernel has them, each with a fallback (the README's kernel table
//! lists them all, with the tests that prove each on a kernel with and one without):
//!
//! * `NS_GET_TGID_FROM_PIDNS` (6.11): a pid namespace's init in one ioctl
//!   (`crate::caller`); without it, a walk up the caller's parents, then a scan of `/proc`;
//! * `FUSE_NOTIFY_RESEND` (6.9): a successor asks the kernel to resend the requests its
//!   predecessor had read but not answered (`crate::fuse_adapter`); without it, a live upgrade
//!   drains the requests in flight before handing the connection over, and a successor
//!   replays the requests its crashed predecessor left in the journal (`crate::journal`).
//!
//! [`Compat`] says which of them the daemon may use. Only the tests turn them off, through
//! [`TEST_WITHOUT_ENV`], so that the fallbacks run (and are tested) on a kernel that has the
//! features: the variable is read once at start and passed on to every generation like the
//! rest of the environment. It is not meant for production: on an old kernel the fallbacks
//! are chosen by themselves.

/// Test-only: a comma-separated list of kernel features the daemon must behave as if the
/// kernel lacked: `ns_get_tgid` (`NS_GET_TGID_FROM_PIDNS`), `fuse_resend`
/// (`FUSE_NOTIFY_RESEND`).
pub const TEST_WITHOUT_ENV: &str = "LXCFS_TEST_WITHOUT";

use cgroups::test_without::Without;

/// Which newer kernel features the daemon may use (when the kernel has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compat {
    /// `ioctl(NS_GET_TGID_FROM_PIDNS)` on a pid namespace (Linux ≥ 6.11).
    pub tgid_ioctl: bool,
    /// `FUSE_NOTIFY_RESEND` (Linux ≥ 6.9).
    pub fuse_resend: bool,
}

impl Default for Compat {
    /// Every feature allowed.
    fn default() -> Self {
        Compat::from(Without::default())
    }
}

/// The features [`TEST_WITHOUT_ENV`] may name.
const FEATURES: [&str; 2] = ["ns_get_tgid", "fuse_resend"];

impl Compat {
    /// All features allowed, except those named in [`TEST_WITHOUT_ENV`].
    pub fn from_env() -> Compat {
        Compat::from(Without::from_env(TEST_WITHOUT_ENV, &FEATURES))
    }

    /// All features allowed except those in the comma-separated `list` (unknown names are
    /// logged and ignored).
    pub fn without(list: &str) -> Compat {
        Compat::from(Without::parse(TEST_WITHOUT_ENV, list, &FEATURES))
    }

    fn from(off: Without) -> Compat {
        Compat {
            tgid_ioctl: !off.has("ns_get_tgid"),
            fuse_resend: !off.has("fuse_resend"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_test_list() {
        assert_eq!(Compat::without(""), Compat::default());
        let c = Compat::without("ns_get_tgid");
        assert!(!c.tgid_ioctl && c.fuse_resend);
        let c = Compat::without(" fuse_resend , ns_get_tgid,bogus");
        assert!(!c.tgid_ioctl && !c.fuse_resend);
    }
}
