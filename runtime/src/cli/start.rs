//! `lxr start NAME… | --all` ([`Containers::start`]).

use super::many;
use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container names.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    names: Vec<String>,
    /// Start every stopped container.
    #[arg(long, conflicts_with = "names")]
    all: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let names = many::targets(c, a.names, a.all, many::stopped)?;
    Ok(many::each(&names, |n| {
        let s = c.start(n)?;
        super::say!("Started {n} (pid {})", s.init_pid);
        super::warn_unconfined(n, &s);
        Ok(())
    }))
}
