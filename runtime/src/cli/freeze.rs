//! `lxr freeze NAME… | --all` / `lxr unfreeze NAME… | --all` ([`Containers::freeze`]).

use super::many;
use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments of `freeze`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container names.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    names: Vec<String>,
    /// Every running container that is not frozen.
    #[arg(long, conflicts_with = "names")]
    all: bool,
}

/// Arguments of `unfreeze`.
#[derive(Debug, clap::Args)]
pub struct Unargs {
    /// Container names.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    names: Vec<String>,
    /// Every frozen container.
    #[arg(long, conflicts_with = "names")]
    all: bool,
}

/// Run `freeze`.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let names = many::targets(c, a.names, a.all, |s| many::running(s) && !many::frozen(s))?;
    Ok(many::each(&names, |n| c.freeze(n, true)))
}

/// Run `unfreeze`.
pub fn run_thaw(c: &Containers, a: Unargs) -> Result<i32> {
    let names = many::targets(c, a.names, a.all, many::frozen)?;
    Ok(many::each(&names, |n| c.freeze(n, false)))
}
