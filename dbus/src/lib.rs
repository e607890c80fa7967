//! The cgmanager D-Bus contract (`org.linuxcontainers.cgmanager0_0`): interface XML, client proxy,
//! error names and shared types.
//!
//! Placeholder: the contract lands with the cgmanager issue. Only the names that are already fixed by
//! `design.md` live here so that every crate agrees on them from day one.

/// Well-known bus name of the daemon.
pub const BUS_NAME: &str = "org.linuxcontainers.cgmanager";
/// Object path of the single manager object.
pub const OBJECT_PATH: &str = "/org/linuxcontainers/cgmanager";
/// CGManager-compatible interface name.
pub const INTERFACE: &str = "org.linuxcontainers.cgmanager0_0";
/// Default peer-to-peer socket address.
pub const DEFAULT_SOCKET: &str = "unix:path=/run/cgmanager/sock";
