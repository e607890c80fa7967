//! `lxr launch IMAGE NAME [-c key=value]… [-p PROFILE]… [--no-profiles] [--ephemeral]`
//! ([`Containers::launch`]): create, then start. `lxr init` takes the same arguments.

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
    /// -c user.note=text (`lxr config set --help` lists every key).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    pub(super) config: Vec<String>,
    /// Profiles to apply, in order (repeatable; default: the `default` profile).
    #[arg(short = 'p', long = "profile", value_name = "PROFILE")]
    pub(super) profiles: Vec<String>,
    /// Apply no profile at all (not even `default`).
    #[arg(long, conflicts_with = "profiles")]
    pub(super) no_profiles: bool,
    /// Delete the container when it stops (not when it reboots).
    #[arg(short, long)]
    pub(super) ephemeral: bool,
}

impl Args {
    /// `-p`'s profiles, `Some([])` for `--no-profiles`, `None` for the default.
    pub(super) fn profiles(&self) -> Option<&[String]> {
        (self.no_profiles || !self.profiles.is_empty()).then_some(self.profiles.as_slice())
    }
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let s = c.launch(&a.image, &a.name, &a.config, a.profiles(), a.ephemeral)?;
    super::say!("Launched {}", a.name);
    super::warn_unconfined(&a.name, &s);
    Ok(0)
}
