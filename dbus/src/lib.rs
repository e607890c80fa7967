//! The cgmanager D-Bus contract, shared by the daemon (`cgmanager`), its CLI (`cgm`) and `lxr`.
//!
//! * [`INTERFACE_XML`]: the shipped introspection data (`org.linuxcontainers.cgmanager.xml`):
//!   CGManager's `org.linuxcontainers.cgmanager0_0` (API version 10, same method names and
//!   signatures) and our extension `org.linuxcontainers.cgmanager1` (delegation).
//! * [`Error`]: every refusal the daemon can answer with, as named D-Bus errors
//!   (`org.linuxcontainers.cgmanager.Error.*`).
//! * [`ManagerProxy`] / [`DelegationProxy`]: client proxies for the two interfaces.
//! * [`scm`]: the `*Scm` side channel: its wire format (which the daemon encodes with) and the
//!   client's half of the protocol ([`scm::plain_or_scm`]).
//! * [`BUS_POLICY`]: the system bus policy (`org.linuxcontainers.cgmanager.conf`).
//! * [`connect`]: open a peer-to-peer or bus connection the way the daemon expects.

mod client;
mod error;
mod proxy;
pub mod scm;

pub use client::{connect, Transport};
pub use error::Error;
pub use proxy::{DelegationProxy, ManagerProxy};

/// Well-known bus name of the daemon.
pub const BUS_NAME: &str = "org.linuxcontainers.cgmanager";
/// Object path of the single manager object.
pub const OBJECT_PATH: &str = "/org/linuxcontainers/cgmanager";
/// CGManager-compatible interface name.
pub const INTERFACE: &str = "org.linuxcontainers.cgmanager0_0";
/// Our extension interface (delegation), on the same object.
pub const INTERFACE_V1: &str = "org.linuxcontainers.cgmanager1";
/// Prefix of every error name the daemon answers with.
pub const ERROR_PREFIX: &str = "org.linuxcontainers.cgmanager.Error";
/// Default peer-to-peer socket path.
pub const DEFAULT_SOCKET_PATH: &str = "/run/cgmanager/sock";
/// Default peer-to-peer socket address.
pub const DEFAULT_SOCKET: &str = "unix:path=/run/cgmanager/sock";
/// CGManager's `api_version` property value this contract implements.
pub const API_VERSION: i32 = 10;
/// Default location of the admin's delegation policy.
pub const DEFAULT_POLICY: &str = "/etc/cgmanager/delegation.conf";

/// The shipped introspection XML of the manager object.
pub const INTERFACE_XML: &str = include_str!("../org.linuxcontainers.cgmanager.xml");
/// The system bus policy file.
pub const BUS_POLICY: &str = include_str!("../org.linuxcontainers.cgmanager.conf");
