//! Which CPUs a container sees: its cpuset, and with `--enable-cfs` no more than its CFS
//! quota rounded up (`min(ceil(quota/period), |cpuset|)`, the quota being the tightest over
//! the cgroup and its ancestors).

use cgroups::cpuset::{self, CpuSet};

use super::{Ctx, View};
use crate::error::FsResult;

/// The CPUs of a view.
#[derive(Debug, Clone)]
pub struct Visible {
    /// The cpuset (physical CPU numbers).
    pub cpuset: CpuSet,
    /// How many of them are shown (`cpuset.len()` unless `--enable-cfs` lowers it).
    pub shown: usize,
    /// The exact CPU allowance (quota/period), if a quota applies and `--enable-cfs` is on.
    pub exact: Option<f64>,
}

impl Visible {
    /// The CPUs shown, physical numbers.
    pub fn shown_set(&self) -> CpuSet {
        self.cpuset.first(self.shown)
    }
}

/// The visible CPUs; `None` if the host has no cpuset hierarchy (files fall back to the host).
pub fn visible(ctx: &Ctx, view: &View) -> FsResult<Option<Visible>> {
    let Some(cg) = view.cgroup(ctx, "cpuset")? else {
        return Ok(None);
    };
    let set = cpuset::effective(&cg)?;
    let mut shown = set.len();
    let mut exact = None;
    if ctx.opts.cfs {
        if let Some(cpu_cg) = view.cgroup(ctx, "cpu")? {
            if let Some(q) = cgroups::cpu::effective_cpus(&cpu_cg)? {
                let ceil = (q.ceil() as usize).max(1);
                shown = shown.min(ceil);
                exact = Some(q.min(shown as f64));
            }
        }
    }
    Ok(Some(Visible {
        cpuset: set,
        shown,
        exact,
    }))
}
