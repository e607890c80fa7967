//! SetValue: writing a control file, with the files that must never be written this way.

use std::io::Write;

use nix::fcntl::OFlag;

use crate::access::{W, X};
use crate::caller::Caller;
use crate::errors::{from_cgroups, from_io, Error, Kind, Result};
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

/// cgroup v1's `memory.limit_in_bytes`, which CGManager's clients (LXC, libcgmanager, the
/// README's `cgm setvalue memory '' memory.limit_in_bytes 512M`) write.
pub const V1_MEMORY_LIMIT: &str = "memory.limit_in_bytes";

/// What v1's `memory.limit_in_bytes` reads when there is no limit (`PAGE_COUNTER_MAX` pages of
/// 4 KiB), returned for v2's `max` so a v1 client's number parser keeps working.
pub const V1_NO_MEMORY_LIMIT: &str = "9223372036854771712";

/// The v2 file a v1 key stands for on a cgroup2 hierarchy, where the two mean the same thing:
/// only `memory.limit_in_bytes` → `memory.max` (both the hard limit, both take `512M` or bytes;
/// v1's `-1` is v2's `max`). Other v1 files either keep their name on v2 (`pids.max`,
/// `cpuset.cpus`) or have no v2 file of the same meaning (`memory.memsw.limit_in_bytes` counts
/// memory and swap, `memory.swap.max` swap alone; `cpu.shares` and `cpu.weight` differ in
/// scale), and are left to fail `NotFound`.
pub fn v2_alias<'a>(key: &str, value: &'a str) -> Option<(&'static str, &'a str)> {
    (key == V1_MEMORY_LIMIT).then(|| {
        (
            "memory.max",
            if value.trim() == "-1" { "max" } else { value },
        )
    })
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
        let (key, value) = match v2_alias(key, value) {
            Some(alias) if h.version == cgroups::Version::V2 => alias,
            _ => (key, value),
        };
        let base = self.base(c, h)?;
        let cg = self.resolve(c, &base, cgroup)?;
        self.need(c, &cg, None, X, "enter")?;
        let mut f = self.open_checked(c, &cg, key, OFlag::O_WRONLY, W, "write")?;
        let what = format!("write {}/{key}", cg.abs_path().trim_end_matches('/'));
        let mut write = || {
            let n = f.write(value.as_bytes()).map_err(|e| from_io(&e, &what))?;
            if n != value.len() {
                return Err(Error::new(
                    Kind::Failed,
                    format!("{what}: short write ({n} of {})", value.len()),
                ));
            }
            Ok(())
        };
        if h.version == cgroups::Version::V2 && key == SUBTREE_CONTROL && !c.host_root {
            as_writer(&cg, c.uid, c.gid, write)?;
        } else {
            write()?;
        }
        tracing::debug!(uid = c.uid, "{what} = {value:?}");
        Ok(())
    }
}

/// cgroup v2's file that enables controllers for a cgroup's children.
pub const SUBTREE_CONTROL: &str = "cgroup.subtree_control";

/// Run `write` (a write to `cg`'s `cgroup.subtree_control`) as if `uid`/`gid` had written it.
/// The kernel creates the files of a controller enabled there (`memory.max`, `cpuset.cpus`, …)
/// in every child, owned by the writer's fsuid: written by the daemon as root for a user, they
/// would be root's, and the user who enabled the controller in its own subtree could not set
/// the limits it enabled it for (found in the v2 guest, issue 18: `lxr launch -c limits.cpu=1`
/// failed writing `cpuset.cpus`). So the files that appear in the children with the write are
/// given to the caller, as the kernel would have given them; nothing that existed before
/// changes owner.
pub(crate) fn as_writer(
    cg: &cgroups::Cgroup,
    uid: u32,
    gid: u32,
    write: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let files = |child: &cgroups::Cgroup| -> Vec<String> {
        child
            .keys()
            .map(|ks| ks.into_iter().map(|k| k.name).collect())
            .unwrap_or_default()
    };
    let before: Vec<(cgroups::Cgroup, Vec<String>)> = cg
        .children()
        .map_err(|e| from_cgroups(&e))?
        .iter()
        .filter_map(|name| cg.descendant(name).ok())
        .map(|child| {
            let have = files(&child);
            (child, have)
        })
        .collect();
    write()?;
    for (child, had) in before {
        let new: Vec<String> = files(&child)
            .into_iter()
            .filter(|f| !had.contains(f))
            .collect();
        match child.chown_files(&new, uid, gid) {
            // A child removed meanwhile has nothing to hand over.
            Err(e) if e.is_not_found() => {}
            r => r.map_err(|e| from_cgroups(&e))?,
        }
    }
    Ok(())
}
