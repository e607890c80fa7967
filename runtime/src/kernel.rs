//! Kernel features newer than lxr's oldest kernel (5.8, see the README's "Kernels" table) that
//! it uses where the running kernel has them, each with a fallback:
//!
//! * `clone3(CLONE_INTO_CGROUP)` (5.7, cgroup v2 only): the monitor starts the container's first
//!   process directly in its cgroup ([`crate::launch::clone`]) instead of having cgmanager move
//!   it there afterwards — no migration, so no wait for an RCU grace period. The kernel checks
//!   it like a move made by the monitor itself (write access to the destination's and to the
//!   common ancestor's `cgroup.procs`); where it refuses, or on a v1/hybrid placement, the
//!   container is entered through cgmanager as before;
//! * `cgroup.kill` (5.14, cgroup v2 only): the forceful part of a stop kills every process of
//!   the container's cgroup tree at once, with no race against forks; without it, SIGKILL to
//!   the init (the kernel then kills the rest of its pid namespace).
//!
//! [`Compat`] says which of them lxr may try. Only the tests turn them off, through
//! [`TEST_WITHOUT_ENV`], so that the fallbacks run (and are tested) on a kernel that has the
//! features. It is not meant for production: on an old kernel the fallbacks are chosen by
//! themselves (the kernel refuses the flag, or the file is missing).

/// Test-only: a comma-separated list of kernel features lxr must behave as if the kernel lacked:
/// `clone_into_cgroup`, `cgroup_kill`. Inherited by the monitor, like the rest of lxr's
/// environment.
pub const TEST_WITHOUT_ENV: &str = "LXR_TEST_WITHOUT";

use cgroups::test_without::Without;

/// Which newer kernel features lxr may try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compat {
    /// `clone3(CLONE_INTO_CGROUP)` (Linux ≥ 5.7).
    pub clone_into_cgroup: bool,
    /// `cgroup.kill` (Linux ≥ 5.14).
    pub cgroup_kill: bool,
}

impl Default for Compat {
    /// Every feature allowed.
    fn default() -> Self {
        Compat::from(Without::default())
    }
}

/// The features [`TEST_WITHOUT_ENV`] may name.
const FEATURES: [&str; 2] = ["clone_into_cgroup", "cgroup_kill"];

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
            clone_into_cgroup: !off.has("clone_into_cgroup"),
            cgroup_kill: !off.has("cgroup_kill"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_test_list() {
        assert_eq!(Compat::without(""), Compat::default());
        let c = Compat::without("cgroup_kill");
        assert!(c.clone_into_cgroup && !c.cgroup_kill);
        let c = Compat::without(" clone_into_cgroup , cgroup_kill,bogus");
        assert!(!c.clone_into_cgroup && !c.cgroup_kill);
    }
}
