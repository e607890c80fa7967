//! `lxr config show|get|set|unset NAME [KEY [VALUE]]` ([`Containers::config_set`] and its
//! siblings); limits are applied at once to a running container. `lxr config device
//! add|list|remove` ([`Containers::device_add`]): proxy devices.

use crate::error::Result;
use crate::lifecycle::{Applied, Containers};

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
    /// Proxy devices: `device add c1 web proxy listen=tcp:127.0.0.1:8080
    /// connect=tcp:127.0.0.1:80`, `device list c1`, `device remove c1 web`.
    #[command(subcommand)]
    Device(DeviceOp),
}

#[derive(Debug, clap::Subcommand)]
enum DeviceOp {
    /// Add a device (applied live where the network stack allows it).
    Add {
        name: String,
        device: String,
        /// The device type: `proxy`.
        kind: String,
        /// `listen=tcp|udp:ADDRESS:PORT` (on the host), `connect=tcp|udp:ADDRESS:PORT` (in
        /// the container).
        #[arg(required = true)]
        options: Vec<String>,
    },
    /// List the devices.
    List { name: String },
    /// Remove a device.
    Remove { name: String, device: String },
}

fn say(name: &str, what: &str, a: Applied) {
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
        Op::Device(DeviceOp::List { name }) => {
            for p in c.devices(&name)? {
                println!("{}", p.describe());
            }
        }
        Op::Device(DeviceOp::Remove { name, device }) => say(
            &name,
            &format!("device {device} removed"),
            c.device_remove(&name, &device)?,
        ),
    }
    Ok(0)
}
