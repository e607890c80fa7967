//! `/sys/devices/system/cpu/online`: the cpuset (physical numbers, like lxcfs), or with
//! `--enable-cfs` `0-(n−1)` for the `n` CPUs the quota allows.

use super::{cpus, host, Ctx, View};
use crate::error::FsResult;
use crate::tree::VFile;

/// Render `online`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    let Some(vis) = cpus::visible(ctx, view)? else {
        return host::read(ctx, VFile::CpuOnline);
    };
    if ctx.opts.cfs && vis.shown < vis.cpuset.len() {
        return Ok(match vis.shown {
            0 | 1 => "0\n".to_string(),
            n => format!("0-{}\n", n - 1),
        });
    }
    Ok(format!("{}\n", vis.cpuset.to_list()))
}

#[cfg(test)]
mod tests {
    use crate::render::testing::Host;

    #[test]
    fn online_is_the_cpuset() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cg, "cpuset.cpus", "1-2\n");
        assert_eq!(h.render(super::render, "c"), "1-2\n");
        let cpu = h.fx.v1_cgroup("cpu", "c");
        h.fx.write(&cpu, "cpu.cfs_quota_us", "50000\n");
        h.fx.write(&cpu, "cpu.cfs_period_us", "100000\n");
        assert_eq!(h.render_with(super::render, "c", |o| o.cfs = true), "0\n");
    }
}
