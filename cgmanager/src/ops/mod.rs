//! The operations of the manager, grouped by what they do. Each is a method of
//! [`crate::manager::Manager`] taking the [`crate::caller::Caller`] first.

mod create;
mod delegation;
mod move_pid;
mod ownership;
mod query;
mod remove;
#[cfg(test)]
mod tests;
mod value;

pub use delegation::Delegation;
pub use query::{Key, Pids};

/// Create and Remove: whether the cgroup existed (Create: in every hierarchy named; Remove: in
/// any of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existed(pub bool);
