//! A mount namespace of the calling process's own, for the forked helpers that mount a
//! container's layers or bind its root: what they mount there never propagates back to the
//! host's namespace, and is gone when they exit.

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{Context, Result};

/// Move this process into a new mount namespace, every mount in it private (nothing
/// propagating back).
pub fn private_mounts() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare(CLONE_NEWNS)".into())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .ctx(|| "make / private".into())
}
