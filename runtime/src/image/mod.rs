//! Images: the built-in `busybox` image, made from the host's busybox-static so everything
//! works offline. (LXD/Incus image import comes later.)

pub mod busybox;

/// Names of the built-in images.
pub const BUILTIN: &[&str] = &["busybox"];
