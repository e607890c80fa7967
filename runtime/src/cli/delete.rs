//! `lxr delete [--force] NAME…` ([`Containers::delete`]). As Incus, there is no `--all`: a
//! mistyped command should not be able to remove every container.

use super::many;
use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container names.
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,
    /// Stop them first if they run.
    #[arg(short, long)]
    force: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    Ok(many::each(&a.names, |n| c.delete(n, a.force)))
}
