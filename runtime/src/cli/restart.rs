//! `lxr restart [--force] [--timeout N] NAME` ([`Containers::restart`]): stop, then start.

use crate::cli::stop::Args;
use crate::error::Result;
use crate::lifecycle::Containers;

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let s = c.restart(&a.name, a.halt())?;
    println!("Restarted {} (pid {})", a.name, s.init_pid);
    Ok(0)
}
