//! `lxr freeze NAME` / `lxr unfreeze NAME` ([`Containers::freeze`]).

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
}

/// Run `freeze`.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    c.freeze(&a.name, true).map(|()| 0)
}

/// Run `unfreeze`.
pub fn run_thaw(c: &Containers, a: Args) -> Result<i32> {
    c.freeze(&a.name, false).map(|()| 0)
}
