//! `lxr shell NAME`: a login shell as the container's root, as `incus shell` (Incus's alias for
//! `exec NAME -- su -l`). An image without `su` gets `/bin/sh -l` in `/root` instead.

use crate::error::Result;
use crate::lifecycle::{Containers, Exec};
use crate::relay;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
}

/// `su -l` where the image has it, else a login `sh` (from `/root`, `HOME=/root`).
const SHELL: &str =
    "command -v su >/dev/null 2>&1 && exec su -l; cd /root 2>/dev/null; exec /bin/sh -l";

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    c.exec(
        &a.name,
        &Exec {
            cmd: vec!["/bin/sh".into(), "-c".into(), SHELL.into()],
            env: Vec::new(),
            cwd: None,
            user: 0,
            group: 0,
            mode: relay::mode(false, false),
        },
    )
}
