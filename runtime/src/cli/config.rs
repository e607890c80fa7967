//! `lxr config show|get|set|unset|edit NAME …` ([`Containers::config_set`] and its siblings);
//! limits are applied at once to a running container. `lxr config device add|list|remove`
//! ([`Containers::device_add`]): proxy and disk devices.

use super::device::DeviceOp;
use crate::error::Result;
use crate::lifecycle::{key_value_pairs, Applied, Containers};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, clap::Subcommand)]
enum Op {
    /// Print the configuration (YAML: image, profiles, config, devices).
    Show {
        name: String,
        /// With the profiles applied (what the container runs with).
        #[arg(short, long)]
        expanded: bool,
    },
    /// Print one key's value (an empty line when it is not set).
    Get {
        name: String,
        key: String,
        /// The effective value (profiles applied).
        #[arg(short, long)]
        expanded: bool,
    },
    /// Set keys: `set c1 KEY=VALUE [KEY=VALUE…]` or `set c1 KEY VALUE` (applied live to a
    /// running container).
    #[command(after_help = crate::container::schema::help())]
    Set {
        name: String,
        /// KEY=VALUE pairs, or one KEY and its VALUE.
        #[arg(required = true, num_args = 1.., value_name = "KEY=VALUE", allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Remove keys (the limits are lifted live).
    Unset {
        name: String,
        #[arg(required = true, num_args = 1..)]
        keys: Vec<String>,
    },
    /// Edit the configuration in $VISUAL/$EDITOR (or read it from standard input when that is
    /// not a terminal: `lxr config edit c1 < c1.yaml`); checked before it is saved.
    Edit { name: String },
    /// Devices: `device add c1 web proxy listen=tcp:127.0.0.1:8080 connect=tcp:127.0.0.1:80`,
    /// `device add c1 data disk source=/home/me/dir path=/mnt/data [readonly=true]`,
    /// `device list c1`, `device remove c1 web`.
    #[command(subcommand)]
    Device(DeviceOp),
}

/// What a change's [`Applied`] means, on stderr.
pub fn say(name: &str, what: &str, a: Applied) {
    match a {
        Applied::Live => {}
        Applied::AtNextStart => eprintln!("lxr: {what}: {name} gets it at its next start"),
        Applied::AtRestart => eprintln!(
            "lxr: {what}: {name} runs on pasta, whose forwards are fixed while it runs: \
             takes effect at `lxr restart {name}`"
        ),
    }
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    match a.op {
        Op::Show { name, expanded } => {
            let cfg = if expanded {
                c.config_expanded(&name)?
            } else {
                c.config(&name)?
            };
            print!("{}", cfg.to_yaml()?);
        }
        Op::Get {
            name,
            key,
            expanded,
        } => println!("{}", c.config_get(&name, &key, expanded)?),
        Op::Set { name, args } => c.config_set(&name, &key_value_pairs(&args)?)?,
        Op::Unset { name, keys } => c.config_unset(&name, &keys)?,
        Op::Edit { name } => {
            let text = super::editor::edit_yaml(&c.config(&name)?.to_yaml()?, &name)?;
            say(&name, "devices changed", c.config_edit(&name, &text)?);
        }
        Op::Device(DeviceOp::Add {
            name,
            device,
            kind,
            options,
        }) => say(
            &name,
            &format!("device {device} added"),
            c.device_add(&name, &device, &kind, &options)?,
        ),
        Op::Device(DeviceOp::List { name }) => super::device::list(&c.devices(&name)?),
        Op::Device(DeviceOp::Remove { name, device }) => say(
            &name,
            &format!("device {device} removed"),
            c.device_remove(&name, &device)?,
        ),
    }
    Ok(0)
}
