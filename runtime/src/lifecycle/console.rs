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

    /// A connection to the running container's console, and its init's pid (see
    /// [`Containers::console_ended`]). Refused while another `lxr console` is attached, unless
    /// `force`: then that one is detached (and told so).
    pub fn console(&self, name: &str, force: bool) -> Result<(UnixStream, u32)> {
        use crate::launch::console::{ATTACHED, BUSY, HELLO_ATTACH, HELLO_FORCE};
        use std::io::{Read, Write};
        check_name(name)?;
        let dir = self.paths.state(name);
        let Some(state) = State::load(&dir)? else {
            self.existing(name)?;
            return Err(Error::Usage(format!(
                "{name} is not running (lxr start {name})"
            )));
        };
        let mut s = UnixStream::connect(dir.join("console.sock"))
            .ctx(|| format!("attach to the console of {name}"))?;
        s.write_all(&[if force { HELLO_FORCE } else { HELLO_ATTACH }])
            .ctx(|| format!("attach to the console of {name}"))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ctx(|| "console socket".into())?;
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer)
            .ctx(|| format!("attach to the console of {name}"))?;
        s.set_read_timeout(None).ctx(|| "console socket".into())?;
        match answer[0] {
            ATTACHED => Ok((s, state.init_pid)),
            BUSY => Err(Error::Usage(format!(
                "the console of {name} is in use by another lxr console \
                 (lxr console --force {name} takes it over)"
            ))),
            other => Err(Error::Usage(format!(
                "the console of {name} answered {other:#x}"
            ))),
        }
    }

    /// Whether the container whose init was `init_pid` when the console was attached has
    /// stopped (or restarted) since: how `lxr console` tells why its connection closed.
    pub fn console_ended(&self, name: &str, init_pid: u32) -> bool {
        !matches!(State::load(&self.paths.state(name)), Ok(Some(s)) if s.init_pid == init_pid)
    }
}
