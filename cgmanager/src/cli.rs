//! The daemon's command line.

use std::path::PathBuf;

use clap::Parser;

/// cgmanager: lets unprivileged users create, configure and own delegated cgroups over D-Bus.
#[derive(Debug, Parser)]
#[command(name = "cgmanager", version)]
pub struct Args {
    /// Peer-to-peer socket (mode 0666).
    #[arg(long, default_value = cgmanager_dbus::DEFAULT_SOCKET_PATH)]
    pub socket: PathBuf,
    /// Also serve on this bus address (e.g. unix:path=/run/dbus/system_bus_socket); without
    /// it the system bus is used when one is reachable.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "no_bus")]
    pub bus: Option<String>,
    /// Serve on the peer-to-peer socket only.
    #[arg(long)]
    pub no_bus: bool,
    /// Delegation policy (TOML; a missing file means no delegations).
    #[arg(long, default_value = cgmanager_dbus::DEFAULT_POLICY)]
    pub policy: PathBuf,
    /// Deepest cgroup Create may make, in levels below the hierarchy root.
    #[arg(long, default_value_t = 16)]
    pub max_depth: usize,
    /// Most simultaneous peer-to-peer clients.
    #[arg(long, default_value_t = crate::p2p::MAX_CLIENTS)]
    pub max_clients: usize,
    /// Most simultaneous peer-to-peer clients of one user, its containers included (root is
    /// not capped).
    #[arg(long, default_value_t = crate::p2p::MAX_CLIENTS_PER_USER)]
    pub max_clients_per_user: usize,
    /// Seconds a peer-to-peer client may stay connected without sending a whole call.
    #[arg(long, default_value_t = crate::p2p::IDLE_TIMEOUT.as_secs())]
    pub idle_timeout: u64,
    /// Threads for the async side (sockets, D-Bus framing, the side channels); 0 (the default)
    /// runs it on one thread. Either way each call's work in the kernel runs on a pool of
    /// blocking threads, so one slow call holds up no other client.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Tests only: ignore `SO_PEERPIDFD` and pin peers by pid, as on Linux < 6.5.
    #[arg(long, hide = true)]
    pub test_no_peer_pidfd: bool,
    /// Log every request (same as RUST_LOG=debug).
    #[arg(short, long)]
    pub debug: bool,
}
