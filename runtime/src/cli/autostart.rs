//! `lxr autostart` (hidden; what the user unit `lxr-autostart.service` runs at login): start
//! the containers with `boot.autostart=true`, highest `boot.autostart.priority` first
//! ([`Containers::autostart`]). Exits 1 if any of them failed to start (the others still are).

use crate::error::Result;
use crate::lifecycle::{Autostarted, Containers};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only print the containers in the order they would start.
    #[arg(long)]
    dry_run: bool,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    if a.dry_run {
        for (n, prio, delay) in c.autostart_order()? {
            println!("{n} priority={prio} delay={delay}s");
        }
        return Ok(0);
    }
    let mut code = 0;
    for (name, r) in c.autostart()? {
        match r {
            Autostarted::Started(s) => {
                super::say!("Started {name}");
                super::warn_unconfined(&name, &s);
            }
            Autostarted::AlreadyRunning => println!("{name} is already running"),
            Autostarted::Failed(e) => {
                eprintln!("lxr: autostart {name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}
