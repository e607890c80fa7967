//! `lxr copy SRC[/SNAP] DST [--instance-only]` ([`Containers::copy`]): a new stopped container.

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source container, or CONTAINER/SNAPSHOT.
    source: String,
    /// New container name.
    target: String,
    /// Copy the container without its snapshots.
    #[arg(long)]
    instance_only: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let (src, snap) = match a.source.split_once('/') {
        Some((s, snap)) => (s, Some(snap)),
        None => (a.source.as_str(), None),
    };
    c.copy(src, snap, &a.target, a.instance_only)?;
    Ok(0)
}
