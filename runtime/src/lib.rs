//! lxr: the runtime an ordinary user runs to launch system containers.
//!
//! Placeholder until the runtime issue; it already depends on `cgroups` and `cgmanager-dbus`
//! as design.md prescribes.

/// Default lxcfs mount point the runtime bind-mounts files from.
pub const LXCFS_MOUNT: &str = "/var/lib/lxcfs";
