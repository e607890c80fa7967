//! `lxr start NAME` ([`Containers::start`]).

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let s = c.start(&a.name)?;
    println!("Started {} (pid {})", a.name, s.init_pid);
    super::warn_unconfined(&a.name, &s);
    Ok(0)
}
