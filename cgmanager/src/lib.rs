//! cgmanager: a root daemon that lets unprivileged users create, configure and own delegated
//! cgroups safely, over D-Bus (CGManager's `org.linuxcontainers.cgmanager0_0` plus our
//! `org.linuxcontainers.cgmanager1`), and `cgm`, its client.
//!
//! Layers, top down:
//! * [`daemon`] / [`cli`]: process setup, signals, readiness; [`server`]: the peer-to-peer
//!   socket and the bus connection; [`p2p`]: serving the socket within bounds (message size,
//!   connections per user, idle time), EXTERNAL and ANONYMOUS authentication.
//! * [`service`]: the D-Bus interfaces, each method one call into [`service::driver`] (find
//!   the caller, run the core on the blocking pool, answer with the result type's encoding,
//!   [`service::answer`]); [`service::served`]: how they are dispatched per transport;
//!   [`service::scm`]: the daemon's end of the `*Scm` side channel.
//! * [`manager`] + [`ops`]: the core, one module per group of operations, independent of D-Bus,
//!   with its own error type ([`errors`]: a [`errors::Kind`] per refusal, the errno when the
//!   kernel refused).
//! * [`caller`], [`access`], [`target`], [`controllers`], [`policy`]: who asks, what the kernel
//!   would allow them, which directory an argument names, which hierarchies, what the admin
//!   delegates.
//! * [`cgm`]: the command-line client (the side channel's client half is the contract's,
//!   [`cgmanager_dbus::scm`]).

pub mod access;
pub mod caller;
pub mod cgm;
pub mod cli;
pub mod controllers;
pub mod daemon;
pub mod errors;
pub mod manager;
pub mod ops;
pub mod p2p;
pub mod policy;
pub mod server;
pub mod service;
pub mod target;
pub mod watch;

pub use manager::{Config, Manager};
