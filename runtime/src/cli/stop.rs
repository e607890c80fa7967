//! `lxr stop [--force] [--timeout N] NAME… | --all` ([`Containers::stop`]): the init's own
//! halt signal (SIGRTMIN+3 for systemd, SIGUSR1 for busybox), then SIGKILL after the timeout
//! (`--timeout -1`: wait as long as it takes, as Incus).

use std::time::Duration;

use super::many;
use crate::error::{Error, Result};
use crate::lifecycle::{Containers, Halt};

/// Arguments (of `restart` too).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container names.
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub(crate) names: Vec<String>,
    /// Every running container.
    #[arg(long, conflicts_with = "names")]
    pub(crate) all: bool,
    /// Kill at once.
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Seconds to wait for a clean halt before killing; -1 waits forever.
    #[arg(long, default_value_t = 30, allow_negative_numbers = true)]
    pub(crate) timeout: i64,
}

impl Args {
    /// How to stop: `--timeout -1` is forever; another negative timeout is refused.
    pub(crate) fn halt(&self) -> Result<Halt> {
        let timeout = match self.timeout {
            -1 => Halt::FOREVER,
            t => Duration::from_secs(u64::try_from(t).map_err(|_| {
                Error::Usage(format!(
                    "--timeout {t}: give seconds, or -1 to wait for the halt as long as it takes"
                ))
            })?),
        };
        Ok(Halt {
            force: self.force,
            timeout,
        })
    }
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let how = a.halt()?;
    let names = many::targets(c, a.names, a.all, many::running)?;
    Ok(many::each(&names, |n| c.stop(n, how)))
}
