//! `lxr restart [--force] [--timeout N] NAME`: stop, then start.

use std::time::Duration;

use crate::cli::stop::Args;
use crate::error::Result;
use crate::paths::Paths;

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    crate::container::check_name(&a.name)?;
    let lock = crate::lock::Lock::container(paths, &a.name)?;
    crate::cli::stop::stop(paths, &a.name, a.force, Duration::from_secs(a.timeout))?;
    let s = crate::cli::start::start(paths, &a.name, &lock)?;
    println!("Restarted {} (pid {})", a.name, s.init_pid);
    Ok(0)
}
