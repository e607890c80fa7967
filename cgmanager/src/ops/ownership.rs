//! Chown and Chmod: handing a cgroup to someone, and changing modes, with the kernel's own
//! rules (privilege over both uids for chown; ownership for chmod).

use nix::sys::stat::Mode;

use crate::access::{may_own, Inode, R, W, X};
use crate::caller::Caller;
use crate::errors::{from_cgroups, Error, Kind, Result};
use crate::manager::Manager;
use crate::target;

impl Manager {
    /// Chown: give the cgroup directory and its task files (v1 `tasks`, `cgroup.procs`; v2
    /// the kernel's delegation list) to `uid:gid` (host ids). Resource files stay with their
    /// owner so the new owner can create children but not raise its own limits.
    pub fn chown(
        &self,
        c: &Caller,
        controller: &str,
        cgroup: &str,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        if !(c.host_root || c.ns_root) {
            return Err(Error::new(
                Kind::PermissionDenied,
                "Chown needs root in your user namespace (privilege over two uids)",
            ));
        }
        self.each(controller, |h| {
            let base = self.base(c, h)?;
            let cg = self.resolve(c, &base, cgroup)?;
            let md = self.need(c, &cg, None, R | W | X, "chown")?;
            if !may_own(c, &Inode::from(&md)) {
                return Err(Error::new(
                    Kind::PermissionDenied,
                    format!("uid {} has no privilege over {}", c.uid, cg.abs_path()),
                ));
            }
            let files = cg.delegation_files(&self.config.delegate_list);
            cg.chown(&files, uid, gid).map_err(|e| from_cgroups(&e))?;
            tracing::info!(by = c.uid, "chown {} to {uid}:{gid}", cg.dir().display());
            Ok(())
        })
        .map(|_| ())
    }

    /// Chmod: the directory (`file` empty) or one of its files. Only permission bits.
    pub fn chmod(
        &self,
        c: &Caller,
        controller: &str,
        cgroup: &str,
        file: &str,
        mode: i32,
    ) -> Result<()> {
        let mode = u32::try_from(mode)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                Error::new(
                    Kind::InvalidArgument,
                    format!(
                        "mode {mode:#o} is not between 0 and 0777 (setuid, setgid and sticky bits \
                     are not allowed)"
                    ),
                )
            })?;
        let file = if file.is_empty() {
            None
        } else {
            target::check_key(file)?;
            Some(file)
        };
        self.each(controller, |h| {
            let base = self.base(c, h)?;
            let cg = self.resolve(c, &base, cgroup)?;
            let md = target::stat_beneath(&cg, file)?;
            if !may_own(c, &Inode::from(&md)) {
                return Err(Error::new(
                    Kind::PermissionDenied,
                    format!(
                        "uid {} does not own {}{}",
                        c.uid,
                        cg.abs_path(),
                        file.map(|f| format!("/{f}")).unwrap_or_default()
                    ),
                ));
            }
            cg.chmod(file, Mode::from_bits_truncate(mode).bits())
                .map_err(|e| from_cgroups(&e))
        })
        .map(|_| ())
    }
}
