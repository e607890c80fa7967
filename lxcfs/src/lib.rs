//! lxcfs: per-container views of `/proc` and `/sys/devices/system/cpu`, served over FUSE.
//!
//! The crate is split like mountpoint-s3: a FUSE-independent core and one thin adapter
//! module ([`fuse_adapter`]) that speaks the FUSE protocol through fuse-backend-rs. Modules
//! depend downward only, in this order (each uses only those below it):
//!
//! * the daemon: [`daemon`] (start, signals, live upgrade) → [`supervisor`]
//!   (`--supervise`) → [`handover`], [`pidfile`], [`cli`];
//! * [`fuse_adapter`]: FUSE requests → calls on [`fs::Lxcfs`]; the mount itself;
//! * [`fs`]: attributes, handles, reads at any offset, the permission rule;
//! * [`view`]: caller → whose cgroups → rendered bytes, shared briefly per container, or
//!   the host's copy while the SIGUSR2 [`switch`] is off;
//! * [`render`]: pure renderers, one per file; [`sampler`]: the `-l` load averages;
//! * [`caller`] (who is asking), [`tree`] (layout, inodes), [`options`], [`kernel`] (newer
//!   kernel features and the test switch that turns them off), [`error`].

pub mod caller;
pub mod cli;
pub mod daemon;
pub mod error;
pub mod fs;
pub mod fuse_adapter;
pub mod handover;
pub mod journal;
pub mod kernel;
pub mod options;
pub mod pidfile;
pub mod render;
pub mod sampler;
pub mod supervisor;
pub mod switch;
pub mod tree;
pub mod view;

pub use caller::Caller;
pub use error::{FsError, FsResult, StartError};
pub use fs::{Attr, DirEntry, Kind, Lxcfs};
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
