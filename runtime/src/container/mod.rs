//! A container on disk: `containers/<name>/{config.yaml, rootfs/}` below the data directory,
//! and, while it runs, `state.json` + `console.log` in its runtime directory; the key schema,
//! devices and profiles its configuration is made of.

mod config;
pub mod devices;
pub mod profile;
pub mod schema;
mod state;

pub use config::{check_key, write_atomic, Config, ImageRef, LOG_SIZE_KEY};
pub use state::State;

use crate::error::{Error, Result};

/// Longest container name (it is also the hostname).
pub const MAX_NAME: usize = 63;

/// Check a container name: a hostname label (letters, digits, `-`, not starting with `-` or
/// a digit), as LXD requires.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid container name {name:?}: use 1-{MAX_NAME} letters, digits and '-', starting \
             with a letter and not ending with '-' (it becomes the hostname)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["c1", "web-01", "a"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1c",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "a/b",
            "..",
            &"x".repeat(64),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
