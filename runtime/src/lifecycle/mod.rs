//! What can happen to a user's containers, as a library: [`Containers`] creates, starts, stops,
//! restarts, deletes, freezes, configures, describes and enters them. The command line
//! ([`crate::cli`]) only parses arguments, calls one method here and prints what it returns;
//! nothing here prints, so other front ends (tests, a future API) get the same behaviour.
//!
//! One file per step: [`create`](Containers::create) and [`launch`](Containers::launch) in
//! `create.rs`, `start.rs`, `stop.rs` (stop, restart), `delete.rs`, `freeze.rs`, `settings.rs`
//! (config keys, applied live), `devices.rs` (proxy and disk devices), `profiles.rs`,
//! `autostart.rs` (`boot.autostart`), `status.rs` (info, list), `exec.rs`, `console.rs`, `file/`
//! (push, pull, edit), `ephemeral.rs` (deleted when stopped), `publish.rs` (an image from a
//! container), `rootfs.rs` (a stopped rootfs handed to the container's root), `snapshot.rs`,
//! `copy.rs`, `rename.rs`. The start
//! itself — monitor, intermediate, init — is [`crate::launch`].
//!
//! A `Containers` holds the command's one connection to cgmanager ([`Cgm`]), opened when a
//! step first needs it.

mod autostart;
mod console;
mod copy;
mod create;
mod delete;
mod devices;
mod ephemeral;
mod exec;
mod file;
mod freeze;
mod profiles;
mod publish;
mod rename;
mod rootfs;
mod settings;
mod snapshot;
mod start;
mod status;
mod stop;

pub use autostart::Autostarted;
pub use devices::Applied;
pub use exec::Exec;
pub use file::{Pull, Push};
pub use publish::Publish;
pub use settings::pairs as key_value_pairs;
pub use snapshot::{check_snap_name, Snapshot};
pub use status::{Status, Usage};
pub use stop::Halt;

use crate::cgroup::Cgm;
use crate::container::check_name;
use crate::error::{Error, Result};
use crate::paths::Paths;

/// The containers of the user running lxr.
pub struct Containers {
    paths: Paths,
    cgm: Cgm,
}

impl Containers {
    /// The user's containers under `paths`.
    pub fn new(paths: Paths) -> Containers {
        Containers {
            paths,
            cgm: Cgm::new(),
        }
    }

    /// Where they live.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// `name` checked, and the container must exist.
    fn existing(&self, name: &str) -> Result<()> {
        check_name(name)?;
        if !self.paths.container(name).exists() {
            return Err(Error::NotFound(format!(
                "no container {name} (lxr list shows them)"
            )));
        }
        Ok(())
    }
}
