//! `lxr delete [--force] NAME…` ([`Containers::delete`]); `NAME/SNAP` deletes a snapshot
//! ([`Containers::snapshot_delete`]), as `incus delete c1/snap0`. As Incus, there is no
//! `--all`: a mistyped command should not be able to remove every container.

use super::many;
use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container names (`NAME/SNAP`: a snapshot).
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,
    /// Stop them first if they run.
    #[arg(short, long)]
    force: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    Ok(many::each(&a.names, |n| match n.split_once('/') {
        Some((name, snap)) => c.snapshot_delete(name, snap),
        None => c.delete(n, a.force),
    }))
}
