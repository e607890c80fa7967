//! `lxr launch IMAGE NAME [-c key=value]… [-p PROFILE]… [--no-profiles]`
//! ([`Containers::launch_with`]): create, then start.

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
    /// -c user.note=text (`lxr config set --help` lists every key).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Profiles to apply, in order (repeatable; default: the `default` profile).
    #[arg(short = 'p', long = "profile", value_name = "PROFILE")]
    profiles: Vec<String>,
    /// Apply no profile at all (not even `default`).
    #[arg(long, conflicts_with = "profiles")]
    no_profiles: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let profiles = (a.no_profiles || !a.profiles.is_empty()).then_some(a.profiles.as_slice());
    let s = c.launch_with(&a.image, &a.name, &a.config, profiles)?;
    println!("Launched {}", a.name);
    super::warn_unconfined(&a.name, &s);
    Ok(0)
}
