//! `lxr launch IMAGE NAME [-c key=value]…` ([`Containers::launch`]): create, then start.

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image: built-in `busybox`, an alias or a fingerprint prefix (`lxr image list`).
    image: String,
    /// Container name.
    name: String,
    /// Settings, e.g. -c limits.memory=256MiB, -c network.mode=none|pasta|slirp4netns,
    /// -c network.host_loopback=true.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let s = c.launch(&a.image, &a.name, &a.config)?;
    super::say!("Launched {}", a.name);
    super::warn_unconfined(&a.name, &s);
    Ok(0)
}
