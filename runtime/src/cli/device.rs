//! `device add|list|remove`, the same subcommands under `lxr config device` (a container's
//! devices) and `lxr profile device` (a profile's, which its containers get at their next
//! start): their arguments and the listing.

use crate::container::devices::{describe, Devices};

/// A device operation.
#[derive(Debug, clap::Subcommand)]
pub enum DeviceOp {
    /// Add a device: `device add NAME web proxy listen=tcp:127.0.0.1:8080
    /// connect=tcp:127.0.0.1:80`, `device add NAME data disk source=/home/me/dir path=/mnt/data
    /// [readonly=true]` (on a container, a proxy is applied live where the network stack allows
    /// it; a disk at the next start).
    Add {
        name: String,
        device: String,
        /// The device type: `proxy` or `disk`.
        kind: String,
        /// proxy: `listen=tcp|udp:ADDRESS:PORT` (on the host), `connect=tcp|udp:ADDRESS:PORT`
        /// (in the container). disk: `source=HOST_PATH` (yours), `path=CONTAINER_PATH`,
        /// `readonly=true|false`.
        #[arg(required = true)]
        options: Vec<String>,
    },
    /// List the devices.
    List { name: String },
    /// Remove a device.
    Remove { name: String, device: String },
}

/// Print `devices`, one line each.
pub fn list(devices: &Devices) {
    for (d, opts) in devices {
        println!("{}", crate::text::line(&describe(d, opts)));
    }
}
