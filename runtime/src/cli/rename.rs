//! `lxr rename OLD NEW` ([`Containers::rename`], stopped containers only) and
//! `lxr rename NAME/SNAP NAME/NEW` ([`Containers::snapshot_rename`]).

use crate::error::{Error, Result};
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Current name (or CONTAINER/SNAPSHOT).
    old: String,
    /// New name (or CONTAINER/SNAPSHOT, the same container).
    new: String,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    match (a.old.split_once('/'), a.new.split_once('/')) {
        (None, None) => c.rename(&a.old, &a.new)?,
        (Some((n, s)), Some((m, t))) if n == m => c.snapshot_rename(n, s, t)?,
        (Some((n, s)), None) => c.snapshot_rename(n, s, &a.new)?,
        _ => {
            return Err(Error::Usage(
                "a snapshot is renamed within its container: lxr rename NAME/SNAP NAME/NEW".into(),
            ))
        }
    }
    Ok(0)
}
