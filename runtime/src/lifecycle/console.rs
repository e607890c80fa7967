//! A container's console: what it kept (`console.log`, turned over into `console.log.1`) and
//! a connection to the monitor's relay.

use std::os::unix::net::UnixStream;

use super::Containers;
use crate::container::{check_name, State};
use crate::error::{Context, Error, Result};

impl Containers {
    /// What the console printed and the monitor kept, oldest first.
    pub fn console_log(&self, name: &str) -> Result<Vec<u8>> {
        check_name(name)?;
        let dir = self.paths.state(name);
        let mut out = Vec::new();
        let mut any = false;
        for f in ["console.log.1", "console.log"] {
            if let Ok(b) = std::fs::read(dir.join(f)) {
                any = true;
                out.extend_from_slice(&b);
            }
        }
        if !any {
            self.existing(name)?;
        }
        Ok(out)
    }

    /// A connection to the running container's console.
    pub fn console(&self, name: &str) -> Result<UnixStream> {
        self.existing(name)?;
        let dir = self.paths.state(name);
        if State::load(&dir)?.is_none() {
            return Err(Error::Usage(format!("{name} is not running")));
        }
        UnixStream::connect(dir.join("console.sock"))
            .ctx(|| format!("attach to the console of {name}"))
    }
}
