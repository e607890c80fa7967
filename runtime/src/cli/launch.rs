//! `lxr launch IMAGE NAME [-c key=value]… [--ephemeral]` ([`Containers::launch`]): create,
//! then start. `lxr init` takes the same arguments.

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image: built-in `busybox`, an alias or a fingerprint prefix (`lxr image list`).
    pub(super) image: String,
    /// Container name.
    pub(super) name: String,
    /// Settings, e.g. -c limits.memory=256MiB, -c network.mode=none|pasta|slirp4netns,
    /// -c network.host_loopback=true.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    pub(super) config: Vec<String>,
    /// Delete the container when it stops (not when it reboots).
    #[arg(short, long)]
    pub(super) ephemeral: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let s = c.launch(&a.image, &a.name, &a.config, a.ephemeral)?;
    super::say!("Launched {}", a.name);
    super::warn_unconfined(&a.name, &s);
    Ok(0)
}
