//! `lxr stop [--force] [--timeout N] NAME` ([`Containers::stop`]): the init's own halt signal
//! (SIGRTMIN+3 for systemd, SIGUSR1 for busybox), then SIGKILL after the timeout.

use std::time::Duration;

use crate::error::Result;
use crate::lifecycle::{Containers, Halt};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    pub(crate) name: String,
    /// Kill at once.
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Seconds to wait for a clean halt before killing.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
}

impl Args {
    /// How to stop.
    pub(crate) fn halt(&self) -> Halt {
        Halt {
            force: self.force,
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    c.stop(&a.name, a.halt())?;
    Ok(0)
}
