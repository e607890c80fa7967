//! lxcfs: per-container views of `/proc` and `/sys/devices/system/cpu`, served over FUSE.
//!
//! The crate is split like mountpoint-s3: a FUSE-independent core ([`fs::Lxcfs`]: inode
//! table, attributes, handles, reads at any offset; [`render`]: what each file says for a
//! given caller; [`caller`]: who is asking and which container that is) and one thin adapter
//! module ([`fuse_adapter`]) that speaks the FUSE protocol through fuse-backend-rs.

pub mod caller;
pub mod cli;
pub mod daemon;
pub mod error;
pub mod fs;
pub mod fuse_adapter;
pub mod options;
pub mod render;
pub mod tree;

pub use error::{FsError, FsResult};
pub use fs::{Attr, Caller, DirEntry, Kind, Lxcfs};
pub use options::Options;
