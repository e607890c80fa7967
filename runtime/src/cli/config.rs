//! `lxr config show|get|set|unset NAME [KEY [VALUE]]` ([`Containers::config_set`] and its
//! siblings); limits are applied at once to a running container.

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, clap::Subcommand)]
enum Op {
    /// Print every key.
    Show { name: String },
    /// Print one key.
    Get { name: String, key: String },
    /// Set a key (applied live to a running container).
    Set {
        name: String,
        key: String,
        value: String,
    },
    /// Remove a key (the limit is lifted live).
    Unset { name: String, key: String },
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    match a.op {
        Op::Show { name } => {
            let cfg = c.config(&name)?;
            println!("image: {}", cfg.image);
            for (k, v) in &cfg.keys {
                println!("{k}: {v}");
            }
        }
        Op::Get { name, key } => println!("{}", c.config_get(&name, &key)?),
        Op::Set { name, key, value } => c.config_set(&name, &key, &value)?,
        Op::Unset { name, key } => c.config_unset(&name, &key)?,
    }
    Ok(0)
}
