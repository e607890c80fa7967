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
pub mod handover;
pub mod options;
pub mod render;
pub mod supervisor;
pub mod switch;
pub mod tree;

pub use error::{FsError, FsResult};
pub use fs::{Attr, Caller, DirEntry, Kind, Lxcfs};
pub use options::Options;

/// The build's identity, printed when the daemon starts. The marker is a fixed-size byte
/// string so a packager (or a test standing in for a rebuild) can stamp a binary without
/// recompiling it: `LXCFS-BUILD-ID:` followed by 32 bytes, NUL- or space-padded.
pub fn build_id() -> String {
    static MARK: [u8; 48] =
        *b"LXCFS-BUILD-ID:dev-build\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    // SAFETY: reading our own static; volatile so the compiler cannot fold the original
    // bytes into the caller.
    let bytes: [u8; 48] = unsafe { std::ptr::read_volatile(&MARK) };
    let id = &bytes[15..];
    let end = id.iter().position(|b| *b == 0).unwrap_or(id.len());
    String::from_utf8_lossy(&id[..end]).trim().to_string()
}
