//! The host's cgroup model, shared by lxcfs, cgmanager and lxr.
//!
//! * [`Layout`]: which hierarchies exist (legacy / hybrid / unified) and where, from
//!   `/proc/self/mountinfo` ([`mountinfo`], the one parser of it).
//! * [`process`]: a process's ids, namespaces, id maps, and a pidfd that pins it.
//! * [`ProcCgroups`]: a process's cgroup per hierarchy, from `/proc/<pid>/cgroup`.
//! * [`Cgroup`]: one cgroup directory, with the walk up to the root.
//! * [`manage`]: changes — create, remove, write, move processes, chown/chmod, delegation —
//!   all through [`beneath`]: opened from the hierarchy's mount, never through a symlink or
//!   another mount.
//! * Typed readers: [`memory`], [`cpu`], [`cpuacct`], [`cpuset`], [`blkio`], [`pids`], [`psi`].
//! * [`size`]: the one grammar of sizes (`256MiB`, `2G`, `1GB`) for limits and policies.
//!
//! Every reader takes paths (a `Cgroup` carries its mount point, `Layout::detect` takes a
//! procfs root), so tests run against fixture trees shaped like real v1 and v2 mounts
//! (`fixture`, behind the `fixtures` feature). Parsers are strict: malformed content is an [`Error`], never a panic or a
//! silent zero.

pub mod beneath;
pub mod cgroup;
pub mod error;
pub mod kept;
pub mod layout;
pub mod manage;
pub mod mountinfo;
pub mod parse;
pub mod proc_cgroup;
pub mod process;

pub use cgroup::Cgroup;
pub use error::{Error, Result};
pub use layout::{Hierarchy, Layout, Mode, Version};
pub use proc_cgroup::{ProcCgroupLine, ProcCgroups};
pub mod memory;

pub mod blkio;
pub mod cpu;
pub mod cpuacct;
pub mod cpuset;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod pids;
pub mod psi;
pub mod size;
pub mod test_without;
