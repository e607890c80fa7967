//! `lxr delete [--force] NAME` ([`Containers::delete`]).

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Stop it first if it runs.
    #[arg(short, long)]
    force: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    c.delete(&a.name, a.force)?;
    Ok(0)
}
