//! cgmanager: the daemon that creates, configures and hands out delegated cgroups.
//!
//! Placeholder until the cgmanager issue: the crate builds and wires its dependencies so the
//! workspace's dependency direction (`cgmanager → cgroups, cgmanager-dbus`) is fixed from the start.

pub use cgmanager_dbus::INTERFACE;
