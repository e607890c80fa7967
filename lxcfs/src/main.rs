//! `lxcfs` binary (being written).
fn main() {}
