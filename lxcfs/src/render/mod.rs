//! What each virtual file says for a given view: pure renderers, one module per file, each a
//! function of the host's facts ([`Ctx`]) and whose numbers to show ([`View`]) to the file's
//! text. They keep no state and cache nothing: who is asking, sharing renderings and the
//! SIGUSR2 switch are the view layer's (`crate::view`), the `-l` averages the sampler's
//! (`crate::sampler`).
//!
//! Each module documents its formula and where it deliberately differs from lxcfs 5.0.3 (see
//! also `lxcfs/README.md`). A controller the host does not have makes the file fall back to
//! the host's copy, as lxcfs does.

pub(crate) mod cpuinfo;
mod cpus;
mod digits;
pub(crate) mod diskstats;
pub(crate) mod host;
pub(crate) mod loadavg;
pub(crate) mod meminfo;
pub(crate) mod online;
pub(crate) mod pressure;
pub(crate) mod slabinfo;
pub(crate) mod stat;
pub(crate) mod uptime;

use std::path::PathBuf;

use cgroups::{Cgroup, Layout, ProcCgroups};

use crate::caller::Scope;
use crate::error::FsResult;
use crate::options::Options;

/// Host facts every renderer needs, fixed at start-up.
pub struct Ctx {
    /// The options.
    pub opts: Options,
    /// The host's cgroup hierarchies.
    pub layout: Layout,
    /// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/<pid>/stat` times and `/proc/stat`.
    pub clk_tck: u64,
    /// The host's `/proc/cpuinfo`, remembered while it cannot have changed.
    pub(crate) cpuinfo: cpuinfo::HostText,
}

impl Ctx {
    /// The facts of the host described by `opts` (its cgroup layout from `opts.proc_root`).
    pub fn new(opts: &Options) -> FsResult<Ctx> {
        let layout = Layout::detect(&opts.proc_root)?;
        let tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0);
        Ok(Ctx {
            opts: opts.clone(),
            layout,
            clk_tck: tck.unwrap_or(100),
            cpuinfo: cpuinfo::HostText::default(),
        })
    }

    /// A procfs path.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.opts.proc_root.join(rel)
    }
}

/// Whose numbers a file shows.
#[derive(Debug, Clone)]
pub struct View {
    /// Host caller (own cgroups) or container (its init's cgroups).
    pub scope: Scope,
    /// The cgroups of `scope.pid()`, with a trailing `/init.scope` stripped.
    pub cgroups: std::sync::Arc<ProcCgroups>,
}

impl View {
    /// The view's cgroup for `controller`; `None` if the host has no such hierarchy (the
    /// file then falls back to the host's copy).
    pub fn cgroup(&self, ctx: &Ctx, controller: &str) -> FsResult<Option<Cgroup>> {
        match ctx.layout.cgroup_for(controller, &self.cgroups) {
            Ok(cg) => Ok(Some(cg)),
            Err(cgroups::Error::NoController(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The cgroup whose `file` (one of `controller`'s) describes the view. On v1, the view's
    /// cgroup. On v2 a controller's files exist only in cgroups whose parent enables it (a
    /// delegated cgroup often has none: `cgroup.subtree_control` empty up the tree), and the
    /// kernel charges and limits such a cgroup as its nearest ancestor that has them: that
    /// ancestor. `None` when the host has no hierarchy for the controller or no cgroup below
    /// the root has the file — the file is then the host's copy, as in lxcfs 5.0.3.
    pub fn charged_cgroup(
        &self,
        ctx: &Ctx,
        controller: &str,
        file: &str,
    ) -> FsResult<Option<Cgroup>> {
        Ok(self
            .cgroup(ctx, controller)?
            .and_then(|cg| match cg.version {
                cgroups::Version::V1 => Some(cg),
                cgroups::Version::V2 => cg.nearest_with(file),
            }))
    }
}

#[cfg(test)]
pub(crate) mod testing;
