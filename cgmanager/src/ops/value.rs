//! SetValue: writing a control file, with the files that must never be written this way.

use std::io::Write;

use nix::fcntl::OFlag;

use crate::access::{W, X};
use crate::caller::Caller;
use crate::errors::{from_io, Error, Kind, Result};
use crate::manager::Manager;
use crate::target;

/// Longest value accepted (cgroup files take at most a page or so).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Why a file may not be written through SetValue, if it may not.
pub fn protected(key: &str) -> Option<&'static str> {
    match key {
        "tasks" | "cgroup.procs" | "cgroup.threads" => {
            Some("moves processes; use MovePid, which checks who may move whom")
        }
        "release_agent" => Some("runs a program as root on the host; never writable here"),
        "notify_on_release" => Some("controls the host's release agent; use RemoveOnEmpty"),
        _ => None,
    }
}

/// `CAP_SYS_ADMIN`.
const CAP_SYS_ADMIN: u32 = 21;

/// Files the kernel lets a writer change only with `CAP_SYS_ADMIN` in the host's user
/// namespace, whoever owns them: the device cgroup's lists. Written by the daemon (as root) for
/// their owner, they would grant devices the owner could never grant itself.
fn needs_sys_admin(key: &str) -> bool {
    matches!(key, "devices.allow" | "devices.deny")
}

impl Manager {
    /// SetValue: write `value` to `key` in one write.
    pub fn set_value(
        &self,
        c: &Caller,
        controller: &str,
        cgroup: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        target::check_key(key)?;
        if let Some(why) = protected(key) {
            return Err(Error::new(Kind::ProtectedFile, format!("{key} {why}")));
        }
        if needs_sys_admin(key) && !c.host_capable(&self.host.proc_root, CAP_SYS_ADMIN) {
            return Err(Error::new(
                Kind::PermissionDenied,
                format!(
                "writing {key} takes CAP_SYS_ADMIN on the host, as the kernel requires of anyone \
                 writing it directly, whoever owns the file"
            ),
            ));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::new(
                Kind::InvalidArgument,
                format!(
                    "value is {} bytes long (limit {MAX_VALUE_LEN})",
                    value.len()
                ),
            ));
        }
        let h = self.one(controller)?;
        let base = self.base(c, h)?;
        let cg = self.resolve(c, &base, cgroup)?;
        self.need(c, &cg, None, X, "enter")?;
        let mut f = self.open_checked(c, &cg, key, OFlag::O_WRONLY, W, "write")?;
        let what = format!("write {}/{key}", cg.abs_path().trim_end_matches('/'));
        let n = f.write(value.as_bytes()).map_err(|e| from_io(&e, &what))?;
        if n != value.len() {
            return Err(Error::new(
                Kind::Failed,
                format!("{what}: short write ({n} of {})", value.len()),
            ));
        }
        tracing::debug!(uid = c.uid, "{what} = {value:?}");
        Ok(())
    }
}
