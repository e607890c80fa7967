//! `lxr restart [--force] [--timeout N] NAME… | --all` ([`Containers::restart`]): stop, then
//! start — with the warnings `start` prints.

use super::many;
use crate::cli::stop::Args;
use crate::error::Result;
use crate::lifecycle::Containers;

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let how = a.halt()?;
    let names = many::targets(c, a.names, a.all, many::running)?;
    Ok(many::each(&names, |n| {
        let s = c.restart(n, how)?;
        super::say!("Restarted {n} (pid {})", s.init_pid);
        super::warn_unconfined(n, &s);
        Ok(())
    }))
}
