//! lxr: the runtime an ordinary user runs to launch system containers — a real init as PID 1,
//! ids mapped from the user's subordinate ranges, a private root, `/proc` honest through lxcfs.
//!
//! * [`lifecycle`]: what can happen to a container (create, start, stop, delete, exec, …), as
//!   a library; [`cli`]: one module per subcommand, parsing and printing around it;
//! * [`launch`]: the start sequence (monitor, intermediate, init) with [`launch::mounts`],
//!   [`launch::console`], [`launch::boot`]; its processes talk over one [`channel`];
//! * [`userns`] + [`idmap`]: user namespaces mapped with newuidmap/newgidmap;
//! * [`net`]: the container's network (a user-mode stack: slirp4netns or pasta), proxy devices;
//! * [`cgroup`] + [`limits`]: the container's cgroup from cgmanager, LXD's limit keys;
//!   [`kernel`]: the newer kernel features used where present (and their test switch);
//! * [`image`]: the built-in busybox image and imported LXD/Incus images; [`container`]:
//!   config and runtime state on disk; [`paths`]: where they live; [`lock`]: who may change
//!   them now; [`storage`]: a container's rootfs on disk (overlay, reflink or copy);
//! * the defences (`SECURITY.md`): [`fds`] (no host descriptor reaches a container),
//!   [`relay`] (no host terminal does), [`beneath`] (no symlink is followed on an image's
//!   behalf), [`text`] (no image text reaches the terminal raw).

pub mod beneath;
pub mod cgroup;
pub mod channel;
pub mod cli;
pub mod container;
pub mod deferred;
pub mod error;
pub mod fds;
pub mod idmap;
pub mod image;
pub mod kernel;
pub mod launch;
pub mod lifecycle;
pub mod limits;
pub mod lock;
pub mod mountns;
pub mod net;
pub mod paths;
pub mod relay;
pub mod storage;
pub mod term;
pub mod text;
pub mod userns;

/// Default lxcfs mount point the runtime bind-mounts files from.
pub const LXCFS_MOUNT: &str = "/var/lib/lxcfs";
